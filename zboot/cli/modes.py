"""`zboot mode HOST... MODE`: what machines boot next (the workflow is
zboot.ops.modes)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from ..names import host_name
from ..ops import modes
from ..ops.modes import Switch
from .batch import HostResult, batch_outcome, one_or_batch
from .session import Outcome, Session, run


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
        typer.Option("--message", "-m", help="leaving maintenance: the new image version's note"),
    ] = None,
    force: Annotated[
        bool,
        typer.Option(help="leaving maintenance even while the machine is logged in to the image"),
    ] = False,
) -> None:
    """Set what machines boot next: their disks (normal), their disks attached
    for installing Windows (install), their local disks (local), or the golden
    image itself (maintenance, one host at a time; leaving it makes a new image
    version). Example: zboot mode pc01 pc02 install"""

    def action(s: Session) -> Outcome:
        names = list(dict.fromkeys(host_name(h) for h in hosts))
        switches = modes.switch(s.context, names, new_mode, winpe, message, force)
        return one_or_batch(
            switches,
            lambda one: Outcome(view(one, new_mode), describe(one, new_mode)),
            lambda all_: batch_outcome(
                [HostResult(sw.host, view(sw, new_mode), sw.boot_file, sw.error) for sw in all_],
                f"now {new_mode}",
                {"mode": new_mode},
            ),
            batched=len(names) > 1,
        )

    # the engine is called only to enter or leave maintenance: rtslib is
    # imported ahead for a switch to maintenance, and on first use when a
    # host leaves it (a switch to install or normal imports nothing)
    run(ctx, "mode", action, engine=new_mode == "maintenance")


def register(app: typer.Typer) -> None:
    app.command("mode")(mode)


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
