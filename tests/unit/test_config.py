"""Reading, overriding and writing the configuration file."""

from __future__ import annotations

import re
import tomllib
from dataclasses import replace
from pathlib import Path

import pytest
from zboot_lab.config import config_text
from zboot_lab.layout import Layout

from zboot import config as config_mod
from zboot.config import (
    ENGINES,
    Config,
    ServerConfig,
    init_path,
    load,
    parse_server,
    sections,
)
from zboot.config_edit import edit
from zboot.errors import InvalidInput
from zboot.targets.registry import NAMES
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


def render(config: Config) -> str:
    """A new file with every key of config, as `zboot init` writes it."""
    return edit("", {}, sections(config), None).text


def add_missing(text: str, config: Config) -> tuple[str, list[str]]:
    edited = edit(text, {}, sections(config), None)
    return edited.text, edited.added


def test_render_round_trips() -> None:
    config = Config(
        server=ServerConfig(host="s", port=22, user="u", key="/a/b"),
        pool="tank",
        root="tank/zb",
        engine="tgt",
        portal="10.0.0.1:3260",
    )
    text = render(config)
    again = tomllib.loads(text)
    assert text.startswith("# zboot configuration, written by `zboot init`")
    assert list(again) == ["server", "zfs", "target", "boot"]  # the documented order
    assert again["server"] == {
        "host": "s",
        "port": 22,
        "user": "u",
        "key": "/a/b",
        "sudo": False,
        "lock_timeout": 300.0,
    }
    assert again["zfs"] == {"pool": "tank", "root": "tank/zb", "reserve": "10%"}
    assert again["target"] == {
        "engine": "tgt",
        "portal": "10.0.0.1:3260",
        "secrets_dir": "/etc/zboot/secrets",
    }
    assert again["boot"] == {"dir": "/srv/zboot/boot", "scripts": "files"}


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
    assert data["zfs"] == {"pool": "tank", "root": "tank/zboot", "reserve": "10%"}  # a new table
    assert text.index("[target]") < text.index("[zfs]")  # appended: the admin's order stays
    assert "# the box in rack 2" in text and text.startswith("# the admin's own notes stay")
    assert "target.iqn_base" in added and "target.engine" not in added
    assert "server.host" not in added


def test_add_missing_is_stable() -> None:
    config = Config(engine="lio", iqn_base="iqn.2026-11.lan.zboot")
    once, _ = add_missing(ADMIN_FILE, config)
    twice, added = add_missing(once, config)
    assert twice == once and added == []


def test_add_missing_refuses_a_broken_file() -> None:
    with pytest.raises(InvalidInput, match="cannot read config file"):
        add_missing("[server\nhost = 1\n", Config())


# --- every key and value checked (audit defect 8) ---------------------------------


def load_text(tmp_path: Path, text: str) -> Config:
    path = tmp_path / "c.toml"
    path.write_text(text)
    return load(path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            '[server]\nhots = "storage"\n',
            "unknown key server.hots in .*; did you mean server.host\\?",
        ),
        (
            '[srever]\nhost = "storage"\n',
            "unknown table \\[srever\\] .*did you mean \\[server\\]\\?",
        ),
        ('host = "storage"\n', "key host in .* is outside any table; did you mean server.host\\?"),
        ("[server]\ntimeout = 3\n", "did you mean server.lock_timeout\\?"),
    ],
)
def test_an_unknown_key_is_refused_with_a_suggestion(
    tmp_path: Path, text: str, message: str
) -> None:
    with pytest.raises(InvalidInput, match=message):
        load_text(tmp_path, text)


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('[server]\nsudo = "false"\n', "server.sudo"),  # read as true before
        ('[server]\nport = "22"\n', "server.port"),
        ("[server]\nport = 70000\n", "server.port"),
        ("[server]\nlock_timeout = nan\n", "server.lock_timeout"),
        ('[boot]\nurl = "http://10.0.0.1/b\\ndhcp-script=/tmp/x"\n', "boot.url"),
        ('[boot]\nurl = "http://10.0.0.1/b,evil,10.6.6.6"\n', "boot.url"),
        ('[target]\nportal = "10.0.0.1:3260\\nchain http://evil/x"\n', "target.portal"),
        ('[target]\nportal = "fd00::1"\n', "target.portal"),
        ('[target]\nsecrets_dir = "/etc"\n', "target.secrets_dir"),
        ('[target]\nsecrets_dir = "/srv/../etc/ssh"\n', "target.secrets_dir"),
        ('[target]\nsecrets_dir = "zboot/secrets"\n', "target.secrets_dir"),
        ('[target]\nengine = "iet"\n', "target.engine"),
        ('[target]\niqn_base = "iqn.2024-01.lan x"\n', "target.iqn_base"),
        ('[boot]\ndir = "/"\n', "boot.dir"),
        ('[server]\nkey = "~/.ssh/id; rm -rf ~"\n', "server.key"),
        ('[zfs]\npool = "tank/zboot"\n', "zfs.pool"),
    ],
)
def test_a_bad_value_is_refused_naming_its_key(tmp_path: Path, text: str, key: str) -> None:
    with pytest.raises(InvalidInput, match=f"^{re.escape(key)} in .*c.toml: ") as err:
        load_text(tmp_path, text)
    assert err.value.exit_code == 2


def test_secrets_inside_the_boot_directory_are_refused(tmp_path: Path) -> None:
    text = '[target]\nsecrets_dir = "/srv/zboot/boot/secrets"\n'
    with pytest.raises(InvalidInput, match="overlap"):
        load_text(tmp_path, text)


def test_the_engines_are_the_registrys() -> None:
    assert ENGINES == NAMES


def test_the_documented_example_and_a_full_config_load(tmp_path: Path) -> None:
    full = Config(
        server=ServerConfig(
            host="fd00::2", port=22, user="zb_admin", key="~/.ssh/id", sudo=True, lock_timeout=9.5
        ),
        pool="tank",
        root="tank/lab_a",
        engine="tgt",
        portal="[fd00::1]:3260",
        iqn_base="iqn.2024-01.lan.example.zboot",
        secrets_dir="/srv/zboot-secrets",
        boot_dir="/srv/tftp",
        boot_url="http://boot.example.org:8080/zb/",
        winpe="http://10.0.0.1/winpe",
    )
    path = tmp_path / "c.toml"
    path.write_text(render(full))
    assert load(path) == replace(full, path=path)
    text, _ = add_missing(ADMIN_FILE, full)
    path.write_text(text)
    assert load(path).server.host == "storage.lan"


def test_a_trailing_slash_on_a_directory_is_dropped(tmp_path: Path) -> None:
    assert load_text(tmp_path, '[boot]\ndir = "/srv/zboot/boot/"\n').boot_dir == "/srv/zboot/boot"


def test_the_example_in_the_usage_guide_loads(tmp_path: Path) -> None:
    usage = (Path(__file__).resolve().parents[2] / "docs" / "usage.md").read_text()
    example = usage.split("```toml\n", 1)[1].split("```", 1)[0]
    config = load_text(tmp_path, example)
    assert config.root == "tank/diskless" and config.portal == "10.0.0.1:3260"


def test_the_labs_config_loads(tmp_path: Path) -> None:
    """What `contrib/lab/lab up` writes passes every check."""
    layout = Layout(state=tmp_path / "lab", port_base=41000)
    config = load_text(tmp_path, config_text(layout))
    assert config.portal == layout.portal("lio") and config.secrets_dir == "/srv/zboot-secrets"


# --- where the file is looked for ------------------------------------------------


@pytest.fixture
def no_config_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.delenv("ZBOOT_CONFIG", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    monkeypatch.setattr(config_mod, "SYSTEM_CONFIG", tmp_path / "etc" / "config.toml")
    return tmp_path


def test_xdg_config_home_is_honoured(no_config_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = no_config_env / "home" / ".config" / "zboot" / "config.toml"
    assert config_mod.user_config() == home
    assert init_path(None) == home  # nothing exists yet: this user's file
    xdg = no_config_env / "xdg"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(xdg))
    assert config_mod.user_config() == xdg / "zboot" / "config.toml"
    monkeypatch.setenv("XDG_CONFIG_HOME", "relative/dir")  # not absolute: ignored (XDG rules)
    assert config_mod.user_config() == home


def test_the_first_file_found_wins(no_config_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    xdg = no_config_env / "xdg"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(xdg))
    system = config_mod.SYSTEM_CONFIG
    system.parent.mkdir(parents=True)
    system.write_text('[zfs]\npool = "sys"\n')
    assert load().pool == "sys" and init_path(None) == system  # init edits the one in use
    mine = xdg / "zboot" / "config.toml"
    mine.parent.mkdir(parents=True)
    mine.write_text('[zfs]\npool = "mine"\n')
    assert load().pool == "mine" and init_path(None) == mine
    env = no_config_env / "env.toml"
    env.write_text('[zfs]\npool = "env"\n')
    monkeypatch.setenv("ZBOOT_CONFIG", str(env))
    assert load().pool == "env"
    explicit = no_config_env / "explicit.toml"
    explicit.write_text('[zfs]\npool = "explicit"\n')
    assert load(explicit).pool == "explicit"
    assert init_path(explicit) == explicit
    assert init_path(None) == env
    monkeypatch.setenv("ZBOOT_CONFIG", str(no_config_env / "new.toml"))
    assert init_path(None) == no_config_env / "new.toml"  # init may create it
