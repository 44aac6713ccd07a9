"""Enrolment without a server: machines recorded by the boot service (one zfs
set a batch, a cap, no rewrite of an unchanged record), hostile facts, the
names a pattern gives, and adoption as one clone batch."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from types import SimpleNamespace
from typing import Any, cast

import jsonschema
import pytest
import typer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_json_schema import SCHEMA
from zfs_samples import GET, LIST

from zboot.cli import enrol as enrol_cli
from zboot.cli.session import Session
from zboot.config import Config, ServeConfig
from zboot.errors import Conflict, InvalidInput, NotFound
from zboot.names import MacAddress, mac
from zboot.ops import enrol
from zboot.ops.context import Context
from zboot.ops.enrol import FULL, KNOWN_HOST, RECORDED, UPDATED, Seen
from zboot.ops.state import State
from zboot.remote.base import Result
from zboot.remote.plan import PlanRunner
from zboot.targets.base import NoEngine
from zboot.testing.recording import RecordingRunner, program_sets
from zboot.zfs.cli import ZfsCli

DISCOVERED = "tank/zboot/discovered"
AT = 1_900_000_000.0  # 2030-03-17T17:46:40Z
PC01_MAC = "52:54:00:aa:00:01"  # host pc01's, in zfs_samples


def m(n: int) -> MacAddress:
    return mac(f"52:54:00:cc:{n // 256:02x}:{n % 256:02x}")


@dataclass
class Server:
    """zfs_samples' pool, plus <root>/discovered and its properties, which
    zfs create, set and inherit change as ZFS would."""

    props: dict[str, str] = field(default_factory=dict)  # org.zboot:seen-... -> JSON
    made: bool = True  # the discovered dataset exists

    def respond(self, argv: tuple[str, ...], _: bytes | None) -> Result:
        verb = argv[:2]
        if verb == ("zfs", "list") and "-r" in argv:
            extra = f"{DISCOVERED}\tfilesystem\t98304\t98304\t-\t-\t1795239104\t1.00\n"
            return self.ok(argv, LIST + (extra if self.made else ""))
        if verb == ("zfs", "get"):
            lines = "".join(f"{DISCOVERED}\t{k}\t{v}\n" for k, v in self.props.items())
            return self.ok(argv, GET + lines)
        if verb == ("zfs", "create") and argv[-1] == DISCOVERED:
            self.made = True
        elif verb == ("zfs", "set") and argv[-1] == DISCOVERED:
            assert self.made, "zfs set on a dataset that does not exist"
            self.props |= dict(arg.split("=", 1) for arg in argv[2:-1])
        elif verb == ("zfs", "inherit") and argv[-1] == DISCOVERED:
            self.props.pop(argv[2], None)
        elif verb == ("zfs", "list"):  # missing(names): all there
            return self.ok(argv, "\n".join(argv[4:]))
        return self.ok(argv, "")

    @staticmethod
    def ok(argv: tuple[str, ...], text: str) -> Result:
        return Result(argv, 0, text.encode(), b"")

    def context(self, **serve: Any) -> tuple[Context, RecordingRunner]:
        runner = RecordingRunner(self.respond)
        config = Config(serve=ServeConfig(**serve))
        return Context(config, runner, ZfsCli(runner), NoEngine), runner

    def seen(self) -> dict[str, dict[str, str]]:
        return {k: json.loads(v) for k, v in self.props.items()}


def writes(runner: RecordingRunner) -> list[tuple[str, ...]]:
    return [c for c in runner.commands if c[:2] not in (("zfs", "list"), ("zfs", "get"))]


FACTS = {"manufacturer": "QEMU", "product": "Standard PC", "uuid": "1234", "colour": "red"}


def test_a_batch_is_recorded_with_one_zfs_set() -> None:
    server = Server(made=False)
    c, runner = server.context()
    seen = [Seen(m(i), FACTS, "10.0.0.9") for i in range(3)]
    assert enrol.record_seen(c, seen, at=AT) == [RECORDED] * 3
    create, set_ = writes(runner)
    assert create == ("zfs", "create", "-p", "-o", "mountpoint=none", DISCOVERED)
    assert set_[:2] == ("zfs", "set") and len(set_) == 2 + 3 + 1
    record = server.seen()["org.zboot:seen-525400cc0001"]
    assert record == {
        "mac": "52:54:00:cc:00:01",
        "uuid": "1234",
        "manufacturer": "QEMU",
        "product": "Standard PC",
        "address": "10.0.0.9",
        "first": "2030-03-17T17:46:40Z",
        "last": "2030-03-17T17:46:40Z",
    }  # the unknown fact is dropped
    assert [s.mac for s in enrol.discovered(c)] == [m(0), m(1), m(2)]


def test_a_missing_root_is_made_without_a_mountpoint_first() -> None:
    server = Server(made=False)
    c, runner = server.context()
    enrol.record_seen(c, [Seen(m(1), {})], state=State({}, {}), at=AT)
    made = [w for w in writes(runner) if w[1] == "create"]
    assert [w[-1] for w in made] == ["tank/zboot", DISCOVERED]
    assert all(w[2:5] == ("-p", "-o", "mountpoint=none") for w in made)


def test_a_known_host_is_not_recorded() -> None:
    server = Server()
    c, runner = server.context()
    assert enrol.record_seen(c, [Seen(mac(PC01_MAC), FACTS)], at=AT) == [KNOWN_HOST]
    assert writes(runner) == [] and server.props == {}


def test_the_cap_refuses_new_machines_but_not_known_ones() -> None:
    server = Server()
    c, _ = server.context(discover_limit=2)
    assert enrol.record_seen(c, [Seen(m(1), {})], at=AT) == [RECORDED]
    batch = [Seen(m(2), {}), Seen(m(3), {}), Seen(m(1), {"serial": "new"})]
    assert enrol.record_seen(c, batch, at=AT) == [RECORDED, FULL, UPDATED]
    assert len(server.props) == 2
    assert server.seen()["org.zboot:seen-525400cc0001"]["serial"] == "new"


def test_a_limit_of_zero_records_nothing() -> None:
    server = Server()
    c, runner = server.context(discover_limit=0)
    assert enrol.record_seen(c, [Seen(m(1), {}), Seen(mac(PC01_MAC), {})], at=AT) == [
        FULL,
        KNOWN_HOST,
    ]
    assert writes(runner) == []


def test_an_unchanged_record_is_rewritten_at_most_once_a_minute() -> None:
    server = Server()
    c, runner = server.context()
    enrol.record_seen(c, [Seen(m(1), FACTS, "10.0.0.9")], at=AT)
    first = writes(runner)
    for later in (1, 30, 59):  # a flood of the same request: no write
        assert enrol.record_seen(c, [Seen(m(1), FACTS, "10.0.0.9")], at=AT + later) == [UPDATED]
    assert writes(runner) == first
    enrol.record_seen(c, [Seen(m(1), FACTS, "10.0.0.9")], at=AT + 60)
    assert len(writes(runner)) == 2
    assert server.seen()["org.zboot:seen-525400cc0001"]["last"] == "2030-03-17T17:47:40Z"
    assert server.seen()["org.zboot:seen-525400cc0001"]["first"] == "2030-03-17T17:46:40Z"
    enrol.record_seen(c, [Seen(m(1), FACTS, "10.0.0.10")], at=AT + 61)  # moved: written
    assert len(writes(runner)) == 3


# anything a client could send: any text, any keys, control characters, non-ASCII
HOSTILE = st.text(st.characters(codec="utf-8"), max_size=300)
HOSTILE_FACTS = st.dictionaries(
    st.sampled_from([*enrol.FACTS, "uuid\n", "x", ""]) | HOSTILE, HOSTILE, max_size=10
)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(facts=HOSTILE_FACTS, address=HOSTILE | st.sampled_from(["10.0.0.1", "fe80::1%eth0\n"]))
def test_hostile_facts_never_make_a_bad_property(facts: dict[str, str], address: str) -> None:
    server = Server()
    c, runner = server.context()
    assert enrol.record_seen(c, [Seen(m(7), facts, address)], at=AT) == [RECORDED]
    [set_] = writes(runner)
    [arg] = set_[2:-1]
    name, _, text = arg.partition("=")
    assert name == "org.zboot:seen-525400cc0007"
    assert text.isascii() and text.isprintable() and "\t" not in text and "\n" not in text
    assert len(text.encode()) <= enrol.MAX_VALUE
    data = json.loads(text)
    assert set(data) <= {"mac", *enrol.FACTS, "address", "first", "last"}
    assert all(len(v) <= enrol.MAX_FACT for k, v in data.items())
    [back] = enrol.discovered(c)  # read back as it was written
    assert back.facts == {k: v for k, v in data.items() if k in enrol.FACTS}


@settings(max_examples=50, deadline=None)
@given(batches=st.lists(st.lists(st.integers(0, 40), max_size=8), max_size=12))
def test_a_flood_of_made_up_macs_never_passes_the_cap(batches: list[list[int]]) -> None:
    server = Server()
    c, _ = server.context(discover_limit=5)
    for i, batch in enumerate(batches):
        enrol.record_seen(c, [Seen(m(n), {"serial": str(i)}) for n in batch], at=AT + i)
        assert len(server.props) <= 5


def test_pattern_names_number_from_one_and_skip_taken_names() -> None:
    taken = {"pc01", "pc03", "other"}
    assert enrol.free_names("pc{n:02}", taken, 3) == ["pc02", "pc04", "pc05"]
    assert enrol.free_names("Lab-{n}x", set(), 2) == ["lab-1x", "lab-2x"]
    assert enrol.pattern_number("pc{n:03}", "pc012") == 12
    assert enrol.pattern_number("Lab-{n}x", "lab-7x") == 7
    assert enrol.pattern_number("pc{n:03}", "pcx12") is None
    assert enrol.pattern_number("pc{n:03}", "pc") is None


def test_adopt_is_one_clone_batch_then_one_chain_of_removals() -> None:
    server = Server()
    c, runner = server.context()
    enrol.record_seen(c, [Seen(m(1), FACTS), Seen(m(2), FACTS), Seen(m(3), FACTS)], at=AT)
    runner.commands.clear()
    typed = "52-54-00-DD-00-01"
    done = enrol.adopt(c, [str(m(2)), str(m(1)), typed], "golden", "lab{n:02}")
    assert [(mac_, r.host, r.error) for mac_, r in done.rows] == [
        (m(2), "lab01", None),
        (m(1), "lab02", None),
        ("52:54:00:dd:00:01", "lab03", None),
    ]
    assert done.undiscovered == ["52:54:00:dd:00:01"]
    assert [(r.record or {})["mac"] for r in done.results] == [m(2), m(1), "52:54:00:dd:00:01"]
    done_ = writes(runner)
    kinds = [c[:2] for c in done_]
    assert kinds == [("zfs", "clone")] * 3 + [("zfs", "program")] + [("zfs", "inherit")] * 2
    marked = program_sets(done_[3])  # one mark, 3 disks
    assert [d for d, _ in marked] == [f"tank/zboot/hosts/lab0{n}" for n in (1, 2, 3)]
    assert all(props["org.zboot:state"] == "ready" for _, props in marked)
    assert done_[4][2:] == ("org.zboot:seen-525400cc0002", DISCOVERED)
    assert list(server.props) == ["org.zboot:seen-525400cc0003"]  # the one not adopted


@pytest.mark.parametrize(
    ("macs", "image", "pattern", "error"),
    [
        (["52:54:00:cc:00:01", "zz"], "golden", None, InvalidInput),
        (["52:54:00:cc:00:01"], "golden", "pc{x}", InvalidInput),
        (["52:54:00:cc:00:01"], "golden", "", InvalidInput),  # given empty: not the default
        (["52:54:00:cc:00:01"], "Golden", None, InvalidInput),
        ([], "golden", None, InvalidInput),
        (["52:54:00:cc:00:01"], "silver", None, NotFound),
        (["52:54:00:cc:00:01"], "golden@v9", None, NotFound),
    ],
)
def test_adopt_refuses_bad_input_and_changes_nothing(
    macs: list[str], image: str, pattern: str | None, error: type[Exception]
) -> None:
    server = Server()
    c, runner = server.context()
    with pytest.raises(error):
        enrol.adopt(c, macs, image, pattern)
    assert writes(runner) == []
    if error is InvalidInput:
        assert runner.commands == []  # refused before the server


def test_adopting_a_hosts_mac_fails_that_machine_alone() -> None:
    server = Server()
    c, _ = server.context()
    done = enrol.adopt(c, [PC01_MAC, str(m(1))], "golden")
    [(_, owned), (_, made)] = done.rows
    assert owned.host == "pc01" and isinstance(owned.error, Conflict)
    assert made.host == "pc001" and made.error is None  # the default pattern, pc{n:03}


def test_adopt_unknown_is_off_by_default_and_bounded_by_the_cap() -> None:
    server = Server()
    c, runner = server.context()
    assert enrol.adopt_unknown(c, Seen(m(1), FACTS)) is None
    assert runner.commands == []
    c, runner = server.context(adopt_image="golden", adopt_names="pc{n:02}")
    made = enrol.adopt_unknown(c, Seen(m(1), FACTS))
    assert made is not None and made.host == "pc02" and made.error is None  # pc01 exists
    assert enrol.adopt_unknown(c, Seen(mac(PC01_MAC), FACTS)) is None  # a host's MAC
    # pc01 already carries a pattern name: with a cap of 1 nothing more is made
    c, runner = server.context(adopt_image="golden", adopt_names="pc{n:02}", discover_limit=1)
    assert enrol.adopt_unknown(c, Seen(m(2), FACTS)) is None
    assert writes(runner) == []


def run_cli(server: Server, command: Any, **args: Any) -> int:
    """A command function run on the fake server; its exit code."""
    c, runner = server.context()
    session = Session(json=True)
    session._config = c.config
    session._runner = PlanRunner(runner, execute=True)
    session._context = replace(c, runner=session._runner, zfs=ZfsCli(session._runner))
    with pytest.raises(typer.Exit) as stopped:
        command(cast(typer.Context, SimpleNamespace(obj=session)), **args)
    return int(stopped.value.exit_code)


def envelope(capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(capsys.readouterr().out)
    jsonschema.validate(out, SCHEMA)
    return out


def test_discovered_and_adopt_json_match_the_schema(capsys: pytest.CaptureFixture[str]) -> None:
    server = Server()
    c, _ = server.context()
    enrol.record_seen(c, [Seen(m(1), FACTS | {"platform": "efi"}, "10.0.0.9")], at=AT)
    run_cli(server, enrol_cli.discovered)
    [row] = envelope(capsys)["data"]
    assert row["mac"] == m(1) and row["platform"] == "efi" and row["serial"] == ""
    code = run_cli(server, enrol_cli.adopt, macs=[str(m(1)), PC01_MAC], image="golden", names=None)
    out = envelope(capsys)
    assert code == out["exit_code"] == 4  # pc01's MAC: a conflict, the other adopted
    assert [h["ok"] for h in out["data"]["hosts"]] == [True, False]
    assert out["data"]["undiscovered"] == []
    run_cli(server, enrol_cli.discovered)
    assert envelope(capsys)["data"] == []
