"""`zboot image import`: a disk image from this machine into a new zvol on the
server, streamed over the one connection. Zero blocks are not written (the
zvol stays thin), non-raw formats are converted with qemu-img first, the size
is checked, and an interrupted import leaves no image behind."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple, cast

from ..config import Config
from ..errors import Conflict, InvalidInput, ZbootError
from ..remote.base import Runner, wait_for_path
from ..zfs.cli import ZfsCli
from .images import ensure_layout
from .state import KIND, now

Progress = Callable[[int, int], None]  # (bytes sent, bytes in all)
FORMATS = ("raw", "qcow2", "vmdk", "vhdx", "vdi")
MIB = 1024 * 1024


# What a file's name says it is; anything else must say --format.
EXTENSIONS = {
    ".raw": "raw",
    ".img": "raw",
    ".qcow2": "qcow2",
    ".vmdk": "vmdk",
    ".vhdx": "vhdx",
    ".vdi": "vdi",
}
# (offset, first bytes, format) of the formats qemu-img would recognise
MAGIC = (
    (0, b"QFI\xfb", "qcow2"),
    (0, b"KDMV", "vmdk"),
    (0, b"COWD", "vmdk"),
    (0, b"vhdxfile", "vhdx"),
    (64, b"\x7f\x10\xda\xbe", "vdi"),
    (0, b"conectix", "vpc"),
    (0, b"QED\x00", "qed"),
    (0, b"LUKS\xba\xbe", "luks"),
    (0, b"WithoutFreeSpace", "parallels"),
    (0, b"WithouFreSpacExt", "parallels"),
    (0, b"Bochs Virtual HD Image", "bochs"),
    (0, b"#!/bin/sh\n#V2.0 Format\n", "cloop"),
)
SECTOR = 512


class Source(NamedTuple):
    """An open raw stream of the image, its size, the format it was read as,
    and a word for the user when the content looked like something else."""

    stream: BinaryIO
    size: int
    format: str
    note: str | None = None


def opened(path: Path) -> BinaryIO:
    try:
        return path.open("rb")
    except OSError as err:
        raise InvalidInput(f"cannot read {str(path)!r}: {err.strerror}") from None


def header_format(path: Path) -> str:
    """The format the file's first bytes announce, "raw" when none. Read here
    so that qemu-img is always told the format and never guesses it."""
    with opened(path) as disk:
        head = disk.read(2048)
    for offset, magic, fmt in MAGIC:
        if head[offset : offset + len(magic)] == magic:
            return fmt
    for line in head.splitlines():  # a vmdk descriptor: comments, then version=N
        if line.strip() and not line.startswith(b"#"):
            return "vmdk" if line.strip() in (b"version=1", b"version=2", b"version=3") else "raw"
    return "raw"


def choose_format(path: Path) -> tuple[str, str | None]:
    """(format, note) from the file's name, checked against its first bytes.
    A .raw or .img file is raw whatever it starts with: its bytes are a disk,
    and a disk may hold anything."""
    named, found = EXTENSIONS.get(path.suffix.lower()), header_format(path)
    if named == "raw" and found != "raw":
        how = f"--format {found}" if found in FORMATS else "qemu-img convert to raw first"
        return "raw", (
            f"{path.name} starts like a {found} image but its name says raw, so its bytes "
            f"were imported as they are; if it is a {found} image, import it with {how}"
        )
    if named == found or (named is None and found == "raw"):
        return found, None
    hint = f"say --format {found} if it is one, or --format raw for its bytes as they are"
    if found not in FORMATS:
        hint = f"zboot reads {', '.join(FORMATS)}: convert it first, or say --format raw"
    if named is None:
        raise InvalidInput(f"{str(path)!r} starts like a {found} image", hint=hint)
    raise InvalidInput(
        f"{str(path)!r} is named {path.suffix} but does not start like a {named} image"
        + (f" (it starts like {found})" if found != "raw" else ""),
        hint=hint if found != "raw" else "name its format with --format",
    )


def probe(path: Path, fmt: str, allow_other_files: bool) -> int:
    """The virtual size of a local image read as fmt, after checking with
    qemu-img that it reads no other file (unless allowed)."""
    argv = ["qemu-img", "info", "--output=json", "-f", fmt, str(path)]
    result = subprocess.run(argv, capture_output=True, text=True)
    if result.returncode != 0:
        raise InvalidInput(f"cannot read {str(path)!r} as a disk image: {result.stderr.strip()}")
    info = json.loads(result.stdout)
    others = other_files(info)
    if others and not allow_other_files:
        raise InvalidInput(
            f"{str(path)!r} would read other files on this machine: {'; '.join(others)}",
            hint="an image from elsewhere can name any of your files, and their bytes would be "
            "sent to the server; if you made this image yourself, add --allow-backing-file",
        )
    return int(info["virtual-size"])


def other_files(info: dict[str, Any]) -> list[str]:
    """The files other than itself that qemu-img info says the image reads:
    a backing file, a qcow2 external data file, vmdk extents."""
    found = [f"backing file {info['backing-filename']!r}"] if "backing-filename" in info else []
    data = info.get("format-specific", {}).get("data", {})
    if "data-file" in data:
        found.append(f"data file {data['data-file']!r}")
    extents = {e["filename"] for e in data.get("extents", [])} - {info["filename"]}
    found += [f"extent {name!r}" for name in sorted(extents)]
    return found


@contextlib.contextmanager
def raw_source(
    source: str, fmt: str | None, size: int | None, allow_other_files: bool = False
) -> Iterator[Source]:
    """An open raw stream of the image and its size; converts non-raw formats."""
    if fmt is not None and fmt not in FORMATS:
        raise InvalidInput(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    if source == "-":
        if fmt not in (None, "raw"):
            raise InvalidInput("stdin can only carry a raw image")
        if size is None:
            raise InvalidInput("importing from stdin needs --size")
        yield Source(sys.stdin.buffer, size, "raw")
        return
    path = Path(source).absolute()  # never read by qemu as "proto:..." or "json:{...}"
    if not path.exists():
        raise InvalidInput(f"{source!r} does not exist")
    if path.is_block_device():
        with opened(path) as dev:
            end = dev.seek(0, os.SEEK_END)
            dev.seek(0)
            yield Source(dev, end, "raw")
        return
    if not path.is_file():
        raise InvalidInput(
            f"{source!r} is neither a file nor a block device", hint="for a pipe, use - and --size"
        )
    fmt, note = (fmt, None) if fmt else choose_format(path)
    if fmt == "raw":  # padded with zeros to whole sectors, as qemu-img does
        with opened(path) as raw:
            whole = -(-path.stat().st_size // SECTOR) * SECTOR
            yield Source(cast(BinaryIO, PaddedReader(raw)), whole, fmt, note)
        return
    virtual = probe(path, fmt, allow_other_files)
    with converted(path, fmt) as raw:
        yield Source(raw, virtual, fmt)


@contextlib.contextmanager
def converted(path: Path, fmt: str) -> Iterator[BinaryIO]:
    """The raw bytes of an image in another format."""
    if shutil.which("nbdcopy") and shutil.which("qemu-nbd"):
        with converted_stream(path, fmt) as raw:
            yield raw
        return
    # Without libnbd's nbdcopy: convert into a sparse file first.
    with tempfile.TemporaryDirectory(prefix="zboot-import-") as tmp:
        out = Path(tmp) / "disk.raw"
        result = subprocess.run(
            ["qemu-img", "convert", "-f", fmt, "-O", "raw", str(path), str(out)],
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            raise InvalidInput(f"qemu-img could not convert {str(path)!r}: {result.stderr.strip()}")
        with out.open("rb") as raw:
            yield raw


@contextlib.contextmanager
def converted_stream(path: Path, fmt: str) -> Iterator[BinaryIO]:
    """The image's raw bytes, converted on the fly: qemu-nbd reads the format and
    nbdcopy writes the disk in order to a pipe, so no raw copy lands on disk."""
    argv = [
        "nbdcopy",
        "--",
        "[",
        "qemu-nbd",
        "--read-only",
        "--format",
        fmt,
        str(path.resolve()),
        "]",
        "-",
    ]
    with tempfile.TemporaryFile() as errors:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=errors)
        stdout = cast(BinaryIO, proc.stdout)  # a pipe: stdout=PIPE

        def failure() -> InvalidInput:
            errors.seek(0)
            message = errors.read().decode(errors="replace").strip()
            return InvalidInput(
                f"nbdcopy could not convert {str(path)!r}: {message}",
                hint="check that qemu-nbd can read the image",
            )

        try:
            yield stdout
        except BaseException as err:
            try:  # nbdcopy may have stopped first, with its own reason
                ended = proc.wait(timeout=1)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                raise err from None
            if ended and isinstance(err, Exception):  # not on Ctrl-C: that stays 130
                raise failure() from err
            raise
        finally:
            stdout.close()
        if proc.wait() != 0:
            raise failure()


def import_image(
    runner: Runner,
    zfs: ZfsCli,
    config: Config,
    name: str,
    source: str,
    fmt: str | None,
    size: int | None,
    on_progress: Progress | None = None,
    allow_other_files: bool = False,
) -> dict[str, Any]:
    dataset = f"{config.images}/{name}"
    if (found := zfs.datasets(dataset).get(dataset)) is not None:
        if found.prop("state") != "importing":
            raise Conflict(f"image {name!r} exists already", hint=f"zboot image show {name}")
        remove_half_image(runner, zfs, dataset)  # an earlier import that did not finish
    with raw_source(source, fmt, size, allow_other_files) as (stream, nbytes, used, note):
        if nbytes <= 0:
            raise InvalidInput(f"{source!r} is empty")
        volsize = -(-nbytes // MIB) * MIB
        ensure_layout(zfs, config)
        # Marked incomplete until every byte arrived: a crash leaves a
        # recognisable half image, never one that looks whole.
        zfs.create_volume(
            dataset, volsize, props={KIND: "image", "created": now(), "state": "importing"}
        )
        try:
            device = f"/dev/zvol/{dataset}"
            wait_for_path(runner, device, seconds=30)
            written = stream_into(runner, stream, device, nbytes, on_progress)
            if written != nbytes:
                raise InvalidInput(f"{source!r} ended after {written} of {nbytes} bytes")
            zfs.set_props(dataset, {"state": "ready"})
        except BaseException:
            remove_half_image(runner, zfs, dataset)
            raise
    result = {"image": name, "dataset": dataset, "size": volsize, "written": nbytes, "format": used}
    return result | ({"note": note} if note else {})


def remove_half_image(runner: Runner, zfs: ZfsCli, dataset: str, attempts: int = 30) -> None:
    """Destroy what a failed import made. Right after dd closes the zvol, udev
    probes it and ZFS calls it busy for a moment: wait and retry, bounded."""
    for _ in range(attempts):
        with contextlib.suppress(ZbootError):
            runner.run(["udevadm", "settle"], check=False, timeout=60)
        try:
            zfs.destroy(dataset, recursive=True)
            return
        except Conflict:
            time.sleep(1)
        except ZbootError:
            return  # gone already, or the server is unreachable: the state says "importing"


def stream_into(
    runner: Runner, stream: BinaryIO, device: str, nbytes: int, on_progress: Progress | None
) -> int:
    """Send nbytes of stream to dd on the server; dd skips zero blocks."""
    counted = CountingReader(stream, nbytes)
    argv = ["dd", f"of={device}", "bs=1M", "iflag=fullblock", "conv=sparse,fsync", "status=none"]
    runner.stream(
        argv,
        cast(BinaryIO, counted),
        on_progress=(lambda sent: on_progress(sent, nbytes)) if on_progress else None,
    )
    return counted.count


class PaddedReader:
    """A reader that, once its file ends, gives zeros without end (the
    CountingReader around it stops at the size)."""

    def __init__(self, inner: BinaryIO) -> None:
        self.inner = inner

    def read(self, size: int = -1) -> bytes:
        data = self.inner.read(size)
        return data if data or size <= 0 else bytes(min(size, SECTOR))


class CountingReader:
    """A reader that stops at limit bytes and counts what it gave."""

    def __init__(self, inner: BinaryIO, limit: int) -> None:
        self.inner, self.limit, self.count = inner, limit, 0

    def read(self, size: int = -1) -> bytes:
        left = self.limit - self.count
        if left <= 0:
            return b""
        data = self.inner.read(left if size < 0 else min(size, left))
        self.count += len(data)
        return data
