"""Data disks on a recorded ZFS state: what clone makes and in which order,
what destroy takes with the host, how `data rebase` moves a data disk and
finishes one it left half-moved. (On the real server and engines:
tests/lab/test_data_disks.py; counted by real clients: tests/e2e.)"""

from __future__ import annotations

from dataclasses import replace

from test_ops import CONFIG, changes, world
from zfs_samples import GET, LIST

from zboot.boot.ipxe import BootTarget, render
from zboot.errors import Conflict
from zboot.names import HostName
from zboot.ops.context import Context
from zboot.ops.data import data_rebase
from zboot.ops.destroy import destroy
from zboot.ops.doctor import Survey, check
from zboot.ops.hostfile import HostSpec
from zboot.ops.provision import DataDisk, clone
from zboot.ops.state import read_state
from zboot.targets.base import NoEngine
from zboot.testing.recording import RecordingRunner
from zboot.zfs.cli import ZfsCli

DATA = "tank/zboot/data/pc01"
GAMES = (
    "tank/zboot/images/games\tvolume\t69632\t69632\t16777216\t-\t1795239150\t1.33\n"
    "tank/zboot/images/games@v1\tsnapshot\t0\t69632\t16777216\t-\t1795239181\t1.33\n"
    "tank/zboot/images/games@v2\tsnapshot\t0\t69632\t16777216\t-\t1795239182\t1.33\n"
)
GAMES_GET = "tank/zboot/images/games\torg.zboot:kind\timage\n"


def games_world() -> RecordingRunner:
    """LIST and GET with a data image, games, at v1 and v2."""
    return world(
        LIST.replace("tank/zboot/archive\t", GAMES + "tank/zboot/archive\t"), GET + GAMES_GET
    )


def context(runner: RecordingRunner) -> Context:
    return Context(CONFIG, runner, ZfsCli(runner), NoEngine)


def with_data(origin: str = "tank/zboot/images/games@v1", kind: str = "data") -> RecordingRunner:
    listed = LIST.replace("tank/zboot/archive\t", GAMES + "tank/zboot/archive\t") + (
        "tank/zboot/data\tfilesystem\t98304\t98304\t-\t-\t1795239104\t1.00\n"
        f"{DATA}\tvolume\t8192\t69632\t16777216\t{origin}\t1795239247\t1.33\n"
    )
    got = GET + GAMES_GET + "tank/zboot/hosts/pc01\torg.zboot:data\ton\n"
    got += f"{DATA}\torg.zboot:kind\t{kind}\n{DATA}\torg.zboot:host\tpc01\n"
    if origin != "-":  # "-": an empty data disk, made with --data-disk
        got += f"{DATA}\torg.zboot:origin\t{origin}\n"
    return world(listed, got)


def test_a_data_disk_is_made_first_in_the_hosts_chain_and_recorded_on_the_host() -> None:
    runner = world(
        LIST.replace("tank/zboot/archive\t", GAMES + "tank/zboot/archive\t"), GET + GAMES_GET
    )
    specs = [HostSpec("pc02", "52:54:00:aa:00:02")]
    [made] = clone(context(runner), "golden", specs, data=DataDisk(size=64 << 20))
    assert made.error is None and made.record is not None and made.record["data"] == "on"
    chain = [c for c in changes(runner) if c[:2] in (("zfs", "create"), ("zfs", "clone"))]
    assert chain[0][-1] == "tank/zboot/data"  # the parent, made once
    volume, os_disk = chain[1], chain[2]
    assert volume[:6] == ("zfs", "create", "-s", "-V", str(64 << 20), "-o")
    assert volume[-1] == "tank/zboot/data/pc02" and "org.zboot:kind=data" in volume
    assert os_disk[-1] == "tank/zboot/hosts/pc02" and "org.zboot:data=on" in os_disk


def test_a_data_image_clone_records_where_it_came_from() -> None:
    runner = world(
        LIST.replace("tank/zboot/archive\t", GAMES + "tank/zboot/archive\t"), GET + GAMES_GET
    )
    specs = [HostSpec("pc02", "52:54:00:aa:00:02")]
    clone(context(runner), "golden", specs, data=DataDisk(source="games@v1"))
    [data] = [c for c in changes(runner) if c[-1:] == ("tank/zboot/data/pc02",)]
    assert data[:2] == ("zfs", "clone") and data[-2] == "tank/zboot/images/games@v1"
    assert "org.zboot:origin=tank/zboot/images/games@v1" in data


def test_a_taken_data_disk_name_refuses_the_host_and_makes_nothing() -> None:
    runner = with_data()
    specs = [HostSpec("pc01x", "52:54:00:aa:00:09")]
    made = clone(context(runner), "golden", specs, data=DataDisk(size=64 << 20))
    assert made[0].error is None  # another name: fine
    runner = with_data()
    taken = world(
        LIST.replace("tank/zboot/archive\t", GAMES + "tank/zboot/archive\t")
        + "tank/zboot/data/pc02\tvolume\t8192\t69632\t16777216\t-\t1795239247\t1.33\n",
        GET + GAMES_GET,
    )
    [refused] = clone(
        context(taken),
        "golden",
        [HostSpec("pc02", "52:54:00:aa:00:02")],
        data=DataDisk(size=1 << 30),
    )
    assert isinstance(refused.error, Conflict) and "exists already" in refused.error.message
    assert not [c for c in changes(taken) if c[:2] in (("zfs", "create"), ("zfs", "clone"))]


def test_the_script_hooks_the_os_disk_then_the_data_disk_then_boots_the_os_disk() -> None:
    target = BootTarget("pc01", "10.0.2.2:3260", 0, "iqn.x:pc01", "iqn.y:pc01", data=True)
    lines = render("normal", target).splitlines()
    attempt = next(line for line in lines if line.startswith("sanhook --drive 0x80"))
    assert attempt == (
        "sanhook --drive 0x80 iscsi:10.0.2.2::3260:0:iqn.x:pc01 && "
        "sanhook --drive 0x81 iscsi:10.0.2.2::3260:1:iqn.x:pc01 && "
        "sanboot --drive 0x80 && goto booted ||"
    )
    assert lines.index("sanunhook --drive 0x81 ||") < lines.index(attempt)  # a retry starts clean
    install = render("install", target)
    assert "sanhook --drive 0x81 iscsi:10.0.2.2::3260:1:iqn.x:pc01 || goto failed" in install
    plain = render("normal", BootTarget("pc01", "10.0.2.2:3260", 0, "iqn.x:pc01", "iqn.y:pc01"))
    assert "0x81" not in plain  # a host without a data disk: the script as before


def test_destroy_takes_the_data_disk_with_the_host() -> None:
    runner = with_data()
    [gone] = destroy(context(runner), [HostName("pc01")], force=False)
    assert gone.error is None and DATA in gone.datasets
    assert gone.datasets.index(DATA) > gone.datasets.index("tank/zboot/hosts/pc01")


def test_data_rebase_archives_the_data_disk_and_clones_the_version_in_its_place() -> None:
    runner = with_data()
    [moved] = data_rebase(context(runner), [HostName("pc01")], "games", False, False)
    assert moved.error is None and moved.moved
    mark, rename, made = [c for c in changes(runner) if c[1] in ("set", "rename", "clone")]
    assert mark[-1] == DATA and "org.zboot:kind=archive" in mark
    assert "org.zboot:data-rebase-to=tank/zboot/images/games@v2" in mark
    assert rename[:3] == ("zfs", "rename", DATA) and rename[3] == moved.archive
    assert made[-2:] == ("tank/zboot/images/games@v2", DATA)


def test_data_rebase_onto_the_version_it_is_on_changes_nothing() -> None:
    runner = with_data("tank/zboot/images/games@v2")
    [same] = data_rebase(context(runner), [HostName("pc01")], "games@v2", False, False)
    assert same.error is None and not same.moved
    assert changes(runner) == []


def test_a_data_rebase_cut_short_after_its_rename_is_finished_by_the_same_command() -> None:
    """The data disk is in the archive with the plan on it; no data disk in
    place: the same command clones the version, nothing else."""
    archive = "tank/zboot/archive/pc01-data-20261202-120000"
    listed = LIST.replace("tank/zboot/archive\t", GAMES + "tank/zboot/archive\t") + (
        f"{archive}\tvolume\t8192\t69632\t16777216\ttank/zboot/images/games@v1\t1795239247\t1.33\n"
    )
    got = GET + GAMES_GET + "tank/zboot/hosts/pc01\torg.zboot:data\ton\n"
    for key, value in {
        "kind": "archive",
        "host": "pc01",
        "disk": "data",
        "data-rebase-to": "tank/zboot/images/games@v2",
        "data-archive": archive,
    }.items():
        got += f"{archive}\torg.zboot:{key}\t{value}\n"
    runner = world(listed, got)
    [done] = data_rebase(context(runner), [HostName("pc01")], "games@v2", False, False)
    assert done.moved and done.archive == archive
    [made] = [c for c in changes(runner) if c[1] in ("set", "rename", "clone")]
    assert made[:2] == ("zfs", "clone") and made[-1] == DATA
    runner = world(listed, got)  # another version than the cut-short one: refused
    [other] = data_rebase(context(runner), [HostName("pc01")], "games@v1", False, False)
    assert isinstance(other.error, Conflict) and "cut short" in other.error.message


def test_a_host_without_a_data_disk_is_refused_by_data_rebase() -> None:
    host = "pc01"
    runner = world(
        LIST.replace("tank/zboot/archive\t", GAMES + "tank/zboot/archive\t"), GET + GAMES_GET
    )
    [refused] = data_rebase(context(runner), [HostName(host)], "games", False, False)
    assert isinstance(refused.error, Conflict) and "has no data disk" in refused.error.message
    assert changes(runner) == []


def test_doctor_reports_a_missing_and_an_orphan_data_disk_and_repairs_neither() -> None:
    listed = LIST + (
        "tank/zboot/data\tfilesystem\t98304\t98304\t-\t-\t1795239104\t1.00\n"
        "tank/zboot/data/pc09\tvolume\t8192\t69632\t16777216\t-\t1795239247\t1.33\n"
    )
    got = GET + "tank/zboot/hosts/pc01\torg.zboot:data\ton\n"
    got += "tank/zboot/data/pc09\torg.zboot:kind\tdata\n"
    state = read_state(ZfsCli(world(listed, got)), CONFIG)
    config = replace(CONFIG, iqn_base="iqn.2026-12.org.example")
    found = check(config, 0, Survey(state, "none", {}, {}, {}, set(), "tank", 12))
    assert [(f.kind, f.subject, f.repair) for f in found if "data-disk" in f.kind] == [
        ("missing-data-disk", "pc01", ""),
        ("orphan-data-disk", "tank/zboot/data/pc09", ""),
    ]


def test_data_reset_makes_an_empty_disk_empty_again_and_a_clone_fresh_again() -> None:
    runner = with_data(origin="-")  # an empty data disk: no origin
    [empty] = data_rebase(context(runner), [HostName("pc01")], None, False, False)
    assert empty.moved and empty.result()["source"] == ""
    made = [c for c in changes(runner) if c[1] in ("create", "clone")][-1]
    assert made[:5] == ("zfs", "create", "-s", "-V", "16777216") and made[-1] == DATA
    runner = with_data()  # a clone of games@v1: a fresh clone of games@v1, not v2
    [fresh] = data_rebase(context(runner), [HostName("pc01")], None, False, False)
    assert fresh.moved and fresh.result()["source"] == "tank/zboot/images/games@v1"
    made = [c for c in changes(runner) if c[1] == "clone"][-1]
    assert made[-2:] == ("tank/zboot/images/games@v1", DATA)


def test_a_cut_short_data_rebase_is_told_from_earlier_ones_that_went_through() -> None:
    """Two data archives with plans: the one a rebase to v1 left long ago,
    and the one a rebase to v2 cut short left now. The latest is finished."""
    old, cut = "tank/zboot/archive/pc01-data-1", "tank/zboot/archive/pc01-data-2"
    listed = LIST.replace("tank/zboot/archive\t", GAMES + "tank/zboot/archive\t") + (
        f"{old}\tvolume\t8192\t69632\t16777216\t-\t1795239200\t1.33\n"
        f"{cut}\tvolume\t8192\t69632\t16777216\ttank/zboot/images/games@v1\t1795239247\t1.33\n"
    )
    got = GET + GAMES_GET + "tank/zboot/hosts/pc01\torg.zboot:data\ton\n"
    for name, to, when in (
        (old, "tank/zboot/images/games@v1", "2026-11-01T00:00:00Z"),
        (cut, "tank/zboot/images/games@v2", "2026-12-02T12:00:00Z"),
    ):
        for key, value in {
            "kind": "archive",
            "host": "pc01",
            "disk": "data",
            "archived": when,
            "data-rebase-to": to,
            "data-archive": name,
        }.items():
            got += f"{name}\torg.zboot:{key}\t{value}\n"
    runner = world(listed, got)
    [done] = data_rebase(context(runner), [HostName("pc01")], "games@v2", False, False)
    assert done.error is None and done.moved and done.archive == cut
