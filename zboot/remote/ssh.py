"""Run commands on the storage server over SSH (paramiko; only this module and
its ssh_* helpers import it). One connection per runner, opened on first use; one channel per
command; one SFTP session for files. Quoting happens here and only here:
`command_line` joins the argv for the remote shell. Command input is never logged."""

from __future__ import annotations

import contextlib
import os
import secrets
import shlex
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import BinaryIO

import paramiko

from ..errors import CommandFailed, NotFound, ServerError
from .agent_client import ARGV as AGENT_ARGV
from .agent_client import AgentLink, LockAsk, enabled, preamble
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
from .ssh_config import SshConfig, resolve
from .ssh_connect import close_route, open_route
from .ssh_keys import Ask

KEEPALIVE = 15  # seconds between SSH keepalives on an idle connection
CONNECT_TIMEOUT = 60.0  # seconds, where neither zboot nor ConnectTimeout says


def command_line(argv: Sequence[str], sudo: bool = False) -> str:
    """The one string the remote shell parses back into exactly argv."""
    return shlex.join(["sudo", "-n", *argv] if sudo else list(argv))


def _copy_out(read: Callable[[int], bytes], into: list[bytes]) -> None:
    try:
        while block := read(1 << 16):
            into.append(block)
    except (OSError, EOFError):
        pass  # channel closed under us (deadline or lost connection)


class SshRunner:
    """A Runner on a server reached over SSH. See the module docstring; `connects`
    counts the connections made (one, unless close() was called in between).

    The server's name may be an alias of ~/.ssh/config (or of $ZBOOT_SSH_CONFIG):
    see remote.ssh_config for what is read from it; the arguments given here win."""

    def __init__(
        self,
        host: str,
        port: int | None = None,
        user: str | None = None,
        key_file: str | None = None,
        known_hosts: str | None = None,
        sudo: bool = False,
        trust_unknown_host: bool = False,
        connect_timeout: float | None = None,
        agent: bool = True,
        prefetch: Sequence[str] = (),
        early_reads: Sequence[Sequence[str]] = (),
    ) -> None:
        self.host = host
        self.target = resolve(
            SshConfig.load(),
            host,
            port=port,
            user=user,
            key_file=key_file,
            known_hosts=known_hosts,
        )
        self.sudo = sudo
        self.trust_unknown_host = trust_unknown_host
        self.connect_timeout = connect_timeout or self.target.connect_timeout or CONNECT_TIMEOUT
        # asks for an encrypted key's passphrase; None: getpass, if stdin is a terminal
        self.ask_passphrase: Ask | None = None
        self.commands: list[tuple[str, ...]] = []
        self.connects = 0
        self._route: list[paramiko.Transport] = []  # jump hosts', then the server's
        self._sftp: paramiko.SFTPClient | None = None
        self._lock = threading.Lock()
        self._lost: ServerError | None = None  # once lost, never reconnected
        self._agent: AgentLink | None = None  # started with the connection
        self.use_agent = agent and enabled()  # see remote.agent_client
        self._prefetch = tuple(prefetch)  # modules the agent imports as it starts
        # reads the agent starts before its own imports (session_agent.Early):
        # the run's first reads, if they are these
        self._early_reads = [list(argv) for argv in early_reads]

    @property
    def where(self) -> str:
        return self.target.where

    # --- connection ------------------------------------------------------------
    def transport(self) -> paramiko.Transport:
        """The live SSH transport, connecting first if needed."""
        with self._lock:
            if self._lost:
                raise self._lost
            if self._route:
                live = self._route[-1]
                if live.is_active():
                    return live
                # Never a second connection behind the first one's back: the
                # server's lock went with the first.
                self._drop()
                self._lost = ServerError(
                    f"the SSH connection to {self.where} was lost",
                    hint="run the same command again: it finishes what this run started",
                )
                raise self._lost
            self.connects += 1
            timeout = self.connect_timeout
            self._route = open_route(
                self.target, self.trust_unknown_host, timeout, self.ask_passphrase
            )
            live = self._route[-1]
            live.set_keepalive(KEEPALIVE)
            for hop in self._route[:-1]:
                hop.set_keepalive(KEEPALIVE)
            if self.use_agent:
                self._agent = self._start_agent(live)
            return live

    def _start_agent(self, transport: paramiko.Transport) -> AgentLink | None:
        """Start the session agent and send its source; its hello is read when
        it is first needed (see remote.agent_client). None: no channel for it."""
        try:
            channel = transport.open_session(timeout=self.connect_timeout)
            channel.exec_command(command_line(AGENT_ARGV, self.sudo))
            channel.sendall(preamble(self._early_reads))
        except (paramiko.SSHException, OSError, EOFError):
            return None
        link = AgentLink(channel, self.where)
        if self._prefetch:
            link.prefetch(self._prefetch)
        return link

    def agent(self, wait: bool = True) -> AgentLink | None:
        """The session agent, once it said hello; None where it did not start
        (commands then get a channel each), or, unless wait, has not yet."""
        self.transport()
        agent = self._agent
        if agent is None:
            return None
        if not wait and not agent.ready():
            return None
        if not agent.greet():
            if agent.started and agent.error is not None:
                # it ran this run's commands (under the lease, perhaps): a
                # change never goes another way behind its back
                raise agent.error
            self._agent = agent = None
        return agent

    def lock_in_agent(
        self, ask: LockAsk, on_busy: Callable[[str], None]
    ) -> tuple[Held, str] | None:
        """The server's lock, held by the session agent (remote.lock); None:
        there is no agent, the lock needs a holder of its own."""
        agent = self.agent()
        if agent is None:
            return None
        return agent.take_lock(ask, on_busy)

    def end_agent(self) -> None:
        if self._agent is not None:
            self._agent.end()
            self._agent = None

    def _drop(self) -> None:
        if self._agent is not None:
            self._agent.end()
            self._agent = None
        if self._sftp is not None:
            self._sftp.close()
        close_route(self._route)
        self._route = []
        self._sftp = None

    def close(self) -> None:
        with self._lock:
            self._drop()

    def cut(self) -> None:
        """Cut the connection without a goodbye, as a network failure would
        (the fault-injection tests' "drop")."""
        if self._route:
            self._route[-1].close()

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
        self.commands.append(tuple(argv))
        agent = self.agent(wait=not read_only)
        if agent is not None:
            return check_result(agent.run(argv, input, timeout, read_only), check)
        feed = None if input is None else (lambda channel: channel.sendall(input))
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
        agent = self.agent(wait=False)  # connected once, before channels open side by side
        if agent is not None:
            return agent.reads(argvs, timeout)
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
        then posix_rename it over path; see Runner.write_file. The session
        agent does that where it runs (no SFTP session to open)."""
        if (agent := self.agent()) is not None:
            agent.file("write", path, data, mode)
            return None
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
        if (agent := self.agent()) is not None:
            return agent.file("read", path)
        if self.sudo:
            return read_file_by_command(self, path)
        sftp = self.sftp()
        with self._file_errors("read", path), sftp.open(path, "rb") as handle:
            handle.prefetch()
            return handle.read()

    def remove_file(self, path: str) -> None:
        if (agent := self.agent()) is not None:
            agent.file("remove", path)
            return None
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
