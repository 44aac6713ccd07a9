"""Boot scripts on the real server: who may read a script that holds a CHAP
secret, written over SFTP the way a site's zboot writes it."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
from zboot_cli import Zboot
from zboot_lab.layout import BOOT_DIR, Layout
from zboot_lab.remote import ssh, ssh_text

pytestmark = pytest.mark.lab

MIB = 1 << 20


def test_a_script_with_a_secret_is_for_root_and_the_boot_directorys_group(
    lab: Layout, zboot: Zboot, tmp_path: Path
) -> None:
    """In a boot directory set up as docs/boot.md says (the web server's group,
    here `daemon`, and setgid), a CHAP host's script is 0640 with that group; a
    host's script without secrets stays 0644."""
    boot = f"{BOOT_DIR}-{uuid.uuid4().hex[:8]}"  # its own, not the lab's shared one
    ssh(lab, ["install", "-d", "-m", "2750", "-g", "daemon", boot])
    config = Path(zboot.env["ZBOOT_CONFIG"])
    text = config.read_text()
    assert f'dir = "{BOOT_DIR}"' in text
    config.write_text(text.replace(f'dir = "{BOOT_DIR}"', f'dir = "{boot}"'))
    try:
        source = tmp_path / "disk.raw"
        source.write_bytes(os.urandom(MIB))
        zboot("init")
        zboot("image", "import", "gold", str(source))
        zboot("image", "snapshot", "gold")
        zboot("clone", "gold", "pcs1", "--mac", "52:54:00:0d:00:01", "--chap")
        zboot("clone", "gold", "pcs2", "--mac", "52:54:00:0d:00:02")
        listed = ssh_text(
            lab,
            [
                "sh",
                "-c",
                'cd "$1" && stat -c "%n %a %G" *.ipxe && grep -l "^set password " *',
                "sh",
                boot,
            ],
        ).splitlines()
        assert listed == [
            "52-54-00-0d-00-01.ipxe 640 daemon",
            "52-54-00-0d-00-02.ipxe 644 daemon",
            "52-54-00-0d-00-01.ipxe",  # the one with a secret
        ]
    finally:
        ssh(lab, ["rm", "-rf", "--", boot])
