"""The CLI's error paths: bad input exits 2 with a clear message (and a valid
JSON envelope with --json) before anything connects to a server."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from typer.testing import CliRunner

from zboot.cli.app import app
from zboot.schema import envelope_schema

SCHEMA = envelope_schema()
# An unreachable server: any attempt to connect would fail with exit 5, not 2.
CONFIG = '[server]\nhost = "zboot-test.invalid"\nport = 1\n[zfs]\npool = "tank"\n'


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "zboot.toml"
    path.write_text(CONFIG)
    return path


def invoke(config: Path, *args: str) -> tuple[int, dict[str, Any]]:
    result = CliRunner().invoke(app, ["--config", str(config), "--json", *args])
    envelope: dict[str, Any] = json.loads(result.stdout)
    jsonschema.validate(envelope, SCHEMA)
    return result.exit_code, envelope


@pytest.mark.parametrize(
    "args",
    [
        ["clone", "golden", "pc;1", "--mac", "52:54:00:00:00:01"],
        ["clone", "golden", "pc1", "--mac", "ff:ff:ff:ff:ff:ff"],
        ["clone", "gol/den", "pc1", "--mac", "52:54:00:00:00:01"],
        ["clone", "golden", "pc1", "--mac", "52:54:00:00:00:01", "--initiator", "iqn.bad"],
        ["image", "create", "win11", "--size", "lots"],
        ["image", "create", "Win11", "--size", "1G"],
        ["image", "snapshot", "$(id)"],
        ["rollback", "pc1", "--to", "../x"],
        ["rollback", "pc1", "pc;2"],  # every host is checked before the server is reached
        ["snapshot", "pc1", "pc2", "-n", "a b"],
        ["mode", "pc1", "pc2", "maintenance"],  # one host at a time boots an image
        ["mode", "pc1", "pc2", "sideways"],
        ["show", "pc 1"],
        ["image", "show", "a@b"],
        ["destroy", "pc1"],  # no terminal to ask on, no --yes
    ],
)
def test_bad_input_exits_2_before_connecting(config: Path, args: list[str]) -> None:
    code, envelope = invoke(config, *args)
    assert code == 2, envelope
    assert envelope["status"] == "error" and envelope["data"] is None
    assert envelope["errors"][0]["kind"] == "invalid-input"


def test_unreachable_server_is_a_server_error(config: Path) -> None:
    code, envelope = invoke(config, "list")
    assert code == 5
    assert envelope["errors"][0]["kind"] in ("server", "host-key")


def test_missing_config_file_is_bad_input(tmp_path: Path) -> None:
    code, envelope = invoke(tmp_path / "nope.toml", "list")
    assert code == 2
    assert "does not exist" in envelope["errors"][0]["message"]


def test_bad_server_option_is_bad_input(config: Path) -> None:
    result = CliRunner().invoke(app, ["--config", str(config), "--server", "a b;c", "list"])
    assert result.exit_code == 2
    assert "--server" in result.stderr


def test_every_command_has_help_text() -> None:
    for args in (["--help"], ["image", "--help"]):
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0
    commands = ["init", "clone", "list", "show", "snapshot", "rollback", "prune", "destroy"]
    for name in commands:
        result = CliRunner().invoke(app, [name, "--help"])
        assert result.exit_code == 0 and len(result.stdout.strip()) > 40, name
