"""The fault inside one engine call (ZBOOT_TEST_FAULT=lio-agent:N): the LIO
agent's source gets a few lines first that SIGKILL it at its (N+1)th NodeACL;
without the variable the agent is untouched. Run here against a stand-in
rtslib_fb; tests/lab/test_engine_faults.py runs it against the real one."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from zboot import faults as points
from zboot.targets import lio
from zboot.testing import faults

FAKE_RTSLIB = "class NodeACL:\n    def __init__(self, tpg, name):\n        self.name = name\n"

# An agent in the shape of lio_agent.py: NodeACL imported by name, one per target.
AGENT = """from __future__ import annotations
import sys
from rtslib_fb import NodeACL
for n in range(4):
    NodeACL(None, f"t{n}")
    print(f"whole {n}", flush=True)
"""


@pytest.fixture(autouse=True)
def no_hook_left_behind() -> Iterator[None]:
    yield
    points.uninstall()


def run(source: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    (tmp_path / "rtslib_fb.py").write_text(FAKE_RTSLIB)
    return subprocess.run(
        [sys.executable, "-c", source],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(tmp_path)},
        timeout=60,
    )


def test_the_agent_dies_after_n_whole_targets(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(faults.FAULT_ENV, "lio-agent:2")
    done = run(faults.with_agent_fault(AGENT), tmp_path)
    assert done.returncode == -9 and done.stdout.split("\n")[:-1] == ["whole 0", "whole 1"]


def test_without_the_fault_the_agent_is_unchanged(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(faults.FAULT_ENV, "clone.cloned:kill")  # a fault elsewhere
    assert faults.with_agent_fault(AGENT) == AGENT
    monkeypatch.delenv(faults.FAULT_ENV)
    assert faults.with_agent_fault(AGENT) == AGENT
    assert run(AGENT, tmp_path).stdout.count("whole") == 4


def test_install_patches_the_lio_agent_only_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lio, "AGENT", lio.AGENT)
    monkeypatch.setenv(faults.FAULT_ENV, "destroy.files:kill")
    faults.install()
    assert "_dying_acl" not in lio.AGENT
    monkeypatch.setenv(faults.FAULT_ENV, "lio-agent:0")
    faults.install()
    assert "_dying_acl" in lio.AGENT and compile(lio.AGENT, "agent", "exec")
    monkeypatch.setenv(faults.FAULT_ENV, "lio-agent:half")
    with pytest.raises(ValueError, match="number of whole targets"):
        faults.install()
