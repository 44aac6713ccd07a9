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
    RTSRoot,
    Target,
)
from rtslib_fb import TPG as TargetPortalGroup  # type: ignore[import-untyped,import-not-found,unused-ignore]

TARGETCLI_LOCK = "/var/run/targetcli.lock"  # targetcli-fb takes it for every command


def owned(root: Any, prefix: str) -> dict[str, Any]:
    """zboot's targets by IQN: each has a LUN backed by a storage object
    whose name starts with prefix."""
    found = {}
    for so in root.storage_objects:
        if not so.name.startswith(prefix):
            continue
        for lun in so.attached_luns:
            target = lun.parent_tpg.parent_target
            acls = list(lun.parent_tpg.node_acls)
            found[target.wwn] = {
                "host": so.name[len(prefix) :],
                "target": target.wwn,
                "device": so.udev_path,
                "initiator": acls[0].node_wwn if acls else "",
                "chap": chap_of(acls[0]) if acls else None,
            }
    return found


def chap_of(acl: Any) -> Any:
    """The ACL's CHAP credentials, for zboot to compare (as a digest) with
    the host's secret file; None without CHAP."""
    if not acl.chap_userid:
        return None
    mutual = acl.chap_mutual_userid or None
    return [acl.chap_userid, acl.chap_password, mutual, acl.chap_mutual_password or None]


def orphans(root: Any, prefix: str) -> dict[str, str]:
    """zboot's storage objects that no LUN uses (a restart restored the
    store but not its target), by name: their devices stay busy."""
    return {
        so.name: so.udev_path
        for so in root.storage_objects
        if so.name.startswith(prefix) and not list(so.attached_luns)
    }


def remove_store(root: Any, name: str, prefix: str) -> None:
    """Delete zboot's storage object `name` if no LUN uses it."""
    if name.startswith(prefix) and name in orphans(root, prefix):
        for so in list(root.storage_objects):
            if so.name == name:
                so.delete()


def delete(root: Any, iqn: str, prefix: str) -> None:
    """The target and its stores; the store its name implies even when the
    target is gone (host `pc01`: target `...:pc01`, store `zboot-pc01`;
    image `golden`: target `...:image.golden`, store `zboot-image_golden`)."""
    for target in list(root.targets):
        if target.wwn != iqn:
            continue
        stores = [lun.storage_object for tpg in target.tpgs for lun in tpg.luns]
        target.delete()
        for so in stores:
            if so.name.startswith(prefix):
                so.delete()
    remove_store(root, prefix + iqn.rsplit(":", 1)[-1].replace(".", "_"), prefix)


def wait_for(device: str, seconds: float = 60.0) -> None:
    """udev makes /dev/zvol links a moment after the zvol appears."""
    deadline = time.monotonic() + seconds
    while not os.path.exists(device):
        if time.monotonic() > deadline:
            raise RuntimeError(f"{device} did not appear")
        time.sleep(0.1)


def create(
    root: Any, export: dict[str, Any], lun_number: int, portal: list[Any], prefix: str
) -> None:
    delete(root, export["target"], prefix)  # idempotent: make it afresh
    for so in list(root.storage_objects):
        if so.name == export["storage"]:
            so.delete()
    wait_for(export["device"])
    so = BlockStorageObject(export["storage"], dev=export["device"], wwn=export["serial"])
    target = Target(FabricModule("iscsi"), export["target"])
    tpg = TargetPortalGroup(target, 1)
    chap = export.get("chap")
    tpg.set_attribute("authentication", "1" if chap else "0")
    tpg.set_attribute("generate_node_acls", "0")  # only listed initiators
    NetworkPortal(tpg, portal[0], int(portal[1]))
    lun = LUN(tpg, lun_number, so)
    acl = NodeACL(tpg, export["initiator"])
    if chap:
        acl.chap_userid = chap["user"]
        acl.chap_password = chap["secret"]
        if chap.get("mutual_secret"):
            acl.chap_mutual_userid = chap["mutual_user"]
            acl.chap_mutual_password = chap["mutual_secret"]
    MappedLUN(acl, lun_number, lun)
    tpg.enable = True


def sessions(root: Any, wanted: list[str]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for target in root.targets:
        if target.wwn not in wanted:
            continue
        for tpg in target.tpgs:
            for acl in tpg.node_acls:
                if acl.session:  # any session counts, even one winding down
                    found.setdefault(target.wwn, []).append(acl.node_wwn)
    return found


def main() -> None:
    request = json.loads(REQUEST)  # type: ignore[name-defined]  # noqa: F821
    root = RTSRoot()
    prefix = request["prefix"]
    if request["op"] == "observe":  # with their sessions: one process for both
        found = owned(root, prefix)
        answer: Any = {
            "exports": found,
            "sessions": sessions(root, list(found)),
            "orphans": orphans(root, prefix),
        }
    elif request["op"] == "sessions":
        answer = sessions(root, request["targets"])
    elif request["op"] == "apply":
        # targetcli's own lock, so a targetcli run by hand waits for this batch
        held = open(TARGETCLI_LOCK, "w+")  # noqa: SIM115  # held until the process ends
        fcntl.flock(held, fcntl.LOCK_EX)
        for iqn in request["delete"]:
            delete(root, iqn, prefix)
        for export in request["create"]:
            create(root, export, request["lun"], request["portal"], prefix)
        for name in request.get("stores", []):
            remove_store(root, name, prefix)
        if request.get("save", True):
            root.save_to_file()
        answer = {"created": [e["target"] for e in request["create"]], "deleted": request["delete"]}
    else:
        raise SystemExit(f"unknown request {request['op']!r}")
    json.dump(answer, sys.stdout)


main()
