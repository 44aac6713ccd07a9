"""The COMSTAR engine without illumos: its parsers on output samples from
illumos/Oracle docs and public captures (each sample's header says where it
comes from and what was adjusted), and the exact commands it sends to a small
in-memory COMSTAR that prints its listings in stmfadm's/itadm's formats."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest

from zboot.chap import Chap
from zboot.config import Config
from zboot.errors import InvalidInput, ServerError
from zboot.names import iqn
from zboot.ops.exports import host_export
from zboot.remote.base import Result
from zboot.targets.base import data_serial, disk_serial
from zboot.targets.comstar import (
    ComstarEngine,
    data_lu_guid,
    group_name,
    lu_guid,
    parse_created_guid,
    parse_groups,
    parse_itadm_targets,
    parse_list_lu,
    parse_sessions,
    rdsk_path,
    zvol_path,
)
from zboot.testing.recording import RecordingRunner

SAMPLES = Path(__file__).parent / "samples"
LIST_LU = (SAMPLES / "stmfadm_list_lu_v.txt").read_text()
LIST_HG = (SAMPLES / "stmfadm_list_hg_v.txt").read_text()
LIST_TG = (SAMPLES / "stmfadm_list_tg_v.txt").read_text()
LIST_TARGET = (SAMPLES / "stmfadm_list_target_v.txt").read_text()
ITADM_TARGETS = (SAMPLES / "itadm_list_target.txt").read_text()
CONFIG = Config(iqn_base="iqn.2026-11.lab.zboot")
PCT1 = host_export(CONFIG, "pct1", "iqn.2010-04.org.ipxe:pct1")
PCT2 = host_export(CONFIG, "pct2", "iqn.2010-04.org.ipxe:pct2")


def ok(argv: tuple[str, ...], out: str = "") -> Result:
    return Result(argv, 0, out.encode(), b"")


def samples(argv: tuple[str, ...], _: bytes | None) -> Result:
    listing = {
        ("stmfadm", "list-lu", "-v"): LIST_LU,
        ("stmfadm", "list-hg", "-v"): LIST_HG,
        ("stmfadm", "list-tg", "-v"): LIST_TG,
        ("stmfadm", "list-target", "-v"): LIST_TARGET,
        ("itadm", "list-target"): ITADM_TARGETS,
    }
    return ok(argv, listing.get(argv, ""))


# --- parsers on the samples ----------------------------------------------------


def test_list_lu_v_is_parsed() -> None:
    real, ours = parse_list_lu(LIST_LU)
    assert real.guid == "600144F721DCA2888BA402E411EE3AF1"
    assert real.data_file == "/dev/zvol/rdsk/pool1/vm-109-disk-1"
    assert (real.views, real.fields["Vendor ID"], real.fields["Serial Num"]) == (
        1,
        "SUN",
        "not set",
    )
    assert (ours.guid, ours.alias) == (lu_guid("pct1"), "zboot-pct1")
    assert ours.fields["Serial Num"] == disk_serial("pct1")


def test_group_listings_are_parsed() -> None:
    assert parse_groups(LIST_HG, "Host Group") == {
        "blade07": ["eui.0002C9030055E716", "eui.0002C9030055E715"],
        "zboot-pct1": ["iqn.2010-04.org.ipxe:pct1"],
    }
    assert parse_groups(LIST_TG, "Target Group") == {
        "targets-0": ["iqn.2010-09.org.napp-it:tgt1"],
        "zboot-pct1": ["iqn.2026-11.lab.zboot:pct1"],
    }
    assert parse_groups(LIST_HG, "Target Group") == {}


def test_list_target_v_sessions_even_with_collapsed_whitespace() -> None:
    expected = {
        "eui.0002C9030007733E": ["eui.0002C903004E12CD", "eui.0002C9030055E715"],
        "iqn.2026-11.lab.zboot:pct1": ["iqn.2010-04.org.ipxe:pct1"],
        "iqn.2026-11.lab.zboot:pct2": [],
    }
    assert parse_sessions(LIST_TARGET) == expected
    # the gist's stored copy, whitespace collapsed as it was found
    assert parse_sessions(re.sub(r"[ \t]+", " ", LIST_TARGET)) == expected


def test_itadm_list_target_and_create_lu_output() -> None:
    names = parse_itadm_targets(ITADM_TARGETS)
    assert len(names) == 4 and names[0].endswith("72e1b181-7bce-c0e6-851e-ec0d8cf14b7a")
    # Oracle Solaris 11.4 "Managing Devices", How to Create a Logical Unit, step 3
    # (https://docs.oracle.com/cd/E37838_01/html/E61015/gkgmv.html):
    line = "Logical unit created: 600144F0B5418B0000004DDAC7C10001\n"
    assert parse_created_guid(line) == "600144F0B5418B0000004DDAC7C10001"
    assert parse_created_guid("stmfadm: guid in use\n") is None


def test_exports_are_zboots_own_only_and_sessions_by_target() -> None:
    engine = ComstarEngine(RecordingRunner(samples))
    assert engine.exports() == {PCT1.target: PCT1}  # the OmniOS LU is not zboot's
    assert engine.sessions([PCT1.target, PCT2.target, "iqn.2026-11.lab.zboot:gone"]) == {
        PCT1.target: ["iqn.2010-04.org.ipxe:pct1"]
    }
    assert engine.sessions([]) == {}


# --- names and values obey the documented rules ------------------------------------


@pytest.mark.parametrize("host", ["pct1", "a", "host-with-a-long-name-0123456789" * 3])
def test_generated_names_follow_the_rules(host: str) -> None:
    guid = lu_guid(host)
    # stmfadm(8) guid: 32 hex digits, NAA Registered Extended (type 6) + IEEE OUI
    assert re.fullmatch(r"[0-9A-F]{32}", guid) and guid.startswith("600144F")
    assert guid == lu_guid(host) and guid != lu_guid(host + "x")
    assert group_name(host) == f"zboot-{host}" and len(group_name(host)) <= 255
    target = host_export(CONFIG, host, "iqn.2010-04.org.ipxe:x").target
    assert iqn(target) == target  # RFC 3720/3722 as zboot.names checks it


def test_device_paths_convert_both_ways() -> None:
    assert rdsk_path(PCT1.device) == "/dev/zvol/rdsk/tank/zboot/hosts/pct1"
    assert zvol_path(rdsk_path(PCT1.device)) == PCT1.device
    for bad in ("/dev/sdb", "/dev/zvol/rdsk/tank/x", "/dev/zvol/"):
        with pytest.raises(InvalidInput):
            rdsk_path(bad)


# --- a small COMSTAR for the commands ----------------------------------------------


@dataclass
class Comstar:
    """COMSTAR's state, listed in stmfadm's/itadm's formats (stmfadm.c, itadm.c)."""

    runner: RecordingRunner | None = None
    lus: dict[str, dict[str, str]] = field(default_factory=dict)
    views: dict[str, list[tuple[str, str, str]]] = field(default_factory=dict)
    hgs: dict[str, list[str]] = field(default_factory=dict)
    tgs: dict[str, list[str]] = field(default_factory=dict)
    targets: dict[str, dict[str, str]] = field(default_factory=dict)
    initiators: dict[str, dict[str, str]] = field(default_factory=dict)
    fail: str = ""  # a subcommand that fails

    def secret(self, args: list[str]) -> str:
        assert self.runner is not None
        return self.runner.files[args[args.index("-S") + 1]].decode() if "-S" in args else ""

    def listing(self, sub: str) -> str:
        if sub == "list-lu":
            return "".join(
                f"LU Name: {g}\n    {'Alias':<18}: {p['alias']}\n"
                f"    {'View Entry Count':<18}: {len(self.views.get(g, []))}\n"
                f"    {'Data File':<18}: {p['file']}\n    {'Serial Num':<18}: {p['serial']}\n"
                for g, p in self.lus.items()
            )
        if sub in ("list-hg", "list-tg"):
            groups, head = (self.hgs, "Host") if sub == "list-hg" else (self.tgs, "Target")
            return "".join(
                f"{head} Group: {n}\n" + "".join(f"\tMember: {m}\n" for m in ms)
                for n, ms in groups.items()
            )
        return "".join(f"{t:<61}online   0\n" for t in self.targets)  # itadm list-target

    def __call__(self, argv: tuple[str, ...], _: bytes | None) -> Result:
        tool, sub, args = argv[0], argv[1], list(argv[2:])
        if sub == self.fail:
            return Result(argv, 1, b"", f"{tool}: {sub}: resource busy\n".encode())
        if sub.startswith("list-") and sub != "list-initiator":
            return ok(argv, self.listing(sub))
        if tool == "stmfadm" and sub == "create-lu":
            props = dict(a.split("=", 1) for a in args[1:-1:2])
            self.lus[props["guid"]] = {
                "alias": props["alias"],
                "file": args[-1],
                "serial": props["serial"],
            }
            return ok(argv, f"Logical unit created: {props['guid']}\n")
        if sub in ("create-hg", "create-tg"):
            (self.hgs if sub == "create-hg" else self.tgs)[args[0]] = []
        elif sub == "add-hg-member":
            self.hgs[args[1]].extend(args[2:])
        elif sub == "add-tg-member":
            if any(self.targets[t]["state"] != "offline" for t in args[2:]):
                return Result(argv, 1, b"", b"stmfadm: STMF target must be offline\n")
            self.tgs[args[1]].extend(args[2:])
        elif sub in ("offline-target", "online-target"):
            self.targets[args[0]]["state"] = sub.split("-")[0]
        elif sub == "add-view":
            self.views.setdefault(args[-1], []).append((args[1], args[3], args[5]))
        elif sub == "remove-view":
            self.views.pop(args[-1])
        elif sub == "delete-lu":
            self.lus.pop(args[0])
        elif sub in ("delete-hg", "delete-tg"):
            if any(args[0] in v[:2] for vs in self.views.values() for v in vs):
                return Result(argv, 1, b"", b"stmfadm: group is in use by existing view entry\n")
            (self.hgs if sub == "delete-hg" else self.tgs).pop(args[0])
        elif sub == "create-target":
            self.targets[args[1]] = {
                "state": "online",
                "auth": args[3],
                "secret": self.secret(args),
            }
        elif sub == "delete-target":
            self.targets.pop(args[-1])
        elif sub == "list-initiator":
            return Result(argv, 0 if args[0] in self.initiators else 1, b"", b"")
        elif sub in ("create-initiator", "modify-initiator"):
            self.initiators[args[-1]] = {"user": args[1], "secret": self.secret(args)}
        elif sub == "delete-initiator" and self.initiators.pop(args[0], None) is None:
            return Result(argv, 1, b"", f"Initiator {args[0]} not found\n".encode())
        return ok(argv)

    def empty(self) -> bool:
        return not (
            self.lus or self.views or self.hgs or self.tgs or self.targets or self.initiators
        )


def comstar() -> tuple[Comstar, RecordingRunner]:
    state = Comstar()
    runner = RecordingRunner(state)
    state.runner = runner
    return state, runner


def changes(runner: RecordingRunner) -> list[tuple[str, ...]]:
    return [c for c in runner.commands if not c[1].startswith("list-") and c[0] != "sh"]


def test_create_sends_the_documented_sequence_in_order() -> None:
    state, runner = comstar()
    ComstarEngine(runner).apply(create=[PCT1])
    guid, rdsk = lu_guid("pct1"), "/dev/zvol/rdsk/tank/zboot/hosts/pct1"
    waits = [c for c in runner.commands if c[0] == "sh"]
    assert [c[-2:] for c in waits] == [(rdsk, "60")]  # the zvol's device node first
    assert changes(runner) == [
        (
            "stmfadm",
            "create-lu",
            "-p",
            "blk=512",
            "-p",
            f"serial={disk_serial('pct1')}",
            "-p",
            f"guid={guid}",
            "-p",
            "alias=zboot-pct1",
            rdsk,
        ),
        ("stmfadm", "create-hg", "zboot-pct1"),
        ("stmfadm", "add-hg-member", "-g", "zboot-pct1", PCT1.initiator),
        ("itadm", "create-target", "-n", PCT1.target, "-a", "none"),
        ("stmfadm", "create-tg", "zboot-pct1"),
        ("stmfadm", "offline-target", PCT1.target),
        ("stmfadm", "add-tg-member", "-g", "zboot-pct1", PCT1.target),
        ("stmfadm", "online-target", PCT1.target),
        ("stmfadm", "add-view", "-h", "zboot-pct1", "-t", "zboot-pct1", "-n", "0", guid),
    ]
    assert state.targets[PCT1.target]["state"] == "online"
    assert state.views[guid] == [("zboot-pct1", "zboot-pct1", "0")]
    assert ComstarEngine(runner).exports() == {PCT1.target: PCT1}  # reads back equal


def test_delete_removes_every_object_created() -> None:
    state, runner = comstar()
    mutual = replace(PCT2, chap=Chap("iqn.2010-04.org.ipxe:pct2", "A" * 16, PCT2.target, "B" * 16))
    ComstarEngine(runner).apply(create=[PCT1, mutual])
    assert len(state.lus) == 2 and state.initiators
    runner.commands.clear()
    ComstarEngine(runner).apply(delete=[PCT1.target, PCT2.target])
    assert state.empty()
    guid = lu_guid("pct1")
    assert changes(runner)[:6] == [  # views, target, LU, groups, then the CHAP context
        ("stmfadm", "remove-view", "-a", "-l", guid),
        ("itadm", "delete-target", "-f", PCT1.target),
        ("stmfadm", "delete-lu", guid),
        ("stmfadm", "delete-hg", "zboot-pct1"),
        ("stmfadm", "delete-tg", "zboot-pct1"),
        ("itadm", "delete-initiator", PCT1.initiator),
    ]  # "not found" is fine


def test_recreate_clears_the_old_objects_first() -> None:
    state, runner = comstar()
    ComstarEngine(runner).apply(create=[PCT1])
    runner.commands.clear()
    ComstarEngine(runner).apply(create=[PCT1])
    sent = changes(runner)
    assert sent.index(("stmfadm", "delete-lu", lu_guid("pct1"))) < [c[1] for c in sent].index(
        "create-lu"
    )
    assert list(state.lus) == [lu_guid("pct1")] and list(state.hgs) == ["zboot-pct1"]


def test_chap_secrets_go_through_root_only_files_never_argv() -> None:
    state, runner = comstar()
    seen: dict[str, bytes] = {}
    inner = runner.responses
    assert callable(inner)

    def spy(argv: tuple[str, ...], data: bytes | None) -> Result:
        if "-S" in argv:  # the file exists, mode 0600, while itadm reads it
            path = argv[argv.index("-S") + 1]
            assert runner.modes[path] == 0o600 and path.startswith("/var/run/")
            seen[argv[1]] = runner.files[path]
        return inner(argv, data)

    runner.responses = spy
    chap = Chap("iqn.2010-04.org.ipxe:pct1", "s3cretS3cret", PCT1.target, "m0tualM0tual")
    ComstarEngine(runner).apply(create=[replace(PCT1, chap=chap)])
    assert seen == {"create-initiator": b"s3cretS3cret", "create-target": b"m0tualM0tual"}
    assert runner.files == {}  # removed afterwards
    assert not any(
        s in arg for c in runner.commands for arg in c for s in ("s3cretS3cret", "m0tualM0tual")
    )
    assert state.initiators[PCT1.initiator] == {"user": chap.user, "secret": chap.secret}
    target = state.targets[PCT1.target]
    assert (target["auth"], target["secret"]) == ("chap", "m0tualM0tual")
    assert (
        "itadm",
        "create-target",
        "-n",
        PCT1.target,
        "-a",
        "chap",
        "-u",
        PCT1.target,
        "-S",
        "/var/run/zboot-pct1.mutual",
    ) in runner.commands


@pytest.mark.parametrize(
    "chap",
    [
        Chap("u", "s" * 11),
        Chap("u", "s" * 256),
        Chap("u", "twelve-chars\n"),
        Chap("u", "x" * 12, "t", "x" * 12),
        Chap("u", "x" * 12, "t", None),
    ],
)
def test_chap_itadm_would_refuse_is_refused_before_any_command(chap: Chap) -> None:
    state, runner = comstar()
    with pytest.raises(InvalidInput):
        ComstarEngine(runner).apply(create=[replace(PCT1, chap=chap)])
    assert runner.commands == [] and state.empty()


def test_chap_secret_lengths_12_and_255_are_taken() -> None:
    for length in (12, 255):
        state, runner = comstar()
        ComstarEngine(runner).apply(create=[replace(PCT1, chap=Chap("u", "k" * length))])
        assert state.initiators[PCT1.initiator]["secret"] == "k" * length


def test_a_failure_midway_raises_a_clear_server_error() -> None:
    state, runner = comstar()
    state.fail = "add-tg-member"
    with pytest.raises(ServerError, match=r"add .*pct1 to zboot-pct1 failed.*resource busy") as e:
        ComstarEngine(runner).apply(create=[PCT1])
    assert e.value.hint is not None and "zboot sync" in e.value.hint
    assert ("stmfadm", "add-view") not in [c[:2] for c in runner.commands]  # stopped there
    state.fail = ""
    ComstarEngine(runner).apply(create=[PCT1])  # the next run cleans up and succeeds
    assert ComstarEngine(runner).exports() == {PCT1.target: PCT1}
    assert list(state.targets) == [PCT1.target]


def test_create_lu_that_reports_another_guid_is_an_error() -> None:
    def lying(argv: tuple[str, ...], data: bytes | None) -> Result:
        if argv[1] == "create-lu":
            return ok(argv, "Logical unit created: 600144F0B5418B0000004DDAC7C10001\n")
        return ok(argv)

    with pytest.raises(ServerError, match="not LU"):
        ComstarEngine(RecordingRunner(lying)).apply(create=[PCT1])


def test_unreachable_stmf_is_a_server_error() -> None:
    def down(argv: tuple[str, ...], _: bytes | None) -> Result:
        return Result(argv, 1, b"", b"stmfadm: STMF service not found\n")

    with pytest.raises(ServerError, match="STMF service not found") as e:
        ComstarEngine(RecordingRunner(down)).exports()
    assert e.value.hint is not None and "svcadm" in e.value.hint


def test_nothing_to_do_sends_nothing() -> None:
    runner = RecordingRunner(samples)
    ComstarEngine(runner).apply()
    assert runner.commands == []


def test_an_export_missing_its_view_is_not_reported() -> None:
    text = LIST_LU.replace("View Entry Count  : 1", "View Entry Count  : 0")

    def respond(argv: tuple[str, ...], data: bytes | None) -> Result:
        return ok(argv, text) if argv[1] == "list-lu" else samples(argv, data)

    assert ComstarEngine(RecordingRunner(respond)).exports() == {}


# --- the data disk: a second LU, seen as LUN 1 through the same groups -----------
DATA = "/dev/zvol/tank/zboot/data/pct1"
PCT1_DATA = replace(PCT1, data_device=DATA)


def test_a_data_disk_is_a_second_lu_in_a_view_of_the_same_groups() -> None:
    state, runner = comstar()
    ComstarEngine(runner).apply(create=[PCT1_DATA])
    guid, data_guid = lu_guid("pct1"), data_lu_guid("pct1")
    rdsk, data_rdsk = rdsk_path(PCT1.device), "/dev/zvol/rdsk/tank/zboot/data/pct1"
    assert [c[-2] for c in runner.commands if c[0] == "sh"] == [rdsk, data_rdsk]
    sent = changes(runner)
    assert sent[1] == (
        "stmfadm",
        "create-lu",
        "-p",
        "blk=512",
        "-p",
        f"serial={data_serial('pct1')}",
        "-p",
        f"guid={data_guid}",
        "-p",
        "alias=zboot-pct1.data",
        data_rdsk,
    )
    assert sent[-2:] == [
        ("stmfadm", "add-view", "-h", "zboot-pct1", "-t", "zboot-pct1", "-n", "0", guid),
        ("stmfadm", "add-view", "-h", "zboot-pct1", "-t", "zboot-pct1", "-n", "1", data_guid),
    ]
    assert state.views == {
        guid: [("zboot-pct1", "zboot-pct1", "0")],
        data_guid: [("zboot-pct1", "zboot-pct1", "1")],
    }
    assert list(state.hgs) == ["zboot-pct1"]  # one host group: the one initiator
    assert ComstarEngine(runner).exports() == {PCT1.target: PCT1_DATA}


def test_an_export_reads_back_with_or_without_its_data_disk() -> None:
    state, runner = comstar()
    ComstarEngine(runner).apply(create=[PCT1, replace(PCT2, data_device=PCT2.device + "-data")])
    found = ComstarEngine(runner).exports()
    assert found[PCT1.target] == PCT1 and found[PCT1.target].data_device == ""
    assert found[PCT2.target].data_device == PCT2.device + "-data"
    state.views.pop(data_lu_guid("pct2"))  # a data LU nobody sees is no data disk
    assert ComstarEngine(runner).exports()[PCT2.target] == PCT2


def test_delete_removes_the_data_lu_too() -> None:
    state, runner = comstar()
    ComstarEngine(runner).apply(create=[PCT1_DATA])
    runner.commands.clear()
    ComstarEngine(runner).apply(delete=[PCT1.target])
    assert state.empty()
    assert ("stmfadm", "delete-lu", data_lu_guid("pct1")) in changes(runner)


def test_made_again_without_its_data_disk_the_data_lu_goes() -> None:
    state, runner = comstar()
    ComstarEngine(runner).apply(create=[PCT1_DATA])
    ComstarEngine(runner).apply(create=[PCT1])
    assert list(state.lus) == [lu_guid("pct1")]
    assert ComstarEngine(runner).exports() == {PCT1.target: PCT1}


def test_a_leftover_data_lu_is_removed_when_its_host_is_made_again() -> None:
    """A failed create can leave the data LU without a view or a target
    group: the host's next re-create finds it by alias and GUID."""
    state, runner = comstar()
    state.fail = "create-hg"
    with pytest.raises(ServerError):
        ComstarEngine(runner).apply(create=[PCT1_DATA])
    assert set(state.lus) == {lu_guid("pct1"), data_lu_guid("pct1")}
    state.fail = ""
    ComstarEngine(runner).apply(create=[PCT1])
    assert list(state.lus) == [lu_guid("pct1")]


@pytest.mark.parametrize("host", ["pct1", "a", "host-with-a-long-name-0123456789" * 3])
def test_data_lu_guids_follow_the_rules_and_differ_from_the_os_disks(host: str) -> None:
    guid = data_lu_guid(host)
    assert re.fullmatch(r"[0-9A-F]{32}", guid) and guid.startswith("600144F")
    assert guid == data_lu_guid(host) != lu_guid(host)
    assert guid not in (lu_guid(host + "x"), data_lu_guid(host + "x"))


def test_a_data_disk_that_is_no_zvol_is_refused_before_any_command() -> None:
    state, runner = comstar()
    with pytest.raises(InvalidInput, match="/dev/sdb"):
        ComstarEngine(runner).apply(create=[replace(PCT1, data_device="/dev/sdb")])
    assert runner.commands == [] and state.empty()
