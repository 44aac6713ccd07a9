"""One zboot at a time changes a server: a lock on the server itself (not on
the admin's machine), so two laptops cannot interleave their changes.

The lock is flock(1) (Linux) or lockf(1) (FreeBSD) on `/run/lock/zboot.lock`
(`/var/run/zboot.lock` where there is no /run/lock), held by a command that
reads its stdin until zboot closes it: when zboot ends, or its connection
drops, or it is killed, the holder gets end-of-file and the lock is free. The
lock file names the holder, so a zboot that waits can say who it waits for.
A zboot that waits longer than `[server] lock_timeout` gives up with exit 4.
Read-only commands (list, show, ...) take no lock."""

from __future__ import annotations

import getpass
import os
import socket
import time
from collections.abc import Callable, Sequence
from typing import BinaryIO

from ..errors import CommandFailed, Conflict, ServerError
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

LOCKED = "zboot-locked"
BUSY = "zboot-lock-busy"
TIMED_OUT = 75  # EX_TEMPFAIL, as lockf(1) exits on its timeout
NO_TOOL = 69  # EX_UNAVAILABLE: neither flock(1) nor lockf(1) (e.g. illumos)

SCRIPT = f"""
d=${{3:-/run/lock}}; [ -d "$d" ] || d=/var/run
f="$d/zboot.lock"
if command -v flock >/dev/null 2>&1; then
  exec 9>>"$f" || exit 70
  if ! flock -n 9; then
    printf '{BUSY} %s\\n' "$(cat "$f" 2>/dev/null)"
    flock -w "$2" 9 || exit {TIMED_OUT}
  fi
  printf '%s\\n' "$1" > "$f"
  echo {LOCKED}
  exec cat >/dev/null
elif command -v lockf >/dev/null 2>&1; then
  lockf -s -k -t 0 "$f" true || printf '{BUSY} %s\\n' "$(cat "$f" 2>/dev/null)"
  exec lockf -s -k -t "$2" "$f" sh -c 'printf "%s\\n" "$1" > "$2"; echo {LOCKED}; \
exec cat >/dev/null' sh "$1" "$f"
else
  exit {NO_TOOL}
fi
"""


def owner(command: str) -> str:
    """Who holds the lock, as a waiting zboot shows it."""
    return (
        f"zboot {command} by {getpass.getuser()}@{socket.gethostname()} "
        f"(pid {os.getpid()}) since {time.strftime('%H:%M:%S')}"
    )


def acquire(
    runner: Runner,
    command: str,
    wait: float,
    where: str,
    say: Callable[[str], None],
    directory: str = "",
) -> Held:
    """Take the server's lock; say() once if another zboot has it; Conflict
    (exit 4) when it is still taken after `wait` seconds. directory: where
    the lock file lives (tests; default /run/lock, else /var/run)."""
    holder: list[str] = []

    def on_line(line: str) -> None:
        if line.startswith(BUSY):
            holder.append(line.removeprefix(BUSY).strip() or "another zboot")
            say(f"zboot: waiting up to {wait:g} s for the lock on {where}, held by {holder[-1]}")

    try:
        return runner.hold(
            ["sh", "-c", SCRIPT, "sh", owner(command), str(int(wait)), directory],
            LOCKED,
            on_line,
            timeout=wait + 60,
        )
    except CommandFailed as err:
        if err.returncode == NO_TOOL:
            say(
                f"zboot: warning: {where} has neither flock(1) nor lockf(1); going on "
                "without the lock (do not run two zboots against it at once)"
            )
            return Unlocked()
        if err.returncode == TIMED_OUT:
            raise Conflict(
                f"{where} is locked by {holder[-1] if holder else 'another zboot'}; "
                f"gave up after {wait:g} s",
                hint="wait for it to finish, or raise [server] lock_timeout",
            ) from None
        raise ServerError(f"cannot take the lock on {where}: {err.message}") from None


class Unlocked:
    """No lock to let go of (a server without flock(1) or lockf(1))."""

    def release(self) -> None:
        return None


class LockedRunner:
    """A runner that takes the server's lock before its first command (so bad
    input found before that never reaches the server) and lets it go on close."""

    def __init__(self, inner: Runner, take: Callable[[Runner], Held]) -> None:
        self.inner = inner
        self.take = take
        self.held: Held | None = None
        self.commands = inner.commands  # the same list: what ran, for -v

    def _locked(self) -> Runner:
        if self.held is None:
            self.held = self.take(self.inner)
        return self.inner

    def run(
        self,
        argv: Sequence[str],
        *,
        input: bytes | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        check: bool = True,
        read_only: bool = False,
    ) -> Result:
        return self._locked().run(
            argv, input=input, timeout=timeout, check=check, read_only=read_only
        )

    def stream(
        self,
        argv: Sequence[str],
        source: BinaryIO,
        chunk: int = 1 << 20,
        on_progress: ProgressFn | None = None,
        timeout: float | None = None,
    ) -> Result:
        return self._locked().stream(argv, source, chunk, on_progress, timeout)

    def run_chains(
        self, chains: Sequence[Chain], timeout: float = DEFAULT_TIMEOUT
    ) -> list[ChainFailure | None]:
        return self._locked().run_chains(chains, timeout)

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
        if self.held is not None:
            self.held.release()
            self.held = None
        self.inner.close()
