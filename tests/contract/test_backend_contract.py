"""One contract, two backends (zfs(8) and libzfs_core): the same operations
give the same datasets, properties and errors on a real pool."""

from __future__ import annotations

import pytest

from zboot.errors import Conflict, NotFound
from zboot.remote.local import LocalRunner
from zboot.zfs import program
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


def test_set_many_sets_each_dataset_in_one_program(zfs: ZfsCli, root: str) -> None:
    for name in ("a", "b"):
        zfs.create_volume(f"{root}/{name}", MIB)
    errors = zfs.set_many(
        [
            (f"{root}/a", {"state": "ready", "note": "a=b c"}),
            (f"{root}/missing", {"state": "ready"}),
            (f"{root}/b", {"state": "ready", "note": ""}),
        ]
    )
    assert errors[0] is None and errors[2] is None and isinstance(errors[1], NotFound)
    found = zfs.datasets(root)
    assert found[f"{root}/a"].record() == {"state": "ready", "note": "a=b c"}
    assert found[f"{root}/b"].prop("state") == "ready"
    zfs.mark([f"{root}/a", f"{root}/b"], {"state": "marked"})
    assert {zfs.datasets(root)[f"{root}/{n}"].prop("state") for n in "ab"} == {"marked"}


def test_a_zfs_without_set_prop_is_told_and_nothing_is_set(root: str) -> None:
    """The program's own check, run against a call no ZFS has (as one
    without zfs.sync.set_prop would see set_prop)."""
    runner = LocalRunner()
    ZfsCli(runner).create_volume(f"{root}/a", MIB)
    script = program.SET_PROPS.replace("zfs.sync.set_prop == nil", "zfs.sync.no_such == nil")
    argv = program.set_props_argv(root.split("/")[0], [(f"{root}/a", {"org.zboot:x": "1"})])
    ran = runner.run(argv, input=script.encode())
    assert program.parse_set(ran.text, [f"{root}/a"]) is None
    assert ZfsCli(runner).datasets(root)[f"{root}/a"].prop("x") is None
