"""The lab's client waits for its machine to power off, but not for ever
once the OS has reported: a power-off that hangs after the final report
(seen once under emulation) is cut short."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from zboot_lab import client

HANG = [sys.executable, "-c", "import time; time.sleep(60)"]


def test_a_machine_that_hangs_after_its_report_is_switched_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(client, "POWER_OFF_GRACE", 0.5)
    log = tmp_path / "console.log"
    log.write_text('booting\nZBOOT-LINUX {"counter": 1}\n[ 36.7] watchdog: BUG: soft lockup\n')
    proc = subprocess.Popen(HANG)
    start = time.monotonic()
    assert client.wait_for_power_off(proc, log, start + 30) is False  # not a timeout
    assert proc.returncode is not None and time.monotonic() - start < 30


def test_without_a_report_only_the_deadline_stops_it(tmp_path: Path) -> None:
    log = tmp_path / "console.log"
    log.write_text('ZBOOT-WRITER-STALL {"block": 3}\nZBOOT-WRITER-START\n')
    proc = subprocess.Popen(HANG)
    assert client.wait_for_power_off(proc, log, time.monotonic() + 1.0) is True
    assert proc.returncode is not None


def test_a_machine_that_powers_off_is_waited_for(tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    assert client.wait_for_power_off(proc, tmp_path / "none.log", time.monotonic() + 30) is False
    assert proc.returncode == 0


def test_a_report_line_still_being_written_is_not_yet_final(tmp_path: Path) -> None:
    log = tmp_path / "console.log"
    log.write_text('booting\nZBOOT-LINUX {"counter": 1, "initiator": "iqn.20')
    assert not client.final_report_in(log)
    log.write_text(log.read_text() + '26-11.lab:pc1"}\r\n')
    assert client.final_report_in(log)
