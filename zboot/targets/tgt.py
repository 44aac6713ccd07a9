"""tgt, the Linux userspace target: `tgtadm` for live changes (a few ms a
call, all over the one connection), and one conf.d file per host so
`tgt-admin --execute` brings the exports back after a restart."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from ..errors import InvalidInput, ServerError
from ..remote.base import Runner, wait_for_path
from .base import Export

TGTADM = ["tgtadm", "--lld", "iscsi"]
CONF_DIR = "/etc/tgt/conf.d"
HOST_DEVICE = re.compile(r"^/dev/zvol/.+/hosts/(?P<host>[^/]+)$")


@dataclass
class TgtTarget:
    """One target as `tgtadm --op show --mode target` describes it."""

    tid: int
    name: str
    sessions: list[str] = field(default_factory=list)  # initiator IQNs
    luns: dict[int, str] = field(default_factory=dict)  # LUN -> backing store path
    acl: list[str] = field(default_factory=list)


def parse_show(text: str) -> list[TgtTarget]:
    targets: list[TgtTarget] = []
    section, lun = "", -1
    for line in text.splitlines():
        if m := re.match(r"^Target (\d+): (\S+)$", line):
            targets.append(TgtTarget(int(m[1]), m[2]))
            section = ""
            continue
        if not targets:
            continue
        t, stripped = targets[-1], line.strip()
        if line.startswith("    ") and not line.startswith("     ") and stripped.endswith(":"):
            section = stripped[:-1]
        elif section == "I_T nexus information" and (
                m := re.match(r"^Initiator: (\S+)", stripped)):
            t.sessions.append(m[1])
        elif section == "LUN information" and (m := re.match(r"^LUN: (\d+)$", stripped)):
            lun = int(m[1])
        elif section == "LUN information" and stripped.startswith("Backing store path: "):
            t.luns[lun] = stripped.removeprefix("Backing store path: ")
        elif section == "ACL information" and stripped:
            t.acl.append(stripped)
    return targets


def conf_text(export: Export) -> str:
    """The host's conf.d file. `initiator-address 0.0.0.0`: without any
    address, tgt-admin binds ALL addresses, and tgt admits an initiator whose
    address *or* name matches, so the name alone would let everybody in."""
    return (f"# Written by zboot for host {export.host}; `zboot sync` re-creates it.\n"
            f"<target {export.target}>\n"
            f"    <backing-store {export.device}>\n"
            f"        lun 1\n"
            f"        scsi_sn {export.serial}\n"
            f"    </backing-store>\n"
            f"    initiator-name {export.initiator}\n"
            f"    initiator-address 0.0.0.0\n"
            f"</target>\n")


def conf_path(host: str) -> str:
    return f"{CONF_DIR}/zboot-{host}.conf"


class TgtEngine:
    name = "tgt"
    lun = 1  # LUN 0 is tgt's own controller

    def __init__(self, runner: Runner) -> None:
        self.runner = runner

    def _tgtadm(self, *args: str) -> None:
        self.runner.run([*TGTADM, *args])

    def _targets(self) -> list[TgtTarget]:
        shown = self.runner.run([*TGTADM, "--op", "show", "--mode", "target"], check=False)
        if shown.returncode != 0:
            raise ServerError("tgtadm cannot reach tgtd on the server: "
                              + shown.stderr.decode(errors="replace").strip(),
                              hint="is tgtd running (systemctl status tgt)?")
        return parse_show(shown.text)

    def exports(self) -> dict[str, Export]:
        found = {}
        for t in self._targets():
            device = t.luns.get(self.lun, "")
            if m := HOST_DEVICE.match(device):
                found[t.name] = Export(host=m["host"], target=t.name, device=device,
                                       initiator=t.acl[0] if t.acl else "")
        return found

    def sessions(self, targets: Iterable[str]) -> dict[str, list[str]]:
        wanted = set(targets)
        return {t.name: t.sessions for t in self._targets() if t.name in wanted and t.sessions}

    def apply(self, create: Iterable[Export] = (), delete: Iterable[str] = ()) -> None:
        create, delete = list(create), list(delete)
        if not create and not delete:
            return
        if any(e.chap for e in create):
            raise InvalidInput("CHAP with tgt is not supported: tgtadm takes secrets only "
                               "on its command line, where any user of the server can see "
                               "them", hint="use LIO for CHAP, or clone without --chap")
        current = {t.name: t for t in self._targets()}
        replaced = {e.target for e in create}
        for name in [*delete, *replaced]:
            old = current.pop(name, None)
            if old is None:
                continue
            # zboot checked for sessions first (unless the admin said --force)
            self._tgtadm("--op", "delete", "--mode", "target", "--tid", str(old.tid), "--force")
            if name not in replaced and (m := HOST_DEVICE.match(old.luns.get(self.lun, ""))):
                self.runner.run(["rm", "-f", conf_path(m["host"])])
        taken = {t.tid for t in current.values()}
        for export in create:
            tid = next(n for n in range(1, 1 << 20) if n not in taken)
            taken.add(tid)
            self._create(tid, export)

    def _create(self, tid: int, export: Export) -> None:
        t = str(tid)
        wait_for_path(self.runner, export.device, seconds=60)
        self._tgtadm("--op", "new", "--mode", "target", "--tid", t, "-T", export.target)
        self._tgtadm("--op", "new", "--mode", "logicalunit", "--tid", t, "--lun",
                     str(self.lun), "-b", export.device)
        self._tgtadm("--op", "update", "--mode", "logicalunit", "--tid", t, "--lun",
                     str(self.lun), "--params", f"scsi_sn={export.serial}")
        # By name only: never also "-I ALL", which would admit everyone.
        self._tgtadm("--op", "bind", "--mode", "target", "--tid", t, "-Q", export.initiator)
        self.runner.run(["mkdir", "-p", CONF_DIR])
        self.runner.write_file(conf_path(export.host), conf_text(export).encode(), mode=0o600)
