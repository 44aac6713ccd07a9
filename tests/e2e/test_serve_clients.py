"""`zboot serve` answers real iPXE clients on the lab's boot LAN: a real
dnsmasq fed by `zboot dhcp` hands every machine the service's URL, and the
service makes each machine's script from the ZFS records as it asks.

- An ephemeral host comes back clean at every boot (its boot counter reads
  1, 1, 1) while its data disk keeps counting (1, 2, 3; BIOS); with `zboot
  keep on` it keeps what the last boot wrote (2); a persistent host counts
  on (1, 2, 3). Every reset is recorded on the host.
- A machine nobody provisioned reports itself, shows in `zboot discovered`,
  and after `zboot adopt` its next power-on boots its new disk (counter 1),
  with no DHCP change.

Which firmware runs which test in CI and which only in `lab test --full`:
docs/boot.md, "The boot matrix"."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from test_clients import golden
from test_linux_clients import dhcp_lines, on_lan
from zboot_cli import Zboot
from zboot_lab import bootlan, client, service
from zboot_lab.layout import Layout

pytestmark = pytest.mark.e2e

E, K, P, U = (f"52:54:00:e2:05:0{n}" for n in range(1, 5))


@pytest.fixture
def served(lab: Layout, zboot: Zboot, tmp_path: Path) -> Iterator[Zboot]:
    """zboot pointed at the service on the boot LAN (no script files), with
    dnsmasq handing out `zboot dhcp`'s lines and the service running."""
    lan = on_lan(lab, zboot)
    config = Path(lan.env["ZBOOT_CONFIG"])
    config.write_text(service.client_config(config.read_text()))
    with (
        bootlan.serving(lab, "dnsmasq", dhcp_lines(lan, "dnsmasq", tmp_path)),
        service.serving(lab, config),
    ):
        yield lan


def boot(lab: Layout, mac: str, firmware: str) -> client.BootResult:
    result = client.boot(lab, mac, firmware, timeout=240, lan=True)
    assert not result.ipxe_errors, result.log[-2000:]
    return result


def counter(lab: Layout, mac: str, firmware: str) -> int | None:
    return boot(lab, mac, firmware).counter


def counters(lab: Layout, mac: str, firmware: str, boots: int) -> list[int | None]:
    return [counter(lab, mac, firmware) for _ in range(boots)]


def reset_record(zboot: Zboot, host: str) -> dict[str, object]:
    """`zboot show`'s account of the host's resets."""
    data: dict[str, object] = zboot("show", host)["data"]["ephemeral"]
    return data


def ephemeral_and_persistent(lab: Layout, zboot: Zboot, tmp_path: Path, firmware: str) -> None:
    golden(zboot, tmp_path, firmware)
    # on BIOS the ephemeral host has a data disk, which the program counts on
    # as drive 0x81 (the UEFI program counts on its OS disk only)
    data = ["--data-disk", "64M"] if firmware == "bios" else []
    zboot("clone", "gold", "pcse", "--mac", E, "--ephemeral", *data)
    zboot("clone", "gold", "pcsp", "--mac", P)
    boots = [boot(lab, E, firmware) for _ in range(3)]
    assert [b.counter for b in boots] == [1, 1, 1]  # the OS disk comes back clean
    if data:  # the data disk is no part of the reset: its count goes on
        assert [b.data_counter for b in boots] == [1, 2, 3]
    shown = reset_record(zboot, "pcse")
    assert shown["resets"] == 3 and isinstance(shown["discarded"], int), shown
    zboot("keep", "pcse", "on")
    assert counter(lab, E, firmware) == 2  # the last boot's count was kept
    assert reset_record(zboot, "pcse")["resets"] == 3
    assert counters(lab, P, firmware, 3) == [1, 2, 3]
    log = service.log(lab)
    assert log.count(f"mac={E}") >= 4 and log.count(f"mac={P}") >= 3, log


def enrol_and_adopt(lab: Layout, zboot: Zboot, tmp_path: Path, firmware: str) -> None:
    golden(zboot, tmp_path, firmware)
    waiting = client.Background(lab, U, firmware, timeout=240)
    try:
        waiting.wait_for("waiting to be adopted", timeout=200)
    finally:
        waiting.stop()
    (seen,) = zboot("discovered")["data"]
    assert seen["mac"] == U and seen["platform"] in ("pcbios", "efi"), seen
    zboot("adopt", U, "--image", "gold", "--names", "pcsa{n:02}")
    assert counter(lab, U, firmware) == 1
    assert zboot("discovered")["data"] == []


def test_ephemeral_keep_and_persistent_hosts_through_the_service_bios(
    lab: Layout, served: Zboot, tmp_path: Path
) -> None:
    ephemeral_and_persistent(lab, served, tmp_path, "bios")


@pytest.mark.full  # CI records and adopts on the server: docs/lab.md
def test_an_unknown_machine_is_discovered_then_adopted_bios(
    lab: Layout, served: Zboot, tmp_path: Path
) -> None:
    enrol_and_adopt(lab, served, tmp_path, "bios")


@pytest.mark.full
def test_ephemeral_keep_and_persistent_hosts_through_the_service_uefi(
    lab: Layout, served: Zboot, tmp_path: Path
) -> None:
    ephemeral_and_persistent(lab, served, tmp_path, "uefi")


@pytest.mark.full
def test_an_unknown_machine_is_discovered_then_adopted_uefi(
    lab: Layout, served: Zboot, tmp_path: Path
) -> None:
    enrol_and_adopt(lab, served, tmp_path, "uefi")
