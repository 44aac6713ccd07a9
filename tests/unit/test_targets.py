"""Target engines without a server: what the LIO engine sends, what --dry-run
lets through, the names and serials it derives."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path

import pytest
from agents import agent_request, imported_modules

from zboot.boot.ipxe import root_path
from zboot.config import Config
from zboot.errors import Conflict, InvalidInput, ServerError
from zboot.ops.exports import host_export, refuse_if_in_use
from zboot.ops.paths import target_iqn
from zboot.remote.base import Result
from zboot.remote.local import LocalRunner
from zboot.remote.plan import PlanRunner
from zboot.targets.agent import python_argv
from zboot.targets.base import DATA_SUFFIX, Export, NoEngine, data_serial, disk_serial
from zboot.targets.lio import AGENT, CONFIGFS, LioEngine, parse_sessions, sessions_argv
from zboot.targets.registry import NAMES as BUILT_ENGINES
from zboot.targets.registry import make_engine
from zboot.testing.recording import RecordingRunner

CONFIG = Config(iqn_base="iqn.2026-11.org.example.zboot")
EXPORT = host_export(CONFIG, "pc01", "iqn.2010-04.org.ipxe:pc01")
PC01_SESSION = (EXPORT.target, "iqn.2010-04.org.ipxe:pc01")


def test_an_export_is_one_target_per_host_under_the_base() -> None:
    assert EXPORT.target == "iqn.2026-11.org.example.zboot:pc01"
    assert EXPORT.device == "/dev/zvol/tank/zboot/hosts/pc01"
    assert EXPORT.storage == "zboot-pc01"


def test_a_missing_iqn_base_says_to_run_init() -> None:
    with pytest.raises(InvalidInput, match="iqn_base"):
        target_iqn(Config(), "pc01")


def test_serials_are_stable_and_differ_per_host() -> None:
    assert disk_serial("pc01") == disk_serial("pc01") != disk_serial("pc02")


def test_apply_is_one_agent_process_with_everything_on_stdin() -> None:
    runner = RecordingRunner({(): Result((), 0, b"{}", b"")})
    second = host_export(CONFIG, "pc02", "iqn.2010-04.org.ipxe:pc02")
    LioEngine(runner).apply(create=[EXPORT, second], delete=["iqn.2026-11.x:old"])
    [argv] = runner.commands
    assert argv[:-1] == tuple(python_argv("")[:-1])
    assert not any("pc01" in arg for arg in argv)  # the request is not in argv
    request = agent_request(runner.inputs[0], AGENT)
    assert request["op"] == "apply" and request["lun"] == 0
    assert [e["target"] for e in request["create"]] == [EXPORT.target, second.target]
    assert request["create"][0]["serial"] == disk_serial("pc01")
    assert request["create"][0]["initiator"] == "iqn.2010-04.org.ipxe:pc01"
    assert request["delete"] == ["iqn.2026-11.x:old"]


def test_nothing_to_apply_runs_nothing() -> None:
    runner = RecordingRunner()
    LioEngine(runner).apply()
    assert runner.commands == []


def logged_in(*pairs: tuple[str, str]) -> Result:
    """What the configfs reader prints for these (target, initiator) sessions."""
    lines = [f"{CONFIGFS}/iscsi/{t}/tpgt_1/acls/{i}/info\n" for t, i in pairs]
    return Result(("sh",), 0, "".join(lines).encode(), b"")


def test_dry_run_reads_sessions_but_plans_changes() -> None:
    inner = RecordingRunner({tuple(sessions_argv([EXPORT.target])): logged_in(PC01_SESSION)})
    dry = PlanRunner(inner, execute=False)
    engine = LioEngine(dry)
    assert engine.sessions([EXPORT.target]) == {EXPORT.target: ["iqn.2010-04.org.ipxe:pc01"]}
    engine.apply(delete=[EXPORT.target])
    assert len(inner.commands) == 1  # only the read reached the server
    assert inner.read_only == [True]
    assert dry.changes == [" ".join(python_argv("")[:-1]) + " <zboot agent> (request on stdin)"]


def test_an_agent_failure_is_a_server_error_with_its_last_line() -> None:
    runner = RecordingRunner(
        lambda argv, _: Result(
            argv, 1, b"", b"Traceback...\nRTSLibError: Could not open /dev/zvol/x\n"
        )
    )
    with pytest.raises(ServerError, match="Could not open"):
        LioEngine(runner).apply(create=[EXPORT])


def test_a_logged_in_host_is_refused_by_name() -> None:
    runner = RecordingRunner({tuple(sessions_argv([EXPORT.target])): logged_in(PC01_SESSION)})
    with pytest.raises(Conflict, match=re.escape("iqn.2010-04.org.ipxe:pc01 is logged in")):
        refuse_if_in_use(LioEngine(runner), EXPORT, force=False)
    refuse_if_in_use(LioEngine(runner), EXPORT, force=True)


def test_sessions_are_read_from_each_acls_info_file_in_configfs(tmp_path: Path) -> None:
    """The reader run by the local sh on a configfs-like tree: an ACL whose
    info starts "No active" has no session; others are logged in; targets
    not asked about, and files that are not an ACL's info, are not read."""
    iscsi = tmp_path / "iscsi"
    acls = {
        ("iqn.2026-11.x:pc01", "iqn.2010-04.org.ipxe:pc01"): "InitiatorName: iqn.2010-04...\n",
        ("iqn.2026-11.x:pc02", "iqn.2010-04.org.ipxe:pc02"): "No active iSCSI Session for ...\n",
        ("iqn.2026-11.x:pc03", "iqn.2010-04.org.ipxe:pc03"): "InitiatorName: ...\n",
        ("iqn.2026-11.x:pc04", "iqn.2010-04.org.ipxe:pc04"): "",  # nothing to read
    }
    for (target, initiator), info in acls.items():
        acl = iscsi / target / "tpgt_1" / "acls" / initiator
        acl.mkdir(parents=True)
        (acl / "info").write_text(info)
    (iscsi / "iqn.2026-11.x:pc01" / "tpgt_1" / "acls" / "stray").write_text("InitiatorName: x")
    wanted = [f"iqn.2026-11.x:{n}" for n in ("pc01", "pc02", "pc04", "gone")]
    runner = LocalRunner()
    read = runner.run(sessions_argv(wanted, str(tmp_path)))
    assert parse_sessions(read.stdout.decode(), wanted) == {
        "iqn.2026-11.x:pc01": ["iqn.2010-04.org.ipxe:pc01"]
    }
    assert parse_sessions(read.stdout.decode(), ["iqn.2026-11.x:pc02"]) == {}
    # no LIO at all (no configfs tree): nobody is logged in
    assert runner.run(sessions_argv(wanted, str(tmp_path / "none"))).stdout == b""


def test_exports_then_their_sessions_is_one_rtslib_process() -> None:
    """doctor reads exports and sessions; the observe answer carries both."""
    seen = {
        EXPORT.target: {
            "host": "pc01",
            "target": EXPORT.target,
            "device": EXPORT.device,
            "initiator": EXPORT.initiator,
        }
    }
    answer = {"exports": seen, "sessions": {EXPORT.target: [EXPORT.initiator]}}
    runner = RecordingRunner(lambda argv, _: Result(argv, 0, json.dumps(answer).encode(), b""))
    engine = LioEngine(runner)
    assert engine.exports() == {EXPORT.target: EXPORT}
    assert engine.sessions([EXPORT.target]) == {EXPORT.target: [EXPORT.initiator]}
    assert len(runner.commands) == 1
    engine.sessions(["iqn.2026-11.x:other"])  # not seen: read from configfs
    assert len(runner.commands) == 2 and runner.commands[1][:2] == ("sh", "-c")
    engine.apply(delete=[EXPORT.target])  # a change makes what was seen stale
    engine.sessions([EXPORT.target])
    assert len(runner.commands) == 4


def test_the_agent_needs_only_the_standard_library_and_rtslib() -> None:
    allowed = {"fcntl", "json", "os", "subprocess", "sys", "time", "typing", "rtslib_fb"}
    assert imported_modules(AGENT) <= allowed


def test_ipxe_root_path() -> None:
    assert root_path("10.0.2.2:43260", 0, EXPORT.target) == (
        "iscsi:10.0.2.2::43260:0:iqn.2026-11.org.example.zboot:pc01"
    )
    assert root_path("10.0.2.2:3261", 1, "iqn.x:y") == "iscsi:10.0.2.2::3261:1:iqn.x:y"


class RecordingEngine(NoEngine):
    name = "recording"

    def __init__(self) -> None:
        self.created: list[str] = []

    def apply(
        self, create: Iterable[Export] = (), delete: Iterable[str] = (), persist: bool = True
    ) -> None:
        self.created += [e.target for e in create]


@pytest.mark.parametrize(
    ("tools", "rtslib", "engine"),
    [
        ("targetcli\ntgtadm\n", True, "lio"),
        ("tgtadm\nistgtcontrol\n", False, "tgt"),
        ("istgtcontrol\n", False, "istgt"),
        ("ctladm\n", False, "ctld"),
        ("itadm\n", False, "comstar"),
        ("", False, "none"),
    ],
)
def test_auto_picks_the_engine_the_server_has(tools: str, rtslib: bool, engine: str) -> None:
    def respond(argv: tuple[str, ...], _: bytes | None) -> Result:
        if argv[0] == "sh":
            return Result(argv, 0, tools.encode(), b"")
        return Result(argv, 0 if rtslib else 1, b"", b"")  # rtslib import, istgt conf

    assert make_engine("auto", RecordingRunner(respond)).name == engine


def test_every_built_engine_can_be_made_and_others_are_refused() -> None:
    for name in BUILT_ENGINES:
        assert make_engine(name, RecordingRunner()).name == name
    with pytest.raises(InvalidInput, match="scst"):
        make_engine("scst", RecordingRunner())


def test_the_agent_is_sent_each_exports_data_disk() -> None:
    runner = RecordingRunner({(): Result((), 0, b"{}", b"")})
    data = replace(EXPORT, data_device="/dev/zvol/tank/zboot/data/pc01")
    plain = host_export(CONFIG, "pc02", "iqn.2010-04.org.ipxe:pc02")
    LioEngine(runner).apply(create=[data, plain])
    request = agent_request(runner.inputs[0], AGENT)
    assert request["data_suffix"] == DATA_SUFFIX
    sent = [(e["data_device"], e["data_storage"], e["data_serial"]) for e in request["create"]]
    assert sent == [
        ("/dev/zvol/tank/zboot/data/pc01", "zboot-pc01.data", data_serial("pc01")),
        ("", "zboot-pc02.data", data_serial("pc02")),
    ]
    assert data_serial("pc01") != disk_serial("pc01")
