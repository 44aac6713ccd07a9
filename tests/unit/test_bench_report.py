"""The fleet benchmark's table and ratios, from made-up timings (the real run
is `contrib/bench/fleet`, against the lab)."""

from __future__ import annotations

from zboot_lab.bench import Timing, hosts, ratio_lines, table

from zboot.names import host_name, mac


def test_the_table_has_a_row_per_tool_and_size_and_the_ratios_say_met_or_missed() -> None:
    timings = [
        Timing("zboot", op, n, n * per)
        for n, per in ((10, 1.0), (100, 1.2))
        for op in ("provision", "rollback", "destroy")
    ]
    timings += [
        Timing("baseline", "provision", 10, 250.0),
        Timing("baseline", "rollback", 10, 90.0),
    ]
    text = table(timings)
    rows = text.splitlines()
    assert rows[2].startswith("| zboot | 10 | 10.0 | 1.00 |")
    assert rows[3].startswith("| zboot | 100 | 120.0 | 1.20 |")
    assert rows[4] == "| baseline | 10 | 250.0 | 25.00 | 90.0 | 9.00 | - | - | - | - |"
    provision, rollback, rebase, destroy = ratio_lines(timings)
    assert provision.startswith("- **provision**: baseline/zboot")
    assert "= 25.0 (want >= 10: met)" in provision and "= 1.20 (want <= 1.5: met)" in provision
    assert "= 9.0 (want >= 10: MISSED)" in rollback
    assert "baseline/zboot" not in destroy and "1.20" in destroy
    assert rebase == "- **rebase**:"  # not measured in this run: no ratio claimed


def test_bench_hosts_are_valid_and_distinct_across_sizes() -> None:
    runs = [hosts(f"{tool}{n}x", n) for tool in ("bz", "bl") for n in (1, 10, 50, 100)]
    runs.append(hosts("bperf", 1))
    names = [h for run in runs for h, _ in run]
    macs = [m for run in runs for _, m in run]
    assert len(set(names)) == len(names) == 323
    assert len(set(macs)) == len(macs) == 323
    assert all(host_name(h) == h and mac(m) == m for h, m in zip(names, macs, strict=True))
