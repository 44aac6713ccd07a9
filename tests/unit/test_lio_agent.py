"""zboot's LIO agent run against an in-memory rtslib (fake_rtslib.py)."""

from __future__ import annotations

from pathlib import Path

from fake_rtslib import StorageObject, World, export, run_agent

from zboot.targets.lio import PREFIX

DEVICE = "/dev/zvol/tank/zboot/hosts/pc01"
TARGET = "iqn.2026-11.local.zboot:pc01"
INITIATOR = "iqn.2010-04.org.ipxe:pc01"


def apply(world: World, tmp_path: Path, delete: list[str], **more: object) -> object:
    request = {"op": "apply", "create": [], "delete": delete, "lun": 0}
    request["portal"] = ["127.0.0.1", 3260]
    return run_agent(world, {**request, **more, "prefix": PREFIX}, tmp_path / "lock")


def test_deleting_a_target_that_is_gone_removes_its_orphan_store(tmp_path: Path) -> None:
    """After a restart LIO held zboot-pc01 on pc01's zvol with no target
    (so `zfs destroy` of the zvol failed "dataset is busy"): the delete
    destroy sends removes the store all the same."""
    world = World()
    StorageObject(world, "zboot-pc01", DEVICE)
    StorageObject(world, "zboot-image_golden", "/dev/zvol/tank/zboot/images/golden")
    StorageObject(world, "theirs", "/dev/sdb")  # not zboot's
    apply(world, tmp_path, [TARGET, "iqn.2026-11.local.zboot:image.golden"])
    assert [so.name for so in world.stores] == ["theirs"]


def test_a_store_a_lun_uses_is_never_removed_as_an_orphan(tmp_path: Path) -> None:
    """pc01's store, in use by its target, stays when another target of
    the same host name (another root) is deleted, or when named to go."""
    world = World()
    export(world, "pc01", TARGET, DEVICE, INITIATOR)
    apply(world, tmp_path, ["iqn.2026-11.other.zboot:pc01"], stores=["zboot-pc01"])
    assert [so.name for so in world.stores] == ["zboot-pc01"] and len(world.targets) == 1


def test_observe_reports_orphan_stores_and_chap(tmp_path: Path) -> None:
    world = World()
    acl = export(world, "pc01", TARGET, DEVICE, INITIATOR)
    acl.chap_userid, acl.chap_password = INITIATOR, "Kx7Vq2LmPa9RtY4w"
    StorageObject(world, "zboot-pc02", "/dev/zvol/tank/zboot/hosts/pc02")
    found = run_agent(world, {"op": "observe", "prefix": PREFIX}, tmp_path / "lock")
    assert found["orphans"] == {"zboot-pc02": "/dev/zvol/tank/zboot/hosts/pc02"}
    assert found["exports"][TARGET]["chap"] == [INITIATOR, "Kx7Vq2LmPa9RtY4w", None, None]
    apply(world, tmp_path, [], stores=["zboot-pc02"])
    assert [so.name for so in world.stores] == ["zboot-pc01"]
