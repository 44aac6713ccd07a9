"""Boot files without a server: each mode's iPXE script, and the DHCP configs
for the four servers."""

from __future__ import annotations

import configparser
import http.client
import importlib.util
import json
import os
import stat
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import pytest

from zboot.boot import dhcp
from zboot.boot.ipxe import (
    CHAIN_SCRIPT,
    BootTarget,
    chain_script,
    pxelinux_config,
    pxelinux_name,
    render,
    root_path,
    script_name,
)
from zboot.chap import Chap
from zboot.config import Config
from zboot.errors import InvalidInput
from zboot.ops.bootfiles import secret_script_problems, write_script
from zboot.remote import LocalRunner
from zboot.remote.base import write_file_by_command

TARGET = BootTarget(
    "pc01", "10.0.2.2:43261", 1, "iqn.2026-11.lab.zboot:pc01", "iqn.2010-04.org.ipxe:pc01"
)
MUTUAL = Chap(
    "iqn.2010-04.org.ipxe:pc01",
    "Secret0123456789",
    "iqn.2026-11.lab.zboot:pc01",
    "Mutual0123456789",
)
SITE = dhcp.Site("http://10.0.0.1/boot", "10.0.0.1", router="10.0.0.254")
HOSTS = [
    dhcp.DhcpHost("pc01", "52:54:00:aa:00:01", "iqn.2010-04.org.ipxe:pc01"),
    dhcp.DhcpHost("pc02", "52:54:00:aa:00:02", "iqn.1991-05.com.microsoft:pc02"),
]


def lines(text: str) -> list[str]:
    return text.splitlines()


def test_script_names_and_root_paths() -> None:
    assert script_name("52:54:00:AA:00:01") == "52-54-00-aa-00-01.ipxe"
    assert root_path("10.0.2.2:43261", 10, "iqn.x:pc") == "iscsi:10.0.2.2::43261:a:iqn.x:pc"


def test_normal_sets_the_initiator_then_sanboots_and_retries() -> None:
    text = lines(render("normal", TARGET))
    assert text[0] == "#!ipxe"
    assert text.index("set initiator-iqn iqn.2010-04.org.ipxe:pc01") < next(
        i for i, line in enumerate(text) if line.startswith("sanboot ")
    )
    assert f"sanboot {TARGET.uri} && goto booted ||" in text
    assert "reboot" in text and not any("password" in line for line in text)


def test_chap_goes_into_the_script_both_ways() -> None:
    text = render("normal", BootTarget(**{**TARGET.__dict__, "chap": MUTUAL}))
    assert "set username iqn.2010-04.org.ipxe:pc01\nset password Secret0123456789\n" in text
    assert "set reverse-username iqn.2026-11.lab.zboot:pc01\n" in text
    assert "set reverse-password Mutual0123456789\n" in text


def test_install_keeps_the_disk_and_falls_through_or_boots_winpe() -> None:
    plain = lines(render("install", TARGET))
    assert "set keep-san 1" in plain
    assert f"sanhook --drive 0x80 {TARGET.uri} || goto failed" in plain
    assert "exit 0" in plain and not any(line.startswith("sanboot") for line in plain)
    winpe = lines(render("install", TARGET, winpe="http://10.0.0.1/winpe/"))
    assert "kernel http://10.0.0.1/winpe/wimboot" in winpe
    assert "initrd http://10.0.0.1/winpe/boot.wim boot.wim" in winpe and "exit 0" not in winpe


def test_local_never_attaches_the_san_disk() -> None:
    text = render("local", TARGET)
    assert "sanboot --no-describe --drive 0x80" in text and TARGET.target not in text


def test_local_on_efi_hands_back_to_the_firmware_before_any_sanboot() -> None:
    """EFI iPXE cannot `sanboot --drive 0x80` a local disk: it exits first."""
    body = lines(render("local", TARGET))
    efi_exit = body.index("iseq ${platform} efi && exit 1 ||")  # a failure: next entry
    assert efi_exit < next(i for i, line in enumerate(body) if line.startswith("sanboot"))


@pytest.mark.parametrize("bad", ["iqn.x:pc 1", "iqn.x:pc;reboot", "iqn.x:${x}", ""])
def test_values_ipxe_would_misread_are_refused(bad: str) -> None:
    with pytest.raises(InvalidInput):
        render("normal", BootTarget(**{**TARGET.__dict__, "initiator": bad}))
    with pytest.raises(InvalidInput):
        render("holiday", TARGET)


def test_isc_gives_ipxe_its_script_and_no_router() -> None:
    text = dhcp.render("isc", SITE, HOSTS)
    ipxe_branch = text[text.index("if exists user-class") : text.index("} else {")]
    assert 'filename "http://10.0.0.1/boot/${mac:hexhyp}.ipxe";' in ipxe_branch
    assert "routers" not in ipxe_branch and "option routers 10.0.0.254;" in text
    assert 'option iscsi-initiator-iqn "iqn.1991-05.com.microsoft:pc02";' in text
    assert "hardware ethernet 52:54:00:aa:00:01;" in text


def test_dnsmasq_tags_ipxe_and_clears_its_router() -> None:
    text = lines(dhcp.render("dnsmasq", SITE, HOSTS))
    assert "dhcp-userclass=set:ipxe,iPXE" in text
    assert "dhcp-boot=tag:ipxe,http://10.0.0.1/boot/${mac:hexhyp}.ipxe" in text
    assert "dhcp-option=tag:ipxe,option:router" in text
    assert "dhcp-option=tag:!ipxe,option:router,10.0.0.254" in text
    assert 'dhcp-option=tag:zboot-pc01,203,"iqn.2010-04.org.ipxe:pc01"' in text


def test_kea_classes_and_reservations() -> None:
    config = json.loads(dhcp.render("kea", SITE, HOSTS))["Dhcp4"]
    classes = {c["name"]: c for c in config["client-classes"]}
    assert classes["ipxe"]["boot-file-name"].endswith("/${mac:hexhyp}.ipxe")
    assert "option-data" not in classes["ipxe"]  # no router for iPXE
    assert classes["pxe-bios"]["boot-file-name"] == "undionly.kpxe"
    assert classes["pxe-efi64"]["option-data"] == [{"name": "routers", "data": "10.0.0.254"}]
    assert [r["hw-address"] for r in config["reservations"]] == [h.mac for h in HOSTS]


def test_ms_dhcp_uses_a_mac_policy_per_host() -> None:
    text = dhcp.render("ms-dhcp", SITE, HOSTS)
    assert "-MacAddress EQ,525400aa0001 -UserClass EQ,iPXE" in text
    assert "-OptionId 67 -Value 'http://10.0.0.1/boot/52-54-00-aa-00-01.ipxe'" in text
    assert "-OptionId 203 -Value 'iqn.1991-05.com.microsoft:pc02'" in text


def test_a_value_that_would_break_a_config_is_refused() -> None:
    with pytest.raises(InvalidInput):
        dhcp.render("isc", dhcp.Site('http://x/"boot', "x"), HOSTS)
    with pytest.raises(InvalidInput):
        dhcp.render("bind", SITE, HOSTS)


CONTRIB = {
    "isc": "dhcpd-zboot.conf",
    "dnsmasq": "dnsmasq-zboot.conf",
    "kea": "kea-dhcp4-zboot.json",
    "ms-dhcp": "ms-dhcp-zboot.ps1",
}


@pytest.mark.parametrize("fmt", sorted(CONTRIB))
def test_contrib_examples_are_what_zboot_generates(fmt: str) -> None:
    """contrib/boot/ holds `zboot dhcp` output for two hosts on 10.0.0.0/24."""
    site = dhcp.Site("http://10.0.0.1/boot", "10.0.0.1", router="10.0.0.254")
    hosts = [
        dhcp.DhcpHost(f"pc0{n}", f"52:54:00:aa:00:0{n}", f"iqn.2010-04.org.ipxe:pc0{n}")
        for n in (1, 2)
    ]
    path = Path(__file__).resolve().parents[2] / "contrib" / "boot" / CONTRIB[fmt]
    assert path.read_text() == dhcp.render(fmt, site, hosts)


def test_pxelinux_chains_into_ipxe_and_the_hosts_script() -> None:
    assert pxelinux_name("52:54:00:AA:00:01") == "01-52-54-00-aa-00-01"
    config = pxelinux_config("pc01").splitlines()
    assert "DEFAULT zboot" in config and "  KERNEL ipxe.lkrn" in config
    assert f"  INITRD {CHAIN_SCRIPT}" in config
    chain = chain_script("http://10.0.0.1/boot/").splitlines()
    assert chain[0] == "#!ipxe"
    assert "chain http://10.0.0.1/boot/${mac:hexhyp}.ipxe || goto failed" in chain


CONTRIB_BOOT = Path(__file__).resolve().parents[2] / "contrib" / "boot"
MAC = "52:54:00:aa:00:01"
WEB_GID = 4242  # stands for the web server's group


class ByCommand(LocalRunner):
    """Files written the way sudo and SSH-with-sudo write them (mktemp, chmod, mv)."""

    def write_file(self, path: str, data: bytes, mode: int = 0o644) -> None:
        write_file_by_command(self, path, data, mode)


@pytest.fixture
def boot_dir(tmp_path: Path) -> Path:
    """A boot directory set up as docs/boot.md says: the web server's group, setgid."""
    if os.geteuid() != 0 and WEB_GID not in os.getgroups():
        pytest.skip("needs root to give the directory another group")
    path = tmp_path / "boot"
    path.mkdir()
    os.chown(path, -1, WEB_GID)
    path.chmod(0o2750)
    return path


ONE_WAY = replace(TARGET, chap=Chap(MUTUAL.user, MUTUAL.secret))
SCRIPTS = [  # mode, target, the script's permissions
    ("normal", TARGET, 0o644),  # no secret: nothing a boot client does not see anyway
    ("normal", ONE_WAY, 0o640),
    ("install", replace(TARGET, chap=MUTUAL), 0o640),
    ("maintenance", replace(TARGET, chap=MUTUAL), 0o640),
    ("local", replace(TARGET, chap=MUTUAL), 0o644),  # a local script sets no secret
]


@pytest.mark.parametrize("runner", [LocalRunner(), ByCommand()], ids=["direct", "by-command"])
def test_a_script_with_a_secret_is_for_root_and_the_web_servers_group(
    boot_dir: Path, runner: LocalRunner
) -> None:
    config = Config(boot_dir=str(boot_dir))
    for mode, target, permissions in SCRIPTS:
        path = Path(write_script(runner, config, MAC, mode, target))
        info = path.stat()
        assert (MUTUAL.secret in path.read_text()) == (permissions == 0o640), mode
        assert stat.S_IMODE(info.st_mode) == permissions, (mode, oct(info.st_mode))
        assert info.st_gid == WEB_GID, mode  # from the directory's setgid bit


def test_doctor_hears_of_a_secret_others_may_read_or_the_web_server_may_not(
    boot_dir: Path,
) -> None:
    config = Config(boot_dir=str(boot_dir))
    runner = LocalRunner()
    for n, (mode, target, _) in enumerate(SCRIPTS):
        write_script(runner, config, f"52:54:00:aa:00:0{n}", mode, target)

    def problems() -> list[str]:
        scripts = {p.name: p.read_text() for p in boot_dir.glob("*.ipxe")}
        return secret_script_problems(runner, config, scripts)

    assert problems() == []  # as written
    old = boot_dir / "52-54-00-aa-00-01.ipxe"  # one-way CHAP, as written before 0640
    old.chmod(0o644)
    assert problems() == []  # others cannot enter the directory
    boot_dir.chmod(0o2755)
    [exposed] = problems()
    assert exposed.startswith(f"{old.name} holds a CHAP secret and anyone on the server")
    (boot_dir / "52-54-00-aa-00-00.ipxe").chmod(0o666)  # no secret in it: nobody's business
    os.chown(old, -1, 0)  # written before the directory had its setgid bit
    assert [p.partition(" and ")[2] for p in problems()] == [
        "anyone on the server may read it (chmod o-r it)",
        "its group is not the boot directory's, so the web server may not read it "
        f"(chgrp it, and chmod g+s {boot_dir} so new scripts get the directory's group)",
    ]


def load_boot_http() -> object:
    spec = importlib.util.spec_from_file_location("boot_http", CONTRIB_BOOT / "zboot-boot-http.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def fetch(port: int, path: str) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", path)
        answer = connection.getresponse()
        return answer.status, answer.read()
    finally:
        connection.close()


@contextmanager
def boot_http(directory: Path) -> Iterator[int]:
    """contrib/boot's HTTP server on 127.0.0.1, serving directory; its port."""
    server = load_boot_http().server("127.0.0.1", 0, str(directory))  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


def test_the_shipped_http_service_serves_scripts_but_never_a_listing(tmp_path: Path) -> None:
    unit = configparser.ConfigParser(interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read(CONTRIB_BOOT / "zboot-boot-http.service")
    service = unit["Service"]
    argv = service["ExecStart"].split()
    assert Path(argv[1]).name == "zboot-boot-http.py" and argv[-1] == service["ReadOnlyPaths"]
    assert service["DynamicUser"] == "yes" and service["SupplementaryGroups"] == "zboot-boot"

    (tmp_path / "52-54-00-aa-00-01.ipxe").write_text("#!ipxe\n")
    (tmp_path / "sub").mkdir()
    with boot_http(tmp_path) as port:
        assert fetch(port, "/52-54-00-aa-00-01.ipxe") == (200, b"#!ipxe\n")
        missing = fetch(port, "/nothing.ipxe")
        for listing in ("/", "/sub/", "/?C=M"):
            assert fetch(port, listing) == missing == (404, missing[1]), listing


def test_the_shipped_nginx_snippet_lists_nothing_and_serves_the_boot_network_alone() -> None:
    lines = [
        line.split("#")[0].strip()
        for line in (CONTRIB_BOOT / "nginx-zboot-boot.conf").read_text().splitlines()
    ]
    assert "autoindex off;" in lines and "autoindex on;" not in lines
    assert lines.index("deny all;") > lines.index("allow 10.0.0.0/24;")
