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


def test_a_batch_reads_lio_once_whatever_its_size(tmp_path: Path) -> None:
    """A rollback of 20 hosts makes their 20 exports again (each create
    deletes the old export first): the agent lists the targets and the
    stores once, not once per host (each listing walks configfs; the lab's
    batch of 20 went from 13 s to 5 s)."""
    world = World()
    hosts = [f"pc{n:02}" for n in range(20)]
    for host in hosts:
        export(world, host, f"iqn.2026-11.local.zboot:{host}", f"/dev/{host}", INITIATOR)
    create = [
        {
            "host": host,
            "target": f"iqn.2026-11.local.zboot:{host}",
            "device": str(tmp_path),  # a path that exists: the agent waits for the device
            "initiator": INITIATOR,
            "serial": host,
            "storage": f"zboot-{host}",
            "chap": None,
        }
        for host in hosts
    ]
    world.walks = 0
    apply(world, tmp_path, [], create=create)
    assert world.walks <= 2, world.walks
    assert sorted(t.wwn.rsplit(":", 1)[1] for t in world.targets) == hosts
    assert sorted(so.name for so in world.stores) == [f"zboot-{h}" for h in hosts]
    assert world.saves == 1
