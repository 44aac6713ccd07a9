"""One contract, two backends (zfs(8) and libzfs_core): the same operations
give the same datasets, properties and errors on a real pool."""

from __future__ import annotations

import pytest

from zboot.errors import Conflict, NotFound
from zboot.zfs.cli import ZfsCli

MIB = 1024 * 1024


def test_volume_snapshot_clone_and_properties(zfs: ZfsCli, root: str) -> None:
    zfs.create_volume(f"{root}/img", 4 * MIB, props={"kind": "image"})
    zfs.snapshot([f"{root}/img@v1"], {"message": "first"})
    zfs.clone(f"{root}/img@v1", f"{root}/host", {"kind": "host", "mac": "52:54:00:00:00:01"})
    found = zfs.datasets(root)
    assert found[f"{root}/img"].volsize == 4 * MIB
    assert found[f"{root}/img@v1"].prop("message") == "first"
    host = found[f"{root}/host"]
    assert host.origin == f"{root}/img@v1"
    assert host.prop("kind") == "host" and host.prop("mac") == "52:54:00:00:00:01"


def test_one_call_snapshots_several_datasets(zfs: ZfsCli, root: str) -> None:
    for name in ("a", "b"):
        zfs.create_volume(f"{root}/{name}", MIB)
    zfs.snapshot([f"{root}/a@s", f"{root}/b@s"])
    found = zfs.datasets(root)
    assert f"{root}/a@s" in found and f"{root}/b@s" in found


def test_rename_and_promote(zfs: ZfsCli, root: str) -> None:
    zfs.create_volume(f"{root}/img", MIB)
    zfs.snapshot([f"{root}/img@v1"])
    zfs.clone(f"{root}/img@v1", f"{root}/host")
    zfs.snapshot([f"{root}/host@p1"])
    zfs.rename(f"{root}/host", f"{root}/old")
    zfs.clone(f"{root}/old@p1", f"{root}/host")
    zfs.promote(f"{root}/host")
    found = zfs.datasets(root)
    assert f"{root}/host@p1" in found and f"{root}/old@p1" not in found
    assert found[f"{root}/old"].origin == f"{root}/host@p1"


def test_recursive_destroy_takes_snapshots_along(zfs: ZfsCli, root: str) -> None:
    zfs.create_volume(f"{root}/img", MIB)
    zfs.snapshot([f"{root}/img@v1"])
    zfs.snapshot([f"{root}/img@v2"])
    zfs.destroy(f"{root}/img@v2")
    assert f"{root}/img@v2" not in zfs.datasets(root)
    zfs.destroy(f"{root}/img", recursive=True)
    assert not zfs.exists(f"{root}/img")


def test_errors_are_the_same_kind(zfs: ZfsCli, root: str) -> None:
    zfs.create_volume(f"{root}/img", MIB)
    zfs.snapshot([f"{root}/img@v1"])
    zfs.clone(f"{root}/img@v1", f"{root}/host")
    with pytest.raises(Conflict):
        zfs.clone(f"{root}/img@v1", f"{root}/host")  # exists
    with pytest.raises(Conflict):
        zfs.snapshot([f"{root}/img@v1"])  # exists
    with pytest.raises(NotFound):
        zfs.clone(f"{root}/img@nope", f"{root}/other")
    with pytest.raises(NotFound):
        zfs.destroy(f"{root}/missing")
    with pytest.raises(Conflict):
        zfs.destroy(f"{root}/img@v1")  # has a dependent clone
