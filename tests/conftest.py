"""Test wiring: the `lab` fixture brings the storage VM up once per session,
for tests marked `lab` or `e2e` only; `pytest -m "not lab and not e2e"` needs
neither root nor QEMU."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LAB_CMD = REPO / "contrib" / "lab" / "lab"
sys.path.insert(0, str(REPO / "contrib" / "lab"))
sys.path.insert(0, str(REPO / "tests" / "lab"))

from zboot_cli import Zboot, zboot_root  # noqa: E402
from zboot_lab import costs, vm  # noqa: E402
from zboot_lab.layout import Layout  # noqa: E402


@pytest.fixture(scope="session")
def lab_session() -> Iterator[Layout]:
    layout = Layout.from_env()
    was_running = vm.running_pid(layout) is not None
    try:
        with costs.timed("lab up (boot, or reuse the running VM)"):
            subprocess.run([str(LAB_CMD), "up"], check=True)
    except subprocess.CalledProcessError:
        if not was_running:  # leave nothing behind that this session started
            subprocess.run([str(LAB_CMD), "down"], check=False)
        raise
    yield layout
    if not was_running and not os.environ.get("ZBOOT_LAB_KEEP"):
        subprocess.run([str(LAB_CMD), "down"], check=True)


@pytest.fixture
def lab(request: pytest.FixtureRequest, lab_session: Layout) -> Layout:
    """The running lab. Only tests marked lab or e2e may use it."""
    marks = {m.name for m in request.node.iter_markers()}
    if not marks & {"lab", "e2e"}:
        pytest.fail("a test that uses the lab must be marked lab or e2e")
    return lab_session


# Each zboot test gets its own root dataset on the lab's pool and leaves
# nothing behind: its hosts' exports are taken down before the datasets go.
@pytest.fixture
def zboot(lab: Layout, tmp_path: Path) -> Iterator[Zboot]:
    with zboot_root(lab, tmp_path) as run:
        yield run


STARTED = time.monotonic()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Where this run's time went, when it used the lab (see docs/lab.md)."""
    if not costs.SPENT:
        return
    total = time.monotonic() - STARTED
    terminalreporter.section(f"where the time went ({total:.0f} s in all)")
    for line in costs.report(total):
        terminalreporter.write_line(line)
