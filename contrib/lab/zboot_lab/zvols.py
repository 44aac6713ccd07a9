"""zvols on the lab's pool, made and filled by hand over SSH."""

from __future__ import annotations

import gzip
from pathlib import Path

from .layout import Layout
from .remote import ssh

MIB = 1024 * 1024

# Waits for udev's /dev/zvol link, which appears after `zfs create` returns.
WAIT_FOR_LINK = (
    'udevadm settle; for _ in $(seq 100); do [ -e "/dev/zvol/$1" ] && break; sleep 0.1; done'
)


def import_image(layout: Layout, image: Path, zvol: str) -> None:
    """Create a sparse zvol the size of image (rounded up to MiB) and write image into it."""
    size = -(-image.stat().st_size // MIB) * MIB
    script = (
        f'zfs create -s -V {size} "$1" && {WAIT_FOR_LINK} && '
        'gzip -dc | dd of="/dev/zvol/$1" bs=1M conv=sparse,fsync status=none'
    )
    # Golden images are mostly zeros: compressed, they cross the emulated
    # guest's SSH in a fraction of the time; dd skips the zero blocks.
    ssh(
        layout,
        ["sh", "-c", script, "sh", zvol],
        stdin=gzip.compress(image.read_bytes(), compresslevel=1),
    )


def destroy(layout: Layout, zvol: str) -> None:
    """Destroy zvol and its snapshots and clones, if it exists."""
    ssh(
        layout,
        ["sh", "-c", 'zfs list -H "$1" >/dev/null 2>&1 || exit 0; zfs destroy -r "$1"', "sh", zvol],
    )
