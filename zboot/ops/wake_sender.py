"""Wake-on-LAN, sent by the storage server onto the boot LAN (see
zboot.ops.power). It runs on the server as root, isolated like the engine
agents (remote.python): `python3 -IS -c <bootstrap> INTERFACE MAC...`, with
this source on stdin. It checks its arguments again (an interface name, and
unicast MACs in zboot's lowercase colon form), then sends each MAC's magic
packet with one UDP socket bound to INTERFACE (SO_BINDTODEVICE) to the
broadcast address 255.255.255.255, port 9: the packet leaves on the boot
LAN whatever the server's routes say. Exit 2: bad arguments, nothing sent;
exit 1: the interface refused (missing, down, no permission). Standard
library only; zboot imports it for magic_packet."""

from __future__ import annotations

import re
import socket
import sys

INTERFACE_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:-]{0,14}")  # as zboot.config's
MAC_RE = re.compile(r"[0-9a-f]{2}(?::[0-9a-f]{2}){5}")
BROADCAST = "255.255.255.255"
PORT = 9  # discard: nothing on the LAN answers it
BAD_ARGUMENTS = 2
SEND_FAILED = 1


def magic_packet(mac: str) -> bytes:
    """6 bytes 0xFF, then the MAC's 6 bytes 16 times (102 bytes)."""
    return b"\xff" * 6 + bytes.fromhex(mac.replace(":", "")) * 16


def checked(args: list[str]) -> tuple[str, list[str]]:
    """The interface and the MACs; ValueError naming the first bad one."""
    if len(args) < 2:
        raise ValueError("usage: INTERFACE MAC...")
    interface, macs = args[0], args[1:]
    if not INTERFACE_RE.fullmatch(interface):
        raise ValueError(f"{interface!r} is not a network interface name")
    for mac in macs:
        if not MAC_RE.fullmatch(mac) or int(mac[:2], 16) & 1 or mac == "00:00:00:00:00:00":
            raise ValueError(f"{mac!r} is not a unicast MAC address (aa:bb:cc:dd:ee:ff)")
    return interface, macs


def send(interface: str, packets: list[bytes]) -> None:
    if not hasattr(socket, "SO_BINDTODEVICE"):
        raise OSError("this system cannot bind a socket to one interface (Linux can)")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, interface.encode())
        for packet in packets:
            sock.sendto(packet, (BROADCAST, PORT))


def main(args: list[str]) -> int:
    try:
        interface, macs = checked(args)
    except ValueError as err:
        print(f"wake-on-lan: {err}", file=sys.stderr)
        return BAD_ARGUMENTS
    try:
        send(interface, [magic_packet(mac) for mac in macs])
    except OSError as err:
        print(f"wake-on-lan: interface {interface}: {err.strerror or err}", file=sys.stderr)
        return SEND_FAILED
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
