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


@pytest.mark.full  # CI's time budget: docs/lab.md
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


C, D, E, G = "52:54:00:e2:00:11", "52:54:00:e2:00:12", "52:54:00:e2:00:13", "52:54:00:e2:00:14"
H, J = "52:54:00:e2:00:15", "52:54:00:e2:00:16"


@pytest.mark.full  # CI runs commit, rebase and data disks in the lab phase: docs/lab.md
def test_a_hosts_disk_becomes_the_next_version_and_hosts_rebase_onto_it(
    lab: Layout, zboot: Zboot, tmp_path: Path
) -> None:
    """Issue 19's fleet walk: pc C counts two boots, its disk is committed as
    v2; a host cloned from v2 continues at 3. Four hosts, D (an empty data
    disk, CHAP), G (a data disk cloned from a data image), H (no data disk)
    and J (an empty data disk), counted on their own v1 disks and on their
    data disks (drive 0x81); rebased onto v2 in one batch they go on from the
    committed state, each data disk keeps its own count, D's CHAP secret and
    script are unchanged."""
    golden(zboot, tmp_path, "bios")
    # data disks of 64M: iPXE's BIOS disk geometry for a disk under 8M has no
    # whole cylinder, and the counting program addresses sector 1 by CHS
    zboot("image", "create", "games", "--size", "64M")
    zboot("image", "snapshot", "games")
    zboot("clone", "gold", "pce2ec", "--mac", C)
    zboot("clone", "gold", "pce2er", "--mac", D, "--chap", "--data-disk", "64M")
    zboot("clone", "gold", "pce2eg", "--mac", G, "--data-image", "games")
    zboot("clone", "gold", "pce2eh", "--mac", H)
    zboot("clone", "gold", "pce2ej", "--mac", J, "--data-disk", "64M")
    assert [boot(lab, C).counter, boot(lab, C).counter] == [1, 2]
    first = [boot(lab, m) for m in (D, G, H, J)]
    assert [(b.counter, b.data_counter) for b in first] == [(1, 1), (1, 1), (1, None), (1, 1)]
    assert first[0].san_devices[-2:] == ["0x80", "0x81"]  # the OS disk, then the data disk
    committed = zboot("commit", "pce2ec", "-m", "counted twice")["data"]
    assert (committed["version"], committed["base"]) == ("v2", "gold@v1")
    zboot("clone", "gold", "pce2en", "--mac", E)  # from v2
    assert boot(lab, E).counter == 3  # the committed disk's count, plus this boot
    script = lab_script(lab, zboot, D)
    fleet = ["pce2er", "pce2eg", "pce2eh", "pce2ej"]
    moved = zboot("rebase", *fleet, "--to", "gold")["data"]["hosts"]
    assert [h["moved"] for h in moved] == [True] * 4
    assert all(h["source"].endswith("/gold@v2") for h in moved)
    assert lab_script(lab, zboot, D) == script  # same target, same CHAP secret
    after = [boot(lab, m) for m in (D, G, H, J)]
    # v2's count goes on (not their own 1); each data disk's own count goes on
    assert [(b.counter, b.data_counter) for b in after] == [(3, 2), (3, 2), (3, None), (3, 2)]
    assert boot(lab, C).counter == 3  # C's disk is its own: the commit left it as it was


def lab_script(lab: Layout, zboot: Zboot, mac: str) -> str:
    """The host's iPXE script as the server has it (CHAP secret included)."""
    config = Path(zboot.env["ZBOOT_CONFIG"]).read_text()
    boot_dir = next(line.split('"')[1] for line in config.splitlines() if line.startswith("dir"))
    return ssh_text(lab, ["cat", f"{boot_dir}/{mac.replace(':', '-')}.ipxe"])
