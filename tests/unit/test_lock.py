"""The server lock, run for real on this machine: flock(1) through the same
script zboot sends to a server, in a private directory."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from zboot.errors import Conflict
from zboot.remote import lock
from zboot.remote.base import Held, Result
from zboot.remote.local import LocalRunner
from zboot.testing.recording import RecordingRunner


def take(
    tmp_path: Path, wait: float, said: list[str] | None = None, command: str = "clone"
) -> Held:
    return lock.acquire(
        LocalRunner(),
        command,
        wait,
        "this server",
        (said if said is not None else []).append,
        str(tmp_path),
    )


def test_a_second_zboot_waits_says_for_whom_and_gives_up_with_exit_4(tmp_path: Path) -> None:
    first = take(tmp_path, 5, command="rollback")
    said: list[str] = []
    started = time.monotonic()
    with pytest.raises(Conflict) as refused:
        take(tmp_path, 1, said)
    assert 1 <= time.monotonic() - started < 10
    assert refused.value.exit_code == 4 and "zboot rollback by" in refused.value.message
    assert len(said) == 1 and "waiting up to 1 s" in said[0] and "zboot rollback by" in said[0]
    first.release()
    take(tmp_path, 1).release()  # free again


def test_the_waiting_zboot_goes_on_when_the_first_lets_go(tmp_path: Path) -> None:
    first = take(tmp_path, 5)
    threading.Timer(1.0, first.release).start()
    said: list[str] = []
    second = take(tmp_path, 30, said)
    assert len(said) == 1
    second.release()


def test_a_killed_zboot_leaves_no_lock_behind(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from zboot.remote import lock; "
            "from zboot.remote.local import LocalRunner; "
            f"lock.acquire(LocalRunner(), 'clone', 5, 'x', print, {str(tmp_path)!r}); "
            "print('held', flush=True); time.sleep(600)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline() == "held\n"
    holder.kill()
    holder.wait()
    take(tmp_path, 10).release()  # its holder got end-of-file and ended


def test_the_lock_is_taken_at_the_first_command_and_released_on_close() -> None:
    def respond(argv: tuple[str, ...], _: bytes | None) -> Result:
        return Result(argv, 0, f"{lock.LOCKED}\n".encode() if argv[0] == "sh" else b"", b"")

    inner = RecordingRunner(respond)
    locked = lock.LockedRunner(inner, lambda r: lock.acquire(r, "destroy", 5, "x", print))
    assert inner.commands == []  # nothing yet: bad input found now reaches no server
    locked.run(["zfs", "list"])
    assert [c[0] for c in inner.commands] == ["sh", "zfs"]
    locked.run(["zfs", "list"])
    locked.close()
    assert [c[0] for c in inner.commands] == ["sh", "zfs", "zfs", "release"]


def test_a_server_without_flock_or_lockf_gets_a_warning_not_a_refusal() -> None:
    runner = RecordingRunner(lambda argv, _: Result(argv, lock.NO_TOOL, b"", b""))
    said: list[str] = []
    held = lock.acquire(runner, "clone", 5, "oi-storage", said.append)
    held.release()
    assert said == [
        "zboot: warning: oi-storage has neither flock(1) nor lockf(1); going on "
        "without the lock (do not run two zboots against it at once)"
    ]
