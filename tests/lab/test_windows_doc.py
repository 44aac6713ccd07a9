"""docs/windows.md, run: every `zboot` line of its `sh` blocks, in page order,
against the lab's pool and LIO target, with one documented substitution
(`/path/to/windows.img` -> a small sparse raw file). Each must exit 0; a few
steps are also checked for what the page says about them (the install
script's keep-san, sanhook and wimboot, no router for iPXE in the DHCP
lines, the host name in the target and initiator names, the versions the
fleet ends on), and the one write the page's Windows makes that zboot
would see (the updates in maintenance) is made by hand. The `zboot`
fixture's own root is removed afterwards with every export and boot file
the page made."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from doc_commands import Command, shell_commands
from zboot_cli import Zboot
from zboot_lab.layout import Layout
from zboot_lab.remote import ssh_text

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "windows.md"
IMAGE_PLACEHOLDER = "/path/to/windows.img"  # the page's table of names says so
IMAGE_BYTES = 64 * 1024 * 1024


def doc_steps() -> list[Command]:
    """The page's shell commands: all of them are zboot's (the unit test
    test_windows_doc_steps.py holds the page to that)."""
    return shell_commands(DOC)


def _boot_file(lab: Layout, out: dict[str, Any]) -> str:
    return ssh_text(lab, ["cat", out["data"]["boot_file"]])


def _check_install(lab: Layout, out: dict[str, Any]) -> None:
    script = _boot_file(lab, out)
    assert "set keep-san 1" in script and "sanhook --drive 0x80 " in script, script
    assert "exit 0" in script, script  # falls through to the DVD


def _check_winpe(lab: Layout, out: dict[str, Any]) -> None:
    script = _boot_file(lab, out)
    assert "set keep-san 1" in script and "sanhook --drive 0x80 " in script, script
    for line in (
        "kernel http://10.0.0.1/winpe/wimboot",
        "initrd http://10.0.0.1/winpe/BCD BCD",
        "initrd http://10.0.0.1/winpe/boot.sdi boot.sdi",
        "initrd http://10.0.0.1/winpe/boot.wim boot.wim",
    ):
        assert line in script.splitlines(), (line, script)


def _check_dhcp(lab: Layout, out: dict[str, Any]) -> None:
    text = out["data"]["config"]
    assert "dhcp-option=tag:ipxe,option:router" in text, text  # an empty router for iPXE
    assert "52:54:00:d0:c0:01" in text, text


def _check_import(lab: Layout, out: dict[str, Any]) -> None:
    assert out["data"]["size"] == out["data"]["written"] == IMAGE_BYTES, out
    # zero blocks are sent but not written: the zvol stays thin
    used = ssh_text(lab, ["zfs", "get", "-Hpo", "value", "used", out["data"]["dataset"]])
    assert int(used) < IMAGE_BYTES // 8, used


def _check_export(lab: Layout, out: dict[str, Any]) -> None:
    data = out["data"]
    assert data["target"].endswith(":doc-pc02"), data
    assert data["initiator"] == "iqn.2010-04.org.ipxe:doc-pc02", data


# what the page says about some of its steps, checked on what they did
CHECKS: dict[str, Callable[[Layout, dict[str, Any]], None]] = {
    "zboot mode doc-pc01 install": _check_install,
    "zboot mode doc-pc01 install --winpe http://10.0.0.1/winpe": _check_winpe,
    "zboot dhcp --format dnsmasq doc-pc01": _check_dhcp,
    f"zboot image import win11-doc-local {IMAGE_PLACEHOLDER}": _check_import,
    "zboot export show doc-pc02": _check_export,
}


def _windows_updates_the_image(lab: Layout, zboot: Zboot) -> None:
    """What the maintenance machine does before it powers off: write to the
    image's own disk (without a write, leaving maintenance makes no version)."""
    zvol = f"/dev/zvol/{zboot.root}/images/win11-doc"
    ssh_text(
        lab,
        [
            "sh",
            "-c",
            'head -c 65536 /dev/urandom | dd of="$1" bs=64k seek=16 conv=notrunc,fsync status=none',
            "sh",
            zvol,
        ],
    )


# what happens on the Windows side between two steps, as far as zboot sees it
BEFORE: dict[str, Callable[[Layout, Zboot], None]] = {
    'zboot mode doc-pc01 normal -m "December updates"': _windows_updates_the_image,
}


@pytest.mark.lab
@pytest.mark.full  # CI parses every command against the CLI (unit); docs/lab.md
def test_every_zboot_command_of_the_windows_page_runs(
    lab: Layout, zboot: Zboot, tmp_path: Path
) -> None:
    image = tmp_path / "windows.img"
    with image.open("wb") as f:  # sparse: costs nothing to make or to send
        os.truncate(f.fileno(), IMAGE_BYTES)
    steps = doc_steps()
    assert len(steps) >= 10, [s.text for s in steps]
    assert set(CHECKS) | set(BEFORE) <= {s.text for s in steps}, "a checked step left the page"
    for step in steps:
        assert step.words[0] == "zboot", step
        if step.text in BEFORE:
            BEFORE[step.text](lab, zboot)
        args = [str(image) if w == IMAGE_PLACEHOLDER else w for w in step.words[1:]]
        out = zboot(*args)
        if step.text in CHECKS:
            CHECKS[step.text](lab, out)

    # where the page leaves the fleet: doc-pc02 and doc-pc03 on the version
    # maintenance made, doc-pc01 on the sysprepped one it was committed as
    hosts = {h["name"]: h["image"] for h in zboot("list")["data"]}
    assert hosts == {
        "doc-pc01": "win11-doc@v2",
        "doc-pc02": "win11-doc@v3",
        "doc-pc03": "win11-doc@v3",
    }, hosts
    shown = zboot("image", "show", "win11-doc")["data"]
    versions = {v["version"]: v for v in shown["versions"]}
    assert versions["v3"]["message"] == "December updates", versions
    assert "v2" in versions, versions
