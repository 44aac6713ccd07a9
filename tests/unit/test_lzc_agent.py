"""A big batch's clones and renames through the ZFS agent (zboot.zfs.lzc_remote
and lzc_agent.py), the agent run for real by this Python against a stand-in
libzfs_core that keeps its datasets in a JSON file."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from agents import imported_modules

from zboot.errors import Conflict, NotFound, ServerError
from zboot.remote.base import Result
from zboot.remote.plan import PlanRunner
from zboot.testing.recording import RecordingRunner
from zboot.zfs import lzc_remote
from zboot.zfs.cli import Change, PlannedZfs, ZfsCli
from zboot.zfs.lzc import zfs_backend

FAKE = """
import errno, json, os, threading
from . import exceptions
_lock = threading.Lock()
WORLD = os.environ["FAKE_ZFS_WORLD"]

def _change(fn):
    with _lock:
        with open(WORLD) as f:
            world = json.load(f)
        fn(world)
        with open(WORLD, "w") as f:
            json.dump(world, f)

def lzc_clone(name, origin, props):
    def go(world):
        if origin.decode() not in world:
            raise exceptions.SnapshotNotFound(errno.ENOENT, "no such snapshot")
        if name.decode() in world:
            raise exceptions.FilesystemExists(errno.EEXIST, "exists")
        world[name.decode()] = {k.decode(): v.decode() for k, v in props.items()}
    _change(go)

def lzc_rename(old, new):
    def go(world):
        if old.decode() not in world:
            raise exceptions.FilesystemNotFound(errno.ENOENT, "no such dataset")
        world[new.decode()] = world.pop(old.decode())
    _change(go)

def lzc_promote(name):
    _change(lambda world: None)

def lzc_exists(name):
    return False
"""
EXCEPTIONS = """
class ZFSError(Exception):
    def __init__(self, code, message):
        super().__init__(code, message)
        self.errno = code
class SnapshotNotFound(ZFSError): pass
class FilesystemExists(ZFSError): pass
class FilesystemNotFound(ZFSError): pass
"""


@pytest.fixture
def server(tmp_path: Path) -> tuple[RecordingRunner, Path]:
    """A runner whose python3 runs what it is sent against the stand-in
    library (world: the datasets), and whose zfs commands all succeed."""
    library = tmp_path / "lib" / "libzfs_core"
    library.mkdir(parents=True)
    (library / "__init__.py").write_text(FAKE)
    (library / "exceptions.py").write_text(EXCEPTIONS)
    world = tmp_path / "world.json"
    world.write_text(
        json.dumps({"tank/images/gold@v1": {}, **{f"tank/hosts/h{i}": {} for i in range(12)}})
    )

    def respond(argv: tuple[str, ...], stdin: bytes | None) -> Result:
        if argv[:2] == ("env", "-i"):
            env = {"PYTHONPATH": str(tmp_path / "lib"), "FAKE_ZFS_WORLD": str(world)}
            done = subprocess.run(
                [sys.executable, "-c", lzc_remote.BOOTSTRAP],
                input=stdin,
                capture_output=True,
                env=env,
            )
            return Result(argv, done.returncode, done.stdout, done.stderr)
        return Result(argv, 0, b"", b"")

    return RecordingRunner(respond), world


def agent_zfs(runner: RecordingRunner) -> ZfsCli:
    """zfs over that runner as zfs_backend makes it for SSH: big batches to the agent."""
    zfs = ZfsCli(runner)
    zfs.lzc_agent = True
    return zfs


def rollbacks(hosts: range) -> list[list[Change]]:
    return [
        [
            Change.rename(f"tank/hosts/h{i}", f"tank/archive/h{i}"),
            Change.clone("tank/images/gold@v1", f"tank/hosts/h{i}", {"step": "rollback:cloned"}),
        ]
        for i in hosts
    ]


def test_a_big_batch_goes_to_the_agent_and_a_bad_chain_fails_alone(
    server: tuple[RecordingRunner, Path],
) -> None:
    runner, world = server
    chains = rollbacks(range(10))
    chains[3] = [Change.rename("tank/hosts/nope", "tank/archive/nope"), *chains[3][1:]]
    chains[5] = [*chains[5][:1], Change.clone("tank/images/gold@v9", "tank/hosts/h5")]
    outcomes = agent_zfs(runner).run_changes(chains)
    assert [o is None for o in outcomes] == [n not in (3, 5) for n in range(10)]
    assert outcomes[3] is not None and outcomes[3].step == 0
    assert isinstance(outcomes[3].error, NotFound) and "tank/hosts/nope" in str(outcomes[3].error)
    assert outcomes[5] is not None and outcomes[5].step == 1
    assert isinstance(outcomes[5].error, NotFound)
    datasets = json.loads(world.read_text())
    assert datasets["tank/hosts/h0"] == {"org.zboot:step": "rollback:cloned"}  # full keys
    assert "tank/archive/h0" in datasets and "tank/archive/h5" in datasets
    assert "tank/hosts/h5" not in datasets  # its clone failed after its rename
    assert "tank/hosts/h3" in datasets and "tank/archive/h3" not in datasets  # never renamed
    # one agent call for the whole batch, no zfs command
    assert len(runner.commands) == 1 and runner.commands[0][:2] == ("env", "-i")


def test_a_clone_over_an_existing_dataset_is_a_conflict(
    server: tuple[RecordingRunner, Path],
) -> None:
    chains = [[Change.clone("tank/images/gold@v1", f"tank/hosts/h{i}")] for i in range(8)]
    outcomes = agent_zfs(server[0]).run_changes(chains)
    assert all(o is not None and isinstance(o.error, Conflict) for o in outcomes)


def test_a_small_batch_and_a_plan_stay_zfs_commands(server: tuple[RecordingRunner, Path]) -> None:
    runner, _ = server
    zfs = agent_zfs(runner)
    assert zfs.run_changes(rollbacks(range(lzc_remote.AT_LEAST - 1))) == [None] * 7
    assert {c[:2] for c in runner.commands} == {("zfs", "rename"), ("zfs", "clone")}
    planned = zfs_backend(PlanRunner(runner, execute=False), local=False, dry_run=True)
    assert isinstance(planned, PlannedZfs) and not planned.lzc_agent
    assert zfs_backend(runner, local=False, dry_run=False).lzc_agent


@pytest.mark.parametrize(
    "library",
    [
        'raise ImportError("no module named libzfs_core")\n',
        "from . import exceptions\n"
        "def lzc_exists(name):\n"
        "    raise exceptions.ZFSError(2, 'Failed to initialize libzfs_core')\n",
    ],
    ids=["not installed", "cannot open /dev/zfs"],
)
def test_without_a_usable_libzfs_core_the_batch_goes_on_in_the_shell(
    server: tuple[RecordingRunner, Path], tmp_path: Path, library: str
) -> None:
    runner, world = server
    (tmp_path / "lib" / "libzfs_core" / "__init__.py").write_text(library)
    zfs = agent_zfs(runner)
    before = world.read_text()
    assert zfs.run_changes(rollbacks(range(10))) == [None] * 10
    assert world.read_text() == before  # the agent changed nothing
    kinds = [c[:2] for c in runner.commands]
    assert kinds[0] == ("env", "-i") and kinds[1:].count(("zfs", "rename")) == 10
    assert not zfs.lzc_agent  # and it is not asked again
    zfs.run_changes(rollbacks(range(10)))
    assert ("env", "-i") not in [c[:2] for c in runner.commands[1:]]


def test_an_agent_that_breaks_off_is_a_server_error(server: tuple[RecordingRunner, Path]) -> None:
    def respond(argv: tuple[str, ...], _: bytes | None) -> Result:
        return Result(argv, 1, b"", b"Traceback ...\nMemoryError\n")

    zfs = agent_zfs(RecordingRunner(respond))
    with pytest.raises(ServerError, match="ZFS agent failed on the server: MemoryError"):
        zfs.run_changes(rollbacks(range(8)))


def test_the_agent_needs_only_the_standard_library_and_libzfs_core() -> None:
    allowed = {"json", "sys", "concurrent", "typing", "libzfs_core"}
    assert imported_modules(lzc_remote.AGENT) <= allowed
