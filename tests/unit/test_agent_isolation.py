"""The engine agents run as root: what the admin's environment holds (the
current directory, PYTHONPATH) must never reach their Python."""

from __future__ import annotations

from pathlib import Path

import pytest

from zboot.remote.local import LocalRunner
from zboot.targets.agent import run_agent

PLANTED = """
import pathlib
pathlib.Path({marker!r}).write_text("planted module ran")
raise SystemExit("planted module ran")
"""

AGENT = """
import json, sys, os
print(json.dumps({"cwd": os.getcwd(), "path0": sys.path[0], "request": json.loads(REQUEST)}))
"""


@pytest.mark.parametrize("where", ["cwd", "PYTHONPATH"])
def test_a_planted_json_module_never_runs_in_an_agent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    trap = tmp_path / "trap"
    trap.mkdir()
    marker = tmp_path / "ran"
    for name in ("json.py", "os.py", "sitecustomize.py", "usercustomize.py"):
        (trap / name).write_text(PLANTED.format(marker=str(marker)))
    if where == "cwd":
        monkeypatch.chdir(trap)
    else:
        monkeypatch.setenv("PYTHONPATH", str(trap))
        monkeypatch.setenv("PYTHONSTARTUP", str(trap / "json.py"))
    answer = run_agent(
        LocalRunner(), "test", AGENT, {"x": 1}, read_only=True, what="the test agent", hint=""
    )
    assert not marker.exists()
    assert answer["request"] == {"x": 1}
    assert answer["cwd"] == "/"
    assert str(trap) not in answer["path0"]
