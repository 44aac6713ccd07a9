"""Parsing `zfs` output and turning its errors into zboot's, without a server."""

from __future__ import annotations

import pytest
from zfs_samples import GET, LIST

from zboot.errors import CommandFailed, Conflict, NotFound
from zboot.remote.base import Result
from zboot.testing.recording import RecordingRunner
from zboot.zfs.cli import ZfsCli, parse_datasets, translate


def test_parse_datasets_reads_types_sizes_origins_and_zboot_properties() -> None:
    found = parse_datasets(LIST, GET)
    golden = found["tank/zboot/images/golden"]
    assert golden.type == "volume" and golden.volsize == 4194304 and golden.origin is None
    assert golden.props == {
        "org.zboot:kind": "image",
        "org.zboot:created": "2026-11-21T05:43:10Z",
    }  # not volblocksize
    pc01 = found["tank/zboot/hosts/pc01"]
    assert pc01.origin == "tank/zboot/images/golden@v1"
    assert pc01.prop("mac") == "52:54:00:aa:00:01"
    assert found["tank/zboot"].volsize is None
    assert found["tank/zboot/images/golden@v1"].prop("message") == "first version"


@pytest.mark.parametrize(
    ("stderr", "kind"),
    [
        ("cannot open 'tank/zboot/hosts/x': dataset does not exist\n", NotFound),
        ("cannot create 'tank/zboot/hosts/pc01': dataset already exists\n", Conflict),
        (
            "cannot destroy 'tank/zboot/images/golden@v1': snapshot has dependent clones\n"
            "use '-R' to destroy the following datasets:\ntank/zboot/hosts/pc01\n",
            Conflict,
        ),
        ("cannot destroy 'tank/zboot/hosts/pc01': dataset is busy\n", Conflict),
    ],
)
def test_zfs_errors_become_typed_errors(stderr: str, kind: type[Exception]) -> None:
    error = translate(CommandFailed(("zfs", "x"), 1, stderr))
    assert isinstance(error, kind)


def test_unknown_zfs_errors_stay_command_failures() -> None:
    error = CommandFailed(("zfs", "x"), 1, "internal error: out of memory\n")
    assert translate(error) is error


def test_one_snapshot_command_for_many_snapshots() -> None:
    runner = RecordingRunner()
    ZfsCli(runner).snapshot(["tank/a@s", "tank/b@s"], {"created": "now"})
    assert runner.commands == [
        ("zfs", "snapshot", "-o", "org.zboot:created=now", "tank/a@s", "tank/b@s")
    ]


def test_version_reads_userland_and_kernel_module() -> None:
    out = b"zfs-2.3.2-2~bpo12+2\nzfs-kmod-2.3.2-2~bpo12+2\n"
    runner = RecordingRunner({("zfs", "version"): Result((), 0, out, b"")})
    assert ZfsCli(runner).version() == {"userland": "2.3.2-2~bpo12+2", "kmod": "2.3.2-2~bpo12+2"}


def test_listing_a_missing_root_is_empty_not_an_error() -> None:
    def respond(argv: tuple[str, ...], _: bytes | None) -> Result:
        return Result(argv, 1, b"", b"cannot open 'tank/zboot': dataset does not exist\n")

    assert ZfsCli(RecordingRunner(respond)).datasets("tank/zboot") == {}
