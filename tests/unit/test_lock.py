"""The server lock, run for real on this machine: the same holder program
zboot sends to a server, in a private directory."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from zboot.errors import Conflict, ServerError
from zboot.remote import lock
from zboot.remote.base import Result
from zboot.remote.local import LocalRunner
from zboot.testing.recording import RecordingRunner


def take(
    tmp_path: Path, wait: float, said: list[str] | None = None, command: str = "clone"
) -> lock.Lease:
    held = lock.acquire(
        LocalRunner(),
        command,
        wait,
        "this server",
        (said if said is not None else []).append,
        str(tmp_path),
    )
    assert held is not None
    return held


def test_a_second_zboot_waits_says_for_whom_and_gives_up_with_exit_4(tmp_path: Path) -> None:
    first = take(tmp_path, 5, command="rollback")
    said: list[str] = []
    started = time.monotonic()
    with pytest.raises(Conflict) as refused:
        take(tmp_path, 1, said)
    assert 1 <= time.monotonic() - started < 10
    assert refused.value.exit_code == 4 and "zboot rollback by" in refused.value.message
    assert "zboot unlock" in (refused.value.hint or "")
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


def test_the_lock_lives_in_a_root_only_directory_and_follows_no_link(tmp_path: Path) -> None:
    take(tmp_path, 1).release()
    directory = tmp_path / "zboot"
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert stat.S_IMODE((directory / "lock").stat().st_mode) == 0o600
    (directory / "lock").unlink()
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    (directory / "lock").symlink_to(victim)  # planted
    with pytest.raises(ServerError):
        take(tmp_path, 1)
    assert victim.read_text() == "precious\n"


@pytest.mark.parametrize("planted", ["open to all", "a link"])
def test_a_lock_directory_others_can_write_to_is_refused(tmp_path: Path, planted: str) -> None:
    directory = tmp_path / "zboot"
    if planted == "a link":
        (tmp_path / "elsewhere").mkdir(mode=0o700)
        directory.symlink_to(tmp_path / "elsewhere")
    else:
        directory.mkdir()
        directory.chmod(0o777)
    with pytest.raises(ServerError) as refused:
        take(tmp_path, 1)
    assert "not a directory only uid" in refused.value.message
    assert not (tmp_path / "elsewhere" / "lock").exists()


CHILD = """
import sys, threading, time
from zboot.remote import lock
from zboot.remote.local import LocalRunner
directory, silence, marker = sys.argv[1], float(sys.argv[2]), sys.argv[3]
runner = lock.LockedRunner(
    LocalRunner(),
    lambda inner: lock.acquire(inner, "clone", 5, "x", print, directory, silence=silence),
)
threading.Thread(
    target=runner.run, args=(["sh", "-c", f"sleep 4; touch {marker}"],), daemon=True
).start()
time.sleep(1)
print("held", flush=True)
sys.stdin.readline()  # the test says go on
try:
    runner.run(["touch", marker + ".after"])
    print("ran", flush=True)
except Exception as err:
    print(type(err).__name__, err, flush=True)
"""


def start_child(tmp_path: Path, silence: float) -> tuple[subprocess.Popen[str], Path]:
    marker = tmp_path / "landed"
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(tmp_path), str(silence), str(marker)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None and child.stdout.readline() == "held\n"
    return child, marker


def test_a_killed_zboot_leaves_no_lock_and_nothing_running_behind(tmp_path: Path) -> None:
    child, marker = start_child(tmp_path, 40)
    child.kill()
    child.wait()
    take(tmp_path, 10).release()  # its holder got end-of-file ...
    time.sleep(4.5)
    assert not marker.exists()  # ... and ended its command before letting go


def test_a_stopped_zboot_loses_the_lock_and_changes_nothing_after(tmp_path: Path) -> None:
    child, marker = start_child(tmp_path, 2)
    os.kill(child.pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        second = take(tmp_path, 30)  # free once the holder heard nothing for 2 s
        waited = time.monotonic() - started
    finally:
        os.kill(child.pid, signal.SIGCONT)
    assert waited < 10
    assert child.stdin is not None and child.stdout is not None
    child.stdin.write("go\n")
    child.stdin.flush()
    answer = child.stdout.readline()
    child.wait(timeout=30)
    second.release()
    assert answer.startswith("ServerError this zboot lost the server's lock"), answer
    time.sleep(4.5)
    assert not marker.exists() and not Path(f"{marker}.after").exists()


def test_commands_run_under_the_lease_and_are_recorded_as_themselves() -> None:
    seen: list[tuple[str, ...]] = []

    def respond(argv: tuple[str, ...], _: bytes | None) -> Result:
        seen.append(argv)
        if "-IS" in argv:  # the holder
            return Result(
                argv, 0, f"{lock.LEASE} /run/zboot/lease.7\n{lock.LOCKED}\n".encode(), b""
            )
        return Result(argv, 0, b"", b"")

    inner = RecordingRunner(respond)
    locked = lock.LockedRunner(inner, lambda r: lock.acquire(r, "destroy", 5, "x", print))
    assert inner.commands == []  # nothing yet: bad input found now reaches no server
    locked.run(["zfs", "list"])
    assert inner.commands[-1] == ("zfs", "list")
    assert seen[-1][:2] == ("sh", "-c") and seen[-1][-3:] == ("/run/zboot/lease.7", "zfs", "list")
    locked.close()
    assert [c[0] for c in inner.commands] == ["env", "zfs", "release"]


def test_chains_run_under_a_real_lease(tmp_path: Path) -> None:
    runner = LocalRunner()
    locked = lock.LockedRunner(
        runner, lambda r: lock.acquire(r, "clone", 5, "x", print, str(tmp_path))
    )
    made = tmp_path / "made"
    outcomes = locked.run_chains([[["touch", str(made)], ["false"], ["touch", "x"]], [["true"]]])
    locked.close()
    assert made.exists() and outcomes[1] is None
    assert outcomes[0] is not None and outcomes[0].step == 1
    assert runner.commands[1:] == [("touch", str(made)), ("false",), ("touch", "x"), ("true",)]


def test_a_command_refused_by_an_ended_lease_is_a_lost_lock() -> None:
    def respond(argv: tuple[str, ...], _: bytes | None) -> Result:
        if "-IS" in argv:
            return Result(argv, 0, f"{lock.LEASE} /r/lease.7\n{lock.LOCKED}\n".encode(), b"")
        return Result(argv, lock.LOST, b"", f"{lock.LOST_MARK}: gone\n".encode())

    locked = lock.LockedRunner(
        RecordingRunner(respond), lambda r: lock.acquire(r, "clone", 5, "x", print)
    )
    with pytest.raises(ServerError, match="lost the server's lock"):
        locked.run(["zfs", "destroy", "tank/x"], check=False)


def test_a_server_without_python3_gets_a_warning_not_a_refusal() -> None:
    runner = RecordingRunner(lambda argv, _: Result(argv, lock.NO_PYTHON, b"", b""))
    said: list[str] = []
    assert lock.acquire(runner, "clone", 5, "oi-storage", said.append) is None
    assert said == [
        "zboot: warning: oi-storage has no /usr/bin/python3 to hold the lock; going on "
        "without it (do not run two zboots against it at once)"
    ]


def test_unlock_shows_the_holder_and_ends_it_with_its_commands(tmp_path: Path) -> None:
    runner = LocalRunner()
    assert lock.lock_state(runner, str(tmp_path)) == lock.LockState(held=False)
    child, marker = start_child(tmp_path, 40)
    now = lock.lock_state(runner, str(tmp_path))
    assert now.held and now.holder is not None and "zboot clone by" in now.holder
    assert now.pid is not None and now.pid != child.pid  # the holder, not the zboot
    assert lock.lock_state(runner, str(tmp_path), end=now.pid + 1).held  # not that one
    after = lock.lock_state(runner, str(tmp_path), end=now.pid)
    assert after.held is False and after.ended == now.pid
    take(tmp_path, 1).release()
    time.sleep(4.5)
    assert not marker.exists()  # its command was ended too
    assert child.stdin is not None and child.stdout is not None
    child.stdin.write("go\n")
    child.stdin.flush()
    assert child.stdout.readline().startswith("ServerError this zboot lost the server's lock")
    child.wait(timeout=30)
