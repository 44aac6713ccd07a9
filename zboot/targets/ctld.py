"""ctld, FreeBSD's iSCSI target daemon: its configuration file is the whole
truth, so zboot keeps its exports in one marked block of /etc/ctl.conf and
leaves every byte outside the block to the admin.

Why a block and not a file of zboot's own: ctl.conf(5) documents no include
statement, and ctld's lexer (usr.sbin/ctld/token.l) has no such keyword; only
the UCL format (`ctld -u`) could include files, and switching the admin's file
to another format is not zboot's call.

One batch is: read ctl.conf, rebuild the block, write it to a candidate file,
`ctld -t -f candidate` (parse and verify only, exit 1 on any error: ctld's
usage() and main() in usr.sbin/ctld/ctld.cc; the ctld(8) text at hand, of
2016, predates -t), install it atomically (0600: CHAP secrets are in it),
`service ctld reload`, then poll `ctladm devlist -x` until every new LUN is
there and no removed zvol backs a LUN. The reload is only a SIGHUP: its exit
code says nothing about whether ctld took the file, and zfs must not destroy a
zvol ctld still holds open.

Per host: an auth-group naming the one initiator let in, and a target using it
with LUN 0 on the zvol (and LUN 1 on the host's data disk's zvol, if it has
one). Without CHAP the group says `auth-type none`: a group
with only `initiator-name` has no type, and ctld then denies everybody
("auth-type not set, denying access", login.cc). With CHAP the group says
`auth-type chap` (or `chap-mutual`) and carries one credential line; the
initiator-name check applies either way. Every name and value is quoted, the
auth types too (bare, `chap` is a keyword token, not a value). Targets use the portal-group
"default", which is TCP 3260 on every IPv4 and IPv6 address unless the admin
redefined it; a portal-group of zboot's own on the same address would collide
with an admin's one.
"""

from __future__ import annotations

import re
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import pairwise

from ..errors import InvalidInput, NotFound, ServerError
from ..remote.base import Runner, wait_for_path
from .base import Export

CONF = "/etc/ctl.conf"
CANDIDATE = "/etc/ctl.conf.zboot-candidate"
CTLD = "/usr/sbin/ctld"
CTLADM = "/usr/sbin/ctladm"
SERVICE = "/usr/sbin/service"
BEGIN = "# BEGIN zboot: written by zboot, `zboot sync` re-creates it; edits in here are lost"
END = "# END zboot"
EXPORT_MARK = "# zboot export "
HOST_DEVICE = re.compile(r"^/dev/zvol/.+/hosts/(?P<host>[^/]+)$")
TOKEN = re.compile(r'"[^"]*"|[{};]|[^\s{};"]+')
SECRET = re.compile(r"[A-Za-z0-9]{12,16}")  # the Microsoft initiator takes 12 to 16
UNSAFE = re.compile(r'["\x00-\x1f\x7f]')  # a quoted ctl.conf string ends at the next "
BARE_AMP = re.compile(r"&(?!(?:amp|lt|gt|quot|apos|#[0-9]+|#x[0-9a-fA-F]+);)")


@dataclass(frozen=True)
class CtlLun:
    """One LUN as `ctladm devlist -x` describes it."""

    id: int
    file: str  # the backing device ("" for a ramdisk)
    ctld_name: str  # "<target>,lun,<n>" for a LUN declared inside a target


@dataclass(frozen=True)
class Connection:
    """One iSCSI connection as `ctladm islist -x` describes it."""

    id: int
    initiator: str
    target: str


def _xml(text: str, what: str) -> ET.Element:
    # The kernel prints some values (LUN options, initiator aliases) unescaped:
    # a lone & is read as text rather than failing the whole listing.
    for attempt in (text, BARE_AMP.sub("&amp;", text)):
        try:
            return ET.fromstring(attempt)  # noqa: S314 - the server's own kernel wrote it
        except ET.ParseError as err:
            error = err
    raise ServerError(f"`{what}` printed XML zboot cannot read: {error}")


def parse_devlist(text: str) -> list[CtlLun]:
    return [
        CtlLun(int(lun.get("id", "-1")), lun.findtext("file", ""), lun.findtext("ctld_name", ""))
        for lun in _xml(text, "ctladm devlist -x").iter("lun")
    ]


def parse_islist(text: str) -> list[Connection]:
    return [
        Connection(int(c.get("id", "-1")), c.findtext("initiator", ""), c.findtext("target", ""))
        for c in _xml(text, "ctladm islist -x").iter("connection")
    ]


def _q(value: str, what: str) -> str:
    """value as a ctl.conf quoted string (token.l: `"[^"]+"`, no escapes)."""
    if not value or UNSAFE.search(value):
        raise InvalidInput(
            f"{what} {value!r} cannot be written to ctl.conf",
            hint="use plain printable characters without quotes",
        )
    return f'"{value}"'


def _auth_lines(export: Export) -> list[str]:
    # The type is quoted: bare `chap` and `chap-mutual` are keywords to ctld's
    # lexer (token.l), so `auth-type chap` would be a syntax error.
    chap = export.chap
    if chap is None:
        return ['auth-type "none"']
    for secret in (chap.secret, chap.mutual_secret):
        if secret is not None and not SECRET.fullmatch(secret):
            raise InvalidInput(
                f"the CHAP secret for {export.host!r} must be 12 to 16 letters and digits",
                hint="let zboot make the secrets (--chap)",
            )
    if (chap.mutual_user is None) != (chap.mutual_secret is None):
        raise InvalidInput(f"mutual CHAP for {export.host!r} needs both a user and a secret")
    if chap.mutual_user is None or chap.mutual_secret is None:
        return [
            'auth-type "chap"',
            f"chap {_q(chap.user, 'CHAP user')} {_q(chap.secret, 'secret')}",
        ]
    if chap.mutual_secret == chap.secret:
        raise InvalidInput(f"the two mutual CHAP secrets for {export.host!r} must differ")
    return [
        'auth-type "chap-mutual"',
        f"chap-mutual {_q(chap.user, 'CHAP user')} {_q(chap.secret, 'secret')} "
        f"{_q(chap.mutual_user, 'CHAP user')} {_q(chap.mutual_secret, 'secret')}",
    ]


def auth_group_name(target: str) -> str:
    return f"zboot-{target}"


def stanza(export: Export, portal_group: str = "default", lun: int = 0) -> str:
    """The host's part of zboot's block: a marker line, its auth-group, its target."""
    for name, what in ((export.target, "target name"), (export.initiator, "initiator name")):
        if name != name.lower():
            raise InvalidInput(
                f"{what} {name!r} must be lowercase (ctld compares "
                "initiator names as given and lowercases targets)"
            )
    group = _q(auth_group_name(export.target), "auth-group name")
    auth = "".join(f"\t{line}\n" for line in _auth_lines(export))
    disks = [(export.device, export.serial)]
    if export.data_device:  # the data disk: the LUN after, same target, same auth-group
        disks.append((export.data_device, export.data_serial))
    luns = "".join(
        f"\tlun {lun + n} {{\n"
        f"\t\tpath {_q(device, 'device')}\n"
        f"\t\tserial {_q(serial, 'serial')}\n"
        f"\t\tdevice-id {_q(serial, 'device id')}\n"
        f"\t\tblocksize 512\n"
        f"\t}}\n"
        for n, (device, serial) in enumerate(disks)
    )
    return (
        f"{EXPORT_MARK}{export.target}\n"
        f"auth-group {group} {{\n"
        f"\tinitiator-name {_q(export.initiator, 'initiator name')}\n"
        f"{auth}"
        f"}}\n"
        f"target {_q(export.target, 'target name')} {{\n"
        f"\tauth-group {group}\n"
        f"\tportal-group {_q(portal_group, 'portal-group')}\n"
        f"{luns}"
        f"}}\n"
    )


def split_conf(text: str) -> tuple[str, dict[str, str], str]:
    """ctl.conf as (the admin's text before zboot's block, the block's stanzas
    by target IQN, the admin's text after it)."""
    lines = text.splitlines(keepends=True)
    begins = [i for i, line in enumerate(lines) if line.startswith("# BEGIN zboot")]
    ends = [i for i, line in enumerate(lines) if line.rstrip("\r\n") == END]
    if not begins and not ends:
        return text, {}, ""
    if len(begins) != 1 or len(ends) != 1 or ends[0] < begins[0]:
        raise ServerError(
            f"{CONF} has a damaged zboot block ({len(begins)} BEGIN and {len(ends)} END lines)",
            hint=f"repair {CONF} by hand: one '# BEGIN zboot' line, then "
            f"'{END}', around zboot's part",
        )
    stanzas: dict[str, str] = {}
    current = None
    for line in lines[begins[0] + 1 : ends[0]]:
        if line.startswith(EXPORT_MARK):
            current = line.removeprefix(EXPORT_MARK).strip()
            stanzas[current] = ""
        if current is not None:
            stanzas[current] += line
    stanzas = {name: text.rstrip() + "\n" for name, text in stanzas.items()}
    return "".join(lines[: begins[0]]), stanzas, "".join(lines[ends[0] + 1 :])


def join_conf(before: str, stanzas: dict[str, str], after: str) -> str:
    if not stanzas:
        return before + after
    if before and not before.endswith("\n"):
        before += "\n"
    body = "\n".join(stanzas[name] for name in sorted(stanzas))
    return f"{before}{BEGIN}\n{body}{END}\n{after}"


def stanza_export(text: str, lun: int = 0) -> Export | None:
    """The export a stanza of zboot's block describes (without its secrets):
    the path of `lun <lun>` is the host's disk, that of the LUN after it the
    host's data disk."""
    tokens = [
        t.strip('"')
        for line in text.splitlines()
        if not line.lstrip().startswith("#")
        for t in TOKEN.findall(line)
    ]
    found: dict[str, str] = {}
    paths: dict[int, str] = {}  # by LUN number
    number = None
    for keyword, value in pairwise(tokens):
        if keyword in ("target", "initiator-name"):
            found.setdefault(keyword, value)
        elif keyword == "lun" and value.isdigit():
            number = int(value)
        elif keyword == "path" and number is not None:
            paths.setdefault(number, value)
    m = HOST_DEVICE.match(paths.get(lun, ""))
    if m is None or "target" not in found:
        return None
    return Export(
        host=m["host"],
        target=found["target"],
        device=paths[lun],
        initiator=found.get("initiator-name", ""),
        data_device=paths.get(lun + 1, ""),
    )


class CtldEngine:
    name = "ctld"
    lun = 0

    def __init__(
        self, runner: Runner, portal_group: str = "default", polls: int = 60, interval: float = 0.5
    ) -> None:
        self.runner = runner
        self.portal_group = portal_group
        self.polls = polls  # `ctladm devlist -x` this many times, interval seconds apart
        self.interval = interval

    def _conf(self) -> str:
        try:
            return self.runner.read_file(CONF).decode()
        except NotFound:
            return ""

    def _ctladm(self, *args: str, read_only: bool = False) -> str:
        """read_only: not when polling for what a change of this run brings."""
        result = self.runner.run([CTLADM, *args], check=False, read_only=read_only)
        if result.returncode != 0 or not result.stdout.strip():
            raise ServerError(
                f"ctladm {' '.join(args)} failed: "
                + (result.stderr.decode(errors="replace").strip() or "no output"),
                hint="is the ctl module loaded and ctld running (service ctld status)?",
            )
        return result.text

    def exports(self) -> dict[str, Export]:
        _, stanzas, _ = split_conf(self._conf())
        found = {}
        for text in stanzas.values():
            if (export := stanza_export(text, self.lun)) is not None:
                found[export.target] = export
        return found

    def sessions(self, targets: Iterable[str]) -> dict[str, list[str]]:
        wanted = set(targets)
        if not wanted:
            return {}
        found: dict[str, list[str]] = {}
        for conn in parse_islist(self._ctladm("islist", "-x", read_only=True)):
            if conn.target in wanted and conn.initiator not in found.get(conn.target, []):
                found.setdefault(conn.target, []).append(conn.initiator)
        return found

    def apply(
        self, create: Iterable[Export] = (), delete: Iterable[str] = (), persist: bool = True
    ) -> None:
        create, delete = list(create), list(delete)
        if not create and not delete:
            return
        new = {e.target: stanza(e, self.portal_group, self.lun) for e in create}
        before, stanzas, after = split_conf(self._conf())
        gone = [
            stanza_export(stanzas.pop(name), self.lun)
            for name in [*delete, *new]
            if name in stanzas
        ]
        if not new and not gone:
            return  # none of the targets to delete is zboot's
        stanzas.update(new)
        text = join_conf(before, stanzas, after)
        for export in create:
            for device in filter(None, (export.device, export.data_device)):
                wait_for_path(self.runner, device, seconds=60)
        self._validate(text)
        self.runner.write_file(CONF, text.encode(), mode=0o600)
        reload = self.runner.run([SERVICE, "ctld", "reload"], check=False)
        if reload.returncode != 0:
            raise ServerError(
                f"{CONF} is updated but ctld did not reload: "
                + reload.stderr.decode(errors="replace").strip(),
                hint="sysrc ctld_enable=YES && service ctld start",
            )
        wanted = {f"{e.target},lun,{self.lun}": e.device for e in create} | {
            f"{e.target},lun,{self.lun + 1}": e.data_device for e in create if e.data_device
        }
        released = {d for e in gone if e is not None for d in (e.device, e.data_device) if d}
        self._wait(wanted=wanted, released=released - set(wanted.values()))

    def _validate(self, text: str) -> None:
        self.runner.write_file(CANDIDATE, text.encode(), mode=0o600)
        try:
            checked = self.runner.run([CTLD, "-t", "-f", CANDIDATE], check=False)
        finally:
            self.runner.remove_file(CANDIDATE)
        if checked.returncode != 0:
            lines = checked.stderr.decode(errors="replace").strip().splitlines()
            raise ServerError(
                "ctld refused the new ctl.conf, nothing was changed: "
                + ("; ".join(lines[-3:]) or f"exit {checked.returncode}"),
                hint=f"if zboot's part looks right, the rest of {CONF} may "
                "not pass: `ctld -t` says why",
            )

    def _wait(self, wanted: dict[str, str], released: set[str]) -> None:
        """Until each wanted LUN (ctld name -> device) is there and no released
        device backs a LUN any more."""
        missing, held = sorted(wanted), sorted(released)
        for attempt in range(self.polls):
            if attempt:
                time.sleep(self.interval)
            luns = parse_devlist(self._ctladm("devlist", "-x"))
            present = {(lun.ctld_name, lun.file) for lun in luns}
            backing = {lun.file for lun in luns}
            missing = [name for name, dev in sorted(wanted.items()) if (name, dev) not in present]
            held = sorted(released & backing)
            if not missing and not held:
                return
        problems = [f"no LUN {name}" for name in missing] + [
            f"{dev} still backs a LUN" for dev in held
        ]
        raise ServerError(
            f"ctld did not apply {CONF} within "
            f"{self.polls * self.interval:g} s: {'; '.join(problems)}",
            hint=f"ctld logs why to syslog (/var/log/messages); {CONF} itself is already updated",
        )
