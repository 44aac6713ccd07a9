"""Run commands on this machine: argv lists straight to exec (no shell), a deadline
that kills the whole process group, files replaced atomically with os.replace."""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import tempfile
import threading
from collections.abc import Callable, Sequence
from typing import IO, BinaryIO, cast

from ..errors import CommandFailed, NotFound, ServerError
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
    read_one_by_one,
    remove_file_by_command,
    run_one_by_one,
    write_file_by_command,
)

Feeder = Callable[[IO[bytes]], None]
# How long to wait for output pipes after the process was killed (a grandchild
# that left the process group could hold them open).
DRAIN_AFTER_KILL = 5.0


def _drain(pipe: IO[bytes], into: list[bytes]) -> None:
    while block := pipe.read(1 << 16):
        into.append(block)


def _kill(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except OSError:
        with contextlib.suppress(OSError):
            proc.kill()


def _spawn(args: tuple[str, ...], full: list[str], feeds: bool) -> subprocess.Popen[bytes] | Result:
    """The process, or the shell's answer when it cannot start (127, 126)."""
    try:
        return subprocess.Popen(
            full,
            stdin=subprocess.PIPE if feeds else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            cwd="/",  # never the admin's directory
        )
    except FileNotFoundError:
        return Result(args, 127, b"", f"{full[0]}: command not found\n".encode())
    except PermissionError as exc:
        return Result(args, 126, b"", f"{full[0]}: {exc.strerror}\n".encode())


class LocalRunner:
    """A Runner for the machine zboot runs on. With sudo=True every command is
    prefixed with `sudo -n` (never prompts), and file operations go through sudo'd
    commands too."""

    def __init__(self, sudo: bool = False) -> None:
        self.sudo = sudo
        self.commands: list[tuple[str, ...]] = []

    def _execute(self, argv: Sequence[str], feed: Feeder | None, timeout: float | None) -> Result:
        args = tuple(argv)
        self.commands.append(args)
        proc = _spawn(args, ["sudo", "-n", *args] if self.sudo else list(args), feed is not None)
        if isinstance(proc, Result):
            return proc
        out: list[bytes] = []
        err: list[bytes] = []
        readers = [
            threading.Thread(target=_drain, args=(pipe, into), daemon=True)
            for pipe, into in ((proc.stdout, out), (proc.stderr, err))
        ]
        expired = threading.Event()

        def on_deadline() -> None:
            expired.set()
            _kill(proc)

        timer = threading.Timer(timeout, on_deadline) if timeout is not None else None
        try:
            for reader in readers:
                reader.start()
            if timer is not None:
                timer.start()
            if feed is not None:
                stdin = cast(IO[bytes], proc.stdin)
                # BrokenPipe: the command stopped reading; its exit status tells why.
                with contextlib.suppress(BrokenPipeError):
                    feed(stdin)
                    stdin.close()
            proc.wait()
        except BaseException:
            _kill(proc)
            proc.wait()
            raise
        finally:
            if timer is not None:
                timer.cancel()
            for reader in readers:
                reader.join(DRAIN_AFTER_KILL if expired.is_set() else None)
            for pipe in (proc.stdin, proc.stdout, proc.stderr):
                if pipe is not None:
                    pipe.close()
        if expired.is_set():
            raise ServerError(
                f"{shlex.join(args)} timed out after {timeout:g} s (killed)",
                hint="raise the timeout if the command is just slow",
            )
        return Result(args, proc.returncode, b"".join(out), b"".join(err))

    def run(
        self,
        argv: Sequence[str],
        *,
        input: bytes | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        check: bool = True,
        read_only: bool = False,
    ) -> Result:
        """Run argv without a shell; see Runner.run."""
        feed: Feeder | None = None
        if input is not None:
            data = input

            def feed(pipe: IO[bytes]) -> None:
                pipe.write(data)

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

        def feed(pipe: IO[bytes]) -> None:
            pump(source, pipe.write, chunk, on_progress)

        return check_result(self._execute(argv, feed, timeout), True)

    def hold(
        self, argv: Sequence[str], until: str, on_line: LineFn, timeout: float = DEFAULT_TIMEOUT
    ) -> Held:
        """See Runner.hold: a child process, its stdin a pipe kept open."""
        args = tuple(argv)
        self.commands.append(args)
        full = ["sudo", "-n", *args] if self.sudo else list(args)
        proc = subprocess.Popen(
            full,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            cwd="/",  # never the admin's directory
        )
        timer = threading.Timer(timeout, _kill, args=(proc,))
        timer.start()
        try:
            for raw in iter(cast(IO[bytes], proc.stdout).readline, b""):
                text = raw.decode("utf-8", errors="replace").rstrip("\n")
                if text == until:
                    return HeldProcess(proc)
                on_line(text)
            error = cast(IO[bytes], proc.stderr).read()
            proc.wait()
        finally:
            timer.cancel()
        if proc.returncode < 0:
            raise ServerError(f"{shlex.join(args)} did not answer in {timeout:g} s (killed)")
        raise CommandFailed(args, proc.returncode, error.decode("utf-8", errors="replace"))

    def reads(
        self, argvs: Sequence[Sequence[str]], timeout: float = DEFAULT_TIMEOUT
    ) -> list[Result]:
        """One after the other: locally a process costs little."""
        return read_one_by_one(self, argvs, timeout)

    def run_chains(
        self, chains: Sequence[Chain], timeout: float = DEFAULT_TIMEOUT
    ) -> list[ChainFailure | None]:
        """Each step exec'd on its own: locally a process costs little."""
        return run_one_by_one(self, chains)

    def write_file(self, path: str, data: bytes, mode: int = 0o644) -> None:
        """Write a temp file next to path, chmod, fsync, os.replace; see Runner."""
        if self.sudo:
            write_file_by_command(self, path, data, mode)
            return
        directory, name = os.path.split(path)
        try:
            fd, tmp = tempfile.mkstemp(prefix=f".{name}.tmp-", dir=directory or ".")
        except OSError as exc:
            raise ServerError(f"cannot write {path}: {exc.strerror}") from exc
        try:
            with os.fdopen(fd, "wb") as handle:
                os.fchmod(handle.fileno(), mode)
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except BaseException as exc:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            if isinstance(exc, OSError):
                raise ServerError(f"cannot write {path}: {exc.strerror}") from exc
            raise

    def read_file(self, path: str) -> bytes:
        if self.sudo:
            return read_file_by_command(self, path)
        try:
            with open(path, "rb") as handle:
                return handle.read()
        except FileNotFoundError:
            raise NotFound(f"{path}: no such file on the server") from None
        except OSError as exc:
            raise ServerError(f"cannot read {path}: {exc.strerror}") from exc

    def remove_file(self, path: str) -> None:
        if self.sudo:
            remove_file_by_command(self, path)
            return
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise ServerError(f"cannot remove {path}: {exc.strerror}") from exc

    def close(self) -> None:
        """Nothing to release locally."""


class HeldProcess:
    """A child left running with its stdin open (LocalRunner.hold)."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc
        self._writing = threading.Lock()

    def send(self, data: bytes) -> None:
        stdin = cast(IO[bytes], self.proc.stdin)
        with self._writing:
            if stdin.closed:
                raise BrokenPipeError("released")
            stdin.write(data)
            stdin.flush()

    def alive(self) -> bool:
        return self.proc.poll() is None

    def release(self) -> None:
        with self._writing, contextlib.suppress(OSError):
            cast(IO[bytes], self.proc.stdin).close()  # end-of-file: it ends
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            _kill(self.proc)
            self.proc.wait()
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()
