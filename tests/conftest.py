"""Test wiring: the `lab` fixture brings the storage VM up once per session,
for tests marked `lab` or `e2e` only; `pytest -m "not lab and not e2e"` needs
neither root nor QEMU."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LAB_CMD = REPO / "contrib" / "lab" / "lab"
sys.path.insert(0, str(REPO / "contrib" / "lab"))

from zboot_lab import vm  # noqa: E402
from zboot_lab.layout import Layout  # noqa: E402


@pytest.fixture(scope="session")
def lab_session() -> Iterator[Layout]:
    layout = Layout.from_env()
    was_running = vm.running_pid(layout) is not None
    try:
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
