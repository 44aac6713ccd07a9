"""`zboot init`: the config file written from options, the server checked and
its root datasets made."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from .. import config as config_mod
from ..errors import InvalidInput
from ..ops import setup
from ..ops.setup import Initialized
from .session import Outcome, Session, run


def _opt(help: str, metavar: str | None = None) -> Any:
    return typer.Option(help=help, metavar=metavar, show_default=False)


def init(
    ctx: typer.Context,
    server: Annotated[
        str | None, _opt("storage server: [USER@]HOST[:PORT] or 'local'", "SERVER")
    ] = None,
    pool: Annotated[str | None, _opt("ZFS pool", "POOL")] = None,
    root: Annotated[str | None, _opt("root dataset zboot owns (default POOL/zboot)", "DS")] = None,
    reserve: Annotated[
        str | None, _opt("free space to leave: 10%, 50G or 0 (default 10%)", "SPACE")
    ] = None,
    portal: Annotated[
        str | None, _opt("iSCSI portal as clients reach it: HOST[:PORT]", "PORTAL")
    ] = None,
    boot_url: Annotated[str | None, _opt("URL clients fetch boot scripts from", "URL")] = None,
    engine: Annotated[
        str | None, _opt("target engine: auto, lio, tgt, istgt, ctld, comstar, none", "NAME")
    ] = None,
    iqn_base: Annotated[
        str | None, _opt("target name base (default: made once from the domain)", "IQN")
    ] = None,
    secrets_dir: Annotated[str | None, _opt("CHAP secrets directory on the server", "DIR")] = None,
    boot_dir: Annotated[str | None, _opt("boot scripts directory on the server", "DIR")] = None,
    winpe: Annotated[str | None, _opt("URL of wimboot and WinPE (install mode)", "URL")] = None,
    scripts: Annotated[
        str | None, _opt("'files' (a web server serves boot_dir) or 'service'", "MODE")
    ] = None,
    key: Annotated[str | None, _opt("SSH private key on this machine", "FILE")] = None,
    known_hosts: Annotated[str | None, _opt("known_hosts file on this machine", "FILE")] = None,
    sudo: Annotated[
        bool, typer.Option("--sudo", help="run every server command through sudo -n")
    ] = False,
    no_sudo: Annotated[
        bool, typer.Option("--no-sudo", help="log in as a user who needs no sudo")
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="show the file and commands, change nothing")
    ] = False,
) -> None:
    """Write the config file and prepare the server.

    Checks the server (ZFS, the pool, target tools), creates the root dataset
    and its children, and writes the config file: the values given here
    replace the file's, every key the file lacks is added (the target engine
    found on the server, a target name base made once), and a key the file
    has stays as written, with its comments. Nothing is written when a value
    is wrong, no server is given (--server, or the file's), or the server
    check fails.

    Example: zboot init --server root@storage --pool tank --portal
    10.0.0.1:3260 --boot-url http://10.0.0.1/boot
    """
    session: Session = ctx.obj
    session.dry_run = session.dry_run or dry_run
    options: dict[str, tuple[str, str, object]] = {
        "--pool": ("zfs", "pool", pool),
        "--root": ("zfs", "root", root),
        "--reserve": ("zfs", "reserve", reserve),
        "--portal": ("target", "portal", portal),
        "--engine": ("target", "engine", engine),
        "--iqn-base": ("target", "iqn_base", iqn_base),
        "--secrets-dir": ("target", "secrets_dir", secrets_dir),
        "--boot-url": ("boot", "url", boot_url),
        "--boot-dir": ("boot", "dir", boot_dir),
        "--winpe": ("boot", "winpe", winpe),
        "--scripts": ("boot", "scripts", scripts),
        "--key": ("server", "key", key),
        "--known-hosts": ("server", "known_hosts", known_hosts),
        "--sudo": ("server", "sudo", True if sudo else False if no_sudo else None),
    }

    def action(s: Session) -> Outcome:
        if sudo and no_sudo:
            raise InvalidInput("give --sudo or --no-sudo, not both")
        given = setup.given_values(options)
        spec = server or s.server  # init's --server, else the global one
        if spec is not None:
            given.setdefault("server", {}).update(server_values(spec))
        path = config_mod.init_path(s.config_file)
        file, s._config = setup.open_file(path, given)
        done = setup.init(s.context, file)
        if s.dry_run and not s.json:
            print(f"config file {path} would be:\n{done.config_text}")
        return initialized(done, s.config.root)

    run(ctx, "init", action)


def server_values(spec: str) -> dict[str, object]:
    """--server [USER@]HOST[:PORT]: host, and user and port when given."""
    parsed = config_mod.parse_server(spec)
    values: dict[str, object] = {"host": parsed.host}
    if parsed.user is not None:
        values["user"] = parsed.user
    if parsed.port is not None:
        values["port"] = parsed.port
    return values


def initialized(done: Initialized, root: str) -> Outcome:
    pool = done.pool
    config: dict[str, object] = {
        "path": done.config_path,
        "added": done.config_added,
        "changed": done.config_changed,
        "written": done.config_written,
    }
    if not done.config_written:
        config["text"] = done.config_text
    data = {
        "zfs": done.zfs,
        "pool": pool,
        "tools": done.tools,
        "rtslib": done.rtslib,
        "root": root,
        "created": done.created,
        "backend": done.backend,
        "engine": done.engine,
        "iqn_base": done.iqn_base,
        "config": config,
    }
    edits = [f"added {', '.join(done.config_added)}"] if done.config_added else []
    edits += [f"changed {', '.join(done.config_changed)}"] if done.config_changed else []
    lines = [
        f"ZFS {done.zfs.get('userland')} (kernel module {done.zfs.get('kmod', '?')}); "
        f"zboot changes it through {done.backend}",
        f"pool {pool['name']}: {pool['health']}, {pool['free']} free of {pool['size']}",
        f"target tools: {', '.join(done.tools) or 'none found'}; rtslib: "
        f"{'yes' if done.rtslib else 'no'}",
        f"target engine: {done.engine}; target names {done.iqn_base}:<host>",
        f"root dataset {root}: "
        + (f"created {', '.join(done.created)}" if done.created else "ready"),
        f"config file {done.config_path}: " + ("; ".join(edits) or "unchanged"),
    ]
    return Outcome(data, "\n".join(lines))


def register(app: typer.Typer) -> None:
    app.command("init")(init)
