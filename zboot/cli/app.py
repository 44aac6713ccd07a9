"""The `zboot` command: global options, `init`, and the command groups."""

from __future__ import annotations

import os
from importlib import metadata
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
from .usage import JsonUsageGroup

app = typer.Typer(
    cls=JsonUsageGroup,
    help="Diskless machines from ZFS clones: golden images, per-host clones, rollback.",
    no_args_is_help=True,
    # click's own help layout: it rewraps docstrings' paragraphs and prints
    # text as written (rich's would keep their line breaks, read [...] as
    # markup and label every flag <bool> on newer typers)
    rich_markup_mode=None,
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


def zboot_version() -> str:
    """The installed package's version (written once, in pyproject.toml)."""
    try:
        return metadata.version("zboot")
    except metadata.PackageNotFoundError:
        return "unknown (zboot is not installed: pip install it)"


def print_version(value: bool) -> None:
    if value:
        print(f"zboot {zboot_version()}")
        raise typer.Exit()


@app.callback()
def main_options(
    ctx: typer.Context,
    server: Annotated[
        str | None,
        typer.Option(
            help="USER@HOST:PORT of the storage server (user and port optional), or 'local'",
            metavar="SERVER",
        ),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(
            envvar="ZBOOT_CONFIG",
            help="config file (default ~/.config/zboot/config.toml)",
            metavar="FILE",
        ),
    ] = None,
    json: Annotated[bool, typer.Option("--json", help="print a versioned JSON envelope")] = False,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="read for real, print the planned commands, change nothing"),
    ] = False,
    verbose: Annotated[
        int,
        typer.Option(
            "-v",
            "--verbose",
            count=True,
            show_default=False,
            help="list the commands run on the server",
        ),
    ] = 0,
    accept_new_host_key: Annotated[
        bool,
        typer.Option(
            "--accept-new-host-key",
            help="trust an SSH host key seen for the first time and record it (a changed key "
            "is always refused)",
        ),
    ] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version", is_eager=True, callback=print_version, help="print zboot's version"
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
