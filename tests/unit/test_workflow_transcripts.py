"""rollback, destroy, mode and sync against a strict, ordered transcript of
every command, file operation and engine call (transcript.py): a workflow
that runs one command more, one less, or in another order fails here. The
server's answers are zfs(8) output in the format of zfs_samples.py."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence

import pytest
from transcript import (
    Apply,
    Chains,
    Exports,
    Hold,
    Like,
    Read,
    Release,
    Remove,
    Run,
    Sessions,
    Step,
    Transcript,
    Write,
    maker,
)
from zfs_samples import GET, LIST

from zboot.boot.ipxe import BootTarget, render
from zboot.chap import Chap, digest
from zboot.config import Config
from zboot.errors import CommandFailed, Conflict, InvalidInput, NotFound
from zboot.names import HostName, SnapshotName
from zboot.ops import destroy as destroy_ops
from zboot.ops import doctor, modes, rollback, sync
from zboot.ops.context import Context
from zboot.remote.base import Result
from zboot.remote.python import python_argv
from zboot.targets.base import Export
from zboot.testing.recording import RecordingRunner
from zboot.zfs import program
from zboot.zfs.cli import ZfsCli

CONFIG = Config(portal="10.0.0.1:3260", iqn_base="iqn.2026-11.local.zboot")
HOSTS = "tank/zboot/hosts"
GOLDEN = "tank/zboot/images/golden"
GOLDEN_V1 = f"{GOLDEN}@v1"
BOOT = "/srv/zboot/boot"
SECRETS = "/etc/zboot/secrets/tank_zboot"
ARCHIVE = Like("tank/zboot/archive/pc01-<stamp>")  # made by the rollback, timestamped
OLD_ARCHIVE = "tank/zboot/archive/pc01-20261120-101010"  # one made before
WINPE = "http://10.0.0.1/winpe/"


# --- a fleet, as zfs(8) prints it ---------------------------------------------------


def disk(host: str) -> str:
    return f"{HOSTS}/{host}"


def number(host: str) -> int:
    return int(host.removeprefix("pc"))


def mac(host: str) -> str:
    return f"52:54:00:aa:00:{number(host):02x}"


def initiator(host: str) -> str:
    return f"iqn.2010-04.org.ipxe:{host}"


def target(host: str) -> str:
    return f"iqn.2026-11.local.zboot:{host}"


def export(host: str, chap: Chap | None = None) -> Export:
    return Export(host, target(host), f"/dev/zvol/{disk(host)}", initiator(host), chap)


def script_path(host: str) -> str:
    return f"{BOOT}/{mac(host).replace(':', '-')}.ipxe"


def secret_path(host: str) -> str:
    return f"{SECRETS}/{host}.chap"


# The rest of the samples without pc01: each test adds the hosts it needs.
BASE_LIST = "".join(line + "\n" for line in LIST.splitlines() if f"{HOSTS}/" not in line)
BASE_GET = "".join(line + "\n" for line in GET.splitlines() if f"{HOSTS}/" not in line)


def host(name: str, **props: str) -> tuple[str, str]:
    """A host's line of `zfs list` and its lines of `zfs get`, as provisioned
    (state ready, mode normal, a target), props (underscores for dashes) on top."""
    created = 1795239240 + number(name)
    listed = f"{disk(name)}\tvolume\t8192\t69632\t4194304\t{GOLDEN_V1}\t{created}\t1.33\n"
    record = {
        "kind": "host",
        "mac": mac(name),
        "image": "golden",
        "version": "v1",
        "origin": GOLDEN_V1,
        "mode": "normal",
        "initiator": initiator(name),
        "target": target(name),
        "state": "ready",
    } | {k.replace("_", "-"): v for k, v in props.items()}
    got = "".join(f"{disk(name)}\torg.zboot:{k}\t{v}\n" for k, v in record.items() if v)
    return listed, got


def fleet(*hosts: tuple[str, str], listed: str = "", got: str = "") -> tuple[str, str]:
    """`zfs list` and `zfs get` of the samples' image with these hosts."""
    return (
        BASE_LIST + "".join(h[0] for h in hosts) + listed,
        BASE_GET + "".join(h[1] for h in hosts) + got,
    )


def old_archive() -> tuple[str, str]:
    """An archived state of pc01 from an earlier rollback."""
    return (
        f"{OLD_ARCHIVE}\tvolume\t4096\t69632\t4194304\t{GOLDEN_V1}\t1795239300\t1.33\n",
        f"{OLD_ARCHIVE}\torg.zboot:kind\tarchive\n{OLD_ARCHIVE}\torg.zboot:host\tpc01\n"
        f"{OLD_ARCHIVE}\torg.zboot:state\tarchived\n",
    )


# --- the steps every workflow starts with -------------------------------------------

LIST_ARGV = (
    "zfs",
    "list",
    "-Hp",
    "-r",
    "-t",
    "all",
    "-s",
    "createtxg",
    "-o",
    "name,type,used,referenced,volsize,origin,creation,compressratio,available",
    "tank/zboot",
)
GET_ARGV = (
    "zfs",
    "get",
    "-Hp",
    "-r",
    "-s",
    "local",
    "-t",
    "all",
    "-o",
    "name,property,value",
    "all",
    "tank/zboot",
)
SCRIPTS_ARGV = tuple(python_argv(doctor.SCRIPTS_READER, BOOT))
SECRETS_ARGV = ("sh", "-c", 'cd "$1" 2>/dev/null && ls; true', "sh", SECRETS)
CAPACITY_ARGV = ("zfs", "get", "-Hp", "-o", "value", "used,available", "tank")


def state_reads(world: tuple[str, str]) -> list[Step]:
    """read_state: one `zfs list`, one `zfs get`, whatever the fleet."""
    listed, got = world
    return [Run(*LIST_ARGV, out=listed), Run(*GET_ARGV, out=got)]


def survey_reads(
    world: tuple[str, str],
    exports: Sequence[Export] = (),
    sessions: Mapping[str, list[str]] | None = None,
    scripts: Mapping[str, str] | None = None,
    secrets: Sequence[str] = (),
) -> list[Step]:
    """doctor's survey: the state, the engine's exports (and their sessions),
    the boot directory, the secret files, the pool's space."""
    listing = "".join(
        f"\x1e{path.rsplit('/', 1)[1]}\n{text}" for path, text in (scripts or {}).items()
    )
    found = {e.target: e for e in exports}
    return [
        *state_reads(world),
        Exports(found),
        *([Sessions(list(found), sessions)] if found else []),
        Run(*SCRIPTS_ARGV, out=listing),
        Run(*SECRETS_ARGV, out="".join(f"{h}.chap\n" for h in secrets)),
        Run(*CAPACITY_ARGV, out="4096\n995904\n"),
    ]


# --- what the workflows write ----------------------------------------------------------


def prop(key: str, value: str) -> str:
    """One org.zboot property as zfs set/clone take it (a Like when value has
    placeholders)."""
    text = f"org.zboot:{key}={value}"
    return Like(text) if "<" in text else text


def zfs_set(props: Mapping[str, str], *names: str) -> Run:
    return Run("zfs", "set", *(prop(k, v) for k, v in props.items()), *names)


def channel_program(script: str, args: Sequence[str], answer: Mapping[str, int]) -> Run:
    """`zfs program` on tank with script on stdin, and its answer."""
    return Run(
        "zfs",
        "program",
        "-j",
        "tank",
        "/dev/stdin",
        *args,
        input=script.encode(),
        out=json.dumps({"return": answer}),
    )


def set_program(*sets: Run) -> Run:
    """`zfs set` commands as the one channel program that makes them all
    (ZfsCli.set_many), every dataset set."""
    args: list[str] = []
    for run in sets:
        assert run.argv[:2] == ("zfs", "set")
        props = [a for a in run.argv[2:] if "=" in a]
        for name in (a for a in run.argv[2:] if "=" not in a):
            args += [name, str(len(props)), *props]
    count = sum(1 for run in sets for a in run.argv[2:] if "=" not in a)
    return channel_program(program.SET_PROPS, args, {str(n): 0 for n in range(1, count + 1)})


def mark(props: Mapping[str, str], *names: str) -> Run:
    """ZfsCli.mark: a `zfs set` for one dataset, a channel program for more."""
    return zfs_set(props, *names) if len(names) == 1 else set_program(zfs_set(props, *names))


def zfs_clone(source: str, dest: str, props: Mapping[str, str]) -> Run:
    options = [arg for k, v in props.items() for arg in ("-o", prop(k, v))]
    return Run("zfs", "clone", *options, source, dest)


def archive_mark(archive: str) -> Run:
    return zfs_set({"kind": "archive", "state": "archived", "archived": "<time>"}, archive)


def destroy_program(*names: str, codes: Mapping[str, int] | None = None) -> Run:
    """destroy_many: the channel program on stdin, its answer per dataset."""
    return channel_program(program.DESTROY, names, {n: (codes or {}).get(n, 0) for n in names})


KEPT = "Kx7Vq2LmPa9RtY4w"  # the secret in a file on the server before the run


def secret_file(host: str, secret: str = KEPT) -> str:
    return json.dumps(
        {"user": initiator(host), "secret": secret, "mutual_user": None, "mutual_secret": None}
    )


def chap(host: str, secret: str = KEPT) -> Chap:
    return Chap(initiator(host), secret)


def script(host: str, mode: str = "normal", chap: Chap | None = None, attach: str = "") -> str:
    """The script zboot writes (its text is pinned in test_boot.py); a Like
    when the secret is <secret>, one made by the run."""
    made = chap.secret if chap is not None and isinstance(chap.secret, Like) else None
    if made is not None and chap is not None:
        chap = Chap(chap.user, "PLACEHOLDER00000")
    boot = BootTarget(
        host, CONFIG.portal or "", 0, attach or target(host), initiator(host), chap, "tank/zboot"
    )
    text = render(mode, boot)
    return Like(text.replace("PLACEHOLDER00000", made)) if made is not None else text


def context(t: Transcript, engine: str = "lio") -> Context:
    return Context(CONFIG, t, ZfsCli(t), maker(t.engine(engine)))


# --- rollback ---------------------------------------------------------------------------


def planned(
    host: str, archive: str = ARCHIVE, source: str = GOLDEN_V1, discard: bool = False
) -> Run:
    """The plan written onto the disk before anything moves."""
    return zfs_set(
        {"host": host, "rollback-to": source, "rollback-archive": archive}
        | ({"rollback-discard": "on"} if discard else {})
        | {"step": "rollback:planned", "state": "rolling-back"},
        disk(host),
    )


def cloned(
    host: str, archive: str = ARCHIVE, source: str = GOLDEN_V1, discard: bool = False, **extra: str
) -> Run:
    """The new disk: the old record, the plan, not ready yet."""
    record = {
        "kind": "host",
        "mac": mac(host),
        "image": "golden",
        "version": "v1",
        "origin": GOLDEN_V1,
        "mode": "normal",
        "initiator": initiator(host),
        "target": target(host),
        "state": "rolling-back",
        **extra,
        "rollback-to": source,
        "rollback-archive": archive,
        **({"rollback-discard": "on"} if discard else {}),
        "step": "rollback:cloned",
        "rolled-back": "<time>",
    }
    return zfs_clone(source, disk(host), record)


ROLLED_BACK = {"step": "rollback:done", "state": "ready"}


def test_rollback_takes_the_export_down_clones_and_puts_it_back() -> None:
    world = fleet(host("pc01"))
    t = Transcript(
        [
            *state_reads(world),
            Sessions([target("pc01")], {}),
            Chains([planned("pc01")]),  # the plan, before the export comes down
            Apply(delete=[target("pc01")], persist=False),  # saved when put back
            Chains([Run("zfs", "rename", disk("pc01"), ARCHIVE)]),
            Chains([cloned("pc01"), archive_mark(ARCHIVE)]),
            Apply(create=[export("pc01")]),
            zfs_set(ROLLED_BACK, disk("pc01")),
        ]
    )
    [done] = rollback.rollback(context(t), [HostName("pc01")], None, discard=False, force=False)
    t.assert_done()
    assert done.error is None and done.source == GOLDEN_V1
    # the archive the result names is the one the commands made
    assert done.archive == f"tank/zboot/archive/pc01-{t.bound['stamp']}"


def test_rollback_of_a_host_in_use_is_refused_and_changes_nothing() -> None:
    world = fleet(host("pc01"))
    t = Transcript([*state_reads(world), Sessions([target("pc01")], {target("pc01"): ["pc01"]})])
    [refused] = rollback.rollback(context(t), [HostName("pc01")], None, discard=False, force=False)
    t.assert_done()
    assert isinstance(refused.error, Conflict) and "in use" in refused.error.message
    assert refused.changes == []


def test_rollback_with_force_does_not_look_at_sessions() -> None:
    world = fleet(host("pc01"))
    t = Transcript(
        [
            *state_reads(world),
            Chains([planned("pc01")]),  # the plan, before the export comes down
            Apply(delete=[target("pc01")], persist=False),
            Chains([Run("zfs", "rename", disk("pc01"), ARCHIVE)]),
            Chains([cloned("pc01"), archive_mark(ARCHIVE)]),
            Apply(create=[export("pc01")]),
            zfs_set(ROLLED_BACK, disk("pc01")),
        ]
    )
    [done] = rollback.rollback(context(t), [HostName("pc01")], None, discard=False, force=True)
    t.assert_done()
    assert done.error is None


def test_an_unknown_host_fails_alone_and_the_other_is_rolled_back() -> None:
    world = fleet(host("pc01"))
    t = Transcript(
        [
            *state_reads(world),
            Sessions([target("pc01")], {}),
            Chains([planned("pc01")]),  # the plan, before the export comes down
            Apply(delete=[target("pc01")], persist=False),
            Chains([Run("zfs", "rename", disk("pc01"), ARCHIVE)]),
            Chains([cloned("pc01"), archive_mark(ARCHIVE)]),
            Apply(create=[export("pc01")]),
            zfs_set(ROLLED_BACK, disk("pc01")),
        ]
    )
    known, unknown = rollback.rollback(
        context(t), [HostName("pc01"), HostName("pc77")], None, False, False
    )
    t.assert_done()
    assert known.error is None
    assert isinstance(unknown.error, NotFound) and unknown.host == "pc77"


def test_rollback_with_discard_destroys_the_replaced_disk_last() -> None:
    world = fleet(host("pc01"))
    t = Transcript(
        [
            *state_reads(world),
            Sessions([target("pc01")], {}),
            Chains([planned("pc01", discard=True)]),  # the plan, before the export comes down
            Apply(delete=[target("pc01")], persist=False),
            Chains([Run("zfs", "rename", disk("pc01"), ARCHIVE)]),
            Chains(
                [
                    cloned("pc01", discard=True),
                    archive_mark(ARCHIVE),
                    Run("zfs", "destroy", "-r", ARCHIVE),
                ]
            ),
            Apply(create=[export("pc01")]),
            zfs_set(ROLLED_BACK, disk("pc01")),
        ]
    )
    [done] = rollback.rollback(context(t), [HostName("pc01")], None, discard=True, force=False)
    t.assert_done()
    assert done.error is None and done.result()["archive"] == ""


def test_a_batch_rollback_is_one_engine_call_each_way_and_one_shell_or_program_each_step() -> None:
    """pc02 has CHAP: its secret comes from its file and goes back with its
    export. The hosts' property sets are a channel program each step, where a
    `zfs set` each would wait for a transaction group each."""
    world = fleet(host("pc01"), host("pc02", chap="one-way"))
    archive2 = Like("tank/zboot/archive/pc02-<stamp2>")
    t = Transcript(
        [
            *state_reads(world),
            Read(secret_path("pc02"), secret_file("pc02")),
            Sessions([target("pc01"), target("pc02")], {}),
            set_program(planned("pc01"), planned("pc02", archive2)),
            Apply(delete=[target("pc01"), target("pc02")], persist=False),
            Chains(
                [Run("zfs", "rename", disk("pc01"), ARCHIVE)],
                [Run("zfs", "rename", disk("pc02"), archive2)],
            ),
            Chains([cloned("pc01")], [cloned("pc02", archive2, chap="one-way")]),
            set_program(archive_mark(ARCHIVE), archive_mark(archive2)),
            Apply(create=[export("pc01"), export("pc02", chap("pc02"))]),
            mark(ROLLED_BACK, disk("pc01"), disk("pc02")),
        ]
    )
    results = rollback.rollback(
        context(t), [HostName("pc01"), HostName("pc02")], None, False, False
    )
    t.assert_done()
    assert [r.error for r in results] == [None, None]


def test_a_host_whose_clone_fails_stays_unexported_and_not_ready() -> None:
    """pc02's old disk is in the archive and no new one was made: its export
    is deleted for good (and saved), pc01 goes on."""
    world = fleet(host("pc01"), host("pc02"))
    archive2 = Like("tank/zboot/archive/pc02-<stamp2>")
    t = Transcript(
        [
            *state_reads(world),
            Sessions([target("pc01"), target("pc02")], {}),
            set_program(planned("pc01"), planned("pc02", archive2)),
            Apply(delete=[target("pc01"), target("pc02")], persist=False),
            Chains(
                [Run("zfs", "rename", disk("pc01"), ARCHIVE)],
                [Run("zfs", "rename", disk("pc02"), archive2)],
            ),
            Chains(
                [cloned("pc01")],
                [
                    Run(
                        *cloned("pc02", archive2).argv,
                        rc=1,
                        err="cannot create 'tank/zboot/hosts/pc02': out of space\n",
                    )
                ],
            ),
            Chains([archive_mark(ARCHIVE)]),  # the one chain left: no program for one set
            Apply(create=[export("pc01")], delete=[target("pc02")]),
            zfs_set(ROLLED_BACK, disk("pc01")),
        ]
    )
    ok, failed = rollback.rollback(
        context(t), [HostName("pc01"), HostName("pc02")], None, False, False
    )
    t.assert_done()
    assert ok.error is None
    assert failed.error is not None and not failed.disk_exists
    assert failed.error.hint == "zboot rollback pc02 finishes it"


def test_rollback_to_a_restore_point_promotes_the_new_disk() -> None:
    world = fleet(
        host("pc01"),
        listed=f"{disk('pc01')}@before\tsnapshot\t0\t69632\t4194304\t-\t1795239400\t1.33\n",
    )
    point = Like("tank/zboot/archive/pc01-<stamp>@before")
    t = Transcript(
        [
            *state_reads(world),
            Sessions([target("pc01")], {}),
            Chains([planned("pc01", source=point)]),  # the plan, before the export comes down
            Apply(delete=[target("pc01")], persist=False),
            Chains([Run("zfs", "rename", disk("pc01"), ARCHIVE)]),
            Chains(
                [
                    cloned("pc01", source=point),
                    archive_mark(ARCHIVE),
                    Run("zfs", "promote", disk("pc01")),
                ]
            ),
            Apply(create=[export("pc01")]),
            zfs_set(ROLLED_BACK, disk("pc01")),
        ]
    )
    [done] = rollback.rollback(context(t), [HostName("pc01")], SnapshotName("before"), False, False)
    t.assert_done()
    assert done.error is None and rollback.shown_source(done) == "before"


def test_rollback_to_a_missing_restore_point_with_force_leaves_the_export_up() -> None:
    """The restore point is looked up before anything changes: --force does
    not cut the machine off for a rollback that cannot happen."""
    world = fleet(host("pc01"))
    t = Transcript(state_reads(world))
    [refused] = rollback.rollback(
        context(t), [HostName("pc01")], SnapshotName("missing"), discard=False, force=True
    )
    t.assert_done()
    assert isinstance(refused.error, NotFound) and "missing" in refused.error.message


def test_a_rollback_cut_short_as_the_export_comes_down_leaves_the_host_rolling_back() -> None:
    """The engine call that takes the export down fails (the connection is
    lost): the plan is already on the disk, so the host is not left "ready"
    without an export; doctor reports it unfinished and sync finishes it."""
    world = fleet(host("pc01"))
    lost = CommandFailed(("ssh",), 255, "connection lost")
    t = Transcript(
        [
            *state_reads(world),
            Sessions([target("pc01")], {}),
            Chains([planned("pc01")]),
            Apply(delete=[target("pc01")], persist=False, raises=lost),
        ]
    )
    with pytest.raises(CommandFailed):
        rollback.rollback(context(t), [HostName("pc01")], None, discard=False, force=False)
    t.assert_done()


HALF = "tank/zboot/archive/pc01-20261121-101010"  # a rollback cut short moved pc01 here


def moved_disk() -> tuple[str, str]:
    """pc01's old disk, renamed into the archive by a rollback that stopped
    after the rename: still a host's record, with the plan on it."""
    listed, got = host(
        "pc01",
        state="rolling-back",
        step="rollback:planned",
        host="pc01",
        rollback_to=GOLDEN_V1,
        rollback_archive=HALF,
    )
    return listed.replace(disk("pc01"), HALF), got.replace(disk("pc01"), HALF)


def test_a_rollback_cut_short_after_the_rename_is_finished_by_the_same_command() -> None:
    world = fleet(moved_disk())  # pc01 has no disk
    record = {
        "kind": "host",
        "mac": mac("pc01"),
        "image": "golden",
        "version": "v1",
        "origin": GOLDEN_V1,
        "mode": "normal",
        "initiator": initiator("pc01"),
        "target": target("pc01"),
        "state": "rolling-back",
        "step": "rollback:cloned",
        "rollback-to": GOLDEN_V1,
        "rollback-archive": HALF,
        "rolled-back": "<time>",
    }
    t = Transcript(
        [
            *state_reads(world),
            Sessions([target("pc01")], {}),
            Apply(delete=[target("pc01")], persist=False),
            Chains([zfs_clone(GOLDEN_V1, disk("pc01"), record), archive_mark(HALF)]),
            Apply(create=[export("pc01")]),
            zfs_set(ROLLED_BACK, disk("pc01")),
        ]
    )
    [done] = rollback.rollback(context(t), [HostName("pc01")], None, False, False)
    t.assert_done()
    assert done.error is None and done.archive == HALF  # the same archive, no second one


def cloned_but_unmarked() -> tuple[str, str]:
    """A rollback that stopped after the new disk was made: the old one in
    the archive is not marked as an archive yet, and pc01 is not ready."""
    new = host(
        "pc01",
        state="rolling-back",
        step="rollback:cloned",
        rollback_to=GOLDEN_V1,
        rollback_archive=HALF,
    )
    return fleet(new, moved_disk())


def test_a_rollback_cut_short_after_the_clone_only_marks_exports_and_readies() -> None:
    world = cloned_but_unmarked()
    t = Transcript(
        [
            *state_reads(world),
            Sessions([target("pc01")], {}),
            Apply(delete=[target("pc01")], persist=False),
            Chains([archive_mark(HALF)]),  # no rename, no clone: never rolled back twice
            Apply(create=[export("pc01")]),
            zfs_set(ROLLED_BACK, disk("pc01")),
        ]
    )
    [done] = rollback.rollback(context(t), [HostName("pc01")], None, False, False)
    t.assert_done()
    assert done.error is None and done.archive == HALF


# --- destroy ----------------------------------------------------------------------------

DESTROYING = {"step": "destroy:marked", "state": "destroying"}


def test_destroy_marks_unexports_removes_files_then_destroys_in_one_program() -> None:
    world = fleet(host("pc01", chap="one-way"), old_archive())
    t = Transcript(
        [
            *state_reads(world),
            Sessions([target("pc01")], {}),
            zfs_set(DESTROYING, disk("pc01")),
            Apply(delete=[target("pc01")]),
            Run("rm", "-f", "--", secret_path("pc01")),
            Remove(script_path("pc01")),
            destroy_program(OLD_ARCHIVE, disk("pc01")),  # archives first, then the disk
        ]
    )
    [gone] = destroy_ops.destroy(context(t), [HostName("pc01")], force=False)
    t.assert_done()
    assert gone.error is None and gone.gone == [OLD_ARCHIVE, disk("pc01")]


def test_destroy_of_a_host_in_maintenance_is_refused() -> None:
    world = fleet(host("pc01", mode="maintenance"))
    t = Transcript(state_reads(world))
    [refused] = destroy_ops.destroy(context(t), [HostName("pc01")], force=True)
    t.assert_done()
    assert isinstance(refused.error, Conflict) and "maintenance" in refused.error.message


def test_destroy_of_a_host_in_use_is_refused_unless_forced() -> None:
    world = fleet(host("pc01"))
    t = Transcript(
        [*state_reads(world), Sessions([target("pc01")], {target("pc01"): [initiator("pc01")]})]
    )
    [refused] = destroy_ops.destroy(context(t), [HostName("pc01")], force=False)
    t.assert_done()
    assert isinstance(refused.error, Conflict) and "in use" in refused.error.message

    forced = Transcript(
        [
            *state_reads(world),
            zfs_set(DESTROYING, disk("pc01")),
            Apply(delete=[target("pc01")]),
            Run("rm", "-f", "--", secret_path("pc01")),  # one rm, CHAP or not
            Remove(script_path("pc01")),
            destroy_program(disk("pc01")),
        ]
    )
    [gone] = destroy_ops.destroy(context(forced), [HostName("pc01")], force=True)
    forced.assert_done()
    assert gone.error is None


def test_a_disk_zfs_cannot_destroy_says_the_same_command_finishes_it() -> None:
    """The channel program leaves the disk (EEXIST: a clone depends on it);
    destroyed alone, it fails again: the error says how to finish."""
    world = fleet(host("pc01"), old_archive())
    refusal = "cannot destroy 'tank/zboot/hosts/pc01': filesystem has dependent clones\n"
    t = Transcript(
        [
            *state_reads(world),
            Sessions([target("pc01")], {}),
            zfs_set(DESTROYING, disk("pc01")),
            Apply(delete=[target("pc01")]),
            Run("rm", "-f", "--", secret_path("pc01")),
            Remove(script_path("pc01")),
            destroy_program(OLD_ARCHIVE, disk("pc01"), codes={disk("pc01"): 17}),
            Run("zfs", "destroy", "-r", disk("pc01"), rc=1, err=refusal),  # the round
            Run("zfs", "destroy", "-r", disk("pc01"), rc=1, err=refusal),  # the reason
        ]
    )
    [left] = destroy_ops.destroy(context(t), [HostName("pc01")], force=False)
    t.assert_done()
    assert isinstance(left.error, Conflict) and "dependent clones" in left.error.message
    assert left.error.hint is not None and "zboot destroy pc01 finishes it" in left.error.hint
    assert left.gone == [OLD_ARCHIVE]


# --- mode -------------------------------------------------------------------------------

INSTALL_SCRIPT = """\
#!ipxe
# zboot: host pc01, mode install, root tank/zboot; rewritten by `zboot mode`
set initiator-iqn iqn.2010-04.org.ipxe:pc01
set keep-san 1
sanhook --drive 0x80 iscsi:10.0.0.1::3260:0:iqn.2026-11.local.zboot:pc01 || goto failed
echo zboot: pc01: disk iqn.2026-11.local.zboot:pc01 attached as 0x80
kernel http://10.0.0.1/winpe/wimboot
initrd http://10.0.0.1/winpe/BCD BCD
initrd http://10.0.0.1/winpe/boot.sdi boot.sdi
initrd http://10.0.0.1/winpe/boot.wim boot.wim
boot || goto failed
:failed
echo zboot: pc01: install boot failed
sleep 30
reboot
"""


def switched(host: str, mode: str, script_text: str) -> list[Step]:
    """A switch's steps after the mark: the boot directory, the script, the
    new mode and "ready"."""
    return [
        Run("mkdir", "-p", BOOT),
        Write(script_path(host), 0o644, script_text),
        zfs_set({"mode": mode, "step": "mode:done", "state": "ready"}, disk(host)),
    ]


def test_install_mode_rewrites_the_script_with_the_winpe_url() -> None:
    world = fleet(host("pc01"))
    t = Transcript(
        [
            *state_reads(world),
            zfs_set({"step": "mode:install", "state": "switching"}, disk("pc01")),
            *switched("pc01", "install", INSTALL_SCRIPT),
        ]
    )
    [sw] = modes.switch(context(t), [HostName("pc01")], "install", WINPE, None, False)
    t.assert_done()
    assert sw.error is None and sw.boot_file == script_path("pc01")


def test_a_switch_cut_short_is_finished_by_the_same_command() -> None:
    world = fleet(host("pc01", state="switching", step="mode:install"))
    t = Transcript(
        [
            *state_reads(world),
            zfs_set({"step": "mode:install", "state": "switching"}, disk("pc01")),
            *switched("pc01", "install", INSTALL_SCRIPT),
        ]
    )
    [sw] = modes.switch(context(t), [HostName("pc01")], "install", WINPE, None, False)
    t.assert_done()
    assert sw.error is None


def test_a_chap_host_switches_with_its_secret_and_another_operation_blocks() -> None:
    """pc01 reads its secret for the script; pc02, mid-provisioning, fails alone."""
    world = fleet(
        host("pc01", chap="one-way"), host("pc02", state="provisioning", step="clone:cloned")
    )
    t = Transcript(
        [
            *state_reads(world),
            Read(secret_path("pc01"), secret_file("pc01")),
            zfs_set({"step": "mode:local", "state": "switching"}, disk("pc01")),
            *switched("pc01", "local", script("pc01", "local", chap("pc01"))),
        ]
    )
    one, two = modes.switch(
        context(t), [HostName("pc01"), HostName("pc02")], "local", None, None, False
    )
    t.assert_done()
    assert one.error is None
    assert isinstance(two.error, Conflict) and two.error.hint == "zboot sync finishes it"


@pytest.mark.parametrize(
    ("names", "mode", "winpe"),
    [
        (["pc01"], "rescue", None),
        (["pc01"], "normal", WINPE),
        (["pc01"], "install", "ftp://10.0.0.1/winpe"),
        (["pc01", "pc02"], "maintenance", None),
    ],
)
def test_a_bad_mode_request_runs_nothing(names: list[str], mode: str, winpe: str | None) -> None:
    t = Transcript([])
    with pytest.raises(InvalidInput):
        modes.switch(context(t), [HostName(n) for n in names], mode, winpe, None, False)
    t.assert_done()


def test_entering_maintenance_exports_the_image_to_the_host() -> None:
    world = fleet(host("pc01"))
    gold = Export("image_golden", target("image.golden"), f"/dev/zvol/{GOLDEN}", initiator("pc01"))
    t = Transcript(
        [
            *state_reads(world),
            zfs_set({"step": "mode:maintenance", "state": "switching"}, disk("pc01")),
            Run("zfs", "set", "org.zboot:maintenance=pc01", GOLDEN),  # recorded first
            Apply(create=[gold]),
            *switched("pc01", "maintenance", script("pc01", "maintenance", attach=gold.target)),
        ]
    )
    [sw] = modes.switch(context(t), [HostName("pc01")], "maintenance", None, None, False)
    t.assert_done()
    assert sw.error is None and sw.target is not None and sw.target.target == gold.target


def leaving_world() -> tuple[str, str]:
    return fleet(host("pc01", mode="maintenance"), got=f"{GOLDEN}\torg.zboot:maintenance\tpc01\n")


def test_leaving_maintenance_snapshots_the_image_as_its_next_version() -> None:
    world = leaving_world()
    gold = target("image.golden")
    t = Transcript(
        [
            *state_reads(world),
            Sessions([gold], {}),
            zfs_set({"step": "mode:normal", "state": "switching"}, disk("pc01")),
            Apply(delete=[gold]),
            Run("zfs", "get", "-Hp", "-o", "value", "written", GOLDEN, out="1048576\n"),
            *state_reads(world),  # snapshot_image reads the state again
            Run(
                "zfs",
                "snapshot",
                "-o",
                Like("org.zboot:created=<time>"),
                "-o",
                "org.zboot:message=maintenance by pc01",
                f"{GOLDEN}@v2",
            ),
            Run("zfs", "set", "org.zboot:maintenance=", GOLDEN),
            *switched("pc01", "normal", script("pc01")),
        ]
    )
    [sw] = modes.switch(context(t), [HostName("pc01")], "normal", None, None, False)
    t.assert_done()
    assert sw.error is None and sw.version == "v2"


def test_leaving_maintenance_again_after_a_cut_makes_no_second_version() -> None:
    """Cut short after the snapshot: nothing written since v2, so v2 it is."""
    world = fleet(
        host("pc01", mode="maintenance", state="switching", step="mode:normal"),
        listed=f"{GOLDEN}@v2\tsnapshot\t0\t69632\t4194304\t-\t1795239500\t1.33\n",
        got=f"{GOLDEN}\torg.zboot:maintenance\tpc01\n",
    )
    gold = target("image.golden")
    t = Transcript(
        [
            *state_reads(world),
            Sessions([gold], {}),
            zfs_set({"step": "mode:normal", "state": "switching"}, disk("pc01")),
            Apply(delete=[gold]),
            Run("zfs", "get", "-Hp", "-o", "value", "written", GOLDEN, out="0\n"),
            Run("zfs", "set", "org.zboot:maintenance=", GOLDEN),
            *switched("pc01", "normal", script("pc01")),
        ]
    )
    [sw] = modes.switch(context(t), [HostName("pc01")], "normal", None, None, False)
    t.assert_done()
    assert sw.error is None and sw.version == "v2"


def test_a_switch_to_maintenance_cut_short_is_undone_by_the_switch_back() -> None:
    """Cut short after the image was marked (and perhaps exported) as pc01's,
    before pc01's mode was: `mode pc01 normal` takes the image's export down
    and clears the mark, as leaving maintenance does."""
    world = fleet(
        host("pc01", state="switching", step="mode:maintenance"),
        got=f"{GOLDEN}\torg.zboot:maintenance\tpc01\n",
    )
    gold = target("image.golden")
    t = Transcript(
        [
            *state_reads(world),
            Sessions([gold], {}),
            zfs_set({"step": "mode:normal", "state": "switching"}, disk("pc01")),
            Apply(delete=[gold]),
            Run("zfs", "get", "-Hp", "-o", "value", "written", GOLDEN, out="0\n"),
            Run("zfs", "set", "org.zboot:maintenance=", GOLDEN),
            *switched("pc01", "normal", script("pc01")),
        ]
    )
    [sw] = modes.switch(context(t), [HostName("pc01")], "normal", None, None, False)
    t.assert_done()
    assert sw.error is None and sw.version == "v1"  # nothing written: no new version


def test_leaving_maintenance_while_the_image_is_in_use_is_refused() -> None:
    world = leaving_world()
    gold = target("image.golden")
    t = Transcript([*state_reads(world), Sessions([gold], {gold: [initiator("pc01")]})])
    [sw] = modes.switch(context(t), [HostName("pc01")], "normal", None, None, False)
    t.assert_done()
    assert isinstance(sw.error, Conflict) and "in use" in sw.error.message


# --- sync -------------------------------------------------------------------------------

FRESH = {script_path("pc01"): script("pc01")}  # pc01's script, as zboot wrote it


def test_sync_with_nothing_drifted_only_reads_and_applies_nothing() -> None:
    world = fleet(host("pc01"))
    t = Transcript(
        [
            *survey_reads(world, [export("pc01")], {}, FRESH),
            Apply(create=[], delete=[]),  # an empty batch: the engine does nothing
        ]
    )
    synced = sync.sync(context(t))
    t.assert_done()
    assert (synced.created, synced.deleted, synced.boot_files, synced.removed) == ([], [], [], [])
    assert synced.checked == 1 and synced.errors == []


def test_sync_re_creates_a_missing_export() -> None:
    world = fleet(host("pc01"))
    t = Transcript(
        [
            *survey_reads(world, [], None, FRESH),  # no exports: no session lookup
            Apply(create=[export("pc01")], delete=[]),
        ]
    )
    synced = sync.sync(context(t))
    t.assert_done()
    assert synced.created == [target("pc01")]


def test_sync_removes_what_a_gone_host_left() -> None:
    """pc99 is gone: its target, its script and its secret file go."""
    world = fleet(host("pc01"))
    orphan = export("pc99")
    t = Transcript(
        [
            *survey_reads(
                world,
                [export("pc01"), orphan],
                {},
                FRESH | {script_path("pc99"): script("pc99")},
                ["pc99"],
            ),
            Apply(create=[], delete=[orphan.target]),
            Remove(script_path("pc99")),
            Run("rm", "-f", "--", secret_path("pc99")),
        ]
    )
    synced = sync.sync(context(t))
    t.assert_done()
    assert synced.deleted == [orphan.target]
    assert synced.removed == [script_path("pc99"), secret_path("pc99")]


def test_sync_leaves_an_orphan_target_in_use_alone() -> None:
    world = fleet(host("pc01"))
    orphan = export("pc99")
    t = Transcript(
        [
            *survey_reads(
                world, [export("pc01"), orphan], {orphan.target: [initiator("pc99")]}, FRESH
            ),
            Apply(create=[], delete=[]),
        ]
    )
    synced = sync.sync(context(t))
    t.assert_done()
    assert synced.skipped_in_use == [orphan.target]


def test_sync_finishes_a_host_left_provisioning() -> None:
    """pc02 was cloned (and its secret stored) before the run stopped."""
    world = fleet(
        host("pc01"),
        host("pc02", chap="one-way", state="provisioning", step="clone:cloned"),
    )
    t = Transcript(
        [
            *survey_reads(world, [export("pc01")], {}, FRESH, ["pc02"]),
            Read(secret_path("pc02"), secret_file("pc02")),
            Apply(create=[export("pc02", chap("pc02"))], delete=[]),
            Run("mkdir", "-p", BOOT),
            Write(script_path("pc02"), 0o640, script("pc02", chap=chap("pc02"))),
            zfs_set({"step": "sync:done", "state": "ready"}, disk("pc02")),
        ]
    )
    synced = sync.sync(context(t))
    t.assert_done()
    assert synced.finished == ["pc02"] and synced.created == [target("pc02")]
    assert synced.boot_files == [script_path("pc02")]


def test_sync_gives_a_host_whose_secret_file_is_lost_new_secrets() -> None:
    world = fleet(host("pc01", chap="one-way"))
    old = {script_path("pc01"): script("pc01", chap=chap("pc01"))}
    new = Chap(initiator("pc01"), Like("<secret>"))
    t = Transcript(
        [
            *survey_reads(world, [export("pc01")], {}, old),  # no secret files
            Run("mkdir", "-p", "-m", "0700", "/etc/zboot/secrets"),
            Run("install", "-d", "-m", "0700", SECRETS),
            Write(secret_path("pc01"), 0o600, Like(secret_file("pc01", "<secret>"))),
            Apply(create=[export("pc01", new)], delete=[]),
            Run("mkdir", "-p", BOOT),
            Write(script_path("pc01"), 0o640, script("pc01", chap=new)),
        ]
    )
    synced = sync.sync(context(t))
    t.assert_done()
    assert synced.rekeyed == ["pc01"] and synced.created == [target("pc01")]
    assert t.bound["secret"] != KEPT  # one new secret in the file, the engine and the script


def test_sync_finishes_a_destroy_cut_short_then_surveys_again() -> None:
    before = fleet(host("pc01"), host("pc02", state="destroying", step="destroy:marked"))
    after = fleet(host("pc01"))
    t = Transcript(
        [
            *survey_reads(before, [export("pc01"), export("pc02")], {}, FRESH),
            *state_reads(before),  # destroy's own read
            Sessions([target("pc02")], {}),
            zfs_set(DESTROYING, disk("pc02")),
            Apply(delete=[target("pc02")]),
            Run("rm", "-f", "--", secret_path("pc02")),
            Remove(script_path("pc02")),
            destroy_program(disk("pc02")),
            *survey_reads(after, [export("pc01")], {}, FRESH),
            Apply(create=[], delete=[]),
        ]
    )
    synced = sync.sync(context(t))
    t.assert_done()
    assert synced.finished == ["pc02"] and synced.errors == []


def test_sync_writes_no_secret_the_engine_does_not_have() -> None:
    """A CHAP host, logged in, whose secret file is lost: sync must not cut
    it off, so its export keeps the old secret. Every secret sync writes (the
    file, the script) must then be the one the engine has."""
    listing = f"\x1e{script_path('pc01').rsplit('/', 1)[1]}\n" + script("pc01", chap=chap("pc01"))
    runner = lenient(fleet(host("pc01", chap="one-way")), listing)
    engine = Recording(logged_in=True)
    synced = sync.sync(Context(CONFIG, runner, ZfsCli(runner), lambda: engine))
    assert synced.skipped_in_use == [target("pc01")]  # not cut off
    has = engine.chaps.get("pc01", chap("pc01"))  # what the engine has now
    assert has is not None
    if script_path("pc01") in runner.files:
        assert f"set password {has.secret}\n" in runner.files[script_path("pc01")].decode()
    if secret_path("pc01") in runner.files:
        assert json.loads(runner.files[secret_path("pc01")])["secret"] == has.secret


class Recording:
    """An engine with pc01 exported (with the secret KEPT when chap) and, when
    logged_in, pc01's machine logged in; records the CHAP of every export it
    is asked to make."""

    name, lun = "lio", 0

    def __init__(self, logged_in: bool) -> None:
        self.logged_in = logged_in
        self.chaps: dict[str, Chap | None] = {}

    def exports(self) -> dict[str, Export]:
        return {target("pc01"): export("pc01")}

    def sessions(self, targets: Iterable[str]) -> dict[str, list[str]]:
        return {target("pc01"): [initiator("pc01")]} if self.logged_in else {}

    def apply(
        self, create: Iterable[Export] = (), delete: Iterable[str] = (), persist: bool = True
    ) -> None:
        self.chaps.update({e.host: e.chap for e in create})


def lenient(world: tuple[str, str], scripts: str = "") -> RecordingRunner:
    """A runner answering the survey's reads from world (for the checks
    below that must not depend on the order a fix would choose)."""
    answers = {
        LIST_ARGV: world[0],
        GET_ARGV: world[1],
        SCRIPTS_ARGV: scripts,
        CAPACITY_ARGV: "4096\n995904\n",
    }
    return RecordingRunner(lambda argv, _: Result(argv, 0, answers.get(argv, "").encode(), b""))


def test_sync_finishes_a_rollback_cut_short_after_the_clone_like_rollback_does() -> None:
    runner = lenient(cloned_but_unmarked())
    engine = Recording(logged_in=False)
    synced = sync.sync(Context(CONFIG, runner, ZfsCli(runner), lambda: engine))
    assert synced.finished == ["pc01"] and synced.errors == []
    marks = [c for c in runner.commands if c[:2] == ("zfs", "set") and c[-1] == HALF]
    assert marks and "org.zboot:kind=archive" in marks[0]


def test_a_failed_channel_program_says_the_same_command_finishes_it() -> None:
    world = fleet(host("pc01"))
    t = Transcript(
        [
            *state_reads(world),
            Sessions([target("pc01")], {}),
            zfs_set(DESTROYING, disk("pc01")),
            Apply(delete=[target("pc01")]),
            Run("rm", "-f", "--", secret_path("pc01")),
            Remove(script_path("pc01")),
            Run(
                *destroy_program(disk("pc01")).argv,
                input=program.DESTROY.encode(),
                rc=1,
                err="cannot open 'tank': pool I/O is currently suspended\n",
            ),
        ]
    )
    try:
        [left] = destroy_ops.destroy(context(t), [HostName("pc01")], force=False)
        error = left.error
    except CommandFailed as err:
        error = err
    t.assert_done()
    assert error is not None and "zboot destroy pc01 finishes it" in (error.hint or "")


# --- the transcript itself --------------------------------------------------------------


def test_an_unexpected_command_fails_at_once_with_what_was_expected() -> None:
    t = Transcript([Run("zfs", "version"), Run("true")])
    with pytest.raises(AssertionError) as failed:
        t.run(["zfs", "list"])
    message = str(failed.value)
    assert "step 1 of 2" in message and "expected: run zfs version" in message
    assert "got:      run zfs list" in message and "argument 1" in message
    with pytest.raises(AssertionError):  # swallowed by a workflow, it fails the end too
        t.assert_done()


def test_a_missing_step_fails_at_the_end() -> None:
    t = Transcript([Run("zfs", "version", out="zfs-2.3.2\n"), Remove("/srv/x")])
    assert t.run(["zfs", "version"]).text == "zfs-2.3.2\n"
    with pytest.raises(AssertionError, match=r"1 expected steps did not happen:\n    2\. remove"):
        t.assert_done()
    t.remove_file("/srv/x")
    t.assert_done()


def test_order_matters_between_commands_files_and_the_engine() -> None:
    t = Transcript([Run("mkdir", "-p", BOOT), Apply(delete=["t1"]), Write("/srv/a", 0o600)])
    with pytest.raises(AssertionError, match="a Run was expected"):
        t.engine().apply(delete=["t1"])
    t = Transcript([Run("mkdir", "-p", BOOT), Apply(delete=["t1"]), Write("/srv/a", 0o600)])
    t.run(["mkdir", "-p", BOOT])
    t.engine().apply(delete=["t1"])
    with pytest.raises(AssertionError, match="mode: expected 0600, got 0644"):
        t.write_file("/srv/a", b"x")


def test_placeholders_bind_across_steps() -> None:
    t = Transcript([Run("zfs", "rename", "a", ARCHIVE), Run("zfs", "destroy", ARCHIVE)])
    t.run(["zfs", "rename", "a", "tank/zboot/archive/pc01-20261121-101010"])
    with pytest.raises(AssertionError, match="argument 2"):
        t.run(["zfs", "destroy", "tank/zboot/archive/pc01-20261121-101011"])


def test_a_chain_stops_at_its_failing_step_and_chains_are_grouped() -> None:
    t = Transcript([Chains([Run("a"), Run("b", rc=3, err="no")], [Run("c")]), Chains([Run("d")])])
    first, second = t.run_chains([[["a"], ["b"], ["never"]], [["c"]]])
    assert first is not None and (first.step, first.result.returncode) == (1, 3)
    assert second is None
    with pytest.raises(AssertionError, match="1 chains expected, 2 given"):
        t.run_chains([[["d"]], [["e"]]])


def test_failing_commands_and_missing_files_answer_like_a_server() -> None:
    t = Transcript(
        [
            Run("zfs", "destroy", "x", rc=1, err="cannot destroy 'x': dataset is busy\n"),
            Read("/etc/zboot/secrets/x.chap"),
            Hold("agent", out="ready\n"),
            Release("agent"),
        ]
    )
    with pytest.raises(CommandFailed, match="busy"):
        t.run(["zfs", "destroy", "x"])
    with pytest.raises(NotFound):
        t.read_file("/etc/zboot/secrets/x.chap")
    t.hold(["agent"], "ready", lambda line: None).release()
    t.assert_done()


class ShowsChap(Recording):
    """An engine that also shows the CHAP its targets have (as digests) and
    its orphan storage objects, as LIO does: pc01's target has `has`."""

    def __init__(self, logged_in: bool, has: Chap, orphans: dict[str, str] | None = None) -> None:
        super().__init__(logged_in)
        self.has, self.orphans = has, dict(orphans or {})
        self.removed: list[str] = []

    def chap_digests(self) -> dict[str, str]:
        return {target("pc01"): digest(self.has)}

    def orphan_stores(self) -> dict[str, str]:
        return dict(self.orphans)

    def remove_stores(self, names: Iterable[str]) -> None:
        self.removed += names


def chap_server() -> RecordingRunner:
    """pc01 with CHAP, its secret file holding KEPT, its script as written."""
    listing = f"\x1e{script_path('pc01').rsplit('/', 1)[1]}\n" + script("pc01", chap=chap("pc01"))
    world = fleet(host("pc01", chap="one-way"))
    answers = {
        LIST_ARGV: world[0],
        GET_ARGV: world[1],
        SCRIPTS_ARGV: listing,
        SECRETS_ARGV: "pc01.chap\n",
        CAPACITY_ARGV: "4096\n995904\n",
    }

    def respond(argv: tuple[str, ...], _: bytes | None) -> Result:
        if argv[-1] == secret_path("pc01") and argv[:2] == ("sh", "-c"):  # the files' digests
            return Result(argv, 0, f"\x1e{argv[-1]}\n{secret_file('pc01')}".encode(), b"")
        return Result(argv, 0, answers.get(argv, "").encode(), b"")

    return RecordingRunner(respond, files={secret_path("pc01"): secret_file("pc01").encode()})


STALE = Chap(initiator("pc01"), "AAAAAAAAAAAAAAAA")  # not the secret file's


def test_sync_exports_a_target_whose_chap_is_not_the_files_again() -> None:
    runner, engine = chap_server(), ShowsChap(logged_in=False, has=STALE)
    context_ = Context(CONFIG, runner, ZfsCli(runner), lambda: engine)
    found = doctor.survey(context_)
    assert [(f.kind, f.subject) for f in found.findings] == [("wrong-secret", "pc01")]
    synced = sync.sync(context_)
    assert synced.created == [target("pc01")] and engine.chaps["pc01"] == chap("pc01")


def test_sync_leaves_a_logged_in_target_whose_chap_is_not_the_files_alone() -> None:
    runner, engine = chap_server(), ShowsChap(logged_in=True, has=STALE)
    synced = sync.sync(Context(CONFIG, runner, ZfsCli(runner), lambda: engine))
    assert synced.created == [] and engine.chaps == {}
    assert synced.skipped_in_use == [target("pc01")]
    assert script_path("pc01") not in runner.files  # its script not rewritten either


def test_doctor_says_what_an_engine_that_does_not_show_chap_left_unchecked() -> None:
    runner, engine = chap_server(), Recording(logged_in=False)
    found = doctor.survey(Context(CONFIG, runner, ZfsCli(runner), lambda: engine))
    assert found.chaps is None and found.findings == []
    assert found.not_checked == ["CHAP secrets of the targets: the lio engine does not show them"]


def test_sync_removes_this_roots_orphan_storage_objects() -> None:
    orphans = {
        "zboot-pc07": "/dev/zvol/tank/zboot/hosts/pc07",
        "zboot-pc08": "/dev/zvol/other/zboot/hosts/pc08",  # another root's
    }
    runner = chap_server()
    engine = ShowsChap(logged_in=False, has=chap("pc01"), orphans=orphans)
    synced = sync.sync(Context(CONFIG, runner, ZfsCli(runner), lambda: engine))
    assert engine.removed == ["zboot-pc07"]
    assert "storage object zboot-pc07" in synced.removed


def test_doctor_reads_the_engine_beside_zfs_and_finds_the_same() -> None:
    def surveyed(side_by_side: bool) -> tuple[doctor.Survey, RecordingRunner]:
        runner, engine = chap_server(), ShowsChap(logged_in=False, has=STALE)
        context_ = Context(CONFIG, runner, ZfsCli(runner), lambda: engine)
        return doctor.survey(context_, side_by_side=side_by_side), runner

    found, found_commands = [], []
    for side_by_side in (False, True):
        survey, runner = surveyed(side_by_side)
        found.append(survey)
        found_commands.append(sorted(runner.commands))
    assert found_commands[0] == found_commands[1]  # the same reads, in another order
    assert [(f.kind, f.subject) for f in found[1].findings] == [("wrong-secret", "pc01")]
    assert found[0].findings == found[1].findings
    assert found[0].exports == found[1].exports and found[0].state == found[1].state
