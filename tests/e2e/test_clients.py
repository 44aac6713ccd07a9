"""Real iPXE clients boot zvols exported by hand: DHCP -> per-MAC script ->
sanboot -> the golden image's program counts its boots on its own disk."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from zboot_lab import client, exports, zvols
from zboot_lab.golden import write_golden
from zboot_lab.layout import POOL, Layout
from zboot_lab.remote import ssh

pytestmark = pytest.mark.e2e

INITIATOR = "iqn.2026-11.lab.zboot:e2e-client"


class Machine:
    """A zvol made from a golden image, exported through LIO, with a per-MAC script."""

    def __init__(self, lab: Layout, firmware: str, mac: str, image: Path) -> None:
        tag = uuid.uuid4().hex[:8]
        self.lab, self.firmware, self.mac = lab, firmware, mac
        self.zvol = f"{POOL}/e2e-{firmware}-{tag}"
        self.iqn = f"iqn.2026-11.lab.zboot:e2e-{firmware}-{tag}"
        zvols.import_image(lab, image, self.zvol)
        ssh(lab, ["zfs", "snapshot", f"{self.zvol}@golden"])
        self.export()
        exports.write_boot_script(
            lab, mac, exports.sanboot_script(INITIATOR, lab.portal("lio"), 0, self.iqn))

    def export(self) -> None:
        exports.lio_export(self.lab, self.zvol, self.iqn, INITIATOR)

    def unexport(self) -> None:
        exports.lio_unexport(self.lab, self.zvol, self.iqn)

    def boot(self) -> client.BootResult:
        return client.boot(self.lab, self.mac, self.firmware, timeout=180)

    def remove(self) -> None:
        self.unexport()
        zvols.destroy(self.lab, self.zvol)
        name = self.mac.replace(":", "-")
        ssh(self.lab, ["rm", "-f", f"/srv/zboot/boot/{name}.ipxe"])


MakeMachine = Callable[[str, str], Machine]


@pytest.fixture
def machine(lab: Layout, tmp_path: Path) -> Iterator[MakeMachine]:
    made: list[Machine] = []

    def make(firmware: str, mac: str) -> Machine:
        image = tmp_path / f"golden-{firmware}.img"
        write_golden(firmware, image)
        m = Machine(lab, firmware, mac, image)
        made.append(m)
        return m

    yield make
    for m in made:
        m.remove()


def test_bios_client_counts_its_boots_and_rollback_resets_it(machine: MakeMachine) -> None:
    m = machine("bios", "52:54:00:e2:00:01")
    first = m.boot()
    assert first.booted, first
    assert first.san_devices == ["0x80"], first
    assert first.counter == 1
    assert m.boot().counter == 2

    m.unexport()
    ssh(m.lab, ["zfs", "rollback", f"{m.zvol}@golden"])
    m.export()
    assert m.boot().counter == 1


def test_uefi_client_boots_bootx64_efi(machine: MakeMachine) -> None:
    m = machine("uefi", "52:54:00:e2:00:02")
    result = m.boot()
    assert result.booted, result
    assert "ZBOOT-UEFI: BOOTX64.EFI running" in result.program_output
    assert result.counter == 1
    assert result.san_devices, result


def test_client_with_unknown_mac_gets_no_disk(lab: Layout) -> None:
    result = client.boot(lab, "52:54:00:e2:00:ff", "bios", timeout=120)
    assert not result.booted and result.counter is None
    assert not result.san_devices
    assert any("No such file" in e for e in result.ipxe_errors), result
