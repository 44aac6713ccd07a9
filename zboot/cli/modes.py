"""`zboot mode HOST MODE`: switch what a machine boots next by rewriting its
iPXE script (one atomic file write) and recording the mode on its disk.
Maintenance boots the golden image itself; leaving it snapshots the image."""

from __future__ import annotations

from typing import Annotated

import typer

from ..boot.ipxe import MODES, BootTarget
from ..errors import InvalidInput
from ..names import host_name
from ..ops import maintenance
from ..ops.bootfiles import boot_target, write_script
from ..ops.exports import record_export
from ..ops.state import read_state
from .session import Outcome, Session, run


def register(app: typer.Typer) -> None:
    @app.command("mode")
    def mode(ctx: typer.Context, host: str,
             new_mode: Annotated[str, typer.Argument(
                 metavar="MODE", help="normal, install, local or maintenance")],
             winpe: Annotated[str | None, typer.Option(
                 help="install mode: URL of a directory with wimboot, BCD, boot.sdi, "
                      "boot.wim (default: [boot] winpe; without one the machine falls "
                      "through to its next boot device)")
             ] = None,
             message: Annotated[str | None, typer.Option(
                 "--message", "-m", help="leaving maintenance: the new image version's note")
             ] = None,
             force: Annotated[bool, typer.Option(
                 help="leaving maintenance even while the machine is logged in to the image")
             ] = False,
             ) -> None:
        """Set what the machine boots next: its disk (normal), its disk attached
        for installing Windows (install), its local disk (local), or the golden
        image itself (maintenance; leaving it makes a new image version)."""
        def action(s: Session) -> Outcome:
            name = host_name(host)
            if new_mode not in MODES:
                raise InvalidInput(f"unknown mode {new_mode!r}", hint=f"one of {', '.join(MODES)}")
            if winpe is not None and new_mode != "install":
                raise InvalidInput("--winpe goes with install mode only")
            state = read_state(s.zfs, s.config)
            h = state.host(name)
            record = h.dataset.record()
            export = record_export(s.runner, s.config, name, record)
            target = boot_target(s.config, s.engine.lun, name, record, export.chap)
            if target is None:
                raise InvalidInput("the config names no portal for clients ([target] portal)",
                                   hint="e.g. portal = \"10.0.0.1:3260\"")
            image = state.image(record["image"])
            old, data = record.get("mode", "normal"), {}
            if old == "maintenance" and new_mode != "maintenance":
                data["version"] = maintenance.leave(s.zfs, s.config, s.engine, h, image,
                                                    record, message, force)
            if new_mode == "maintenance":
                gold = maintenance.enter(s.zfs, s.config, s.engine, h, image, record,
                                         export.chap)
                target = BootTarget(name, target.portal, target.lun, gold.target,
                                    target.initiator, target.chap)
            path = write_script(s.runner, s.config, record["mac"], new_mode, target,
                                (winpe or s.config.winpe) if new_mode == "install" else None)
            s.zfs.set_props(h.dataset.name, {"mode": new_mode})
            text = f"host {name}: mode {new_mode}; boot file {path}"
            if "version" in data:
                text += f"\nimage {image.name} saved as version {data['version']}"
            if new_mode == "maintenance":
                text += f"\n{name} boots image {image.name} itself ({target.target})"
            return Outcome({"host": name, "mode": new_mode, "boot_file": path,
                            "image_version": data.get("version")}, text)
        run(ctx, "mode", action)
