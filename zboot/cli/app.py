"""The `zboot` command: global options, `init`, and the command groups."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from . import (
    boot,
    data,
    doctor,
    enrol,
    ephemeral,
    exports,
    hosts,
    images,
    lifecycle,
    modes,
    power,
    restore,
    serve,
    server,
    setup,
)
from .session import Session

app = typer.Typer(
    help="Diskless machines from ZFS clones: golden images, per-host clones, rollback.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(images.app, name="image")
app.add_typer(exports.app, name="export")
app.add_typer(power.app, name="power")
app.add_typer(data.app, name="data")
app.add_typer(server.app, name="server")
app.command("doctor")(doctor.doctor)
app.command("sync")(doctor.sync)
app.command("unlock")(doctor.unlock)
hosts.register(app)
restore.register(app)
lifecycle.register(app)
boot.register(app)
modes.register(app)
serve.register(app)
ephemeral.register(app)
enrol.register(app)
setup.register(app)


@app.callback()
def main_options(
    ctx: typer.Context,
    server: Annotated[
        str | None,
        typer.Option(
            help="USER@HOST:PORT of the storage server (user and port optional), or 'local'"
        ),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(
            envvar="ZBOOT_CONFIG", help="config file (default ~/.config/zboot/config.toml)"
        ),
    ] = None,
    json: Annotated[bool, typer.Option("--json", help="print a versioned JSON envelope")] = False,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="read for real, print the planned commands, change nothing"),
    ] = False,
    verbose: Annotated[
        int, typer.Option("-v", "--verbose", count=True, help="list the commands run on the server")
    ] = 0,
    accept_new_host_key: Annotated[
        bool,
        typer.Option(
            "--accept-new-host-key",
            help="trust an SSH host key seen for the first time and record it (a changed key "
            "is always refused)",
        ),
    ] = False,
) -> None:
    ctx.obj = Session(
        config_file=config,
        server=server,
        json=json,
        dry_run=dry_run,
        verbose=verbose,
        accept_new_host_key=accept_new_host_key,
    )


def main() -> None:
    if os.environ.get("ZBOOT_TEST_FAULT") or os.environ.get("ZBOOT_TEST_FAULT_TRACE"):
        from ..testing import faults as injection  # tests only; see zboot/testing

        injection.install()
    app()
