"""The storage VM runs real OpenZFS: userland and kernel module, and zvols."""

from __future__ import annotations

import hashlib
import uuid

import pytest
from zboot_lab.layout import POOL, Layout
from zboot_lab.remote import ssh, ssh_text
from zboot_lab.zvols import WAIT_FOR_LINK

pytestmark = pytest.mark.lab


def test_zfs_version_shows_userland_and_kernel_module(lab: Layout) -> None:
    lines = ssh_text(lab, ["zfs", "version"]).split()
    assert any(line.startswith("zfs-2.") for line in lines), lines
    assert any(line.startswith("zfs-kmod-2.") for line in lines), lines


def sha(layout: Layout, zvol: str) -> str:
    return ssh_text(layout, ["sh", "-c", 'sha256sum < "/dev/zvol/$1"', "sh", zvol]).split()[0]


def fill(layout: Layout, zvol: str, data: bytes) -> None:
    ssh(
        layout,
        [
            "sh",
            "-c",
            f'{WAIT_FOR_LINK}; dd of="/dev/zvol/$1" bs=64k conv=fsync status=none',
            "sh",
            zvol,
        ],
        stdin=data,
    )


def test_zvol_create_snapshot_clone_rollback_destroy(lab: Layout) -> None:
    vol = f"{POOL}/selftest-{uuid.uuid4().hex[:8]}"
    clone = f"{vol}-clone"
    first, second = b"A" * 1024 * 1024, b"B" * 1024 * 1024
    try:
        ssh(lab, ["zfs", "create", "-s", "-V", "1M", vol])
        fill(lab, vol, first)
        ssh(lab, ["zfs", "snapshot", f"{vol}@v1"])
        ssh(lab, ["zfs", "clone", f"{vol}@v1", clone])
        fill(lab, vol, second)
        assert sha(lab, vol) == hashlib.sha256(second).hexdigest()
        assert sha(lab, clone) == hashlib.sha256(first).hexdigest()

        ssh(lab, ["zfs", "rollback", f"{vol}@v1"])
        assert sha(lab, vol) == hashlib.sha256(first).hexdigest()

        ssh(lab, ["zfs", "destroy", clone])
        ssh(lab, ["zfs", "destroy", "-r", vol])
        listed = ssh_text(lab, ["zfs", "list", "-H", "-t", "all", "-o", "name"]).split()
        assert vol not in listed and clone not in listed and f"{vol}@v1" not in listed
    finally:
        ssh(
            lab,
            [
                "sh",
                "-c",
                'zfs destroy "$1" 2>/dev/null; zfs destroy -r "$2" 2>/dev/null; true',
                "sh",
                clone,
                vol,
            ],
        )
