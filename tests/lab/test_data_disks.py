"""Data disks on the real server and engines: `clone --data-disk` and
`--data-image` make a second zvol per host, exported as the LUN after the
OS disk of the host's own target (real iSCSI reads through libiscsi), kept
as it is by rollback and rebase, moved onto a data image's next version by
`data rebase`, shown by `show`, destroyed with the host (archives too)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from test_zboot_exports import use_engine
from zboot_cli import Zboot
from zboot_lab import iscsi
from zboot_lab.layout import Layout
from zboot_lab.remote import ssh, ssh_text

pytestmark = pytest.mark.lab

MIB = 1024 * 1024
SIZE = 4 * MIB


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def fill(lab: Layout, dataset: str, data: bytes) -> None:
    """Write data at the start of the zvol on the server."""
    ssh(
        lab,
        [
            "sh",
            "-c",
            # a zvol just made takes a moment to get its device node
            'd="/dev/zvol/$1"; i=0; while [ ! -b "$d" ] && [ $i -lt 300 ]; do '
            'sleep 0.1; i=$((i+1)); done; [ -b "$d" ] && cat > "$d" && sync',
            "sh",
            dataset,
        ],
        stdin=data,
    )


def read(lab: Layout, portal: str, shown: dict[str, object], lun: int, out: Path) -> bytes:
    """A whole LUN of the host's target, read as the host's initiator."""
    record = shown["record"]
    assert isinstance(record, dict)
    iscsi.read_lun(portal, record["target"], lun, record["initiator"], out)
    return out.read_bytes()


@pytest.mark.parametrize("engine", ["lio", pytest.param("tgt", marks=pytest.mark.full)])
def test_a_data_disk_is_the_next_lun_and_outlives_rollback_and_rebase(
    lab: Layout, zboot: Zboot, tmp_path: Path, engine: str
) -> None:
    use_engine(lab, zboot, engine)
    portal = f"127.0.0.1:{lab.lio_port if engine == 'lio' else lab.tgt_port}"
    os_lun = 0 if engine == "lio" else 1  # tgt's LUN 0 is its controller
    root = zboot.root
    gold_bytes, games_bytes = os.urandom(MIB), os.urandom(MIB)
    zboot("init")
    zboot("image", "create", "gold", "--size", str(SIZE))
    fill(lab, f"{root}/images/gold", gold_bytes)
    zboot("image", "snapshot", "gold")
    zboot("image", "create", "games", "--size", str(SIZE))
    fill(lab, f"{root}/images/games", games_bytes)
    zboot("image", "snapshot", "games")

    zboot("clone", "gold", "pcd1", "--mac", "52:54:00:da:00:01", "--data-disk", "12M")
    zboot("clone", "gold", "pcd2", "--mac", "52:54:00:da:00:02", "--data-image", "games")
    zboot("clone", "gold", "pcd3", "--mac", "52:54:00:da:00:03")  # none
    one, two = zboot("show", "pcd1")["data"], zboot("show", "pcd2")["data"]
    assert one["data_disk"]["dataset"] == f"{root}/data/pcd1"
    assert (one["data_disk"]["size"], one["data_disk"]["origin"]) == ("12.0M", "")
    assert two["data_disk"]["origin"] == f"{root}/images/games@v1"
    assert zboot("show", "pcd3")["data"]["data_disk"] is None

    # the OS disk where it always was, the data disk right after it
    assert read(lab, portal, one, os_lun, tmp_path / "os.raw")[:MIB] == gold_bytes
    empty = read(lab, portal, one, os_lun + 1, tmp_path / "data1.raw")
    assert len(empty) == 12 * MIB and empty == bytes(12 * MIB)
    assert read(lab, portal, two, os_lun + 1, tmp_path / "data2.raw")[:MIB] == games_bytes
    refused = iscsi.inquiry(portal, one["record"]["target"], os_lun + 1, "iqn.2026-12.org.x:y")
    assert refused.returncode != 0  # the data LUN lets in the host's initiator only

    # the machine writes to both disks; a rollback reverts the OS disk only
    mine = os.urandom(MIB)
    fill(lab, f"{root}/hosts/pcd1", os.urandom(MIB))
    fill(lab, f"{root}/data/pcd1", mine)
    zboot("rollback", "pcd1")
    assert read(lab, portal, one, os_lun, tmp_path / "os.raw")[:MIB] == gold_bytes
    assert read(lab, portal, one, os_lun + 1, tmp_path / "data1.raw")[:MIB] == mine

    # a new image version, both hosts rebased onto it: data disks as they were
    fill(lab, f"{root}/images/gold", v2 := os.urandom(MIB))
    zboot("image", "snapshot", "gold")
    moved = zboot("rebase", "pcd1", "pcd2", "--to", "gold")["data"]["hosts"]
    assert [h["moved"] for h in moved] == [True, True]
    assert read(lab, portal, one, os_lun, tmp_path / "os.raw")[:MIB] == v2
    assert read(lab, portal, one, os_lun + 1, tmp_path / "data1.raw")[:MIB] == mine
    assert read(lab, portal, two, os_lun + 1, tmp_path / "data2.raw")[:MIB] == games_bytes
    assert zboot("show", "pcd1")["data"]["data_disk"]["dataset"] == f"{root}/data/pcd1"

    # the data image's next version: pcd2's data disk moves onto it, the old
    # one archived; its OS disk, target and script stay
    fill(lab, f"{root}/images/games", games_v2 := os.urandom(MIB))
    zboot("image", "snapshot", "games")
    os_before = read(lab, portal, two, os_lun, tmp_path / "os2.raw")
    moved_data = zboot("data", "rebase", "pcd2", "--to", "games")["data"]
    assert moved_data["moved"] and moved_data["source"] == f"{root}/images/games@v2"
    assert read(lab, portal, two, os_lun + 1, tmp_path / "data2.raw")[:MIB] == games_v2
    assert read(lab, portal, two, os_lun, tmp_path / "os2.raw") == os_before
    shown = zboot("show", "pcd2")["data"]
    assert shown["data_disk"]["origin"] == f"{root}/images/games@v2"
    assert moved_data["archive"].rsplit("/", 1)[1] in [a["name"] for a in shown["archives"]]
    assert zboot("data", "rebase", "pcd2", "--to", "games")["data"]["moved"] is False
    no_data = zboot("data", "rebase", "pcd3", "--to", "games", code=4)
    assert "has no data disk" in no_data["errors"][0]["message"]
    # data reset: pcd1's disk (written above) empty again, pcd2's a fresh clone
    # of the version it is on; both old ones archived
    fill(lab, f"{root}/data/pcd2", os.urandom(MIB))
    reset = zboot("data", "reset", "pcd1", "pcd2")["data"]["hosts"]
    assert [(h["moved"], h["source"]) for h in reset] == [
        (True, ""),
        (True, f"{root}/images/games@v2"),
    ]
    assert read(lab, portal, one, os_lun + 1, tmp_path / "data1.raw") == bytes(12 * MIB)
    assert read(lab, portal, two, os_lun + 1, tmp_path / "data2.raw")[:MIB] == games_v2

    # a host whose data disk name is taken is refused, nothing made
    ssh(lab, ["zfs", "create", "-s", "-V", "1M", f"{root}/data/pcd4"])
    refused_clone = zboot(
        "clone", "gold", "pcd4", "--mac", "52:54:00:da:00:04", "--data-disk", "8M", code=4
    )
    assert "exists already" in refused_clone["errors"][0]["message"]
    assert "pcd4" not in {h["name"] for h in zboot("list")["data"]}
    too_small = zboot(
        "clone", "gold", "pcd5", "--mac", "52:54:00:da:00:05", "--data-disk", "1M", code=2
    )
    assert "too small" in too_small["errors"][0]["message"]
    ssh(lab, ["zfs", "destroy", f"{root}/data/pcd4"])

    zboot("destroy", "pcd1", "pcd2", "pcd3", "--yes")
    left = ssh_text(lab, ["zfs", "list", "-H", "-r", "-t", "volume", "-o", "name", root]).split()
    assert left == [f"{root}/images/games", f"{root}/images/gold"]  # no data disk left
