"""Real iPXE clients boot the disks zboot provisions, driven only by zboot
commands and a power-on: DHCP -> the per-MAC script zboot wrote -> sanboot
-> the golden image's program counts its boots on the host's own disk."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from zboot_cli import Zboot
from zboot_lab import client, iscsi
from zboot_lab.golden import write_golden
from zboot_lab.layout import Layout
from zboot_lab.remote import ssh, ssh_text

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


def test_bios_clients_boot_their_own_clones(lab: Layout, zboot: Zboot, tmp_path: Path) -> None:
    golden(zboot, tmp_path, "bios")
    cloned = zboot("clone", "gold", "pce2ea", "--mac", A)["data"]
    assert cloned["boot_file"].endswith("/52-54-00-e2-00-01.ipxe")
    first = boot(lab, A)
    assert first.booted and first.san_devices == ["0x80"], first
    assert first.counter == 1
    assert boot(lab, A).counter == 2
    zboot("rollback", "pce2ea")
    assert boot(lab, A).counter == 1  # the provisioned disk again

    zboot("clone", "gold", "pce2eb", "--mac", B)
    assert boot(lab, B).counter == 1  # its own disk, from the same image
    assert boot(lab, A).counter == 2  # A's disk is untouched by B

    # A machine that claims A's MAC but logs in with another name gets nothing.
    script = ssh_text(lab, ["cat", cloned["boot_file"]])
    forged = script.replace(cloned["initiator"], "iqn.2010-04.org.ipxe:intruder")
    ssh(lab, ["sh", "-c", 'cat > "$1"', "sh", cloned["boot_file"]], stdin=forged.encode())
    refused = boot(lab, A)
    assert not refused.booted and refused.counter is None, refused
    zboot("mode", "pce2ea", "normal")  # zboot rewrites the script
    assert boot(lab, A).counter == 3


def test_install_mode_attaches_the_empty_disk_and_falls_through(
    lab: Layout, zboot: Zboot, tmp_path: Path
) -> None:
    zboot("init")
    zboot("image", "create", "blank", "--size", "64M")
    zboot("image", "snapshot", "blank")
    cloned = zboot("clone", "blank", "pce2ei", "--mac", A)["data"]
    assert zboot("mode", "pce2ei", "install")["data"]["mode"] == "install"
    assert [h["mode"] for h in zboot("list")["data"]] == ["install"]
    installing = boot(lab, A)
    assert installing.san_devices == ["0x80"], installing  # attached ...
    assert not installing.booted and installing.counter is None  # ... nothing to boot yet

    # The installer's part: it writes a system onto the attached disk.
    system = tmp_path / "system.img"
    write_golden("bios", system)
    opts = (
        f"driver=iscsi,transport=tcp,portal=127.0.0.1:{lab.lio_port},"
        f"target={cloned['target']},lun=0,initiator-name={cloned['initiator']}"
    )
    subprocess.run(
        ["qemu-img", "convert", "-n", "-f", "raw", str(system), "--target-image-opts", opts],
        check=True,
        capture_output=True,
        timeout=600,
    )
    zboot("mode", "pce2ei", "normal")
    assert boot(lab, A).counter == 1


def test_chap_travels_in_the_script(lab: Layout, zboot: Zboot, tmp_path: Path) -> None:
    golden(zboot, tmp_path, "bios")
    cloned = zboot("clone", "gold", "pce2ec", "--mac", A, "--mutual-chap", "--show-secrets")["data"]
    assert boot(lab, A).counter == 1  # iPXE logs in with both secrets from the script
    secret = cloned["chap_credentials"]["secret"]
    script = ssh_text(lab, ["cat", cloned["boot_file"]])
    wrong = script.replace(secret, iscsi.wrong(secret))
    assert wrong != script  # the secret is in the script, and now it is wrong
    ssh(lab, ["sh", "-c", 'cat > "$1"', "sh", cloned["boot_file"]], stdin=wrong.encode())
    refused = boot(lab, A)
    assert not refused.booted and not refused.san_devices, refused
    zboot("mode", "pce2ec", "normal")
    assert boot(lab, A).counter == 2


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


def test_uefi_client_boots_bootx64_efi(lab: Layout, zboot: Zboot, tmp_path: Path) -> None:
    golden(zboot, tmp_path, "uefi")
    zboot("clone", "gold", "pce2eu", "--mac", B)
    result = boot(lab, B, "uefi")
    assert result.booted, result
    assert "ZBOOT-UEFI: BOOTX64.EFI running" in result.program_output
    assert result.counter == 1
    assert result.san_devices, result


def test_client_with_unknown_mac_gets_no_disk(lab: Layout) -> None:
    result = client.boot(lab, "52:54:00:e2:00:ff", "bios", timeout=120)
    assert not result.booted and result.counter is None
    assert not result.san_devices
    assert any("No such file" in e for e in result.ipxe_errors), result
