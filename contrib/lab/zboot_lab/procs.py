"""Processes the lab starts: run commands, and stop them only by their PID."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path


class LabError(RuntimeError):
    """A lab step failed; the message says what and why."""


def run(argv: Sequence[str], *, env: dict[str, str] | None = None, log: Path | None = None) -> None:
    """Run a command to completion; on failure raise with the tail of its output."""
    if log is None:
        result = subprocess.run(list(argv), env=env, capture_output=True, text=True)
        output = result.stdout + result.stderr
    else:
        with log.open("a") as out:
            result = subprocess.run(
                list(argv), env=env, stdout=out, stderr=subprocess.STDOUT, text=True
            )
        output = log.read_text(errors="replace")
    if result.returncode != 0:
        tail = "\n".join(output.strip().splitlines()[-20:])
        raise LabError(f"{' '.join(argv)} exited {result.returncode}:\n{tail}")


def output(argv: Sequence[str]) -> str:
    result = subprocess.run(list(argv), capture_output=True, text=True)
    if result.returncode != 0:
        raise LabError(f"{' '.join(argv)} exited {result.returncode}: {result.stderr.strip()}")
    return result.stdout


def alive(pid: int) -> bool:
    """True while PID names a process that has not exited (zombies count as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    state = stat.rsplit(")", 1)[1].split()[0]
    return state not in ("Z", "X")


def read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def stop(pid: int, *, grace: float = 10.0) -> None:
    """SIGTERM the process, then SIGKILL it if it outlives the grace period."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        if not alive(pid):
            return
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)  # reap it if it is our child
            if not alive(pid):
                return
            time.sleep(0.1)
    if alive(pid):
        raise LabError(f"process {pid} did not stop")


def processes_mentioning(text: str) -> list[int]:
    """PIDs of live processes whose command line contains text (e.g. the lab's
    state directory): how `lab down` proves it left nothing running."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline and alive(int(entry.name)):
            found.append(int(entry.name))
    return found
