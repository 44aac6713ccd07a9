"""Run commands on the storage server over SSH (paramiko; the only module that
imports it). One connection per runner, opened on first use; one channel per
command; one SFTP session for files. Quoting happens here and only here:
`command_line` joins the argv for the remote shell. Command input is never logged."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import secrets
import shlex
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, BinaryIO, cast

import paramiko

from ..errors import CommandFailed, HostKeyError, NotFound, ServerError
from .base import (
    DEFAULT_TIMEOUT,
    Chain,
    ChainFailure,
    Held,
    LineFn,
    ProgressFn,
    Result,
    check_result,
    pump,
    read_file_by_command,
    remove_file_by_command,
    write_file_by_command,
)
from .chains import run_in_shells

SSH_CONFIG = "~/.ssh/config"
SYSTEM_KNOWN_HOSTS = "/etc/ssh/ssh_known_hosts"
USER_KNOWN_HOSTS = "~/.ssh/known_hosts"
KEEPALIVE = 15  # seconds between SSH keepalives on an idle connection


def command_line(argv: Sequence[str], sudo: bool = False) -> str:
    """The one string the remote shell parses back into exactly argv."""
    return shlex.join(["sudo", "-n", *argv] if sudo else list(argv))


def fingerprint(key: paramiko.PKey) -> str:
    """OpenSSH's SHA256 fingerprint of a key, as `ssh-keygen -l` prints it."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


@dataclass(frozen=True)
class Target:
    """Where and how to connect, after ~/.ssh/config filled in what was not given."""

    hostname: str
    port: int
    user: str | None
    key_files: tuple[str, ...]
    known_hosts: tuple[str, ...]  # user files; the first one is where trust is recorded
    system_known_hosts: tuple[str, ...]


def resolve_target(
    host: str,
    port: int | None,
    user: str | None,
    key_file: str | None,
    known_hosts: str | None,
    config: paramiko.SSHConfig | None,
) -> Target:
    """Explicit values win; ~/.ssh/config (HostName, Port, User, IdentityFile,
    UserKnownHostsFile) fills the rest; then OpenSSH's defaults."""
    found = config.lookup(host) if config is not None else {}
    keys = (
        [key_file]
        if key_file
        else [p for p in found.get("identityfile", []) if os.path.exists(os.path.expanduser(p))]
    )
    if known_hosts:
        user_files, system_files = [known_hosts], []
    else:
        user_files = str(found.get("userknownhostsfile", USER_KNOWN_HOSTS)).split()
        system_files = [SYSTEM_KNOWN_HOSTS]
    return Target(
        hostname=str(found.get("hostname", host)),
        port=port or int(found.get("port", 22)),
        user=user or found.get("user"),
        key_files=tuple(os.path.expanduser(p) for p in keys),
        known_hosts=tuple(os.path.expanduser(p) for p in user_files),
        system_known_hosts=tuple(system_files),
    )


@dataclass
class KnownHosts:
    """What known_hosts files say: trusted keys by host pattern, and revoked keys."""

    entries: list[paramiko.hostkeys.HostKeyEntry]
    revoked: list[paramiko.PKey]

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


class _HostKeyPolicy(paramiko.MissingHostKeyPolicy):
    """Refuse an unknown host key, or (when trusted) record it in known_hosts."""

    def __init__(self, trust: bool, record_in: str, target: Target, known: KnownHosts) -> None:
        self.trust = trust
        self.known = known
        self.record_in = record_in
        self.keyscan = f"ssh-keyscan -p {target.port} {target.hostname} >> {record_in}"

    def missing_host_key(
        self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey
    ) -> None:
        if self.known.is_revoked(key):
            raise HostKeyError(
                f"the SSH host key of {hostname} ({key.get_name()} {fingerprint(key)}) "
                "is marked @revoked in known_hosts"
            )
        if not self.trust:
            raise HostKeyError(
                f"unknown SSH host key for {hostname}: {key.get_name()} {fingerprint(key)}",
                hint=f"compare the fingerprint with `ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub` "
                f"run on the server; if it matches, record the key ({self.keyscan}) "
                f"or run zboot once with --accept-new-host-key",
            )
        directory = os.path.dirname(self.record_in)
        if directory:
            os.makedirs(directory, mode=0o700, exist_ok=True)
        with open(self.record_in, "a", encoding="ascii") as handle:
            handle.write(f"{hostname} {key.get_name()} {key.get_base64()}\n")
        client.get_host_keys().add(hostname, key.get_name(), key)


def _copy_out(read: Callable[[int], bytes], into: list[bytes]) -> None:
    try:
        while block := read(1 << 16):
            into.append(block)
    except (OSError, EOFError):
        pass  # channel closed under us (deadline or lost connection)


class SshRunner:
    """A Runner on a server reached over SSH. See the module docstring; `connects`
    counts the connections made (one, unless close() was called in between)."""

    def __init__(
        self,
        host: str,
        port: int | None = None,
        user: str | None = None,
        key_file: str | None = None,
        known_hosts: str | None = None,
        sudo: bool = False,
        trust_unknown_host: bool = False,
        connect_timeout: float = 60.0,
    ) -> None:
        path = os.path.expanduser(SSH_CONFIG)
        config = paramiko.SSHConfig.from_path(path) if os.path.exists(path) else None
        self.host = host
        self.target = resolve_target(host, port, user, key_file, known_hosts, config)
        self.sudo = sudo
        self.trust_unknown_host = trust_unknown_host
        self.connect_timeout = connect_timeout
        self.commands: list[tuple[str, ...]] = []
        self.connects = 0
        self._client: paramiko.SSHClient | None = None
        self._sftp: paramiko.SFTPClient | None = None
        self._lock = threading.Lock()
        self._lost: ServerError | None = None  # once lost, never reconnected
        self.known = KnownHosts([], [])

    @property
    def where(self) -> str:
        user = f"{self.target.user}@" if self.target.user else ""
        return f"{user}{self.target.hostname}:{self.target.port}"

    # --- connection ------------------------------------------------------------
    def _new_client(self) -> paramiko.SSHClient:
        client = paramiko.SSHClient()
        self.known = KnownHosts([], [])
        for path in (*self.target.system_known_hosts, *self.target.known_hosts):
            if os.path.exists(path):
                self.known.read(path)  # never rewritten wholesale
        keys = client.get_host_keys()
        for entry in self.known.entries:
            if self.known.is_revoked(entry.key):
                continue  # refused before any login (see _HostKeyPolicy)
            for name in entry.hostnames:
                keys.add(name, entry.key.get_name(), entry.key)
        client.set_missing_host_key_policy(
            _HostKeyPolicy(
                self.trust_unknown_host, self.target.known_hosts[0], self.target, self.known
            )
        )
        return client

    def transport(self) -> paramiko.Transport:
        """The live SSH transport, connecting first if needed."""
        with self._lock:
            if self._lost:
                raise self._lost
            if self._client is not None:
                live = self._client.get_transport()
                if live is not None and live.is_active():
                    return live
                # Never a second connection behind the first one's back: the
                # server's lock went with the first.
                self._drop()
                self._lost = ServerError(
                    f"the SSH connection to {self.where} was lost",
                    hint="run the same command again: it finishes what this run started",
                )
                raise self._lost
            client = self._new_client()
            self.connects += 1
            key_files: Any = list(self.target.key_files) or None  # paramiko takes a list
            try:
                client.connect(
                    self.target.hostname,
                    port=self.target.port,
                    username=self.target.user,
                    key_filename=key_files,
                    look_for_keys=not key_files,
                    allow_agent=True,
                    timeout=self.connect_timeout,
                    banner_timeout=self.connect_timeout,
                    auth_timeout=self.connect_timeout,
                )
            except (HostKeyError, paramiko.SSHException, OSError, EOFError) as exc:
                client.close()
                raise self._connect_error(exc) from None
            live = cast(paramiko.Transport, client.get_transport())
            offered = live.get_remote_server_key()
            if self.known.is_revoked(offered):
                client.close()
                raise HostKeyError(
                    f"the SSH host key of {self.where} ({offered.get_name()} "
                    f"{fingerprint(offered)}) is marked @revoked in known_hosts"
                )
            live.set_keepalive(KEEPALIVE)
            self._client = client
            return live

    def _connect_error(self, exc: Exception) -> ServerError:
        if isinstance(exc, HostKeyError):
            return exc
        if isinstance(exc, paramiko.BadHostKeyException):
            return HostKeyError(
                f"SSH host key for {self.where} CHANGED: known_hosts has "
                f"{fingerprint(exc.expected_key)}, the server offers "
                f"{exc.key.get_name()} {fingerprint(exc.key)}",
                hint="this may be an attack; if the server was reinstalled, check the new "
                "fingerprint, then remove the old entry with ssh-keygen -R",
            )
        if isinstance(exc, paramiko.AuthenticationException):
            return ServerError(
                f"SSH authentication to {self.where} failed: {exc}",
                hint="check the user, the key file and the SSH agent",
            )
        return ServerError(f"cannot connect to {self.where} over SSH: {exc}")

    def _drop(self) -> None:
        if self._sftp is not None:
            self._sftp.close()
        if self._client is not None:
            self._client.close()
        self._client = self._sftp = None

    def close(self) -> None:
        with self._lock:
            self._drop()

    def cut(self) -> None:
        """Cut the connection without a goodbye, as a network failure would
        (the fault-injection tests' "drop")."""
        live = self._client.get_transport() if self._client is not None else None
        if live is not None:
            live.close()

    # --- commands --------------------------------------------------------------
    def _execute(
        self,
        argv: Sequence[str],
        feed: Callable[[paramiko.Channel], None] | None,
        timeout: float | None,
    ) -> Result:
        """Run argv on a channel of its own (the caller records it)."""
        args = tuple(argv)
        line = command_line(args, self.sudo)
        transport = self.transport()
        try:
            channel = transport.open_session(timeout=self.connect_timeout)
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise ServerError(f"{self.where}: cannot open a channel: {exc}") from None
        try:
            channel.exec_command(line)
        except (paramiko.SSHException, OSError, EOFError) as exc:
            channel.close()
            raise ServerError(f"{self.where}: cannot start {line}: {exc}") from None
        out: list[bytes] = []
        err: list[bytes] = []
        readers = [
            threading.Thread(target=_copy_out, args=pair, daemon=True)
            for pair in ((channel.recv, out), (channel.recv_stderr, err))
        ]
        expired = threading.Event()

        def on_deadline() -> None:
            expired.set()
            channel.close()

        timer = threading.Timer(timeout, on_deadline) if timeout is not None else None
        try:
            for reader in readers:
                reader.start()
            if timer is not None:
                timer.start()
            if feed is not None:
                # OSError: the command stopped reading; its exit status tells why.
                with contextlib.suppress(OSError, EOFError):
                    feed(channel)
            if not channel.closed:
                channel.shutdown_write()
            for reader in readers:
                reader.join()
            status = channel.recv_exit_status()
        finally:
            if timer is not None:
                timer.cancel()
            channel.close()
        if expired.is_set():
            raise ServerError(
                f"{self.where}: {line} timed out after {timeout:g} s",
                hint="raise the timeout if the command is just slow",
            )
        if status == -1 and not transport.is_active():
            raise ServerError(f"{self.where}: connection lost while running {line}")
        return Result(args, status, b"".join(out), b"".join(err))

    def run(
        self,
        argv: Sequence[str],
        *,
        input: bytes | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        check: bool = True,
        read_only: bool = False,
    ) -> Result:
        """Run argv in the remote shell as command_line(argv); see Runner.run."""
        feed = None if input is None else (lambda channel: channel.sendall(input))
        self.commands.append(tuple(argv))
        return check_result(self._execute(argv, feed, timeout), check)

    def stream(
        self,
        argv: Sequence[str],
        source: BinaryIO,
        chunk: int = 1 << 20,
        on_progress: ProgressFn | None = None,
        timeout: float | None = None,
    ) -> Result:
        """Copy source to argv's stdin chunk by chunk; see Runner.stream."""

        def feed(channel: paramiko.Channel) -> None:
            pump(source, channel.sendall, chunk, on_progress)

        self.commands.append(tuple(argv))
        return check_result(self._execute(argv, feed, timeout), True)

    def hold(
        self, argv: Sequence[str], until: str, on_line: LineFn, timeout: float = DEFAULT_TIMEOUT
    ) -> Held:
        """See Runner.hold: a channel of its own, left open until release()
        (or until the connection closes, which ends the command too)."""
        args = tuple(argv)
        self.commands.append(args)
        line = command_line(args, self.sudo)
        try:
            channel = self.transport().open_session(timeout=self.connect_timeout)
            channel.settimeout(timeout)
            channel.exec_command(line)
            output = channel.makefile("rb")
            for raw in iter(output.readline, b""):
                text = raw.decode("utf-8", errors="replace").rstrip("\n")
                if text == until:
                    channel.settimeout(None)
                    return HeldChannel(channel)
                on_line(text)
            status = channel.recv_exit_status()
            error = channel.makefile_stderr("rb").read()
        except TimeoutError:
            channel.close()
            raise ServerError(f"{self.where}: {line} did not answer in {timeout:g} s") from None
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise ServerError(f"{self.where}: cannot run {line}: {exc}") from None
        channel.close()
        raise CommandFailed(args, status, error.decode("utf-8", errors="replace"))

    def reads(
        self, argvs: Sequence[Sequence[str]], timeout: float = DEFAULT_TIMEOUT
    ) -> list[Result]:
        """See Runner.reads: a channel each, all at once, on the one connection."""
        self.commands.extend(tuple(argv) for argv in argvs)
        self.transport()  # connected once, before the channels open side by side
        with ThreadPoolExecutor(max(1, len(argvs)), thread_name_prefix="zboot-read") as pool:
            running = [pool.submit(self._execute, argv, None, timeout) for argv in argvs]
            return [future.result() for future in running]

    def run_chains(
        self, chains: Sequence[Chain], timeout: float = DEFAULT_TIMEOUT
    ) -> list[ChainFailure | None]:
        """Many chains to one remote shell: see remote.chains."""
        return run_in_shells(self, chains, timeout)

    # --- files (SFTP, or sudo'd commands) ----------------------------------------
    def sftp(self) -> paramiko.SFTPClient:
        """The runner's one SFTP session, opened on first use."""
        transport = self.transport()
        with self._lock:
            if self._sftp is None:
                try:
                    self._sftp = paramiko.SFTPClient.from_transport(transport)
                except (paramiko.SSHException, OSError, EOFError) as exc:
                    raise ServerError(f"{self.where}: cannot open SFTP: {exc}") from None
                if self._sftp is None:
                    raise ServerError(f"{self.where}: the server refused an SFTP session")
            return self._sftp

    @contextlib.contextmanager
    def _file_errors(self, action: str, path: str) -> Iterator[None]:
        try:
            yield
        except FileNotFoundError:
            raise NotFound(f"{path}: no such file or directory on {self.where}") from None
        except (OSError, paramiko.SSHException, EOFError) as exc:
            raise ServerError(f"{self.where}: cannot {action} {path}: {exc}") from None

    def write_file(self, path: str, data: bytes, mode: int = 0o644) -> None:
        """Create `<dir>/.<name>.tmp-<random>`, chmod it before any data goes in,
        then posix_rename it over path; see Runner.write_file."""
        if self.sudo:  # SFTP runs as the login user, who may not own the target
            return write_file_by_command(self, path, data, mode)
        sftp = self.sftp()
        directory, name = os.path.split(path)
        tmp = f"{directory or '.'}/.{name}.tmp-{secrets.token_hex(6)}"
        with self._file_errors("write", path):
            try:
                with sftp.open(tmp, "wbx") as handle:  # x: O_EXCL; w: writable
                    handle.chmod(mode)
                    handle.set_pipelined(True)
                    handle.write(data)
                sftp.posix_rename(tmp, path)
            except BaseException:
                with contextlib.suppress(OSError, paramiko.SSHException, EOFError):
                    sftp.remove(tmp)
                raise

    def read_file(self, path: str) -> bytes:
        if self.sudo:
            return read_file_by_command(self, path)
        sftp = self.sftp()
        with self._file_errors("read", path), sftp.open(path, "rb") as handle:
            handle.prefetch()
            return handle.read()

    def remove_file(self, path: str) -> None:
        if self.sudo:
            return remove_file_by_command(self, path)
        sftp = self.sftp()
        with contextlib.suppress(NotFound), self._file_errors("remove", path):
            sftp.remove(path)

    def __enter__(self) -> SshRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class HeldChannel:
    """A command left running on its own channel (SshRunner.hold)."""

    def __init__(self, channel: paramiko.Channel) -> None:
        self.channel = channel

    def send(self, data: bytes) -> None:
        try:
            self.channel.sendall(data)
        except (paramiko.SSHException, EOFError) as exc:
            raise OSError(str(exc)) from None

    def alive(self) -> bool:
        return not self.channel.closed and not self.channel.exit_status_ready()

    def release(self) -> None:
        with contextlib.suppress(paramiko.SSHException, OSError, EOFError):
            self.channel.shutdown_write()  # end-of-file on its stdin
        self.channel.close()
