"""`zboot mode HOST MODE`: switch what a machine boots next by rewriting its
iPXE script (one atomic file write) and recording the mode on its disk."""

from __future__ import annotations

from typing import Annotated

import typer

from ..boot.ipxe import MODES
from ..errors import InvalidInput
from ..names import host_name
from ..ops.bootfiles import boot_target, write_script
from ..ops.exports import record_export
from ..ops.state import read_state
from .session import Outcome, Session, run

BUILT_MODES = ("normal", "install", "local")


def register(app: typer.Typer) -> None:
    @app.command("mode")
    def mode(ctx: typer.Context, host: str,
             new_mode: Annotated[str, typer.Argument(
                 metavar="MODE", help="normal, install or local")],
             winpe: Annotated[str | None, typer.Option(
                 help="install mode: URL of a directory with wimboot, BCD, boot.sdi, "
                      "boot.wim (else the machine falls through to its next boot device)")
             ] = None,
             ) -> None:
        """Set what the machine boots next: its disk (normal), its disk attached
        for installing Windows (install), or its local disk (local)."""
        def action(s: Session) -> Outcome:
            name = host_name(host)
            if new_mode not in MODES:
                raise InvalidInput(f"unknown mode {new_mode!r}",
                                   hint=f"one of {', '.join(BUILT_MODES)}")
            if new_mode not in BUILT_MODES:
                raise InvalidInput(f"mode {new_mode!r} is not built yet",
                                   hint=f"one of {', '.join(BUILT_MODES)}")
            if winpe is not None and new_mode != "install":
                raise InvalidInput("--winpe goes with install mode only")
            h = read_state(s.zfs, s.config).host(name)
            record = h.dataset.record()
            export = record_export(s.runner, s.config, name, record)
            target = boot_target(s.config, s.engine.lun, name, record, export.chap)
            if target is None:
                raise InvalidInput("the config names no portal for clients ([target] portal)",
                                   hint="e.g. portal = \"10.0.0.1:3260\"")
            path = write_script(s.runner, s.config, record["mac"], new_mode, target, winpe)
            s.zfs.set_props(h.dataset.name, {"mode": new_mode})
            return Outcome({"host": name, "mode": new_mode, "boot_file": path},
                           f"host {name}: mode {new_mode}; boot file {path}")
        run(ctx, "mode", action)
