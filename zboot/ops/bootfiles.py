"""Each host's iPXE script in the boot directory on the server, named by MAC,
written atomically (temp file + rename), so a client fetching it sees the old
script or the new one. The script carries CHAP secrets when the host has
CHAP: restrict who may fetch the boot directory."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from ..boot import dhcp, ipxe
from ..boot.ipxe import BootTarget, render
from ..chap import Chap
from ..config import Config
from ..errors import InvalidInput
from ..names import HostName, address
from ..remote.base import Runner
from .context import Context
from .paths import host_target, script_path
from .state import HostRecord, read_state


def boot_target(
    config: Config, lun: int, host: str, record: HostRecord, chap: Chap | None
) -> BootTarget | None:
    """What the host's script attaches; None when the config names no portal
    (clients would not know where to log in)."""
    if not config.portal:
        return None
    return BootTarget(
        host=host,
        portal=config.portal,
        lun=lun,
        target=host_target(config, host, record.target),
        initiator=record.initiator,
        chap=chap,
        root=config.root,
    )


def ensure_boot_dir(runner: Runner, config: Config) -> None:
    """The boot directory, once per run, before any script is written."""
    runner.run(["mkdir", "-p", config.boot_dir])


def write_script(
    runner: Runner,
    config: Config,
    mac: str,
    mode: str,
    target: BootTarget,
    winpe: str | None = None,
) -> str:
    """(Re)write the host's script for mode (into the directory ensure_boot_dir
    made); returns its path on the server."""
    path = script_path(config, mac)
    text = render(mode, target, winpe)
    runner.write_file(path, text.encode(), mode=0o644)  # the HTTP server reads it
    return path


def remove_script(runner: Runner, config: Config, mac: str) -> None:
    runner.remove_file(script_path(config, mac))


@dataclass(frozen=True)
class DhcpConfig:
    hosts: list[str]
    text: str


def dhcp_config(
    c: Context, names: list[HostName], fmt: str, tftp_server: str | None, router: str | None
) -> DhcpConfig:
    """The DHCP server's part of the boot for these hosts (every host when
    none are named): chainload iPXE, then each host's script by MAC."""
    if fmt not in dhcp.FORMATS:
        raise InvalidInput(f"unknown format {fmt!r}", hint=f"one of {', '.join(dhcp.FORMATS)}")
    for option, value in (("--tftp-server", tftp_server), ("--router", router)):
        if value is not None:  # they go into the DHCP server's config as they are
            address(value, option)
    if not c.config.boot_url:
        raise InvalidInput(
            "the config has no boot URL ([boot] url)",
            hint="the URL clients fetch <mac>.ipxe scripts from, e.g. http://10.0.0.1/boot",
        )
    site = dhcp.Site(
        c.config.boot_url, tftp_server or urlsplit(c.config.boot_url).hostname or "", router
    )
    state = read_state(c.zfs, c.config)
    chosen = (
        [state.host(n) for n in names]
        if names
        else sorted(state.hosts.values(), key=lambda h: h.name)
    )
    entries = [dhcp.DhcpHost(h.name, h.record.mac, h.record.initiator) for h in chosen]
    return DhcpConfig([e.name for e in entries], dhcp.render(fmt, site, entries))


def write_pxelinux(c: Context, name: HostName, tftp_dir: str) -> list[str]:
    """For sites that run PXELINUX: pxelinux.cfg/01-<mac> chains the host into
    iPXE and its own script. Returns the files written (on the server)."""
    if not c.config.boot_url:
        raise InvalidInput("the config has no boot URL ([boot] url)")
    record = read_state(c.zfs, c.config).host(name).record
    root = tftp_dir.rstrip("/")
    files = {
        f"{root}/{ipxe.CHAIN_SCRIPT}": ipxe.chain_script(c.config.boot_url),
        f"{root}/pxelinux.cfg/{ipxe.pxelinux_name(record.mac)}": ipxe.pxelinux_config(name),
    }
    c.runner.run(["mkdir", "-p", f"{root}/pxelinux.cfg"])
    for path, text in files.items():
        c.runner.write_file(path, text.encode(), mode=0o644)
    return list(files)
