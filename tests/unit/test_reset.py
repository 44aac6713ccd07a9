"""zboot reset, ephemeral and keep against a strict transcript (transcript.py):
a batch of resets costs what one does, a machine other than the host's own
refuses its host, the host's own stale session is cut off, and every reset
is recorded on the new disk."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_cli_errors import CONFIG as UNREACHABLE
from test_cli_errors import invoke
from test_ops import CONFIG, CUT_SHORT_GET, CUT_SHORT_LIST, changes, world
from test_workflow_transcripts import (
    GOLDEN_V1,
    HALF,
    ROLLED_BACK,
    archive_mark,
    cloned,
    context,
    destroy_program,
    disk,
    export,
    fleet,
    host,
    initiator,
    mark,
    moved_disk,
    planned,
    prop,
    set_program,
    state_reads,
    target,
    zfs_set,
)
from transcript import Apply, Chains, Like, Run, Sessions, Step, Transcript

from zboot.errors import Conflict, InvalidInput, NotFound
from zboot.names import HostName
from zboot.ops.context import Context
from zboot.ops.hostfile import HostSpec
from zboot.ops.provision import clone
from zboot.ops.reset import reset_hosts, set_flag
from zboot.ops.rollback import rollback_hosts
from zboot.targets.base import NoEngine
from zboot.zfs.cli import ZfsCli

USED = "8192"  # every sample host's `used` (test_workflow_transcripts.host)


def archive(n: int) -> Like:
    return Like(f"tank/zboot/archive/pc{n:02}-<stamp{n}>")


def reset_clone(name: str, arch: str, after: str = "1", discarded: str = USED, **old: str) -> Run:
    """The new disk: the old record, the discarding plan, the reset's record
    (rollback's new disk with the reset's properties before rolled-back)."""
    record = {"last_reset": "<time>", "reset_discarded": discarded, "resets": after}
    # a property the old record has keeps its place, with the new value
    kept = {k.replace("_", "-"): record.get(k, v) for k, v in old.items()}
    argv = list(cloned(name, arch, discard=True, **kept).argv)
    new = {k.replace("_", "-"): v for k, v in record.items() if k not in old}
    options = [a for k, v in new.items() for a in ("-o", prop(k, v))]
    return Run(*argv[:-4], *options, *argv[-4:])


def reset_steps(names: list[str], after: str = "1", **old: str) -> list[Step]:
    """Every step of a reset of names (all of them go through); old: more of
    their record before, resets: the count after."""
    n = [int(h.removeprefix("pc")) for h in names]
    plans = [planned(h, archive(i), discard=True) for h, i in zip(names, n, strict=True)]
    clones = [reset_clone(h, archive(i), after, **old) for h, i in zip(names, n, strict=True)]
    marks = [archive_mark(archive(i)) for i in n]
    if len(names) == 1:  # one chain a step
        destroy = Run("zfs", "destroy", "-r", archive(n[0]))
        moves: list[Step] = [Chains(plans), Chains([*clones, *marks, destroy])]
    else:  # the property sets, and the destroys, of several chains: a program each
        moves = [set_program(*plans), Chains(*([c] for c in clones)), set_program(*marks)]
        moves.append(destroy_program(*(archive(i) for i in n)))
    renames = [Run("zfs", "rename", disk(h), archive(i)) for h, i in zip(names, n, strict=True)]
    return [
        moves[0],
        Apply(delete=[target(h) for h in names], persist=False),
        Chains(*([r] for r in renames)),
        *moves[1:],
        Apply(create=[export(h) for h in names]),
        mark(ROLLED_BACK, *(disk(h) for h in names)),
        take_base(*names),
    ]


def take_base(*names: str) -> Run:
    """The new disks as cloned become their base: one atomic snapshot."""
    return Run("zfs", "snapshot", *(f"{disk(h)}@zboot-base" for h in names))


def with_base(name: str, **props: str) -> tuple[str, str]:
    """A host (host()) whose disk has its base snapshot."""
    listed, got = host(name, **props)
    fields = [f"{disk(name)}@zboot-base", "snapshot", "0", "69632", "-", "-", "1795239999", "1.00"]
    return listed + "\t".join(fields) + "\n", got


def in_place(name: str, after: str = "1") -> list[Run]:
    record = {"last-reset": "<time>", "reset-discarded": USED, "resets": after}
    return [
        Run("zfs", "rollback", f"{disk(name)}@zboot-base"),
        Run("zfs", "set", *(Like(prop(k, v)) for k, v in record.items()), disk(name)),
    ]


def in_place_batch(names: list[str]) -> list[Step]:
    """in_place of each host: one chain each; for several hosts, the records
    in a channel program after the rollbacks."""
    if len(names) == 1:
        return [Chains(in_place(names[0]))]
    return [
        Chains(*([in_place(h)[0]] for h in names)),
        set_program(*(in_place(h)[1] for h in names)),
    ]


def engine_calls(steps: list[Step]) -> int:
    return sum(isinstance(s, Apply | Sessions) for s in steps)


@pytest.mark.parametrize("count", [1, 10])
def test_a_batch_of_resets_costs_what_one_does(count: int) -> None:
    names = [f"pc{i:02}" for i in range(1, count + 1)]
    tail = reset_steps(names)
    t = Transcript(
        [
            *state_reads(fleet(*(host(h) for h in names))),
            Sessions([target(h) for h in names], {}),
            *tail,
        ]
    )
    results = reset_hosts(context(t), [HostName(h) for h in names])
    t.assert_done()
    assert [r.error for r in results] == [None] * count
    assert [(r.discarded, r.resets, r.source) for r in results] == [(8192, 1, GOLDEN_V1)] * count
    # one sessions call, one apply down, one up; zfs, whatever the count:
    # the plans, the renames, the clones (with the archives' marks and
    # destroys: for several hosts, a channel program each after them), the
    # ready mark and the base snapshot, each one shell or one command
    assert engine_calls(tail) + 1 == 3
    assert len(tail) - engine_calls(tail) == (5 if count == 1 else 7)


def test_another_machine_logged_in_refuses_its_host_alone() -> None:
    names = ["pc01", "pc02"]
    foreign = "iqn.1993-08.org.debian:01:intruder"
    t = Transcript(
        [
            *state_reads(fleet(*(host(h) for h in names))),
            Sessions([target(h) for h in names], {target("pc01"): [initiator("pc01"), foreign]}),
            *reset_steps(["pc02"]),  # pc01 is not touched at all
        ]
    )
    refused, done = reset_hosts(context(t), [HostName(h) for h in names])
    t.assert_done()
    assert isinstance(refused.error, Conflict) and refused.error.exit_code == 4
    assert foreign in refused.error.message and initiator("pc01") not in refused.error.message
    assert done.error is None


def test_the_hosts_own_stale_session_is_cut_off() -> None:
    """Its machine is booting again: the session its last boot left goes with
    the export (rollback forced, no second sessions call)."""
    t = Transcript(
        [
            *state_reads(fleet(host("pc01"))),
            Sessions([target("pc01")], {target("pc01"): [initiator("pc01")]}),
            *reset_steps(["pc01"]),
        ]
    )
    [done] = reset_hosts(context(t), [HostName("pc01")])
    t.assert_done()
    assert done.error is None


def test_the_count_goes_on_from_the_record() -> None:
    before = {"resets": "2", "last_reset": "2026-01-01T00:00:00Z"}
    t = Transcript(
        [
            *state_reads(fleet(host("pc01", **before))),
            Sessions([target("pc01")], {}),
            *reset_steps(["pc01"], "3", **before),
        ]
    )
    [done] = reset_hosts(context(t), [HostName("pc01")])
    t.assert_done()
    assert done.resets == 3


def test_an_unfinished_host_fails_alone_and_nothing_runs_for_it() -> None:
    t = Transcript(
        [
            *state_reads(fleet(host("pc01", state="switching", step="mode:local"))),
        ]
    )
    [refused, unknown] = reset_hosts(context(t), [HostName("pc01"), HostName("pc09")])
    t.assert_done()
    assert isinstance(refused.error, Conflict) and refused.error.hint == "zboot sync finishes it"
    assert isinstance(unknown.error, NotFound)


def test_a_reset_cut_short_after_the_rename_is_finished_by_the_next_reset() -> None:
    """The old disk waits in the archive with the discarding plan on it: the
    next reset clones the new disk, records the reset and destroys the old."""
    listed, got = moved_disk()
    got += f"{HALF}\torg.zboot:rollback-discard\ton\n"
    t = Transcript(
        [
            *state_reads(fleet((listed, got))),
            Sessions([target("pc01")], {}),
            Apply(delete=[target("pc01")], persist=False),
            Chains(
                [
                    # the old disk had moved: what it held is not known
                    reset_clone("pc01", HALF, "1", "", step="rollback:cloned"),
                    archive_mark(HALF),
                    Run("zfs", "destroy", "-r", HALF),
                ]
            ),
            Apply(create=[export("pc01")]),
            zfs_set(ROLLED_BACK, disk("pc01")),
            take_base("pc01"),
        ]
    )
    [done] = reset_hosts(context(t), [HostName("pc01")])
    t.assert_done()
    assert done.error is None


def test_sync_finishing_a_discarding_rollback_discards() -> None:
    """sync finishes rollbacks without --discard; a plan that discards says so
    on the disk, so the old state still goes (before: kept in the archive)."""
    runner = world(CUT_SHORT_LIST, CUT_SHORT_GET + f"{HALF}\torg.zboot:rollback-discard\ton\n")
    [plan] = rollback_hosts(ZfsCli(runner), CONFIG, [HostName("pc01")], None, False)
    assert plan.error is None
    assert ("zfs", "destroy", "-r", HALF) in changes(runner)


def test_a_discarding_rollback_cut_short_after_the_clone_still_discards() -> None:
    listed, got = host(
        "pc01",
        state="rolling-back",
        step="rollback:cloned",
        rollback_to=GOLDEN_V1,
        rollback_archive=HALF,
        rollback_discard="on",
    )
    runner = world(*fleet((listed, got), moved_disk()))
    [plan] = rollback_hosts(ZfsCli(runner), CONFIG, [HostName("pc01")], None, False)
    assert plan.error is None
    assert changes(runner)[-1] == ("zfs", "destroy", "-r", HALF)


def test_a_later_plain_rollback_clears_an_earlier_discard() -> None:
    runner = world(*fleet(host("pc01", rollback_discard="on")))
    [plan] = rollback_hosts(ZfsCli(runner), CONFIG, [HostName("pc01")], None, False)
    assert plan.error is None
    assert "org.zboot:rollback-discard=" in changes(runner)[0]
    assert not any(c[1] == "destroy" for c in changes(runner))


def test_ephemeral_and_keep_are_one_command_for_the_batch() -> None:
    t = Transcript(
        [
            *state_reads(fleet(host("pc01"), host("pc02"))),
            mark({"keep": "on"}, disk("pc01"), disk("pc02")),
            *state_reads(fleet(host("pc01"), host("pc02"))),
            zfs_set({"ephemeral": ""}, disk("pc02")),
        ]
    )
    c = context(t)
    done = set_flag(c, [HostName("pc01"), HostName("pc02")], "keep", "on")
    assert [r.error for r in done] == [None, None]
    unknown, off = set_flag(c, [HostName("pc09"), HostName("pc02")], "ephemeral", "off")
    t.assert_done()
    assert isinstance(unknown.error, NotFound) and off.error is None
    with pytest.raises(InvalidInput):
        set_flag(c, [HostName("pc01")], "keep", "yes")


def test_clone_ephemeral_sets_it_in_the_clones_own_properties() -> None:
    runner = world()
    specs = [HostSpec("pc02", "52:54:00:aa:00:02")]
    [one] = clone(Context(CONFIG, runner, ZfsCli(runner), NoEngine), "golden", specs, True)
    assert one.error is None
    [made, _ready, base] = changes(runner)
    assert made[:2] == ("zfs", "clone") and "org.zboot:ephemeral=on" in made
    assert base == ("zfs", "snapshot", "tank/zboot/hosts/pc02@zboot-base")


@pytest.mark.parametrize("count", [1, 10])
def test_a_disk_with_its_base_is_rolled_back_in_place(count: int) -> None:
    """No rename, no clone, no engine call: each disk back to its base, the
    reset recorded, the page cache of its device dropped."""
    names = [f"pc{i:02}" for i in range(1, count + 1)]
    t = Transcript(
        [
            *state_reads(fleet(*(with_base(h) for h in names))),
            Sessions([target(h) for h in names], {}),
            *in_place_batch(names),
            Run("blockdev", "--flushbufs", *(f"/dev/zvol/{disk(h)}" for h in names)),
        ]
    )
    results = reset_hosts(context(t), [HostName(h) for h in names])
    t.assert_done()
    assert [(r.error, r.resets, r.discarded) for r in results] == [(None, 1, 8192)] * count


def test_in_place_a_stale_session_of_the_hosts_own_machine_is_ended() -> None:
    """Its export comes down and goes back up around the rollback."""
    t = Transcript(
        [
            *state_reads(fleet(with_base("pc01"), with_base("pc02"))),
            Sessions([target("pc01"), target("pc02")], {target("pc01"): [initiator("pc01")]}),
            Apply(delete=[target("pc01")], persist=False),
            *in_place_batch(["pc01", "pc02"]),
            Apply(create=[export("pc01")]),
            Run("blockdev", "--flushbufs", *(f"/dev/zvol/{disk(h)}" for h in ("pc01", "pc02"))),
        ]
    )
    results = reset_hosts(context(t), [HostName("pc01"), HostName("pc02")])
    t.assert_done()
    assert [r.error for r in results] == [None, None]


def test_reset_without_yes_and_without_a_terminal_is_refused_before_connecting(
    tmp_path: Path,
) -> None:
    config = tmp_path / "zboot.toml"
    config.write_text(UNREACHABLE)
    code, envelope = invoke(config, "reset", "pc1")
    assert code == 2 and "--yes" in envelope["errors"][0]["message"]
    code, envelope = invoke(config, "keep", "pc1", "maybe")
    assert code == 2 and "on or off" in envelope["errors"][0]["message"]
    code, envelope = invoke(config, "reset", "pc1", "--yes")
    assert code == 5  # on to the (unreachable) server
