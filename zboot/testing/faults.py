"""Fault injection, for the tests only: what happens at zboot.faults' named
points when a test asks for it through the environment. `zboot` installs
this only when ZBOOT_TEST_FAULT or ZBOOT_TEST_FAULT_TRACE is set (see
install_if_asked); nothing else imports it.

    ZBOOT_TEST_FAULT=<point>:<kind>    kind: kill | drop | engine | stall
    ZBOOT_TEST_FAULT_TRACE=<file>      every point reached is appended to it
    ZBOOT_TEST_FAULT_RELEASE=<file>    stall: wait until this file exists

kill: SIGKILL to zboot itself (no cleanup runs); drop: the SSH connection is
cut (the next command on the server fails, and the server's lock is freed);
engine: from this point on, every change the target engine is asked for
fails before it is made, as with a crashed rtslib or tgtadm (points marked
engine=True have an engine call next in at least one way of running their
operation); stall: wait at the point until the test lets go (it reboots the
server meanwhile).

The fault-injection suite finds every point by reading the source for calls
of `point(...)`; a point's name is "<operation>.<step just done>"."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterable

from .. import faults
from ..errors import ServerError
from ..targets.base import Export, TargetEngine

FAULT_ENV = "ZBOOT_TEST_FAULT"
TRACE_ENV = "ZBOOT_TEST_FAULT_TRACE"
RELEASE_ENV = "ZBOOT_TEST_FAULT_RELEASE"
KINDS = ("kill", "drop", "engine", "stall")

_engine_broken = False


def point(name: str, engine: bool = False) -> None:
    """A step of an operation is done; engine=True: the next step is a call of
    the target engine."""
    global _engine_broken
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
        for cut in faults.droppers:
            cut()
    elif kind == "engine":
        _engine_broken = True
    elif kind == "stall":
        release = os.environ.get(RELEASE_ENV, "")
        deadline = time.monotonic() + 900
        while not os.path.exists(release) and time.monotonic() < deadline:
            time.sleep(0.1)
    else:
        raise ValueError(f"{FAULT_ENV}={wanted}: no fault {kind!r}")


class _Watched:
    """A target engine whose changes fail once an engine fault is injected."""

    def __init__(self, inner: TargetEngine) -> None:
        self.inner, self.name, self.lun = inner, inner.name, inner.lun

    def exports(self) -> dict[str, Export]:
        return self.inner.exports()

    def sessions(self, targets: Iterable[str]) -> dict[str, list[str]]:
        return self.inner.sessions(targets)

    def apply(
        self, create: Iterable[Export] = (), delete: Iterable[str] = (), persist: bool = True
    ) -> None:
        trace = os.environ.get(TRACE_ENV)
        if trace:  # the suite places engine faults where an engine call follows
            with open(trace, "a", encoding="utf-8") as handle:
                handle.write("engine-call\n")
        if _engine_broken:
            raise ServerError(f"the target engine ({self.name}) failed (injected)")
        self.inner.apply(create, delete, persist)


def watch(engine: TargetEngine) -> TargetEngine:
    """The engine, wrapped so that its changes fail once an engine fault hit."""
    return _Watched(engine)


def install() -> None:
    """Hook into zboot.faults (once)."""
    faults.uninstall()
    faults.install(point, watch)
