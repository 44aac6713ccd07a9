"""The fleet benchmark's tables and ratios, from made-up timings, and the
page put together from sections (the real run is `contrib/bench/fleet`,
against the lab)."""

from __future__ import annotations

from zboot_lab.baseline import hosts
from zboot_lab.bench_report import FLEET, LATENCY, STORM, Timing, merge, ratio_lines, split, table
from zboot_lab.clirun import kind, summary, zfs_commands
from zboot_lab.floor import Spent
from zboot_lab.latency import Latency
from zboot_lab.latency import table as latency_table
from zboot_lab.scale import ScaleRun
from zboot_lab.scale import ratio_lines as scale_lines

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
        Timing("floor", "provision", 100, 100.0),
        Timing("floor", "rollback", 100, 60.0),
    ]
    text = table(timings)
    rows = text.splitlines()
    assert rows[2].startswith("| zboot | 10 | 10.0 | 1.00 |")
    assert rows[3].startswith("| zboot | 100 | 120.0 | 1.20 |")
    assert rows[4].startswith("| floor | 100 | 100.0 | 1.00 | 60.0 | 0.60 |")
    assert rows[5] == "| baseline | 10 | 250.0 | 25.00 | 90.0 | 9.00 | - | - | - | - |"
    provision, rollback, rebase, destroy, versus = ratio_lines(timings)
    assert provision.startswith("- **provision**: baseline/zboot")
    assert "= 25.0 (want >= 10: met)" in provision and "= 1.20 (want <= 1.5: met)" in provision
    assert "zboot/floor per host N=100 1.20 (want <= 1.5 at N=100: met)" in provision
    assert "= 9.0 (want >= 10: MISSED)" in rollback
    assert "zboot/floor per host N=100 2.00 (want <= 1.5 at N=100: MISSED)" in rollback
    assert "baseline/zboot" not in destroy and "1.20" in destroy
    assert rebase == "- **rebase**:"  # not measured in this run: no ratio claimed
    # rollback per host over provision per host: zboot's, and the floor's work
    assert "zboot N=10 1.00, N=100 1.00" in versus and "floor N=100 0.60" in versus
    assert versus.endswith("(zboot's want <= 1.2 at N=10 and 100: met, met)")


def test_bench_hosts_are_valid_and_distinct_across_sizes() -> None:
    prefixes = ("bz", "bl", "fz", "bs")
    runs = [hosts(f"{tool}{n}x", n) for tool in prefixes for n in (1, 10, 50, 100)]
    runs += [hosts("bperf", 1), hosts("bzlat", 1), hosts("fzlat", 1), hosts("bs500x", 500)]
    names = [h for run in runs for h, _ in run]
    macs = [m for run in runs for _, m in run]
    assert len(set(names)) == len(names) == 4 * 161 + 3 + 500
    assert len(set(macs)) == len(macs)
    assert all(host_name(h) == h and mac(m) == m for h, m in zip(names, macs, strict=True))


def test_a_page_is_rewritten_section_by_section_and_the_storm_stays_last() -> None:
    old = (
        "# Benchmarks\n\nold header\n\n"
        f"{FLEET}\n\nold fleet\n\n## Something else\n\nkept\n\n{STORM}\n\nstorm text\n"
    )
    page = merge(old, {LATENCY: f"{LATENCY}\n\nnew latency\n"})
    sections = split(page)
    assert list(sections) == [FLEET, LATENCY, "## Something else", STORM]
    assert "old fleet" in sections[FLEET] and "new latency" in sections[LATENCY]
    assert "old header" not in page and page.startswith("# Benchmarks\n")
    assert page.endswith("storm text\n") and "\n\n\n" not in page
    again = merge(page, {FLEET: f"{FLEET}\n\nnew fleet"})
    assert "old fleet" not in again and "new fleet" in split(again)[FLEET]
    assert merge(again, {}) == again  # a run with nothing new changes nothing


def test_server_commands_are_summed_up_by_kind() -> None:
    ran = [
        "env -i PATH=/usr/bin /usr/bin/python3 -IS -c import os; <zboot lock holder>  zboot clone",
        "zfs list -Hp -r -t all tank/zboot",
        "zfs get -Hp -r all tank/zboot",
        "zfs clone -o org.zboot:kind=host tank/zboot/images/g@v1 tank/zboot/hosts/a",
        "env -i PATH=/usr/bin /usr/bin/python3 -I -c ... exec(compile(src, 'zboot-lio-agent', ...",
        "zfs set org.zboot:step=clone:exported tank/zboot/hosts/a",
        "mkdir -p /srv/zboot/boot",
        "zfs set org.zboot:step=clone:done tank/zboot/hosts/a",
    ]
    assert kind(ran[0]) == "lock holder" and kind(ran[4]) == "LIO agent"
    assert summary(ran) == "lock holder, zfs list, zfs get, zfs clone, LIO agent, 2 zfs set, mkdir"
    assert zfs_commands(ran) == ["zfs list", "zfs get", "zfs clone", "zfs set", "zfs set"]


def test_the_latency_table_compares_zboot_with_a_login_and_the_floor() -> None:
    floor = [Spent("show", s, {"reads": s}) for s in (1.0, 0.9, 3.0)]
    fast = Latency("show", [2.0, 2.4, 9.0], 0.6, floor, ["zfs list x", "zfs get y"])
    slow = Latency("rollback", [9.0], 0.6, [Spent("rollback", 2.4, {})], ["zfs rename a b"])
    head, _, show, rollback = latency_table([fast, slow]).splitlines()
    assert "zboot / (login + floor)" in head
    # medians: zboot 2.4, floor 1.0; 2.4 / 1.6 = 1.5; zboot's own 2.4 - 0.6 - 1.0
    assert show == "| show | 2.40 | 0.60 | 1.00 | 1.50 | met | 0.80 | zfs list, zfs get |"
    assert rollback.startswith("| rollback | 9.00 | 0.60 | 2.40 | 3.00 | MISSED | 6.00 |")


def test_scale_ratios_compare_per_host_and_the_reads_with_their_bound() -> None:
    small = ScaleRun(10, {"provision": 10, "rollback": 20, "destroy": 5, "list": 3, "doctor": 4})
    big = ScaleRun(
        500, {"provision": 600, "rollback": 1600, "destroy": 200, "list": 6, "doctor": 20}
    )
    provision, rollback, destroy, listing, doctor = scale_lines(small, big, login=0.7)
    assert provision.endswith("= 1.20 (want <= 1.5: met)")
    assert rollback.endswith("= 1.60 (want <= 1.5: MISSED)")
    assert destroy.endswith("= 0.80 (want <= 1.5: met)")
    assert "6.0 s;" in listing and "= 6.7 s (want at most that: met)" in listing
    assert "= 8.7 s (want at most that: MISSED)" in doctor
