"""Reading, overriding and writing the configuration file."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from zboot.config import (
    Config,
    ServerConfig,
    add_missing,
    load,
    parse_server,
    render,
)
from zboot.errors import InvalidInput
from zboot.targets.registry import pick as default_engine


def test_server_option_forms() -> None:
    assert parse_server("local").is_local
    assert parse_server("admin@storage.lan:2222") == ServerConfig(
        host="storage.lan", port=2222, user="admin"
    )
    assert parse_server("storage.lan") == ServerConfig(host="storage.lan")
    assert parse_server("[fd00::1]:22").host == "fd00::1"


@pytest.mark.parametrize("bad", ["a b", "x;y", "h:99999", "@h", "h:", "$(id)"])
def test_bad_server_options(bad: str) -> None:
    with pytest.raises(InvalidInput):
        parse_server(bad)


def test_load_with_override_keeps_key_and_known_hosts(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(
        '[server]\nhost = "a"\nport = 2\nkey = "/k"\nknown_hosts = "/kh"\n'
        '[zfs]\npool = "tank"\nroot = "tank/z"\n'
    )
    config = load(path, server="b:3")
    assert (config.server.host, config.server.port, config.server.key) == ("b", 3, "/k")
    assert config.hosts == "tank/z/hosts" and config.path == path


def test_root_outside_pool_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[zfs]\npool = "tank"\nroot = "other/z"\n')
    with pytest.raises(InvalidInput, match="not in pool"):
        load(path)


def test_render_round_trips() -> None:
    config = Config(
        server=ServerConfig(host="s", port=22, user="u", key='/a "b"'),
        pool="tank",
        root="tank/zb",
        engine="tgt",
        portal="10.0.0.1:3260",
    )
    again = tomllib.loads(render(config))
    assert again["server"] == {"host": "s", "port": 22, "user": "u", "key": '/a "b"', "sudo": False}
    assert again["zfs"] == {"pool": "tank", "root": "tank/zb"}
    assert again["target"] == {
        "engine": "tgt",
        "portal": "10.0.0.1:3260",
        "secrets_dir": "/etc/zboot/secrets",
    }


def test_engine_detection_order() -> None:
    assert default_engine(["tgtadm", "targetcli"], rtslib=False) == "lio"
    assert default_engine(["tgtadm"], rtslib=False) == "tgt"
    assert default_engine(["ctladm"], rtslib=False) == "ctld"
    assert default_engine([], rtslib=False) == "none"
    assert default_engine([], rtslib=True) == "lio"  # rtslib-fb without targetcli


ADMIN_FILE = """\
# the admin's own notes stay
[server]
host = "storage.lan"  # the box in rack 2

[target]
engine = "tgt"
"""


def test_add_missing_keeps_what_the_admin_wrote() -> None:
    config = Config(
        server=ServerConfig(host="elsewhere"), engine="lio", iqn_base="iqn.2026-11.lan.zboot"
    )
    text, added = add_missing(ADMIN_FILE, config)
    data = tomllib.loads(text)
    assert data["server"]["host"] == "storage.lan"  # never changed
    assert data["target"] == {
        "engine": "tgt",
        "iqn_base": "iqn.2026-11.lan.zboot",
        "secrets_dir": "/etc/zboot/secrets",
    }
    assert data["zfs"] == {"pool": "tank", "root": "tank/zboot"}  # a new table
    assert "# the box in rack 2" in text and text.startswith("# the admin's own notes stay")
    assert "target.iqn_base" in added and "target.engine" not in added
    assert "server.host" not in added


def test_add_missing_is_stable() -> None:
    config = Config(engine="lio", iqn_base="iqn.2026-11.lan.zboot")
    once, _ = add_missing(ADMIN_FILE, config)
    twice, added = add_missing(once, config)
    assert twice == once and added == []


def test_add_missing_refuses_a_broken_file() -> None:
    with pytest.raises(InvalidInput):
        add_missing("[server\nhost = 1\n", Config())
