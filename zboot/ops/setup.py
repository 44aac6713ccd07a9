"""`zboot init`: check the server (ZFS, the pool, target tools), create the
root datasets, and pick what must never change by itself afterwards (the
target engine, the target name base), stored in the config file."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, replace
from typing import Any

from .. import config as config_mod
from ..config import Config
from ..errors import InvalidInput, NotFound
from ..names import iqn
from ..targets.lio import has_rtslib
from ..targets.registry import TOOLS, pick, tools_on_server
from .context import Context
from .images import ensure_layout

SERVER_TOOLS = (*TOOLS, "qemu-img")


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


def init(c: Context) -> Initialized:
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
            hint="set [zfs] pool in the config file",
        )
    tools = tools_on_server(c.runner, SERVER_TOOLS)
    rtslib = has_rtslib(c.runner)
    created = ensure_layout(c.zfs, cfg)
    engine = cfg.engine if cfg.engine != "auto" else pick(tools, rtslib)
    iqn_base = cfg.iqn_base or default_iqn_base(c)
    path, added = write_config(replace(cfg, engine=engine, iqn_base=iqn_base), c.dry_run)
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
        config_path=path,
        config_added=added,
    )


def default_iqn_base(c: Context) -> str:
    """iqn.<this year-month>.<the server's domain, reversed>.zboot: picked once by
    init and stored, so it never changes by itself."""
    domain = c.runner.run(["hostname", "-d"], check=False, read_only=True).text.strip().lower()
    if "." not in domain or not re.fullmatch(r"[a-z0-9.-]+", domain):
        domain = "local"  # no domain: iqn.YYYY-MM.local.zboot
    return iqn(f"iqn.{time.strftime('%Y-%m')}.{'.'.join(reversed(domain.split('.')))}.zboot")


def write_config(cfg: Config, dry_run: bool) -> tuple[str, list[str]]:
    """Write the config file (on this machine), or add to the one in use the
    keys it lacks (a key it has is the admin's and stays). Returns the path
    and the keys written."""
    path = cfg.path or config_mod.DEFAULT_PATHS[0]
    if path.exists():
        text, added = config_mod.add_missing(path.read_text(), cfg)
    else:
        text, added = config_mod.render(cfg), ["(new file)"]
    if added and not dry_run:
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
