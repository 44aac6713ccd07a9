"""The lab client's parser for the writer image's report (ZBOOT-WRITER)."""

from __future__ import annotations

from zboot_lab.client import writer_report

LINE = (
    'ZBOOT-WRITER {"blocks": 1921, "seconds": 300, "write_failures": 0, '
    '"sha_written": "7e3c", "sha_read": "7e3c", '
    '"stalls": [{"block": 234, "at": 3992, "centiseconds": 222}], "io_errors": [], '
    '"conn_errors": ["[   52.121264]  connection1:0: detected conn error (1020)"], '
    '"recovered": ["iscsid: connection1:0 is operational after recovery (1 attempts)"]}'
)


def test_the_last_writer_line_is_parsed() -> None:
    text = f"ZBOOT-WRITER-START\nZBOOT-WRITER-AT 16\n{LINE}\n"
    report = writer_report(text)
    assert report is not None
    assert report["blocks"] == 1921 and report["sha_read"] == report["sha_written"]
    assert report["stalls"][0]["centiseconds"] == 222


def test_progress_lines_alone_are_no_report() -> None:
    assert writer_report("ZBOOT-WRITER-START\nZBOOT-WRITER-AT 16\n") is None


def test_a_kernel_line_with_a_tab_is_still_read() -> None:
    report = writer_report(LINE.replace("detected conn", "detected\tconn"))
    assert report is not None and "\t" in report["conn_errors"][0]


def test_a_cut_line_is_reported_unreadable() -> None:
    assert writer_report('ZBOOT-WRITER {"blocks": }') == {"unreadable": '{"blocks": }'}
