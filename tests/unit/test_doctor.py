"""doctor's checks on a recorded ZFS state, engine and boot directory (no
server): each kind of drift is found, and a server that matches the records
has none."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from zfs_samples import GET, LIST

from zboot.boot.ipxe import render, script_name
from zboot.chap import Chap, digest
from zboot.config import Config
from zboot.ops.bootfiles import boot_target
from zboot.ops.doctor import Finding, Survey, check
from zboot.ops.exports import host_export
from zboot.ops.state import State, read_state
from zboot.remote.base import Result
from zboot.testing.recording import RecordingRunner
from zboot.zfs.cli import ZfsCli

CONFIG = Config(iqn_base="iqn.2026-11.lab.zboot", portal="10.0.2.2:3260")
INITIATOR = "iqn.2010-04.org.ipxe:pc01"
MAC = "52:54:00:aa:00:01"
TARGET = "iqn.2026-11.lab.zboot:pc01"
GOT = GET + (
    f"tank/zboot/hosts/pc01\torg.zboot:initiator\t{INITIATOR}\n"
    f"tank/zboot/hosts/pc01\torg.zboot:target\t{TARGET}\n"
    "tank/zboot/hosts/pc01\torg.zboot:mode\tnormal\n"
)
EXPORT = host_export(CONFIG, "pc01", INITIATOR)


def state_of(got: str = GOT, listed: str = LIST) -> State:
    def respond(argv: tuple[str, ...], _: bytes | None) -> Result:
        return Result(argv, 0, (listed if argv[:2] == ("zfs", "list") else got).encode(), b"")

    return read_state(ZfsCli(RecordingRunner(respond)), CONFIG)


def healthy(got: str = GOT, **changes: Any) -> Survey:
    state = state_of(got)
    target = boot_target(CONFIG, 0, "pc01", state.host("pc01").record, None)
    assert target is not None
    scripts = {script_name(MAC): render("normal", target)}
    survey = Survey(state, "lio", {TARGET: EXPORT}, {}, scripts, set(), "tank", 12)
    return replace(survey, **changes)


def kinds(survey: Survey) -> list[tuple[str, str]]:
    found: list[Finding] = check(CONFIG, 0, survey)
    return [(f.kind, f.subject) for f in found]


def test_a_server_that_matches_the_records_has_no_drift() -> None:
    assert kinds(healthy()) == []


def test_a_host_stuck_mid_operation_is_reported() -> None:
    stuck = (
        GOT.replace("org.zboot:state\tready", "org.zboot:state\tprovisioning")
        + "tank/zboot/hosts/pc01\torg.zboot:step\tclone:cloned\n"
    )
    found = check(CONFIG, 0, healthy(stuck))
    assert [(f.kind, f.subject) for f in found] == [("unfinished", "pc01")]
    assert "clone:cloned" in found[0].detail and found[0].repair


def test_missing_orphan_and_wrong_exports() -> None:
    orphan = host_export(CONFIG, "gone", "iqn.2010-04.org.ipxe:gone")
    assert kinds(healthy(exports={})) == [("missing-export", "pc01")]
    assert kinds(healthy(exports={TARGET: EXPORT, orphan.target: orphan})) == [
        ("orphan-target", orphan.target)
    ]
    moved = replace(EXPORT, initiator="iqn.2010-04.org.ipxe:intruder")
    assert kinds(healthy(exports={TARGET: moved})) == [("wrong-export", "pc01")]


def test_an_orphan_target_in_use_is_left_to_a_person() -> None:
    orphan = host_export(CONFIG, "gone", "iqn.2010-04.org.ipxe:gone")
    found = check(
        CONFIG,
        0,
        healthy(
            exports={TARGET: EXPORT, orphan.target: orphan},
            sessions={orphan.target: [orphan.initiator]},
        ),
    )
    assert [(f.kind, f.repair) for f in found] == [("orphan-target", ""), ("stale-session", "")]


def test_a_session_by_another_initiator_is_stale() -> None:
    assert kinds(healthy(sessions={TARGET: ["iqn.2010-04.org.ipxe:pc99"]})) == [
        ("stale-session", TARGET)
    ]
    assert kinds(healthy(sessions={TARGET: [INITIATOR]})) == []


def test_boot_files_missing_stale_and_orphaned() -> None:
    good = healthy().scripts[script_name(MAC)]
    assert kinds(healthy(scripts={})) == [("missing-boot-file", "pc01")]
    wrong_target = good.replace(TARGET, "iqn.2026-11.lab.zboot:pc02")
    assert kinds(healthy(scripts={script_name(MAC): wrong_target})) == [("stale-boot-file", "pc01")]
    wrong_mode = good.replace("mode normal", "mode local")
    assert kinds(healthy(scripts={script_name(MAC): wrong_mode})) == [("stale-boot-file", "pc01")]
    other = script_name("52:54:00:aa:00:99")
    assert kinds(healthy(scripts={script_name(MAC): good, other: good})) == [
        ("orphan-boot-file", other)
    ]


def test_secrets_lost_and_orphaned() -> None:
    chap = GOT + "tank/zboot/hosts/pc01\torg.zboot:chap\tone-way\n"
    assert kinds(healthy(chap)) == [("missing-secret", "pc01")]
    assert kinds(healthy(chap, secret_hosts={"pc01"})) == []
    assert kinds(healthy(secret_hosts={"pc07"})) == [("orphan-secret", "pc07")]


def test_a_stale_maintenance_mark_and_a_full_pool() -> None:
    held = GOT + "tank/zboot/images/golden\torg.zboot:maintenance\tpc01\n"
    assert kinds(healthy(held)) == [("stale-maintenance", "golden")]
    found = check(CONFIG, 0, healthy(capacity=93))
    assert [(f.kind, f.subject, f.repair) for f in found] == [("pool-full", "tank", "")]


def test_the_script_of_a_host_whose_rollback_stopped_halfway_is_kept() -> None:
    """Its disk is in the archive; the rollback's re-run still needs the script."""
    moved = LIST.replace("tank/zboot/hosts/pc01\t", "tank/zboot/archive/pc01-1\t")
    got = (
        GOT.replace("tank/zboot/hosts/pc01\t", "tank/zboot/archive/pc01-1\t")
        + "tank/zboot/archive/pc01-1\torg.zboot:host\tpc01\n"
    )
    state = state_of(got, moved)
    assert "pc01" in state.unfinished_rollbacks and "pc01" not in state.hosts
    found = kinds(replace(healthy(), state=state, exports={}))
    assert found == [("unfinished", "pc01")]


KEPT = Chap(INITIATOR, "Kx7Vq2LmPa9RtY4w")


def test_a_target_whose_chap_is_not_the_secret_files_is_found() -> None:
    """Compared as digests: the engine's, and the secret file's."""
    chap = GOT + "tank/zboot/hosts/pc01\torg.zboot:chap\tone-way\n"
    same = {"chaps": {TARGET: digest(KEPT)}, "secret_hosts": {"pc01"}}
    assert kinds(healthy(chap, **same, secret_digests={"pc01": digest(KEPT)})) == []
    other = digest(Chap(INITIATOR, "AAAAAAAAAAAAAAAA"))
    found = check(CONFIG, 0, healthy(chap, **same, secret_digests={"pc01": other}))
    assert [(f.kind, f.subject, f.repair) for f in found] == [
        ("wrong-secret", "pc01", "export it again")
    ]
    assert KEPT.secret not in found[0].detail and "AAAA" not in found[0].detail
    in_use = healthy(chap, **same, secret_digests={"pc01": other}, sessions={TARGET: [INITIATOR]})
    assert [f.repair for f in check(CONFIG, 0, in_use)] == [""]  # never under a machine
    # a target with CHAP its record does not ask for
    assert kinds(healthy(chaps={TARGET: digest(KEPT)})) == [("wrong-secret", "pc01")]
    # an engine that does not show CHAP: nothing to compare
    assert kinds(healthy(chap, secret_hosts={"pc01"}, chaps=None)) == []


def test_an_orphan_storage_object_is_found() -> None:
    found = check(
        CONFIG, 0, healthy(orphan_stores={"zboot-pc07": "/dev/zvol/tank/zboot/hosts/pc07"})
    )
    assert [(f.kind, f.subject, f.repair) for f in found] == [
        ("orphan-storage", "zboot-pc07", "remove it")
    ]


def test_a_secret_script_others_may_read_is_reported() -> None:
    problem = "52-54-00-aa-00-01.ipxe holds a CHAP secret and anyone on the server may read it"
    found = check(CONFIG, 0, healthy(script_access=[problem]))
    assert [(f.kind, f.subject, f.detail) for f in found] == [
        ("boot-file-access", "52-54-00-aa-00-01.ipxe", problem)
    ]
