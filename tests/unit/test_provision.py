"""Batch provisioning without a server: the hosts file, one engine call for the
whole batch, and one bad host failing alone."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import pytest
from test_ops import CONFIG, changes, world
from test_workflow_transcripts import CONFIG as TRANSCRIPT_CONFIG
from test_workflow_transcripts import GET_ARGV, LIST_ARGV, fleet, host

from zboot.errors import Conflict, InvalidInput, ServerError
from zboot.ops.hostfile import HostSpec, read_hosts
from zboot.ops.provision import provision
from zboot.remote.base import Result
from zboot.targets.base import Export
from zboot.testing.recording import RecordingRunner, program_sets
from zboot.zfs.cli import ZfsCli
from zboot.zfs.program import DESTROY

CONFIG_WITH_IQN = type(CONFIG)(iqn_base="iqn.2026-11.lab.zboot")


class Engine:
    """Records each apply; refuses any batch holding a host named in `refuse`."""

    name = "lio"
    lun = 0

    def __init__(self, refuse: Iterable[str] = ()) -> None:
        self.refuse = set(refuse)
        self.calls: list[list[str]] = []

    def exports(self) -> dict[str, Export]:
        return {}

    def sessions(self, targets: Iterable[str]) -> dict[str, list[str]]:
        return {}

    def apply(
        self, create: Iterable[Export] = (), delete: Iterable[str] = (), persist: bool = True
    ) -> None:
        hosts = [e.host for e in create]
        self.calls.append(hosts)
        if self.refuse & set(hosts):
            raise ServerError("LIO (apply) failed on the server: no such device")


def specs(n: int) -> list[HostSpec]:
    return [HostSpec(f"pc{i:02}", f"52:54:00:bb:00:{i:02x}") for i in range(10, 10 + n)]


def test_csv_and_toml_hosts_files(tmp_path: Path) -> None:
    csv = tmp_path / "hosts.csv"
    csv.write_text(
        "host,mac,initiator,chap\npc10,52:54:00:bb:00:10,,mutual\n"
        "pc11, 52-54-00-bb-00-11 ,iqn.1991-05.com.microsoft:pc11,\n"
    )
    toml = tmp_path / "hosts.toml"
    toml.write_text(
        '[[host]]\nhost = "pc10"\nmac = "52:54:00:bb:00:10"\nchap = "mutual"\n'
        '[[host]]\nhost = "pc11"\nmac = "52-54-00-bb-00-11"\n'
        'initiator = "iqn.1991-05.com.microsoft:pc11"\n'
    )
    expected = [
        HostSpec("pc10", "52:54:00:bb:00:10", None, "mutual"),
        HostSpec("pc11", "52-54-00-bb-00-11", "iqn.1991-05.com.microsoft:pc11", ""),
    ]
    assert read_hosts(csv) == expected
    assert read_hosts(toml) == expected


@pytest.mark.parametrize(
    "text",
    [
        "pc10,52:54:00:bb:00:10\n",  # no header line
        "host,mac,colour\npc10,52:54:00:bb:00:10,red\n",  # unknown column
        "host,mac\npc10,\n",  # no MAC
        "host,mac,chap\npc10,52:54:00:bb:00:10,yes\n",  # chap kind
        "host,mac\n",  # nobody
    ],
)
def test_a_malformed_hosts_file_is_refused_whole(tmp_path: Path, text: str) -> None:
    path = tmp_path / "hosts.csv"
    path.write_text(text)
    with pytest.raises(InvalidInput):
        read_hosts(path)


def test_a_batch_is_one_engine_call() -> None:
    runner, engine = world(), Engine()
    results = provision(
        ZfsCli(runner), CONFIG_WITH_IQN, runner, lambda: engine, "golden", specs(20)
    )
    assert [r.error for r in results] == [None] * 20
    assert engine.calls == [[f"pc{i:02}" for i in range(10, 30)]]
    done = changes(runner)
    assert [c[0:2] for c in done] == [("zfs", "clone")] * 20 + [("zfs", "program")] * 2
    # each step recorded on all 20 disks in one channel program; ready only at the end
    assert all("org.zboot:state=provisioning" in c for c in done[:20])
    disks = [f"tank/zboot/hosts/pc{i:02}" for i in range(10, 30)]
    exported, ready = program_sets(done[20]), program_sets(done[21])
    assert exported == [(d, {"org.zboot:step": "clone:exported"}) for d in disks]
    assert [d for d, _ in ready] == disks
    assert all(p == {"org.zboot:step": "clone:done", "org.zboot:state": "ready"} for _, p in ready)


def test_one_bad_host_fails_alone() -> None:
    runner, engine = world(), Engine()
    batch = [
        *specs(2),
        HostSpec("pc;x", "52:54:00:bb:00:99"),
        HostSpec("pc01", "52:54:00:bb:00:98"),  # exists already
        HostSpec("pc12", "52:54:00:bb:00:97"),
        HostSpec("pc10", "52:54:00:bb:00:96"),
    ]
    results = provision(ZfsCli(runner), CONFIG_WITH_IQN, runner, lambda: engine, "golden", batch)
    kinds = [type(r.error).__name__ if r.error else "ok" for r in results]
    assert kinds == ["ok", "ok", "InvalidInput", "Conflict", "ok", "Conflict"]
    assert engine.calls == [["pc10", "pc11", "pc12"]]


def test_a_host_the_engine_refuses_is_undone_and_the_others_exported() -> None:
    runner, engine = world(), Engine(refuse=["pc11"])
    results = provision(ZfsCli(runner), CONFIG_WITH_IQN, runner, lambda: engine, "golden", specs(3))
    assert [r.host for r in results if r.error] == ["pc11"]
    assert isinstance(results[1].error, ServerError) and results[1].record is None
    assert engine.calls == [["pc10", "pc11", "pc12"], ["pc10"], ["pc11"], ["pc12"]]
    destroyed = [c for i, c in enumerate(runner.commands) if runner.inputs[i] == DESTROY.encode()]
    assert [c[5:] for c in destroyed] == [("tank/zboot/hosts/pc11",)]  # one channel program


def test_a_batch_of_bad_names_never_reads_the_server() -> None:
    runner, engine = world(), Engine()
    results = provision(
        ZfsCli(runner),
        CONFIG_WITH_IQN,
        runner,
        lambda: engine,
        "golden",
        [HostSpec("a b", "52:54:00:bb:00:01"), HostSpec("pc1", "nope")],
    )
    assert all(isinstance(r.error, InvalidInput) for r in results)
    assert runner.commands == [] and engine.calls == []


def test_a_host_listed_twice_fails_the_second_time() -> None:
    runner, engine = world(), Engine()
    twice = [HostSpec("pc10", "52:54:00:bb:00:10"), HostSpec("PC10", "52:54:00:bb:00:11")]
    results = provision(ZfsCli(runner), CONFIG_WITH_IQN, runner, lambda: engine, "golden", twice)
    assert results[0].error is None and isinstance(results[1].error, Conflict)


def test_each_host_gets_its_ipxe_script_named_by_mac() -> None:
    runner, engine = world(), Engine()
    config = type(CONFIG)(
        iqn_base="iqn.2026-11.lab.zboot", portal="10.0.2.2:43260", boot_dir="/srv/boot"
    )
    [one] = provision(ZfsCli(runner), config, runner, lambda: engine, "golden", specs(1))
    assert one.boot_file == "/srv/boot/52-54-00-bb-00-0a.ipxe"
    script = runner.files[one.boot_file].decode()
    assert "set initiator-iqn iqn.2010-04.org.ipxe:pc10\n" in script
    assert "sanboot iscsi:10.0.2.2::43260:0:iqn.2026-11.lab.zboot:pc10 " in script
    assert runner.modes[one.boot_file] == 0o644


def test_without_a_portal_no_script_is_written() -> None:
    runner, engine = world(), Engine()
    [one] = provision(ZfsCli(runner), CONFIG_WITH_IQN, runner, lambda: engine, "golden", specs(1))
    assert one.error is None and one.boot_file is None and runner.files == {}


def test_an_engine_that_cannot_be_made_leaves_no_clone() -> None:
    runner = world()

    def broken() -> Engine:
        raise InvalidInput("target engine 'scst' is not supported")

    with pytest.raises(InvalidInput):
        provision(ZfsCli(runner), CONFIG_WITH_IQN, runner, broken, "golden", specs(1))
    assert [c[:2] for c in changes(runner)] == [("zfs", "clone"), ("zfs", "program")]


class LoggedIn(Engine):
    """pc01's machine is logged in to its target; applying anything for
    pc01 raises `fails_with` when given (a Ctrl-C, say)."""

    def __init__(self, fails_with: BaseException | None = None) -> None:
        super().__init__()
        self.fails_with = fails_with

    def sessions(self, targets: Iterable[str]) -> dict[str, list[str]]:
        pc01 = "iqn.2026-11.local.zboot:pc01"
        return {pc01: ["iqn.2010-04.org.ipxe:pc01"]} if pc01 in targets else {}

    def apply(
        self, create: Iterable[Export] = (), delete: Iterable[str] = (), persist: bool = True
    ) -> None:
        made = list(create)
        super().apply(made, delete, persist)
        if self.fails_with is not None and any(e.host == "pc01" for e in made):
            raise self.fails_with


def half_made() -> RecordingRunner:
    """pc01 left "provisioning" after its export and script were made (a
    machine may be running from it)."""
    listed, got = fleet(host("pc01", state="provisioning", step="clone:exported"))
    reads = {LIST_ARGV: listed, GET_ARGV: got}

    def respond(argv: tuple[str, ...], data: bytes | None) -> Result:
        if argv[:2] == ("zfs", "program") and data == DESTROY.encode():  # every dataset goes
            return Result(argv, 0, json.dumps({"return": dict.fromkeys(argv[5:], 0)}).encode(), b"")
        return Result(argv, 0, reads.get(argv, "").encode(), b"")

    return RecordingRunner(respond)


PC01 = HostSpec("pc01", "52:54:00:aa:00:01")


def test_resuming_a_half_made_host_in_use_is_refused_and_changes_nothing() -> None:
    runner, engine = half_made(), LoggedIn()
    [one] = provision(ZfsCli(runner), TRANSCRIPT_CONFIG, runner, lambda: engine, "golden", [PC01])
    assert isinstance(one.error, Conflict) and "logged in" in one.error.message
    assert engine.calls == []  # its target is not made again under the machine
    assert changes(runner) == []  # nor its disk, record or files touched


def test_an_interrupted_resume_never_destroys_the_half_made_disk() -> None:
    """Ctrl-C while exporting a batch of a resumed host and a new one: the
    new clone is undone, the resumed host's disk stays."""
    runner, engine = half_made(), LoggedIn(fails_with=KeyboardInterrupt())
    engine.sessions = lambda targets: {}  # type: ignore[method-assign]  # not logged in
    new = HostSpec("pc02", "52:54:00:aa:00:02")
    with pytest.raises(KeyboardInterrupt):
        provision(ZfsCli(runner), TRANSCRIPT_CONFIG, runner, lambda: engine, "golden", [PC01, new])
    destroyed = [c for c in runner.commands if c[:2] in (("zfs", "program"), ("zfs", "destroy"))]
    assert [c[5:] for c in destroyed] == [("tank/zboot/hosts/pc02",)]
