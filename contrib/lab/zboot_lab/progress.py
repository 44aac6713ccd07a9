"""Step-by-step progress on stderr: what the lab is doing and how long it took."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager


def say(message: str) -> None:
    print(f"lab: {message}", file=sys.stderr, flush=True)


@contextmanager
def step(title: str) -> Iterator[None]:
    """Print a step, run it, print how long it took (or that it failed)."""
    say(f"{title} ...")
    start = time.monotonic()
    try:
        yield
    except BaseException:
        say(f"{title}: FAILED after {time.monotonic() - start:.1f}s")
        raise
    say(f"{title}: done in {time.monotonic() - start:.1f}s")
