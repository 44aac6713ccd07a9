"""Switching what machines boot next (normal, install, local, maintenance):
their iPXE scripts rewritten (one atomic file write each) and the mode
recorded on their disks. Maintenance boots the golden image itself (one
host at a time); leaving it snapshots the image."""

from __future__ import annotations

from dataclasses import dataclass

from .. import faults
from .. import names as names_mod
from ..boot.ipxe import MODES, BootTarget
from ..chap import Chap
from ..errors import Conflict, InvalidInput, ZbootError
from ..names import HostName, url
from . import maintenance
from .bootfiles import boot_target, ensure_boot_dir, write_script
from .context import Context
from .exports import record_export
from .paths import host_dataset
from .state import Host, HostRecord, HostState, Image, State, done, reached, read_state


def check_request(
    names: list[HostName], new_mode: str, winpe: str | None, message: str | None
) -> None:
    """What no server is needed to refuse."""
    if new_mode not in MODES:
        raise InvalidInput(f"unknown mode {new_mode!r}", hint=f"one of {', '.join(MODES)}")
    if winpe is not None and new_mode != "install":
        raise InvalidInput("--winpe goes with install mode only")
    if winpe is not None:
        url(winpe, "--winpe")
    if message is not None:
        names_mod.message(message)
    if new_mode == "maintenance" and len(names) > 1:
        raise InvalidInput(
            "one host at a time boots an image in maintenance",
            hint=f"zboot mode {names[0]} maintenance",
        )


@dataclass
class Switch:
    """One host's mode switch: checked, then carried out step by step."""

    host: str
    mac: str = ""
    image: str = ""
    target: BootTarget | None = None
    boot_file: str = ""
    version: str | None = None  # left maintenance: the image's new version
    error: ZbootError | None = None
    leaving: tuple[Host, Image, HostRecord] | None = None
    entering: tuple[Host, Image, HostRecord, Chap | None] | None = None


def switch(
    c: Context,
    names: list[HostName],
    new_mode: str,
    winpe: str | None,
    message: str | None,
    force: bool,
) -> list[Switch]:
    """Check every host (nothing changes yet); mark them "switching" (one zfs
    command); leave or enter maintenance; rewrite each script (one file write
    each); record the new mode and "ready" (one zfs command). A host that
    fails (unknown, leaving maintenance while in use) fails alone; one cut
    short stays "switching", and the same command finishes it."""
    check_request(names, new_mode, winpe, message)
    return finish_switch(c, names, new_mode, winpe, message, force)


def finish_switch(
    c: Context,
    names: list[HostName],
    new_mode: str,
    winpe: str | None,
    message: str | None,
    force: bool,
) -> list[Switch]:
    """switch() without its input checks: for `zboot sync`, which finishes
    the switches the records show cut short."""
    state = read_state(c.zfs, c.config)
    switches = [Switch(n) for n in names]
    for sw in switches:
        try:
            _check(c, state, sw, new_mode, force)
        except ZbootError as err:
            sw.error = err
    todo = [sw for sw in switches if sw.error is None]
    if not todo:
        return switches
    c.zfs.mark(
        [host_dataset(c.config, sw.host) for sw in todo],
        reached("mode", new_mode, HostState.SWITCHING),
    )
    faults.point("mode.marked", engine=True)
    for sw in todo:
        try:
            _maintenance(c, sw, message)
        except ZbootError as err:
            sw.error = err
    todo = [sw for sw in todo if sw.error is None]
    ensure_boot_dir(c.runner, c.config)
    for sw in todo:
        try:
            sw.boot_file = _write(c, sw, new_mode, winpe)
        except ZbootError as err:
            sw.error = err
    faults.point("mode.scripts")
    c.zfs.mark(
        [host_dataset(c.config, sw.host) for sw in todo if sw.error is None],
        {"mode": new_mode} | done("mode"),
    )
    return switches


def _check(c: Context, state: State, sw: Switch, new_mode: str, force: bool) -> None:
    """Everything the switch needs, looked up; nothing changes yet."""
    h = state.host(sw.host)
    if h.unfinished and h.record.state != HostState.SWITCHING:
        raise Conflict(
            f"host {sw.host!r} is {h.get('state')} (step {h.get('step')})",
            hint="zboot sync finishes it",
        )
    record = h.record
    export = record_export(c.runner, c.config, sw.host, record)
    sw.target = boot_target(c.config, c.engine.lun, sw.host, record, export.chap)
    if sw.target is None:
        raise InvalidInput(
            "the config names no portal for clients ([target] portal)",
            hint='e.g. portal = "10.0.0.1:3260"',
        )
    sw.mac = record.mac
    image = state.image(record.image)
    sw.image = image.name
    # the image's mark names the host from the moment it is entering
    # maintenance: a switch to maintenance cut short is left like one done
    holds = image.dataset.prop(maintenance.HOLDER) == h.name
    if (record.mode == "maintenance" or holds) and new_mode != "maintenance":
        maintenance.check_leave(c.config, c.engine, h, image, record, force)
        sw.leaving = (h, image, record)
    if new_mode == "maintenance":
        maintenance.check_enter(image, h)
        sw.entering = (h, image, record, export.chap)


def _write(c: Context, sw: Switch, new_mode: str, winpe: str | None) -> str:
    if sw.target is None:  # _check made sure of one
        raise InvalidInput("the config names no portal for clients ([target] portal)")
    install_from = (winpe or c.config.winpe) if new_mode == "install" else None
    return write_script(c.runner, c.config, sw.mac, new_mode, sw.target, install_from)


def _maintenance(c: Context, sw: Switch, message: str | None) -> None:
    """Leave maintenance (the image's export down, its new version) and/or
    enter it (the image exported to this host alone)."""
    if sw.leaving is not None:
        host, image, record = sw.leaving
        sw.version = maintenance.leave(c.zfs, c.config, c.engine, host, image, record, message)
        faults.point("mode.left")
    if sw.entering is not None and sw.target is not None:
        host, image, record, chap = sw.entering
        gold = maintenance.enter(c.zfs, c.config, c.engine, host, image, record, chap)
        sw.target = BootTarget(
            sw.host,
            sw.target.portal,
            sw.target.lun,
            gold.target,
            sw.target.initiator,
            sw.target.chap,
            sw.target.root,
        )
        faults.point("mode.entered")
