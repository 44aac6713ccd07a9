"""The floor's one process in the storage VM (see floor.py): shipped as text
over SSH and run by Debian's /usr/bin/python3 with rtslib-fb, standard
library otherwise. It reads REQUEST (JSON, set by the bootstrap in floor.py):
phases of steps, each phase timed with time.monotonic() when it says so,
and prints {"seconds": [[label, seconds, {kind: seconds}], ...]} as JSON:
each timed phase's time, and how much of it each kind of step took.

rtslib is imported before any timing starts: Python's start-up and its
imports are costs zboot pays on every command and has to hide; the floor
does not count them.

Steps (dicts, "do" says which):
- reads: argvs run side by side (zboot's `zfs list` and `zfs get` of its root)
- run: one command (argv, optional stdin), e.g. `zfs clone`, `zfs program`
- lzc: a big batch's clones or renames through libzfs_core, by zboot's ZFS
  agent's own code (zboot/zfs/lzc_agent.py, shipped in the request)
- lio-walk: read LIO as zboot's agent does (every target, its LUNs'
  storage objects, zboot's stores by name) and who is logged in to `targets`
- lio-create / lio-delete: exports made or taken down with the rtslib calls
  zboot's agent makes (zboot/targets/lio_agent.py), under targetcli's lock
- lio-save: LIO's whole configuration saved once (to the floor's own file)
- mkdir / write / remove: the boot directory and its files, and the secret
  files a destroy removes
- fill: random bytes written to a device (the floor's golden image)
- lio-clean: the floor's targets and stores, whatever is left of them"""

import contextlib
import fcntl
import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

from rtslib_fb import (  # type: ignore[import-untyped,import-not-found,unused-ignore]
    LUN,
    BlockStorageObject,
    FabricModule,
    MappedLUN,
    NetworkPortal,
    NodeACL,
    RTSRoot,
    Target,
    tcm,
)
from rtslib_fb import TPG as TargetPortalGroup  # type: ignore[import-untyped,import-not-found,unused-ignore]
from rtslib_fb.utils import RTSLibNotInCFS  # type: ignore[import-untyped,import-not-found,unused-ignore]

TARGETCLI_LOCK = "/var/run/targetcli.lock"


class Floor:
    def __init__(self, request: dict[str, Any]) -> None:
        # zboot's ZFS agent (zboot/zfs/lzc_agent.py), loaded before any timing
        # as rtslib is: its libzfs_core import is a start-up cost
        self.lzc_agent: dict[str, Any] = {"__name__": "zboot_floor_lzc"}
        if request.get("lzc_agent"):
            exec(compile(request["lzc_agent"], "zboot-lzc-agent", "exec"), self.lzc_agent)  # noqa: S102
        self.save_file: str = request["save_file"]
        self.store_prefix: str = request["store_prefix"]
        self.portal: tuple[str, int] = (request["portal"][0], int(request["portal"][1]))
        self.root: Any = None
        self.targets: dict[str, Any] = {}  # IQN -> Target, as the last walk saw them
        self.stores: dict[str, list[Any]] = {}  # the floor's storage objects by name

    # --- processes ------------------------------------------------------------
    def run(self, step: dict[str, Any]) -> None:
        stdin = step.get("stdin", "").encode()
        done = subprocess.run(step["argv"], input=stdin, capture_output=True, check=False)
        if done.returncode != 0 and step.get("check", True):
            raise RuntimeError(f"{step['argv']} exited {done.returncode}: {done.stderr!r}")
        if step.get("program"):  # zboot's programs answer each dataset's errno
            answer = json.loads(done.stdout)["return"]
            if not isinstance(answer, dict) or any(answer.values()):
                raise RuntimeError(f"{step['argv'][:5]} answered {answer!r}")

    def reads(self, step: dict[str, Any]) -> None:
        procs = [
            subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            for argv in step["argvs"]
        ]
        for argv, proc in zip(step["argvs"], procs, strict=True):
            _, err = proc.communicate()
            if proc.returncode != 0:
                raise RuntimeError(f"{argv} exited {proc.returncode}: {err!r}")

    def lzc(self, step: dict[str, Any]) -> None:
        """A batch's clones or renames through libzfs_core, as zboot's ZFS
        agent makes them (its own code, run in this process)."""
        failed = self.lzc_agent["run"](step["chains"], step["concurrent"])
        if any(failed):
            raise RuntimeError(f"libzfs_core: {[f for f in failed if f]}")

    # --- LIO --------------------------------------------------------------------
    def lio_walk(self, step: dict[str, Any]) -> None:
        """What zboot's agent reads before it changes LIO (every target, the
        stores of their LUNs), and who is logged in to `targets` (zboot
        refuses to take a disk from a logged-in machine; the floor's have
        none). Under targetcli's lock, as the agent's walk before a change:
        another zboot on the same server may be changing LIO."""
        with targetcli_lock():
            self.root = RTSRoot()
            self.targets = {target.wwn: target for target in self.root.targets}
            self.stores = {}
            if step.get("luns", True):  # `zboot list` asks for sessions alone
                for so in self.root.storage_objects:
                    if so.name.startswith(self.store_prefix):
                        self.stores.setdefault(so.name, []).append(so)
                for target in self.targets.values():
                    with contextlib.suppress(RTSLibNotInCFS):  # gone meanwhile (not locked)
                        for tpg in target.tpgs:
                            for lun in tpg.luns:
                                lun.storage_object.name  # noqa: B018  # as the agent reads it
            for iqn in step.get("targets", []):
                target = self.targets.get(iqn)
                for tpg in target.tpgs if target is not None else []:
                    for acl in tpg.node_acls:
                        acl.session  # noqa: B018  # read, as zboot reads it

    def lio_delete(self, step: dict[str, Any]) -> None:
        with targetcli_lock():
            for iqn in step["targets"]:
                target = self.targets.pop(iqn, None)
                if target is not None:
                    target.delete()
            for name in step["stores"]:
                for so in self.stores.pop(name, []):
                    so.delete()

    def lio_create(self, step: dict[str, Any]) -> None:
        with targetcli_lock():
            # rtslib caches the backstores' numbers once per process; a fresh
            # agent reads them afresh, and so does the floor, under the lock
            # other zboots (and targetcli) take before they add one
            tcm.bs_cache.clear()
            for export in step["exports"]:
                self.create(export)

    def create(self, export: dict[str, Any]) -> None:
        """The calls zboot's agent makes for one host without CHAP or a data disk."""
        wait_for(export["device"])
        so = BlockStorageObject(export["storage"], dev=export["device"], wwn=export["serial"])
        target = Target(FabricModule("iscsi"), export["target"])
        tpg = TargetPortalGroup(target, 1)
        tpg.set_attribute("authentication", "0")
        tpg.set_attribute("generate_node_acls", "0")
        NetworkPortal(tpg, *self.portal)
        lun = LUN(tpg, 0, so)
        acl = NodeACL(tpg, export["initiator"])
        MappedLUN(acl, 0, lun)
        tpg.enable = True
        self.targets[target.wwn] = target
        self.stores.setdefault(so.name, []).append(so)

    def lio_save(self, step: dict[str, Any]) -> None:
        with targetcli_lock():
            self.root.save_to_file(self.save_file)

    def lio_clean(self, step: dict[str, Any]) -> None:
        root = RTSRoot()
        with targetcli_lock():
            for target in list(root.targets):
                if target.wwn.startswith(step["iqn_base"] + ":"):
                    target.delete()
            for so in list(root.storage_objects):
                if so.name.startswith(self.store_prefix):
                    so.delete()

    # --- files ------------------------------------------------------------------
    def mkdir(self, step: dict[str, Any]) -> None:
        os.makedirs(step["path"], exist_ok=True)

    def write(self, step: dict[str, Any]) -> None:
        """As zboot writes a boot file: a new temporary file, its mode, its
        bytes, renamed over the path."""
        directory, name = os.path.split(step["path"])
        tmp = f"{directory}/.{name}.tmp-{secrets.token_hex(6)}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            os.fchmod(fd, 0o644)
            os.write(fd, step["text"].encode())
        finally:
            os.close(fd)
        os.rename(tmp, step["path"])

    def remove(self, step: dict[str, Any]) -> None:
        for path in step["paths"]:
            with contextlib.suppress(FileNotFoundError):
                os.remove(path)

    def fill(self, step: dict[str, Any]) -> None:
        wait_for(step["device"])
        with open(step["device"], "wb") as disk:
            for _ in range(step["mib"]):
                disk.write(os.urandom(1 << 20))


@contextlib.contextmanager
def targetcli_lock() -> Iterator[None]:
    """targetcli's own lock, which zboot's agent holds while it changes LIO."""
    with open(TARGETCLI_LOCK, "w+") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        yield


def wait_for(device: str, seconds: float = 120.0) -> None:
    """As zboot's agent waits for udev's /dev/zvol link."""
    if not os.path.exists(device):
        subprocess.run(["udevadm", "settle", "--timeout=300"], check=False)
    deadline = time.monotonic() + seconds
    while not os.path.exists(device):
        if time.monotonic() > deadline:
            raise RuntimeError(f"{device} did not appear")
        time.sleep(0.05)


def kind(step: dict[str, Any]) -> str:
    """What a step's time counts as: `zfs <verb>`, `lzc <verb>`, or the step itself."""
    if step["do"] == "lzc":
        return "lzc " + str(step["chains"][0][0]["verb"])
    argv = step.get("argv") or []
    return " ".join(argv[:2]) if argv[:1] == ["zfs"] else step["do"]


def main(request: dict[str, Any]) -> None:
    floor = Floor(request)
    seconds = []
    for phase in request["phases"]:
        spent: dict[str, float] = {}
        start = time.monotonic()
        for step in phase["steps"]:
            began = time.monotonic()
            getattr(floor, step["do"].replace("-", "_"))(step)
            spent[kind(step)] = spent.get(kind(step), 0.0) + time.monotonic() - began
        if phase["timed"]:
            seconds.append([phase["label"], time.monotonic() - start, spent])
    json.dump({"seconds": seconds}, sys.stdout)


if __name__ == "zboot_floor":
    main(json.loads(REQUEST))  # type: ignore[name-defined]  # noqa: F821
