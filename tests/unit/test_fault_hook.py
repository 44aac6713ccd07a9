"""The fault-injection hook: inert without its environment variable, and each
kind of fault does what the lab suite relies on."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

from zboot import faults as points
from zboot.errors import ServerError
from zboot.targets.base import Export, NoEngine
from zboot.testing import faults


@pytest.fixture(autouse=True)
def no_hook_left_behind() -> Iterator[None]:
    yield
    points.uninstall()


def test_without_a_hook_a_point_does_nothing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A normal run: the environment asks for a fault, but nothing installed
    the hook (only zboot's entry point does, when it sees the variables)."""
    monkeypatch.setenv(faults.TRACE_ENV, str(tmp_path / "trace"))
    monkeypatch.setenv(faults.FAULT_ENV, "clone.cloned:kill")
    points.point("clone.cloned", engine=True)  # no kill, no file
    assert not (tmp_path / "trace").exists()
    engine = NoEngine()
    assert points.watch(engine) is engine


def test_the_hook_sees_every_point(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    trace = tmp_path / "trace"
    monkeypatch.setenv(faults.TRACE_ENV, str(trace))
    faults.install()
    points.point("clone.cloned")
    assert trace.read_text().split() == ["clone.cloned"]
    assert points.watch(NoEngine()).__class__.__name__ == "_Watched"


def test_the_trace_lists_every_point_reached(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    trace = tmp_path / "trace"
    monkeypatch.setenv(faults.TRACE_ENV, str(trace))
    monkeypatch.setenv(faults.FAULT_ENV, "destroy.files:kill")  # another point
    faults.point("clone.cloned")
    faults.point("clone.exported")
    assert trace.read_text().split() == ["clone.cloned", "clone.exported"]


def test_an_engine_fault_fails_every_change_after_the_point(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[list[str]] = []

    class Engine(NoEngine):
        def apply(
            self, create: Iterable[Export] = (), delete: Iterable[str] = (), persist: bool = True
        ) -> None:
            calls.append(list(delete))

    monkeypatch.setattr(faults, "_engine_broken", False)
    monkeypatch.setenv(faults.FAULT_ENV, "clone.secrets:engine")
    engine = faults.watch(Engine())
    engine.apply(delete=["before"])
    faults.point("clone.secrets", engine=True)
    with pytest.raises(ServerError, match="injected"):
        engine.apply(delete=["after"])
    assert calls == [["before"]] and engine.sessions([]) == {}
    monkeypatch.setenv(faults.FAULT_ENV, "clone.secrets:melt")
    with pytest.raises(ValueError, match="no fault"):
        faults.point("clone.secrets")


def test_a_drop_cuts_every_registered_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    cut: list[str] = []
    monkeypatch.setattr(points, "droppers", [lambda: cut.append("ssh")])
    monkeypatch.setenv(faults.FAULT_ENV, "rollback.renamed:drop")
    faults.point("rollback.renamed")
    assert cut == ["ssh"]


def test_a_kill_is_sigkill_with_no_clean_up() -> None:
    code = (
        "from zboot.testing import faults\n"
        "try:\n    faults.point('mode.scripts')\nfinally:\n    print('cleaned up')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={faults.FAULT_ENV: "mode.scripts:kill", "PATH": ""},
        timeout=60,
    )
    assert done.returncode == -9 and "cleaned up" not in done.stdout


def test_a_stall_waits_for_its_release(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    release = tmp_path / "go"
    monkeypatch.setenv(faults.FAULT_ENV, "clone.cloned:stall")
    monkeypatch.setenv(faults.RELEASE_ENV, str(release))
    threading.Timer(0.5, release.touch).start()
    started = time.monotonic()
    faults.point("clone.cloned")
    assert time.monotonic() - started >= 0.4
