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
