"""The command line around the commands: `--version` from the package's
metadata, shell completion, usage errors under --json (the envelope, exit 2),
doctor's own exit code for drift, and no silent `local` when zboot has
neither a config file nor --server."""

from __future__ import annotations

import json
import tomllib
from dataclasses import replace
from importlib import metadata
from pathlib import Path
from typing import Any
from unittest import mock

import jsonschema
import pytest
import typer
from test_doctor import healthy
from test_ops import world
from typer.testing import CliRunner

from zboot import config as config_mod
from zboot.cli.app import app
from zboot.errors import ExitCode
from zboot.ops.doctor import Finding
from zboot.schema import envelope_schema

SCHEMA = envelope_schema()
REPO = Path(__file__).resolve().parents[2]


def invoke(*args: str, env: dict[str, str] | None = None) -> Any:
    return CliRunner().invoke(app, list(args), prog_name="zboot", env=env)


def envelope_of(result: Any) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(result.stdout)
    jsonschema.validate(doc, SCHEMA)
    return doc


@pytest.fixture
def no_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No config file anywhere zboot looks; the path it looks at first."""
    monkeypatch.delenv("ZBOOT_CONFIG", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.setattr(config_mod, "SYSTEM_CONFIG", tmp_path / "etc" / "config.toml")
    return tmp_path / "xdg" / "zboot" / "config.toml"


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "zboot.toml"
    path.write_text('[zfs]\npool = "tank"\n')  # no [server] host: this machine
    return path


# --- --version and completion ----------------------------------------------------


def test_version_is_the_installed_packages_which_is_pyprojects(no_config: Path) -> None:
    result = invoke("--version")  # needs no config and no server
    assert result.exit_code == 0, result.output
    written = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    assert result.stdout == f"zboot {written}\n"
    assert metadata.version("zboot") == written


def test_shell_completion_is_offered_and_completes_commands() -> None:
    shown = invoke("--help")
    assert "--install-completion" in shown.stdout and "--show-completion" in shown.stdout
    script = invoke("--show-completion", "bash")
    assert script.exit_code == 0, script.output
    assert "_ZBOOT_COMPLETE=complete_bash" in script.stdout
    assert "complete -o default -F _zboot_completion zboot" in script.stdout
    words = {"_ZBOOT_COMPLETE": "complete_bash", "COMP_WORDS": "zboot image cr", "COMP_CWORD": "2"}
    assert invoke(env=words).stdout.split() == ["create"]


# --- usage errors -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "command", "said"),
    [
        (["--json", "--bogus", "list"], "", "--bogus"),  # unknown global option
        (["--json", "clone"], "clone", "Missing argument"),
        (["--json", "clone", "golden", "pc1", "--frob"], "clone", "--frob"),
        (["--json", "image", "prune", "win11", "--keep", "lots"], "image prune", "--keep"),
        (["--json", "nosuch"], "", "nosuch"),
        (["--json", "image", "nosuch"], "image", "nosuch"),
        (["--json", "image"], "image", "missing"),
        (["--json"], "", "issing command"),
        (["clone", "--json"], "clone", "--json"),  # --json in the wrong place still asks for JSON
    ],
)
def test_a_usage_error_under_json_is_an_envelope_with_exit_2(
    config: Path, args: list[str], command: str, said: str
) -> None:
    result = invoke("--config", str(config), *args)
    assert result.exit_code == 2, result.output
    doc = envelope_of(result)
    assert doc["command"] == command and doc["status"] == "error" and doc["data"] is None
    [error] = doc["errors"]
    assert error["kind"] == "usage" and error["code"] == 2
    assert said in error["message"]
    assert error["hint"] == " ".join(["zboot", command, "--help"]).replace("  ", " ")
    assert result.stderr == ""


def test_without_json_click_reports_a_usage_error_as_always(config: Path) -> None:
    result = invoke("--config", str(config), "clone", "golden", "pc1", "--frob")
    assert result.exit_code == 2
    assert result.stdout == ""
    assert "Usage: zboot clone" in result.stderr and "--frob" in result.stderr


def test_the_schema_knows_every_group_a_usage_error_can_stop_at() -> None:
    groups = {""} | {
        " ".join(path)
        for path, command in walk(typer.main.get_command(app))
        if getattr(command, "commands", None) and path
    }
    usage_only = SCHEMA["allOf"][1]["if"]["properties"]["command"]["enum"]
    assert set(usage_only) == groups
    assert groups <= set(SCHEMA["properties"]["command"]["enum"])
    # a group's envelope is a usage error or nothing
    bad = {"version": 1, "command": "image", "status": "ok", "exit_code": 0, "data": None}
    assert not jsonschema.Draft202012Validator(SCHEMA).is_valid(bad | {"errors": []})


def walk(command: Any, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    found = [(path, command)]
    for name, sub in getattr(command, "commands", {}).items():
        found += walk(sub, (*path, name))
    return found


# --- doctor's exit code -------------------------------------------------------------

DRIFTED = Finding("missing-export", "pc01", "no target exports its disk", "export it again")


@pytest.mark.parametrize(("findings", "code"), [([], 0), ([DRIFTED], ExitCode.DRIFT)])
def test_doctor_exits_6_when_it_finds_drift_and_0_when_not(
    config: Path, findings: list[Finding], code: int
) -> None:
    found = replace(healthy(), findings=findings)
    with (
        mock.patch("zboot.cli.session.LocalRunner", lambda **_: world()),
        mock.patch("zboot.cli.doctor.survey", lambda *_, **__: found),
    ):
        text = invoke("--config", str(config), "doctor")
        as_json = invoke("--config", str(config), "--json", "doctor")
    assert code in (0, 6)  # 1 stays "zboot itself failed"
    assert text.exit_code == code, text.output
    assert as_json.exit_code == code, as_json.output
    doc = envelope_of(as_json)
    assert doc["exit_code"] == code
    assert [f["kind"] for f in doc["data"]["findings"]] == [f.kind for f in findings]
    if findings:
        assert doc["errors"][0]["kind"] == "drift" and doc["errors"][0]["code"] == 6
        assert "1 problem" in text.stdout and "missing-export" in text.stdout


def test_exit_code_6_is_doctors_alone_in_the_schema() -> None:
    drift = [{"kind": "drift", "code": 6, "message": "1 problem found", "hint": None}]
    doc = {"version": 1, "status": "error", "exit_code": 6, "data": None, "errors": drift}
    assert not jsonschema.Draft202012Validator(SCHEMA).is_valid(doc | {"command": "list"})


# --- no config and no --server ----------------------------------------------------------


def test_no_config_and_no_server_says_what_is_missing_and_runs_nothing(no_config: Path) -> None:
    runner = world()
    with mock.patch("zboot.cli.session.LocalRunner", lambda **_: runner):
        result = invoke("list")
        as_json = invoke("--json", "list")
    assert result.exit_code == 2, result.output
    assert "no storage server given" in result.stderr
    for fix in ("--server USER@HOST", "zboot init --server", str(no_config)):
        assert fix in result.stderr, fix
    assert runner.commands == []  # not even `zfs list` on this machine
    doc = envelope_of(as_json)
    assert doc["exit_code"] == 2 and doc["errors"][0]["kind"] == "invalid-input"
    assert "zboot init" in doc["errors"][0]["hint"]


def test_server_local_and_a_config_without_a_host_still_mean_this_machine(
    no_config: Path, config: Path
) -> None:
    with (
        mock.patch("zboot.cli.session.LocalRunner", lambda **_: world()),
        mock.patch("zboot.zfs.lzc.lzc_available", lambda: False),
    ):
        by_option = invoke("--server", "local", "--json", "list")
        by_file = invoke("--config", str(config), "--json", "list")
        by_env = invoke("--json", "list", env={"ZBOOT_CONFIG": str(config)})
    for result in (by_option, by_file, by_env):
        assert result.exit_code == 0, result.output
        assert [h["name"] for h in envelope_of(result)["data"]] == ["pc01"]
