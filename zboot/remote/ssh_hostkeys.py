"""Host keys: what known_hosts files say, and the check every SSH server on the
way (jump hosts too) passes before zboot logs in. An unknown key is refused
unless trust was asked for (--accept-new-host-key), and then recorded; a
changed or @revoked key is always refused."""

from __future__ import annotations

import base64
import hashlib
import os
from dataclasses import dataclass, field

import paramiko

from ..errors import HostKeyError
from .ssh_config import Endpoint


def fingerprint(key: paramiko.PKey) -> str:
    """OpenSSH's SHA256 fingerprint of a key, as `ssh-keygen -l` prints it."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


@dataclass
class KnownHosts:
    """What known_hosts files say: trusted keys by host pattern, and revoked keys."""

    entries: list[paramiko.hostkeys.HostKeyEntry] = field(default_factory=list)
    revoked: list[paramiko.PKey] = field(default_factory=list)

    @classmethod
    def of(cls, endpoint: Endpoint) -> KnownHosts:
        """The endpoint's system files, then its user files (those that exist)."""
        known = cls()
        for path in (*endpoint.system_known_hosts, *endpoint.known_hosts):
            if os.path.exists(path):
                known.read(path)  # never rewritten wholesale
        return known

    def read(self, path: str) -> None:
        """Add path's lines. `@cert-authority` lines are skipped (zboot checks
        plain host keys, not host certificates); `@revoked` keys are never
        accepted; a line that cannot be read is a HostKeyError naming it."""
        with open(path, encoding="utf-8", errors="replace") as handle:
            lines = handle.read().splitlines()
        for number, raw in enumerate(lines, start=1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            marker = ""
            if line.startswith("@"):
                marker, _, line = line.partition(" ")
                line = line.strip()
                if marker not in ("@cert-authority", "@revoked"):
                    raise HostKeyError(f"{path}, line {number}: unknown marker {marker!r}")
                if marker == "@cert-authority":
                    continue
            try:
                entry = paramiko.hostkeys.HostKeyEntry.from_line(line, number)
            except (paramiko.SSHException, paramiko.hostkeys.InvalidHostKey, ValueError) as exc:
                raise HostKeyError(
                    f"{path}, line {number}: not a known_hosts line ({exc})"
                ) from None
            if entry is None:  # a key type paramiko does not know, or too few fields
                continue
            if marker == "@revoked":
                self.revoked.append(entry.key)
            else:
                self.entries.append(entry)

    def is_revoked(self, key: paramiko.PKey) -> bool:
        return any(r.asbytes() == key.asbytes() for r in self.revoked)

    def keys_for(self, name: str) -> dict[str, paramiko.PKey]:
        """The trusted keys for name (hashed entries too), by key type."""
        table = paramiko.HostKeys()
        for entry in self.entries:
            if not self.is_revoked(entry.key):
                for host in entry.hostnames:
                    table.add(host, entry.key.get_name(), entry.key)
        found = table.lookup(name)
        return dict(found) if found is not None else {}


def prefer_known_types(transport: paramiko.Transport, known: dict[str, paramiko.PKey]) -> None:
    """Ask for a host key of a type known_hosts has (as paramiko's SSHClient
    does), so a server with several keys offers the one that can be checked."""
    if known:
        options = transport.get_security_options()
        ours = [t for t in options.key_types if t in known]
        options.key_types = [*ours, *(t for t in options.key_types if t not in known)]


def check_host_key(
    transport: paramiko.Transport, endpoint: Endpoint, known: KnownHosts, trust: bool, role: str
) -> None:
    """Refuse the server's key unless known_hosts trusts it; record it when
    trust was asked for and none was known. role: "" or "jump host "."""
    key = transport.get_remote_server_key()
    name = endpoint.known_name
    shown = f"{key.get_name()} {fingerprint(key)}"
    if known.is_revoked(key):
        raise HostKeyError(
            f"the SSH host key of {role}{endpoint.where} ({shown}) "
            "is marked @revoked in known_hosts"
        )
    expected = known.keys_for(name).get(key.get_name())
    if expected is not None:
        if expected.asbytes() != key.asbytes():
            raise HostKeyError(
                f"SSH host key for {role}{endpoint.where} CHANGED: known_hosts has "
                f"{fingerprint(expected)}, the server offers {shown}",
                hint="this may be an attack; if the server was reinstalled, check the new "
                f"fingerprint, then remove the old entry with ssh-keygen -R '{name}'",
            )
        return
    record_in = endpoint.known_hosts[0]
    if not trust:
        keyscan = f"ssh-keyscan -p {endpoint.port} {endpoint.hostname} >> {record_in}"
        raise HostKeyError(
            f"unknown SSH host key for {role}{name}: {shown}",
            hint="compare the fingerprint with `ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub` "
            f"run on the server; if it matches, record the key ({keyscan}) "
            "or run zboot once with --accept-new-host-key",
        )
    directory = os.path.dirname(record_in)
    if directory:
        os.makedirs(directory, mode=0o700, exist_ok=True)
    with open(record_in, "a", encoding="ascii") as handle:
        handle.write(f"{name} {key.get_name()} {key.get_base64()}\n")
