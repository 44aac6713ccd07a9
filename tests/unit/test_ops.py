"""The workflows' decisions and the exact commands they send, on a recorded
ZFS state (no server)."""

from __future__ import annotations

import pytest
from zfs_samples import GET, LIST

from zboot.config import Config
from zboot.errors import Conflict, InvalidInput, NotFound
from zboot.ops import hosts, images
from zboot.remote.base import RecordingRunner, Result
from zboot.zfs.cli import ZfsCli

CONFIG = Config()


def world() -> RecordingRunner:
    def respond(argv: tuple[str, ...], _: bytes | None) -> Result:
        if argv[:2] == ("zfs", "list") and "-r" in argv:
            return Result(argv, 0, LIST.encode(), b"")
        if argv[:2] == ("zfs", "get"):
            return Result(argv, 0, GET.encode(), b"")
        if argv[:2] == ("zfs", "list"):  # exists(name)
            known = {line.split("\t")[0] for line in LIST.splitlines()}
            return Result(argv, 0 if argv[-1] in known else 1, b"", b"")
        return Result(argv, 0, b"", b"")
    return RecordingRunner(respond)


def changes(runner: RecordingRunner) -> list[tuple[str, ...]]:
    return [c for c in runner.commands if c[:2] not in (("zfs", "list"), ("zfs", "get"))]


def test_clone_records_the_host_in_user_properties() -> None:
    runner = world()
    record = hosts.clone_host(ZfsCli(runner), CONFIG, "golden", "PC02", "52-54-00-AA-00-02")
    assert record["origin"] == "tank/zboot/images/golden@v1"
    [clone] = changes(runner)
    assert clone[:2] == ("zfs", "clone") and clone[-2:] == (
        "tank/zboot/images/golden@v1", "tank/zboot/hosts/pc02")
    assert "org.zboot:mac=52:54:00:aa:00:02" in clone
    assert "org.zboot:initiator=iqn.2010-04.org.ipxe:pc02" in clone


def test_clone_refuses_a_mac_in_use_and_changes_nothing() -> None:
    runner = world()
    with pytest.raises(Conflict, match="pc01"):
        hosts.clone_host(ZfsCli(runner), CONFIG, "golden", "pc02", "52:54:00:aa:00:01")
    assert changes(runner) == []


def test_clone_of_a_missing_version_is_not_found() -> None:
    runner = world()
    with pytest.raises(NotFound, match="v9"):
        hosts.clone_host(ZfsCli(runner), CONFIG, "golden@v9", "pc02", "52:54:00:aa:00:02")
    assert changes(runner) == []


@pytest.mark.parametrize("bad", ["pc;reboot", "$(id)", "a b", "../x", "pc@1", "-rf"])
def test_hostile_host_names_run_nothing(bad: str) -> None:
    runner = world()
    with pytest.raises(InvalidInput):
        hosts.clone_host(ZfsCli(runner), CONFIG, "golden", bad, "52:54:00:aa:00:02")
    assert runner.commands == []


def test_rollback_archives_the_current_disk_instead_of_destroying_it() -> None:
    runner = world()
    result = hosts.rollback_host(ZfsCli(runner), CONFIG, "pc01", None)
    done = changes(runner)
    assert [c[:2] for c in done] == [("zfs", "rename"), ("zfs", "set"), ("zfs", "clone")]
    assert done[0][2:] == ("tank/zboot/hosts/pc01", result["archive"])
    assert result["archive"].startswith("tank/zboot/archive/pc01-")
    assert done[2][-2:] == ("tank/zboot/images/golden@v1", "tank/zboot/hosts/pc01")
    assert not any(c[1] == "destroy" for c in done)


def test_rollback_with_discard_destroys_only_the_archive() -> None:
    runner = world()
    result = hosts.rollback_host(ZfsCli(runner), CONFIG, "pc01", None, discard=True)
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
