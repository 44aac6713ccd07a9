"""A new user's first steps against the real storage VM: `zboot init` from
options alone writes a config file that then works (`zboot list`), and
`zboot server check` finds LIO and tgt usable there. Three zboot commands;
the test's root dataset is destroyed at the end."""

from __future__ import annotations

import stat
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
from zboot_cli import Zboot
from zboot_lab.layout import POOL, SECRETS_DIR, Layout
from zboot_lab.remote import ssh

pytestmark = pytest.mark.lab

ROOT = f"{POOL}/zboot-initcheck"


@pytest.fixture
def root(lab: Layout) -> Iterator[str]:
    yield ROOT
    ssh(
        lab,
        ["sh", "-c", 'zfs destroy -r "$1" 2>/dev/null; true', "sh", ROOT],
        kind="clean-up",
    )


def test_init_from_options_then_server_check_and_list(
    lab: Layout, root: str, tmp_path: Path
) -> None:
    config = tmp_path / "new" / "zboot.toml"  # nothing there yet
    zboot = Zboot(config, root)
    done = zboot(
        "init",
        *("--server", f"root@127.0.0.1:{lab.ssh_port}"),
        *("--key", str(lab.client_key), "--known-hosts", str(lab.known_hosts)),
        *("--pool", POOL, "--root", root, "--secrets-dir", SECRETS_DIR),
        *("--portal", lab.portal("lio"), "--boot-url", lab.boot_url()),
    )["data"]
    assert done["engine"] == "lio" and done["config"]["written"]
    assert done["created"] == [root, f"{root}/images", f"{root}/hosts", f"{root}/archive"]
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    written = tomllib.loads(config.read_text())
    assert written["server"]["port"] == lab.ssh_port and written["zfs"]["root"] == root
    assert written["target"]["engine"] == "lio" and written["target"]["iqn_base"].endswith(".zboot")

    check = zboot("server", "check")["data"]
    assert check["ready"] and check["engine"] == {
        "configured": "lio",
        "used": "lio",
        "usable": True,
    }
    assert check["engines"]["lio"] and check["engines"]["tgt"], check["checks"]
    rows = {(c["area"], c["item"]): c for c in check["checks"]}
    assert rows[("access", "sftp")]["ok"] and rows[("zfs", f"pool {POOL}")]["ok"]
    assert check["os"]["family"] == "debian"

    assert zboot("list")["data"] == []
