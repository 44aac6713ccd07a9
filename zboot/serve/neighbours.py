"""Which MAC address sent a request: the server's neighbour table maps the
client's IP address to the MAC it last saw for it. That holds only where the
client shares the boot LAN with the server (behind a router, the table shows
the router's MAC); docs/boot.md says what protects a site where it cannot."""

from __future__ import annotations

import ipaddress
import subprocess
from pathlib import Path

ARP_TABLE = Path("/proc/net/arp")
COMPLETE = 0x2  # ATF_COM: the entry has a MAC


def _ipv4(address: str) -> str | None:
    """The IPv4 address, also of an IPv4-mapped IPv6 one; None for IPv6."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address):
        return str(ip.ipv4_mapped) if ip.ipv4_mapped else None
    return str(ip)


class NeighbourTable:
    """The kernel's ARP table for IPv4, `ip -6 neigh` for IPv6."""

    def __init__(self, arp_table: Path = ARP_TABLE) -> None:
        self.arp_table = arp_table

    def mac_of(self, address: str) -> str | None:
        v4 = _ipv4(address)
        if v4 is not None:
            return self._arp(v4)
        try:
            ipaddress.IPv6Address(address)
        except ValueError:
            return None
        return self._ndp(address)

    def _arp(self, address: str) -> str | None:
        # IP address, HW type, Flags, HW address, Mask, Device
        for line in self.arp_table.read_text().splitlines()[1:]:
            fields = line.split()
            if len(fields) >= 4 and fields[0] == address and int(fields[2], 16) & COMPLETE:
                return fields[3].lower()
        return None

    def _ndp(self, address: str) -> str | None:
        out = subprocess.run(
            ["ip", "-6", "neigh", "show", "to", address],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        ).stdout.split()
        if "lladdr" in out and out.index("lladdr") + 1 < len(out):
            return out[out.index("lladdr") + 1].lower()
        return None
