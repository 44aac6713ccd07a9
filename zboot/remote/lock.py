"""One zboot at a time changes a server: a lock on the server itself (not on
the admin's machine), so two laptops cannot interleave their changes.

A small Python program (remote.lock_holder) holds the lock on the server, in
`/run/zboot/lock` (`/var/run/zboot` where there is no /run), a directory
only root may use. Where zboot's session agent runs (remote.agent_client),
the agent runs that program's steps itself and is the holder: the lock costs
no process or SSH channel of its own. The holder keeps the lock for as long
as zboot keeps talking to it: zboot sends it a line every BEAT seconds.
When zboot lets go, is killed, its connection drops, or it falls silent for
SILENCE seconds (a laptop that lost power or its network, a stopped
process), the holder ends every command that zboot still has running on
the server, and only then frees the lock. So a
second zboot never interleaves with what the first one left running.

Every command run under the lock goes through WRAPPER, which registers it
with the holder's lease for as long as it runs and refuses to start once the
lease has ended (exit LOST): a zboot that was stopped for a minute and
resumes learns that it lost the lock instead of changing anything.

The lock file names the holder, so a zboot that waits can say who it waits
for; `zboot unlock` ends a holder an admin knows to be stale. A zboot that
waits longer than `[server] lock_timeout` gives up with exit 4. Read-only
commands (list, show, ...) take no lock."""

from __future__ import annotations

import getpass
import json
import os
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from ..errors import CommandFailed, Conflict, ServerError
from .agent_client import LockAsk
from .base import (
    DEFAULT_TIMEOUT,
    Chain,
    ChainFailure,
    Held,
    LineFn,
    ProgressFn,
    Result,
    Runner,
)
from .chains import run_in_shells
from .python import python_argv

HOLDER = Path(__file__).with_name("lock_holder.py").read_text()
BREAKER = Path(__file__).with_name("lock_breaker.py").read_text()
BUSY = "zboot-lock-busy"
LEASE = "zboot-lease"
LOCKED = "zboot-locked"
TIMED_OUT = 75  # the holder's exit when lock_timeout passed
UNSAFE = 77  # the holder's exit when the lock directory is not root's alone
NO_PYTHON = 127  # env(1): no python3 on the server
BEAT = 5.0  # seconds between zboot's lines to the holder
SILENCE = 40.0  # seconds without one after which the holder gives up on zboot
LOST = 75
LOST_MARK = "zboot-lease-lost"
# Runs one command under the lease $1 (a directory named lease.<holder pid>):
# registered while it runs, refused once the lease has ended.
WRAPPER = (
    'l=$1; shift; [ -d "$l" ] && kill -0 "${l##*.}" 2>/dev/null && : > "$l/$$" 2>/dev/null'
    f' || {{ echo "{LOST_MARK}: this zboot no longer holds the server\'s lock" >&2; exit {LOST}; }}'
    '; "$@"; s=$?; rm -f "$l/$$"; exit $s'
)


def owner(command: str) -> str:
    """Who holds the lock, as a waiting zboot shows it."""
    return (
        f"zboot {command} by {getpass.getuser()}@{socket.gethostname()} "
        f"(pid {os.getpid()}) since {time.strftime('%H:%M:%S')}"
    )


class Lease:
    """The lock, held: a heartbeat to the holder, and the lease directory the
    commands register in."""

    def __init__(
        self, held: Held, directory: str, beat: float = BEAT, in_agent: bool = False
    ) -> None:
        self.held = held
        self.directory = directory
        self.in_agent = in_agent  # the session agent holds it and runs the changes
        self._stop = threading.Event()
        self._beats = threading.Thread(target=self._beat, args=(beat,), daemon=True)
        self._beats.start()

    def _beat(self, every: float) -> None:
        while not self._stop.wait(every):
            try:
                self.held.send(b"\n")
            except OSError:
                return  # the holder is gone; the next command learns it

    def wrap(self, argv: Sequence[str]) -> list[str]:
        return ["sh", "-c", WRAPPER, "sh", self.directory, *argv]

    def alive(self) -> bool:
        return self.held.alive()

    def release(self) -> None:
        self._stop.set()
        self.held.release()


def acquire(
    runner: Runner,
    command: str,
    wait: float,
    where: str,
    say: Callable[[str], None],
    directory: str = "",
    silence: float = SILENCE,
) -> Lease | None:
    """Take the server's lock; say() once if another zboot has it; Conflict
    (exit 4) when it is still taken after `wait` seconds. None: the server has
    no python3 to hold it (said, and zboot goes on). directory: where the
    lock directory `zboot` is made (tests; default /run, else /var/run);
    silence: how long the holder waits for a heartbeat (tests)."""
    holder: list[str] = []
    lease: list[str] = []

    def on_busy(who: str) -> None:
        holder.append(who or "another zboot")
        say(f"zboot: waiting up to {wait:g} s for the lock on {where}, held by {holder[-1]}")

    def on_line(line: str) -> None:
        if line.startswith(LEASE + " "):
            lease.append(line.removeprefix(LEASE + " "))
        elif line.startswith(BUSY):
            on_busy(line.removeprefix(BUSY).strip())

    in_agent = getattr(runner, "lock_in_agent", None)
    try:
        if in_agent is not None and (
            taken := in_agent(LockAsk(HOLDER, directory, owner(command), wait, silence), on_busy)
        ):
            return Lease(taken[0], taken[1], in_agent=True)
        held = runner.hold(
            python_argv(HOLDER, directory, owner(command), str(wait), str(silence), site=False),
            LOCKED,
            on_line,
            timeout=wait + 60,
        )
    except CommandFailed as err:
        if err.returncode == NO_PYTHON:
            say(
                f"zboot: warning: {where} has no /usr/bin/python3 to hold the lock; going on "
                "without it (do not run two zboots against it at once)"
            )
            return None
        if err.returncode == TIMED_OUT:
            raise Conflict(
                f"{where} is locked by {holder[-1] if holder else 'another zboot'}; "
                f"gave up after {wait:g} s",
                hint="wait for it to finish, raise [server] lock_timeout, or, if that zboot "
                "is gone for sure, `zboot unlock`",
            ) from None
        why = err.stderr.strip().splitlines()[-1:] or [f"exit {err.returncode}"]
        raise ServerError(f"cannot take the lock on {where}: {why[0]}") from None
    if not lease:
        held.release()
        raise ServerError(f"the lock holder on {where} named no lease")
    return Lease(held, lease[-1])


class LockedRunner:
    """A runner that takes the server's lock before its first command (so bad
    input found before that never reaches the server), runs every command
    that changes anything under the lease, and lets the lock go on close."""

    def __init__(self, inner: Runner, take: Callable[[Runner], Lease | None]) -> None:
        self.inner = inner
        self.take = take
        self.lease: Lease | None = None
        self.taken = False
        self.commands = inner.commands  # the same list: what ran, for -v

    def _locked(self) -> Runner:
        if not self.taken:
            self.lease = self.take(self.inner)
            self.taken = True
        elif self.lease is not None and not self.lease.alive():
            raise lost()
        return self.inner

    def _wrapped(self, argv: Sequence[str], own_process: bool = False) -> list[str]:
        """argv under the lease: as it is when the session agent runs it (not
        for a command on its own channel: own_process), else in WRAPPER."""
        self._locked()
        # where the session agent holds the lock, it registers what it runs
        # and refuses changes once the lease ended: no wrapper needed
        if self.lease is None or (self.lease.in_agent and not own_process):
            return list(argv)
        return self.lease.wrap(argv)

    def _record(self, argv: Sequence[str], result: Result) -> Result:
        """The record shows the command, not its wrapper; a refusal is LOST."""
        self.commands[-1] = tuple(argv)
        if result.returncode == LOST and LOST_MARK.encode() in result.stderr:
            raise lost()
        return Result(tuple(argv), result.returncode, result.stdout, result.stderr)

    def run(
        self,
        argv: Sequence[str],
        *,
        input: bytes | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        check: bool = True,
        read_only: bool = False,
    ) -> Result:
        # A read changes nothing, whoever holds the lock: it runs as it is (one
        # process fewer); the next change learns whether the lease still holds.
        wrapped = list(argv) if read_only else self._wrapped(argv)
        if read_only:
            self._locked()
        result = self.inner.run(
            wrapped, input=input, timeout=timeout, check=False, read_only=read_only
        )
        result = self._record(argv, result)
        if check and not result.ok:
            raise CommandFailed(
                result.argv, result.returncode, result.stderr.decode("utf-8", errors="replace")
            )
        return result

    def stream(
        self,
        argv: Sequence[str],
        source: BinaryIO,
        chunk: int = 1 << 20,
        on_progress: ProgressFn | None = None,
        timeout: float | None = None,
    ) -> Result:
        wrapped = self._wrapped(argv, own_process=True)
        try:
            result = self.inner.stream(wrapped, source, chunk, on_progress, timeout)
        except CommandFailed as err:
            self._record(argv, Result(tuple(argv), err.returncode, b"", err.stderr.encode()))
            raise CommandFailed(tuple(argv), err.returncode, err.stderr) from None
        return self._record(argv, result)

    def reads(
        self, argvs: Sequence[Sequence[str]], timeout: float = DEFAULT_TIMEOUT
    ) -> list[Result]:
        """Reads run as they are, like run(read_only=True), once the lock is held."""
        return self._locked().reads(argvs, timeout)

    def run_chains(
        self, chains: Sequence[Chain], timeout: float = DEFAULT_TIMEOUT
    ) -> list[ChainFailure | None]:
        """Each batch of chains is one wrapped shell (locally too)."""
        return run_in_shells(self, chains, timeout)

    def hold(
        self, argv: Sequence[str], until: str, on_line: LineFn, timeout: float = DEFAULT_TIMEOUT
    ) -> Held:
        return self._locked().hold(argv, until, on_line, timeout)

    def write_file(self, path: str, data: bytes, mode: int = 0o644) -> None:
        self._locked().write_file(path, data, mode)

    def read_file(self, path: str) -> bytes:
        return self._locked().read_file(path)

    def remove_file(self, path: str) -> None:
        self._locked().remove_file(path)

    def close(self) -> None:
        end_agent = getattr(self.inner, "end_agent", None)
        if end_agent is not None:
            end_agent()  # a lock it holds goes with it
        if self.lease is not None:
            self.lease.release()
            self.lease = None
        self.inner.close()


def lost() -> ServerError:
    return ServerError(
        "this zboot lost the server's lock (its connection to the server was lost, or it "
        f"was stopped or cut off for more than {SILENCE:g} s); what it still had running "
        "there was ended, and it changed nothing more",
        hint="run the same command again: it finishes what this run started",
    )


@dataclass(frozen=True)
class LockState:
    """Who holds a server's lock (holder: the waiting zboot's words for it)."""

    held: bool
    holder: str | None = None
    pid: int | None = None  # the holder process, on the server
    ended: int | None = None  # the holder `zboot unlock` ended


def lock_state(runner: Runner, directory: str = "", end: int | None = None) -> LockState:
    """The server's lock; end: the holder pid to end first (SIGTERM: it ends
    its zboot's commands, then lets go), as `zboot unlock` does once the
    admin agreed. directory: as for acquire (tests)."""
    result = runner.run(
        python_argv(BREAKER, directory, "" if end is None else str(end), site=False),
        read_only=end is None,
    )
    found = json.loads(result.stdout)
    return LockState(bool(found["held"]), found.get("holder"), found.get("pid"), found.get("ended"))
