"""The workflows' decisions and the exact commands they send, on a recorded
ZFS state (no server)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from zfs_samples import GET, LIST

from zboot.config import Config
from zboot.errors import Conflict, InvalidInput, NotFound
from zboot.names import HostName
from zboot.ops import hosts, images, importer
from zboot.ops.context import Context
from zboot.ops.destroy import destroy_in_order
from zboot.ops.hostfile import HostSpec
from zboot.ops.provision import Provisioned, clone
from zboot.ops.rollback import rollback_hosts
from zboot.remote.base import Result
from zboot.targets.base import NoEngine
from zboot.testing.recording import RecordingRunner
from zboot.zfs.cli import ZfsCli
from zboot.zfs.program import DESTROY

CONFIG = Config()


def world(listed: str = LIST, got: str = GET, written: int = 4096) -> RecordingRunner:
    def respond(argv: tuple[str, ...], data: bytes | None) -> Result:
        if argv[:2] == ("zfs", "get") and "written" in argv:
            return Result(argv, 0, f"{written}\n".encode(), b"")
        if argv[:2] == ("zfs", "list") and "-r" in argv:
            return Result(argv, 0, listed.encode(), b"")
        if argv[:2] == ("zfs", "get"):
            return Result(argv, 0, got.encode(), b"")
        if argv[:2] == ("zfs", "program") and data == DESTROY.encode():  # every dataset goes
            return Result(argv, 0, json.dumps({"return": dict.fromkeys(argv[5:], 0)}).encode(), b"")
        if argv[:2] == ("zfs", "list"):  # exists(name)
            known = {line.split("\t")[0] for line in LIST.splitlines()}
            return Result(argv, 0 if argv[-1] in known else 1, b"", b"")
        return Result(argv, 0, b"", b"")

    return RecordingRunner(respond)


def changes(runner: RecordingRunner) -> list[tuple[str, ...]]:
    return [c for c in runner.commands if c[:2] not in (("zfs", "list"), ("zfs", "get"))]


def clone_one(runner: RecordingRunner, image: str, host: str, mac: str) -> Provisioned:
    [one] = clone(Context(CONFIG, runner, ZfsCli(runner), NoEngine), image, [HostSpec(host, mac)])
    if one.error is not None:
        raise one.error
    return one


def rollback_one(runner: RecordingRunner, discard: bool = False) -> dict[str, str]:
    [one] = rollback_hosts(ZfsCli(runner), CONFIG, [HostName("pc01")], None, discard)
    if one.error is not None:
        raise one.error
    return one.result()


def test_clone_records_the_host_in_user_properties() -> None:
    runner = world()
    record = clone_one(runner, "golden", "PC02", "52-54-00-AA-00-02").record or {}
    assert record["origin"] == "tank/zboot/images/golden@v1"
    [clone, ready] = changes(runner)
    assert ready[:2] == ("zfs", "set") and "org.zboot:state=ready" in ready
    assert clone[:2] == ("zfs", "clone") and clone[-2:] == (
        "tank/zboot/images/golden@v1",
        "tank/zboot/hosts/pc02",
    )
    assert "org.zboot:mac=52:54:00:aa:00:02" in clone
    assert "org.zboot:initiator=iqn.2010-04.org.ipxe:pc02" in clone


def test_clone_refuses_a_mac_in_use_and_changes_nothing() -> None:
    runner = world()
    with pytest.raises(Conflict, match="pc01"):
        clone_one(runner, "golden", "pc02", "52:54:00:aa:00:01")
    assert changes(runner) == []


def test_clone_of_a_missing_version_is_not_found() -> None:
    runner = world()
    with pytest.raises(NotFound, match="v9"):
        clone_one(runner, "golden@v9", "pc02", "52:54:00:aa:00:02")
    assert changes(runner) == []


@pytest.mark.parametrize("bad", ["pc;reboot", "$(id)", "a b", "../x", "pc@1", "-rf"])
def test_hostile_host_names_run_nothing(bad: str) -> None:
    runner = world()
    with pytest.raises(InvalidInput):
        clone_one(runner, "golden", bad, "52:54:00:aa:00:02")
    assert runner.commands == []


def test_rollback_archives_the_current_disk_instead_of_destroying_it() -> None:
    runner = world()
    result = rollback_one(runner)
    done = changes(runner)
    assert [c[:2] for c in done] == [
        ("zfs", "set"),
        ("zfs", "rename"),
        ("zfs", "clone"),
        ("zfs", "set"),
    ]
    # the plan goes onto the disk first, so a cut-short rollback can be finished
    assert "org.zboot:state=rolling-back" in done[0]
    assert f"org.zboot:rollback-archive={result['archive']}" in done[0]
    assert done[1][2:] == ("tank/zboot/hosts/pc01", result["archive"])
    assert result["archive"].startswith("tank/zboot/archive/pc01-")
    assert done[2][-2:] == ("tank/zboot/images/golden@v1", "tank/zboot/hosts/pc01")
    # not ready until its export is back: the caller marks it
    assert "org.zboot:state=rolling-back" in done[2]
    assert "org.zboot:step=rollback:cloned" in done[2]
    assert "org.zboot:mac=52:54:00:aa:00:01" in done[2]
    # the old disk is marked as an archive after the new one exists
    assert done[3][-1] == result["archive"] and "org.zboot:kind=archive" in done[3]
    # the new disk says where it came from, so a re-run that only has to
    # export it again can report it
    assert f"org.zboot:rollback-to={result['source']}" in done[2]
    assert not any(c[1] == "destroy" for c in done)


# The state after `zfs rename` of a rollback, before the new clone: pc01's
# disk sits in the archive, still marked as a host, with the plan on it.
ARCHIVED = "tank/zboot/archive/pc01-20261121-101010"
CUT_SHORT_LIST = LIST.replace("tank/zboot/hosts/pc01\t", f"{ARCHIVED}\t")
CUT_SHORT_GET = GET.replace("tank/zboot/hosts/pc01\t", f"{ARCHIVED}\t").replace(
    "org.zboot:state\tready", "org.zboot:state\trolling-back"
) + (
    f"{ARCHIVED}\torg.zboot:host\tpc01\n"
    f"{ARCHIVED}\torg.zboot:rollback-to\ttank/zboot/images/golden@v1\n"
    f"{ARCHIVED}\torg.zboot:rollback-archive\t{ARCHIVED}\n"
)


def test_a_rollback_cut_short_is_finished_by_the_next_one() -> None:
    runner = world(CUT_SHORT_LIST, CUT_SHORT_GET)
    with pytest.raises(NotFound, match="cut short"):
        hosts.show_host(Context(CONFIG, runner, ZfsCli(runner), NoEngine), HostName("pc01"))
    result = rollback_one(runner)
    done = changes(runner)
    assert [c[:2] for c in done] == [("zfs", "clone"), ("zfs", "set")]
    assert done[0][-2:] == ("tank/zboot/images/golden@v1", "tank/zboot/hosts/pc01")
    assert "org.zboot:mac=52:54:00:aa:00:01" in done[0]
    assert "org.zboot:kind=archive" in done[1] and done[1][-1] == ARCHIVED
    assert result == {"host": "pc01", "source": "tank/zboot/images/golden@v1", "archive": ARCHIVED}


def test_rollback_with_discard_destroys_only_the_archive() -> None:
    runner = world()
    result = rollback_one(runner, discard=True)
    assert changes(runner)[-1][:2] == ("zfs", "destroy")
    assert result["archive"] == ""


def test_image_with_dependent_hosts_is_not_destroyed() -> None:
    runner = world()
    with pytest.raises(Conflict, match="pc01"):
        images.destroy_image(ZfsCli(runner), CONFIG, "golden")
    with pytest.raises(Conflict, match="pc01"):
        images.destroy_image(ZfsCli(runner), CONFIG, "golden@v1")
    assert changes(runner) == []


def test_next_version_number() -> None:
    runner = world()
    assert images.snapshot_image(ZfsCli(runner), CONFIG, "golden", None, "m") == "v2"
    assert changes(runner)[-1][-1] == "tank/zboot/images/golden@v2"


HALF_GET = GET.replace(
    "tank/zboot/images/golden\torg.zboot:created",
    "tank/zboot/images/golden\torg.zboot:state\timporting\n"
    "tank/zboot/images/golden\torg.zboot:created",
)


def test_a_half_import_cannot_be_snapshotted() -> None:
    runner = world(LIST, HALF_GET)
    with pytest.raises(Conflict, match="did not finish"):
        images.snapshot_image(ZfsCli(runner), CONFIG, "golden", None, None)
    assert changes(runner) == []


def test_importing_again_replaces_a_half_import(tmp_path: Path) -> None:
    source = tmp_path / "disk.raw"
    source.write_bytes(b"\1" * 4096 + bytes(1024 * 1024 - 4096))
    runner = world(LIST, HALF_GET)
    result = importer.import_image(
        runner, ZfsCli(runner), CONFIG, "golden", str(source), "raw", None
    )
    done = [c for c in changes(runner) if c[0] == "zfs"]
    assert done[0] == ("zfs", "destroy", "-r", "tank/zboot/images/golden")
    assert done[1][:2] == ("zfs", "create") and "org.zboot:state=importing" in done[1]
    assert done[-1] == ("zfs", "set", "org.zboot:state=ready", "tank/zboot/images/golden")
    assert result["written"] == 1024 * 1024


def test_a_finished_image_is_never_replaced_by_an_import(tmp_path: Path) -> None:
    source = tmp_path / "disk.raw"
    source.write_bytes(bytes(4096))
    runner = world()
    with pytest.raises(Conflict, match="exists already"):
        importer.import_image(runner, ZfsCli(runner), CONFIG, "golden", str(source), "raw", None)
    assert changes(runner) == []


def test_destroy_retries_a_zvol_the_engine_just_released(monkeypatch: pytest.MonkeyPatch) -> None:
    busy = [2]  # "dataset is busy" twice, then it goes

    def respond(argv: tuple[str, ...], _: bytes | None) -> Result:
        if argv[:2] == ("zfs", "destroy") and busy[0]:
            busy[0] -= 1
            return Result(argv, 1, b"", b"cannot destroy 'tank/zboot/hosts/pc01': dataset is busy")
        return Result(argv, 0, b"", b"")

    monkeypatch.setattr("zboot.ops.hosts.time.sleep", lambda _: None)
    runner = RecordingRunner(respond)
    assert destroy_in_order(ZfsCli(runner), ["tank/zboot/hosts/pc01"]) == ["tank/zboot/hosts/pc01"]
    assert len(runner.commands) == 3


def test_a_zvol_that_stays_busy_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def respond(argv: tuple[str, ...], _: bytes | None) -> Result:
        return Result(argv, 1, b"", b"cannot destroy 'x': dataset is busy")

    monkeypatch.setattr("zboot.ops.hosts.time.sleep", lambda _: None)
    with pytest.raises(Conflict, match="busy"):
        destroy_in_order(ZfsCli(RecordingRunner(respond)), ["x"], busy_retries=3)
