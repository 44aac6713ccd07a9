"""Named points between the steps of every multi-step operation: a point's
name is "<operation>.<step just done>", and `engine=True` says the next step
calls the target engine. In a normal run a point does nothing: no hook is
installed. The fault-injection tests install one (zboot.testing.faults,
which `zboot` loads only when ZBOOT_TEST_FAULT or ZBOOT_TEST_FAULT_TRACE is
set) to stop a run at a point and check that it can be finished.

The fault-injection suite finds every point by reading the source for calls
of `faults.point(...)`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

PointHook = Callable[[str, bool], None]
T = TypeVar("T")

_point_hooks: list[PointHook] = []
_engine_wrappers: list[Callable[[Any], Any]] = []
droppers: list[Callable[[], None]] = []  # how to cut this run's connection to the server


def point(name: str, engine: bool = False) -> None:
    """A step of an operation is done."""
    for hook in _point_hooks:
        hook(name, engine)


def on_drop(cut: Callable[[], None]) -> None:
    """Register how to cut this run's connection to the server (for a hook)."""
    droppers.append(cut)


def watch(engine: T) -> T:
    """The target engine itself, or, with a hook installed, the hook's wrapper."""
    for wrap in _engine_wrappers:
        engine = wrap(engine)
    return engine


def install(point_hook: PointHook, engine_wrapper: Callable[[Any], Any] | None = None) -> None:
    _point_hooks.append(point_hook)
    if engine_wrapper is not None:
        _engine_wrappers.append(engine_wrapper)


def uninstall() -> None:
    _point_hooks.clear()
    _engine_wrappers.clear()
