"""Where an import's raw bytes come from: files in any format qemu-img reads,
converted on the fly (nbdcopy) or through a sparse file when nbdcopy is absent."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from zboot.config import Config
from zboot.errors import InvalidInput
from zboot.ops import importer
from zboot.ops.importer import raw_source
from zboot.testing.recording import RecordingRunner
from zboot.zfs.cli import ZfsCli

MIB = 1024 * 1024
SECTOR = 512


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
    with raw_source(str(convert(raw, fmt)), None, None) as (stream, size, used, _):
        assert (size, used) == (len(data), fmt)
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


def qemu_img(*argv: str) -> None:
    subprocess.run(["qemu-img", *argv], check=True, capture_output=True)


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    """A file of the admin's that an image from elsewhere could name."""
    return tmp_path / "secret.txt"


SECRET = b"the admin's private key\n" + bytes(MIB - 24)


def external_images(folder: Path, secret: Path) -> list[Path]:
    """Images that read another local file: a qcow2 backing file, a qcow2
    external data file, a vmdk descriptor whose extent is that file."""
    backed, data_file, flat = folder / "backed.qcow2", folder / "data.qcow2", folder / "flat.vmdk"
    qemu_img(
        "create", "-f", "qcow2", "-o", f"data_file={secret},data_file_raw=on", str(data_file), "1M"
    )
    secret.write_bytes(SECRET)  # after the data file image, which empties it
    qemu_img("create", "-f", "qcow2", "-b", str(secret), "-F", "raw", str(backed))
    flat.write_text(
        "# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\n"
        f'createType="monolithicFlat"\n\nRW 2048 FLAT "{secret}" 0\n'
    )
    return [backed, data_file, flat]


@pytest.mark.parametrize("kind", ["backing file", "data file", "extent"])
def test_an_image_that_names_another_local_file_is_refused(
    tmp_path: Path, secret: Path, kind: str
) -> None:
    image = external_images(tmp_path, secret)[["backing file", "data file", "extent"].index(kind)]
    with (
        pytest.raises(InvalidInput, match=f"would read other files.*{kind}") as refused,
        raw_source(str(image), None, None) as (stream, size, *_),
    ):
        assert b"private key" not in stream.read(size)  # what used to go to the server
    assert refused.value.hint and "--allow-backing-file" in refused.value.hint


def test_allowed_other_files_are_read(tmp_path: Path, secret: Path) -> None:
    """The admin's own layered image: its backing file's bytes arrive."""
    backed = external_images(tmp_path, secret)[0]
    with raw_source(str(backed), "qcow2", None, allow_other_files=True) as (stream, size, *_):
        assert stream.read(size) == SECRET


@pytest.mark.parametrize("name", ["disk.img", "disk.raw"])
def test_a_raw_file_that_starts_like_qcow2_is_imported_as_its_bytes(
    tmp_path: Path, secret: Path, name: str
) -> None:
    """A raw disk's bytes may be anything, a qcow2 header with a backing file
    included: without --format they are sent as they are, never followed."""
    backed = external_images(tmp_path, secret)[0]
    disk = tmp_path / name
    disk.write_bytes(backed.read_bytes())
    with raw_source(str(disk), None, None) as (stream, size, *read_as):
        assert stream.read(size) == disk.read_bytes()  # not the backing file's
    used, note = read_as
    assert used == "raw" and note and "--format qcow2" in note


@pytest.mark.parametrize(
    ("name", "refusal"),
    [
        ("download", "'.*download' starts like a qcow2 image"),
        (
            "disk.vmdk",
            r"named \.vmdk but does not start like a vmdk image \(it starts like qcow2\)",
        ),
    ],
)
def test_a_qcow2_whose_name_does_not_say_so_needs_format(
    disk: tuple[Path, bytes], tmp_path: Path, name: str, refusal: str
) -> None:
    unnamed = tmp_path / name
    unnamed.write_bytes(convert(disk[0], "qcow2").read_bytes())
    with (
        pytest.raises(InvalidInput, match=refusal) as refused,
        raw_source(str(unnamed), None, None),
    ):
        pass
    assert refused.value.hint and "--format qcow2" in refused.value.hint
    with raw_source(str(unnamed), "qcow2", None) as (stream, size, *_):
        assert stream.read(size) == disk[1]


def test_qemu_img_is_always_told_the_format(
    disk: tuple[Path, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    ran: list[list[str]] = []
    real = subprocess.run

    def run(argv: list[str], **kwargs: object) -> object:
        ran.append(argv)
        return real(argv, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr("zboot.ops.importer.subprocess.run", run)
    monkeypatch.setattr("shutil.which", lambda _tool: None)
    with raw_source(str(convert(disk[0], "vdi")), None, None) as (stream, size, *_):
        assert stream.read(size) == disk[1]
    assert ran and all(argv[0] == "qemu-img" and "-f" in argv for argv in ran)


def test_a_raw_file_of_a_partial_sector_is_padded_with_zeros(tmp_path: Path) -> None:
    """As qemu-img reads it: the size rounded up to whole 512-byte sectors,
    the rest zeros (once "ended after 1000 of 1024 bytes")."""
    odd = tmp_path / "odd.raw"
    odd.write_bytes(os.urandom(1000))
    runner = RecordingRunner()
    result = importer.import_image(runner, ZfsCli(runner), Config(), "odd", str(odd), None, None)
    sent = [
        data for argv, data in zip(runner.commands, runner.inputs, strict=True) if argv[0] == "dd"
    ]
    assert sent == [odd.read_bytes() + bytes(24)]
    assert (result["written"], result["format"]) == (1024, "raw")


def test_what_is_not_a_readable_file_is_refused(tmp_path: Path) -> None:
    locked = tmp_path / "locked.raw"
    locked.write_bytes(bytes(SECTOR))
    locked.chmod(0)
    refusals = {str(tmp_path): "neither a file nor a block device"}
    if os.geteuid() != 0:  # root reads it anyway
        refusals[str(locked)] = "cannot read .*: Permission denied"
    for source, refusal in refusals.items():
        with pytest.raises(InvalidInput, match=refusal), raw_source(source, None, None):
            pass
