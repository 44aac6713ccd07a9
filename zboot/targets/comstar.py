"""illumos COMSTAR: `stmfadm` for logical units, host and target groups and
views, `itadm` for iSCSI targets and CHAP. COMSTAR keeps its configuration
in SMF itself, so nothing is written to persist it.

Per host, every object is named or marked `zboot-<host>` (`storage_name`):

- a logical unit on /dev/zvol/rdsk/<dataset>, alias `zboot-<host>`, serial
  `disk_serial(host)` and a GUID derived from the host (`lu_guid`), so a
  re-created clone is the same disk to the client;
- the target `itadm create-target -n <iqn>`;
- host group `zboot-<host>` holding only the host's initiator (stmfadm(8):
  an initiator can be in one host group only);
- target group `zboot-<host>` holding only the target (a target must be
  offline to join one: offline, add, online);
- one view: that host group, through that target group, sees the LU as LUN 0;
- when the host has a data disk, a second LU on its zvol, alias
  `zboot-<host>.data` (`data_storage_name`), serial `data_serial(host)`, GUID
  `data_lu_guid(host)`, and a second view of the same groups: LUN 1.

CHAP secrets never travel in argv. itadm(8) offers `-s` (prompt) and
`-S path`; itadm.c (illumos-gate usr/src/cmd/itadm/itadm.c,
itadm_get_password) reads `-s` with getpassphrase(3C), which wants the
controlling terminal, and `-S` from a *regular* file (stat S_ISREG, so a pipe
or /dev/stdin is refused), stripping one trailing newline and requiring 12 to
255 characters. So each secret goes into a 0600 file under /var/run (tmpfs,
writable by root only) through `Runner.write_file` (data on stdin, never in
argv), is named with `-S`, and is removed right after the itadm call.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from ..chap import Chap
from ..errors import InvalidInput, ServerError
from ..remote.base import Result, Runner
from .base import Export, data_serial, data_storage_name, disk_serial, storage_name

STMFADM = "stmfadm"
ITADM = "itadm"
ZVOL = "/dev/zvol/"
RDSK = "/dev/zvol/rdsk/"
HOST_DATA_FILE = re.compile(r"^/dev/zvol/rdsk/.+/hosts/(?P<host>[^/]+)$")
# stmfadm(8): guid is "32 hexadecimal ASCII characters representing a valid NAA
# Registered Extended Identifier": NAA type 6, then a 24-bit IEEE OUI (the
# default oui, 00144F, which COMSTAR's own GUIDs carry), then 100 bits of ours.
GUID_PREFIX = "6" + "00144F"
GUID_RE = re.compile(r"^[0-9A-F]{32}$")
MAX_GROUP_NAME = 255  # stmfadm(8) create-hg / create-tg
SECRET_MIN, SECRET_MAX = 12, 255  # itadm(8) -s; itadm.c itadm_get_password
RUN_DIR = "/var/run"  # tmpfs on illumos, writable by root only
WAIT_SCRIPT = (
    'i=0; while [ ! -e "$1" ]; do i=$((i+1)); '
    'if [ "$i" -gt "$2" ]; then echo "$1 did not appear" >&2; exit 1; fi; '
    "sleep 1; done"
)
SERVICE_HINT = (
    "are stmf and the iSCSI target service online "
    "(svcadm enable -r svc:/network/iscsi/target:default)?"
)


def group_name(host: str) -> str:
    """The host's host group and target group name, also its LU alias."""
    return storage_name(host)


def guid_of(serial: str) -> str:
    """A deterministic LU GUID for a unit serial: 32 upper-case hex digits, NAA 6."""
    digest = hashlib.sha256(serial.encode()).hexdigest().upper()
    return GUID_PREFIX + digest[: 32 - len(GUID_PREFIX)]


def lu_guid(host: str) -> str:
    """The host's deterministic LU GUID."""
    return guid_of(disk_serial(host))


def data_lu_guid(host: str) -> str:
    """The deterministic GUID of the host's data disk's LU."""
    return guid_of(data_serial(host))


def rdsk_path(device: str) -> str:
    """/dev/zvol/<dataset> (what zboot asks for) -> /dev/zvol/rdsk/<dataset>."""
    if not device.startswith(ZVOL) or device.startswith(RDSK) or device == ZVOL:
        raise InvalidInput(f"{device!r} is not a /dev/zvol/<dataset> path")
    return RDSK + device.removeprefix(ZVOL)


def zvol_path(data_file: str) -> str:
    """/dev/zvol/rdsk/<dataset> -> /dev/zvol/<dataset>, as zboot names it."""
    return ZVOL + data_file.removeprefix(RDSK)


# --- parsers ------------------------------------------------------------------


def _field(line: str) -> tuple[str, str] | None:
    key, sep, value = line.partition(":")
    return (key.strip(), value.strip()) if sep else None


@dataclass
class LogicalUnit:
    """One LU as `stmfadm list-lu -v` describes it."""

    guid: str
    fields: dict[str, str] = field(default_factory=dict)

    @property
    def alias(self) -> str:
        return self.fields.get("Alias", "")

    @property
    def data_file(self) -> str:
        return self.fields.get("Data File", "")

    @property
    def views(self) -> int:
        count = self.fields.get("View Entry Count", "")
        return int(count) if count.isdigit() else 0


def parse_list_lu(text: str) -> list[LogicalUnit]:
    lus: list[LogicalUnit] = []
    for line in text.splitlines():
        if m := re.match(r"^LU Name:\s*([0-9A-Fa-f]{32})\s*$", line):
            lus.append(LogicalUnit(m[1].upper()))
        elif lus and (kv := _field(line)):
            lus[-1].fields.setdefault(*kv)
    return lus


def parse_groups(text: str, heading: str) -> dict[str, list[str]]:
    """`stmfadm list-hg -v` (heading "Host Group") or `list-tg -v` ("Target
    Group"): group name -> members."""
    groups: dict[str, list[str]] = {}
    current: str | None = None
    for line in text.splitlines():
        if line.startswith(f"{heading}: "):
            current = line.removeprefix(f"{heading}: ").strip()
            groups[current] = []
        elif current is not None and (kv := _field(line)) and kv[0] == "Member":
            groups[current].append(kv[1])
    return groups


def parse_sessions(text: str) -> dict[str, list[str]]:
    """`stmfadm list-target -v`: target -> initiators logged in."""
    found: dict[str, list[str]] = {}
    current: str | None = None
    for line in text.splitlines():
        if line.startswith("Target: "):
            current = line.removeprefix("Target: ").strip()
            found[current] = []
        elif current is not None and (kv := _field(line)) and kv[0] == "Initiator":
            found[current].append(kv[1])
    return found


def parse_itadm_targets(text: str) -> list[str]:
    """`itadm list-target`: the configured target names (first column)."""
    return [line.split()[0] for line in text.splitlines() if line.startswith(("iqn.", "eui."))]


def parse_created_guid(text: str) -> str | None:
    m = re.search(r"Logical unit created: ([0-9A-Fa-f]{32})", text)
    return m[1].upper() if m else None


# --- the engine ----------------------------------------------------------------


@dataclass
class Snapshot:
    lus: list[LogicalUnit]
    host_groups: dict[str, list[str]]
    target_groups: dict[str, list[str]]
    targets: list[str] = field(default_factory=list)  # itadm's


def check_export(export: Export) -> None:
    """Refuse what COMSTAR would refuse, before any command runs."""
    rdsk_path(export.device)
    if export.data_device:
        rdsk_path(export.data_device)
    if len(group_name(export.host)) > MAX_GROUP_NAME:
        raise InvalidInput(f"host name {export.host!r} is too long for a COMSTAR group name")
    if export.chap is not None:
        check_chap(export.chap)


def check_chap(chap: Chap) -> None:
    secrets = [chap.secret] + ([chap.mutual_secret] if chap.mutual_secret else [])
    for secret in secrets:
        if not SECRET_MIN <= len(secret) <= SECRET_MAX or "\n" in secret or "\0" in secret:
            raise InvalidInput(
                f"COMSTAR takes CHAP secrets of {SECRET_MIN} to {SECRET_MAX} "
                "characters on one line",
                hint="re-provision the host to get a new secret",
            )
    if (chap.mutual_user is None) != (chap.mutual_secret is None):
        raise InvalidInput("mutual CHAP needs both a user and a secret")
    if chap.mutual_secret is not None and chap.mutual_secret == chap.secret:
        raise InvalidInput("the two mutual CHAP secrets must differ")


class ComstarEngine:
    name = "comstar"
    lun = 0

    def __init__(self, runner: Runner) -> None:
        self.runner = runner

    def _run(
        self, step: str, argv: list[str], hint: str | None = None, read_only: bool = False
    ) -> Result:
        result = self.runner.run(argv, check=False, read_only=read_only)
        if result.returncode != 0:
            lines = (result.stderr or result.stdout).decode(errors="replace").strip()
            raise ServerError(
                f"COMSTAR: {step} failed ({argv[0]} {argv[1]} exited "
                f"{result.returncode}): "
                f"{lines.splitlines()[-1] if lines else 'no message'}",
                hint=hint or SERVICE_HINT,
            )
        return result

    def _list(self, tool: str, *args: str) -> str:
        return self._run(f"{tool} {args[0]}", [tool, *args], read_only=True).text

    def _snapshot(self, with_targets: bool) -> Snapshot:
        snap = Snapshot(
            parse_list_lu(self._list(STMFADM, "list-lu", "-v")),
            parse_groups(self._list(STMFADM, "list-hg", "-v"), "Host Group"),
            parse_groups(self._list(STMFADM, "list-tg", "-v"), "Target Group"),
        )
        if with_targets:
            snap.targets = parse_itadm_targets(self._list(ITADM, "list-target"))
        return snap

    def exports(self) -> dict[str, Export]:
        snap = self._snapshot(with_targets=False)
        # data disks' LUs in a view, by alias (`zboot-<host>.data`)
        data = {lu.alias: zvol_path(lu.data_file) for lu in snap.lus if lu.views >= 1}
        found = {}
        for lu in snap.lus:
            m = HOST_DATA_FILE.match(lu.data_file)
            if not m or lu.alias != group_name(m["host"]) or lu.views < 1:
                continue
            initiators = snap.host_groups.get(lu.alias, [])
            targets = snap.target_groups.get(lu.alias, [])
            if len(initiators) == 1 and len(targets) == 1:
                found[targets[0]] = Export(
                    host=m["host"],
                    target=targets[0],
                    device=zvol_path(lu.data_file),
                    initiator=initiators[0],
                    data_device=data.get(data_storage_name(m["host"]), ""),
                )
        return found

    def sessions(self, targets: Iterable[str]) -> dict[str, list[str]]:
        wanted = set(targets)
        if not wanted:
            return {}
        listed = parse_sessions(self._list(STMFADM, "list-target", "-v"))
        return {t: inis for t, inis in listed.items() if t in wanted and inis}

    def apply(
        self, create: Iterable[Export] = (), delete: Iterable[str] = (), persist: bool = True
    ) -> None:
        create, delete = list(create), list(delete)
        if not create and not delete:
            return
        for export in create:
            check_export(export)
        snap = self._snapshot(with_targets=True)
        prefix = storage_name("")
        owner = {
            t: name.removeprefix(prefix)
            for name, members in snap.target_groups.items()
            if name.startswith(prefix)
            for t in members
        }
        # Deleted targets, then whatever is left of the hosts about to be re-created.
        for iqn in delete:
            self._delete(snap, owner.get(iqn), iqn)
        for export in create:
            self._delete(snap, export.host, export.target)
        for export in create:
            self._create(export)

    def _delete(self, snap: Snapshot, host: str | None, target: str) -> None:
        """Remove a host's objects, most dependent first: views (access goes at
        once), the target (-f offlines it), the LU, the groups (refused while a
        view names them), then the initiator's CHAP context. What is removed
        leaves snap, so a second call for the same host does nothing."""
        name = group_name(host) if host is not None else ""
        aliases = {name, data_storage_name(host)} if host is not None else set()
        guids = {lu_guid(host), data_lu_guid(host)} if host is not None else set()
        lus = [lu for lu in snap.lus if lu.alias in aliases or lu.guid in guids]
        for lu in lus:
            if lu.views:
                self._run("remove the views", [STMFADM, "remove-view", "-a", "-l", lu.guid])
        for t in dict.fromkeys([*snap.target_groups.get(name, []), target]):
            if t in snap.targets:
                self._run(f"delete target {t}", [ITADM, "delete-target", "-f", t])
                snap.targets.remove(t)
        for lu in lus:
            self._run(f"delete LU {lu.guid}", [STMFADM, "delete-lu", lu.guid])
            snap.lus.remove(lu)
        initiators = snap.host_groups.pop(name, None)
        if initiators is not None:
            self._run(f"delete host group {name}", [STMFADM, "delete-hg", name])
        if snap.target_groups.pop(name, None) is not None:
            self._run(f"delete target group {name}", [STMFADM, "delete-tg", name])
        for initiator in initiators or []:
            gone = self.runner.run([ITADM, "delete-initiator", initiator], check=False)
            if gone.returncode != 0 and b"not found" not in gone.stderr + gone.stdout:
                raise ServerError(
                    f"COMSTAR: delete initiator {initiator} failed: "
                    + gone.stderr.decode(errors="replace").strip(),
                    hint=SERVICE_HINT,
                )

    @contextmanager
    def _secret_file(self, host: str, kind: str, secret: str) -> Iterator[str]:
        path = f"{RUN_DIR}/zboot-{host}.{kind}"
        self.runner.write_file(path, secret.encode(), mode=0o600)
        try:
            yield path
        finally:
            self.runner.remove_file(path)

    def _create(self, export: Export) -> None:
        name, guid, data_file = (
            group_name(export.host),
            lu_guid(export.host),
            rdsk_path(export.device),
        )
        t, chap = export.target, export.chap
        again = (
            f"run zboot sync again: it removes what is left of {name} first; "
            f"stmfadm/itadm on the server say more"
        )
        # (LU GUID, device, serial, alias) of the OS disk, then of any data disk
        disks = [(guid, data_file, export.serial, name)]
        if export.data_device:
            disks.append(
                (
                    data_lu_guid(export.host),
                    rdsk_path(export.data_device),
                    export.data_serial,
                    data_storage_name(export.host),
                )
            )
        for _, path, _, _ in disks:
            self._run(f"wait for {path}", ["sh", "-c", WAIT_SCRIPT, "sh", path, "60"], hint=again)
        for lu, path, serial, alias in disks:
            made = self._run(
                f"create the LU on {path}",
                [
                    STMFADM,
                    "create-lu",
                    "-p",
                    "blk=512",
                    "-p",
                    f"serial={serial}",
                    "-p",
                    f"guid={lu}",
                    "-p",
                    f"alias={alias}",
                    path,
                ],
                hint=again,
            )
            if parse_created_guid(made.text) != lu:
                raise ServerError(
                    f"COMSTAR: stmfadm create-lu made {made.text.strip()!r}, not LU {lu}",
                    hint=again,
                )
        self._run(f"create host group {name}", [STMFADM, "create-hg", name], hint=again)
        self._run(
            f"add {export.initiator} to {name}",
            [STMFADM, "add-hg-member", "-g", name, export.initiator],
            hint=f"an initiator can be in one host group only; {again}",
        )
        if chap is not None:
            known = self.runner.run([ITADM, "list-initiator", export.initiator], check=False)
            verb = "modify-initiator" if known.returncode == 0 else "create-initiator"
            with self._secret_file(export.host, "chap", chap.secret) as path:
                self._run(
                    f"set CHAP for {export.initiator}",
                    [ITADM, verb, "-u", chap.user, "-S", path, export.initiator],
                    hint=again,
                )
        argv = [ITADM, "create-target", "-n", t, "-a", "chap" if chap else "none"]
        if chap is not None and chap.mutual_user and chap.mutual_secret:
            with self._secret_file(export.host, "mutual", chap.mutual_secret) as path:
                self._run(
                    f"create target {t}", [*argv, "-u", chap.mutual_user, "-S", path], hint=again
                )
        else:
            self._run(f"create target {t}", argv, hint=again)
        self._run(f"create target group {name}", [STMFADM, "create-tg", name], hint=again)
        self._run(f"offline target {t}", [STMFADM, "offline-target", t], hint=again)
        self._run(f"add {t} to {name}", [STMFADM, "add-tg-member", "-g", name, t], hint=again)
        self._run(f"online target {t}", [STMFADM, "online-target", t], hint=again)
        # the same host group through the same target group: the same one initiator
        for n, (lu, _, _, _) in enumerate(disks):
            self._run(
                f"add the view of {lu}",
                [STMFADM, "add-view", "-h", name, "-t", name, "-n", str(self.lun + n), lu],
                hint=again,
            )
