"""How the lab reads a diskless client's console and exit status."""

from __future__ import annotations

from pathlib import Path

import pytest
from zboot_lab.client import console_text, interpret, normalise_mac
from zboot_lab.procs import LabError

WRAPPED = (
    "\x1b[0mhttp://10.0.2.2:40080/52-54-00-00-00-09.ipxe... No such file or directory (http:\r\n"
    "//ipxe.org/2d0c613b)\r\n"
    "No more network devices\r\n"
)


def test_console_text_joins_lines_wrapped_at_80_columns() -> None:
    text = console_text(WRAPPED)
    assert "(http://ipxe.org/2d0c613b)" in text
    assert "\x1b" not in text and "\r" not in text


def test_console_text_applies_backspaces_like_a_terminal() -> None:
    assert console_text("Press Ctrl-B...\x08 \x08\x08 \x08ok") == "Press Ctrl-B.ok"


def write(tmp_path: Path, text: str) -> Path:
    log = tmp_path / "console.log"
    log.write_text(text)
    return log


def test_counter_comes_from_the_exit_status(tmp_path: Path) -> None:
    log = write(tmp_path, "Registered SAN device 0x80\r\nZBOOT-COUNTER=5\r\n")
    result = interpret("52:54:00:00:00:01", "bios", (5 << 1) | 1, False, log, 3.0)
    assert result.booted and result.counter == 5
    assert result.san_devices == ["0x80"]
    assert result.program_output == ["ZBOOT-COUNTER=5"]


def test_failed_program_is_booted_without_counter(tmp_path: Path) -> None:
    log = write(tmp_path, "ZBOOT-ERROR: counter sector unreadable or full\r\n")
    result = interpret("52:54:00:00:00:01", "bios", (127 << 1) | 1, False, log, 3.0)
    assert result.booted and result.counter is None


@pytest.mark.parametrize("status", [0, 1, None])
def test_no_program_means_not_booted(tmp_path: Path, status: int | None) -> None:
    result = interpret(
        "52:54:00:00:00:01", "bios", status, status is None, write(tmp_path, WRAPPED), 3.0
    )
    assert not result.booted and result.counter is None
    assert result.ipxe_errors == [
        "http://10.0.2.2:40080/52-54-00-00-00-09.ipxe... No such file or directory "
        "(http://ipxe.org/2d0c613b)"
    ]


def test_macs_are_normalised() -> None:
    assert normalise_mac("52-54-00-AB-cd-01") == "52:54:00:ab:cd:01"


@pytest.mark.parametrize(
    "bad",
    ["", "52:54:00:ab:cd", "52:54:00:ab:cd:zz", "01:00:5e:00:00:01", "52:54:00:ab:cd:01; reboot"],
)
def test_bad_macs_are_refused(bad: str) -> None:
    with pytest.raises(LabError):
        normalise_mac(bad)
