"""LIO, the Linux kernel target, driven through rtslib-fb on the server: one
Python process per batch, its program and request sent on stdin (secrets never
in argv), one configuration save per batch. Who is logged in is read from
configfs by a shell, without rtslib."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..chap import Chap, digest
from ..remote.base import Runner
from .agent import SERVER_PYTHON, agent_source, bootstrap, python_argv, run_agent
from .base import DATA_SUFFIX, Export, storage_name

__all__ = ["AGENT", "BOOTSTRAP", "SERVER_PYTHON", "LioEngine", "has_rtslib"]

AGENT = agent_source("lio_agent.py")  # needs the server's rtslib-fb
BOOTSTRAP = bootstrap("lio")
PREFIX = storage_name("")
CONFIGFS = "/sys/kernel/config/target"

# Who is logged in to the targets given after the configfs root: LIO says
# it in each ACL's `info` file, whose first line starts "No active" when no
# session is up (what rtslib's NodeACL.session reads). One shell reading a
# few small files, not Python with rtslib: `zboot list` and the in-use
# check before a rollback or destroy ask this. Prints each logged-in ACL's
# `info` path; an ACL that goes while this reads is skipped.
SESSIONS = r"""root=$1; shift
for t do
  for f in "$root/iscsi/$t"/tpgt_*/acls/*/info; do
    [ -f "$f" ] || continue
    { IFS= read -r first < "$f"; } 2>/dev/null || continue
    case $first in "No active"*) ;; *) printf '%s\n' "$f" ;; esac
  done
done
"""


def sessions_argv(targets: Iterable[str], root: str = CONFIGFS) -> list[str]:
    return ["sh", "-c", SESSIONS, "sh", root, *targets]


def parse_sessions(text: str, wanted: Iterable[str]) -> dict[str, list[str]]:
    """`.../iscsi/<target>/tpgt_N/acls/<initiator>/info` lines -> the
    initiators logged in to each wanted target."""
    found: dict[str, list[str]] = {}
    wanted = set(wanted)
    for line in text.splitlines():
        parts = line.split("/")
        if len(parts) >= 6 and parts[-1] == "info" and parts[-3] == "acls":
            target, initiator = parts[-5], parts[-2]
            if target in wanted and initiator not in found.get(target, []):
                found.setdefault(target, []).append(initiator)
    return found


def has_rtslib(runner: Runner) -> bool:
    """Can the server's Python drive LIO (rtslib-fb installed)?"""
    found = runner.run(python_argv("import rtslib_fb"), check=False, read_only=True)
    return found.returncode == 0


class LioEngine:
    name = "lio"
    lun = 0

    # Targets listen on every address of the server, as iSCSI targets do; the
    # ACL, not the address, decides who gets in.
    def __init__(self, runner: Runner, listen: tuple[str, int] = ("0.0.0.0", 3260)) -> None:  # noqa: S104
        self.runner = runner
        self.listen = listen
        # what the last exports() saw: its targets and their sessions
        self._observed: tuple[set[str], dict[str, list[str]]] | None = None
        self._chaps: dict[str, str] = {}  # the last exports(): CHAP digests by IQN
        self._orphans: dict[str, str] = {}  # and zboot stores no LUN uses: name -> device

    def _call(self, request: dict[str, Any], read_only: bool) -> Any:
        return run_agent(
            self.runner,
            "lio",
            AGENT,
            request | {"prefix": PREFIX, "data_suffix": DATA_SUFFIX},
            read_only=read_only,
            what=f"LIO ({request['op']})",
            hint="is rtslib-fb installed (python3-rtslib-fb) and target_core_mod loaded?",
        )

    def exports(self) -> dict[str, Export]:
        found = self._call({"op": "observe"}, read_only=True) or {}
        owned = found.get("exports", {})
        # the same rtslib process read who is logged in to them: a sessions()
        # call for those targets right after needs no second process
        self._observed = (set(owned), found.get("sessions", {}))
        self._chaps = {
            iqn: digest(Chap(*e["chap"]) if e.get("chap") else None) for iqn, e in owned.items()
        }
        self._orphans = found.get("orphans", {})
        return {
            iqn: Export(
                host=e["host"],
                target=e["target"],
                device=e["device"],
                initiator=e["initiator"],
                data_device=e.get("data_device", ""),
            )
            for iqn, e in owned.items()
        }

    def apply(
        self, create: Iterable[Export] = (), delete: Iterable[str] = (), persist: bool = True
    ) -> None:
        wanted = [
            {
                "host": e.host,
                "target": e.target,
                "device": e.device,
                "initiator": e.initiator,
                "serial": e.serial,
                "storage": e.storage,
                # the data disk, at the LUN after the OS disk's ("": none)
                "data_device": e.data_device,
                "data_storage": e.data_storage,
                "data_serial": e.data_serial,
                "chap": None
                if e.chap is None
                else {
                    "user": e.chap.user,
                    "secret": e.chap.secret,
                    "mutual_user": e.chap.mutual_user,
                    "mutual_secret": e.chap.mutual_secret,
                },
            }
            for e in create
        ]
        gone = list(delete)
        if not wanted and not gone:
            return
        self._observed = None
        self._call(
            {
                "op": "apply",
                "create": wanted,
                "delete": gone,
                "lun": self.lun,
                "portal": list(self.listen),
                "save": persist,
            },
            read_only=False,
        )

    def chap_digests(self) -> dict[str, str]:
        """A digest of the CHAP each target has (chap.digest; "" for none), by
        IQN, as the last exports() read it: doctor compares it with the
        secret files, and no secret is shown."""
        return dict(self._chaps)

    def orphan_stores(self) -> dict[str, str]:
        """zboot's storage objects that no target uses, as the last exports()
        read them (name -> device): a restart can leave one holding a zvol.
        `zboot-<host>.data` is host <host>'s data disk's store."""
        return dict(self._orphans)

    def remove_stores(self, names: Iterable[str]) -> None:
        """Delete those of the named storage objects that no target uses."""
        if gone := list(names):
            self._observed = None
            self._call(
                {"op": "apply", "create": [], "delete": [], "stores": gone, "lun": self.lun},
                read_only=False,
            )

    def sessions(self, targets: Iterable[str]) -> dict[str, list[str]]:
        wanted = list(targets)
        if not wanted:
            return {}
        if self._observed is not None and set(wanted) <= self._observed[0]:
            seen = self._observed[1]
            return {t: seen[t] for t in wanted if t in seen}
        read = self.runner.run(sessions_argv(wanted), read_only=True)
        return parse_sessions(read.stdout.decode(errors="replace"), wanted)
