"""`rollback --discard` destroys what it replaces, so it asks first, as
destroy and prune do: without a terminal to ask on, it wants --yes."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import pytest
import typer.testing
from test_cli_errors import CONFIG, invoke
from typer.testing import CliRunner

from zboot.cli.app import app


def click_testing() -> Any:
    return importlib.import_module("click.testing")


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "zboot.toml"
    path.write_text(CONFIG)  # an unreachable server: connecting would exit 5
    return path


def test_discard_without_yes_and_without_a_terminal_is_refused_before_connecting(
    config: Path,
) -> None:
    code, envelope = invoke(config, "rollback", "pc1", "--discard")
    assert code == 2, envelope
    assert envelope["errors"][0]["kind"] == "invalid-input"
    assert "--yes" in envelope["errors"][0]["message"]


def test_discard_answered_no_on_a_terminal_changes_nothing(
    config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the runner's stdin, which it puts in place of sys.stdin, as a terminal
    # (typer 0.26+ carries its own copy of click's testing module; older ones use click's)
    testing = typer.testing if hasattr(typer.testing, "_NamedTextIOWrapper") else click_testing()
    monkeypatch.setattr(testing._NamedTextIOWrapper, "isatty", lambda self: True)
    result = CliRunner().invoke(
        app, ["--config", str(config), "rollback", "pc1", "--discard"], input="n\n"
    )
    assert result.exit_code == 0, result.stdout
    assert "destroy what the rollback replaces?" in result.stdout
    assert "nothing rolled back" in result.stdout


def test_discard_with_yes_goes_on_to_the_server(config: Path) -> None:
    code, envelope = invoke(config, "rollback", "pc1", "--discard", "--yes")
    assert code == 5  # it tried the (unreachable) server: nothing refused it before
    assert envelope["errors"][0]["kind"] in ("server", "host-key")
