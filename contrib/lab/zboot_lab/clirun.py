"""zboot as a user runs it, for the benchmarks: `python -m zboot --json -v
ARGS` with a config, timed on the wall clock, with the commands it ran on
the server (what -v prints after `ran:`)."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .costs import timed
from .procs import LabError


@dataclass(frozen=True)
class Ran:
    data: object  # the envelope's data
    seconds: float
    commands: list[str]  # what it ran on the server, in order (-v's `ran:` lines)


class ZbootCli:
    def __init__(self, python: Path, config: Path) -> None:
        self.python, self.config = python, config

    def __call__(self, *args: str, codes: Sequence[int] = (0,)) -> Ran:
        """Run zboot; raise unless it exits with one of codes."""
        start = time.monotonic()
        with timed("zboot command (over SSH)"):
            result = subprocess.run(
                [str(self.python), "-m", "zboot", "--json", "-v", *args],
                capture_output=True,
                text=True,
                timeout=7200,
                env=dict(os.environ, ZBOOT_CONFIG=str(self.config)),
            )
        seconds = time.monotonic() - start
        if result.returncode not in codes:
            raise LabError(f"zboot {shlex.join(args)} failed: {result.stdout}{result.stderr}")
        envelope = json.loads(result.stdout or "{}")
        ran = [line[5:] for line in result.stderr.splitlines() if line.startswith("ran: ")]
        return Ran(envelope.get("data"), seconds, ran)

    def data(self, *args: str) -> dict[str, object]:
        data = self(*args).data
        return data if isinstance(data, dict) else {}


def kind(command: str) -> str:
    """What a server command is: `zfs <verb>`, the LIO agent, the lock
    holder, or its program's name."""
    if "lock holder" in command:
        return "lock holder"
    if "agent" in command:
        return "LIO agent" if "lio" in command else "ZFS agent" if "lzc" in command else "agent"
    words = command.split()
    if words[:1] == ["zfs"]:
        return " ".join(words[:2])
    return words[0] if words else "?"


def summary(commands: Sequence[str]) -> str:
    """`zfs list, zfs get, 2 zfs set, LIO agent, ...`: the server commands by
    kind, in the order each kind first ran."""
    counts = Counter(kind(c) for c in commands)
    return ", ".join(k if n == 1 else f"{n} {k}" for k, n in counts.items())


def zfs_commands(commands: Sequence[str]) -> list[str]:
    """`zfs <verb>` of each zfs command, in order (to compare with the floor's)."""
    return [k for k in (kind(c) for c in commands) if k.startswith("zfs ")]
