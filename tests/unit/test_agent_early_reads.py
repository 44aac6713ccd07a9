"""The session agent's early reads (remote.session_agent.Early), run for
real: the reads named in the preamble start with the agent and answer the
run's first reads request only while they stand, with the lock holder's
own generation steps (remote.lock_holder)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_lock import take
from test_session_agent import ProcessPipe, start_agent, take_lock

from zboot.errors import ServerError
from zboot.remote.agent_client import AgentLink, preamble
from zboot.remote.lock import HOLDER


def counted(log: Path, tag: str = "a") -> list[str]:
    """A read that says how many times it ran (one line in log per run)."""
    return ["sh", "-c", 'echo run >> "$0"; wc -l < "$0"; echo "$1"', str(log), tag]


def runs(log: Path) -> int:
    return len(log.read_text().splitlines()) if log.exists() else 0


@pytest.fixture
def started(tmp_path: Path) -> Iterator[tuple[AgentLink, ProcessPipe, list[list[str]], Path]]:
    take(tmp_path, wait=5).release()  # a generation to start from, as after any zboot
    log = tmp_path / "log"
    early = [counted(log, "a"), counted(log, "b")]
    link, pipe = start_agent(early, str(tmp_path))
    assert link.greet()
    yield link, pipe, early, log
    link.end()
    pipe.close()


def outputs(link: AgentLink, argvs: list[list[str]]) -> list[str]:
    return [r.stdout.decode().split()[-1] for r in link.reads(argvs, 10)]


def test_a_free_lock_taken_next_keeps_the_early_reads(
    started: tuple[AgentLink, ProcessPipe, list[list[str]], Path], tmp_path: Path
) -> None:
    link, _, early, log = started
    held, _ = take_lock(link, tmp_path)
    assert outputs(link, early) == ["a", "b"]
    assert runs(log) == 2  # each ran once, with the agent: not again when asked
    assert outputs(link, early) == ["a", "b"] and runs(log) == 4  # the second asking runs them
    held.release()


def test_a_lock_taken_and_let_go_by_another_zboot_in_between_runs_them_again(
    started: tuple[AgentLink, ProcessPipe, list[list[str]], Path], tmp_path: Path
) -> None:
    link, _, early, log = started
    other = take(tmp_path, wait=5)  # a holder process of its own, as an older zboot's
    other.release()
    held, _ = take_lock(link, tmp_path)
    assert outputs(link, early) == ["a", "b"]
    assert runs(log) == 4  # the early runs did not stand: asked, they ran again
    held.release()


def test_a_lock_held_when_the_agent_starts_runs_them_again(tmp_path: Path) -> None:
    other = take(tmp_path, wait=5)
    log = tmp_path / "log"
    link, pipe = start_agent([counted(log)], str(tmp_path))
    assert link.greet()
    other.release()
    held, _ = take_lock(link, tmp_path)
    assert outputs(link, [counted(log)]) == ["a"] and runs(log) == 2
    held.release()
    link.end()
    pipe.close()


def test_a_lock_that_names_a_holder_runs_them_again(tmp_path: Path) -> None:
    """A holder that steps no generation (an older zboot) still names itself."""
    directory = tmp_path / "zboot"
    directory.mkdir(mode=0o700)
    (directory / "generation").write_text("4")
    (directory / "lock").write_text("zboot clone by someone\n")
    log = tmp_path / "log"
    link, pipe = start_agent([counted(log)], str(tmp_path))
    assert link.greet()
    (directory / "lock").write_text("")  # it let go without a step
    held, _ = take_lock(link, tmp_path)
    assert (directory / "generation").read_text() == "5"
    assert outputs(link, [counted(log)]) == ["a"] and runs(log) == 2
    held.release()
    link.end()
    pipe.close()


def test_other_reads_run_as_asked_and_the_early_ones_are_never_used(
    started: tuple[AgentLink, ProcessPipe, list[list[str]], Path], tmp_path: Path
) -> None:
    link, _, early, log = started
    held, _ = take_lock(link, tmp_path)
    assert outputs(link, [counted(log, "c")]) == ["c"]
    assert outputs(link, early) == ["a", "b"]
    assert runs(log) == 5  # 2 early, then 1, then 2: the early ones answer the first only
    held.release()


def test_without_the_lock_the_first_reads_are_the_early_ones(
    started: tuple[AgentLink, ProcessPipe, list[list[str]], Path],
) -> None:
    link, _, early, log = started
    assert outputs(link, early) == ["a", "b"] and runs(log) == 2


def test_a_read_that_fails_to_start_leaves_the_request_to_run_it(tmp_path: Path) -> None:
    log = tmp_path / "log"
    missing = ["/nonexistent/zboot-read"]
    link, pipe = start_agent([counted(log), missing], str(tmp_path))
    assert link.greet()
    first, second = link.reads([counted(log), missing], 10)
    assert first.stdout.split()[-1] == b"a" and second.returncode == 127
    assert runs(log) == 2  # the early run of the first was not used
    link.end()
    pipe.close()


def test_an_early_read_past_the_requests_timeout_is_killed(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    slow = ["sh", "-c", 'echo $$ > "$0"; exec sleep 30', str(pid_file)]
    link, pipe = start_agent([slow], str(tmp_path))
    assert link.greet()
    with pytest.raises(ServerError, match=r"timed out after 0\.5 s"):
        link.reads([slow], 0.5)
    with pytest.raises(ProcessLookupError):  # killed, and reaped
        os.kill(int(pid_file.read_text()), 0)
    link.end()
    pipe.close()


def test_the_generation_is_odd_while_held_and_even_once_free(tmp_path: Path) -> None:
    holder: dict[str, object] = {}
    exec(HOLDER, holder)  # noqa: S102 (the holder's own code, as the agent runs it)
    generation = tmp_path / "zboot" / "generation"
    seen = []
    for _ in range(2):
        fd, lease, before = holder["take"](str(tmp_path), "test", 5, print)  # type: ignore[operator]
        seen.append((before, int(generation.read_text())))
        holder["let_go"](fd, lease)  # type: ignore[operator]
        os.close(fd)
        seen.append((before, int(generation.read_text())))
    assert seen == [(-1, 1), (-1, 2), (2, 3), (2, 4)]
    generation.write_text("not a count")
    fd, lease, before = holder["take"](str(tmp_path), "test", 5, print)  # type: ignore[operator]
    assert (before, generation.read_text()) == (-1, "1")
    holder["let_go"](fd, lease)  # type: ignore[operator]
    os.close(fd)


def test_the_first_run_on_a_server_has_no_generation_to_keep_them(tmp_path: Path) -> None:
    log = tmp_path / "log"
    link, pipe = start_agent([counted(log)], str(tmp_path))
    assert link.greet()
    held, _ = take_lock(link, tmp_path)
    assert outputs(link, [counted(log)]) == ["a"] and runs(log) == 2
    held.release()
    link.end()
    pipe.close()


def test_no_early_reads_where_an_argument_holds_a_nul() -> None:
    assert preamble([["zfs", "list", "a\0b"]]) == preamble()
    assert preamble([["zfs", "list", "ab"]]) != preamble()
