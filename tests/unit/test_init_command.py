"""`zboot init` from options, against a recorded server: a complete config
file written non-interactively (0600, atomically), an existing file edited
with its comments and layout kept, $XDG_CONFIG_HOME honoured, --dry-run
writing nothing, and a bad value refused before anything is contacted."""

from __future__ import annotations

import io
import json
import stat
import tomllib
from collections.abc import Iterator
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any
from unittest import mock

import jsonschema
import pytest
import typer
from hypothesis import given, settings
from test_config_hostile import values
from typer.testing import CliRunner

from zboot.cli.app import app
from zboot.config import KEYS, load
from zboot.errors import InvalidInput
from zboot.remote.base import Result
from zboot.schema import envelope_schema
from zboot.testing.recording import RecordingRunner

SCHEMA = envelope_schema()
OPTIONS = [
    *("--server", "local", "--pool", "tank", "--root", "tank/diskless"),
    *("--portal", "10.0.0.1:3260", "--boot-url", "http://10.0.0.1/boot"),
]


class Server:
    """A server with ZFS, pool tank, LIO and tgt, and no root datasets yet."""

    def __init__(self) -> None:
        self.runner = RecordingRunner(self.respond)
        self.changed: list[tuple[str, ...]] = []

    def respond(self, argv: tuple[str, ...], _: bytes | None) -> Result:
        if argv[:2] == ("zfs", "version"):
            return self.ok(argv, "zfs-2.2.2-1\nzfs-kmod-2.2.2-1\n")
        if argv[:2] == ("zpool", "list"):
            pool = argv[-1]
            if pool != "tank":
                return Result(argv, 1, b"", f"cannot open '{pool}': no such pool".encode())
            return self.ok(argv, "tank\t1000\t600\tONLINE\n")
        if argv[:2] == ("sh", "-c") and "command -v" in argv[2]:
            return self.ok(argv, "targetcli\ntgtadm\n")
        if argv[:2] == ("hostname", "-d"):
            return self.ok(argv, "lan.example.org\n")
        if argv[:2] == ("zfs", "list"):
            return Result(argv, 1, b"", b"dataset does not exist")
        if argv[:2] == ("zfs", "create"):
            self.changed.append(argv)
        return self.ok(argv, "")

    @staticmethod
    def ok(argv: tuple[str, ...], out: str) -> Result:
        return Result(argv, 0, out.encode(), b"")


@pytest.fixture
def server() -> Iterator[Server]:
    fake = Server()
    with (
        mock.patch("zboot.cli.session.LocalRunner", lambda sudo=False: fake.runner),
        mock.patch("zboot.zfs.lzc.lzc_available", lambda: False),
        # the server lock is tested elsewhere (test_lock): here, no lock
        mock.patch("zboot.cli.session.lock.LockedRunner", lambda inner, acquire: inner),
    ):
        yield fake


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No config anywhere: HOME and XDG_CONFIG_HOME in tmp_path."""
    monkeypatch.delenv("ZBOOT_CONFIG", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    return tmp_path


def zboot(*args: str) -> tuple[int, dict[str, Any]]:
    result = CliRunner().invoke(app, ["--json", *args])
    envelope: dict[str, Any] = json.loads(result.stdout)
    jsonschema.validate(envelope, SCHEMA)
    return result.exit_code, envelope


def test_init_writes_a_complete_private_config_under_xdg(server: Server, home: Path) -> None:
    code, out = zboot("init", *OPTIONS, "--engine", "tgt", "--key", "~/.ssh/zb", "--no-sudo")
    path = home / "xdg" / "zboot" / "config.toml"
    assert code == 0, out
    assert out["data"]["config"]["path"] == str(path) and out["data"]["config"]["written"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    config = load(path)
    assert (config.server.host, config.server.key, config.server.sudo) == (
        "local",
        "~/.ssh/zb",
        False,
    )
    assert (config.pool, config.root, config.engine) == ("tank", "tank/diskless", "tgt")
    assert config.portal == "10.0.0.1:3260" and config.boot_url == "http://10.0.0.1/boot"
    assert config.iqn_base == f"iqn.{out['data']['iqn_base'][4:11]}.org.example.lan.zboot"
    data = tomllib.loads(path.read_text())
    assert set(data) == {"server", "zfs", "target", "boot"}
    assert set(data["target"]) == {"engine", "portal", "iqn_base", "secrets_dir"}
    assert [c[-1] for c in server.changed] == [
        "tank/diskless",
        "tank/diskless/images",
        "tank/diskless/hosts",
        "tank/diskless/archive",
    ]
    # run again: nothing to change, the file stays as it is
    before = path.read_text()
    code, again = zboot("init")
    assert code == 0 and again["data"]["config"] == {
        "path": str(path),
        "added": [],
        "changed": [],
        "written": False,
        "text": before,
    }
    assert path.read_text() == before


ADMIN = """\
# storage for the lab, ask Kim before changing
server = { host = "local", sudo = false }   # inline, as Kim likes it

[zfs]
pool = "tank"  # the big one
root = "tank/old"

[target]
engine = "lio"
"""


def test_init_edits_a_file_keeping_what_the_admin_wrote(server: Server, tmp_path: Path) -> None:
    path = tmp_path / "zboot.toml"
    path.write_text(ADMIN)
    path.chmod(0o640)
    code, out = zboot(
        "--config", str(path), "init", "--root", "tank/diskless", "--portal", "10.0.0.1:3260"
    )
    assert code == 0, out
    text = path.read_text()
    assert text.startswith("# storage for the lab, ask Kim before changing\n")
    assert 'server = { host = "local", sudo = false' in text and "# inline, as Kim likes it" in text
    assert 'pool = "tank"  # the big one\nroot = "tank/diskless"\n' in text
    assert out["data"]["config"]["changed"] == ["zfs.root"]
    assert "target.portal" in out["data"]["config"]["added"]
    assert "target.engine" not in out["data"]["config"]["added"]  # the admin's
    assert stat.S_IMODE(path.stat().st_mode) == 0o640  # an existing file keeps its mode
    assert load(path).root == "tank/diskless" and load(path).engine == "lio"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--portal", "10.0.0.1:3260\nchain http://evil/x"], "--portal"),
        (["--boot-url", "http://10.0.0.1/b,evil"], "--boot-url"),
        (["--secrets-dir", "/etc"], "--secrets-dir"),
        (["--engine", "iet"], "--engine"),
        (["--server", "a b"], "--server"),
        (["--root", "other/x", "--pool", "tank"], "zfs.root"),
        (["--sudo", "--no-sudo"], "--sudo or --no-sudo"),
        (["--secrets-dir", "/srv/zboot/boot/s"], "overlap"),
    ],
)
def test_a_bad_value_writes_nothing_and_contacts_nothing(
    server: Server, tmp_path: Path, args: list[str], message: str
) -> None:
    path = tmp_path / "zboot.toml"
    path.write_text(ADMIN)
    code, out = zboot("--config", str(path), "init", *args)
    assert code == 2 and message in out["errors"][0]["message"]
    assert path.read_text() == ADMIN and server.runner.commands == []


def test_dry_run_shows_the_file_and_writes_nothing(server: Server, tmp_path: Path) -> None:
    path = tmp_path / "new" / "zboot.toml"
    result = CliRunner().invoke(app, ["--config", str(path), "init", *OPTIONS, "--dry-run"])
    assert result.exit_code == 0, result.output
    assert f"config file {path} would be:\n# zboot configuration" in result.stdout
    assert 'portal = "10.0.0.1:3260"' in result.stdout
    assert "dry run: nothing was changed" in result.stdout
    assert "zfs create -p -o mountpoint=none tank/diskless" in result.stdout
    assert not path.parent.exists() and server.changed == []
    code, out = zboot("--config", str(path), "--dry-run", "init", *OPTIONS)
    assert code == 0 and not out["data"]["result"]["config"]["written"]
    assert load_text(tmp_path, out["data"]["result"]["config"]["text"]).root == "tank/diskless"
    assert not path.parent.exists()


def load_text(tmp_path: Path, text: str) -> Any:
    path = tmp_path / "shown.toml"
    path.write_text(text)
    return load(path)


def test_a_missing_pool_writes_nothing(server: Server, tmp_path: Path) -> None:
    path = tmp_path / "zboot.toml"
    code, out = zboot("--config", str(path), "init", "--server", "local", "--pool", "nope")
    assert code == 3 and "pool 'nope' does not exist" in out["errors"][0]["message"]
    assert not path.exists()


def test_no_server_and_no_file_is_refused(server: Server, home: Path) -> None:
    """zboot does not guess that this machine is the storage server."""
    code, out = zboot("init", "--pool", "tank")
    assert code == 2 and "no storage server given" in out["errors"][0]["message"]
    assert "--server local" in out["errors"][0]["hint"]
    assert server.runner.commands == [] and not (home / "xdg").exists()


def test_root_alone_names_its_pool(server: Server, tmp_path: Path) -> None:
    path = tmp_path / "zboot.toml"
    code, out = zboot("--config", str(path), "init", "--server", "local", "--root", "tank/z")
    assert code == 0, out
    assert (load(path).pool, load(path).root) == ("tank", "tank/z")


# --- hostile option values: refused as the config file's, before the server -------

INIT_OPTIONS = {
    "pool": "zfs.pool",
    "root": "zfs.root",
    "reserve": "zfs.reserve",
    "portal": "target.portal",
    "engine": "target.engine",
    "iqn-base": "target.iqn_base",
    "secrets-dir": "target.secrets_dir",
    "boot-url": "boot.url",
    "boot-dir": "boot.dir",
    "winpe": "boot.winpe",
    "scripts": "boot.scripts",
    "key": "server.key",
    "known-hosts": "server.known_hosts",
}
COMMAND = typer.main.get_command(app)
SPOILERS = ("overlap", "not in pool", "too long")  # checks across keys, also exit 2


def run_quietly(args: list[str]) -> tuple[int, str]:
    out = io.StringIO()
    with redirect_stdout(out), redirect_stderr(io.StringIO()):
        try:
            COMMAND.main(args, prog_name="zboot")
        except SystemExit as end:
            return (end.code if isinstance(end.code, int) else 1), out.getvalue()
    return 0, out.getvalue()


@pytest.mark.parametrize("option", list(INIT_OPTIONS))
def test_hostile_option_values_are_refused_before_the_server(
    server: Server, tmp_path: Path, option: str
) -> None:
    table, key = INIT_OPTIONS[option].split(".")
    rule = KEYS[table][key]
    path = tmp_path / "zboot.toml"
    path.write_text("# empty\n")
    seen = {"refused": 0, "taken": 0}

    @settings(max_examples=100, deadline=None, database=None)
    @given(value=values(INIT_OPTIONS[option]).filter(lambda v: isinstance(v, str)))
    def check(value: str) -> None:
        assert isinstance(value, str)
        before = len(server.runner.commands)
        code, stdout = run_quietly(
            ["--config", str(path), "--json", "init", "--dry-run", f"--{option}={value}"]
        )
        try:
            want = rule(value)
        except InvalidInput:
            assert code == 2, (value, stdout)
            assert len(server.runner.commands) == before, value
            seen["refused"] += 1
            return
        out = json.loads(stdout)
        if code == 2:
            assert any(s in out["errors"][0]["message"] for s in SPOILERS), out
            return
        if code == 3:  # a valid pool name the recorded server does not have
            assert "does not exist on the server" in out["errors"][0]["message"], out
            seen["taken"] += 1
            return
        assert code == 0, out
        shown = tomllib.loads(out["data"]["result"]["config"]["text"])
        assert shown[table][key] == want  # what the file would hold: the checked value
        seen["taken"] += 1

    check()
    assert path.read_text() == "# empty\n"  # a dry run
    assert seen["refused"] >= 10 and seen["taken"] >= 1, seen
