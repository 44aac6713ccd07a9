"""Hostile config files (audit defect 8): for every key of every table,
Hypothesis writes at least 200 hostile values (control characters, NUL,
quotes, spaces, look-alike Unicode, shell payloads, '..', wrong TOML types,
huge and non-finite numbers) into a config file, and zboot.config.load must
either refuse it with InvalidInput naming the file and table.key, or accept a
value that is provably harmless: of the key's type, of plain characters, and,
for what goes into iPXE scripts and DHCP configs, on exactly the lines it
belongs to, with no line added (compared with a config of plain values)."""

from __future__ import annotations

import ipaddress
import math
import string
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_hostile_inputs import hostile, toml_string

from zboot import config as config_mod
from zboot.boot import dhcp, ipxe
from zboot.config import Config
from zboot.errors import InvalidInput
from zboot.ops.paths import secrets_dir, target_iqn

EXAMPLES = 200
HOSTILE = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
# Besides the key under test, a config every renderer can work with.
BASE: dict[str, dict[str, object]] = {
    "server": {},
    "zfs": {"pool": "tank", "root": "tank/zboot"},
    "target": {"portal": "10.0.0.1:3260", "iqn_base": "iqn.2024-01.lan.example.zboot"},
    "boot": {"url": "http://10.0.0.1/boot", "winpe": "http://10.0.0.1/winpe"},
    "serve": {},
}
VALID: dict[str, list[object]] = {
    "server.host": ["local", "storage", "storage.example.org", "10.0.0.2", "fd00::2"],
    "server.port": [22, 2222],
    "server.user": ["root", "zb_admin"],
    "server.key": ["~/.ssh/id_ed25519", "/home/admin/.ssh/id_rsa"],
    "server.known_hosts": ["~/.ssh/known_hosts", "/etc/zboot/known_hosts"],
    "server.sudo": [True, False],
    "server.lock_timeout": [300, 2.5],
    "zfs.pool": ["tank", "rpool", "data_1"],
    "zfs.root": ["tank/zboot", "tank/lab_a", "tank/a/b"],
    "zfs.reserve": ["10%", "0", "50G", "1.5T"],
    "target.engine": ["auto", *config_mod.ENGINES],
    "target.portal": ["10.0.0.1:3260", "san.example.org", "[fd00::1]:3260"],
    "target.iqn_base": ["iqn.2024-01.lan.example.zboot", "iqn.2003-01.org.example:x"],
    "target.secrets_dir": ["/etc/zboot/secrets", "/srv/zboot-secrets"],
    "boot.dir": ["/srv/zboot/boot", "/var/www/html/zboot"],
    "boot.url": ["http://10.0.0.1/boot", "https://boot.example.org:8080/zb/"],
    "boot.winpe": ["http://10.0.0.1/winpe", "tftp://boot.example.org/winpe"],
    "boot.scripts": list(config_mod.SCRIPTS),
    "serve.listen": ["10.0.0.1", "fd00::1"],
    "serve.port": [80, 8080],
    "serve.interface": ["eno1", "lan0", "br-boot.10"],
    "serve.check_mac": [True, False],
    "serve.discover_limit": [0, 256, 4096],
    "serve.adopt_image": ["win11", "gold-2"],
    "serve.adopt_names": ["pc{n:02}", "lab-{n}"],
}
NUMBERS = {"server.port": 65535, "server.lock_timeout": 86400, "serve.port": 65535}
NUMBERS["serve.discover_limit"] = config_mod.MAX_DISCOVERED
WRONG_TYPES = st.one_of(
    st.booleans(),
    st.integers(),
    st.sampled_from([-1, 0, 65536, 2**63, -(2**64), 10**40]),
    st.floats(),
    st.sampled_from([math.nan, math.inf, -math.inf, 1e308, -0.0]),
    st.lists(st.sampled_from(["a", "tank", "/etc"]), max_size=2),
    st.dictionaries(st.sampled_from(["a", "host"]), st.just("x"), max_size=1),
    st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 1, 1)),
)
PLAIN = set(string.ascii_letters + string.digits + "._-/:~@+=,[]%")


def values(key: str) -> st.SearchStrategy[object]:
    valid = VALID[key]
    as_text = st.sampled_from([str(v).lower() if isinstance(v, bool) else str(v) for v in valid])
    return st.one_of(hostile(as_text), hostile(as_text), WRONG_TYPES, st.sampled_from(valid))


def toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else repr(value).replace("inf", "inf")
    if isinstance(value, int | datetime):
        return value.isoformat() if isinstance(value, datetime) else str(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + "}"
    assert isinstance(value, str)
    return toml_string(value)


def write(path: Path, key: str, value: object) -> None:
    table, name = key.split(".")
    tables = {t: dict(v) for t, v in BASE.items()}
    if key == "zfs.pool":
        del tables["zfs"]["root"]  # <pool>/zboot
    tables[table][name] = value
    path.write_text(
        "".join(
            f"[{t}]\n" + "".join(f"{k} = {toml_value(v)}\n" for k, v in kv.items())
            for t, kv in tables.items()
        ),
        encoding="utf-8",
        errors="surrogatepass",  # a lone surrogate is written as the bytes a hostile file has
    )


def rendered(c: Config) -> list[str]:
    """Everything a config's values go into: each mode's iPXE script, the
    chain script, and each DHCP format."""
    assert c.portal and c.boot_url
    target = ipxe.BootTarget(
        "pc01", c.portal, 0, target_iqn(c, "pc01"), "iqn.2010-04.org.ipxe:pc01", None, c.root
    )
    site = dhcp.Site(c.boot_url, urlsplit(c.boot_url).hostname or "")
    hosts = [dhcp.DhcpHost("pc01", "52:54:00:12:34:56", "iqn.2010-04.org.ipxe:pc01")]
    return [
        *(ipxe.render(mode, target, c.winpe) for mode in ipxe.MODES),
        ipxe.chain_script(c.boot_url),
        *(dhcp.render(fmt, site, hosts) for fmt in dhcp.FORMATS),
    ]


def fragments(key: str, c: Config) -> list[str]:
    """How the value shows in what is rendered."""
    if key == "target.portal":
        assert c.portal
        return [c.portal, c.portal.rpartition(":")[0] or c.portal]
    if key in ("boot.url", "boot.winpe"):
        url = c.boot_url if key == "boot.url" else c.winpe
        assert url
        return [url.rstrip("/"), urlsplit(url).hostname or url]
    if key == "target.iqn_base":
        return [target_iqn(c, "pc01")]
    return [c.root, c.pool]


PLAIN_CONFIG = Config(
    portal="10.0.0.1:3260",
    iqn_base="iqn.2024-01.lan.example.zboot",
    boot_url="http://10.0.0.1/boot",
    winpe="http://10.0.0.1/winpe",
)


def harmless_in_output(key: str, c: Config) -> None:
    before, after = rendered(PLAIN_CONFIG), rendered(c)
    found = fragments(key, c)
    for old, new in zip(before, after, strict=True):
        assert new.count("\n") == old.count("\n"), (key, new)
        assert not any(ch in new for ch in "\r\x00\x0b\x0c\x1b\x7f"), (key, new)
        for was, line in zip(old.splitlines(), new.splitlines(), strict=True):
            assert was == line or any(f in line for f in found), (key, line)


def value_of(c: Config, key: str) -> object:
    """The value the config holds for key."""
    table, name = key.split(".")
    if table == "serve":
        return config_mod.serve_sections(c)[name]
    return c.scripts if key == "boot.scripts" else config_mod.sections(c)[table][name]


def harmless_value(key: str, value: object, c: Config) -> None:
    got = value_of(c, key)
    if isinstance(value, bool) or key in ("server.sudo", "serve.check_mac"):
        assert isinstance(value, bool) and got is value
    elif key in NUMBERS:
        assert isinstance(value, int | float) and not isinstance(value, bool) and got == value
        assert 0 <= float(value) <= NUMBERS[key]
    else:
        assert isinstance(value, str) and isinstance(got, str)
        if key == "serve.listen":  # an address is kept in its canonical spelling
            assert ipaddress.ip_address(got) == ipaddress.ip_address(value), (value, got)
        else:
            assert got in (value, value.rstrip("/"))
        braces = {"{", "}"} if key == "serve.adopt_names" else set()  # pc{n:02}
        assert got and set(got) <= PLAIN | braces and not got.startswith("-"), (key, got)
        if key in ("target.secrets_dir", "boot.dir"):
            assert got.startswith("/") and ".." not in got.split("/") and got.count("/") >= 2
    if key in ("target.secrets_dir", "zfs.root", "zfs.pool"):
        assert secrets_dir(c).startswith(c.secrets_dir + "/")
        assert "/" not in secrets_dir(c).removeprefix(c.secrets_dir + "/")


KEYS = list(config_mod.ALL_KEYS)


def test_every_key_has_values() -> None:
    assert set(VALID) == set(KEYS)


@pytest.mark.parametrize("key", KEYS)
def test_hostile_config_values_are_refused_or_harmless(key: str, tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    ran: list[bool] = []

    @HOSTILE
    @given(value=values(key))
    def check(value: object) -> None:
        write(path, key, value)
        try:
            c = config_mod.load(path)
        except InvalidInput as err:
            assert err.exit_code == 2
            assert (
                f"{key} in {path}: " in err.message
                or (key == "boot.dir" and "overlap" in err.message)
                # a lone surrogate is no UTF-8: the file as a whole is refused
                or (f"cannot read config file '{path}'" in err.message and "utf-8" in err.message)
            ), err.message
            ran.append(False)
            return
        harmless_value(key, value, c)
        harmless_in_output(key, c)
        ran.append(True)

    check()
    assert len(ran) >= EXAMPLES
    assert not all(ran), f"{key}: nothing hostile was refused"
