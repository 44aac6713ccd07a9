"""`zboot init`'s edits of a config file (zboot.config_edit): Hypothesis
writes files as admins do (tables as headers, inline tables or dotted keys;
comments everywhere; odd spacing; either quote; CRLF), sets some keys as the
command line would and fills in the ones missing. The result always parses,
loads to exactly the intended configuration, keeps every comment and every
untouched key's text as it was, and a second edit changes nothing."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from zboot.config import Config, ServerConfig, checked, from_tables, load, sections
from zboot.config_edit import Values, check_value, edit
from zboot.errors import InvalidInput

# Values that pass every check whatever else the file holds (pool is always
# tank: a root must be in it; secrets and boot dirs never overlap).
POOL: dict[str, dict[str, list[object]]] = {
    "server": {
        "host": ["local", "storage.example.org", "10.0.0.2", "fd00::2"],
        "port": [22, 2222],
        "user": ["root", "zb_admin"],
        "key": ["~/.ssh/id_ed25519", "/home/a/.ssh/id"],
        "known_hosts": ["~/.ssh/known_hosts"],
        "sudo": [True, False],
        "lock_timeout": [300, 2.5],
    },
    "zfs": {"pool": ["tank"], "root": ["tank/zboot", "tank/lab_a"], "reserve": ["10%", "50G"]},
    "target": {
        "engine": ["auto", "lio", "tgt"],
        "portal": ["10.0.0.1:3260", "[fd00::1]:3260"],
        "iqn_base": ["iqn.2024-01.lan.example.zboot"],
        "secrets_dir": ["/etc/zboot/secrets", "/srv/zboot-secrets"],
    },
    "boot": {
        "dir": ["/srv/zboot/boot", "/var/www/html/zboot"],
        "url": ["http://10.0.0.1/boot", "https://boot.example.org:8080/zb/"],
        "winpe": ["http://10.0.0.1/winpe"],
        "scripts": ["files", "service"],
    },
    "serve": {"port": [80], "check_mac": [False], "adopt_names": ["pc{n:02}"]},
}
SPACE = st.sampled_from(["", " ", "  ", "\t", " \t "])


def toml(value: object, literal: bool) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    assert isinstance(value, str) and "'" not in value and '"' not in value
    return f"'{value}'" if literal else f'"{value}"'


@dataclass
class File:
    text: str
    data: dict[str, dict[str, Any]]
    comments: list[str]
    snippets: dict[str, str]  # table.key -> its text in the file


@st.composite
def files(draw: st.DrawFn) -> File:
    """A config file as an admin may write it."""
    counter = iter(range(1000))
    comments: list[str] = []

    def comment() -> str:
        text = f"# note {next(counter)} [x] = 'y'"
        comments.append(text)
        return text

    def maybe_comment() -> str:
        return f"{draw(SPACE)}{comment()}" if draw(st.booleans()) else ""

    data: dict[str, dict[str, Any]] = {}
    snippets: dict[str, str] = {}
    early: list[str] = []  # inline tables and dotted keys: before any [header]
    late: list[str] = []
    tables = draw(st.lists(st.sampled_from(list(POOL)), unique=True))
    for name in tables:
        style = draw(st.sampled_from(["header", "inline", "dotted"]))
        least = 1 if style == "dotted" else 0  # no keys: no table
        keys = draw(st.lists(st.sampled_from(list(POOL[name])), unique=True, min_size=least))
        data[name] = {k: draw(st.sampled_from(POOL[name][k])) for k in keys}
        pairs = {
            k: f"{k}{draw(SPACE)}={draw(SPACE)}{toml(v, draw(st.booleans()))}"
            for k, v in data[name].items()
        }
        if style == "inline":
            snippets |= {f"{name}.{k}": text for k, text in pairs.items()}
            body = ", ".join(pairs.values())
            early.append(f"{name} = {{{draw(SPACE)}{body}{draw(SPACE)}}}{maybe_comment()}")
        elif style == "dotted":
            for k, text in pairs.items():
                snippets[f"{name}.{k}"] = f"{name}.{text}"
                early.append(f"{name}.{text}{maybe_comment()}")
        else:
            snippets |= {f"{name}.{k}": text for k, text in pairs.items()}
            late.append(f"{draw(SPACE)}[{draw(SPACE)}{name}{draw(SPACE)}]{maybe_comment()}")
            for text in pairs.values():
                if draw(st.booleans()):
                    late.append(comment())
                late.append(f"{draw(SPACE)}{text}{maybe_comment()}")
            late += [""] * draw(st.integers(0, 2))
    head = [comment()] if draw(st.booleans()) else []
    lines = [*head, *early, *late]
    if draw(st.booleans()):
        lines.append(comment())
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    text = newline.join(lines) + (newline if draw(st.booleans()) else "")
    return File(text, data, comments, snippets)


@st.composite
def command_lines(draw: st.DrawFn) -> Values:
    """Values as `zboot init`'s options give them (never [serve])."""
    out: Values = {}
    for name in ("server", "zfs", "target", "boot"):
        for key in draw(st.lists(st.sampled_from(list(POOL[name])), unique=True, max_size=3)):
            out.setdefault(name, {})[key] = draw(st.sampled_from(POOL[name][key]))
    return out


FILL = sections(Config(portal="10.0.0.9:3260", iqn_base="iqn.2026-01.lan.zboot", engine="lio"))


def intended(before: dict[str, dict[str, Any]], given: Values, fill: Values) -> dict[str, Any]:
    out = {name: dict(keys) for name, keys in before.items()}
    for name, keys in given.items():
        out.setdefault(name, {}).update(keys)
    for name, keys in fill.items():
        for key, value in keys.items():
            if value is not None:
                out.setdefault(name, {}).setdefault(key, value)
    return out


@settings(max_examples=300, deadline=None)
@given(file=files(), change=command_lines(), fill=st.booleans())
def test_an_edit_keeps_the_admins_file_and_loads_as_intended(
    file: File, change: Values, fill: bool
) -> None:
    assert tomllib.loads(file.text) == file.data  # the generator writes what it means
    filled = FILL if fill else {}
    edited = edit(file.text, change, filled, None)
    again = tomllib.loads(edited.text)
    want = intended(file.data, change, filled)
    assert again == want
    assert edited.config == from_tables(checked(want, "x"), None)
    for text in file.comments:
        assert edited.text.count(text) == 1, (text, edited.text)
    for name, keys in file.data.items():
        for key in keys:
            if key not in change.get(name, {}) or change[name][key] == keys[key]:
                assert file.snippets[f"{name}.{key}"] in edited.text, (name, key, edited.text)
    assert edited.changed == [
        f"{n}.{k}"
        for n, keys in change.items()
        for k, v in keys.items()
        if k in file.data.get(n, {}) and file.data[n][k] != v
    ]
    if "\r\n" in file.text:
        assert "\n" not in edited.text.replace("\r\n", "")
    twice = edit(edited.text, change, filled, None)
    assert (twice.text, twice.added, twice.changed) == (edited.text, [], [])


@settings(max_examples=100, deadline=None)
@given(file=files())
def test_no_change_is_the_same_bytes(file: File) -> None:
    assume(file.text.strip())  # an empty file is a new one: it gets a header
    edited = edit(file.text, {}, {}, None)
    assert edited.text == file.text and not edited.touched


def test_an_inline_table_stays_valid_and_inline() -> None:
    """The defect of the old text-based init: a file using inline tables came
    out invalid."""
    text = 'server = { host = "a", port = 22 }  # the box\nzfs = { pool = "tank" }\n'
    edited = edit(text, {"server": {"user": "root"}}, FILL, None)
    data = tomllib.loads(edited.text)
    assert data["server"] == {"host": "a", "port": 22, "user": "root"} | {
        "sudo": False,
        "lock_timeout": 300.0,
    }
    assert edited.text.splitlines()[0].startswith('server = { host = "a", port = 22, user = "root"')
    assert "# the box" in edited.text and "[server]" not in edited.text


def test_a_new_key_goes_before_the_comments_of_the_next_table() -> None:
    text = '[server]\nhost = "a"  # rack 2\n\n# ZFS: the big pool\n[zfs]\npool = "tank"\n'
    edited = edit(text, {"server": {"user": "root"}}, {}, None)
    assert edited.text == (
        '[server]\nhost = "a"  # rack 2\nuser = "root"\n\n'
        '# ZFS: the big pool\n[zfs]\npool = "tank"\n'
    )


@pytest.mark.parametrize(
    ("table", "key", "value", "option"),
    [
        ("target", "portal", "10.0.0.1:3260\nchain http://evil/x", "--portal"),
        ("boot", "url", "http://10.0.0.1/b,evil", "--boot-url"),
        ("zfs", "pool", "tank/zboot", "--pool"),
        ("target", "secrets_dir", "/etc", "--secrets-dir"),
        ("server", "key", "~/.ssh/id; rm -rf ~", "--key"),
        ("target", "engine", "iet", "--engine"),
    ],
)
def test_a_bad_value_is_refused_naming_its_option(
    table: str, key: str, value: str, option: str
) -> None:
    with pytest.raises(InvalidInput, match=f"^{option} ") as err:
        check_value(table, key, value, option)
    assert err.value.exit_code == 2


def test_the_file_and_the_command_line_are_checked_together(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    with pytest.raises(InvalidInput, match=r"zfs\.root in .*c\.toml: 'other/z' is not in pool"):
        edit('[zfs]\nroot = "other/z"\n', {"zfs": {"pool": "tank"}}, {}, path)
    with pytest.raises(InvalidInput, match="overlap"):
        edit("", {"target": {"secrets_dir": "/srv/zboot/boot/s"}}, {}, path)
    with pytest.raises(InvalidInput, match="cannot read config file"):
        edit("[server\n", {}, {}, path)
    with pytest.raises(InvalidInput, match=r"unknown key server\.hots"):
        edit('[server]\nhots = "a"\n', {"server": {"host": "b"}}, {}, path)
    fixed = edit('[zfs]\nroot = "other/z"\n', {"zfs": {"pool": "other"}}, {}, path)
    path.write_text(fixed.text)
    assert load(path) == fixed.config and fixed.config.root == "other/z"


def test_a_new_file_has_every_key_in_the_documented_order() -> None:
    config = Config(server=ServerConfig(host="s"), portal="10.0.0.1:3260", engine="lio")
    edited = edit("", {"boot": {"url": "http://10.0.0.1/boot"}}, sections(config), None)
    names = [line.split(" =")[0] for line in edited.text.splitlines() if " = " in line]
    assert names == [
        *("host", "sudo", "lock_timeout", "pool", "root", "reserve", "engine", "portal"),
        *("secrets_dir", "dir", "url", "scripts"),
    ]
    assert edited.config.boot_url == "http://10.0.0.1/boot"
