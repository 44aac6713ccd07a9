"""Typed configuration, read from a TOML file (every key: docs/config.md).

Where the file comes from, first match wins: `--config FILE`, `$ZBOOT_CONFIG`,
`$XDG_CONFIG_HOME/zboot/config.toml` (`~/.config/zboot/config.toml` when
XDG_CONFIG_HOME is unset or not absolute), `/etc/zboot/config.toml`.
`--server` overrides the file's server."""

from __future__ import annotations

import difflib
import ipaddress
import os
import posixpath
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .errors import InvalidInput
from .names import dataset_name, image_name, iqn, name_pattern, size_bytes, url

SYSTEM_CONFIG = Path("/etc/zboot/config.toml")


def user_config() -> Path:
    """This user's config file: under $XDG_CONFIG_HOME, else ~/.config (the XDG
    base directory rules: a relative XDG_CONFIG_HOME is ignored)."""
    xdg = os.environ.get("XDG_CONFIG_HOME", "")
    base = Path(xdg) if os.path.isabs(xdg) else Path.home() / ".config"
    return base / "zboot" / "config.toml"


def default_paths() -> tuple[Path, Path]:
    """Where the config file is looked for without --config or $ZBOOT_CONFIG."""
    return user_config(), SYSTEM_CONFIG


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
class ServeConfig:
    """`zboot serve`, the boot service ([serve] table; docs/boot.md)."""

    listen: str | None = None  # the address it listens on; default the boot URL's host
    port: int | None = None  # default the boot URL's port (80 for http)
    interface: str | None = None  # the boot LAN's interface: Wake-on-LAN goes out there
    check_mac: bool = True  # answer a MAC's script only to that MAC (neighbour table)
    discover_limit: int = 256  # unknown machines recorded at most (0: none)
    adopt_image: str | None = None  # provision unknown machines from it at once
    adopt_names: str = "pc{n:03}"  # the names those machines get


SCRIPTS = ("files", "service")  # where clients get their iPXE scripts


@dataclass(frozen=True)
class Config:
    server: ServerConfig = field(default_factory=ServerConfig)
    pool: str = "tank"
    root: str = "tank/zboot"
    # free space clone, commit and rebase leave untouched: "N%" of the space
    # the root can use, a size ("50G"), or "0" for none
    reserve: str = "10%"
    engine: str = "auto"
    portal: str | None = None
    iqn_base: str | None = None
    secrets_dir: str = "/etc/zboot/secrets"  # on the server, root only
    boot_dir: str = "/srv/zboot/boot"
    boot_url: str | None = None
    winpe: str | None = None  # install mode: URL of wimboot + WinPE files
    # "files": zboot writes each host's script into boot_dir for a web server;
    # "service": `zboot serve` answers for every host and zboot writes none
    scripts: str = "files"
    serve: ServeConfig = field(default_factory=ServeConfig)
    path: Path | None = None  # the file it was read from

    @property
    def images(self) -> str:
        return f"{self.root}/images"

    @property
    def hosts(self) -> str:
        return f"{self.root}/hosts"

    @property
    def data(self) -> str:
        """Where hosts' data disks are (one zvol per host, beside its OS disk)."""
        return f"{self.root}/data"

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
    return next((p for p in default_paths() if p.is_file()), None)


def init_path(explicit: Path | None) -> Path:
    """The file `zboot init` writes: `--config FILE` or $ZBOOT_CONFIG (which
    need not exist yet), else the one in use, else this user's."""
    env = os.environ.get("ZBOOT_CONFIG")
    if explicit is None and env:
        explicit = Path(env)
    if explicit is not None:
        return explicit
    return next((p for p in default_paths() if p.is_file()), user_config())


# --- checking the file: every table, key and value ------------------------------

# The target engines zboot has (zboot.targets.registry.NAMES; the config may not
# import the engines, so a unit test holds the two equal).
ENGINES = ("lio", "tgt", "istgt", "ctld", "comstar", "none")
# Directories zboot must never take for its own (secrets_dir, [boot] dir): besides
# these, "/" and every top-level directory, and anything under a volatile or
# pseudo file system.
SYSTEM_DIRS = frozenset(
    {
        *(f"/usr/{d}" for d in ("bin", "sbin", "lib", "lib64", "libexec", "local", "share")),
        *(f"/usr/local/{d}" for d in ("bin", "sbin", "lib", "etc", "share")),
        *(f"/var/{d}" for d in ("cache", "lib", "log", "mail", "spool", "www", "backups")),
        *(f"/etc/{d}" for d in ("ssh", "ssl", "pam.d", "sudoers.d", "systemd", "init.d")),
        *(f"/etc/{d}" for d in ("default", "cron.d", "security", "network", "zfs")),
    }
)
VOLATILE = ("/proc", "/sys", "/dev", "/run", "/tmp", "/var/tmp")  # noqa: S108 (refused)
MAX_SECONDS = 86400.0
MAX_DISCOVERED = 4096
_INTERFACE_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:-]{0,14}")
_MAX_PATH = 1024
_HOST_NAME_RE = re.compile(
    r"(?=.{1,253}\Z)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*"
)
_USER_RE = re.compile(r"[a-z_][a-z0-9_.-]{0,31}")
_SERVER_PATH_RE = re.compile(r"(?:/[A-Za-z0-9_.@+=,:-]+)+")
_LOCAL_PATH_RE = re.compile(r"[A-Za-z0-9_.@+=,:/~][A-Za-z0-9_.@+=,:/~-]*")
_PORTAL_RE = re.compile(
    r"(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<host>[A-Za-z0-9.-]+))(?::(?P<port>[0-9]{1,5}))?"
)


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else f"{text[:80]}... ({len(text)} characters)"


def _text(value: object) -> str:
    if not isinstance(value, str):
        raise InvalidInput(
            f"must be text (a quoted string), not {type(value).__name__} {_show(value)}"
        )
    if not value:
        raise InvalidInput("is empty", hint="leave the key out instead")
    return value


def _flag(value: object) -> bool:
    if not isinstance(value, bool):
        raise InvalidInput(f"must be true or false (unquoted), not {_show(value)}")
    return value


def _port(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 65536:
        raise InvalidInput(f"must be a port number 1-65535 (unquoted), not {_show(value)}")
    return value


def _seconds(value: object) -> float:
    # NaN fails the range check too
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not 0 <= value <= MAX_SECONDS
    ):
        raise InvalidInput(f"must be a number of seconds 0-{MAX_SECONDS:.0f}, not {_show(value)}")
    return float(value)


RESERVE_RE = re.compile(r"([0-9]{1,2})%")


def _reserve(value: object) -> str:
    text = _text(value)
    if text == "0" or RESERVE_RE.fullmatch(text):
        return text
    try:
        size_bytes(text)
    except InvalidInput:
        raise InvalidInput(
            f"must be a share of the pool like 10%, a size like 50G, or 0, not {_show(text)}"
        ) from None
    return text


def reserve_bytes(reserve: str, capacity: int) -> int:
    """The reserve in bytes, for a root that can use `capacity` bytes."""
    if reserve == "0":
        return 0
    if match := RESERVE_RE.fullmatch(reserve):
        return capacity * int(match[1]) // 100
    return size_bytes(reserve)


def _ipv6(value: str) -> bool:
    try:
        ipaddress.IPv6Address(value)
    except ValueError:
        return False
    return True


def _server_host(value: object) -> str:
    text = _text(value)
    bare = text[1:-1] if text.startswith("[") and text.endswith("]") else text
    if (
        text == LOCAL
        or _HOST_NAME_RE.fullmatch(bare)
        or (bare.isascii() and ":" in bare and _ipv6(bare))
    ):
        return bare
    raise InvalidInput(
        f"{_show(text)} is not 'local', a host name or an IP address",
        hint="e.g. storage.example.org, 10.0.0.2 or fd00::2",
    )


def _user(value: object) -> str:
    text = _text(value)
    if not _USER_RE.fullmatch(text):
        raise InvalidInput(f"{_show(text)} is not a user name", hint="e.g. root or zb_admin")
    return text


def _local_path(value: object) -> str:
    text = _text(value)
    if len(text) > _MAX_PATH or not _LOCAL_PATH_RE.fullmatch(text):
        raise InvalidInput(
            f"{_show(text)} is not a file name of letters, digits and . _ @ + = , : / ~ -",
            hint="e.g. ~/.ssh/id_ed25519",
        )
    return text


def _server_dir(value: object) -> str:
    """An absolute, normalised directory on the server that is not a system one
    (a trailing '/' is dropped)."""
    text = _text(value)
    path = text.rstrip("/") if len(text) > 1 else text
    if len(path) > _MAX_PATH or not _SERVER_PATH_RE.fullmatch(path):
        raise InvalidInput(
            f"{_show(text)} is not an absolute path of letters, digits and . _ @ + = , : -",
            hint="e.g. /srv/zboot/boot",
        )
    if posixpath.normpath(path) != path or "/./" in path + "/" or "/../" in path + "/":
        raise InvalidInput(f"{_show(text)} has '.' or '..' components", hint="give a plain path")
    if path.count("/") < 2 or path in SYSTEM_DIRS or _under(path, VOLATILE):
        raise InvalidInput(
            f"{_show(text)} is a system directory or under one zboot must not use",
            hint="give a directory of zboot's own, e.g. /srv/zboot/secrets",
        )
    return path


def _under(path: str, tops: tuple[str, ...]) -> bool:
    return any(path == top or path.startswith(top + "/") for top in tops)


def _pool(value: object) -> str:
    text = dataset_name(_text(value))
    if "/" in text:
        raise InvalidInput(f"{_show(text)} is a dataset, not a pool", hint="e.g. tank")
    return text


def _dataset(value: object) -> str:
    return dataset_name(_text(value))


def _engine(value: object) -> str:
    text = _text(value)
    if text not in ("auto", *ENGINES):
        raise InvalidInput(
            f"{_show(text)} is not an engine", hint=f"one of: auto, {', '.join(ENGINES)}"
        )
    return text


def _portal(value: object) -> str:
    """host[:port] or [IPv6]:port, as the clients reach the target."""
    text = _text(value)
    match = _PORTAL_RE.fullmatch(text)
    good = match is not None and (
        _ipv6(match["v6"]) and bool(match["port"])
        if match["v6"]
        else bool(_HOST_NAME_RE.fullmatch(match["host"]))
    )
    if not match or not good or (match["port"] and not 0 < int(match["port"]) < 65536):
        raise InvalidInput(
            f"{_show(text)} is not host[:port] or [IPv6]:port",
            hint="e.g. 10.0.0.1:3260, boot.example.org or [fd00::1]:3260",
        )
    return text


def _iqn_base(value: object) -> str:
    text = _text(value)
    iqn(text)
    return text


def _boot_url(value: object) -> str:
    """A URL for iPXE scripts and DHCP configs: names.url's, no ',' (a field
    separator in dnsmasq's dhcp-boot) and a host that is a name or address."""
    text = url(_text(value), "URL")
    try:
        parts = urlsplit(text)
        host, _ = parts.hostname, parts.port
    except ValueError:
        host = None
    plain = host is not None and (bool(_HOST_NAME_RE.fullmatch(host)) or _ipv6(host))
    if "," in text or not plain:
        raise InvalidInput(
            f"{_show(text)} is not a plain URL with a host name or address",
            hint="e.g. http://10.0.0.1/boot (percent-encode anything else)",
        )
    return text


def _scripts(value: object) -> str:
    text = _text(value)
    if text not in SCRIPTS:
        raise InvalidInput(f"{_show(text)} is not one of {', '.join(SCRIPTS)}")
    return text


def _ip_address(value: object) -> str:
    text = _text(value)
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise InvalidInput(
            f"{_show(text)} is not an IP address", hint="e.g. 10.0.0.1 (the boot LAN's)"
        ) from None


def _interface(value: object) -> str:
    text = _text(value)
    if not _INTERFACE_RE.fullmatch(text):
        raise InvalidInput(f"{_show(text)} is not a network interface name", hint="e.g. eno1")
    return text


def _limit(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_DISCOVERED:
        raise InvalidInput(f"must be a whole number 0-{MAX_DISCOVERED}, not {_show(value)}")
    return value


def _image(value: object) -> str:
    return image_name(_text(value))


def _pattern(value: object) -> str:
    return name_pattern(_text(value))


Check = Callable[[object], object]
KEYS: dict[str, dict[str, Check]] = {
    "server": {
        "host": _server_host,
        "port": _port,
        "user": _user,
        "key": _local_path,
        "known_hosts": _local_path,
        "sudo": _flag,
        "lock_timeout": _seconds,
    },
    "zfs": {"pool": _pool, "root": _dataset, "reserve": _reserve},
    "target": {
        "engine": _engine,
        "portal": _portal,
        "iqn_base": _iqn_base,
        "secrets_dir": _server_dir,
    },
    "boot": {"dir": _server_dir, "url": _boot_url, "winpe": _boot_url, "scripts": _scripts},
    "serve": {
        "listen": _ip_address,
        "port": _port,
        "interface": _interface,
        "check_mac": _flag,
        "discover_limit": _limit,
        "adopt_image": _image,
        "adopt_names": _pattern,
    },
}
ALL_KEYS = [f"{table}.{key}" for table, keys in KEYS.items() for key in keys]


def _unknown(name: str, where: str, choices: list[str], show: str = "{}") -> InvalidInput:
    near = difflib.get_close_matches(name, choices, n=1, cutoff=0.6) or difflib.get_close_matches(
        name.rpartition(".")[2], choices, n=1, cutoff=0.6
    )
    known = f"; did you mean {show.format(near[0])}?" if near else ""
    what = "table" if show != "{}" else "key"
    return InvalidInput(
        f"unknown {what} {show.format(name)} in {where}{known}",
        hint=f"zboot's keys: {', '.join(ALL_KEYS)} (docs/usage.md)",
    )


def _table(data: dict[str, Any], table: str, where: str) -> dict[str, Any]:
    values = data[table]
    if table in KEYS and isinstance(values, dict):
        return values
    if table in KEYS:
        raise InvalidInput(f"[{table}] in {where} must be a table, not {_show(values)}")
    if isinstance(values, dict):
        raise _unknown(table, where, list(KEYS), show="[{}]")
    if owners := [k for k in ALL_KEYS if k.endswith(f".{table}")]:
        raise InvalidInput(
            f"key {table} in {where} is outside any table; did you mean {owners[0]}?",
            hint=f"put it under [{owners[0].split('.')[0]}]",
        )
    raise _unknown(table, where, ALL_KEYS)


def checked(data: dict[str, Any], where: str) -> dict[str, dict[str, Any]]:
    """The file's tables, each value checked (and normalised) by its key's rule.
    An unknown table or key, or a value of the wrong type or form, is refused
    with InvalidInput naming the file and table.key."""
    out: dict[str, dict[str, Any]] = {table: {} for table in KEYS}
    for table in data:
        for key, value in _table(data, table, where).items():
            if key not in KEYS[table]:
                raise _unknown(f"{table}.{key}", where, ALL_KEYS)
            try:
                out[table][key] = KEYS[table][key](value)
            except InvalidInput as err:
                raise err.retold(f"{table}.{key} in {where}: {err.message}") from None
    return out


def load(explicit: Path | None = None, server: str | None = None) -> Config:
    path = find_config(explicit)
    data: dict[str, Any] = {}
    if path is not None:
        try:
            data = tomllib.loads(path.read_text())
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
            raise InvalidInput(f"cannot read config file {str(path)!r}: {err}") from err
    config = from_tables(checked(data, str(path)), path)
    if server is not None:
        override = parse_server(server)
        config = replace(
            config,
            server=override
            if override.is_local
            else replace(
                config.server,
                host=override.host,
                port=override.port or config.server.port,
                user=override.user or config.server.user,
            ),
        )
    return config


NAME_MAX = 255  # bytes in one file name


def secrets_name(root: str) -> str:
    """The name of the root's directory of secret files: the root with each
    '_' doubled, then each '/' written as '_'. That is one-to-one: a dataset
    component never starts with '_', so in a run of n underscores the first
    n // 2 pairs are the root's own and an odd one left over is a '/'. A root
    without '_' (tank/zboot -> tank_zboot) keeps the name zboot always gave it."""
    return root.replace("_", "__").replace("/", "_")


def from_tables(tables: dict[str, dict[str, Any]], path: Path | None) -> Config:
    """The Config of checked tables (defaults for what they leave out), with the
    checks that span keys: root in pool, secrets outside the boot directory."""
    s, z, t, b, v = (tables[n] for n in ("server", "zfs", "target", "boot", "serve"))
    where = str(path)
    pool = z.get("pool", "tank")
    root = z.get("root", f"{pool}/zboot")
    key = "zfs.root" if "root" in z else "zfs.pool"  # the one that made the root
    if root.split("/")[0] != pool:
        raise InvalidInput(f"{key} in {where}: {root!r} is not in pool {pool!r}")
    if len(root) > NAME_MAX or len(secrets_name(root)) > NAME_MAX:
        raise InvalidInput(
            f"{key} in {where}: root {_show(root)} is too long for a dataset or for the name "
            f"of its secrets directory (over {NAME_MAX} characters, each '_' counting twice)",
            hint="use a shorter root, or fewer '_' in it",
        )
    config = Config(
        server=ServerConfig(**s),
        pool=pool,
        root=root,
        reserve=z.get("reserve", Config.reserve),
        engine=t.get("engine", "auto"),
        portal=t.get("portal"),
        iqn_base=t.get("iqn_base"),
        secrets_dir=t.get("secrets_dir", Config.secrets_dir),
        boot_dir=b.get("dir", Config.boot_dir),
        boot_url=b.get("url"),
        winpe=b.get("winpe"),
        scripts=b.get("scripts", Config.scripts),
        serve=ServeConfig(**v),
        path=path,
    )
    if _under(config.secrets_dir, (config.boot_dir,)) or _under(
        config.boot_dir, (config.secrets_dir,)
    ):
        raise InvalidInput(
            f"target.secrets_dir in {where}: {config.secrets_dir!r} and boot.dir "
            f"{config.boot_dir!r} overlap; the boot directory is served to every client",
            hint="keep the secrets outside the boot directory",
        )
    return config


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
            "lock_timeout": s.lock_timeout,
        },
        "zfs": {"pool": config.pool, "root": config.root, "reserve": config.reserve},
        "target": {
            "engine": config.engine,
            "portal": config.portal,
            "iqn_base": config.iqn_base,
            "secrets_dir": config.secrets_dir,
        },
        "boot": {
            "dir": config.boot_dir,
            "url": config.boot_url,
            "winpe": config.winpe,
            "scripts": config.scripts,
        },
    }


def serve_sections(config: Config) -> dict[str, object]:
    """The [serve] table's keys (not written by `zboot init`: a site that runs
    the service sets them)."""
    v = config.serve
    return {
        "listen": v.listen,
        "port": v.port,
        "interface": v.interface,
        "check_mac": v.check_mac,
        "discover_limit": v.discover_limit,
        "adopt_image": v.adopt_image,
        "adopt_names": v.adopt_names,
    }
