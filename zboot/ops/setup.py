"""`zboot init`: check the server (ZFS, the pool, target tools), create the
root datasets, and write the config file: the values given on the command
line, the keys the file lacks, and what must never change by itself
afterwards (the target engine, the target name base). A key the file has
and the command line does not give stays as the admin wrote it."""

from __future__ import annotations

import re
import time
import tomllib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from .. import own_file
from ..config import Config, sections
from ..config_edit import Edited, Values, check_value, edit
from ..errors import InvalidInput, NotFound
from ..names import iqn
from ..targets.lio import has_rtslib
from ..targets.registry import TOOLS, pick, tools_on_server
from .context import Context
from .images import ensure_layout

SERVER_TOOLS = (*TOOLS, "qemu-img")


@dataclass(frozen=True)
class ConfigFile:
    """The config file init edits, as it is now, and what to set in it."""

    path: Path
    text: str | None  # None: there is no file yet
    given: Values  # from the command line, checked


@dataclass(frozen=True)
class Initialized:
    zfs: dict[str, str]
    pool: dict[str, Any]
    tools: list[str]
    rtslib: bool
    created: list[str]
    backend: str
    engine: str
    iqn_base: str
    config_path: str
    config_added: list[str]
    config_changed: list[str]
    config_text: str
    config_written: bool


def given_values(options: dict[str, tuple[str, str, object]]) -> Values:
    """Command-line values by table and key, each checked by its key's rule:
    option name -> (table, key, value); a value of None was not given."""
    given: Values = {}
    for option, (table, key, value) in options.items():
        if value is not None:
            given.setdefault(table, {})[key] = check_value(table, key, value, option)
    return given


def open_file(path: Path, given: Values) -> tuple[ConfigFile, Config]:
    """The config file at path (maybe none yet) with the given values: the
    configuration init works with. Nothing is written; a bad value, given or
    in the file, is refused here, before the server is contacted."""
    text = own_file.read(path)
    if text is None and "host" not in given.get("server", {}):
        raise InvalidInput(
            f"no storage server given: no --server, and no config file at {path}",
            hint="give --server USER@HOST (--server local on the storage server itself)",
        )
    zfs = given.get("zfs", {})
    if "root" in zfs and "pool" not in zfs and not _has_pool(text):
        given = {**given, "zfs": {**zfs, "pool": str(zfs["root"]).split("/")[0]}}
    edited = edit(text or "", given, {}, path)
    return ConfigFile(path, text, given), edited.config


def _has_pool(text: str | None) -> bool:
    try:
        zfs = tomllib.loads(text or "").get("zfs")
    except tomllib.TOMLDecodeError:
        return False  # edit() says what is wrong with it
    return isinstance(zfs, dict) and "pool" in zfs


def init(c: Context, file: ConfigFile) -> Initialized:
    cfg = c.config
    version = c.zfs.version()
    pool = c.runner.run(
        ["zpool", "list", "-H", "-o", "name,size,free,health", cfg.pool],
        check=False,
        read_only=True,
    )
    if pool.returncode != 0:
        raise NotFound(
            f"pool {cfg.pool!r} does not exist on the server",
            hint="give --pool NAME (or set [zfs] pool in the config file)",
        )
    tools = tools_on_server(c.runner, SERVER_TOOLS)
    rtslib = has_rtslib(c.runner)
    created = ensure_layout(c.zfs, cfg)
    engine = cfg.engine if cfg.engine != "auto" else pick(tools, rtslib)
    iqn_base = cfg.iqn_base or default_iqn_base(c)
    edited = write_config(file, replace(cfg, engine=engine, iqn_base=iqn_base), c.dry_run)
    name, size, free, health = pool.text.split()
    return Initialized(
        zfs=version,
        pool={
            "name": name,
            "size": int(size) if size.isdigit() else size,
            "free": free,
            "health": health,
        },
        tools=tools,
        rtslib=rtslib,
        created=created,
        backend=c.zfs.backend,
        engine=engine,
        iqn_base=iqn_base,
        config_path=str(file.path),
        config_added=edited.added,
        config_changed=edited.changed,
        config_text=edited.text,
        config_written=(edited.touched or file.text is None) and not c.dry_run,
    )


def default_iqn_base(c: Context) -> str:
    """iqn.<this year-month>.<the server's domain, reversed>.zboot: picked once by
    init and stored, so it never changes by itself."""
    domain = c.runner.run(["hostname", "-d"], check=False, read_only=True).text.strip().lower()
    if "." not in domain or not re.fullmatch(r"[a-z0-9.-]+", domain):
        domain = "local"  # no domain: iqn.YYYY-MM.local.zboot
    return iqn(f"iqn.{time.strftime('%Y-%m')}.{'.'.join(reversed(domain.split('.')))}.zboot")


def write_config(file: ConfigFile, cfg: Config, dry_run: bool) -> Edited:
    """The config file (on this machine) with the given values set and every
    key it lacks added from cfg; written, unless this is a dry run or nothing
    changed."""
    edited = edit(file.text or "", file.given, sections(cfg), file.path)
    if (edited.touched or file.text is None) and not dry_run:
        own_file.write(file.path, edited.text)
    return edited
