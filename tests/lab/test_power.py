"""`zboot power on` in the lab: the storage VM itself sends the magic packet
onto its boot LAN (bridge lan0), not the machine zboot runs on. A raw
listener on lan0 inside the VM catches the frame and the test takes it
apart: a UDP broadcast to port 9 carrying 6 x 0xFF and the host's MAC
16 times."""

from __future__ import annotations

import secrets
import shlex
import subprocess
from pathlib import Path

import pytest
from zboot_cli import Zboot
from zboot_lab.keys import ssh_argv
from zboot_lab.layout import Layout

pytestmark = pytest.mark.lab

LISTEN_SECONDS = 30
# In the VM, as root: every frame on lan0 (ETH_P_ALL: a socket bound to one
# protocol sees no frame the VM sends), until one is IPv4 UDP to port 9;
# printed as hex. "ready" once the socket is bound.
LISTENER = f"""
import socket
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
s.bind(("lan0", 0))
s.settimeout({LISTEN_SECONDS})
print("ready", flush=True)
while True:
    frame = s.recv(4096)
    ip = frame[14:]
    udp = ip[(ip[0] & 15) * 4 :]
    if frame[12:14] == bytes([8, 0]) and ip[9] == 17 and udp[2:4] == bytes([0, 9]):
        print(frame.hex(), flush=True)
        break
"""


def test_power_on_broadcasts_the_hosts_magic_packet_on_the_boot_lan(
    lab: Layout, zboot: Zboot
) -> None:
    config = Path(zboot.env["ZBOOT_CONFIG"])
    config.write_text(config.read_text() + '\n[serve]\ninterface = "lan0"\n')
    mac = "52:54:00:e0:" + ":".join(f"{b:02x}" for b in secrets.token_bytes(2))
    zboot("image", "create", "gold", "--size", "8M")
    zboot("image", "snapshot", "gold")
    zboot("clone", "gold", "wol1", "--mac", mac)
    listener = subprocess.Popen(
        [*ssh_argv(lab), shlex.join(["python3", "-c", LISTENER])],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert listener.stdout is not None
        assert listener.stdout.readline() == "ready\n", listener.stderr
        sent = zboot("power", "on", "wol1")["data"]
        out, err = listener.communicate(timeout=LISTEN_SECONDS + 10)
    finally:
        listener.kill()
        listener.wait()
    assert sent == {"host": "wol1", "mac": mac, "interface": "lan0"}
    assert listener.returncode == 0, err
    frame = bytes.fromhex(out.strip())
    ip = frame[14:]
    udp = ip[(ip[0] & 15) * 4 :]
    assert frame[:6] == b"\xff" * 6  # Ethernet broadcast
    assert frame[12:14] == b"\x08\x00"  # IPv4
    assert ip[9] == 17 and ip[16:20] == b"\xff" * 4  # UDP to 255.255.255.255
    assert int.from_bytes(udp[2:4], "big") == 9
    assert udp[8:] == b"\xff" * 6 + bytes.fromhex(mac.replace(":", "")) * 16
