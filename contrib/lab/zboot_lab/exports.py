"""Exports made by hand, the way an admin would before zboot: a zvol as an
iSCSI target through LIO (rtslib, in one Python process on the server) or tgt
(tgtadm), with one allowed initiator. The lab's self-tests and demo use these;
zboot's own engines come with zboot."""

from __future__ import annotations

from .layout import BOOT_DIR, GUEST_LIO_PORT, Layout
from .remote import ssh

SERVER_PYTHON = "/usr/bin/python3"  # Debian's, which has rtslib-fb

LIO_EXPORT = f"""
import sys
from rtslib_fb import (BlockStorageObject, FabricModule, LUN, MappedLUN,
                       NetworkPortal, NodeACL, RTSRoot, Target, TPG)
name, dev, iqn, initiator = sys.argv[1:5]
so = BlockStorageObject(name, dev=dev)
target = Target(FabricModule("iscsi"), iqn)
tpg = TPG(target, 1)
tpg.set_attribute("authentication", "0")
NetworkPortal(tpg, "0.0.0.0", {GUEST_LIO_PORT})
lun = LUN(tpg, 0, so)
MappedLUN(NodeACL(tpg, initiator), 0, lun)
tpg.enable = True
RTSRoot().save_to_file()
"""

LIO_UNEXPORT = """
import sys
from rtslib_fb import RTSRoot
name, iqn = sys.argv[1:3]
root = RTSRoot()
for target in list(root.targets):
    if target.wwn == iqn:
        target.delete()
for so in list(root.storage_objects):
    if so.name == name:
        so.delete()
root.save_to_file()
"""


def lio_export(layout: Layout, zvol: str, iqn: str, initiator: str) -> None:
    """Export /dev/zvol/<zvol> as LUN 0 of target iqn, for initiator only."""
    name = zvol.replace("/", "-")
    ssh(
        layout,
        [SERVER_PYTHON, "-", name, f"/dev/zvol/{zvol}", iqn, initiator],
        stdin=LIO_EXPORT.encode(),
    )


def lio_unexport(layout: Layout, zvol: str, iqn: str) -> None:
    ssh(layout, [SERVER_PYTHON, "-", zvol.replace("/", "-"), iqn], stdin=LIO_UNEXPORT.encode())


def tgt_export(layout: Layout, tid: int, zvol: str, iqn: str, initiator: str) -> None:
    """Export /dev/zvol/<zvol> as LUN 1 (LUN 0 is tgt's controller) of target tid."""
    base = ["tgtadm", "--lld", "iscsi"]
    ssh(layout, [*base, "--op", "new", "--mode", "target", "--tid", str(tid), "-T", iqn])
    ssh(
        layout,
        [
            *base,
            "--op",
            "new",
            "--mode",
            "logicalunit",
            "--tid",
            str(tid),
            "--lun",
            "1",
            "-b",
            f"/dev/zvol/{zvol}",
        ],
    )
    # Bind by initiator name only: never also "-I ALL", which admits everyone.
    ssh(layout, [*base, "--op", "bind", "--mode", "target", "--tid", str(tid), "-Q", initiator])


def tgt_unexport(layout: Layout, tid: int) -> None:
    ssh(
        layout,
        [
            "tgtadm",
            "--lld",
            "iscsi",
            "--op",
            "delete",
            "--mode",
            "target",
            "--tid",
            str(tid),
            "--force",
        ],
    )


def write_boot_script(layout: Layout, mac: str, script: str) -> None:
    """Atomically publish the per-MAC iPXE script in the server's boot directory."""
    name = mac.lower().replace(":", "-") + ".ipxe"
    ssh(
        layout,
        ["sh", "-c", 'cat > "$1.tmp" && mv "$1.tmp" "$1"', "sh", f"{BOOT_DIR}/{name}"],
        stdin=script.encode(),
    )


def sanboot_script(initiator: str, portal: str, lun: int, iqn: str) -> str:
    """An iPXE script that boots the target's LUN (iPXE wants the LUN in hex)."""
    host, port = portal.rsplit(":", 1)
    return (
        "#!ipxe\n"
        f"set initiator-iqn {initiator}\n"
        f"sanboot iscsi:{host}::{port}:{lun:x}:{iqn} || goto failed\n"
        ":failed\n"
        "echo zboot-lab: sanboot failed\n"
        "exit 1\n"
    )
