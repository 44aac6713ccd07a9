"""Switching machines on: Wake-on-LAN magic packets, sent by the storage
server onto the boot LAN (the interface `[serve] interface` names), not by
the machine zboot runs on, which may be an admin's laptop elsewhere. Every
host's packet goes with one command on the server (wake_sender.py, shipped
like the engine agents). Sending changes nothing on the server, so it takes
no lock; it is still a change, so a dry run lists it and sends nothing."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .. import names as names_mod
from ..errors import InvalidInput, ServerError, ZbootError
from ..names import HostName
from ..remote.python import python_argv
from .context import Context
from .state import read_state
from .wake_sender import magic_packet

__all__ = ["BOOTSTRAP", "SENDER", "Wake", "magic_packet", "power_on", "sender_argv"]

SENDER = Path(__file__).with_name("wake_sender.py").read_bytes()
# the -c program: runs the sender's source from stdin (short enough that a
# dry run's plan shows the command with its interface and MACs)
BOOTSTRAP = "import sys; exec(sys.stdin.read())"
TIMEOUT = 60.0


@dataclass
class Wake:
    """One host's magic packet: its MAC, or why it was not sent."""

    host: str
    mac: str = ""
    error: ZbootError | None = None


def boot_interface(c: Context) -> str:
    interface = c.config.serve.interface
    if interface is None:
        raise InvalidInput(
            "the config names no boot LAN interface ([serve] interface): the storage "
            "server sends Wake-on-LAN packets out of it",
            hint="set it to the server's interface on the boot LAN, "
            'e.g. [serve] interface = "eno1"',
        )
    return interface


def sender_argv(interface: str, macs: list[str]) -> list[str]:
    return python_argv(BOOTSTRAP, interface, *macs, site=False)


def power_on(c: Context, names: list[HostName]) -> list[Wake]:
    """Look every host's MAC up (one state read), then send all their packets
    with one command on the server. A host that is unknown or has no MAC fails
    alone; if the server cannot send, every host sent for fails with it."""
    interface = boot_interface(c)
    state = read_state(c.zfs, c.config)
    wakes = [Wake(n) for n in names]
    for wake in wakes:
        try:
            wake.mac = host_mac(state.host(wake.host).record.mac, wake.host)
        except ZbootError as err:
            wake.error = err
    todo = [w for w in wakes if w.error is None]
    if not todo:
        return wakes
    result = c.runner.run(
        sender_argv(interface, [w.mac for w in todo]), input=SENDER, timeout=TIMEOUT, check=False
    )
    if not result.ok:
        lines = result.stderr.decode(errors="replace").strip().splitlines()
        failed = ServerError(
            f"the server could not send Wake-on-LAN on {interface}: "
            f"{lines[-1] if lines else f'exit {result.returncode}'}",
            hint="[serve] interface must be the server's interface on the boot LAN, and up",
        )
        for wake in todo:
            wake.error = failed
    return wakes


def host_mac(recorded: str, host: str) -> str:
    if not recorded:
        raise InvalidInput(f"host {host!r} has no MAC address recorded")
    return names_mod.mac(recorded)
