"""Typed configuration, read from a TOML file.

Where the file comes from, first match wins: `--config FILE`, `$ZBOOT_CONFIG`,
`~/.config/zboot/config.toml`, `/etc/zboot/config.toml`. `--server` overrides
the file's server."""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .errors import InvalidInput
from .names import dataset_name, url

DEFAULT_PATHS = (Path.home() / ".config" / "zboot" / "config.toml", Path("/etc/zboot/config.toml"))
LOCAL = "local"
# used with fullmatch: `$` would let a trailing newline through
SERVER_RE = re.compile(
    r"(?:(?P<user>[a-z_][a-z0-9_.-]{0,31})@)?"
    r"(?P<host>[A-Za-z0-9][A-Za-z0-9.-]{0,252}|\[[0-9a-fA-F:]+\])"
    r"(?::(?P<port>[0-9]{1,5}))?"
)


@dataclass(frozen=True)
class ServerConfig:
    host: str = LOCAL  # "local": zboot runs on the storage server itself
    port: int | None = None
    user: str | None = None
    key: str | None = None
    known_hosts: str | None = None
    sudo: bool = False
    lock_timeout: float = 300.0  # seconds a zboot waits for another one's lock

    @property
    def is_local(self) -> bool:
        return self.host == LOCAL


@dataclass(frozen=True)
class Config:
    server: ServerConfig = field(default_factory=ServerConfig)
    pool: str = "tank"
    root: str = "tank/zboot"
    engine: str = "auto"
    portal: str | None = None
    iqn_base: str | None = None
    secrets_dir: str = "/etc/zboot/secrets"  # on the server, root only
    boot_dir: str = "/srv/zboot/boot"
    boot_url: str | None = None
    winpe: str | None = None  # install mode: URL of wimboot + WinPE files
    path: Path | None = None  # the file it was read from

    @property
    def images(self) -> str:
        return f"{self.root}/images"

    @property
    def hosts(self) -> str:
        return f"{self.root}/hosts"

    @property
    def archive(self) -> str:
        """Where a host's discarded states are kept until pruned."""
        return f"{self.root}/archive"


def parse_server(spec: str) -> ServerConfig:
    """`[user@]host[:port]` or `local`."""
    if spec == LOCAL:
        return ServerConfig()
    match = SERVER_RE.fullmatch(spec)
    if not match:
        raise InvalidInput(f"--server {spec!r} is not [user@]host[:port] or 'local'")
    port = int(match["port"]) if match["port"] else None
    if port is not None and not 0 < port < 65536:
        raise InvalidInput(f"--server {spec!r}: port {port} is out of range")
    return ServerConfig(host=match["host"].strip("[]"), port=port, user=match["user"])


def find_config(explicit: Path | None) -> Path | None:
    if explicit is not None:
        if not explicit.is_file():
            raise InvalidInput(f"config file {str(explicit)!r} does not exist")
        return explicit
    env = os.environ.get("ZBOOT_CONFIG")
    if env:
        path = Path(env)
        if not path.is_file():
            raise InvalidInput(f"ZBOOT_CONFIG names {env!r}, which does not exist")
        return path
    return next((p for p in DEFAULT_PATHS if p.is_file()), None)


def _section(data: dict[str, Any], name: str) -> dict[str, Any]:
    value = data.get(name, {})
    if not isinstance(value, dict):
        raise InvalidInput(f"[{name}] in the config file must be a table")
    return value


def seconds(value: object, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise InvalidInput(f"{key} must be a number of seconds, not {value!r}")
    return float(value)


def load(explicit: Path | None = None, server: str | None = None) -> Config:
    path = find_config(explicit)
    data: dict[str, Any] = {}
    if path is not None:
        try:
            data = tomllib.loads(path.read_text())
        except (OSError, tomllib.TOMLDecodeError) as err:
            raise InvalidInput(f"cannot read config file {str(path)!r}: {err}") from err
    s, z, t, b = (_section(data, n) for n in ("server", "zfs", "target", "boot"))
    server_config = ServerConfig(
        host=str(s.get("host", LOCAL)),
        port=s.get("port"),
        user=s.get("user"),
        key=s.get("key"),
        known_hosts=s.get("known_hosts"),
        sudo=bool(s.get("sudo", False)),
        lock_timeout=seconds(s.get("lock_timeout", 300), "server.lock_timeout"),
    )
    if server is not None:
        override = parse_server(server)
        server_config = (
            override
            if override.is_local
            else replace(
                server_config,
                host=override.host,
                port=override.port or server_config.port,
                user=override.user or server_config.user,
            )
        )
    pool = dataset_name(str(z.get("pool", "tank")))
    root = dataset_name(str(z.get("root", f"{pool}/zboot")))
    if root.split("/")[0] != pool.split("/")[0]:
        raise InvalidInput(f"zfs.root {root!r} is not in pool {pool!r}")
    return Config(
        server=server_config,
        pool=pool,
        root=root,
        engine=str(t.get("engine", "auto")),
        portal=t.get("portal"),
        iqn_base=t.get("iqn_base"),
        secrets_dir=str(t.get("secrets_dir", "/etc/zboot/secrets")),
        boot_dir=str(b.get("dir", "/srv/zboot/boot")),
        boot_url=b.get("url"),
        winpe=url(str(b["winpe"]), "[boot] winpe") if b.get("winpe") else None,
        path=path,
    )


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def sections(config: Config) -> dict[str, dict[str, object]]:
    """The configuration as TOML tables and keys (None: not set)."""
    s = config.server
    return {
        "server": {
            "host": s.host,
            "port": s.port,
            "user": s.user,
            "key": s.key,
            "known_hosts": s.known_hosts,
            "sudo": s.sudo,
        },
        "zfs": {"pool": config.pool, "root": config.root},
        "target": {
            "engine": config.engine,
            "portal": config.portal,
            "iqn_base": config.iqn_base,
            "secrets_dir": config.secrets_dir,
        },
        "boot": {"dir": config.boot_dir, "url": config.boot_url, "winpe": config.winpe},
    }


def render(config: Config) -> str:
    """The configuration as a TOML file (only the keys that are set)."""
    out = ["# zboot configuration, written by `zboot init`."]
    for name, values in sections(config).items():
        out.append(f"\n[{name}]")
        out += [f"{k} = {_toml_value(v)}" for k, v in values.items() if v is not None]
    return "\n".join(out) + "\n"


def add_missing(text: str, config: Config) -> tuple[str, list[str]]:
    """The file's text with the keys it lacks added from config, and their names
    ("table.key"). A key the file has is never changed, and its comments and
    layout stay as they are."""
    try:
        present = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise InvalidInput(f"cannot read config file: {err}") from err
    lines = text.splitlines()
    added: list[str] = []
    for table, values in sections(config).items():
        have = present.get(table, {})
        new = [
            f"{k} = {_toml_value(v)}" for k, v in values.items() if v is not None and k not in have
        ]
        if not new:
            continue
        added += [f"{table}.{line.split(' = ')[0]}" for line in new]
        header = re.compile(rf"^\s*\[\s*{table}\s*\]\s*(#.*)?$")
        at = next((i for i, line in enumerate(lines) if header.match(line)), None)
        if at is None:
            lines += ["", f"[{table}]", *new]
        else:
            lines[at + 1 : at + 1] = new
    return "\n".join(lines) + "\n", added
