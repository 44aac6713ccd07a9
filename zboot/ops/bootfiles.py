"""Each host's iPXE script in the boot directory on the server, named by MAC,
written atomically (temp file + rename), so a client fetching it sees the old
script or the new one. A script that carries CHAP secrets is written 0640:
root and the boot directory's group (the web server's, which the directory's
setgid bit hands every new file) read it, nobody else; see docs/boot.md,
"What protects a machine's disk"."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from urllib.parse import urlsplit

from ..boot import dhcp, ipxe
from ..boot.ipxe import BootTarget, has_secret, render
from ..chap import Chap
from ..config import Config
from ..errors import InvalidInput
from ..names import HostName, address
from ..remote.base import Runner
from .context import Context
from .maintenance import image_export
from .paths import host_target, script_path
from .state import HostRecord, State, read_state

# With a secret: owner and group only. Without: nothing a boot client does not
# see anyway (its initiator name goes out in DHCP option 203 too), so any web
# server set-up may read it, even one outside the directory's group.
SECRET_SCRIPT_MODE = 0o640
PLAIN_SCRIPT_MODE = 0o644


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
        data=record.data == "on",
    )


def ensure_boot_dir(runner: Runner, config: Config) -> None:
    """The boot directory, once per run, before any script is written (none
    is where `zboot serve` answers)."""
    if config.scripts != "service":
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
    made); returns its path on the server, "" where `zboot serve` answers for
    the hosts ([boot] scripts = "service": no script is written, so no secret
    sits in a file)."""
    if config.scripts == "service":
        return ""
    path = script_path(config, mac)
    text = render(mode, target, winpe)
    access = SECRET_SCRIPT_MODE if has_secret(text) else PLAIN_SCRIPT_MODE
    runner.write_file(path, text.encode(), mode=access)
    return path


def recorded_script(
    config: Config, lun: int, state: State, host: str, record: HostRecord, chap: Chap | None
) -> tuple[str, BootTarget, str | None] | None:
    """What the host's script is for its recorded mode: the mode, the target
    it attaches (the golden image's in maintenance) and the WinPE URL (install
    mode: [boot] winpe); None when the config names no portal."""
    target = boot_target(config, lun, host, record, chap)
    if target is None:
        return None
    mode = record.mode or "normal"
    if mode == "maintenance" and record.image in state.images:
        gold = image_export(config, state.images[record.image], record.initiator, None)
        target = replace(target, target=gold.target)
    return mode, target, config.winpe if mode == "install" else None


def secret_script_problems(runner: Runner, config: Config, scripts: Mapping[str, str]) -> list[str]:
    """What is wrong with who may read the scripts (file name -> text, as
    `zboot doctor` reads them) that hold CHAP secrets, one sentence each: a
    script anyone on the server may read (written before scripts with secrets
    were 0640, or chmod'ed since), or one whose group is not the boot
    directory's (the directory lacks its setgid bit, so the web server may
    be unable to serve it). Read-only; one command."""
    names = sorted(name for name, text in scripts.items() if has_secret(text))
    if not names:
        return []
    listing = runner.run(
        ["sh", "-c", 'cd "$1" && shift && ls -ldn -- . "$@"', "sh", config.boot_dir, *names],
        check=False,
        read_only=True,
    ).text
    # `ls -n`: mode, links, uid, gid, ..., name (MAC-named scripts hold no spaces)
    seen = {f[-1]: (f[0], f[3]) for f in map(str.split, listing.splitlines()) if len(f) > 4}
    directory, group = seen.get(".", ("", ""))
    problems = []
    for name in names:
        if name not in seen:
            continue  # gone since doctor read it
        mode, gid = seen[name]
        if mode[7:8] == "r" and directory[9:10] in ("x", "t"):
            problems.append(
                f"{name} holds a CHAP secret and anyone on the server may read it (chmod o-r it)"
            )
        if group and gid != group:
            problems.append(
                f"{name} holds a CHAP secret and its group is not the boot directory's, so "
                f"the web server may not read it (chgrp it, and chmod g+s {config.boot_dir} "
                "so new scripts get the directory's group)"
            )
    return problems


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
