"""istgt, the userspace target of FreeBSD's ports (and Debian's `istgt`).

zboot owns one marked block at the end of istgt.conf (a LogicalUnit and an
InitiatorGroup per host; the unit's LUN0 is the host's disk, LUN1 its data
disk if it has one) and one in istgt's AuthFile (an AuthGroup per CHAP
host, root-only); the admin's text around them is kept as it is. Every host
maps through the first PortalGroup the admin defined.

istgt 0.4 cannot take changes live: `istgtcontrol refresh` fails on any new
InitiatorGroup and a second refresh crashed the daemon (seen on Debian's
0.4~20110717). So a batch rewrites both blocks once and restarts the service
once, then polls `istgtcontrol list` until it names exactly zboot's targets.
The restart drops every session for a moment; initiators log in again. If
istgt does not come back, the old files are put back and it is restarted on them.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace

from ..chap import Chap
from ..errors import InvalidInput, NotFound, ServerError
from ..remote.base import Runner, wait_for_path
from ..remote.plan import PlanRunner
from .base import Export

DEFAULT_CONF = "/etc/istgt/istgt.conf"  # Debian; FreeBSD: /usr/local/etc/istgt
DEFAULT_AUTH = "/etc/istgt/auth.conf"
RESTART = ("service", "istgt", "restart")
BEGIN = "# BEGIN zboot: written by zboot; `zboot sync` rewrites it, do not edit"
END = "# END zboot"
HOST_COMMENT = re.compile(r"^zboot host (?P<host>\S+)$")
# A word of a config line: double-quoted (backslash escapes), single-quoted,
# a backslash and the character it escapes, or plain characters. A quote left
# open runs to the end of the line, as istgt takes it: read, never an error.
PART = re.compile(r"\"((?:[^\"\\]|\\.)*)\"?|'([^']*)'?|\\(.?)|([^\s\"'\\]+)")
WORD = re.compile(f"(?:{PART.pattern})+")


@dataclass
class Section:
    """One `[NameN]` section of an istgt config file: its keys in order."""

    kind: str  # "LogicalUnit", "InitiatorGroup", ...
    tag: int | None
    items: list[tuple[str, list[str]]] = field(default_factory=list)

    def get(self, key: str) -> list[str]:
        return next((values for k, values in self.items if k == key), [])


def parse_sections(text: str) -> list[Section]:
    """istgt's syntax: `#` lines are comments, a trailing backslash joins the
    next line, `[KindN]` opens a section, then `Key value...` (split into
    words like a shell line, see split_words)."""
    sections: list[Section] = []
    for line in text.replace("\\\n", " ").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if m := re.fullmatch(r"\[([A-Za-z]+?)(\d*)\]", line):
            sections.append(Section(m[1], int(m[2]) if m[2] else None))
        elif sections:
            key, *values = split_words(line)
            sections[-1].items.append((key, values))
    return sections


def split_words(line: str) -> list[str]:
    """A config line's words as istgt reads them: `"a b"` and `'a b'` are one
    word, a backslash escapes the next character (not inside single quotes)."""
    return [
        "".join(re.sub(r"\\(.)", r"\1", dq) + sq + esc + plain for dq, sq, esc, plain in parts)
        for parts in (PART.findall(word[0]) for word in WORD.finditer(line))
    ]


def split_block(text: str) -> tuple[str, str]:
    """The admin's part of a config file and zboot's block in it."""
    start = text.find(BEGIN)
    if start < 0:
        return text, ""
    stop = text.find(END, start)
    stop = len(text) if stop < 0 else stop + len(END) + 1
    return text[:start] + text[stop:], text[start:stop]


def quoted(value: str) -> str:
    if any(c in value for c in '"\\\n'):
        raise InvalidInput(f"{value!r} cannot be written into istgt's config")
    return f'"{value}"'


def istgt_serial(serial: str) -> str:
    """istgt's unit serial is at most 16 characters: the UUID serial's first 16 hex."""
    return serial.replace("-", "")[:16]


def lun_storage(section: Section, lun: int) -> str:
    """The device of `LUN<lun> Storage <device> <size>` in a LogicalUnit ("": none)."""
    return next(
        (v[1] for k, v in section.items if k == f"LUN{lun}" and len(v) > 1 and v[0] == "Storage"),
        "",
    )


def render_block(exports: Sequence[Export], first_tag: int, portal_group: int) -> str:
    lines = [BEGIN]
    for tag, e in enumerate(exports, start=first_tag):
        auth = "None" if e.chap is None else "CHAP Mutual" if e.chap.mutual_user else "CHAP"
        lines += [
            f"[InitiatorGroup{tag}]",
            f"  Comment {quoted('zboot host ' + e.host)}",
            f"  InitiatorName {quoted(e.initiator)}",
            "  Netmask ALL",
            f"[LogicalUnit{tag}]",
            f"  Comment {quoted('zboot host ' + e.host)}",
            f"  TargetName {e.target}",
            f"  Mapping PortalGroup{portal_group} InitiatorGroup{tag}",
            f"  AuthMethod {auth}",
        ]
        if e.chap is not None:
            lines.append(f"  AuthGroup AuthGroup{tag}")
        lines += ["  UseDigest Auto", "  UnitType Disk"]
        disks = [(e.device, e.serial)]
        if e.data_device:  # the data disk: LUN1 of the same unit, so the same initiator
            disks.append((e.data_device, e.data_serial))
        for lun, (device, serial) in enumerate(disks):
            lines += [
                f"  LUN{lun} Storage {quoted(device)} Auto",
                f"  LUN{lun} Option Serial {quoted(istgt_serial(serial))}",
            ]
    return "\n".join([*lines, END]) + "\n"


def render_auth_block(exports: Sequence[Export], first_tag: int) -> str:
    lines = [BEGIN]
    for tag, e in enumerate(exports, start=first_tag):
        if e.chap is None:
            continue
        secrets = [e.chap.user, e.chap.secret]
        if e.chap.mutual_user and e.chap.mutual_secret:
            secrets += [e.chap.mutual_user, e.chap.mutual_secret]
        lines += [
            f"[AuthGroup{tag}]",
            f"  Comment {quoted('zboot host ' + e.host)}",
            "  Auth " + " ".join(quoted(s) for s in secrets),
        ]
    return "\n".join([*lines, END]) + "\n"


def parse_block(conf_block: str, auth_block: str) -> list[Export]:
    """zboot's exports (with their CHAP) from its two blocks."""
    sections = parse_sections(conf_block)
    initiators = {s.tag: s.get("InitiatorName") for s in sections if s.kind == "InitiatorGroup"}
    auth = {s.tag: s.get("Auth") for s in parse_sections(auth_block) if s.kind == "AuthGroup"}
    found = []
    for s in sections:
        comment = HOST_COMMENT.match(" ".join(s.get("Comment")))
        if s.kind != "LogicalUnit" or comment is None:
            continue
        group = next((v for v in s.get("Mapping")[1:] if v.startswith("InitiatorGroup")), "")
        initiator = initiators.get(int(group.removeprefix("InitiatorGroup") or -1), [""])
        secrets = auth.get(s.tag, [])
        chap = None
        if len(secrets) >= 2:
            chap = Chap(secrets[0], secrets[1], *(secrets[2:4] if len(secrets) >= 4 else ()))
        found.append(
            Export(
                host=comment["host"],
                target=s.get("TargetName")[0],
                device=lun_storage(s, 0),
                initiator=initiator[0],
                chap=chap,
                data_device=lun_storage(s, 1),
            )
        )
    return found


def parse_info(text: str) -> dict[str, list[str]]:
    """`istgtcontrol info`: one `Login from <initiator> (<ip>) on <target> LUn ...` line
    per connection."""
    found: dict[str, list[str]] = {}
    for m in re.finditer(r"^Login from (\S+) \(.*?\) on (\S+) ", text, re.MULTILINE):
        if m[1] not in found.setdefault(m[2], []):
            found[m[2]].append(m[1])
    return found


class IstgtEngine:
    name = "istgt"
    lun = 0

    def __init__(
        self,
        runner: Runner,
        conf: str = DEFAULT_CONF,
        restart: Sequence[str] = RESTART,
        wait_seconds: float = 60,
    ) -> None:
        self.runner = runner
        self.conf = conf
        self.restart = list(restart)
        self.wait_seconds = wait_seconds
        # a dry run restarts nothing, so there is no istgt coming back to wait for
        self._planning = isinstance(runner, PlanRunner) and not runner.execute

    # --- reading -------------------------------------------------------------

    def _read(self, path: str) -> str:
        try:
            return self.runner.read_file(path).decode()
        except NotFound:
            return ""

    def _files(self) -> tuple[str, str, str]:
        """The config text, the AuthFile's path and its text."""
        conf = self._read(self.conf)
        if not conf:
            raise ServerError(
                f"{self.conf} is missing on the server",
                hint="install istgt and give it a [Global], [UnitControl] "
                "and [PortalGroup1] section",
            )
        global_ = next((s for s in parse_sections(conf) if s.kind == "Global"), Section("", 0))
        auth_path = (global_.get("AuthFile") or [DEFAULT_AUTH])[0]
        return conf, auth_path, self._read(auth_path)

    def _current(self) -> list[Export]:
        conf, _, auth = self._files()
        return parse_block(split_block(conf)[1], split_block(auth)[1])

    def _control(self, command: str, conf: str, read_only: bool = False) -> str:
        """Run istgtcontrol against the [UnitControl] portal of conf (the config
        text); read_only: not when polling for what a change of this run brings."""
        control = next((s for s in parse_sections(conf) if s.kind == "UnitControl"), None)
        portal = control.get("Portal") if control else []
        if len(portal) < 2:
            raise ServerError(
                f"{self.conf} has no [UnitControl] Portal; zboot needs it to "
                "ask istgt what it serves"
            )
        host, _, port = portal[1].rpartition(":")
        settings = f"[Global]\n  Host {host.strip('[]')}\n  Port {port}\n  AuthMethod None\n"
        result = self.runner.run(
            ["istgtcontrol", "-q", "-c", "/dev/stdin", command],
            input=settings.encode(),
            check=False,
            read_only=read_only,
        )
        if result.returncode != 0:
            raise ServerError(
                f"istgtcontrol {command} failed: istgt is not answering on {portal[1]}",
                hint="is istgt running (service istgt status)?",
            )
        return result.text

    def exports(self) -> dict[str, Export]:
        return {e.target: replace(e, chap=None) for e in self._current()}

    def sessions(self, targets: Iterable[str]) -> dict[str, list[str]]:
        wanted = set(targets)
        if not wanted:
            return {}
        return {
            t: names
            for t, names in parse_info(
                self._control("info", self._files()[0], read_only=True)
            ).items()
            if t in wanted
        }

    # --- changing ------------------------------------------------------------

    def apply(
        self, create: Iterable[Export] = (), delete: Iterable[str] = (), persist: bool = True
    ) -> None:
        create, delete = list(create), list(delete)
        if not create and not delete:
            return
        conf, auth_path, auth = self._files()
        admin_conf, _ = split_block(conf)
        admin_auth, _ = split_block(auth)
        current = parse_block(split_block(conf)[1], split_block(auth)[1])
        replaced = {e.target for e in create} | set(delete)
        wanted = sorted(
            [e for e in current if e.target not in replaced] + create, key=lambda e: e.host
        )
        admin = parse_sections(admin_conf)
        groups = [s.tag for s in admin if s.kind == "PortalGroup" and s.tag is not None]
        if not groups:
            raise ServerError(
                f"{self.conf} has no [PortalGroupN] section",
                hint="define the portal clients use, e.g. [PortalGroup1]",
            )
        taken = [s.tag or 0 for s in [*admin, *parse_sections(admin_auth)]]
        first = max(taken, default=0) + 1
        for e in create:
            for device in filter(None, (e.device, e.data_device)):
                wait_for_path(self.runner, device, seconds=60)
        new_conf = admin_conf + render_block(wanted, first, groups[0])
        new_auth = admin_auth + render_auth_block(wanted, first)
        if (new_conf, new_auth) == (conf, auth):
            return  # nothing to change: a restart would only drop every session
        self._install(new_conf, auth_path, new_auth)
        try:
            self._restart_and_wait(
                new_conf, {e.target for e in wanted}, {e.target for e in current}
            )
        except ServerError:
            self._install(conf, auth_path, auth)  # put the working files back
            self.runner.run(self.restart, check=False)
            raise

    def _install(self, conf: str, auth_path: str, auth: str) -> None:
        self.runner.write_file(auth_path, auth.encode(), mode=0o600)
        self.runner.write_file(self.conf, conf.encode(), mode=0o644)

    def _restart_and_wait(self, conf: str, targets: set[str], before: set[str]) -> None:
        """Restart istgt on conf; wait until it serves exactly `targets` of
        zboot's (those before the change included, so deleted ones must be gone)."""
        result = self.runner.run(self.restart, check=False, timeout=120)
        if self._planning:
            return
        deadline = time.monotonic() + self.wait_seconds
        mine = before | targets
        while True:
            try:
                listed = set(self._control("list", conf).splitlines())
                if listed & mine == targets:
                    return
            except ServerError:
                pass
            if time.monotonic() > deadline:
                raise ServerError(
                    f"istgt did not come back serving zboot's targets after "
                    f"`{' '.join(self.restart)}` (exit {result.returncode})",
                    hint="see istgt's messages in the server's syslog",
                )
            time.sleep(0.5)
