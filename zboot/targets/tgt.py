"""tgt, the Linux userspace target: `tgtadm` for live changes (a few ms a
call, all over the one connection), and one conf.d file per host so
`tgt-admin --execute` brings the exports back after a restart.

CHAP: tgtadm takes an account's secret only on its command line, where any
user of the server can read it (`ps`). zboot never runs it so: the accounts
are made by a small agent (tgt_agent.py) shipped on stdin to the server's
python3, which speaks tgtadm's protocol to tgtd's management socket itself.
The account names are the host's initiator IQN (incoming) and target IQN
(outgoing, for mutual CHAP), unique per host since tgt's accounts are global.
Deleting an account needs no secret, so that is plain `tgtadm`.

The conf.d file (mode 0600) carries `incominguser`/`outgoinguser` lines so
that tgt's boot-time `tgt-admin --execute` restores the accounts. That tool
is tgt's, not zboot's, and it does put the secrets on tgtadm's command line
(it runs `tgtadm ... --mode account --op new --user=U --password=P` through
the shell, tgt 1.0.85 scripts/tgt-admin): briefly visible at service start."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ..chap import Chap
from ..errors import InvalidInput, ServerError
from ..remote.base import Runner, wait_for_path
from ..remote.plan import PlanRunner
from .agent import agent_source, run_agent
from .base import Export

TGTADM = ["tgtadm", "--lld", "iscsi"]
LUN = 1  # the OS disk's LUN: LUN 0 is tgt's own controller; the data disk's is LUN + 1
CONF_DIR = "/etc/tgt/conf.d"
HOST_DEVICE = re.compile(r"^/dev/zvol/.+/hosts/(?P<host>[^/]+)$")
IMAGE_DEVICE = re.compile(r"^/dev/zvol/.+/images/(?P<image>[^/]+)$")  # maintenance


def export_name(device: str) -> str | None:
    """The Export.host zboot gave the disk behind device (None: not zboot's)."""
    if m := HOST_DEVICE.match(device):
        return m["host"]
    if m := IMAGE_DEVICE.match(device):
        return f"image_{m['image']}"
    return None


AGENT = agent_source("tgt_agent.py")
# Names and secrets go into the conf file as `incominguser U P`: tgt-admin
# splits them at spaces, cuts at `#` and tgtd ends a name at a comma.
CONF_SAFE = re.compile(r"[^\s#,\\\"'<>]+")  # whole values: fullmatch


def socket_path(control_port: int) -> str:
    """tgtd's management socket (usr/tgtadm.h, usr/mgmt.c in tgt 1.0.85)."""
    return f"/var/run/tgtd/socket.{control_port}"


@dataclass
class TgtTarget:
    """One target as `tgtadm --op show --mode target` describes it."""

    tid: int
    name: str
    sessions: list[str] = field(default_factory=list)  # initiator IQNs
    luns: dict[int, str] = field(default_factory=dict)  # LUN -> backing store path
    acl: list[str] = field(default_factory=list)
    accounts: list[str] = field(default_factory=list)  # CHAP users bound, both directions


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
        elif section == "I_T nexus information" and (m := re.match(r"^Initiator: (\S+)", stripped)):
            t.sessions.append(m[1])
        elif section == "LUN information" and (m := re.match(r"^LUN: (\d+)$", stripped)):
            lun = int(m[1])
        elif section == "LUN information" and stripped.startswith("Backing store path: "):
            t.luns[lun] = stripped.removeprefix("Backing store path: ")
        elif section == "ACL information" and stripped:
            t.acl.append(stripped)
        elif section == "Account information" and stripped:
            t.accounts.append(stripped.removesuffix(" (outgoing)"))
    return targets


def parse_accounts(text: str) -> list[str]:
    """The account names `tgtadm --op show --mode account` lists (no secrets)."""
    return [line.strip() for line in text.splitlines() if line.startswith(" ") and line.strip()]


def check_chap(chap: Chap) -> None:
    for value in (chap.user, chap.secret, chap.mutual_user, chap.mutual_secret):
        if value is not None and not CONF_SAFE.fullmatch(value):
            raise InvalidInput(
                "a CHAP name or secret for tgt has a space, a line break or one of # , \\ \" ' < >",
                hint="zboot's own secrets are letters and digits",
            )


def chap_accounts(tid: int, export: Export) -> list[dict[str, Any]]:
    """The agent's account requests for one export (none without CHAP)."""
    chap = export.chap
    if chap is None:
        return []
    found: list[dict[str, Any]] = [
        {"tid": tid, "user": chap.user, "secret": chap.secret, "outgoing": False}
    ]
    if chap.mutual_user and chap.mutual_secret:
        found.append(
            {"tid": tid, "user": chap.mutual_user, "secret": chap.mutual_secret, "outgoing": True}
        )
    return found


def conf_text(export: Export) -> str:
    """The host's conf.d file. `initiator-address 0.0.0.0`: without any
    address, tgt-admin binds ALL addresses, and tgt admits an initiator whose
    address *or* name matches, so the name alone would let everybody in.
    With CHAP it holds the secrets: it is written 0600."""
    chap = export.chap
    users = "" if chap is None else f"    incominguser {chap.user} {chap.secret}\n"
    if chap is not None and chap.mutual_user and chap.mutual_secret:
        users += f"    outgoinguser {chap.mutual_user} {chap.mutual_secret}\n"
    stores = [(export.device, LUN, export.serial)]
    if export.data_device:
        stores.append((export.data_device, LUN + 1, export.data_serial))
    backing = "".join(
        f"    <backing-store {device}>\n"
        f"        lun {lun}\n"
        f"        scsi_sn {serial}\n"
        f"    </backing-store>\n"
        for device, lun, serial in stores
    )
    return (
        f"# Written by zboot for host {export.host}; `zboot sync` re-creates it.\n"
        f"<target {export.target}>\n"
        f"{backing}"
        f"    initiator-name {export.initiator}\n"
        f"    initiator-address 0.0.0.0\n"
        f"{users}"
        f"</target>\n"
    )


def conf_path(host: str, conf_dir: str = CONF_DIR) -> str:
    return f"{conf_dir}/zboot-{host}.conf"


class TgtEngine:
    name = "tgt"
    lun = LUN  # LUN 0 is tgt's own controller

    def __init__(self, runner: Runner, control_port: int = 0, conf_dir: str = CONF_DIR) -> None:
        self.runner = runner
        self.control_port = control_port
        self.conf_dir = conf_dir
        # tgtd's management channel: port 0 is the default one (`tgtadm -C N`).
        self.tgtadm = (
            TGTADM if control_port == 0 else [TGTADM[0], "-C", str(control_port), *TGTADM[1:]]
        )
        # In a dry run, what this engine's earlier apply() calls planned to
        # delete and make: a later one in the same run (rollback's export
        # down, then up) must find the targets as a real run would, where
        # tgtadm shows them so. A real run reads tgtadm alone: it is the truth,
        # also when something else changed tgt meanwhile.
        self._planning = isinstance(runner, PlanRunner) and not runner.execute
        self._deleted: set[str] = set()
        self._made: dict[str, TgtTarget] = {}

    def _plan_deleted(self, name: str) -> None:
        if self._planning:
            self._deleted.add(name)
            self._made.pop(name, None)

    def _plan_made(self, tid: int, export: Export) -> None:
        if not self._planning:
            return
        self._deleted.discard(export.target)
        self._made[export.target] = TgtTarget(
            tid,
            export.target,
            luns=self._luns(export),
            acl=[export.initiator],
            accounts=[a["user"] for a in chap_accounts(tid, export)],
        )

    def _luns(self, export: Export) -> dict[int, str]:
        """The export's disks by LUN: its OS disk's, then its data disk's."""
        luns = {self.lun: export.device}
        if export.data_device:
            luns[self.lun + 1] = export.data_device
        return luns

    def _tgtadm(self, *args: str) -> None:
        self.runner.run([*self.tgtadm, *args])

    def _show(self, mode: str) -> str:
        shown = self.runner.run(
            [*self.tgtadm, "--op", "show", "--mode", mode], check=False, read_only=True
        )
        if shown.returncode != 0:
            raise ServerError(
                "tgtadm cannot reach tgtd on the server: "
                + shown.stderr.decode(errors="replace").strip(),
                hint="is tgtd running (systemctl status tgt)?",
            )
        return shown.text

    def _targets(self) -> list[TgtTarget]:
        found = {t.name: t for t in parse_show(self._show("target")) if t.name not in self._deleted}
        for name, made in self._made.items():
            found.setdefault(name, made)
        return list(found.values())

    def exports(self) -> dict[str, Export]:
        found = {}
        for t in self._targets():
            device = t.luns.get(self.lun, "")
            if host := export_name(device):
                found[t.name] = Export(
                    host=host,
                    target=t.name,
                    device=device,
                    initiator=t.acl[0] if t.acl else "",
                    data_device=t.luns.get(self.lun + 1, ""),
                )
        return found

    def sessions(self, targets: Iterable[str]) -> dict[str, list[str]]:
        wanted = set(targets)
        return {t.name: t.sessions for t in self._targets() if t.name in wanted and t.sessions}

    def apply(
        self, create: Iterable[Export] = (), delete: Iterable[str] = (), persist: bool = True
    ) -> None:
        create, delete = list(create), list(delete)
        if not create and not delete:
            return
        for export in create:
            if export.chap is not None:
                check_chap(export.chap)
        current = {t.name: t for t in self._targets()}
        replaced = {e.target for e in create}
        gone: list[TgtTarget] = []
        for name in [*delete, *replaced]:
            old = current.pop(name, None)
            if old is None:
                continue
            gone.append(old)
            # zboot checked for sessions first (unless the admin said --force)
            self._tgtadm("--op", "delete", "--mode", "target", "--tid", str(old.tid), "--force")
            self._plan_deleted(name)
            if name not in replaced and (host := export_name(old.luns.get(self.lun, ""))):
                self.runner.run(["rm", "-f", conf_path(host, self.conf_dir)])
        if gone:
            self._delete_accounts(gone, kept=list(current.values()))
        taken = {t.tid for t in current.values()}
        made: list[tuple[int, Export]] = []
        for export in create:
            tid = next(n for n in range(1, 1 << 20) if n not in taken)
            taken.add(tid)
            self._create(tid, export)
            made.append((tid, export))
            self._plan_made(tid, export)
        # Accounts before the initiator is let in: a target without any incoming
        # account admits its initiator without CHAP.
        accounts = [a for tid, export in made for a in chap_accounts(tid, export)]
        if accounts:
            self._add_accounts(accounts)
        for tid, export in made:
            self._admit(tid, export)

    def _delete_accounts(self, gone: list[TgtTarget], kept: list[TgtTarget]) -> None:
        """Delete the CHAP accounts of deleted targets: those bound to them and
        those named as zboot names them (the initiator's and the target's IQN,
        also left over by a failed batch), unless a remaining target uses them."""
        names = {n for t in gone for n in (*t.accounts, t.name, *t.acl)}
        in_use = {a for t in kept for a in t.accounts}
        existing = set(parse_accounts(self._show("account")))
        for user in sorted((names & existing) - in_use):
            self._tgtadm("--op", "delete", "--mode", "account", "--user", user)

    def _add_accounts(self, accounts: list[dict[str, Any]]) -> None:
        """All the batch's accounts in one agent process: made afresh, bound."""
        run_agent(
            self.runner,
            "tgt",
            AGENT,
            {"socket": socket_path(self.control_port), "add": accounts},
            read_only=False,
            what="tgt (CHAP accounts)",
            hint="is tgtd running, and are the commands run as root on the server?",
        )

    def _create(self, tid: int, export: Export) -> None:
        """The target and its LUNs (the OS disk, then any data disk), nobody
        admitted yet. Deleting the target later takes every LUN with it."""
        t = str(tid)
        luns = self._luns(export)
        serials = {self.lun: export.serial, self.lun + 1: export.data_serial}
        for device in luns.values():
            wait_for_path(self.runner, device, seconds=60)
        self._tgtadm("--op", "new", "--mode", "target", "--tid", t, "-T", export.target)
        for lun, device in luns.items():
            self._tgtadm(
                "--op", "new", "--mode", "logicalunit", "--tid", t, "--lun", str(lun), "-b", device
            )
            self._tgtadm(
                "--op",
                "update",
                "--mode",
                "logicalunit",
                "--tid",
                t,
                "--lun",
                str(lun),
                "--params",
                f"scsi_sn={serials[lun]}",
            )

    def _admit(self, tid: int, export: Export) -> None:
        """Let the host's initiator in, and persist the export."""
        # By name only: never also "-I ALL", which would admit everyone.
        self._tgtadm("--op", "bind", "--mode", "target", "--tid", str(tid), "-Q", export.initiator)
        self.runner.run(["mkdir", "-p", self.conf_dir])
        self.runner.write_file(
            conf_path(export.host, self.conf_dir), conf_text(export).encode(), mode=0o600
        )
