"""A real ssh-agent of a test's own, for the tests of which keys zboot offers."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def running_agent(sock: Path, *keys: Path) -> Iterator[Path]:
    """ssh-agent listening on sock and holding keys (added in that order);
    stopped by its PID afterwards."""
    agent = subprocess.Popen(["ssh-agent", "-D", "-a", str(sock)], stdout=subprocess.DEVNULL)
    try:
        for _ in range(100):
            if sock.exists():
                break
            time.sleep(0.05)
        env = {"SSH_AUTH_SOCK": str(sock), "PATH": "/usr/bin:/bin"}
        if keys:
            subprocess.run(["ssh-add", "-q", *map(str, keys)], check=True, env=env)
        yield sock
    finally:
        agent.terminate()
        agent.wait(10)
