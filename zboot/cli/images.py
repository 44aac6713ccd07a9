"""`zboot image ...`: golden images and their versions."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from ..errors import InvalidInput
from ..names import compression as compression_name
from ..names import human_size, image_name, size_bytes, snapshot_name
from ..names import message as message_text
from ..ops import images as ops
from ..ops.importer import FORMATS, import_image
from .output import progress_bar, table
from .session import Outcome, Session, confirm, run

app = typer.Typer(
    help="Golden images: create, import, snapshot, list, show, destroy.", no_args_is_help=True
)


def stamp(epoch: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.gmtime(epoch)) if epoch else "-"


@app.command("create")
def create(
    ctx: typer.Context,
    name: str,
    size: Annotated[str, typer.Option("--size", help="e.g. 64G (binary units)")],
    thick: Annotated[bool, typer.Option(help="reserve all space now")] = False,
    volblocksize: Annotated[str | None, typer.Option(help="e.g. 16K")] = None,
    compression: Annotated[str | None, typer.Option(help="e.g. lz4, zstd")] = None,
) -> None:
    """An empty disk for a fresh install. Example: zboot image create win11 --size 64G"""

    def action(s: Session) -> Outcome:
        nbytes = size_bytes(size)
        block = size_bytes(volblocksize) if volblocksize is not None else None
        if compression is not None:
            compression_name(compression)
        dataset = ops.create_image(
            s.context.zfs,
            s.config,
            name,
            nbytes,
            thick=thick,
            volblocksize=block,
            compression=compression,
        )
        return Outcome(
            {"image": name, "dataset": dataset, "size": nbytes},
            f"created image {name} ({human_size(nbytes)}, {dataset})",
        )

    run(ctx, "image create", action, engine=False)


@app.command("import")
def import_(
    ctx: typer.Context,
    name: str,
    source: Annotated[str, typer.Argument(help="file, block device, or - for stdin")],
    format: Annotated[
        str,
        typer.Option("--format", help="raw, qcow2, vmdk, vhdx, vdi (default: from the file name)"),
    ] = "",
    size: Annotated[str | None, typer.Option(help="needed when reading stdin")] = None,
    allow_backing_file: Annotated[
        bool,
        typer.Option(
            "--allow-backing-file",
            help="let the image read the other files it names on this machine (a qcow2 "
            "backing or data file, vmdk extents) and send their bytes; only for images "
            "you made yourself",
        ),
    ] = False,
) -> None:
    """Stream a disk image into a new image zvol. Example: zboot image import win11 disk.qcow2

    Without --format the file's name says its format (.raw, .img, .qcow2, .vmdk,
    .vhdx, .vdi), checked against its first bytes. An image that names other
    files (a backing file, for one) is refused unless --allow-backing-file."""

    def action(s: Session) -> Outcome:
        valid = image_name(name)  # bad input stops here, before the server
        if format and format not in FORMATS:
            raise InvalidInput(f"unknown format {format!r}", hint=f"one of {', '.join(FORMATS)}")
        nbytes = size_bytes(size) if size is not None else None
        with progress_bar("importing", enabled=not s.json) as on_progress:
            result = import_image(
                s.context.runner,
                s.context.zfs,
                s.config,
                valid,
                source,
                format or None,
                nbytes,
                on_progress,
                allow_other_files=allow_backing_file,
            )
        note = f"\nnote: {result['note']}" if "note" in result else ""
        return Outcome(
            result,
            f"imported {source} ({result['format']}) as image {name}: "
            f"{human_size(result['size'])}, {result['written']} bytes sent{note}",
        )

    run(ctx, "image import", action, engine=False)


@app.command("snapshot")
def snapshot(
    ctx: typer.Context,
    name: str,
    version: Annotated[str | None, typer.Argument()] = None,
    message: Annotated[
        str | None, typer.Option("-m", "--message", help="what changed in this version")
    ] = None,
) -> None:
    """Freeze the image as a new version. Example: zboot image snapshot win11 -m 'updates'"""

    def action(s: Session) -> Outcome:
        image_name(name)  # bad input stops here, before the server
        if version is not None:
            snapshot_name(version)
        if message is not None:
            message_text(message)
        v = ops.snapshot_image(s.context.zfs, s.config, name, version, message)
        return Outcome({"image": name, "version": v}, f"image {name} version {v}")

    run(ctx, "image snapshot", action, engine=False)


@app.command("list")
def list_(ctx: typer.Context) -> None:
    """Every image with its latest version and the hosts using it."""

    def action(s: Session) -> Outcome:
        images = ops.list_images(s.context.zfs, s.config)
        rows = [
            {
                "name": i.name,
                "state": i.dataset.prop("state") or "ready",
                "size": i.dataset.volsize,
                "used": i.dataset.used,
                "versions": len(i.versions),
                "latest": i.versions[-1].name if i.versions else None,
                "hosts": sum(len(v.dependents) for v in i.versions),
            }
            for i in images
        ]
        shown = [
            r
            | {
                "size": human_size(i.dataset.volsize),
                "used": human_size(i.dataset.used),
                "latest": r["latest"] or "-",
            }
            for r, i in zip(rows, images, strict=True)
        ]
        return Outcome(
            rows, table(shown, ["name", "state", "size", "used", "versions", "latest", "hosts"])
        )

    run(ctx, "image list", action, changes=False)


@app.command("show")
def show(ctx: typer.Context, name: str) -> None:
    """Versions with messages and dates, the hosts on each, space used."""

    def action(s: Session) -> Outcome:
        image = ops.show_image(s.context.zfs, s.config, image_name(name))
        ds = image.dataset
        versions = [
            {
                "version": v.name,
                "created": stamp(v.dataset.creation),
                "message": v.dataset.prop("message") or "",
                "hosts": ", ".join(v.dependents),
                "from": v.dataset.prop("committed-from") or "",
            }
            for v in image.versions
        ]
        data = {
            "name": image.name,
            "dataset": ds.name,
            "size": ds.volsize,
            "used": ds.used,
            "referenced": ds.referenced,
            "compressratio": ds.compressratio,
            "versions": versions,
        }
        text = (
            f"image {image.name} ({ds.name})\n"
            f"size {human_size(ds.volsize)}, used {human_size(ds.used)}, referenced "
            f"{human_size(ds.referenced)}, compressratio {ds.compressratio}\n\n"
            + table(versions, ["version", "created", "message", "from", "hosts"])
        )
        return Outcome(data, text)

    run(ctx, "image show", action, changes=False)


@app.command("destroy")
def destroy(
    ctx: typer.Context,
    spec: Annotated[str, typer.Argument(metavar="NAME[@VERSION]")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="do not ask")] = False,
) -> None:
    """Destroy an image or one version; refused while hosts depend on it."""

    def action(s: Session) -> Outcome:
        image, at, version = spec.partition("@")
        image_name(image)  # bad input stops here, before the server
        if at:  # NAME@ with no version is not NAME: that would destroy every version
            snapshot_name(version)
        if not s.dry_run and not confirm(f"destroy image {spec}?", yes, s.json):
            return Outcome({"destroyed": []}, "nothing destroyed")
        gone = ops.destroy_image(s.context.zfs, s.config, spec)
        return Outcome({"destroyed": gone}, f"destroyed {', '.join(gone)}")

    run(ctx, "image destroy", action, engine=False)


@app.command("prune")
def prune(
    ctx: typer.Context,
    name: str,
    keep: Annotated[
        int, typer.Option("--keep", metavar="N", help="how many of the newest versions stay")
    ],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="do not ask")] = False,
) -> None:
    """Destroy an image's old versions, all but the newest N; a version that a
    host or an archived disk still depends on stays, and says why.
    Example: zboot image prune win11 --keep 3"""

    def action(s: Session) -> Outcome:
        image_name(name)  # bad input stops here, before the server
        if keep < 1:
            raise InvalidInput(f"--keep must be at least 1, not {keep}", hint="the newest stays")
        question = f"destroy the versions of image {name} older than its newest {keep}?"
        if not s.dry_run and not confirm(question, yes, s.json):
            return Outcome({"image": name, "removed": [], "kept": []}, "nothing destroyed")
        done = ops.prune_versions(s.context.zfs, s.config, name, keep)
        kept = [{"version": v, "depends": why} for v, why in done.kept.items()]
        text = f"image {name}: removed {', '.join(done.removed) or 'no version'}"
        if kept:
            text += "\nkept (still in use):\n" + table(kept, ["version", "depends"])
        return Outcome({"image": name, "removed": done.removed, "kept": kept}, text)

    run(ctx, "image prune", action, engine=False)
