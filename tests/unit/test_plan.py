"""PlanRunner without a server: a dry run runs the reads and plans the rest; a
real run lists the same changes while it makes them; reads that used to be
planned under --dry-run (tgt's show, the engine detection) now run."""

from __future__ import annotations

import io
import json
from pathlib import Path
from types import SimpleNamespace
from typing import cast

import pytest
import typer

from zboot.cli.session import Outcome, Session, run
from zboot.config import Config
from zboot.errors import InvalidInput, ZbootError
from zboot.ops.exports import host_export
from zboot.remote.base import Result, Runner
from zboot.remote.plan import PlanRunner
from zboot.targets.lio import LioEngine
from zboot.targets.registry import make_engine
from zboot.targets.tgt import TgtEngine
from zboot.testing.recording import RecordingRunner

SHOW = (Path(__file__).parent / "samples" / "tgtadm_show_target.txt").read_text()
PCT1 = host_export(Config(iqn_base="iqn.2026-11.lab.zboot"), "pct1", "iqn.2010-04.org.ipxe:pct1")
FAIL = ("zfs", "rename", "tank/b", "tank/x")  # the step the fake server refuses


def respond(argv: tuple[str, ...], _: bytes | None) -> Result:
    if argv == FAIL:
        return Result(argv, 1, b"", b"cannot rename")
    if argv[:2] == ("zfs", "list"):
        return Result(argv, 0, b"tank\n", b"")
    return Result(argv, 0, b"", b"")


def some_calls(runner: Runner) -> list[object]:
    """A run's worth of calls of every kind; what each returned."""
    chains = [
        [["zfs", "clone", "tank/i@v1", "tank/a"], ["zfs", "set", "x=1", "tank/a"]],
        [["zfs", "clone", "tank/i@v1", "tank/b"], list(FAIL), ["zfs", "promote", "tank/b"]],
    ]
    answers: list[object] = [
        runner.run(["zfs", "list", "-H", "tank"], read_only=True).text,
        runner.run(["zfs", "snapshot", "tank/a@now"]).ok,
        runner.read_file("/etc/known"),
    ]
    runner.write_file("/srv/boot/x.ipxe", b"#!ipxe\n", mode=0o644)
    answers.append(
        runner.stream(["dd", "of=/dev/zvol/tank/a"], io.BytesIO(b"x" * 3000), chunk=1024).ok
    )
    answers.append([None if f is None else f.step for f in runner.run_chains(chains)])
    runner.remove_file("/srv/boot/y.ipxe")
    return answers


CHANGES = [
    "zfs snapshot tank/a@now",
    "write /srv/boot/x.ipxe (7 bytes, mode 644)",
    "dd of=/dev/zvol/tank/a < (3000 bytes)",
    "zfs clone tank/i@v1 tank/a",
    "zfs set x=1 tank/a",
    "zfs clone tank/i@v1 tank/b",
    "zfs rename tank/b tank/x",  # failed: listed, as it ran; the promote after it did not
    "remove /srv/boot/y.ipxe",
]


def test_a_dry_run_runs_what_only_reads_and_plans_the_rest() -> None:
    server = RecordingRunner(respond, files={"/etc/known": b"k"})
    dry = PlanRunner(server, execute=False)
    answers = some_calls(dry)
    assert server.commands == [("zfs", "list", "-H", "tank")] and server.read_only == [True]
    assert answers[0] == "tank\n" and answers[2] == b"k"  # the reads' real answers
    assert answers[4] == [None, None]  # a plan assumes every step goes through
    assert "/srv/boot/x.ipxe" not in server.files
    assert dry.changes == [*CHANGES[:6], *CHANGES[6:7], "zfs promote tank/b", CHANGES[-1]]
    assert dry.commands is server.commands  # -v's "ran:" lines: what ran


def test_a_real_run_lists_the_same_changes_as_it_makes_them() -> None:
    planned = PlanRunner(RecordingRunner(respond, files={"/etc/known": b"k"}), execute=False)
    some_calls(planned)
    server = RecordingRunner(respond, files={"/etc/known": b"k", "/srv/boot/y.ipxe": b"y"})
    real = PlanRunner(server, execute=True)
    answers = some_calls(real)
    assert real.changes == CHANGES  # the plan's lines, up to the failed step of its chain
    assert real.changes == [c for c in planned.changes if c != "zfs promote tank/b"]
    assert answers[4] == [None, 1]
    assert (
        server.files["/srv/boot/x.ipxe"] == b"#!ipxe\n" and "/srv/boot/y.ipxe" not in server.files
    )
    assert ("zfs", "promote", "tank/b") not in server.commands
    assert server.inputs[server.commands.index(("dd", "of=/dev/zvol/tank/a"))] == b"x" * 3000
    assert server.read_only.count(True) == 1  # the list; every other command a change


def test_the_lock_is_no_change_and_a_dry_run_takes_none() -> None:
    def holder(argv: tuple[str, ...], _: bytes | None) -> Result:
        return Result(argv, 0, b"zboot-locked\n", b"")

    server = RecordingRunner(holder)
    PlanRunner(server, execute=False).hold(["lock"], "zboot-locked", print).release()
    assert server.commands == []
    real = PlanRunner(server, execute=True)
    real.hold(["lock"], "zboot-locked", print).release()
    assert server.commands == [("lock",), ("release", "lock")] and real.changes == []


def test_tgt_exports_are_read_under_a_dry_run() -> None:
    def tgtd(argv: tuple[str, ...], _: bytes | None) -> Result:
        return Result(argv, 0, SHOW.encode() if "show" in argv else b"", b"")

    server = RecordingRunner(tgtd)
    dry = PlanRunner(server, execute=False)
    assert TgtEngine(dry).exports() == {PCT1.target: PCT1}  # planned, it found none
    assert server.read_only == [True] and dry.changes == []


class Tgtd:
    """A fake tgtd whose `show` answers as the real one does: the sample's
    targets, less the one deleted, plus the one made (as tid 1)."""

    def __init__(self) -> None:
        self.shown = SHOW

    def __call__(self, argv: tuple[str, ...], _: bytes | None) -> Result:
        if "show" in argv:  # its accounts as the sample has them
            return Result(argv, 0, (self.shown if "target" in argv else SHOW).encode(), b"")
        if "delete" in argv and "target" in argv:
            self.shown = ""
        if "new" in argv and "target" in argv:
            self.shown = SHOW.replace("Target 7:", "Target 1:")
        return Result(argv, 0, b"", b"")


def test_a_tgt_rollback_plans_the_export_down_once_as_a_real_run_does() -> None:
    """Export down, then up again in the same run: the second apply must not
    find the target the first one deleted. tgtadm shows that in a real run;
    in a dry run it still shows the target (the delete was only planned), so
    the engine remembers its own planned changes there, and only there."""

    def unchanged(argv: tuple[str, ...], _: bytes | None) -> Result:
        return Result(argv, 0, SHOW.encode() if "show" in argv else b"", b"")

    lists = []
    for execute in (False, True):
        plan = PlanRunner(RecordingRunner(Tgtd() if execute else unchanged), execute=execute)
        engine = TgtEngine(plan)
        engine.apply(delete=[PCT1.target])
        engine.apply(create=[PCT1])
        assert PCT1.target in engine.exports()
        lists.append(plan.changes)
    assert lists[0] == lists[1]
    deletes = [c for c in lists[0] if "--op delete --mode target" in c]
    assert deletes == ["tgtadm --lld iscsi --op delete --mode target --tid 7 --force"]
    assert "tgtadm --lld iscsi --op new --mode target --tid 1 -T " + PCT1.target in lists[0]


def test_the_lio_agent_observes_under_a_dry_run() -> None:
    seen = {
        "exports": {
            PCT1.target: {
                "host": "pct1",
                "target": PCT1.target,
                "device": PCT1.device,
                "initiator": PCT1.initiator,
            }
        }
    }
    server = RecordingRunner(lambda argv, _: Result(argv, 0, json.dumps(seen).encode(), b""))
    dry = PlanRunner(server, execute=False)
    assert LioEngine(dry).exports() == {PCT1.target: PCT1}
    assert server.read_only == [True] and dry.changes == []


@pytest.mark.parametrize("execute", [False, True])
def test_auto_picks_tgt_on_a_tgt_only_server_under_dry_run(execute: bool) -> None:
    def tgt_only(argv: tuple[str, ...], _: bytes | None) -> Result:
        if argv[0] == "sh":  # which tools are on the PATH
            return Result(argv, 0, b"tgtadm\n", b"")
        return Result(argv, 1, b"", b"ModuleNotFoundError: rtslib_fb")  # no rtslib

    plan = PlanRunner(RecordingRunner(tgt_only), execute=execute)
    assert make_engine("auto", plan).name == "tgt"
    assert plan.changes == []


def session_run(
    dry_run: bool, as_json: bool, verbose: int = 0, errors: bool = True
) -> tuple[int, Session]:
    """session.run on a fake server: an action that reads, changes one thing and
    ends with a failed host (as a batch does: the others went through)."""
    server = RecordingRunner(respond)
    session = Session(dry_run=dry_run, json=as_json, verbose=verbose)
    session._runner = PlanRunner(server, execute=not dry_run)

    def action(s: Session) -> Outcome:
        s.runner.run(["zfs", "list", "-H", "tank"], read_only=True)
        s.runner.run(["zfs", "snapshot", "tank/a@now"])
        failed: list[ZbootError] = (
            [InvalidInput("pc2: MAC 52:54:00:00:00:01 is pc1's too")] if errors else []
        )
        return Outcome({"cloned": 1}, "cloned pc1", failed)

    ctx = cast(typer.Context, SimpleNamespace(obj=session))
    with pytest.raises(typer.Exit) as stopped:
        run(ctx, "clone", action)
    return stopped.value.exit_code, session


def test_a_text_dry_run_reports_planned_failures_and_exits_as_json_does(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, _ = session_run(dry_run=True, as_json=False)
    out, err = capsys.readouterr()
    assert out.splitlines() == [
        "dry run: nothing was changed. Planned commands:",
        "  zfs snapshot tank/a@now",
    ]
    assert err == "zboot: error: pc2: MAC 52:54:00:00:00:01 is pc1's too\n"
    json_code, _ = session_run(dry_run=True, as_json=True)
    envelope = json.loads(capsys.readouterr().out)
    assert code == json_code == envelope["exit_code"] == 2
    assert envelope["data"]["planned"] == ["zfs snapshot tank/a@now"]
    assert session_run(dry_run=True, as_json=False, errors=False)[0] == 0


@pytest.mark.parametrize("as_json", [False, True])
def test_a_verbose_real_run_lists_its_changes_after_what_ran(
    capsys: pytest.CaptureFixture[str], as_json: bool
) -> None:
    session_run(dry_run=False, as_json=as_json, verbose=1, errors=False)
    err = capsys.readouterr().err.splitlines()
    assert err == [
        "ran: zfs list -H tank",
        "ran: zfs snapshot tank/a@now",
        "change: zfs snapshot tank/a@now",
    ]
