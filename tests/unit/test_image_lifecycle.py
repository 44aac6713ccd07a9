"""The image lifecycle on a recorded ZFS state. rebase: the host's disk
becomes a clone of the new version through the rollback's steps, the host
keeps its record and records the new version, a cut-short rebase is
finished with the new version recorded, hosts that cannot move fail alone
before anything changes. commit: one incremental stream into the image's
next version, refused while it could not apply. image prune --keep and
prune --older-than: only what nothing depends on, only what is old enough."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from test_cli_errors import CONFIG as UNREACHABLE
from test_cli_errors import invoke
from test_json_schema import SCHEMA
from test_ops import CONFIG, changes, world
from zfs_samples import GET, LIST

from zboot.cli.lifecycle import rebased_batch, rebased_one
from zboot.cli.output import envelope
from zboot.config import load, reserve_bytes
from zboot.errors import Conflict, InvalidInput, NotFound
from zboot.names import HostName, SnapshotName, age_seconds
from zboot.ops import images
from zboot.ops.commit import Committed, commit
from zboot.ops.context import Context
from zboot.ops.destroy import prune
from zboot.ops.hostfile import HostSpec, read_host_names
from zboot.ops.provision import clone
from zboot.ops.rebase import Rebased, rebase
from zboot.ops.rollback import rollback_hosts
from zboot.ops.state import read_state
from zboot.targets.base import NoEngine
from zboot.testing.recording import RecordingRunner
from zboot.zfs.cli import SEND_RECEIVE, ZfsCli

V2 = "tank/zboot/images/golden@v2"
# golden has a second version, and a second host pc02 (on v1, in maintenance)
TWO_LIST = LIST.replace(
    "tank/zboot/archive\t",
    f"{V2}\tsnapshot\t0\t69632\t4194304\t-\t1795239190\t1.33\ntank/zboot/archive\t",
) + (
    "tank/zboot/hosts/pc02\tvolume\t8192\t69632\t4194304\ttank/zboot/images/golden@v1"
    "\t1795239247\t1.33\n"
)
TWO_GET = GET + "".join(
    f"tank/zboot/hosts/pc02\torg.zboot:{k}\t{v}\n"
    for k, v in {
        "kind": "host",
        "mac": "52:54:00:aa:00:02",
        "image": "golden",
        "version": "v1",
        "origin": "tank/zboot/images/golden@v1",
        "state": "ready",
        "mode": "maintenance",
    }.items()
)


def rebase_of(runner: RecordingRunner, *hosts: str, to: str = "golden@v2") -> list[Rebased]:
    c = Context(CONFIG, runner, ZfsCli(runner), NoEngine)
    return rebase(c, [HostName(h) for h in hosts], to, discard=False, force=False)


def props_of(argv: tuple[str, ...]) -> dict[str, str]:
    return dict(
        a.removeprefix("org.zboot:").split("=", 1) for a in argv if a.startswith("org.zboot:")
    )


def test_a_rebase_clones_the_new_version_under_the_hosts_name_and_keeps_its_record() -> None:
    runner = world(TWO_LIST, TWO_GET)
    [one] = rebase_of(runner, "pc01")
    assert one.moved and one.error is None
    done = changes(runner)
    assert [c[:2] for c in done] == [
        ("zfs", "set"),  # the plan, on the old disk
        ("zfs", "rename"),  # the old disk into the archive
        ("zfs", "clone"),  # the new version under the host's name
        ("zfs", "set"),  # the archive marked
        ("zfs", "set"),  # ready
    ]
    assert f"org.zboot:rollback-to={V2}" in done[0]
    assert done[2][-2:] == (V2, "tank/zboot/hosts/pc01")
    new = props_of(done[2])
    assert new["origin"] == V2 and new["version"] == "v2" and new["image"] == "golden"
    assert new["mac"] == "52:54:00:aa:00:01"  # who the host is stays
    assert new["rebased-from"] == "golden@v1"
    assert one.result() == {
        "host": "pc01",
        "source": V2,
        "archive": done[1][-1],
        "moved": True,
    }


def test_a_host_on_that_version_already_is_left_alone() -> None:
    runner = world(TWO_LIST, TWO_GET)
    [one] = rebase_of(runner, "pc01", to="golden@v1")
    assert not one.moved and one.error is None
    assert changes(runner) == []
    assert "nothing changed" in rebased_one(one).text


def test_unknown_and_maintenance_hosts_fail_alone_and_change_nothing() -> None:
    runner = world(TWO_LIST, TWO_GET)
    unknown, maintenance = rebase_of(runner, "pc09", "pc02")
    assert isinstance(unknown.error, NotFound)
    assert isinstance(maintenance.error, Conflict) and "maintenance" in maintenance.error.message
    assert changes(runner) == []


def test_an_unknown_version_changes_nothing() -> None:
    runner = world(TWO_LIST, TWO_GET)
    with pytest.raises(NotFound, match="no version 'v7'"):
        rebase_of(runner, "pc01", to="golden@v7")
    assert changes(runner) == []


def cut_short(to: str) -> RecordingRunner:
    """pc01's disk in the archive with a rebase plan onto `to` on it."""
    archived = "tank/zboot/archive/pc01-20261201-101010"
    listed = TWO_LIST.replace("tank/zboot/hosts/pc01\t", f"{archived}\t")
    got = TWO_GET.replace("tank/zboot/hosts/pc01\t", f"{archived}\t").replace(
        f"{archived}\torg.zboot:state\tready", f"{archived}\torg.zboot:state\trolling-back"
    ) + (
        f"{archived}\torg.zboot:host\tpc01\n"
        f"{archived}\torg.zboot:rollback-to\t{to}\n"
        f"{archived}\torg.zboot:rollback-archive\t{archived}\n"
    )
    return world(listed, got)


def test_a_rebase_cut_short_after_the_rename_is_finished_by_the_same_rebase() -> None:
    runner = cut_short(V2)
    [finished] = rebase_of(runner, "pc01")
    assert finished.moved
    clone = next(c for c in changes(runner) if c[1] == "clone")
    assert clone[-2:] == (V2, "tank/zboot/hosts/pc01")
    assert props_of(clone)["origin"] == V2 and props_of(clone)["version"] == "v2"
    assert props_of(clone)["rebased-from"] == "golden@v1"


def test_a_rebase_cut_short_is_finished_by_a_rollback_onto_the_new_version() -> None:
    runner = cut_short(V2)
    [finished] = rollback_hosts(ZfsCli(runner), CONFIG, [HostName("pc01")], None)
    assert finished.error is None
    clone = next(c for c in changes(runner) if c[1] == "clone")
    assert clone[-2:] == (V2, "tank/zboot/hosts/pc01")
    assert props_of(clone)["origin"] == V2 and props_of(clone)["version"] == "v2"


def test_a_rebase_elsewhere_refuses_a_host_cut_short_and_says_what_finishes_it() -> None:
    runner = cut_short(V2)
    [refused] = rebase_of(runner, "pc01", to="golden@v1")
    assert isinstance(refused.error, Conflict)
    assert "zboot rollback pc01" in str(refused.error.hint)
    assert changes(runner) == []


def test_a_plain_rollback_records_the_same_version() -> None:
    runner = world(TWO_LIST, TWO_GET)
    [one] = rollback_hosts(ZfsCli(runner), CONFIG, [HostName("pc01")], None)
    clone = next(c for c in changes(runner) if c[1] == "clone")
    assert props_of(clone)["origin"] == "tank/zboot/images/golden@v1"
    assert props_of(clone)["version"] == "v1" and one.error is None


def validate(command: str, data: Any, exit_code: int = 0, errors: int = 0) -> None:
    doc = envelope(command, data, [{}] * 0, exit_code)
    if errors:
        doc["errors"] = [{"kind": "not-found", "code": 4, "message": "m", "hint": None}] * errors
    jsonschema.validate(doc, SCHEMA)


def test_the_json_shapes_fit_the_schema() -> None:
    runner = world(TWO_LIST, TWO_GET)
    moved, stayed = rebase_of(runner, "pc01", "pc01")[0], Rebased(HostName("pc03"), V2)
    validate("rebase", rebased_one(moved).data)
    validate("rebase", rebased_one(stayed).data)
    failed = rebase_of(world(TWO_LIST, TWO_GET), "pc09")[0]
    batch = rebased_batch([moved, stayed, failed])
    validate("rebase", batch.data, exit_code=4, errors=1)
    assert [h["moved"] for h in batch.data["hosts"]] == [True, False, False]
    with pytest.raises(jsonschema.ValidationError):
        validate("rebase", {"host": "pc01", "source": V2, "archive": ""})  # no "moved"


@pytest.mark.parametrize(
    ("name", "text", "hosts"),
    [
        ("hosts.csv", "host\npc01\npc02\n", ["pc01", "pc02"]),
        ("hosts.csv", "host,mac\npc01,52:54:00:aa:00:01\n", ["pc01"]),
        ("hosts.toml", '[[host]]\nhost = "pc03"\n', ["pc03"]),
    ],
)
def test_a_hosts_file_gives_the_names(
    tmp_path: Path, name: str, text: str, hosts: list[str]
) -> None:
    path = tmp_path / name
    path.write_text(text)
    assert read_host_names(path) == hosts


@pytest.mark.parametrize(
    "text", ["mac\n52:54:00:aa:00:01\n", "host,colour\npc01,red\n", "host\n", "host\n,\n"]
)
def test_a_bad_hosts_file_is_refused(tmp_path: Path, text: str) -> None:
    path = tmp_path / "hosts.csv"
    path.write_text(text)
    with pytest.raises(InvalidInput):
        read_host_names(path)


# --- commit -----------------------------------------------------------------


def commit_of(runner: RecordingRunner, point: str | None = None) -> Committed:
    c = Context(CONFIG, runner, ZfsCli(runner), NoEngine)
    return commit(c, HostName("pc01"), "drivers", SnapshotName(point) if point else None)


def test_a_commit_sends_the_hosts_changes_as_the_images_next_version() -> None:
    runner = world(written=0)  # the image has no changes of its own
    done = commit_of(runner)
    assert done.result() == {
        "host": "pc01",
        "image": "golden",
        "version": "v2",
        "from": "pc01@zboot-commit",
        "base": "golden@v1",
    }
    staged = "tank/zboot/commit/golden"
    assert changes(runner)[0] == ("zfs", "snapshot", "tank/zboot/hosts/pc01@zboot-commit")
    assert changes(runner)[1] == (
        "zfs",
        "create",
        "-p",
        "-o",
        "mountpoint=none",
        "tank/zboot/commit",
    )
    send, mark, props, promote, old, name, drop = changes(runner)[2:]
    # received as a staged clone of v1: no version until it is swapped in
    assert send == (
        "sh",
        "-c",
        SEND_RECEIVE,
        "sh",
        "tank/zboot/images/golden@v1",
        "tank/zboot/hosts/pc01@zboot-commit",
        f"{staged}@v2",
    )
    assert mark[:2] == ("zfs", "set") and mark[-1] == f"{staged}@v2"
    assert "org.zboot:message=drivers" in mark and "org.zboot:committed-from=pc01" in mark
    assert "org.zboot:kind=image" in props and props[-1] == staged  # the image's own record
    # the swap: the versions move under the staged clone, which takes the image's name
    assert promote == ("zfs", "promote", staged)
    assert old == ("zfs", "destroy", "tank/zboot/images/golden")
    assert name == ("zfs", "rename", staged, "tank/zboot/images/golden")
    assert drop == ("zfs", "destroy", "tank/zboot/hosts/pc01@zboot-commit")


def test_a_commit_from_a_restore_point_sends_it_and_takes_no_snapshot() -> None:
    point = "tank/zboot/hosts/pc01@before"
    listed = LIST + f"{point}\tsnapshot\t0\t69632\t4194304\t-\t1795239300\t1.33\n"
    runner = world(listed, written=0)
    done = commit_of(runner, "before")
    made = changes(runner)
    assert not any(c[:2] == ("zfs", "snapshot") for c in made)
    [send] = [c for c in made if c[0] == "sh"]
    assert send[-3:] == ("tank/zboot/images/golden@v1", point, "tank/zboot/commit/golden@v2")
    [mark] = [c for c in made if c[:2] == ("zfs", "set") and c[-1].endswith("@v2")]
    assert "org.zboot:committed-from=pc01@before" in mark
    assert done.result()["from"] == "pc01@before"


@pytest.mark.parametrize(
    ("listed", "got", "written", "point", "error", "words"),
    [
        (TWO_LIST, TWO_GET, 0, None, Conflict, "newer version (golden@v2)"),
        (LIST, GET, 4096, None, Conflict, "written to since golden@v1"),
        (
            LIST,
            GET + "tank/zboot/images/golden\torg.zboot:maintenance\tpc02\n",
            0,
            None,
            Conflict,
            "in maintenance on host 'pc02'",
        ),
        (LIST, GET, 0, "nosuch", NotFound, "no restore point 'nosuch'"),
    ],
)
def test_what_a_commit_refuses_changes_nothing(
    listed: str, got: str, written: int, point: str | None, error: type[Exception], words: str
) -> None:
    runner = world(listed, got, written)
    with pytest.raises(error, match=re.escape(words)):
        commit_of(runner, point)
    assert changes(runner) == []


def test_a_commit_left_half_way_is_tidied_by_the_next() -> None:
    stale = "tank/zboot/hosts/pc01@zboot-commit"
    runner = world(LIST + f"{stale}\tsnapshot\t0\t69632\t4194304\t-\t1795239300\t1.33\n", written=0)
    commit_of(runner)
    assert changes(runner)[0] == ("zfs", "destroy", stale)
    # and it is never shown as a restore point
    state = read_state(ZfsCli(world(LIST + f"{stale}\tsnapshot\t0\t1\t1\t-\t1\t1.00\n")), CONFIG)
    assert state.host("pc01").restore_points == []


STAGED = "tank/zboot/commit/golden"


def test_a_commit_cut_short_before_its_swap_is_dropped_then_made_again() -> None:
    """The stream was received as the staged clone (its origin still v1): the
    image is untouched; the next commit drops the clone and starts over."""
    listed = LIST + (
        f"{STAGED}\tvolume\t8192\t69632\t4194304\ttank/zboot/images/golden@v1\t1795239300\t1.33\n"
        f"{STAGED}@v2\tsnapshot\t0\t69632\t4194304\t-\t1795239301\t1.33\n"
    )
    versions = read_state(ZfsCli(world(listed)), CONFIG).image("golden").versions
    assert [v.name for v in versions] == ["v1"]
    runner = world(listed, written=0)
    assert commit_of(runner).version == "v2"
    made = changes(runner)
    assert made[0] == ("zfs", "destroy", "-r", STAGED)
    assert ("zfs", "rename", STAGED, "tank/zboot/images/golden") in made  # committed again


def test_a_commit_cut_short_inside_its_swap_is_finished() -> None:
    """The staged clone was promoted (no origin): the image's versions are
    under it; the next commit destroys the old image dataset and renames."""
    listed = LIST.replace(
        "tank/zboot/archive\t",
        f"{STAGED}\tvolume\t8192\t69632\t4194304\t-\t1795239300\t1.33\ntank/zboot/archive\t",
    )
    runner = world(listed, written=0)
    commit_of(runner)
    assert changes(runner)[:2] == [
        ("zfs", "destroy", "tank/zboot/images/golden"),
        ("zfs", "rename", STAGED, "tank/zboot/images/golden"),
    ]


def test_a_commit_cut_short_after_naming_the_version_is_finished() -> None:
    """v2 is there, committed from pc01, and pc01's snapshot is still there:
    the same command drops the snapshot and reports v2, committing nothing again."""
    stale = "tank/zboot/hosts/pc01@zboot-commit"
    listed = TWO_LIST + f"{stale}\tsnapshot\t0\t69632\t4194304\t-\t1795239300\t1.33\n"
    got = TWO_GET + "tank/zboot/images/golden@v2\torg.zboot:committed-from\tpc01\n"
    runner = world(listed, got, written=0)
    done = commit_of(runner)
    assert (done.version, done.result()["base"]) == ("v2", "golden@v1")
    assert changes(runner) == [("zfs", "destroy", stale)]


@pytest.mark.parametrize(
    "args",
    [
        ("rebase", "pc01"),  # no --to
        ("rebase", "--to", "golden"),  # no host
        ("rebase", "pc01", "--to", "golden", "--hosts", "hosts.csv"),  # both
        ("rebase", "--to", "golden", "--hosts", "/nonexistent/hosts.csv"),
        ("rebase", "pc;01", "--to", "golden"),
        ("rebase", "pc01", "--to", "golden", "--discard"),  # no terminal, no --yes
        ("commit", "pc01", "-m", "two\nlines"),
        ("commit", "pc01", "-m", "x", "--from", "a b"),
        ("commit", "../pc01", "-m", "x"),
    ],
)
def test_bad_input_exits_2_before_connecting(tmp_path: Path, args: tuple[str, ...]) -> None:
    config = tmp_path / "zboot.toml"
    config.write_text(UNREACHABLE)  # connecting would exit 5
    (tmp_path / "hosts.csv").write_text("host\npc01\n")
    code, doc = invoke(config, *(a.replace("hosts.csv", str(tmp_path / "hosts.csv")) for a in args))
    assert code == 2, doc
    assert doc["errors"][0]["kind"] == "invalid-input"


# --- image prune --keep -------------------------------------------------------

V3 = "tank/zboot/images/golden@v3"
# golden@v1..v3; pc01 on v1 (TWO_LIST), an archived disk made from v2
THREE_LIST = TWO_LIST.replace(
    "tank/zboot/archive\t",
    f"{V3}\tsnapshot\t0\t69632\t4194304\t-\t1795239195\t1.33\ntank/zboot/archive\t",
) + (
    f"tank/zboot/archive/pc07-20261201-000000\tvolume\t8192\t69632\t4194304\t{V2}"
    "\t1795239300\t1.33\n"
)


def prune_of(runner: RecordingRunner, keep: int) -> tuple[list[str], dict[str, str]]:
    done = images.prune_versions(ZfsCli(runner), CONFIG, "golden", keep)
    return done.removed, done.kept


def test_prune_keeps_the_newest_and_every_version_something_depends_on() -> None:
    runner = world(THREE_LIST, TWO_GET)
    removed, kept = prune_of(runner, 1)
    assert removed == []  # v1: pc01 and pc02; v2: an archived disk
    assert kept == {"v1": "hosts pc01, pc02", "v2": "disks pc07-20261201-000000"}
    assert changes(runner) == []


def test_prune_destroys_old_versions_nothing_depends_on() -> None:
    listed = THREE_LIST.replace(f"\t{V2}\t1795239300", "\t-\t1795239300")  # the archive: no origin
    runner = world(listed, TWO_GET)
    removed, kept = prune_of(runner, 1)
    assert (removed, list(kept)) == (["v2"], ["v1"])
    assert changes(runner) == [("zfs", "destroy", V2)]
    runner = world(listed, TWO_GET)
    assert prune_of(runner, 2) == ([], {"v1": "hosts pc01, pc02"})  # v2 is among the newest 2
    assert changes(runner) == []


def test_prune_wants_to_keep_at_least_one() -> None:
    runner = world(THREE_LIST, TWO_GET)
    with pytest.raises(InvalidInput):
        prune_of(runner, 0)
    assert runner.commands == []


def test_image_prune_json_fits_the_schema(tmp_path: Path) -> None:
    data = {"image": "golden", "removed": ["v2"], "kept": [{"version": "v1", "depends": "x"}]}
    validate("image prune", data)
    with pytest.raises(jsonschema.ValidationError):
        validate("image prune", {"image": "golden", "removed": "v2", "kept": []})
    config = tmp_path / "zboot.toml"
    config.write_text(UNREACHABLE)
    code, doc = invoke(config, "image", "prune", "golden", "--keep", "0", "--yes")
    assert code == 2 and doc["errors"][0]["kind"] == "invalid-input"


# --- prune --older-than -------------------------------------------------------

OLD, NEW = "tank/zboot/archive/pc01-20200101-000000", "tank/zboot/archive/pc01-20991231-000000"
ARCHIVES_LIST = LIST + "".join(
    f"{a}\tvolume\t8192\t69632\t4194304\t-\t1795239300\t1.33\n" for a in (OLD, NEW)
)
ARCHIVES_GET = GET + "".join(
    f"{a}\torg.zboot:kind\tarchive\n{a}\torg.zboot:host\tpc01\n{a}\torg.zboot:archived\t{t}\n"
    for a, t in ((OLD, "2020-01-01T00:00:00Z"), (NEW, "2099-12-31T00:00:00Z"))
)


def test_prune_older_than_removes_only_states_archived_before_then() -> None:
    runner = world(ARCHIVES_LIST, ARCHIVES_GET)
    c = Context(CONFIG, runner, ZfsCli(runner), NoEngine)
    assert prune(c, None, age_seconds("30d")) == ["pc01-20200101-000000"]
    assert [x[:3] for x in changes(runner) if x[1] == "destroy"] == [("zfs", "destroy", "-r")]
    assert OLD in changes(runner)[-1] and NEW not in changes(runner)[-1]


def test_prune_of_a_host_removes_all_its_states() -> None:
    runner = world(ARCHIVES_LIST, ARCHIVES_GET)
    c = Context(CONFIG, runner, ZfsCli(runner), NoEngine)
    assert sorted(prune(c, [HostName("pc01")])) == [
        "pc01-20200101-000000",
        "pc01-20991231-000000",
    ]


@pytest.mark.parametrize("bad", ["30", "d", "0d", "-1d", "1.5d", "30 d", "1y", "9999999d"])
def test_a_bad_age_is_refused(bad: str) -> None:
    with pytest.raises(InvalidInput):
        age_seconds(bad)


def test_prune_with_neither_hosts_nor_an_age_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "zboot.toml"
    config.write_text(UNREACHABLE)
    code, doc = invoke(config, "prune", "--yes")
    assert code == 2 and doc["errors"][0]["kind"] == "invalid-input"
    code, doc = invoke(config, "prune", "--older-than", "soon", "--yes")
    assert code == 2 and "not an age" in doc["errors"][0]["message"]


# --- the pool's reserve -------------------------------------------------------


def with_free(listed: str, available: int) -> str:
    """The listing with the root's `available` column (the state read asks
    for it last)."""
    root = next(line for line in listed.splitlines() if line.startswith("tank/zboot\t"))
    return listed.replace(root + "\n", f"{root}\t{available}\n")


NEARLY_FULL = with_free(TWO_LIST, 1000)  # 1000 bytes free, of about 247K


@pytest.mark.parametrize("op", ["clone", "commit", "rebase"])
def test_clone_commit_and_rebase_refuse_below_the_reserve(op: str) -> None:
    # commit wants the host's origin to be the newest version: golden@v1 alone
    listed, got = (with_free(LIST, 1000), GET) if op == "commit" else (NEARLY_FULL, TWO_GET)
    runner = world(listed, got, written=0)
    c = Context(CONFIG, runner, ZfsCli(runner), NoEngine)
    with pytest.raises(Conflict, match=r"below its reserve of 10% \(24\.\dK\)") as caught:
        if op == "clone":
            error = clone(c, "golden", [HostSpec("pc05", "52:54:00:aa:00:05")])[0].error
        elif op == "commit":
            error = None
            commit(c, HostName("pc01"), "m")
        else:
            error = rebase(c, [HostName("pc01")], "golden@v2", False, False)[0].error
        if error is not None:
            raise error
    assert "zboot image prune" in str(caught.value.hint)
    assert changes(runner) == []


def test_a_reserve_of_0_lets_the_clone_through() -> None:
    runner = world(NEARLY_FULL, TWO_GET)
    c = Context(replace(CONFIG, reserve="0"), runner, ZfsCli(runner), NoEngine)
    [made] = clone(c, "golden", [HostSpec("pc05", "52:54:00:aa:00:05")])
    assert made.error is None and changes(runner)


@pytest.mark.parametrize(
    ("reserve", "capacity", "expected"),
    [("10%", 1000, 100), ("0", 10**12, 0), ("1G", 5, 2**30), ("0%", 100, 0), ("99%", 100, 99)],
)
def test_reserve_bytes(reserve: str, capacity: int, expected: int) -> None:
    assert reserve_bytes(reserve, capacity) == expected


@pytest.mark.parametrize("bad", ["", "ten", "100%", "10 %", "-5%", "1.5%", "%", 10])
def test_a_bad_reserve_in_the_config_is_refused(tmp_path: Path, bad: object) -> None:
    path = tmp_path / "zboot.toml"
    value = f'"{bad}"' if isinstance(bad, str) else str(bad)
    path.write_text(f'[zfs]\npool = "tank"\nreserve = {value}\n')
    with pytest.raises(InvalidInput, match="reserve"):
        load(path)


def test_a_commit_into_a_new_image_is_its_first_version_and_changes_no_other() -> None:
    runner = world(written=0)
    c = Context(CONFIG, runner, ZfsCli(runner), NoEngine)
    done = commit(c, HostName("pc01"), "a test build", None, "golden2")
    assert (done.image, done.version, done.result()["base"]) == ("golden2", "v1", "golden@v1")
    made = changes(runner)
    staged = "tank/zboot/commit/golden2"
    [send] = [m for m in made if m[0] == "sh"]
    assert send[-3:] == (
        "tank/zboot/images/golden@v1",
        "tank/zboot/hosts/pc01@zboot-commit",
        f"{staged}@v1",
    )
    assert ("zfs", "rename", staged, "tank/zboot/images/golden2") in made
    # no promote, nothing of golden touched: the new image is a clone of golden@v1
    assert not [m for m in made if m[1] == "promote" or m[-1] == "tank/zboot/images/golden"]


def test_a_commit_into_an_image_that_exists_is_refused_and_changes_nothing() -> None:
    runner = world(
        LIST + "tank/zboot/images/other\tvolume\t69632\t69632\t4194304\t-\t1795239140\t1.33\n",
        GET + "tank/zboot/images/other\torg.zboot:kind\timage\n",
        written=0,
    )
    c = Context(CONFIG, runner, ZfsCli(runner), NoEngine)
    with pytest.raises(Conflict, match="image 'other' exists already"):
        commit(c, HostName("pc01"), "x", None, "other")
    assert changes(runner) == []
