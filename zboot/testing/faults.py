"""Fault injection, for the tests only: what happens at zboot.faults' named
points when a test asks for it through the environment. `zboot` installs
this only when ZBOOT_TEST_FAULT or ZBOOT_TEST_FAULT_TRACE is set (see
install_if_asked); nothing else imports it.

    ZBOOT_TEST_FAULT=<point>:<kind>    kind: kill | drop | engine | stall
    ZBOOT_TEST_FAULT=lio-agent:<n>     the LIO agent dies half way through a batch
    ZBOOT_TEST_FAULT_TRACE=<file>      every point reached is appended to it
    ZBOOT_TEST_FAULT_RELEASE=<file>    stall: wait until this file exists

kill: SIGKILL to zboot itself (no cleanup runs); drop: the SSH connection is
cut (the next command on the server fails, and the server's lock is freed);
engine: from this point on, every change the target engine is asked for
fails before it is made, as with a crashed rtslib or tgtadm (points marked
engine=True have an engine call next in at least one way of running their
operation); stall: wait at the point until the test lets go (it reboots the
server meanwhile).

lio-agent:<n> is a fault inside one engine call: every LIO agent process of
the run (one per engine call) SIGKILLs itself when it is about to give its
target number n+1 an ACL, so n targets of a batch are whole and the next is
half-made (target, portal and LUN, no ACL, not enabled), and nothing is
saved. It works by running a few lines before the agent's own code that
wrap rtslib's NodeACL; the agent itself has no hook.

The fault-injection suite finds every point by reading the source for calls
of `point(...)`; a point's name is "<operation>.<step just done>"."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterable

from .. import faults
from ..errors import ServerError
from ..targets import lio
from ..targets.base import Export, TargetEngine

FAULT_ENV = "ZBOOT_TEST_FAULT"
TRACE_ENV = "ZBOOT_TEST_FAULT_TRACE"
RELEASE_ENV = "ZBOOT_TEST_FAULT_RELEASE"
KINDS = ("kill", "drop", "engine", "stall")
AGENT_FAULT = "lio-agent"

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


def agent_killer(whole: int) -> str:
    """Python to run before the LIO agent's own code: it SIGKILLs the agent
    when NodeACL is called for the (whole+1)th time (the agent imports
    NodeACL from rtslib_fb after this has replaced it)."""
    return (
        "import os as _os, signal as _signal, rtslib_fb as _rtslib\n"
        "def _dying_acl(*args, _real=_rtslib.NodeACL, _made=[0], **kwargs):\n"
        f"    if _made[0] == {whole}:\n"
        "        _os.kill(_os.getpid(), _signal.SIGKILL)\n"
        "    _made[0] += 1\n"
        "    return _real(*args, **kwargs)\n"
        "_rtslib.NodeACL = _dying_acl\n"
    )


def with_agent_fault(source: str) -> str:
    """The agent's source with agent_killer() run first (after any
    `from __future__` line, which must stay first), when the environment asks."""
    where, _, whole = os.environ.get(FAULT_ENV, "").rpartition(":")
    if where != AGENT_FAULT:
        return source
    if not whole.isdigit():
        raise ValueError(f"{FAULT_ENV}={AGENT_FAULT}:{whole}: give the number of whole targets")
    lines = source.splitlines(keepends=True)
    future = [i + 1 for i, line in enumerate(lines) if line.startswith("from __future__")]
    at = max(future, default=0)
    return "".join([*lines[:at], agent_killer(int(whole)), *lines[at:]])


def install() -> None:
    """Hook into zboot.faults (once), and into the LIO agent's source when
    the environment asks for a fault inside it."""
    faults.uninstall()
    faults.install(point, watch)
    lio.AGENT = with_agent_fault(lio.AGENT)
