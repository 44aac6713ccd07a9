"""Where a test run's time goes: the lab's costly steps (storage VM boots,
client boots, golden-image builds, SSH commands, zboot runs) add their
wall-clock time here, and the tests' session prints the sums at its end, so
a slow change shows in every run's log."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass


@dataclass
class Cost:
    count: int = 0
    seconds: float = 0.0


SPENT: dict[str, Cost] = {}


@contextmanager
def timed(kind: str) -> Iterator[None]:
    """Add the block's wall-clock time to kind (failures count too)."""
    start = time.monotonic()
    try:
        yield
    finally:
        cost = SPENT.setdefault(kind, Cost())
        cost.count += 1
        cost.seconds += time.monotonic() - start


def report(total: float) -> list[str]:
    """One line per kind, the costliest first, with its share of total."""
    lines = [f"{'what':<36} {'count':>6} {'seconds':>9} {'each':>7} {'share':>6}"]
    for kind, cost in sorted(SPENT.items(), key=lambda item: -item[1].seconds):
        each = cost.seconds / cost.count if cost.count else 0.0
        share = 100 * cost.seconds / total if total else 0.0
        lines.append(f"{kind:<36} {cost.count:>6} {cost.seconds:>9.1f} {each:>7.2f} {share:>5.0f}%")
    return lines
