"""Reading, overriding and writing the configuration file."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from zboot.config import Config, ServerConfig, default_engine, load, parse_server, render
from zboot.errors import InvalidInput


def test_server_option_forms() -> None:
    assert parse_server("local").is_local
    assert parse_server("admin@storage.lan:2222") == ServerConfig(
        host="storage.lan", port=2222, user="admin")
    assert parse_server("storage.lan") == ServerConfig(host="storage.lan")
    assert parse_server("[fd00::1]:22").host == "fd00::1"


@pytest.mark.parametrize("bad", ["a b", "x;y", "h:99999", "@h", "h:", "$(id)"])
def test_bad_server_options(bad: str) -> None:
    with pytest.raises(InvalidInput):
        parse_server(bad)


def test_load_with_override_keeps_key_and_known_hosts(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[server]\nhost = "a"\nport = 2\nkey = "/k"\nknown_hosts = "/kh"\n'
                    '[zfs]\npool = "tank"\nroot = "tank/z"\n')
    config = load(path, server="b:3")
    assert (config.server.host, config.server.port, config.server.key) == ("b", 3, "/k")
    assert config.hosts == "tank/z/hosts" and config.path == path


def test_root_outside_pool_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[zfs]\npool = "tank"\nroot = "other/z"\n')
    with pytest.raises(InvalidInput, match="not in pool"):
        load(path)


def test_render_round_trips() -> None:
    config = Config(server=ServerConfig(host="s", port=22, user="u", key='/a "b"'),
                    pool="tank", root="tank/zb", engine="tgt", portal="10.0.0.1:3260")
    again = tomllib.loads(render(config))
    assert again["server"] == {"host": "s", "port": 22, "user": "u", "key": '/a "b"',
                               "sudo": False}
    assert again["zfs"] == {"pool": "tank", "root": "tank/zb"}
    assert again["target"] == {"engine": "tgt", "portal": "10.0.0.1:3260"}


def test_engine_detection_order() -> None:
    assert default_engine(["tgtadm", "targetcli"], rtslib=False) == "lio"
    assert default_engine(["tgtadm"], rtslib=False) == "tgt"
    assert default_engine(["ctladm"], rtslib=False) == "ctld"
    assert default_engine([], rtslib=False) == "none"
