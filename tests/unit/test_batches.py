"""Batches without a server: many commands in one shell (run for real by the
local sh), zfs changes as chains that fail alone, and the batch forms of
snapshot and rollback."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_ops import CONFIG, changes, world

from zboot.cli.batch import HostResult, batch_outcome
from zboot.errors import CommandFailed, Conflict, NotFound, ServerError
from zboot.names import HostName, SnapshotName
from zboot.ops import hosts
from zboot.ops.rollback import rollback_hosts
from zboot.remote.base import Result
from zboot.remote.chains import parse, run_in_shells
from zboot.remote.local import LocalRunner
from zboot.remote.plan import PlanRunner
from zboot.testing.recording import RecordingRunner
from zboot.zfs.cli import Change, PlannedZfs, ZfsCli
from zboot.zfs.program import parse_destroyed


def test_each_chain_stops_at_its_first_failure_and_the_others_go_on() -> None:
    runner = LocalRunner()
    chains = [
        [["true"], ["sh", "-c", "echo out; echo err >&2; exit 3"], ["touch", "/no/x"]],
        [["echo", "fine"]],
        [["false"]],
    ] * 7  # 21 chains: three shells of at most 10
    outcomes = run_in_shells(runner, chains)
    assert len(outcomes) == 21
    for first, second, third in zip(outcomes[::3], outcomes[1::3], outcomes[2::3], strict=True):
        assert first is not None and first.step == 1
        assert first.result.returncode == 3 and first.result.stderr == b"out\nerr"
        assert second is None
        assert third is not None and (third.step, third.result.argv) == (0, ("false",))
    # what the runner records is each step that was meant to run, not the shell
    assert (
        runner.commands[0] == ("true",)
        and ("sh", "-c", "echo out; echo err >&2; exit 3") in runner.commands
        and not any(c[:2] == ("sh", "-c") and "zboot-chain" in c[2] for c in runner.commands)
    )


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.text(alphabet=st.characters(codec="utf-8", blacklist_characters="\x00"), max_size=20),
        min_size=1,
        max_size=4,
    )
)
def test_any_argument_reaches_its_command_unchanged(args: list[str]) -> None:
    outcomes = run_in_shells(
        LocalRunner(), [[["sh", "-c", 'printf "%s|" "$@"; exit 9', "sh", *args]]]
    )
    [failed] = outcomes
    assert failed is not None and failed.result.returncode == 9
    assert failed.result.stderr.decode() == "".join(a + "|" for a in args).strip("\n")


def test_a_shell_that_broke_off_is_a_server_error() -> None:
    def respond(argv: tuple[str, ...], _: bytes | None) -> Result:
        return Result(argv, 137, b"zboot-chain-x 0 0\n", b"Killed")

    with pytest.raises(ServerError, match=r"broke off.*Killed"):
        run_in_shells(RecordingRunner(respond), [[["true"]], [["true"]]])
    with pytest.raises(ValueError, match="1 of 2"):
        parse([[["a"]], [["b"]]], "m 0 0\n", "m")


def test_run_changes_reports_the_failed_step_as_a_typed_error() -> None:
    def respond(argv: tuple[str, ...], _: bytes | None) -> Result:
        if argv[:2] == ("zfs", "rename"):
            return Result(argv, 1, b"", b"cannot open 'tank/x': dataset does not exist\n")
        return Result(argv, 0, b"", b"")

    runner = RecordingRunner(respond)
    outcomes = ZfsCli(runner).run_changes(
        [
            [
                Change.set("tank/a", {"state": "x"}),
                Change.rename("tank/a", "tank/b"),
                Change.promote("tank/b"),
            ],
            [Change.clone("tank/i@v1", "tank/c", {"mac": "m"})],
        ]
    )
    failed, fine = outcomes
    assert fine is None
    assert failed is not None and failed.step == 1 and isinstance(failed.error, NotFound)
    assert ("zfs", "promote", "tank/b") not in runner.commands
    assert ("zfs", "clone", "-o", "org.zboot:mac=m", "tank/i@v1", "tank/c") in runner.commands


def test_one_zfs_snapshot_for_every_host_and_a_bad_host_fails_alone() -> None:
    runner = world()
    point, failed = hosts.snapshot_hosts(
        ZfsCli(runner), CONFIG, [HostName("pc01"), HostName("pc99")], SnapshotName("before")
    )
    assert point == "before" and list(failed) == ["pc99"] and isinstance(failed["pc99"], NotFound)
    [snap] = changes(runner)
    assert snap[:2] == ("zfs", "snapshot") and snap[-1] == "tank/zboot/hosts/pc01@before"


def test_a_batch_rollback_runs_one_chain_per_host_and_an_unknown_host_fails_alone() -> None:
    runner = world()
    [known, unknown] = rollback_hosts(
        ZfsCli(runner), CONFIG, [HostName("pc01"), HostName("pc77")], None
    )
    assert known.error is None and known.disk_exists
    assert isinstance(unknown.error, NotFound) and unknown.changes == []
    assert [c[:2] for c in changes(runner)] == [
        ("zfs", "set"),
        ("zfs", "rename"),
        ("zfs", "clone"),
        ("zfs", "set"),
    ]


def test_a_rollback_failing_after_the_rename_says_how_to_finish_it() -> None:
    def respond(argv: tuple[str, ...], data: bytes | None) -> Result:
        if argv[:2] == ("zfs", "clone"):
            return Result(argv, 1, b"", b"cannot create 'x': out of space\n")
        return plain._respond(argv, data)

    plain = world()
    runner = RecordingRunner(respond)
    [one] = rollback_hosts(ZfsCli(runner), CONFIG, [HostName("pc01")], None)
    assert one.error is not None and one.failed_step == 2 and not one.disk_exists
    assert one.error.hint == "zboot rollback pc01 finishes it"


def test_a_rollback_stopped_after_the_new_disk_leaves_the_host_a_disk() -> None:
    """Marking the old disk as an archive comes after the clone: failing
    there, the host has its new disk, and the next rollback marks it."""

    def respond(argv: tuple[str, ...], data: bytes | None) -> Result:
        if argv[:3] == ("zfs", "set", "org.zboot:kind=archive"):
            return Result(argv, 1, b"", b"cannot set property: out of space\n")
        return plain._respond(argv, data)

    plain = world()
    runner = RecordingRunner(respond)
    [one] = rollback_hosts(ZfsCli(runner), CONFIG, [HostName("pc01")], None)
    assert one.error is not None and one.failed_step == 3 and one.disk_exists


def test_a_channel_program_reports_each_dataset() -> None:
    names = ["tank/a", "tank/b", "tank/c", "tank/d"]
    left = parse_destroyed(
        '{"return": {"tank/a": 0, "tank/b": 16, "tank/c": 2, "tank/d": 28}}', names
    )
    assert left["tank/a"] is None
    assert isinstance(left["tank/b"], Conflict) and "EBUSY" in left["tank/b"].message
    assert isinstance(left["tank/c"], NotFound)
    assert isinstance(left["tank/d"], ServerError) and "ENOSPC" in left["tank/d"].message
    with pytest.raises(ServerError, match="unexpected"):
        parse_destroyed('{"return": {"tank/a": 0}}', names)  # one missing
    with pytest.raises(ServerError, match="unexpected"):
        parse_destroyed("Channel program execution failed", names)


def test_a_dry_run_plans_the_channel_program_and_destroys_nothing() -> None:
    runner = world()
    planned = PlanRunner(runner, execute=False)
    left = PlannedZfs(planned).destroy_many(["tank/zboot/hosts/pc01"])
    assert left == {"tank/zboot/hosts/pc01": None}
    assert planned.changes == ["zfs program -j tank /dev/stdin tank/zboot/hosts/pc01"]
    assert runner.commands == []


def test_a_failed_command_in_a_batch_is_told_about_its_host() -> None:
    """A CommandFailed (argv, exit code, stderr) is copied with its host in
    front: copy.copy could not (it calls __init__ with the message alone)."""
    failure = CommandFailed(("zfs", "destroy", "x"), 1, "pool I/O is currently suspended\n")
    [told] = batch_outcome([HostResult("pc01", error=failure)], "destroyed", {}).errors
    assert isinstance(told, CommandFailed) and told.returncode == 1
    assert told.message.startswith("host pc01: zfs destroy x exited 1")
    assert failure.message.startswith("zfs destroy x")  # the original is unchanged
