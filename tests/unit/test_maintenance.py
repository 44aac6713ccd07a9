"""Maintenance without a server: the image exported to one host alone, one
host per image, and leaving it refused while in use, else a new version."""

from __future__ import annotations

from collections.abc import Iterable

import pytest
from test_ops import CONFIG, changes, world
from test_provision import Engine
from zfs_samples import GET

from zboot.errors import Conflict
from zboot.ops import maintenance
from zboot.ops.state import Host, Image, read_state
from zboot.testing.recording import RecordingRunner
from zboot.zfs.cli import ZfsCli

CONFIG_WITH_IQN = type(CONFIG)(iqn_base="iqn.2026-11.lab.zboot")
INITIATOR = "iqn.2010-04.org.ipxe:pc01"
GOT = GET + f"tank/zboot/hosts/pc01\torg.zboot:initiator\t{INITIATOR}\n"


class Busy(Engine):
    def sessions(self, targets: Iterable[str]) -> dict[str, list[str]]:
        return {"iqn.2026-11.lab.zboot:image.golden": [INITIATOR]}


def setup(got: str = GOT, written: int = 4096) -> tuple[RecordingRunner, ZfsCli, Host, Image]:
    runner = world(got=got, written=written)
    zfs = ZfsCli(runner)
    state = read_state(zfs, CONFIG_WITH_IQN)
    return runner, zfs, state.host("pc01"), state.image("golden")


def test_entering_exports_the_image_itself_to_the_host() -> None:
    runner, zfs, host, image = setup()
    engine = Engine()
    export = maintenance.enter(zfs, CONFIG_WITH_IQN, engine, host, image, host.record, None)
    assert export.target == "iqn.2026-11.lab.zboot:image.golden"
    assert export.device == "/dev/zvol/tank/zboot/images/golden"
    assert export.initiator == INITIATOR and export.storage == "zboot-image_golden"
    assert engine.calls == [["image_golden"]]
    assert ("zfs", "set", "org.zboot:maintenance=pc01", "tank/zboot/images/golden") in changes(
        runner
    )


def test_a_second_host_cannot_take_an_image_in_maintenance() -> None:
    held = GOT + "tank/zboot/images/golden\torg.zboot:maintenance\tpc07\n"
    runner, zfs, host, image = setup(held)
    engine = Engine()
    with pytest.raises(Conflict, match="pc07"):
        maintenance.enter(zfs, CONFIG_WITH_IQN, engine, host, image, host.record, None)
    assert engine.calls == [] and changes(runner) == []


def test_leaving_while_in_use_is_refused_and_changes_nothing() -> None:
    runner, _zfs, host, image = setup()
    with pytest.raises(Conflict, match="in use"):
        maintenance.check_leave(CONFIG_WITH_IQN, Busy(), host, image, host.record, force=False)
    maintenance.check_leave(CONFIG_WITH_IQN, Busy(), host, image, host.record, force=True)
    assert changes(runner) == []


def test_leaving_snapshots_the_image_as_the_next_version() -> None:
    runner, zfs, host, image = setup()
    engine = Engine()
    version = maintenance.leave(zfs, CONFIG_WITH_IQN, engine, host, image, host.record, "KB5030211")
    assert version == "v2"
    snap = next(c for c in changes(runner) if c[:2] == ("zfs", "snapshot"))
    assert snap[-1] == "tank/zboot/images/golden@v2" and "org.zboot:message=KB5030211" in snap
    assert ("zfs", "set", "org.zboot:maintenance=", "tank/zboot/images/golden") in changes(runner)


def test_leaving_again_after_a_cut_short_leave_makes_no_second_version() -> None:
    """Nothing written since the latest version: that version is the one."""
    runner, zfs, host, image = setup(written=0)
    version = maintenance.leave(zfs, CONFIG_WITH_IQN, Engine(), host, image, host.record, None)
    assert version == image.versions[-1].name
    assert not [c for c in changes(runner) if c[:2] == ("zfs", "snapshot")]
    assert ("zfs", "set", "org.zboot:maintenance=", "tank/zboot/images/golden") in changes(runner)
