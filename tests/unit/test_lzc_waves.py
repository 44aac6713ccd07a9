"""LzcZfs.run_changes (zboot on the server, changes through libzfs_core) runs
a batch wave by wave: the n-th change of every chain together, the property
sets in one channel program, the recursive destroys in another, the rest
through the library side by side. Each chain keeps its order and stops at
its first failure; the others go on. A fake libzfs_core records the calls."""

from __future__ import annotations

import json
import threading
from types import SimpleNamespace
from typing import Any

from zboot.errors import NotFound
from zboot.remote.base import Result
from zboot.testing.recording import RecordingRunner
from zboot.zfs.cli import Change
from zboot.zfs.lzc import LzcZfs


class ZFSError(Exception):
    errno = 2


class FakeLzc:
    """libzfs_core's calls, recorded in the order they came; a clone into a
    name in `missing` fails as the library does for an absent snapshot."""

    def __init__(self, missing: set[str]) -> None:
        self.calls: list[tuple[str, ...]] = []
        self.missing = missing
        self.lock = threading.Lock()
        self.exceptions = SimpleNamespace(ZFSError=ZFSError)

    def _note(self, *call: str) -> None:
        with self.lock:
            self.calls.append(call)

    def lzc_clone(self, target: bytes, snapshot: bytes, props: Any) -> None:
        if target.decode() in self.missing:
            raise ZFSError("snapshot does not exist")
        self._note("clone", snapshot.decode(), target.decode())

    def lzc_rename(self, old: bytes, new: bytes) -> None:
        self._note("rename", old.decode(), new.decode())

    def lzc_promote(self, name: bytes) -> None:
        self._note("promote", name.decode())


def program_answers(argv: tuple[str, ...], data: bytes | None) -> Result:
    """`zfs program`: every dataset set (or destroyed) without error."""
    if argv[:2] != ("zfs", "program"):
        return Result(argv, 0, b"", b"")
    names = argv[5:]
    if b"set_prop" in (data or b""):
        count, n, i = {}, 0, 0
        while i < len(names):
            n += 1
            count[str(n)] = 0
            i += 2 + int(names[i + 1])
        return Result(argv, 0, json.dumps({"return": count}).encode(), b"")
    return Result(argv, 0, json.dumps({"return": dict.fromkeys(names, 0)}).encode(), b"")


def rollback_chain(host: str) -> list[Change]:
    """A discarding rollback's steps after the rename, as ops.rollback makes them."""
    return [
        Change.clone("tank/z/images/gold@v1", f"tank/z/hosts/{host}", {"state": "rolling-back"}),
        Change.set(f"tank/z/archive/{host}-1", {"kind": "archive"}),
        Change.destroy(f"tank/z/archive/{host}-1", recursive=True),
    ]


def backend(missing: set[str]) -> tuple[LzcZfs, FakeLzc, RecordingRunner]:
    runner = RecordingRunner(program_answers)
    zfs = LzcZfs(runner)
    lzc = FakeLzc(missing)
    zfs._lzc = lzc  # type: ignore[assignment]
    return zfs, lzc, runner


def test_a_batch_of_forty_costs_one_program_per_wave_of_sets_and_destroys() -> None:
    zfs, lzc, runner = backend(set())
    hosts = [f"pc{n:02}" for n in range(40)]
    assert zfs.run_changes([rollback_chain(h) for h in hosts]) == [None] * 40
    programs = [c for c in runner.commands if c[:2] == ("zfs", "program")]
    assert len(programs) == 2  # the 40 archive marks, then the 40 destroys
    assert sorted(c[2] for c in lzc.calls) == sorted(f"tank/z/hosts/{h}" for h in hosts)
    assert all(f"tank/z/archive/{h}-1" in programs[1] for h in hosts)


def test_a_failed_step_stops_its_chain_and_the_others_go_on() -> None:
    zfs, _, runner = backend({"tank/z/hosts/pc01"})
    outcomes = zfs.run_changes([rollback_chain(h) for h in ("pc00", "pc01", "pc02")])
    failed = outcomes[1]
    assert outcomes[0] is None and outcomes[2] is None
    assert failed is not None and failed.step == 0 and isinstance(failed.error, NotFound)
    marked = [c for c in runner.commands if c[:2] == ("zfs", "program")]
    assert not any("tank/z/archive/pc01-1" in c for c in marked)  # nothing after its failure
    assert all("tank/z/archive/pc00-1" in c for c in marked)


def test_each_chain_keeps_its_order() -> None:
    zfs, lzc, _ = backend(set())
    chains = [
        [
            Change.rename(f"tank/z/hosts/{h}", f"tank/z/archive/{h}-1"),
            Change.clone("tank/z/images/gold@v1", f"tank/z/hosts/{h}"),
            Change.promote(f"tank/z/hosts/{h}"),
        ]
        for h in ("a", "b", "c")
    ]
    zfs.run_changes(chains)
    for h in ("a", "b", "c"):
        mine = [call[0] for call in lzc.calls if f"tank/z/hosts/{h}" in call[1:]]
        assert mine == ["rename", "clone", "promote"], lzc.calls
