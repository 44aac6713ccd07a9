"""The root's datasets (root, images, hosts, archive): one `zfs list` finds
what is missing, and what is missing is made in order, in one chain batch
(one remote shell over SSH), not one command per dataset."""

from __future__ import annotations

import pytest

from zboot.config import Config
from zboot.errors import CommandFailed
from zboot.ops.images import ensure_layout
from zboot.remote.base import Result
from zboot.testing.recording import RecordingRunner
from zboot.zfs.cli import ZfsCli

CONFIG = Config()
LAYOUT = ("tank/zboot", "tank/zboot/images", "tank/zboot/hosts", "tank/zboot/archive")
LIST = ("zfs", "list", "-H", "-o", "name", *LAYOUT)


def listing(found: list[str]) -> RecordingRunner:
    """zfs list as OpenZFS answers it: the names it found, and exit 1 when
    any is missing."""
    out = "".join(f"{name}\n" for name in found).encode()
    code = 0 if len(found) == len(LAYOUT) else 1
    return RecordingRunner({LIST: Result(LIST, code, out, b"cannot open: dataset does not exist")})


def creates(runner: RecordingRunner) -> list[str]:
    return [argv[-1] for argv in runner.commands if argv[:2] == ("zfs", "create")]


def test_only_the_missing_datasets_are_made_in_order_after_one_lookup() -> None:
    runner = listing(["tank/zboot", "tank/zboot/hosts"])
    made = ensure_layout(ZfsCli(runner), CONFIG)
    assert made == ["tank/zboot/images", "tank/zboot/archive"]
    assert creates(runner) == made
    assert [argv for argv in runner.commands if argv[:2] == ("zfs", "list")] == [LIST]


def test_a_complete_layout_is_one_lookup_and_no_change() -> None:
    runner = listing(list(LAYOUT))
    assert ensure_layout(ZfsCli(runner), CONFIG) == []
    assert runner.commands == [LIST]


def test_names_read_just_before_are_not_looked_up_again() -> None:
    runner = RecordingRunner()
    assert ensure_layout(ZfsCli(runner), CONFIG, known=LAYOUT) == []
    assert runner.commands == []


def test_a_create_that_fails_stops_the_rest() -> None:
    def answer(argv: tuple[str, ...], _: bytes | None) -> Result:
        if argv == LIST:
            return Result(argv, 1, b"", b"cannot open: dataset does not exist")
        if argv[-1] == "tank/zboot/images":
            return Result(argv, 1, b"", b"cannot create 'tank/zboot/images': out of space")
        return Result(argv, 0, b"", b"")

    runner = RecordingRunner(answer)
    with pytest.raises(CommandFailed, match="out of space"):
        ensure_layout(ZfsCli(runner), CONFIG)
    assert creates(runner) == ["tank/zboot", "tank/zboot/images"]
