"""The project's own virtualenv (.venv) for tests and development, and the
one test command: lint, types, then pytest in phases (unit, lab, e2e), with
the time of each phase printed at the end so a slow change shows in every
run's log."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import depvenvs, vm
from .install import SYSTEM_PYTHON
from .layout import REPO_ROOT, Layout
from .procs import LabError, run
from .progress import say, step

VENV = REPO_ROOT / ".venv"
STAMP = VENV / ".zboot-installed"
# Files whose lint and type checks the test command runs.
LINTED = ["zboot", "tests", "contrib/lab", "contrib/bench/fleet"]
TYPED = ["zboot", "contrib/lab/zboot_lab", "tests"]
COMPILED = [str(REPO_ROOT / d) for d in ("zboot", "tests", "contrib/lab/zboot_lab")]
# The fast tests are pure CPU on this machine: one worker per core.
UNIT_WORKERS = "2"


def ensure_venv() -> Path:
    """Create .venv from Debian's python (it sees rtslib and pyzfs) and install
    zboot with its test extras; redo it only when pyproject.toml changed."""
    want = hashlib.sha256((REPO_ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if STAMP.exists() and STAMP.read_text() == want:
        return VENV / "bin" / "python"
    with step(f"installing zboot and its test tools into {VENV}"):
        run([SYSTEM_PYTHON, "-m", "venv", "--system-site-packages", str(VENV)])
        pip = str(VENV / "bin" / "pip")
        run([pip, "install", "-q", "--upgrade", "pip"])
        run([pip, "install", "-q", "-e", f"{REPO_ROOT}[test]"])
        STAMP.write_text(want)
    return VENV / "bin" / "python"


@dataclass
class Timings:
    """Wall-clock seconds per phase, in the order they ran, and how each ended."""

    phases: list[tuple[str, float, str]] = field(default_factory=list)

    def add(self, name: str, seconds: float, outcome: str) -> None:
        self.phases.append((name, seconds, outcome))

    def table(self, total: float) -> str:
        lines = ["", "lab: time per phase", f"  {'phase':<34} {'seconds':>8}  outcome"]
        lines += [f"  {name:<34} {secs:8.1f}  {outcome}" for name, secs, outcome in self.phases]
        lines.append(f"  {'whole run':<34} {total:8.1f}  ({total / 60:.1f} min)")
        return "\n".join(lines)


def _timed(timings: Timings, name: str, argv: list[str], env: dict[str, str]) -> int:
    say(f"phase {name} ...")
    start = time.monotonic()
    code = subprocess.call(argv, cwd=REPO_ROOT, env=env)
    timings.add(name, time.monotonic() - start, "ok" if code == 0 else f"FAILED (exit {code})")
    return code


def _dependency_phase(
    timings: Timings, layout: Layout, kind: str, env: dict[str, str], reports: Path
) -> int:
    """The fast tests in the venv of the lowest or newest allowed versions
    (made, or reused from the lab's state directory: see depvenvs)."""
    name = f"unit, {kind} versions"
    say(f"phase {name} ...")
    start = time.monotonic()
    try:
        venv = depvenvs.ensure(layout, kind)
    except LabError as err:
        say(f"{name}: {err}")
        timings.add(name, time.monotonic() - start, "FAILED (making its venv)")
        return 1
    made = time.monotonic() - start
    argv = [str(venv.python), "-m", "pytest", "-q", "-n", UNIT_WORKERS]
    argv += [f"--junitxml={reports / f'unit-{kind}.xml'}", "-m", "not lab and not e2e"]
    code = subprocess.call(argv, cwd=REPO_ROOT, env=env)
    outcome = "ok" if code == 0 else f"FAILED (exit {code})"
    how = f"venv made in {made:.0f} s" if venv.made else "venv reused"
    timings.add(
        name, time.monotonic() - start, f"{outcome} ({how}; {depvenvs.versions(venv.python)})"
    )
    return code


class BackgroundBoot(threading.Thread):
    """Boots the storage VM while the fast tests use the other core's time."""

    def __init__(self, layout: Layout) -> None:
        super().__init__(name="lab-vm-boot", daemon=True)
        self.layout = layout
        self.error: BaseException | None = None
        self.seconds = 0.0

    def run(self) -> None:
        start = time.monotonic()
        try:
            vm.start(self.layout)
        except BaseException as err:  # reported by the main thread
            self.error = err
        self.seconds = time.monotonic() - start


def run_tests(layout: Layout, pytest_args: list[str], started: float, full: bool = False) -> int:
    """`lab test`: with pytest arguments, one pytest run with them (the lab is
    brought up by the tests' fixture); without, every phase in turn. Tests
    marked `full` run only with full=True (`lab test --full`)."""
    python = str(ensure_venv())
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    if pytest_args:
        return subprocess.call(
            [python, "-m", "pytest", "--durations=12", *pytest_args], cwd=REPO_ROOT, env=env
        )

    # Compiled once here, zboot starts without compiling itself in each of
    # the hundreds of processes the tests start, the storage VM's included
    # (it runs this checkout, read-only, with the same Python).
    run([python, "-m", "compileall", "-q", *COMPILED])
    timings = Timings()
    timings.add("set-up (packages, ZFS module, venvs)", time.monotonic() - started, "ok")
    # The storage VM boots beside lint and the unit tests (it needs neither).
    was_running = vm.running_pid(layout) is not None
    boot = BackgroundBoot(layout)
    boot.start()
    try:
        # Every phase runs even after one failed: one CI log shows all that is wrong.
        codes = [
            _timed(timings, name, argv, env)
            for name, argv in (
                ("lint: ruff", [python, "-m", "ruff", "check", *LINTED]),
                ("lint: ruff format", [python, "-m", "ruff", "format", "--check", *LINTED]),
                ("lint: mypy --strict", [python, "-m", "mypy", *TYPED]),
            )
        ]
        # Each phase's per-test times, for a closer look than --durations gives.
        reports = layout.state / "reports"
        reports.mkdir(parents=True, exist_ok=True)
        # The fast tests, while the VM boots: on the newest versions
        # pyproject.toml allows (made again each day) and on the lowest, so
        # its bounds stay true. (.venv, the developer's, runs lint, lab, e2e.)
        for kind in sorted(depvenvs.KINDS, reverse=True):  # newest first
            codes.append(_dependency_phase(timings, layout, kind, env, reports))
        with step("waiting for the storage VM"):
            boot.join()
        timings.add(
            "storage VM boot (beside lint and unit)",
            boot.seconds,
            "reused" if was_running else ("ok" if boot.error is None else "FAILED"),
        )
        if boot.error is not None:
            raise LabError(f"the storage VM did not come up: {boot.error}")
        chosen = (("lab", "lab"), ("e2e", "e2e"))
        if not full:
            chosen = (("lab", "lab and not full"), ("e2e", "e2e and not full"))
        for name, marker in chosen:
            codes.append(
                _timed(
                    timings,
                    name,
                    [
                        python,
                        "-m",
                        "pytest",
                        "--durations=12",
                        f"--junitxml={reports / (name + '.xml')}",
                        "-m",
                        marker,
                    ],
                    env,
                )
            )
    finally:
        if not was_running and not os.environ.get("ZBOOT_LAB_KEEP"):
            boot.join()  # after Ctrl-C too: a VM half-booted is stopped, not left behind
            start = time.monotonic()
            vm.shutdown(layout)
            timings.add("storage VM stop", time.monotonic() - start, "ok")
        print(timings.table(time.monotonic() - started), file=sys.stderr, flush=True)
    return next((code for code in codes if code), 0)
