"""The tgt engine without a server: parsing tgtadm's real output (recorded in
the lab, tgt 1.0.85 on Debian 12), the commands it sends, its conf.d file."""

from __future__ import annotations

from pathlib import Path

import pytest

from zboot.config import Config
from zboot.errors import InvalidInput
from zboot.ops.exports import host_export
from zboot.remote.base import RecordingRunner, Result
from zboot.targets.base import Chap, disk_serial
from zboot.targets.tgt import TgtEngine, conf_path, conf_text, parse_show

SHOW = (Path(__file__).parent / "samples" / "tgtadm_show_target.txt").read_text()
CONFIG = Config(iqn_base="iqn.2026-11.lab.zboot")
PCT1 = host_export(CONFIG, "pct1", "iqn.2010-04.org.ipxe:pct1")


def server() -> RecordingRunner:
    def respond(argv: tuple[str, ...], _: bytes | None) -> Result:
        if "show" in argv:
            return Result(argv, 0, SHOW.encode(), b"")
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
        PCT1.target: ["iqn.2010-04.org.ipxe:pct1"]}


def test_create_uses_lun_1_a_free_tid_and_binds_by_name_only() -> None:
    runner = server()
    pc2 = host_export(CONFIG, "pct2", "iqn.2010-04.org.ipxe:pct2")
    TgtEngine(runner).apply(create=[pc2])
    tgtadm = [c for c in runner.commands if c[0] == "tgtadm" and "show" not in c]
    assert tgtadm[0] == ("tgtadm", "--lld", "iscsi", "--op", "new", "--mode", "target",
                         "--tid", "1", "-T", pc2.target)  # 7 and 8 are taken
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
        ("tgtadm", "--lld", "iscsi", "--op", "delete", "--mode", "target", "--tid", "7",
         "--force"),
        ("rm", "-f", "/etc/tgt/conf.d/zboot-pct1.conf")]


def test_conf_file_admits_the_initiator_by_name_alone() -> None:
    text = conf_text(PCT1)
    assert f"<target {PCT1.target}>" in text and "lun 1" in text
    assert f"initiator-name {PCT1.initiator}" in text
    assert "initiator-address 0.0.0.0" in text  # else tgt-admin binds ALL


def test_chap_is_refused_rather_than_put_in_argv() -> None:
    runner = server()
    with_chap = host_export(CONFIG, "pct3", "iqn.2010-04.org.ipxe:pct3")
    with_chap = type(with_chap)(with_chap.host, with_chap.target, with_chap.device,
                                with_chap.initiator, chap=Chap("u", "s" * 16))
    with pytest.raises(InvalidInput, match="CHAP with tgt"):
        TgtEngine(runner).apply(create=[with_chap])
    assert runner.commands == []
