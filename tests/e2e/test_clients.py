"""Real iPXE clients boot the disks zboot provisions, driven only by zboot
commands and a power-on: DHCP -> the per-MAC script zboot wrote -> sanboot
-> the golden image's program counts its boots on the host's own disk.

The boot-sector client is kept for maintenance mode; every other mode, each
engine and firmware boot a real Linux through the boot LAN
(test_linux_clients.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from zboot_cli import Zboot
from zboot_lab import client
from zboot_lab.golden import write_golden
from zboot_lab.layout import Layout
from zboot_lab.remote import ssh_text

pytestmark = pytest.mark.e2e

A, B = "52:54:00:e2:00:01", "52:54:00:e2:00:02"


def golden(zboot: Zboot, tmp_path: Path, firmware: str) -> None:
    image = tmp_path / f"golden-{firmware}.img"
    write_golden(firmware, image)
    zboot("init")
    zboot("image", "import", "gold", str(image))
    zboot("image", "snapshot", "gold")


def boot(lab: Layout, mac: str, firmware: str = "bios") -> client.BootResult:
    return client.boot(lab, mac, firmware, timeout=180)


def test_maintenance_updates_the_image_for_hosts_cloned_afterwards(
    lab: Layout, zboot: Zboot, tmp_path: Path
) -> None:
    golden(zboot, tmp_path, "bios")
    zboot("clone", "gold", "pce2em", "--mac", A)  # from v1
    zboot("clone", "gold", "pce2eo", "--mac", "52:54:00:e2:00:03")
    zboot("mode", "pce2em", "maintenance")
    zboot("mode", "pce2eo", "maintenance", code=4)  # one host per image at a time
    zboot("destroy", "pce2em", "--yes", code=4)  # not while it holds the image
    assert boot(lab, A).counter == 1  # the image itself counted this boot
    left = zboot("mode", "pce2em", "normal", "-m", "counted once")["data"]
    assert left["image_version"] == "v2"
    zboot("clone", "gold", "pce2en", "--mac", B)  # from v2
    assert boot(lab, B).counter == 2  # it sees the change made in maintenance
    assert boot(lab, A).counter == 1  # A's own disk, from v1, does not


C, D, E = "52:54:00:e2:00:11", "52:54:00:e2:00:12", "52:54:00:e2:00:13"


@pytest.mark.full  # CI runs commit and rebase in the lab phase: docs/lab.md
def test_a_hosts_disk_becomes_the_next_version_and_hosts_rebase_onto_it(
    lab: Layout, zboot: Zboot, tmp_path: Path
) -> None:
    """Issue 19's fleet walk without data disks: pc C counts two boots, its
    disk is committed as v2; a host cloned from v2 continues at 3; host D,
    which counted on its own v1 disk, is rebased onto v2 and continues from
    the committed state too, its CHAP secret and script unchanged."""
    golden(zboot, tmp_path, "bios")
    zboot("clone", "gold", "pce2ec", "--mac", C)
    zboot("clone", "gold", "pce2er", "--mac", D, "--chap")
    assert [boot(lab, C).counter, boot(lab, C).counter, boot(lab, D).counter] == [1, 2, 1]
    committed = zboot("commit", "pce2ec", "-m", "counted twice")["data"]
    assert (committed["version"], committed["base"]) == ("v2", "gold@v1")
    zboot("clone", "gold", "pce2en", "--mac", E)  # from v2
    assert boot(lab, E).counter == 3  # the committed disk's count, plus this boot
    script = lab_script(lab, zboot, D)
    moved = zboot("rebase", "pce2er", "--to", "gold")["data"]
    assert moved["moved"] and moved["source"].endswith("/gold@v2")
    assert lab_script(lab, zboot, D) == script  # same target, same CHAP secret
    assert boot(lab, D).counter == 3  # v2's count, not its own 1, goes on
    assert boot(lab, C).counter == 3  # C's disk is its own: the commit left it as it was


def lab_script(lab: Layout, zboot: Zboot, mac: str) -> str:
    """The host's iPXE script as the server has it (CHAP secret included)."""
    config = Path(zboot.env["ZBOOT_CONFIG"]).read_text()
    boot_dir = next(line.split('"')[1] for line in config.splitlines() if line.startswith("dir"))
    return ssh_text(lab, ["cat", f"{boot_dir}/{mac.replace(':', '-')}.ipxe"])
