"""`zboot serve`: the boot service, run on the storage server (the workflow
is zboot.ops.boot_service, the HTTP front zboot.serve)."""

from __future__ import annotations

import typer

from ..errors import ServerError, ZbootError
from .output import report_error
from .session import Session


def serve(ctx: typer.Context) -> None:
    """Answer each machine's request for its iPXE script from the ZFS records:
    reset ephemeral hosts as they boot, record unknown machines for `zboot
    adopt`, hand out CHAP secrets only to the machine they belong to. Runs on
    the storage server until stopped (contrib/boot/zboot-serve.service)."""
    session: Session = ctx.obj
    from ..serve import server  # waitress: needed on the storage server only

    try:
        try:
            server.serve(session.config)
        except OSError as err:  # the address taken, or a port below 1024 without root
            raise ServerError(f"cannot listen: {err}") from None
    except ZbootError as err:
        raise typer.Exit(report_error("serve", err, session.json)) from None
    except KeyboardInterrupt:
        raise typer.Exit(0) from None


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
