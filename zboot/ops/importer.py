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
from typing import Any, BinaryIO, cast

from ..config import Config
from ..errors import Conflict, InvalidInput, ZbootError
from ..remote.base import Runner, wait_for_path
from ..zfs.cli import ZfsCli
from .images import ensure_layout
from .state import KIND, now

Progress = Callable[[int, int], None]  # (bytes sent, bytes in all)
FORMATS = ("raw", "qcow2", "vmdk", "vhdx", "vdi")
MIB = 1024 * 1024


def probe(path: Path, fmt: str | None) -> tuple[str, int]:
    """(format, virtual size) of a local image, from qemu-img."""
    argv = ["qemu-img", "info", "--output=json"] + (["-f", fmt] if fmt else []) + [str(path)]
    result = subprocess.run(argv, capture_output=True, text=True)
    if result.returncode != 0:
        raise InvalidInput(f"cannot read {str(path)!r} as a disk image: {result.stderr.strip()}")
    info = json.loads(result.stdout)
    return str(info["format"]), int(info["virtual-size"])


@contextlib.contextmanager
def raw_source(source: str, fmt: str | None, size: int | None) -> Iterator[tuple[BinaryIO, int]]:
    """An open raw stream of the image and its size; converts non-raw formats."""
    if fmt is not None and fmt not in FORMATS:
        raise InvalidInput(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    if source == "-":
        if fmt not in (None, "raw"):
            raise InvalidInput("stdin can only carry a raw image")
        if size is None:
            raise InvalidInput("importing from stdin needs --size")
        yield sys.stdin.buffer, size
        return
    path = Path(source)
    if not path.exists():
        raise InvalidInput(f"{source!r} does not exist")
    if path.is_block_device():
        with path.open("rb") as dev:
            end = dev.seek(0, os.SEEK_END)
            dev.seek(0)
            yield dev, end
        return
    detected, virtual = probe(path, fmt)
    if detected == "raw":
        with path.open("rb") as raw:
            yield raw, virtual
        return
    if shutil.which("nbdcopy") and shutil.which("qemu-nbd"):
        with converted_stream(path, detected) as raw:
            yield raw, virtual
        return
    # Without libnbd's nbdcopy: convert into a sparse file first.
    with tempfile.TemporaryDirectory(prefix="zboot-import-") as tmp:
        converted = Path(tmp) / "disk.raw"
        result = subprocess.run(
            ["qemu-img", "convert", "-f", detected, "-O", "raw", str(path), str(converted)],
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            raise InvalidInput(f"qemu-img could not convert {source!r}: {result.stderr.strip()}")
        with converted.open("rb") as raw:
            yield raw, virtual


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
) -> dict[str, Any]:
    dataset = f"{config.images}/{name}"
    if (found := zfs.datasets(dataset).get(dataset)) is not None:
        if found.prop("state") != "importing":
            raise Conflict(f"image {name!r} exists already", hint=f"zboot image show {name}")
        remove_half_image(runner, zfs, dataset)  # an earlier import that did not finish
    with raw_source(source, fmt, size) as (stream, nbytes):
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
    return {"image": name, "dataset": dataset, "size": volsize, "written": nbytes}


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
