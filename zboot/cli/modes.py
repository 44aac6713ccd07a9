"""`zboot mode HOST... MODE`: switch what machines boot next by rewriting
their iPXE scripts (one atomic file write each) and recording the mode on
their disks. Maintenance boots the golden image itself (one host at a time);
leaving it snapshots the image."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

import typer

from .. import faults
from .. import names as names_mod
from ..boot.ipxe import MODES, BootTarget
from ..errors import Conflict, InvalidInput, ZbootError
from ..names import host_name, url
from ..ops import maintenance
from ..ops.bootfiles import boot_target, ensure_boot_dir, write_script
from ..ops.exports import record_export
from ..ops.state import Host, Image, done, reached, read_state
from ..targets.base import Chap
from .batch import HostResult, batch_outcome
from .session import Outcome, Session, run


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
    leaving: tuple[Host, Image, dict[str, str]] | None = None
    entering: tuple[Host, Image, dict[str, str], Chap | None] | None = None


def switch(
    s: Session, names: list[str], new_mode: str, winpe: str | None, message: str | None, force: bool
) -> list[Switch]:
    """Check every host (nothing changes yet); mark them "switching" (one zfs
    command); leave or enter maintenance; rewrite each script (one file write
    each); record the new mode and "ready" (one zfs command). A host that
    fails (unknown, leaving maintenance while in use) fails alone; one cut
    short stays "switching", and the same command finishes it."""
    state = read_state(s.zfs, s.config)
    switches = [Switch(n) for n in names]
    for sw in switches:
        try:
            h = state.host(sw.host)
            if h.unfinished and h.get("state") != "switching":
                raise Conflict(
                    f"host {sw.host!r} is {h.get('state')} (step {h.get('step')})",
                    hint="zboot sync finishes it",
                )
            record = h.dataset.record()
            export = record_export(s.runner, s.config, sw.host, record)
            sw.target = boot_target(s.config, s.engine.lun, sw.host, record, export.chap)
            if sw.target is None:
                raise InvalidInput(
                    "the config names no portal for clients ([target] portal)",
                    hint='e.g. portal = "10.0.0.1:3260"',
                )
            sw.mac = record["mac"]
            image = state.image(record["image"])
            sw.image = image.name
            if record.get("mode", "normal") == "maintenance" and new_mode != "maintenance":
                maintenance.check_leave(s.config, s.engine, h, image, record, force)
                sw.leaving = (h, image, record)
            if new_mode == "maintenance":
                maintenance.check_enter(image, h)
                sw.entering = (h, image, record, export.chap)
        except ZbootError as err:
            sw.error = err
    todo = [sw for sw in switches if sw.error is None and sw.target is not None]
    if not todo:
        return switches
    s.zfs.mark(
        [f"{s.config.hosts}/{sw.host}" for sw in todo], reached("mode", new_mode, "switching")
    )
    faults.point("mode.marked", engine=True)
    for sw in todo:
        try:
            _maintenance(s, sw, message)
        except ZbootError as err:
            sw.error = err
    todo = [sw for sw in todo if sw.error is None]
    ensure_boot_dir(s.runner, s.config)
    for sw in todo:
        if sw.target is None:
            continue
        try:
            sw.boot_file = write_script(
                s.runner,
                s.config,
                sw.mac,
                new_mode,
                sw.target,
                (winpe or s.config.winpe) if new_mode == "install" else None,
            )
        except ZbootError as err:
            sw.error = err
    faults.point("mode.scripts")
    s.zfs.mark(
        [f"{s.config.hosts}/{sw.host}" for sw in todo if sw.error is None],
        {"mode": new_mode} | done("mode"),
    )
    return switches


def _maintenance(s: Session, sw: Switch, message: str | None) -> None:
    """Leave maintenance (the image's export down, its new version) and/or
    enter it (the image exported to this host alone)."""
    if sw.leaving is not None:
        host, image, record = sw.leaving
        sw.version = maintenance.leave(s.zfs, s.config, s.engine, host, image, record, message)
        faults.point("mode.left")
    if sw.entering is not None and sw.target is not None:
        host, image, record, chap = sw.entering
        gold = maintenance.enter(s.zfs, s.config, s.engine, host, image, record, chap)
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


def register(app: typer.Typer) -> None:
    @app.command("mode")
    def mode(
        ctx: typer.Context,
        hosts: Annotated[list[str], typer.Argument(metavar="HOST...")],
        new_mode: Annotated[
            str, typer.Argument(metavar="MODE", help="normal, install, local or maintenance")
        ],
        winpe: Annotated[
            str | None,
            typer.Option(
                help="install mode: URL of a directory with wimboot, BCD, boot.sdi, "
                "boot.wim (default: [boot] winpe; without one the machine falls "
                "through to its next boot device)"
            ),
        ] = None,
        message: Annotated[
            str | None,
            typer.Option(
                "--message", "-m", help="leaving maintenance: the new image version's note"
            ),
        ] = None,
        force: Annotated[
            bool,
            typer.Option(
                help="leaving maintenance even while the machine is logged in to the image"
            ),
        ] = False,
    ) -> None:
        """Set what machines boot next: their disks (normal), their disks attached
        for installing Windows (install), their local disks (local), or the golden
        image itself (maintenance, one host at a time; leaving it makes a new image
        version). Example: zboot mode pc01 pc02 install"""

        def action(s: Session) -> Outcome:
            names = list(dict.fromkeys(host_name(h) for h in hosts))
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
            switches = switch(s, names, new_mode, winpe, message, force)
            if len(switches) == 1:
                [one] = switches
                if one.error is not None:
                    raise one.error
                return Outcome(view(one, new_mode), describe(one, new_mode))
            return batch_outcome(
                [
                    HostResult(sw.host, view(sw, new_mode), sw.boot_file, sw.error)
                    for sw in switches
                ],
                f"now {new_mode}",
                {"mode": new_mode},
            )

        run(ctx, "mode", action)


def view(sw: Switch, new_mode: str) -> dict[str, Any]:
    return {
        "host": sw.host,
        "mode": new_mode,
        "boot_file": sw.boot_file or None,
        "image_version": sw.version,
    }


def describe(sw: Switch, new_mode: str) -> str:
    text = f"host {sw.host}: mode {new_mode}; boot file {sw.boot_file}"
    if sw.version is not None:
        text += f"\nimage {sw.image} saved as version {sw.version}"
    if new_mode == "maintenance" and sw.target is not None:
        text += f"\n{sw.host} boots image {sw.image} itself ({sw.target.target})"
    return text
