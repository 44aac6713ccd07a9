"""The tgt engine without a server: parsing tgtadm's real output (recorded in
the lab, tgt 1.0.85 on Debian 12), the commands it sends, its conf.d file."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from agents import agent_request

from zboot.chap import Chap
from zboot.config import Config
from zboot.errors import InvalidInput, ServerError
from zboot.ops.chap import new_chap
from zboot.ops.exports import host_export
from zboot.remote.base import Result
from zboot.remote.plan import PlanRunner
from zboot.targets.agent import SERVER_PYTHON, bootstrap, python_argv
from zboot.targets.base import Export, data_serial, disk_serial
from zboot.targets.tgt import (
    AGENT,
    TGTADM,
    TgtEngine,
    conf_path,
    conf_text,
    parse_accounts,
    parse_show,
)
from zboot.testing.recording import RecordingRunner

SHOW = (Path(__file__).parent / "samples" / "tgtadm_show_target.txt").read_text()
# The first target with the accounts bound as tgtd 1.0.85 lists them (seen live).
SHOW_WITH_ACCOUNTS = SHOW.replace(
    "    Account information:\n",
    "    Account information:\n        iqn.2010-04.org.ipxe:pct1\n"
    "        iqn.2026-11.lab.zboot:pct1 (outgoing)\n",
    1,
)
ACCOUNTS = (
    "Account list:\n    iqn.2026-11.lab.zboot:pct1\n    iqn.2010-04.org.ipxe:pct1\n"
    "    someone-else\n"
)
CONFIG = Config(iqn_base="iqn.2026-11.lab.zboot")
PCT1 = host_export(CONFIG, "pct1", "iqn.2010-04.org.ipxe:pct1")


def server(targets: str = SHOW, accounts: str = "") -> RecordingRunner:
    def respond(argv: tuple[str, ...], _: bytes | None) -> Result:
        if "show" in argv:
            shown = accounts if "account" in argv else targets
            return Result(argv, 0, shown.encode(), b"")
        return Result(argv, 0, b"", b"")

    return RecordingRunner(respond)


def test_show_output_is_parsed() -> None:
    first, second = parse_show(SHOW)
    assert (first.tid, first.name) == (7, "iqn.2026-11.lab.zboot:pct1")
    assert first.sessions == ["iqn.2010-04.org.ipxe:pct1"]
    assert first.luns == {0: "None", 1: "/dev/zvol/tank/zboot/hosts/pct1"}
    assert first.acl == ["iqn.2010-04.org.ipxe:pct1"]
    assert (second.tid, second.sessions, second.acl) == (8, [], [])


def test_exports_and_sessions_come_from_show() -> None:
    engine = TgtEngine(server())
    assert engine.exports() == {PCT1.target: PCT1}  # the LUN-less target is not zboot's
    assert engine.sessions([PCT1.target, "iqn.2026-11.lab.zboot:other"]) == {
        PCT1.target: ["iqn.2010-04.org.ipxe:pct1"]
    }


def test_create_uses_lun_1_a_free_tid_and_binds_by_name_only() -> None:
    runner = server()
    pc2 = host_export(CONFIG, "pct2", "iqn.2010-04.org.ipxe:pct2")
    TgtEngine(runner).apply(create=[pc2])
    tgtadm = [c for c in runner.commands if c[0] == "tgtadm" and "show" not in c]
    assert tgtadm[0] == (
        "tgtadm",
        "--lld",
        "iscsi",
        "--op",
        "new",
        "--mode",
        "target",
        "--tid",
        "1",
        "-T",
        pc2.target,
    )  # 7 and 8 are taken
    assert tgtadm[1][-4:] == ("--lun", "1", "-b", pc2.device)
    assert tgtadm[2][-1] == f"scsi_sn={disk_serial('pct2')}"
    assert tgtadm[3][-2:] == ("-Q", pc2.initiator)
    assert not any("-I" in c for c in tgtadm)  # never "-I ALL"
    assert runner.files[conf_path("pct2")] == conf_text(pc2).encode()
    assert runner.modes[conf_path("pct2")] == 0o600


def test_delete_removes_the_target_and_its_conf_file() -> None:
    runner = server()
    TgtEngine(runner).apply(delete=[PCT1.target])
    assert [c for c in runner.commands if "show" not in c] == [
        ("tgtadm", "--lld", "iscsi", "--op", "delete", "--mode", "target", "--tid", "7", "--force"),
        ("rm", "-f", "/etc/tgt/conf.d/zboot-pct1.conf"),
    ]


def test_conf_file_admits_the_initiator_by_name_alone() -> None:
    text = conf_text(PCT1)
    assert f"<target {PCT1.target}>" in text and "lun 1" in text
    assert f"initiator-name {PCT1.initiator}" in text
    assert "initiator-address 0.0.0.0" in text  # else tgt-admin binds ALL


def with_chap(host: str, mutual: bool) -> Export:
    plain = host_export(CONFIG, host, f"iqn.2010-04.org.ipxe:{host}")
    return dataclasses.replace(plain, chap=new_chap(plain.initiator, plain.target, mutual))


def test_chap_accounts_come_from_one_agent_before_the_initiator_is_let_in() -> None:
    runner = server()
    one, two, plain = with_chap("pct3", mutual=False), with_chap("pct4", mutual=True), PCT1
    TgtEngine(runner).apply(create=[one, plain, two])
    agents = [i for i, c in enumerate(runner.commands) if SERVER_PYTHON in c]
    assert len(agents) == 1  # one process for the whole batch
    [at] = agents
    binds = [i for i, c in enumerate(runner.commands) if "bind" in c]
    assert len(binds) == 3 and min(binds) > at  # nobody admitted before the accounts
    assert runner.commands[at] == tuple(python_argv(bootstrap("tgt")))
    assert one.chap and two.chap and two.chap.mutual_user and two.chap.mutual_secret
    # tids: 7 and 8 are taken, and PCT1 (tid 7) is replaced, so 1, 2, 3 are handed out
    assert agent_request(runner.inputs[at], AGENT) == {
        "socket": "/var/run/tgtd/socket.0",
        "add": [
            {"tid": 1, "user": one.chap.user, "secret": one.chap.secret, "outgoing": False},
            {"tid": 3, "user": two.chap.user, "secret": two.chap.secret, "outgoing": False},
            {
                "tid": 3,
                "user": two.chap.mutual_user,
                "secret": two.chap.mutual_secret,
                "outgoing": True,
            },
        ],
    }


def test_no_secret_is_ever_in_argv() -> None:
    runner = server()
    exports = [with_chap("pct3", mutual=False), with_chap("pct4", mutual=True)]
    engine = TgtEngine(runner)
    engine.apply(create=exports)
    engine.apply(delete=[e.target for e in exports])
    secrets = [s for e in exports if e.chap for s in (e.chap.secret, e.chap.mutual_secret) if s]
    assert len(secrets) == 3
    assert not [c for c in runner.commands for s in secrets if any(s in arg for arg in c)]
    assert all(s.encode() in b"".join(i or b"" for i in runner.inputs) for s in secrets)


def test_a_plain_batch_runs_no_agent() -> None:
    runner = server()
    TgtEngine(runner).apply(create=[host_export(CONFIG, "pct2", "iqn.2010-04.org.ipxe:pct2")])
    assert not any(SERVER_PYTHON in c for c in runner.commands)
    assert not any("account" in c for c in runner.commands)  # nothing deleted: no account


def test_the_conf_file_carries_the_users_for_chap_exports_only() -> None:
    runner = server()
    one, two = with_chap("pct3", mutual=False), with_chap("pct4", mutual=True)
    TgtEngine(runner).apply(create=[one, two, PCT1])
    assert one.chap and two.chap
    assert f"    incominguser {one.chap.user} {one.chap.secret}\n" in conf_text(one)
    assert "outgoinguser" not in conf_text(one)
    assert conf_text(two).endswith(
        f"    incominguser {two.chap.user} {two.chap.secret}\n"
        f"    outgoinguser {two.chap.mutual_user} {two.chap.mutual_secret}\n</target>\n"
    )
    assert "user" not in conf_text(PCT1)
    for e in (one, two, PCT1):
        assert runner.files[conf_path(e.host)] == conf_text(e).encode()
        assert runner.modes[conf_path(e.host)] == 0o600


def test_account_lists_are_parsed() -> None:
    [first, _] = parse_show(SHOW_WITH_ACCOUNTS)
    assert first.accounts == ["iqn.2010-04.org.ipxe:pct1", "iqn.2026-11.lab.zboot:pct1"]
    assert first.acl == ["iqn.2010-04.org.ipxe:pct1"]
    assert parse_accounts(ACCOUNTS) == [
        "iqn.2026-11.lab.zboot:pct1",
        "iqn.2010-04.org.ipxe:pct1",
        "someone-else",
    ]
    assert parse_accounts("") == []


def test_delete_removes_the_host_accounts_and_no_others() -> None:
    runner = server(SHOW_WITH_ACCOUNTS, ACCOUNTS)
    TgtEngine(runner).apply(delete=[PCT1.target])
    assert [c for c in runner.commands if "show" not in c] == [
        (*TGTADM, "--op", "delete", "--mode", "target", "--tid", "7", "--force"),
        ("rm", "-f", "/etc/tgt/conf.d/zboot-pct1.conf"),
        (*TGTADM, "--op", "delete", "--mode", "account", "--user", "iqn.2010-04.org.ipxe:pct1"),
        (*TGTADM, "--op", "delete", "--mode", "account", "--user", "iqn.2026-11.lab.zboot:pct1"),
    ]


def test_an_account_another_target_uses_is_kept() -> None:
    shared = SHOW_WITH_ACCOUNTS.replace(
        "    Account information:\n    ACL information:\n",
        "    Account information:\n        iqn.2010-04.org.ipxe:pct1\n    ACL information:\n",
    )
    runner = server(shared, ACCOUNTS)
    TgtEngine(runner).apply(delete=[PCT1.target])
    assert [c[-1] for c in runner.commands if "account" in c and "delete" in c] == [
        "iqn.2026-11.lab.zboot:pct1"
    ]


def test_a_control_port_goes_to_tgtadm_and_the_agent() -> None:
    runner = server()
    TgtEngine(runner, control_port=7, conf_dir="/tmp/conf").apply(
        create=[with_chap("pct3", mutual=False)]
    )
    assert all(c[:3] == ("tgtadm", "-C", "7") for c in runner.commands if c[0] == "tgtadm")
    [stdin] = [i for c, i in zip(runner.commands, runner.inputs, strict=True) if SERVER_PYTHON in c]
    assert agent_request(stdin, AGENT)["socket"] == "/var/run/tgtd/socket.7"
    assert set(runner.files) == {"/tmp/conf/zboot-pct3.conf"}


def test_an_agent_failure_is_a_server_error() -> None:
    def respond(argv: tuple[str, ...], _: bytes | None) -> Result:
        if SERVER_PYTHON in argv:
            return Result(
                argv,
                1,
                b"",
                b"tgt: creating account iqn.x: the account already exists (tgtadm error 14)\n",
            )
        return Result(argv, 0, SHOW.encode() if "show" in argv else b"", b"")

    with pytest.raises(ServerError, match=r"creating account iqn\.x"):
        TgtEngine(RecordingRunner(respond)).apply(create=[with_chap("pct3", mutual=False)])


def test_chap_that_the_conf_file_would_break_is_refused() -> None:
    runner = server()
    bad = dataclasses.replace(PCT1, chap=Chap("iqn.2010-04.org.ipxe:pct1", "two words"))
    with pytest.raises(InvalidInput, match="CHAP"):
        TgtEngine(runner).apply(create=[bad])
    assert runner.commands == []


# --- the data disk: LUN 2, the LUN after the OS disk's, in the same target ---
DATA = "/dev/zvol/tank/zboot/data/pct1"
PCT1_DATA = dataclasses.replace(PCT1, data_device=DATA)
# target 7 with a second disk, as tgtadm lists one (the LUN 1 block, renumbered)
SHOW_WITH_DATA = SHOW.replace(
    "    Account information:\n",
    "        LUN: 2\n"
    "            Type: disk\n"
    "            SCSI ID: IET     00070002\n"
    f"            SCSI SN: {data_serial('pct1')}\n"
    "            Size: 4 MB, Block size: 512\n"
    "            Online: Yes\n"
    "            Backing store type: rdwr\n"
    f"            Backing store path: {DATA}\n"
    "            Backing store flags: \n"
    "    Account information:\n",
    1,
)


UPDATE = ("--op", "update", "--mode", "logicalunit", "--tid", "1", "--lun")


def test_a_data_disk_is_lun_2_of_the_same_target_for_the_same_initiator() -> None:
    runner = server(targets="")
    TgtEngine(runner).apply(create=[PCT1_DATA])
    waits = [c[-2] for c in runner.commands if c[0] == "sh"]
    assert waits == [PCT1.device, DATA]  # both devices before the target is made
    tgtadm = [c[3:] for c in runner.commands if c[0] == "tgtadm" and "show" not in c]
    assert tgtadm == [
        ("--op", "new", "--mode", "target", "--tid", "1", "-T", PCT1.target),
        ("--op", "new", "--mode", "logicalunit", "--tid", "1", "--lun", "1", "-b", PCT1.device),
        (*UPDATE, "1", "--params", f"scsi_sn={disk_serial('pct1')}"),
        ("--op", "new", "--mode", "logicalunit", "--tid", "1", "--lun", "2", "-b", DATA),
        (*UPDATE, "2", "--params", f"scsi_sn={data_serial('pct1')}"),
        ("--op", "bind", "--mode", "target", "--tid", "1", "-Q", PCT1.initiator),  # one ACL
    ]
    assert runner.files[conf_path("pct1")] == conf_text(PCT1_DATA).encode()


def test_the_conf_file_restores_the_data_disk_as_lun_2() -> None:
    text = conf_text(PCT1_DATA)
    assert (
        f"    <backing-store {PCT1.device}>\n        lun 1\n"
        f"        scsi_sn {disk_serial('pct1')}\n    </backing-store>\n"
        f"    <backing-store {DATA}>\n        lun 2\n"
        f"        scsi_sn {data_serial('pct1')}\n    </backing-store>\n"
        f"    initiator-name {PCT1.initiator}\n"
    ) in text
    assert "lun 2" not in conf_text(PCT1) and DATA not in conf_text(PCT1)


def test_exports_read_the_data_disk_back_from_lun_2() -> None:
    assert parse_show(SHOW_WITH_DATA)[0].luns == {0: "None", 1: PCT1.device, 2: DATA}
    assert TgtEngine(server(SHOW_WITH_DATA)).exports() == {PCT1.target: PCT1_DATA}
    assert TgtEngine(server(SHOW)).exports()[PCT1.target].data_device == ""
    assert TgtEngine(server(SHOW)).exports() != {PCT1.target: PCT1_DATA}  # sync sees it missing


def test_deleting_a_target_with_a_data_disk_is_one_delete() -> None:
    """tgtd deletes a target with all its LUNs: no store is left on the data zvol."""
    runner = server(SHOW_WITH_DATA)
    TgtEngine(runner).apply(delete=[PCT1.target])
    assert [c for c in runner.commands if "show" not in c] == [
        (*TGTADM, "--op", "delete", "--mode", "target", "--tid", "7", "--force"),
        ("rm", "-f", "/etc/tgt/conf.d/zboot-pct1.conf"),
    ]


def test_a_dry_run_sees_the_data_disk_it_planned() -> None:
    dry = PlanRunner(server(targets=""), execute=False)
    engine = TgtEngine(dry)
    engine.apply(create=[PCT1_DATA])
    assert engine.exports() == {PCT1.target: PCT1_DATA}
