"""Fault injection, for the tests only: named points between the steps of
every multi-step operation. Inert unless the environment names a point.

    ZBOOT_TEST_FAULT=<point>:<kind>    kind: kill | drop | engine | stall
    ZBOOT_TEST_FAULT_TRACE=<file>      every point reached is appended to it
    ZBOOT_TEST_FAULT_RELEASE=<file>    stall: wait until this file exists

kill: SIGKILL to zboot itself (no cleanup runs); drop: the SSH connection is
cut (the next command on the server fails, and the server's lock is freed);
engine: the target engine's next call fails, as a crashed rtslib or tgtadm
would (only at points marked engine=True, which come just before one);
stall: wait at the point until the test lets go (it reboots the server
meanwhile).

The fault-injection suite finds every point by reading the source for calls
of `point(...)`; a point's name is "<operation>.<step just done>"."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable

from .errors import ServerError

FAULT_ENV = "ZBOOT_TEST_FAULT"
TRACE_ENV = "ZBOOT_TEST_FAULT_TRACE"
RELEASE_ENV = "ZBOOT_TEST_FAULT_RELEASE"
KINDS = ("kill", "drop", "engine", "stall")

_droppers: list[Callable[[], None]] = []


def on_drop(cut: Callable[[], None]) -> None:
    """Register how to cut this run's connection to the server."""
    _droppers.append(cut)


def point(name: str, engine: bool = False) -> None:
    """A step of an operation is done; engine=True: the next step is a call of
    the target engine."""
    trace = os.environ.get(TRACE_ENV)
    if trace:
        with open(trace, "a", encoding="utf-8") as handle:
            handle.write(name + "\n")
    wanted = os.environ.get(FAULT_ENV)
    if not wanted:
        return
    where, _, kind = wanted.rpartition(":")
    if where != name:
        return
    if kind == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    elif kind == "drop":
        for cut in _droppers:
            cut()
    elif kind == "engine" and engine:
        raise ServerError(f"the target engine failed (injected at {name})")
    elif kind == "stall":
        release = os.environ.get(RELEASE_ENV, "")
        deadline = time.monotonic() + 900
        while not os.path.exists(release) and time.monotonic() < deadline:
            time.sleep(0.1)
    else:
        raise ValueError(f"{FAULT_ENV}={wanted}: {kind!r} cannot be injected at {name}")
