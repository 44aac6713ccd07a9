"""The `zboot` command: global options, `init`, and the command groups."""

from __future__ import annotations

import re
import time
from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer

from .. import config as config_mod
from ..config import Config, default_engine
from ..errors import InvalidInput, NotFound
from ..names import iqn
from ..ops.images import ensure_layout
from ..targets.lio import has_rtslib
from . import boot, doctor, exports, hosts, images, modes
from .session import ENGINE_TOOLS, Outcome, Session, run, tools_on_server

app = typer.Typer(
    help="Diskless machines from ZFS clones: golden images, per-host clones, rollback.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(images.app, name="image")
app.add_typer(exports.app, name="export")
app.command("doctor")(doctor.doctor)
app.command("sync")(doctor.sync)
hosts.register(app)
boot.register(app)
modes.register(app)

SERVER_TOOLS = (*ENGINE_TOOLS, "qemu-img")


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


@app.command("init")
def init(ctx: typer.Context) -> None:
    """Check the server (ZFS, pool, target tools) and create the root datasets."""

    def action(s: Session) -> Outcome:
        cfg = s.config
        version = s.zfs.version()
        pool = s.runner.run(
            ["zpool", "list", "-H", "-o", "name,size,free,health", cfg.pool], check=False
        )
        if pool.returncode != 0:
            raise NotFound(
                f"pool {cfg.pool!r} does not exist on the server",
                hint="set [zfs] pool in the config file",
            )
        tools = tools_on_server(s.runner, SERVER_TOOLS)
        rtslib = has_rtslib(s.runner)
        created = ensure_layout(s.zfs, cfg)
        engine = cfg.engine if cfg.engine != "auto" else default_engine(tools, rtslib)
        iqn_base = cfg.iqn_base or default_iqn_base(s)
        path, added = write_config(s, replace(cfg, engine=engine, iqn_base=iqn_base))
        name, size, free, health = pool.text.split()
        data = {
            "zfs": version,
            "pool": {
                "name": name,
                "size": int(size) if size.isdigit() else size,
                "free": free,
                "health": health,
            },
            "tools": tools,
            "rtslib": rtslib,
            "root": cfg.root,
            "created": created,
            "backend": s.zfs.backend,
            "engine": engine,
            "iqn_base": iqn_base,
            "config": {"path": path, "added": added},
        }
        lines = [
            f"ZFS {version.get('userland')} (kernel module {version.get('kmod', '?')}); "
            f"zboot changes it through {s.zfs.backend}",
            f"pool {name}: {health}, {free} free of {size}",
            f"target tools: {', '.join(tools) or 'none found'}; rtslib: "
            f"{'yes' if rtslib else 'no'}",
            f"target engine: {engine}; target names {iqn_base}:<host>",
            f"root dataset {cfg.root}: "
            + (f"created {', '.join(created)}" if created else "ready"),
            f"config file {path}: " + (f"added {', '.join(added)}" if added else "unchanged"),
        ]
        return Outcome(data, "\n".join(lines))

    run(ctx, "init", action)


def default_iqn_base(s: Session) -> str:
    """iqn.<this year-month>.<the server's domain, reversed>.zboot: picked once by
    init and stored, so it never changes by itself."""
    domain = s.runner.run(["hostname", "-d"], check=False).text.strip().lower()
    if "." not in domain or not re.fullmatch(r"[a-z0-9.-]+", domain):
        domain = "local"  # no domain: iqn.YYYY-MM.local.zboot
    return iqn(f"iqn.{time.strftime('%Y-%m')}.{'.'.join(reversed(domain.split('.')))}.zboot")


def write_config(s: Session, cfg: Config) -> tuple[str, list[str]]:
    """Write the config file, or add to the one in use the keys it lacks (a key
    it has is the admin's and stays). Returns the path and the keys written."""
    path = cfg.path or config_mod.DEFAULT_PATHS[0]
    if path.exists():
        text, added = config_mod.add_missing(path.read_text(), cfg)
    else:
        text, added = config_mod.render(cfg), ["(new file)"]
    if added and not s.dry_run:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(path.name + ".tmp")
            tmp.write_text(text)
            tmp.replace(path)
        except OSError as err:
            raise InvalidInput(
                f"cannot write config file {str(path)!r}: {err}",
                hint="give --config FILE for a file you can write",
            ) from err
    return str(path), added


def main() -> None:
    app()
