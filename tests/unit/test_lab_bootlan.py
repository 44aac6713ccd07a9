"""The lab's boot LAN and Linux client, without the lab: the DHCP servers'
configs around zboot's lines, a client's NIC, and the Linux image's report."""

from __future__ import annotations

from pathlib import Path

import pytest
from zboot_lab import bootlan
from zboot_lab.client import interpret, network
from zboot_lab.layout import LAN_LINKS, Layout

ZBOOT_LINES = "dhcp-userclass=set:ipxe,iPXE\ndhcp-option=tag:ipxe,option:router\n"
LAYOUT = Layout(state=Path("/nonexistent/lab"), port_base=41000)


def test_dnsmasq_serves_zboots_lines_on_the_lan_only_without_dns() -> None:
    conf = bootlan.dnsmasq_config(ZBOOT_LINES).splitlines()
    assert conf[-2:] == ZBOOT_LINES.splitlines()  # verbatim, last
    assert {"port=0", "interface=lan0", "bind-interfaces", "enable-tftp"} <= set(conf)
    assert "enable-ra" in conf  # without router advertisements iPXE waits ~16 s
    assert not [line for line in conf if "router" in line and line not in ZBOOT_LINES]


def test_isc_gives_no_router_and_points_pxe_at_the_server() -> None:
    conf = bootlan.isc_config('filename "x";\n')
    assert "option routers" not in conf
    assert "next-server 192.168.150.1;" in conf and conf.endswith('filename "x";\n')
    assert "subnet 192.168.150.0 netmask 255.255.255.0" in conf


def test_tftp_beside_isc_serves_no_dhcp() -> None:
    argv = bootlan.tftp_only_argv()
    assert "--port=0" in argv and "--enable-tftp" in argv
    assert not [a for a in argv if a.startswith("--dhcp-range=") and "ra-only" not in a]


def test_unknown_dhcp_server_is_refused() -> None:
    with pytest.raises(Exception, match="unknown DHCP server"):
        bootlan.start(LAYOUT, "kea", "")


def test_a_lan_client_links_to_the_storage_vm_on_loopback_only() -> None:
    argv = network(LAYOUT, "52:54:00:00:00:01", 2, rom=True)
    assert argv[1] == f"socket,id=net0,connect=127.0.0.1:{LAYOUT.lan_port(2)}"
    assert "romfile" not in argv[3] and "mac=52:54:00:00:00:01" in argv[3]
    no_rom = network(LAYOUT, "52:54:00:00:00:01", 0, rom=False)
    assert no_rom[3].endswith(",romfile=")  # the firmware's own PXE client boots it
    user = network(LAYOUT, "52:54:00:00:00:01", None, rom=True)
    assert user[1].startswith("user,id=net0,bootfile=http://10.0.2.2:")


def test_lan_ports_are_their_own() -> None:
    lan = {LAYOUT.lan_port(n) for n in range(LAN_LINKS)}
    assert len(lan) == LAN_LINKS and not lan & set(LAYOUT.forwards())


REPORT = (
    'ZBOOT-LINUX {"counter": 3, "initiator": "iqn.2010-04.org.ipxe:pc1", '
    '"gateway": "", "mac": "52:54:00:00:00:01"}\r\n'
)


def test_the_linux_report_gives_the_counter_and_the_ibft(tmp_path: Path) -> None:
    log = tmp_path / "console.log"
    log.write_text("Registered SAN device 0x80\r\n" + REPORT + "reboot: Power down\r\n")
    result = interpret("52:54:00:00:00:01", "bios", 0, False, log, 20.0)  # powered off: 0
    assert result.booted and result.counter == 3
    assert result.linux is not None and result.linux["initiator"] == "iqn.2010-04.org.ipxe:pc1"


def test_an_unreadable_or_cut_linux_report_is_no_boot(tmp_path: Path) -> None:
    log = tmp_path / "console.log"
    log.write_text('ZBOOT-LINUX {"counter": 3, "initiator": }\r\n')
    result = interpret("52:54:00:00:00:01", "bios", 0, False, log, 20.0)
    assert not result.booted and result.counter is None
    assert result.linux is not None and "unreadable" in result.linux
    log.write_text('ZBOOT-LINUX {"counter": 3, "initia\r\n')  # lost at power-off
    cut = interpret("52:54:00:00:00:01", "bios", 0, False, log, 20.0)
    assert not cut.booted and cut.counter is None and cut.linux is None
