"""Property sets as channel programs (ZfsCli.set_many, mark, run_changes):
`zfs set` waits for a transaction group per dataset it names, a program
setting a whole batch waits once. What runs, in what order, how a failure
stays with its dataset, and the fallback for a ZFS whose programs cannot set
properties."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from zboot.errors import NotFound, ServerError
from zboot.remote.base import Result
from zboot.remote.plan import PlanRunner
from zboot.testing.recording import RecordingRunner, program_sets
from zboot.zfs import program
from zboot.zfs.cli import Change, PlannedZfs, ZfsCli

HOSTS = "tank/z/hosts"


def answer(codes: dict[str, int] | str) -> bytes:
    return json.dumps({"return": codes}).encode()


def is_set_program(argv: tuple[str, ...], data: bytes | None) -> bool:
    return argv[:2] == ("zfs", "program") and data == program.SET_PROPS.encode()


def failing(dataset: str, code: int = 2) -> RecordingRunner:
    """A server whose set programs fail for dataset with errno code."""

    def respond(argv: tuple[str, ...], data: bytes | None) -> Result:
        if is_set_program(argv, data):
            names = [name for name, _ in program_sets(argv)]
            codes = {str(n): code if name == dataset else 0 for n, name in enumerate(names, 1)}
            return Result(argv, 0, answer(codes), b"")
        return Result(argv, 0, b"", b"")

    return RecordingRunner(respond)


def old_zfs() -> RecordingRunner:
    """A ZFS whose channel programs have no zfs.sync.set_prop."""

    def respond(argv: tuple[str, ...], data: bytes | None) -> Result:
        if is_set_program(argv, data):
            return Result(argv, 0, answer(program.NO_SET_PROP), b"")
        return Result(argv, 0, b"", b"")

    return RecordingRunner(respond)


def destroys_go() -> RecordingRunner:
    """A server where every destroy program goes through."""

    def respond(argv: tuple[str, ...], data: bytes | None) -> Result:
        if argv[:2] == ("zfs", "program") and data == program.DESTROY.encode():
            return Result(argv, 0, answer(dict.fromkeys(argv[5:], 0)), b"")
        return Result(argv, 0, b"", b"")

    return RecordingRunner(respond)


def rollback_tail(host: str) -> list[Change]:
    """A rollback's steps after the rename: the clone, the archive's mark."""
    return [
        Change.clone("tank/z/images/gold@v1", f"{HOSTS}/{host}", {"state": "rolling-back"}),
        Change.set(f"tank/z/archive/{host}-1", {"kind": "archive", "state": "archived"}),
    ]


def verbs(runner: RecordingRunner) -> list[str]:
    return [c[1] for c in runner.commands]


def test_the_sets_of_a_batch_are_one_program_after_its_clones() -> None:
    runner = RecordingRunner()
    outcomes = ZfsCli(runner).run_changes([rollback_tail(f"pc{n}") for n in range(4)])
    assert outcomes == [None] * 4
    assert verbs(runner) == ["clone"] * 4 + ["program"]
    assert program_sets(runner.commands[-1]) == [
        (f"tank/z/archive/pc{n}-1", {"org.zboot:kind": "archive", "org.zboot:state": "archived"})
        for n in range(4)
    ]


def test_a_lone_chain_runs_whole_with_zfs_set() -> None:
    runner = RecordingRunner()
    assert ZfsCli(runner).run_changes([rollback_tail("pc0")]) == [None]
    assert verbs(runner) == ["clone", "set"]


def test_steps_between_sets_go_together_and_each_chain_keeps_its_order() -> None:
    runner = destroys_go()
    chain = [
        Change.set(f"{HOSTS}/{{h}}", {"step": "planned"}),
        Change.rename(f"{HOSTS}/{{h}}", "tank/z/archive/{h}"),
        Change.clone("tank/z/images/gold@v1", f"{HOSTS}/{{h}}"),
        Change.set("tank/z/archive/{h}", {"kind": "archive"}),
        Change.destroy("tank/z/archive/{h}", recursive=True),
    ]
    hosts = ("a", "b", "c")
    chains = [
        [replace(c, names=tuple(n.format(h=h) for n in c.names)) for c in chain] for h in hosts
    ]
    ZfsCli(runner).run_changes(chains)
    assert verbs(runner) == ["program", *["rename", "clone"] * 3, "program", "program"]
    for h in hosts:
        mine = [c[1] for c in runner.commands if any(a.split("/")[-1] == h for a in c[2:])]
        assert mine == ["program", "rename", "clone", "program", "program"]
    assert runner.commands[-1][5:] == tuple(f"tank/z/archive/{h}" for h in hosts)
    assert runner.inputs[-1] == program.DESTROY.encode()


def test_recursive_destroys_of_several_chains_are_one_program_a_lone_one_a_command() -> None:
    runner = destroys_go()
    chains = [[Change.destroy(f"tank/z/archive/{h}", recursive=True)] for h in "ab"]
    assert ZfsCli(runner).run_changes(chains) == [None, None]
    assert verbs(runner) == ["program"]
    runner.commands.clear()
    chains = [[Change.destroy("tank/z/archive/a", recursive=True)], [Change.promote("tank/z/b")]]
    ZfsCli(runner).run_changes(chains)
    assert runner.commands == [
        ("zfs", "destroy", "-r", "tank/z/archive/a"),
        ("zfs", "promote", "tank/z/b"),
    ]


def test_a_set_that_fails_stops_its_chain_alone() -> None:
    runner = failing("tank/z/archive/pc1-1")
    chains = [[*rollback_tail(f"pc{n}"), Change.promote(f"{HOSTS}/pc{n}")] for n in range(3)]
    outcomes = ZfsCli(runner).run_changes(chains)
    assert outcomes[0] is None and outcomes[2] is None
    failed = outcomes[1]
    assert failed is not None and failed.step == 1 and isinstance(failed.error, NotFound)
    promoted = [c[2] for c in runner.commands if c[1] == "promote"]
    assert promoted == [f"{HOSTS}/pc0", f"{HOSTS}/pc2"]


def test_a_program_that_fails_as_a_whole_fails_each_of_its_chains() -> None:
    def respond(argv: tuple[str, ...], data: bytes | None) -> Result:
        if is_set_program(argv, data):
            return Result(argv, 1, b"", b"cannot open 'tank': pool I/O is currently suspended\n")
        return Result(argv, 0, b"", b"")

    outcomes = ZfsCli(RecordingRunner(respond)).run_changes(
        [rollback_tail("a"), rollback_tail("b")]
    )
    assert all(o is not None and o.step == 1 for o in outcomes)
    assert all(o is not None and isinstance(o.error, ServerError) for o in outcomes)


def test_without_set_prop_each_set_is_a_zfs_set_from_then_on() -> None:
    runner = old_zfs()
    zfs = ZfsCli(runner)
    assert zfs.run_changes([rollback_tail("a"), rollback_tail("b")]) == [None, None]
    assert verbs(runner) == ["clone", "clone", "program", "set", "set"]
    runner.commands.clear()
    zfs.mark([f"{HOSTS}/a", f"{HOSTS}/b"], {"state": "ready"})  # no second try
    assert runner.commands == [
        ("zfs", "set", "org.zboot:state=ready", f"{HOSTS}/a"),
        ("zfs", "set", "org.zboot:state=ready", f"{HOSTS}/b"),
    ]


def test_mark_is_zfs_set_for_one_disk_and_a_program_for_more() -> None:
    runner = RecordingRunner()
    zfs = ZfsCli(runner)
    zfs.mark([f"{HOSTS}/a"], {"state": "ready"})
    zfs.mark([f"{HOSTS}/a", f"{HOSTS}/b"], {"state": "ready"})
    zfs.mark([], {"state": "ready"})
    assert runner.commands[0] == ("zfs", "set", "org.zboot:state=ready", f"{HOSTS}/a")
    assert program_sets(runner.commands[1]) == [
        (f"{HOSTS}/a", {"org.zboot:state": "ready"}),
        (f"{HOSTS}/b", {"org.zboot:state": "ready"}),
    ]
    assert len(runner.commands) == 2


def test_mark_sets_the_others_then_raises_for_a_missing_disk() -> None:
    runner = failing(f"{HOSTS}/b")
    with pytest.raises(NotFound, match=f"{HOSTS}/b"):
        ZfsCli(runner).mark([f"{HOSTS}/a", f"{HOSTS}/b", f"{HOSTS}/c"], {"state": "ready"})
    assert len(runner.commands) == 1  # one program: a and c set, b told


def test_a_batch_too_big_for_one_command_line_is_cut_into_programs() -> None:
    value = "x" * 1000
    props = [(f"{HOSTS}/pc{n:03}", {"org.zboot:note": value}) for n in range(200)]
    batches = program.set_batches(props)
    assert [i for _, part in batches for i in part] == list(range(200))
    for pool, part in batches:
        argv = program.set_props_argv(pool, [props[i] for i in part])
        assert sum(len(arg) + 1 for arg in argv[5:]) <= program.MAX_ARGS
    assert len(batches) == 4


def test_each_pool_gets_its_own_program() -> None:
    props = [("tank/a", {"k:p": "1"}), ("other/b", {"k:p": "1"}), ("tank/c", {"k:p": "1"})]
    assert program.set_batches(props) == [("tank", [0, 2]), ("other", [1])]


def test_a_dry_run_lists_the_program_and_assumes_it_goes_through() -> None:
    inner = RecordingRunner()
    plan = PlanRunner(inner, execute=False)
    outcomes = PlannedZfs(plan).run_changes([rollback_tail("a"), rollback_tail("b")])
    assert outcomes == [None, None]
    assert inner.commands == []  # nothing ran
    assert [line.split()[1] for line in plan.changes] == ["clone", "clone", "program"]


@pytest.mark.parametrize("value", ["", "a=b c", "line\nbreak"])
def test_values_reach_the_program_as_given(value: str) -> None:
    runner = RecordingRunner()
    ZfsCli(runner).set_many([("tank/a", {"note": value}), ("tank/b", {"org.x:y": "1"})])
    assert program_sets(runner.commands[0]) == [
        ("tank/a", {"org.zboot:note": value}),
        ("tank/b", {"org.x:y": "1"}),
    ]
