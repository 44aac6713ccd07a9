"""The lab's configuration file, forwarded ports and VM command line."""

from __future__ import annotations

import tomllib
from pathlib import Path

from zboot_lab.config import config_text, env_vars
from zboot_lab.exports import sanboot_script
from zboot_lab.golden import FAILED, increment_chain
from zboot_lab.layout import Layout
from zboot_lab.vm import vm_argv

LAYOUT = Layout(state=Path("/var/lib/zboot-lab-test"), port_base=41000)


def test_config_points_zboot_at_the_lab_over_ssh() -> None:
    config = tomllib.loads(config_text(LAYOUT))
    assert config["server"] == {
        "host": "127.0.0.1",
        "port": 41022,
        "user": "root",
        "key": "/var/lib/zboot-lab-test/keys/id_ed25519",
        "known_hosts": "/var/lib/zboot-lab-test/keys/known_hosts",
    }
    assert config["zfs"] == {"pool": "tank", "root": "tank/zboot"}
    assert config["target"] == {
        "engine": "lio",
        "portal": "10.0.2.2:44260",
        "iqn_base": "iqn.2026-11.lab.zboot",
        "secrets_dir": "/srv/zboot-secrets",
    }
    assert config["boot"] == {"dir": "/srv/zboot/boot", "url": "http://10.0.2.2:41080/"}


def test_env_names_the_config_file() -> None:
    assert env_vars(LAYOUT)["ZBOOT_CONFIG"] == "/var/lib/zboot-lab-test/zboot.toml"


def test_every_forwarded_port_is_on_loopback() -> None:
    argv = vm_argv(LAYOUT, "6.1.0-99-amd64")
    netdev = argv[argv.index("-netdev") + 1]
    forwards = [part for part in netdev.split(",") if part.startswith("hostfwd=")]
    assert len(forwards) == 4
    assert all(f.startswith("hostfwd=tcp:127.0.0.1:") for f in forwards)


def test_sanboot_script_has_explicit_initiator_and_hex_lun() -> None:
    script = sanboot_script("iqn.2026-11.lab:pc1", "10.0.2.2:44260", 10, "iqn.2026-11.lab:t1")
    assert script.startswith("#!ipxe\n")
    assert "set initiator-iqn iqn.2026-11.lab:pc1\n" in script
    assert "sanboot iscsi:10.0.2.2::44260:a:iqn.2026-11.lab:t1 " in script


def grub_increment(chain: str, count: str | None) -> str:
    """Evaluate the GRUB if/elif chain the UEFI image uses to count."""
    for line in chain.splitlines():
        if line.startswith(("if", "elif")):
            condition, action = line.split("; then set count=")
            if '-z "$count"' in condition and count is None:
                return action
            if count is not None and f'"$count" = "{count}"' in condition:
                return action
        elif line.startswith("else set count="):
            return line.removeprefix("else set count=")
    raise AssertionError("chain has no else")


def test_uefi_counter_chain_counts_up_and_stops_at_failed() -> None:
    chain = increment_chain()
    assert grub_increment(chain, None) == "1"
    assert grub_increment(chain, "0") == "1"
    assert grub_increment(chain, "41") == "42"
    assert grub_increment(chain, str(FAILED - 1)) == str(FAILED)
    assert grub_increment(chain, "junk") == str(FAILED)
