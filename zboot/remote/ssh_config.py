"""The user's OpenSSH client configuration, as zboot reads it.

Which file: `$ZBOOT_SSH_CONFIG` if set (it must exist), else `~/.ssh/config`
(none at all is fine). paramiko's SSHConfig does the Host/Match lookup;
`Include` is expanded here first, because paramiko does not: globs, relative
names under ~/.ssh, a name that matches nothing ignored, as OpenSSH does.
An Include inside a Host or Match block applies the included Host/Match
blocks only where the enclosing block matches (they become Match lines with
the enclosing criteria), and the enclosing block resumes after it.

`resolve` turns a server name into an Endpoint: where to connect, as whom,
with which keys and known_hosts, and how to get there (ProxyJump hops, each
with its own config entry, or a ProxyCommand). zboot's own settings (the
config file's [server] table, --server) win over ~/.ssh/config."""

from __future__ import annotations

import glob
import os
import re
import shlex
from dataclasses import dataclass

import paramiko
from paramiko.config import SSHConfigDict

from ..errors import InvalidInput

ENV = "ZBOOT_SSH_CONFIG"
USER_CONFIG = "~/.ssh/config"
SSH_DIR = "~/.ssh"  # where a relative Include is looked for (OpenSSH: user configs)
SYSTEM_KNOWN_HOSTS = "/etc/ssh/ssh_known_hosts"
USER_KNOWN_HOSTS = "~/.ssh/known_hosts"
DEFAULT_IDENTITIES = ("id_rsa", "id_ecdsa", "id_ecdsa_sk", "id_ed25519", "id_ed25519_sk")
MAX_INCLUDE_DEPTH = 16  # OpenSSH's READCONF_MAX_DEPTH
MAX_HOPS = 8  # jump hosts in one route, counting each hop's own jumps

_LINE_RE = re.compile(r"(\w+)(?:\s*=\s*|\s+)(.+)")
_JUMP_RE = re.compile(
    r"(?:ssh://)?(?:(?P<user>[A-Za-z0-9_.][A-Za-z0-9_.-]*)@)?"
    r"(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.%-]+)"
    r"(?::(?P<port>[0-9]{1,5}))?"
)


def _bad(path: str, number: int, what: str) -> InvalidInput:
    return InvalidInput(f"SSH config {path}, line {number}: {what}")


def _criteria(header: str) -> str:
    """The Match criteria that hold where a block's header holds."""
    keyword, _, value = header.partition(" ")
    if keyword == "Host":
        return "originalhost " + ",".join(shlex.split(value))
    return " ".join(t for t in shlex.split(value) if t != "all")


def _header(keyword: str, value: str, scope: str, path: str, number: int) -> str:
    """A Host or Match line, narrowed to scope (the enclosing block's criteria)."""
    try:
        words = shlex.split(value)
    except ValueError as exc:
        raise _bad(path, number, f"{keyword} {value!r}: {exc}") from None
    host = keyword.lower() == "host"
    if not scope:
        return f"{'Host' if host else 'Match'} {shlex.join(words)}"
    if host:
        return f"Match {scope} originalhost {','.join(words)}"
    return f"Match {' '.join([scope, *(w for w in words if w != 'all')])}"


def _include_targets(value: str, ssh_dir: str, path: str, number: int) -> list[str]:
    """The files an Include line names, globs expanded in sorted order."""
    try:
        words = shlex.split(value)
    except ValueError as exc:
        raise _bad(path, number, f"Include {value!r}: {exc}") from None
    found: list[str] = []
    for word in words:
        name = os.path.expanduser(word)
        if not os.path.isabs(name):
            name = os.path.join(ssh_dir, name)
        found.extend(m for m in sorted(glob.glob(name)) if not os.path.isdir(m))
    return found


def expand_includes(path: str, ssh_dir: str | None = None) -> str:
    """The text of the config at path with every Include replaced by what it names."""
    home_ssh = ssh_dir or os.path.expanduser(SSH_DIR)
    return "\n".join(_expand(path, home_ssh, "", ())) + "\n"


def _expand(path: str, ssh_dir: str, scope: str, stack: tuple[str, ...]) -> list[str]:
    real = os.path.realpath(path)
    if real in stack:
        chain = " -> ".join([*stack[stack.index(real) :], real])
        raise InvalidInput(f"SSH config Include loop: {chain}", hint="remove one of the Includes")
    if len(stack) >= MAX_INCLUDE_DEPTH:
        raise InvalidInput(
            f"SSH config {path}: Includes nested over {MAX_INCLUDE_DEPTH} deep",
            hint="OpenSSH refuses this too",
        )
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise InvalidInput(f"cannot read SSH config {path}: {reason}") from None
    out: list[str] = []
    header = ""  # the current block's header, as written out ("": the includer's block)
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = _LINE_RE.fullmatch(line)
        if not match:
            raise _bad(path, number, f"{line!r} is not 'Keyword value'")
        keyword, value = match[1].lower(), match[2].strip()
        if keyword in ("host", "match"):
            header = _header(match[1], value, scope, path, number)
            out.append(header)
        elif keyword == "include":
            inner = _criteria(header) if header else scope
            for name in _include_targets(value, ssh_dir, path, number):
                out.extend(_expand(name, ssh_dir, inner, (*stack, real)))
            # back in this file's block, whatever the included file opened
            out.append(header or (f"Match {scope}" if scope else "Host *"))
        else:
            out.append(f"{match[1]} {value}")
    return out


def config_path() -> str | None:
    """The ssh config file zboot reads, or None when there is none."""
    named = os.environ.get(ENV)
    if named:
        if not os.path.isfile(named):
            raise InvalidInput(f"{ENV} names {named!r}, which is not a file")
        return named
    path = os.path.expanduser(USER_CONFIG)
    return path if os.path.exists(path) else None


@dataclass(frozen=True)
class SshConfig:
    """An ssh config with its Includes expanded ("" for none)."""

    text: str = ""
    path: str = "(none)"

    @classmethod
    def load(cls, path: str | None = None) -> SshConfig:
        path = path or config_path()
        return cls(expand_includes(path), path) if path else cls()

    def lookup(self, host: str, port: int | None = None, user: str | None = None) -> Found:
        """What the config says for host; port and user, when given, win
        (they also fill %p and %r in ProxyCommand and IdentityFile)."""
        first = [f"Host {host}"] if port is not None or user is not None else []
        first += [f"Port {port}"] if port is not None else []
        first += [f"User {user}"] if user is not None else []
        try:
            parsed = paramiko.SSHConfig.from_text("\n".join([*first, self.text]))
            found = parsed.lookup(host)
        except (paramiko.ssh_exception.ConfigParseError, ValueError) as exc:
            raise InvalidInput(f"SSH config {self.path}: {exc}") from None
        return Found(host, self.path, found)


@dataclass(frozen=True)
class Found:
    """One host's options (lower-case keys), read with checks."""

    host: str
    path: str
    options: SSHConfigDict

    def text(self, key: str) -> str | None:
        value = self.options.get(key)
        return None if value is None else str(value)

    def number(self, key: str) -> int | None:
        value = self.text(key)
        if value is None:
            return None
        if not value.isdigit():
            raise InvalidInput(f"SSH config {self.path}, Host {self.host}: {key} {value!r}")
        return int(value)

    def flag(self, key: str) -> bool:
        value = (self.text(key) or "no").lower()
        if value not in ("yes", "no", "true", "false"):
            raise InvalidInput(f"SSH config {self.path}, Host {self.host}: {key} {value!r}")
        return value in ("yes", "true")

    def files(self, key: str) -> list[str]:
        value: object = self.options.get(key) or []
        return [str(v) for v in (value if isinstance(value, list) else str(value).split())]


@dataclass(frozen=True)
class Hop:
    """One jump host of a ProxyJump list."""

    host: str
    user: str | None = None
    port: int | None = None


def parse_jumps(spec: str, where: str) -> list[Hop]:
    """ProxyJump's `[user@]host[:port][,…]` (or `none`), in connection order."""
    if spec.strip().lower() == "none":
        return []
    hops = []
    for part in spec.split(","):
        match = _JUMP_RE.fullmatch(part.strip())
        port = int(match["port"]) if match and match["port"] else None
        if not match or (port is not None and not 0 < port < 65536):
            raise InvalidInput(
                f"ProxyJump {spec!r} for {where}: {part.strip()!r} is not [user@]host[:port]",
                hint="hops are separated by commas, e.g. ProxyJump admin@bastion:2222,inner",
            )
        hops.append(Hop(match["host"].strip("[]"), match["user"], port))
    return hops


@dataclass(frozen=True)
class Endpoint:
    """One SSH server on the way, after ~/.ssh/config filled in what was not given."""

    name: str  # as asked for: an ssh config alias or a host name
    hostname: str
    port: int
    user: str | None
    key_files: tuple[str, ...]
    identities_only: bool
    known_hosts: tuple[str, ...]  # user files; the first one is where trust is recorded
    system_known_hosts: tuple[str, ...]
    host_key_alias: str | None = None
    connect_timeout: float | None = None
    proxy_command: str | None = None
    via: Endpoint | None = None  # the jump host this one is reached through

    @property
    def where(self) -> str:
        user = f"{self.user}@" if self.user else ""
        return f"{user}{self.hostname}:{self.port}"

    @property
    def known_name(self) -> str:
        """The host's name in known_hosts: [host]:port unless the port is 22."""
        if self.host_key_alias:
            return self.host_key_alias
        return self.hostname if self.port == 22 else f"[{self.hostname}]:{self.port}"

    @property
    def hops(self) -> list[Endpoint]:
        """The jump hosts, the first one connected to first."""
        return [*self.via.hops, self.via] if self.via else []


def resolve(
    config: SshConfig,
    host: str,
    *,
    port: int | None = None,
    user: str | None = None,
    key_file: str | None = None,
    known_hosts: str | None = None,
    jumps: list[Hop] | None = None,
    trail: tuple[str, ...] = (),
) -> Endpoint:
    """Where host is and how to reach it. Explicit arguments win; then the ssh
    config; then OpenSSH's defaults. jumps, when given, replace host's own
    ProxyJump/ProxyCommand (as `ssh -J` does for the last hop of a list);
    known_hosts also serves each hop whose entry names no UserKnownHostsFile."""
    if host in trail or len(trail) > MAX_HOPS:
        raise InvalidInput(
            f"ProxyJump loop: {' via '.join([*trail, host])}",
            hint="give the jump host `ProxyJump none` (or exclude it: Host * !bastion)",
        )
    found = config.lookup(host, port, user)
    keys = [key_file] if key_file else found.files("identityfile")
    if not keys:
        keys = [os.path.join(SSH_DIR, name) for name in DEFAULT_IDENTITIES]
    system_files = found.files("globalknownhostsfile") or [SYSTEM_KNOWN_HOSTS]
    if known_hosts and not trail:  # zboot's known_hosts: the server's only file
        user_files, system_files = [known_hosts], []
    else:  # a jump host's own UserKnownHostsFile, else zboot's, else OpenSSH's
        user_files = found.files("userknownhostsfile") or [known_hosts or USER_KNOWN_HOSTS]
    via = None
    proxy = found.text("proxycommand")
    spec = found.text("proxyjump")
    if jumps is None and spec is not None:
        jumps, proxy = parse_jumps(spec, host), None  # ProxyJump wins over ProxyCommand
    if jumps:
        last = jumps[-1]
        via = resolve(
            config,
            last.host,
            port=last.port,
            user=last.user,
            known_hosts=known_hosts,
            jumps=jumps[:-1] or None,
            trail=(*trail, host),
        )
        proxy = None
    elif jumps is not None:
        proxy = None  # `ssh -J` replaces the hop's own proxy settings
    timeout = found.number("connecttimeout")
    return Endpoint(
        name=host,
        hostname=found.text("hostname") or host,
        port=port or found.number("port") or 22,
        user=user or found.text("user"),
        key_files=tuple(os.path.expanduser(p) for p in keys),
        identities_only=found.flag("identitiesonly"),
        known_hosts=tuple(os.path.expanduser(p) for p in user_files),
        system_known_hosts=tuple(os.path.expanduser(p) for p in system_files),
        host_key_alias=found.text("hostkeyalias"),
        connect_timeout=float(timeout) if timeout else None,
        proxy_command=proxy if proxy and proxy.lower() != "none" else None,
        via=via,
    )
