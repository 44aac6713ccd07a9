"""A real operating system boots through zboot's whole chain on the lab's
boot LAN: a real DHCP server fed by `zboot dhcp`, TFTP, iPXE, the per-MAC
script, then the Linux image's initramfs logs in to its disk again with
open-iscsi (`iscsistart -b`) from the iBFT alone, mounts its root from it,
counts the boot there and reports the iBFT it saw.

Which cells of the matrix (engine x firmware x CHAP x way in) run here, and
which only in `lab test --full`: docs/boot.md, "The boot matrix"."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from zboot_cli import Zboot, zboot_root
from zboot_lab import bootlan, client, istgt
from zboot_lab.golden import write_golden
from zboot_lab.layout import LAN_TFTP_DIR, Layout
from zboot_lab.linux_golden import write_linux_golden, write_linux_installer
from zboot_lab.remote import ssh, ssh_text

pytestmark = pytest.mark.e2e

A, B = "52:54:00:e2:01:01", "52:54:00:e2:01:02"
UNKNOWN = "52:54:00:e2:01:ff"
# A PXELINUX site's DHCP: pxelinux.0 for everyone, and, as zboot's own lines
# do, no router for iPXE (ipxe.lkrn asks with user class iPXE too): dnsmasq
# gives its own address as router otherwise, and the iBFT would carry it.
PXELINUX_SITE = (
    "dhcp-boot=pxelinux.0\ndhcp-userclass=set:ipxe,iPXE\ndhcp-option=tag:ipxe,option:router\n"
)
NO_GATEWAY = ("", "0.0.0.0")  # noqa: S104 (how an iBFT shows "no gateway")


def on_lan(lab: Layout, zboot: Zboot, engine: str = "lio") -> Zboot:
    """The zboot fixture's config, pointed at the boot LAN's portal and URL."""
    config = Path(zboot.env["ZBOOT_CONFIG"])
    text = (
        config.read_text()
        .replace(f'portal = "{lab.portal("lio")}"', f'portal = "{lab.lan_portal(engine)}"')
        .replace(f'url = "{lab.boot_url()}"', f'url = "{lab.lan_boot_url()}"')
        .replace('engine = "lio"', f'engine = "{engine}"')
    )
    config.write_text(text)
    return zboot


@pytest.fixture
def lan(lab: Layout, zboot: Zboot) -> Iterator[Zboot]:
    yield on_lan(lab, zboot)
    bootlan.stop(lab)


def linux_golden(lab: Layout, zboot: Zboot, tmp_path: Path) -> None:
    image = tmp_path / "linux.img"
    write_linux_golden(lab, image)
    zboot("init")
    zboot("image", "import", "linux", str(image))
    zboot("image", "snapshot", "linux")


@pytest.fixture(scope="module")
def linux_root(lab_session: Layout, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Zboot]:
    """One root with the Linux image imported once for the rows that boot it
    (init, import and snapshot cost about 20 s a row in the emulated VM)."""
    work = tmp_path_factory.mktemp("linux")
    with zboot_root(lab_session, work) as run:
        linux_golden(lab_session, run, work)
        yield run


@pytest.fixture
def linux(lab: Layout, linux_root: Zboot, tmp_path: Path) -> Iterator[Zboot]:
    """A row's zboot on the shared root, with a config of its own (each row
    points it at its engine); the row's hosts go when it ends, taken down by
    the engine that exported them."""
    config = tmp_path / "zboot.toml"
    config.write_text(Path(linux_root.env["ZBOOT_CONFIG"]).read_text())
    run = Zboot(config, linux_root.root)
    yield run
    hosts = ssh_text(
        lab, ["zfs", "list", "-H", "-o", "name", "-d", "1", "-t", "volume", f"{run.root}/hosts"]
    ).split()
    if hosts:
        run.raw("destroy", *(name.rsplit("/", 1)[1] for name in hosts), "--yes", "--force")


def dhcp_lines(zboot: Zboot, kind: str, tmp_path: Path) -> str:
    out = tmp_path / f"zboot-{kind}.conf"
    zboot("dhcp", "--format", kind, "--write", str(out))
    return out.read_text()


def boot(
    lab: Layout,
    mac: str,
    firmware: str = "bios",
    rom: bool = True,
    disk: Path | None = None,
    cdrom: Path | None = None,
) -> client.BootResult:
    return client.boot(lab, mac, firmware, timeout=300, lan=True, rom=rom, disk=disk, cdrom=cdrom)


def ibft_lun(lun: int) -> str:
    """A LUN as Linux shows the iBFT's 8-byte SCSI LUN: each byte in hex, unpadded."""
    return "".join(f"{byte:x}" for byte in (0, lun, 0, 0, 0, 0, 0, 0))


def assert_ibft_matches(
    report: dict[str, Any] | None, host: dict[str, Any], mac: str, lun: int = 0
) -> None:
    """What the OS took from the iBFT is the host's record: its initiator,
    its target, its NIC, its CHAP users, and no gateway (KB960104)."""
    assert report is not None, "the OS did not boot, or did not report its iBFT"
    assert report["initiator"] == host["initiator"], report
    assert report["target"] == host["target"], report
    assert report["lun"] == ibft_lun(lun), report
    assert report["mac"] == mac, report
    assert report["gateway"] in NO_GATEWAY, report
    chap = host.get("chap_credentials") or {}
    assert report["chap_user"] == (chap.get("user") or ""), report
    assert report["reverse_chap_user"] == (chap.get("mutual_user") or ""), report


def rewrite_script(lab: Layout, boot_file: str, change: Any) -> None:
    script = ssh_text(lab, ["cat", boot_file])
    changed = change(script)
    assert changed != script
    ssh(lab, ["sh", "-c", 'cat > "$1"', "sh", boot_file], stdin=changed.encode())


def test_bios_linux_on_lio_through_dnsmasq(lab: Layout, linux: Zboot, tmp_path: Path) -> None:
    """BIOS, QEMU's iPXE ROM, dnsmasq, LIO, no CHAP."""
    lan = on_lan(lab, linux)
    host = lan("clone", "linux", "pcl1", "--mac", A)["data"]
    with bootlan.serving(lab, "dnsmasq", dhcp_lines(lan, "dnsmasq", tmp_path)):
        first = boot(lab, A)
        assert_ibft_matches(first.linux, host, A)
        assert first.counter == 1 and first.san_devices == ["0x80"], first
        assert first.linux is not None and first.linux["dhcp"] == "192.168.150.1"
        assert boot(lab, A).counter == 2

        # The check can fail: a gateway in the script reaches the OS's iBFT ...
        line = "set initiator-iqn"
        with_gateway = f"set net0/gateway 192.168.150.254\n{line}"
        rewrite_script(lab, host["boot_file"], lambda s: s.replace(line, with_gateway))
        gateway = boot(lab, A)
        assert gateway.counter == 3 and gateway.linux is not None
        assert gateway.linux["gateway"] == "192.168.150.254"
        with pytest.raises(AssertionError):
            assert_ibft_matches(gateway.linux, host, A)
        # ... and a wrong initiator gets no disk, so no iBFT to match.
        intruder = "iqn.2010-04.org.ipxe:intruder"
        rewrite_script(lab, host["boot_file"], lambda s: s.replace(host["initiator"], intruder))
        refused = boot(lab, A)
        assert not refused.booted and refused.linux is None, refused
        with pytest.raises(AssertionError):
            assert_ibft_matches(refused.linux, host, A)

        lan("mode", "pcl1", "normal")  # zboot writes the script again
        # A powered-off machine does not log out: its session lasts until the
        # target gives up on it. --force cuts it off (the machine is off).
        lan("rollback", "pcl1", "--force")
        back = boot(lab, A)
        assert_ibft_matches(back.linux, host, A)
        assert back.counter == 1

        unknown = boot(lab, UNKNOWN)
        assert not unknown.booted and not unknown.san_devices, unknown
        assert any("No such file" in e for e in unknown.ipxe_errors), unknown
        served = bootlan.log(lab)
    assert "DHCPACK(lan0) 192.168.150." in served and A in served


def test_uefi_linux_on_tgt_through_isc_and_tftp_with_mutual_chap(
    lab: Layout, linux: Zboot, tmp_path: Path
) -> None:
    """UEFI with the firmware's own PXE client (no iPXE ROM): ISC dhcpd sends
    it snponly.efi over TFTP, that iPXE gets the per-MAC script; tgt, mutual CHAP."""
    lan = on_lan(lab, linux, "tgt")
    try:
        host = lan("clone", "linux", "pcl2", "--mac", B, "--mutual-chap")["data"]
        assert host["chap_credentials"]["mutual_user"]
        with bootlan.serving(lab, "isc", dhcp_lines(lan, "isc", tmp_path)):
            first = boot(lab, B, "uefi", rom=False)
            assert_ibft_matches(first.linux, host, B, lun=1)  # tgt's LUN 0 is its own
            assert first.counter == 1, first
            log = Path(first.log).read_text(errors="replace")
            assert "snponly.efi" in log  # the two-stage chain: firmware PXE, then iPXE
            # (rollback with a client is row 1's; CI's time goes to more rows)
            assert boot(lab, B, "uefi", rom=False).counter == 2
            served = bootlan.log(lab)
        assert "DHCPACK on 192.168.150." in served and B in served
    finally:
        bootlan.stop(lab)


def test_bios_linux_on_istgt_through_pxelinux_with_chap(
    lab: Layout, linux: Zboot, tmp_path: Path
) -> None:
    """A PXELINUX site: its DHCP hands every machine pxelinux.0, whose
    per-MAC file from `zboot pxelinux` chains iPXE (ipxe.lkrn) into the
    host's script; istgt in the storage VM serves a zvol, with CHAP."""
    lan = on_lan(lab, linux, "istgt")
    istgt.configure_in_guest(lab, istgt.lan_base_config(lab))
    try:
        host = lan("clone", "linux", "pcl3", "--mac", A, "--chap")["data"]
        lan("pxelinux", "pcl3", "--dir", LAN_TFTP_DIR)
        with bootlan.serving(lab, "dnsmasq", PXELINUX_SITE):
            first = boot(lab, A)
            assert_ibft_matches(first.linux, host, A)
            assert first.counter == 1, first
            # PXELINUX moves the console's cursor mid-line ("zboot-cha\x1b[25;17H...")
            log = client.console_text(Path(first.log).read_text(errors="replace"))
            assert "PXELINUX" in log and "zboot-chain.ipxe" in log, first
            assert boot(lab, A).counter == 2
    finally:
        bootlan.stop(lab)
        ssh(lab, ["sh", "-c", "service istgt stop >/dev/null 2>&1; true"])


@pytest.mark.parametrize(
    "firmware",
    # UEFI: after iPXE hands back, OVMF tries its own HTTP boot entries before
    # the disk (about 150 s of timeouts): lab test --full only.
    ["bios", pytest.param("uefi", marks=pytest.mark.full)],
)
def test_local_mode_boots_the_machines_own_disk(
    lab: Layout, lan: Zboot, tmp_path: Path, firmware: str
) -> None:
    """local: the script attaches no SAN disk; BIOS boots drive 0x80 through
    iPXE, UEFI hands back to the firmware (`exit`), which boots the next entry."""
    lan("init")
    lan("image", "create", "blank", "--size", "64M")
    lan("image", "snapshot", "blank")
    lan("clone", "blank", "pcll", "--mac", A)
    lan("mode", "pcll", "local")
    own_disk = tmp_path / "local.img"
    write_golden(firmware, own_disk)  # a disk that counts its boots
    with bootlan.serving(lab, "dnsmasq", dhcp_lines(lan, "dnsmasq", tmp_path)):
        result = boot(lab, A, firmware, disk=own_disk)
    assert result.booted and result.counter == 1, result
    assert not result.san_devices, result


def test_install_mode_installs_an_os_through_the_ibft_then_boots_it(
    lab: Layout, lan: Zboot, tmp_path: Path
) -> None:
    """install: the blank disk is hooked (keep-san), iPXE falls through to the
    machine's installer CD, whose Linux finds the disk through the iBFT and
    writes an OS onto it; back in normal mode the machine boots that OS."""
    lan("init")
    lan("image", "create", "blank", "--size", "64M")
    lan("image", "snapshot", "blank")
    host = lan("clone", "blank", "pcli", "--mac", A)["data"]
    lan("mode", "pcli", "install")
    cd = tmp_path / "installer.iso"
    write_linux_installer(lab, cd)
    with bootlan.serving(lab, "dnsmasq", dhcp_lines(lan, "dnsmasq", tmp_path)):
        installing = boot(lab, A, cdrom=cd)
        assert installing.san_devices == ["0x80"], installing
        log = Path(installing.log).read_text(errors="replace")
        assert "ZBOOT-INSTALLED /dev/sda" in log, installing
        lan("mode", "pcli", "normal", "--force")
        installed = boot(lab, A)
    assert_ibft_matches(installed.linux, host, A)
    assert installed.linux is not None and installed.linux["installed"] == "zboot-lab installer"
    assert installed.counter == 1
