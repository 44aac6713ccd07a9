"""zboot's LIO agent run against an in-memory rtslib (fake_rtslib.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from agents import agent_request
from fake_rtslib import RTSLibBrokenLink, StorageObject, World, export, run_agent

from zboot.remote.base import Result
from zboot.targets.base import DATA_SUFFIX, Export, data_serial, disk_serial
from zboot.targets.lio import AGENT, PREFIX, LioEngine
from zboot.testing.recording import RecordingRunner

DEVICE = "/dev/zvol/tank/zboot/hosts/pc01"
TARGET = "iqn.2026-11.local.zboot:pc01"
INITIATOR = "iqn.2010-04.org.ipxe:pc01"


def apply(world: World, tmp_path: Path, delete: list[str], **more: object) -> object:
    request = {"op": "apply", "create": [], "delete": delete, "lun": 0}
    request["portal"] = ["127.0.0.1", 3260]
    request |= {"prefix": PREFIX, "data_suffix": DATA_SUFFIX}
    return run_agent(world, {**request, **more}, tmp_path / "lock")


def observe(world: World, tmp_path: Path) -> dict[str, Any]:
    request = {"op": "observe", "prefix": PREFIX, "data_suffix": DATA_SUFFIX}
    found: dict[str, Any] = run_agent(world, request, tmp_path / "lock")
    return found


def server(world: World, tmp_path: Path) -> RecordingRunner:
    """A server whose python3 runs the agent it is sent against world."""

    def respond(argv: tuple[str, ...], stdin: bytes | None) -> Result:
        answer = run_agent(world, agent_request(stdin, AGENT), tmp_path / "lock")
        return Result(argv, 0, json.dumps(answer).encode(), b"")

    return RecordingRunner(respond)


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
    found = observe(world, tmp_path)
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


def disks(tmp_path: Path, host: str) -> tuple[str, str]:
    """An OS and a data "device" that exist (the agent waits for its devices)."""
    os_disk, data_disk = tmp_path / host, tmp_path / f"{host}-data"
    os_disk.touch()
    data_disk.touch()
    return str(os_disk), str(data_disk)


def test_a_data_disk_is_the_lun_after_the_os_disk_for_the_same_initiator(
    tmp_path: Path,
) -> None:
    world = World()
    device, data = disks(tmp_path, "pc01")
    with_data = Export("pc01", TARGET, device, INITIATOR, data_device=data)
    engine = LioEngine(server(world, tmp_path))
    engine.apply(create=[with_data])
    [target] = world.targets
    [tpg] = target.tpgs
    assert [(lun.lun, lun.storage_object.name) for lun in tpg.luns] == [
        (0, "zboot-pc01"),
        (1, "zboot-pc01.data"),
    ]
    assert {so.name: (so.udev_path, so.wwn) for so in world.stores} == {
        "zboot-pc01": (device, disk_serial("pc01")),
        "zboot-pc01.data": (data, data_serial("pc01")),
    }
    [acl] = tpg.node_acls  # one initiator, both LUNs mapped for it
    assert acl.node_wwn == INITIATOR
    assert [(m.mapped_lun, m.tpg_lun) for m in acl.mapped_luns] == [
        (0, tpg.luns[0]),
        (1, tpg.luns[1]),
    ]
    assert engine.exports() == {TARGET: with_data}


def test_an_export_without_a_data_disk_reads_back_without_one(tmp_path: Path) -> None:
    """Made again without its data disk, the host's target has one LUN, and
    the old data store is gone (it would keep the data zvol busy)."""
    world = World()
    device, data = disks(tmp_path, "pc01")
    export(world, "pc01", TARGET, device, INITIATOR, data_device=data)
    engine = LioEngine(server(world, tmp_path))
    assert engine.exports()[TARGET].data_device == data
    plain = Export("pc01", TARGET, device, INITIATOR)
    engine.apply(create=[plain])
    assert engine.exports() == {TARGET: plain}
    assert [so.name for so in world.stores] == ["zboot-pc01"]
    assert engine.exports()[TARGET] != Export("pc01", TARGET, device, INITIATOR, data_device=data)


def test_deleting_a_target_removes_its_data_store(tmp_path: Path) -> None:
    world = World()
    export(world, "pc01", TARGET, DEVICE, INITIATOR, data_device="/dev/zvol/tank/zboot/data/pc01")
    apply(world, tmp_path, [TARGET])
    assert world.stores == [] and world.targets == []


def test_a_data_store_left_without_its_target_is_removed_with_the_target(tmp_path: Path) -> None:
    """A restart that restores stores but not targets leaves both of a host's
    stores holding its zvols: the delete destroy sends removes both."""
    world = World()
    StorageObject(world, "zboot-pc01", DEVICE)
    StorageObject(world, "zboot-pc01.data", "/dev/zvol/tank/zboot/data/pc01")
    apply(world, tmp_path, [TARGET])
    assert world.stores == []


def test_a_data_store_is_its_hosts_not_a_host_of_its_own(tmp_path: Path) -> None:
    """`zboot-pc01.data` is pc01's data disk: no export of a host "pc01.data";
    unused, it is an orphan store like any other, and removed by name."""
    world = World()
    export(world, "pc01", TARGET, DEVICE, INITIATOR, data_device="/dev/zvol/tank/zboot/data/pc01")
    StorageObject(world, "zboot-pc02.data", "/dev/zvol/tank/zboot/data/pc02")
    found = observe(world, tmp_path)
    assert [(e["host"], e["data_device"]) for e in found["exports"].values()] == [
        ("pc01", "/dev/zvol/tank/zboot/data/pc01")
    ]
    assert found["orphans"] == {"zboot-pc02.data": "/dev/zvol/tank/zboot/data/pc02"}
    apply(world, tmp_path, [], stores=["zboot-pc02.data", "zboot-pc01.data"])  # pc01's is in use
    assert sorted(so.name for so in world.stores) == ["zboot-pc01", "zboot-pc01.data"]


def test_a_read_walks_again_when_a_target_vanishes_under_it(tmp_path: Path) -> None:
    """A read takes no lock: a target removed while it walks configfs makes
    it walk again, not fail (seen when doctor ran beside another zboot)."""
    world = World()
    export(world, "pc01", TARGET, DEVICE, INITIATOR)
    world.vanishing = 2
    found = observe(world, tmp_path)
    assert list(found["exports"]) == [TARGET]
    assert world.vanishing == 0
    world.vanishing = 6  # never settles: the last walk's error, not a wrong answer
    with pytest.raises(RTSLibBrokenLink):
        observe(world, tmp_path)
    assert world.vanishing == 1  # five walks, then it gave up
