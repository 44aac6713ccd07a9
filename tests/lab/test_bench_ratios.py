"""The fleet benchmark's ratios (issue 21) on a small N, with the benchmark's
own code (zboot_lab.clirun, floor, latency): a change that makes zboot's
single-host commands, or its small batches, much slower than the work they
do fails here. The thresholds allow for this emulated machine's noise; the
goals themselves are the benchmark's (docs/benchmarks.md): single-host
zboot <= 1.5 x (SSH login + floor), rollback per host <= 1.2 x clone per
host, zboot/floor per host <= 1.5 at N = 100."""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

import pytest
from zboot_cli import Zboot
from zboot_lab import latency
from zboot_lab.baseline import hosts
from zboot_lab.clirun import ZbootCli, zfs_commands
from zboot_lab.floor import Floor, Spent, run_floor_cleanly
from zboot_lab.layout import Layout

pytestmark = pytest.mark.lab

SINGLE_AT_MOST = 2.5  # x (login + floor), for show and snapshot (medians of 3)
ROLLBACK_AT_MOST = 2.0  # rollback per host / clone per host, N = 3
FLOOR_AT_MOST = 2.5  # zboot / floor per host, N = 3 (the fixed costs weigh more than at 100)
SEQUENCE = ("show", "snapshot") * 3  # on a host of the batch


def test_single_host_commands_and_a_small_batch_stay_near_their_floor(
    lab: Layout, zboot: Zboot, tmp_path: Path
) -> None:
    cli = ZbootCli(Path(sys.executable), Path(zboot.env["ZBOOT_CONFIG"]))
    zboot("init")
    zboot("image", "create", "gold", "--size", "8M")
    zboot("image", "snapshot", "gold")
    pairs = hosts("bratio", 3)
    listing = tmp_path / "hosts.csv"
    listing.write_text("host,mac\n" + "".join(f"{h},{m}\n" for h, m in pairs))
    names = [h for h, _ in pairs]

    clone = cli("clone", "gold", "--hosts", str(listing))
    single = latency.run_zboot(cli, latency.OneHost("gold", *pairs[0]), SEQUENCE)
    rollback = cli("rollback", *names)
    login = statistics.median(latency.login_seconds(lab))

    tag = zboot.root.rsplit("-", 1)[-1]  # the test's own root: t-<hex>
    floor = Floor(root=f"{zboot.root}-floor", tag=tag, image_mib=8, fill=False)  # as "gold"
    one = latency.OneHost("gold", *pairs[0])
    phases = [floor.setup(), floor.clone("clone", pairs)]
    phases += [p for op in SEQUENCE for p in one.floor_phases(floor, op)]
    phases += [floor.rollback("rollback", names), floor.cleanup()]
    spent = run_floor_cleanly(lab, floor, phases)
    floors: dict[str, list[Spent]] = {}
    for s in spent:
        floors.setdefault(s.label, []).append(s)
    rows = latency.rows(single, login, floors, ("show", "snapshot"))
    report = latency.table(rows)

    # the floor did the zfs work zboot did (else its ratios say nothing)
    assert zfs_commands(clone.commands) == phases[1].zfs_commands(), clone.commands
    assert zfs_commands(rollback.commands) == phases[-2].zfs_commands(), rollback.commands
    for row in rows:
        floor_phase = next(p for p in phases if p.label == row.op)
        assert zfs_commands(row.commands) == floor_phase.zfs_commands(), row.commands

    for row in rows:
        assert row.ratio <= SINGLE_AT_MOST, report
    per_host = {"clone": clone.seconds / 3, "rollback": rollback.seconds / 3}
    floor_per_host = {op: floors[op][0].seconds / 3 for op in per_host}
    detail = f"zboot per host {per_host}, floor per host {floor_per_host}\n{report}"
    print(detail, *latency.floor_parts(rows), sep="\n")  # shown with -rP, or on a failure
    assert per_host["rollback"] / per_host["clone"] <= ROLLBACK_AT_MOST, detail
    for op, seconds in per_host.items():
        assert seconds / floor_per_host[op] <= FLOOR_AT_MOST, detail
