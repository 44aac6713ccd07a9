"""The DHCP configs zboot generates pass the real servers' own checks (Debian's
ISC dhcpd 4.4, dnsmasq 2.90, Kea 2.2, installed by the lab); and each check
does reject a broken copy, so a pass means something."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from zboot.boot import dhcp

pytestmark = pytest.mark.lab

SITE = dhcp.Site("http://10.0.2.2:40080/boot", "10.0.2.2", router="10.0.2.2")
HOSTS = [
    dhcp.DhcpHost(f"pc{n:02}", f"52:54:00:aa:00:{n:02x}", f"iqn.2010-04.org.ipxe:pc{n:02}")
    for n in range(1, 21)
] + [dhcp.DhcpHost("win-01", "52:54:00:aa:01:01", "iqn.1991-05.com.microsoft:win-01")]

CHECKS = {
    "isc": (
        ["dhcpd", "-t", "-cf"],
        ("option iscsi-initiator-iqn code 203", "option iscsi-initiator-iqn code 20x"),
    ),
    "dnsmasq": (["dnsmasq", "--test", "--conf-file"], ("dhcp-boot=tag:ipxe,", "dhcp-boot=tag:")),
    "kea": (["kea-dhcp4", "-t"], ('"code": 203', '"code": "x"')),
}


def check(argv: list[str], path: Path) -> subprocess.CompletedProcess[str]:
    arg = [*argv[:-1], f"{argv[-1]}={path}"] if argv[-1].startswith("--") else [*argv, str(path)]
    return subprocess.run(arg, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("fmt", sorted(CHECKS))
def test_generated_config_passes_the_servers_own_check(fmt: str, tmp_path: Path) -> None:
    argv, (good, broken) = CHECKS[fmt]
    text = dhcp.render(fmt, SITE, HOSTS)
    path = tmp_path / f"zboot.{fmt}"
    path.write_text(text)
    result = check(argv, path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert good in text
    path.write_text(text.replace(good, broken, 1))  # the check can fail
    assert check(argv, path).returncode != 0
