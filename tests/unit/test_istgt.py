"""The istgt engine without a server: istgt's config syntax (on Debian's own
example files), the block zboot writes and reads back, one restart per batch,
putting the old files back when istgt does not come back, `istgtcontrol info`."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zboot.chap import Chap
from zboot.errors import InvalidInput, ServerError
from zboot.remote.base import Result
from zboot.remote.plan import PlanRunner
from zboot.targets.base import Export, data_serial, disk_serial
from zboot.targets.istgt import (
    BEGIN,
    END,
    RESTART,
    IstgtEngine,
    parse_block,
    parse_info,
    parse_sections,
    render_auth_block,
    render_block,
    split_block,
)
from zboot.testing.recording import RecordingRunner

SAMPLES = Path(__file__).parent / "samples"
ADMIN = """[Global]
  PidFile /var/run/istgt.pid
  AuthFile /etc/istgt/auth.conf
[UnitControl]
  AuthMethod None
  Portal UC1 127.0.0.1:3261
[PortalGroup3]
  Portal DA1 0.0.0.0:3260
[LogicalUnit5]
  TargetName admins-own
  Mapping PortalGroup3 InitiatorGroup5
  LUN0 Storage /dev/sdb Auto
"""
PLAIN = Export(
    "pc1", "iqn.2026-11.lab.zboot:pc1", "/dev/zvol/tank/zboot/hosts/pc1", "iqn.2010-04.org.ipxe:pc1"
)
MUTUAL = Export(
    "pc2",
    "iqn.2026-11.lab.zboot:pc2",
    "/dev/zvol/tank/zboot/hosts/pc2",
    "iqn.2010-04.org.ipxe:pc2",
    Chap(
        "iqn.2010-04.org.ipxe:pc2",
        "Secret0123456789",
        "iqn.2026-11.lab.zboot:pc2",
        "Mutual0123456789",
    ),
)


class Istgt(RecordingRunner):
    """A server whose istgt serves, after each restart, the zboot targets
    named in its config (or nothing at all when `comes_back` is False)."""

    def __init__(self, conf: str = ADMIN, comes_back: bool = True) -> None:
        super().__init__(self.respond, files={"/etc/istgt/istgt.conf": conf.encode()})
        self.comes_back = comes_back
        self.serving: list[str] = []

    def respond(self, argv: tuple[str, ...], _: bytes | None) -> Result:
        if argv == RESTART:
            conf = self.files["/etc/istgt/istgt.conf"].decode()
            self.serving = (
                [s.get("TargetName")[0] for s in parse_sections(conf) if s.kind == "LogicalUnit"]
                if self.comes_back
                else []
            )
        if argv[-1] == "list":
            return Result(argv, 0, "\n".join([*self.serving, "DONE LIST command"]).encode(), b"")
        return Result(argv, 0, b"", b"")


def test_debian_example_config_parses() -> None:
    sections = parse_sections((SAMPLES / "istgt_example.conf").read_text())
    assert [(s.kind, s.tag) for s in sections] == [
        ("Global", None),
        ("UnitControl", None),
        ("PortalGroup", 1),
        ("InitiatorGroup", 1),
        ("LogicalUnit", 1),
    ]
    unit = sections[-1]
    assert unit.get("TargetAlias") == ["Data Disk1"]  # quoted values keep their spaces
    assert unit.get("Mapping") == ["PortalGroup1", "InitiatorGroup1"]
    assert unit.get("LUN0") == ["Storage", "/tank/iscsi/istgt-disk1", "10GB"]
    [auth] = parse_sections((SAMPLES / "istgt_auth_example.conf").read_text())
    assert auth.items[1] == (
        "Auth",
        [
            "iqn.1991-05.com.microsoft:saturn",
            "1234567890abcdef",
            "iqn.2007-09.jp.ne.peach:disk1",
            "mutualtestxx",
        ],
    )


def test_the_block_reads_back_as_the_exports_it_was_written_from() -> None:
    conf, auth = render_block([PLAIN, MUTUAL], 7, 3), render_auth_block([PLAIN, MUTUAL], 7)
    [plain, mutual] = parse_block(conf, auth)
    assert (plain, mutual) == (PLAIN, MUTUAL)
    assert mutual.chap == MUTUAL.chap and plain.chap is None
    assert "Mapping PortalGroup3 InitiatorGroup8" in conf and "AuthMethod CHAP Mutual" in conf
    assert "Secret0123456789" not in conf  # secrets only in the AuthFile
    # istgt's serial field holds 16 characters
    serials = [
        v[2]
        for s in parse_sections(conf)
        for k, v in s.items
        if k == "LUN0" and v[:2] == ["Option", "Serial"]
    ]
    assert [len(s) for s in serials] == [16, 16] and serials[0] != serials[1]


def test_a_batch_keeps_the_admins_text_and_restarts_once() -> None:
    server = Istgt()
    engine = IstgtEngine(server, wait_seconds=1)
    engine.apply(create=[PLAIN, MUTUAL])
    conf = server.files["/etc/istgt/istgt.conf"].decode()
    assert split_block(conf)[0] == ADMIN and BEGIN in conf
    assert "[LogicalUnit6]" in conf  # after the admin's highest tag
    assert server.commands.count(RESTART) == 1
    assert server.modes["/etc/istgt/auth.conf"] == 0o600
    assert not any("Secret0123456789" in " ".join(c) for c in server.commands)
    assert engine.exports() == {PLAIN.target: PLAIN, MUTUAL.target: MUTUAL}

    engine.apply(delete=[PLAIN.target])  # the kept host keeps its secrets
    assert engine.exports() == {MUTUAL.target: MUTUAL}
    assert b"Mutual0123456789" in server.files["/etc/istgt/auth.conf"]
    assert server.serving == ["admins-own", MUTUAL.target]


def test_old_files_come_back_when_istgt_does_not() -> None:
    server = Istgt(comes_back=False)
    with pytest.raises(ServerError, match="did not come back"):
        IstgtEngine(server, wait_seconds=0.2).apply(create=[PLAIN])
    assert server.files["/etc/istgt/istgt.conf"].decode() == ADMIN
    assert server.commands.count(RESTART) == 2  # on the new files, then on the old


def test_no_portal_group_changes_nothing() -> None:
    server = Istgt(conf="[Global]\n  PidFile /x\n")
    with pytest.raises(ServerError, match="PortalGroup"):
        IstgtEngine(server).apply(create=[PLAIN])
    assert RESTART not in server.commands and "/etc/istgt/auth.conf" not in server.files


def test_a_value_istgt_cannot_hold_is_refused() -> None:
    bad = Export("pc3", "iqn.2026-11.lab.zboot:pc3", '/dev/zvol/tank/a"b', "iqn.x:pc3")
    server = Istgt()
    with pytest.raises(InvalidInput):
        IstgtEngine(server).apply(create=[bad])
    assert RESTART not in server.commands


def test_sessions_come_from_istgtcontrol_info() -> None:
    text = (SAMPLES / "istgtcontrol_info.txt").read_text()
    assert parse_info(text) == {"iqn.2026-11.lab.zboot:a": ["iqn.2010-04.org.ipxe:c"]}


def test_an_admins_apostrophe_is_read_as_istgt_reads_it() -> None:
    """Once shlex's "No closing quotation", a traceback: quotes are shell-like,
    and one left open runs to the end of its line."""
    conf = ADMIN.replace(
        "  TargetName admins-own\n",
        '  Comment Bob\'s disk\n  Comment "Ann\'s \\"spare\\" disk"\n  TargetName admins-own\n',
    )
    [unit] = [s for s in parse_sections(conf) if s.kind == "LogicalUnit"]
    assert [v for k, v in unit.items if k == "Comment"] == [["Bobs disk"], ['Ann\'s "spare" disk']]
    server = Istgt(conf)
    IstgtEngine(server, wait_seconds=1).apply(create=[PLAIN])
    assert server.serving == ["admins-own", PLAIN.target]


def test_a_change_that_changes_nothing_restarts_nothing() -> None:
    server = Istgt()
    engine = IstgtEngine(server, wait_seconds=1)
    engine.apply(create=[PLAIN])
    engine.apply(delete=["iqn.2026-11.lab.zboot:gone"])  # not there: a re-run's delete
    engine.apply(create=[PLAIN])  # the same export again
    assert server.commands.count(RESTART) == 1  # every session of every host kept


def test_a_dry_run_plans_the_restart_without_waiting_for_it() -> None:
    server = Istgt()
    dry = PlanRunner(server, execute=False)
    started = time.monotonic()
    IstgtEngine(dry, wait_seconds=5).apply(create=[PLAIN])
    assert time.monotonic() - started < 2
    assert " ".join(RESTART) in dry.changes
    assert server.files["/etc/istgt/istgt.conf"].decode() == ADMIN  # nothing written


# --- the data disk: LUN1 of the host's own LogicalUnit ---------------------
DATA = "/dev/zvol/tank/zboot/data/pc1"
PLAIN_DATA = replace(PLAIN, data_device=DATA)


def luns(conf: str, target: str) -> dict[str, list[list[str]]]:
    """The LUNn lines of the LogicalUnit serving target, by key."""
    [unit] = [s for s in parse_sections(conf) if s.get("TargetName") == [target]]
    found: dict[str, list[list[str]]] = {}
    for key, values in unit.items:
        if key.startswith("LUN"):
            found.setdefault(key, []).append(values)
    return found


def test_a_data_disk_is_lun1_of_the_hosts_unit() -> None:
    conf = render_block([PLAIN_DATA, MUTUAL], 7, 3)
    serial, data = disk_serial("pc1").replace("-", "")[:16], data_serial("pc1").replace("-", "")
    assert luns(conf, PLAIN.target) == {
        "LUN0": [["Storage", PLAIN.device, "Auto"], ["Option", "Serial", serial]],
        "LUN1": [["Storage", DATA, "Auto"], ["Option", "Serial", data[:16]]],
    }
    assert serial != data[:16]
    assert list(luns(conf, MUTUAL.target)) == ["LUN0"]  # no data disk, no LUN1
    # one unit, one mapping: the data disk is for the same initiator group alone
    [unit] = [s for s in parse_sections(conf) if s.get("TargetName") == [PLAIN.target]]
    assert [v for k, v in unit.items if k == "Mapping"] == [["PortalGroup3", "InitiatorGroup7"]]
    assert parse_block(conf, render_auth_block([PLAIN_DATA, MUTUAL], 7)) == [PLAIN_DATA, MUTUAL]


def test_a_data_disk_is_exported_read_back_and_removed() -> None:
    server = Istgt()
    engine = IstgtEngine(server, wait_seconds=1)
    engine.apply(create=[PLAIN_DATA, MUTUAL])
    waits = [c[-2] for c in server.commands if c[0] == "sh"]
    assert waits == [PLAIN.device, DATA, MUTUAL.device]
    assert engine.exports() == {PLAIN.target: PLAIN_DATA, MUTUAL.target: MUTUAL}
    assert engine.exports()[MUTUAL.target].data_device == ""
    engine.apply(create=[PLAIN])  # the host's data disk is taken away
    assert engine.exports()[PLAIN.target] == PLAIN != PLAIN_DATA
    assert DATA not in server.files["/etc/istgt/istgt.conf"].decode()
    engine.apply(create=[PLAIN_DATA])
    engine.apply(delete=[PLAIN.target])
    assert DATA not in server.files["/etc/istgt/istgt.conf"].decode()
    assert server.serving == ["admins-own", MUTUAL.target]


HOSTS = st.lists(st.from_regex(r"[a-z][a-z0-9-]{0,12}", fullmatch=True), unique=True, max_size=4)


@settings(max_examples=60, database=None, deadline=None)
@given(hosts=HOSTS, data=st.lists(st.booleans(), min_size=4, max_size=4))
def test_any_mix_of_hosts_with_and_without_data_disks_reads_back(
    hosts: list[str], data: list[bool]
) -> None:
    exports = [
        Export(
            h,
            f"iqn.2026-11.lab.zboot:{h}",
            f"/dev/zvol/tank/zboot/hosts/{h}",
            f"iqn.2010-04.org.ipxe:{h}",
            data_device=f"/dev/zvol/tank/zboot/data/{h}" if with_data else "",
        )
        for h, with_data in zip(hosts, data, strict=False)
    ]
    conf = render_block(exports, 2, 1)
    assert conf.endswith(f"{END}\n")
    assert parse_block(conf, render_auth_block(exports, 2)) == exports
