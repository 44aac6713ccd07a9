"""A hosts file's CSV is read strictly: a column named twice, or a line with
more fields than the header has columns, is refused with its line number
(once the last value won and the extra fields vanished without a word)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from zboot.cli.app import app
from zboot.errors import InvalidInput
from zboot.ops.hostfile import HostSpec, read_hosts

MAC = "52:54:00:bb:00:10"


def hosts(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "hosts.csv"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "refusal"),
    [
        (f"host,mac,mac\npc10,{MAC},52:54:00:bb:00:11\n", "line 1: a column is named twice: mac"),
        (f"host, mac,mac \npc10,{MAC},{MAC}\n", "line 1: a column is named twice: mac"),
        (f"host,mac\npc10,{MAC}\npc11,{MAC},extra\n", "line 3: 3 fields, but .* 2 columns"),
        (f'host,mac\n\n"pc\n10",{MAC}\npc11,{MAC},,\n', "line 5: 4 fields"),  # physical lines
    ],
)
def test_a_csv_that_says_more_than_its_columns_is_refused(
    tmp_path: Path, text: str, refusal: str
) -> None:
    with pytest.raises(InvalidInput, match=f"hosts.csv {refusal}"):
        read_hosts(hosts(tmp_path, text))


def test_fewer_fields_leave_the_last_columns_empty(tmp_path: Path) -> None:
    path = hosts(tmp_path, f"host,mac,initiator,chap\npc10,{MAC}\npc11,{MAC},,one-way\n")
    assert read_hosts(path) == [HostSpec("pc10", MAC), HostSpec("pc11", MAC, None, "one-way")]


def test_the_cli_exits_2_and_changes_nothing(tmp_path: Path) -> None:
    config = tmp_path / "zboot.toml"  # an unreachable server: connecting would exit 5
    config.write_text('[server]\nhost = "zboot-test.invalid"\nport = 1\n[zfs]\npool = "tank"\n')
    path = hosts(tmp_path, f"host,mac,mac\npc10,{MAC},{MAC}\n")
    args = ["--config", str(config), "--json", "clone", "golden", "--hosts", str(path)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    [error] = json.loads(result.stdout)["errors"]
    assert "hosts.csv line 1: a column is named twice" in error["message"]
