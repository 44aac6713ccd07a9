"""Where an import's raw bytes come from: files in any format qemu-img reads,
converted on the fly (nbdcopy) or through a sparse file when nbdcopy is absent."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from zboot.errors import InvalidInput
from zboot.ops import importer
from zboot.ops.importer import raw_source

MIB = 1024 * 1024


@pytest.fixture(scope="module")
def disk(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bytes]:
    data = bytes(MIB) + os.urandom(MIB) + bytes(2 * MIB)
    path = tmp_path_factory.mktemp("disk") / "disk.raw"
    path.write_bytes(data)
    return path, data


def convert(raw: Path, fmt: str) -> Path:
    out = raw.with_suffix(f".{fmt}")
    subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", fmt, str(raw), str(out)], check=True)
    return out


@pytest.mark.parametrize("fmt", ["qcow2", "vmdk", "vhdx", "vdi"])
@pytest.mark.parametrize("nbdcopy", [True, False], ids=["on-the-fly", "sparse-file"])
def test_formats_arrive_as_the_same_bytes(
    disk: tuple[Path, bytes], fmt: str, nbdcopy: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    raw, data = disk
    if not nbdcopy:
        monkeypatch.setattr("shutil.which", lambda _tool: None)
    with raw_source(str(convert(raw, fmt)), None, None) as (stream, size):
        assert size == len(data)
        assert stream.read(size) == data


def test_a_named_format_that_does_not_match_is_refused(disk: tuple[Path, bytes]) -> None:
    raw, _ = disk
    with pytest.raises(InvalidInput, match="cannot read"), raw_source(str(raw), "qcow2", None):
        pass


def test_an_unknown_format_is_refused(disk: tuple[Path, bytes]) -> None:
    with pytest.raises(InvalidInput, match="unknown format"), raw_source(str(disk[0]), "iso", None):
        pass


def test_nbdcopy_failure_is_reported(tmp_path: Path) -> None:
    missing = tmp_path / "gone.qcow2"
    with (
        pytest.raises(InvalidInput, match="nbdcopy could not convert"),
        importer.converted_stream(missing, "qcow2") as stream,
    ):
        stream.read()
