"""zboot's LIO agent: runs on the storage server with Debian's python3 and
rtslib-fb, one process per batch. It reads one JSON request on stdin (after
its own source, see lio.py) and prints one JSON answer. Standard library and
rtslib only: it is shipped to the server as text, not installed there."""

import fcntl
import json
import os
import sys
import time
from typing import Any

from rtslib_fb import (  # type: ignore[import-untyped,import-not-found,unused-ignore]
    LUN,
    BlockStorageObject,
    FabricModule,
    MappedLUN,
    NetworkPortal,
    NodeACL,
    RTSLibBrokenLink,
    RTSLibNotInCFS,
    RTSRoot,
    Target,
)
from rtslib_fb import TPG as TargetPortalGroup  # type: ignore[import-untyped,import-not-found,unused-ignore]

TARGETCLI_LOCK = "/var/run/targetcli.lock"  # targetcli-fb takes it for every command


class Lio:
    """zboot's part of LIO, read in one walk per request: every target by
    IQN, zboot's storage objects (names starting with prefix) by name, and
    which targets use each. Kept up to date as this request changes LIO, so
    a batch of N exports costs one walk, not N walks of every target (each
    attribute is a configfs read)."""

    def __init__(self, root: Any, prefix: str, data_suffix: str) -> None:
        self.prefix = prefix
        self.data_suffix = data_suffix  # `zboot-<host><suffix>`: host's data disk's store
        self.targets = {target.wwn: target for target in root.targets}
        self.stores: dict[str, list[Any]] = {}
        for so in root.storage_objects:
            if so.name.startswith(prefix):
                self.stores.setdefault(so.name, []).append(so)
        self.users: dict[str, set[str]] = {}  # store name -> IQNs of the targets using it
        self.luns: dict[str, list[Any]] = {}  # IQN -> its LUNs backed by zboot's stores
        for iqn, target in self.targets.items():
            for tpg in target.tpgs:
                for lun in tpg.luns:
                    so = lun.storage_object
                    if so.name.startswith(prefix):
                        self.users.setdefault(so.name, set()).add(iqn)
                        self.luns.setdefault(iqn, []).append(lun)

    def owned(self) -> dict[str, dict[str, Any]]:
        """zboot's targets by IQN: each has a LUN backed by one of its stores,
        the host's OS disk; a LUN backed by a data store (`zboot-<host>.data`)
        is the host's data disk ("data_device", "" without one)."""
        found = {}
        for iqn, luns in self.luns.items():
            data = ""
            for lun in luns:
                so = lun.storage_object
                if so.name.endswith(self.data_suffix):
                    data = so.udev_path
                    continue
                acls = list(lun.parent_tpg.node_acls)
                found[iqn] = {
                    "host": so.name[len(self.prefix) :],
                    "target": iqn,
                    "device": so.udev_path,
                    "initiator": acls[0].node_wwn if acls else "",
                    "chap": chap_of(acls[0]) if acls else None,
                }
            if iqn in found:  # a target with a data LUN alone is not an export zboot made
                found[iqn]["data_device"] = data
        return found

    def orphans(self) -> dict[str, str]:
        """zboot's storage objects that no LUN uses (a restart restored the
        store but not its target), by name: their devices stay busy."""
        return {
            name: sos[0].udev_path
            for name, sos in self.stores.items()
            if sos and not self.users.get(name)
        }

    def remove_store(self, name: str) -> None:
        """Delete zboot's storage object `name` if no LUN uses it."""
        if name.startswith(self.prefix) and not self.users.get(name):
            for so in self.stores.pop(name, []):
                so.delete()

    def delete(self, iqn: str) -> None:
        """The target and its stores (the data disk's too); the stores its
        name implies even when the target is gone (host `pc01`: target
        `...:pc01`, stores `zboot-pc01` and `zboot-pc01.data`; image `golden`:
        target `...:image.golden`, store `zboot-image_golden`)."""
        target = self.targets.pop(iqn, None)
        if target is not None:
            names = {lun.storage_object.name for lun in self.luns.pop(iqn, [])}
            target.delete()
            for name in names:
                self.users.get(name, set()).discard(iqn)
                self.remove_store(name)
        implied = self.prefix + iqn.rsplit(":", 1)[-1].replace(".", "_")
        self.remove_store(implied)
        self.remove_store(implied + self.data_suffix)

    def add(self, target: Any, luns: list[tuple[Any, Any]]) -> None:
        """A target made by this request, with its (LUN, storage object) pairs."""
        self.targets[target.wwn] = target
        for lun, so in luns:
            self.stores.setdefault(so.name, []).append(so)
            self.users.setdefault(so.name, set()).add(target.wwn)
            self.luns.setdefault(target.wwn, []).append(lun)


def sessions(targets: dict[str, Any], wanted: list[str]) -> dict[str, list[str]]:
    """Who is logged in to the wanted targets (targets: every target by IQN)."""
    found: dict[str, list[str]] = {}
    for iqn in wanted:
        target = targets.get(iqn)
        if target is None:
            continue
        for tpg in target.tpgs:
            for acl in tpg.node_acls:
                if acl.session:  # any session counts, even one winding down
                    found.setdefault(iqn, []).append(acl.node_wwn)
    return found


def chap_of(acl: Any) -> Any:
    """The ACL's CHAP credentials, for zboot to compare (as a digest) with
    the host's secret file; None without CHAP."""
    if not acl.chap_userid:
        return None
    mutual = acl.chap_mutual_userid or None
    return [acl.chap_userid, acl.chap_password, mutual, acl.chap_mutual_password or None]


def wait_for(device: str, seconds: float = 60.0) -> None:
    """udev makes /dev/zvol links a moment after the zvol appears; after a
    batch of many new zvols its queue can take longer than a minute (on a
    slow server), so a missing link first waits for udev's queue to empty."""
    if not os.path.exists(device):
        import subprocess  # only then: every request pays for the agent's imports

        subprocess.run(["udevadm", "settle", "--timeout=300"], check=False)
    deadline = time.monotonic() + seconds
    while not os.path.exists(device):
        if time.monotonic() > deadline:
            raise RuntimeError(f"{device} did not appear")
        time.sleep(0.1)


def create(lio: Lio, export: dict[str, Any], lun_number: int, portal: list[Any]) -> None:
    """The host's target: its OS disk at lun_number and, when the export has
    one, its data disk at the LUN after it, both mapped for its one initiator."""
    data_device = export.get("data_device") or ""
    lio.delete(export["target"])  # idempotent: make it afresh
    for name in (export["storage"], export["storage"] + lio.data_suffix):
        for so in lio.stores.pop(name, []):
            so.delete()
    wait_for(export["device"])
    if data_device:
        wait_for(data_device)
    disks = [BlockStorageObject(export["storage"], dev=export["device"], wwn=export["serial"])]
    if data_device:
        disks.append(
            BlockStorageObject(export["data_storage"], dev=data_device, wwn=export["data_serial"])
        )
    target = Target(FabricModule("iscsi"), export["target"])
    tpg = TargetPortalGroup(target, 1)
    chap = export.get("chap")
    tpg.set_attribute("authentication", "1" if chap else "0")
    tpg.set_attribute("generate_node_acls", "0")  # only listed initiators
    NetworkPortal(tpg, portal[0], int(portal[1]))
    luns = [(LUN(tpg, lun_number + n, so), so) for n, so in enumerate(disks)]
    acl = NodeACL(tpg, export["initiator"])
    if chap:
        acl.chap_userid = chap["user"]
        acl.chap_password = chap["secret"]
        if chap.get("mutual_secret"):
            acl.chap_mutual_userid = chap["mutual_user"]
            acl.chap_mutual_password = chap["mutual_secret"]
    for n, (lun, _) in enumerate(luns):
        MappedLUN(acl, lun_number + n, lun)
    tpg.enable = True
    lio.add(target, luns)


def read_once(root: Any, request: dict[str, Any]) -> Any:
    lio = Lio(root, request["prefix"], request["data_suffix"])
    found = lio.owned()  # with their sessions: one process for both
    return {
        "exports": found,
        "sessions": sessions(lio.targets, list(found)),
        "orphans": lio.orphans(),
    }


def read_walk(root: Any, request: dict[str, Any], tries: int = 5) -> Any:
    """A read takes no lock: a zboot that holds it (or targetcli) may remove a
    target while this walks configfs. Walk again when an entry vanished (a
    missing file, an object gone, a LUN whose store went first)."""
    for attempt in range(tries):
        try:
            return read_once(root, request)
        except (FileNotFoundError, RTSLibNotInCFS, RTSLibBrokenLink):
            if attempt == tries - 1:
                raise
            time.sleep(0.2 * (attempt + 1))
    return None


def main() -> None:
    request = json.loads(REQUEST)  # type: ignore[name-defined]  # noqa: F821
    if request["op"] == "apply":
        # targetcli's own lock, so a targetcli run by hand waits for this batch
        held = open(TARGETCLI_LOCK, "w+")  # noqa: SIM115  # held until the process ends
        fcntl.flock(held, fcntl.LOCK_EX)
    root = RTSRoot()
    if request["op"] == "observe":
        json.dump(read_walk(root, request), sys.stdout)
        return
    # read once, under the lock when changing
    lio = Lio(root, request["prefix"], request["data_suffix"])
    if request["op"] == "apply":
        for iqn in request["delete"]:
            lio.delete(iqn)
        for export in request["create"]:
            create(lio, export, request["lun"], request["portal"])
        for name in request.get("stores", []):
            lio.remove_store(name)
        if request.get("save", True):
            root.save_to_file()
        answer = {"created": [e["target"] for e in request["create"]], "deleted": request["delete"]}
    else:
        raise SystemExit(f"unknown request {request['op']!r}")
    json.dump(answer, sys.stdout)


main()
