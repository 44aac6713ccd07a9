"""The `zboot` command: global options, `init`, and the command groups."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer

from .. import config as config_mod
from ..config import Config, default_engine
from ..errors import NotFound
from ..ops.images import ensure_layout
from . import hosts, images
from .session import Outcome, Session, run

app = typer.Typer(
    help="Diskless machines from ZFS clones: golden images, per-host clones, rollback.",
    no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
)
app.add_typer(images.app, name="image")
hosts.register(app)

SERVER_TOOLS = ("targetcli", "tgtadm", "istgtcontrol", "ctladm", "itadm", "qemu-img")


@app.callback()
def main_options(
    ctx: typer.Context,
    server: Annotated[str | None, typer.Option(
        help="USER@HOST:PORT of the storage server (user and port optional), or 'local'")
    ] = None,
    config: Annotated[Path | None, typer.Option(
        envvar="ZBOOT_CONFIG", help="config file (default ~/.config/zboot/config.toml)")
    ] = None,
    json: Annotated[bool, typer.Option("--json", help="print a versioned JSON envelope")] = False,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="read for real, print the planned commands, change nothing")
    ] = False,
    verbose: Annotated[int, typer.Option("-v", "--verbose", count=True,
                                         help="list the commands run on the server")] = 0,
    accept_new_host_key: Annotated[bool, typer.Option(
        "--accept-new-host-key",
        help="trust an SSH host key seen for the first time and record it (a changed key "
             "is always refused)")] = False,
) -> None:
    ctx.obj = Session(config_file=config, server=server, json=json, dry_run=dry_run,
                      verbose=verbose, accept_new_host_key=accept_new_host_key)


@app.command("init")
def init(ctx: typer.Context) -> None:
    """Check the server (ZFS, pool, target tools) and create the root datasets."""
    def action(s: Session) -> Outcome:
        cfg = s.config
        version = s.zfs.version()
        pool = s.runner.run(["zpool", "list", "-H", "-o", "name,size,free,health", cfg.pool],
                            check=False)
        if pool.returncode != 0:
            raise NotFound(f"pool {cfg.pool!r} does not exist on the server",
                           hint="set [zfs] pool in the config file")
        check = "for t; do command -v \"$t\" >/dev/null && echo \"$t\"; done; true"
        tools = s.runner.run(["sh", "-c", check, "sh", *SERVER_TOOLS]).text.split()
        rtslib = s.runner.run(["/usr/bin/python3", "-c", "import rtslib_fb"],
                              check=False).returncode == 0
        created = ensure_layout(s.zfs, cfg)
        engine = cfg.engine if cfg.engine != "auto" else default_engine(tools, rtslib)
        written = write_config(s, replace(cfg, engine=engine))
        name, size, free, health = pool.text.split()
        data = {"zfs": version, "pool": {"name": name, "size": int(size) if size.isdigit()
                                         else size, "free": free, "health": health},
                "tools": tools, "rtslib": rtslib, "root": cfg.root, "created": created,
                "backend": s.zfs.backend, "engine": engine, "config_written": written}
        lines = [f"ZFS {version.get('userland')} (kernel module {version.get('kmod', '?')}); "
                 f"zboot changes it through {s.zfs.backend}",
                 f"pool {name}: {health}, {free} free of {size}",
                 f"target tools: {', '.join(tools) or 'none found'}; rtslib: "
                 f"{'yes' if rtslib else 'no'}",
                 f"target engine: {engine}",
                 f"root dataset {cfg.root}: " + (f"created {', '.join(created)}"
                                                 if created else "ready"),
                 f"config file: {written or (str(cfg.path) + ' (unchanged)')}"]
        return Outcome(data, "\n".join(lines))
    run(ctx, "init", action)


def write_config(s: Session, cfg: Config) -> str | None:
    """Write a config file when none exists yet; an existing one is the admin's
    and stays as it is. Returns the path written, if any."""
    if cfg.path is not None or s.dry_run:
        return None
    path = config_mod.DEFAULT_PATHS[0]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(config_mod.render(cfg))
    tmp.replace(path)
    return str(path)


def main() -> None:
    app()
