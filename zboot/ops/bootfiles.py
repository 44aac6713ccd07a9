"""Each host's iPXE script in the boot directory on the server, named by MAC,
written atomically (temp file + rename), so a client fetching it sees the old
script or the new one. The script carries CHAP secrets when the host has
CHAP: restrict who may fetch the boot directory."""

from __future__ import annotations

from collections.abc import Mapping

from ..boot.ipxe import BootTarget, render, script_name
from ..config import Config
from ..remote.base import Runner
from ..targets.base import Chap
from .exports import target_iqn


def script_path(config: Config, mac: str) -> str:
    return f"{config.boot_dir.rstrip('/')}/{script_name(mac)}"


def boot_target(
    config: Config, lun: int, host: str, record: Mapping[str, str], chap: Chap | None
) -> BootTarget | None:
    """What the host's script attaches; None when the config names no portal
    (clients would not know where to log in)."""
    if not config.portal:
        return None
    return BootTarget(
        host=host,
        portal=config.portal,
        lun=lun,
        target=record.get("target") or target_iqn(config, host),
        initiator=record["initiator"],
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
