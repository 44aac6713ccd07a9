"""The dependency bounds and the venvs `lab test` checks them in: every
requirement names the lowest version it was tried with, and the lowest and
newest venvs are made once and reused until pyproject.toml, the checkout or
(for the newest) the day changes."""

from __future__ import annotations

import datetime
import re
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from zboot_lab import depvenvs
from zboot_lab.layout import REPO_ROOT, Layout

PROJECT = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]


@pytest.mark.parametrize(
    "requirement",
    PROJECT["dependencies"] + PROJECT["optional-dependencies"]["test"],
)
def test_every_requirement_has_a_lower_bound(requirement: str) -> None:
    assert re.fullmatch(r"[A-Za-z0-9_.-]+(\[[a-z,]+\])?>=[0-9][0-9.]*(,<[0-9.]+)?", requirement)


def test_the_newest_venv_is_made_again_each_day_the_lowest_is_not() -> None:
    today, tomorrow = datetime.date(2026, 12, 2), datetime.date(2026, 12, 3)
    assert depvenvs.key("newest", today) != depvenvs.key("newest", tomorrow)
    assert depvenvs.key("lowest", today) == depvenvs.key("lowest", tomorrow)
    assert depvenvs.key("lowest") != depvenvs.key("newest")


class Recorder:
    """Stands in for procs.run: records each command, makes the venv's python."""

    def __init__(self) -> None:
        self.commands: list[list[str]] = []

    def __call__(self, argv: Sequence[str], **_: Any) -> None:
        self.commands.append(list(argv))
        if argv[1:3] == ["-m", "venv"]:
            python = Path(argv[-1]) / "bin" / "python"
            python.parent.mkdir(parents=True, exist_ok=True)
            python.touch()
        if argv[1:3] == ["install", "-q"] and argv[-1] == "uv":
            (Path(argv[0]).parent / "uv").touch()


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    recorder = Recorder()
    monkeypatch.setattr(depvenvs, "run", recorder)
    return recorder


def installs(recorder: Recorder) -> list[list[str]]:
    return [c for c in recorder.commands if c[1:3] == ["pip", "install"]]


def test_a_venv_is_made_once_then_reused(tmp_path: Path, recorder: Recorder) -> None:
    layout = Layout(state=tmp_path, port_base=0)
    lowest = depvenvs.ensure(layout, "lowest")
    assert lowest.made and lowest.python == tmp_path / "venvs" / "lowest" / "bin" / "python"
    [install] = installs(recorder)
    assert install[install.index("--resolution") + 1] == "lowest-direct"
    assert install[-2:] == ["-e", f"{REPO_ROOT}[test]"]
    [made] = [c for c in recorder.commands if c[-1] == str(lowest.python.parents[1])]
    assert made[1:] == ["-m", "venv", "--system-site-packages", made[-1]]  # sees rtslib, pyzfs
    assert not depvenvs.ensure(layout, "lowest").made
    assert len(installs(recorder)) == 1  # reused: nothing installed again

    newest = depvenvs.ensure(layout, "newest")
    assert newest.made and "--resolution" not in installs(recorder)[-1]


def test_a_venv_with_another_key_is_made_again(
    tmp_path: Path, recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    layout = Layout(state=tmp_path, port_base=0)
    depvenvs.ensure(layout, "newest")
    monkeypatch.setattr(depvenvs, "key", lambda kind: "pyproject.toml changed")
    assert depvenvs.ensure(layout, "newest").made
    assert len(installs(recorder)) == 2


def test_an_unknown_kind_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no such dependency venv"):
        depvenvs.ensure(Layout(state=tmp_path, port_base=0), "middling")
