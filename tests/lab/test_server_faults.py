"""Faults of the server itself, in the lab VM: a pool that fills up during a
clone and an import. zboot fails with a clear error, leaves nothing
half-made marked ready, and the same command converges once there is room.
(The storage VM rebooted in the middle of a batch shares the one restart of
test_zboot_exports.py::test_exports_survive_a_restart_on_lio_and_tgt.)"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from zboot_cli import Zboot
from zboot_lab import iscsi
from zboot_lab.layout import POOL, Layout
from zboot_lab.remote import ssh, ssh_text

pytestmark = pytest.mark.lab


@pytest.fixture
def small_pool(lab: Layout, tmp_path: Path) -> Iterator[tuple[Zboot, str]]:
    """A 192 MiB pool of its own in the VM (a file), with a zboot root on it."""
    pool = f"zfull{uuid.uuid4().hex[:6]}"
    image = f"/var/tmp/{pool}.img"
    ssh(
        lab,
        [
            "sh",
            "-c",
            'truncate -s 192M "$2" && zpool create -f -O mountpoint=none '
            '-O compression=off "$1" "$2"',
            "sh",
            pool,
            image,
        ],
    )
    text = (
        lab.config.read_text()
        .replace(f'root = "{POOL}/zboot"', f'root = "{pool}/zboot"')
        .replace(f'pool = "{POOL}"', f'pool = "{pool}"')
    )
    config = tmp_path / "zboot.toml"
    config.write_text(text)
    run = Zboot(config, f"{pool}/zboot")
    yield run, pool
    names = [host["name"] for host in run.raw("list").get("data") or []]
    if names:
        run.raw("destroy", *names, "--yes", "--force")
    ssh(lab, ["sh", "-c", 'zpool destroy -f "$1"; rm -f "$2"', "sh", pool, image], check=False)


def findings(zboot: Zboot) -> list[str]:
    return [f["kind"] for f in zboot.raw("doctor")["data"]["findings"]]


@pytest.mark.full  # CI's time budget: docs/lab.md
def test_a_full_pool_fails_clone_and_import_cleanly(
    lab: Layout, small_pool: tuple[Zboot, str], tmp_path: Path
) -> None:
    zboot, pool = small_pool
    disk = tmp_path / "disk.raw"
    disk.write_bytes(os.urandom(4 << 20))
    zboot("init")
    zboot("image", "import", "gold", str(disk))
    zboot("image", "snapshot", "gold")
    # fill the pool with data until ZFS says no more (outside zboot's root)
    ssh(
        lab,
        [
            "sh",
            "-c",
            'zfs create -s -V 1G "$1/filler" && udevadm settle && '
            'dd if=/dev/urandom of="/dev/zvol/$1/filler" bs=1M oflag=direct 2>/dev/null; '
            "true",
            "sh",
            pool,
        ],
    )
    assert findings(zboot) == ["pool-full"]

    # the pool's reserve (10% by default) refuses first, before anything is made
    refused = zboot("clone", "gold", "pcfull1", "--mac", "52:54:00:fe:00:01", code=4)
    assert "below its reserve" in refused["errors"][0]["message"], refused
    assert "zboot prune" in refused["errors"][0]["hint"], refused
    # with no reserve, ZFS itself runs out of space half way
    config = Path(zboot.env["ZBOOT_CONFIG"])
    without = re.sub(r"(?m)^reserve = .*\n", "", config.read_text())  # the lab's own, if any
    config.write_text(without.replace(f'pool = "{pool}"\n', f'pool = "{pool}"\nreserve = "0"\n'))
    failed = zboot("clone", "gold", "pcfull1", "--mac", "52:54:00:fe:00:01", code=5)
    assert "out of space" in failed["errors"][0]["message"]
    bigger = tmp_path / "bigger.raw"
    bigger.write_bytes(os.urandom(16 << 20))
    refused = zboot.raw("image", "import", "gold2", str(bigger))
    assert refused["exit_code"] != 0 and refused["errors"], refused
    # nothing half-made: no host, no second image, no export, no script
    listed = ssh_text(lab, ["zfs", "list", "-H", "-o", "name", "-r", f"{pool}/zboot"])
    assert "pcfull1" not in listed and "gold2" not in listed, listed
    assert findings(zboot) == ["pool-full"]

    ssh(lab, ["zfs", "destroy", f"{pool}/filler"])
    made = zboot("clone", "gold", "pcfull1", "--mac", "52:54:00:fe:00:01")["data"]
    zboot("image", "import", "gold2", str(bigger))
    assert findings(zboot) == []
    login = iscsi.inquiry(f"127.0.0.1:{lab.lio_port}", made["target"], 0, made["initiator"])
    assert login.returncode == 0, login.stderr
