"""The lab's bookkeeping of where a test run's time goes, and the golden
image cache's key (no VM, no root)."""

from __future__ import annotations

import pytest
from zboot_lab import costs, golden
from zboot_lab.devenv import Timings


@pytest.fixture(autouse=True)
def empty() -> None:
    costs.SPENT.clear()


def test_timed_counts_each_block_and_failures_too() -> None:
    with costs.timed("a"):
        pass
    with pytest.raises(RuntimeError), costs.timed("a"):
        raise RuntimeError("boom")
    assert costs.SPENT["a"].count == 2
    assert costs.SPENT["a"].seconds >= 0


def test_report_puts_the_costliest_first_with_its_share() -> None:
    costs.SPENT["cheap"] = costs.Cost(4, 1.0)
    costs.SPENT["dear"] = costs.Cost(2, 30.0)
    header, first, second = costs.report(total=62.0)
    assert header.split() == ["what", "count", "seconds", "each", "share"]
    assert first.split() == ["dear", "2", "30.0", "15.00", "48%"]
    assert second.split() == ["cheap", "4", "1.0", "0.25", "2%"]


def test_phase_table_lists_phases_in_order_and_the_whole_run() -> None:
    timings = Timings()
    timings.add("lint", 4.0, "ok")
    timings.add("unit", 40.0, "FAILED (exit 1)")
    lines = timings.table(total=120.0).splitlines()
    assert [line.split()[0] for line in lines[3:5]] == ["lint", "unit"]
    assert "FAILED (exit 1)" in lines[4]
    assert lines[-1].split()[:3] == ["whole", "run", "120.0"] and "(2.0 min)" in lines[-1]


def test_golden_cache_key_is_per_firmware_and_stable() -> None:
    bios, uefi = golden.build_digest("bios"), golden.build_digest("uefi")
    assert bios != uefi
    assert golden.build_digest("bios") == bios
    assert len(bios) == 16 and int(bios, 16) >= 0
