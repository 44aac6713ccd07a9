"""Golden images: create, import, snapshot (versions), destroy."""

from __future__ import annotations

from collections.abc import Collection

from .. import names
from ..config import Config
from ..errors import Conflict
from ..names import ImageName, image_name, snapshot_name
from ..zfs.cli import ZfsCli
from .state import KIND, Image, now, read_state


def ensure_layout(zfs: ZfsCli, config: Config, known: Collection[str] = ()) -> list[str]:
    """The root dataset and its images/hosts/archive children; returns what it
    created. Names in known (read just before) are not looked up again."""
    wanted = [
        n for n in (config.root, config.images, config.hosts, config.archive) if n not in known
    ]
    made = zfs.missing(wanted) if wanted else []
    zfs.create_filesystems(made)
    return made


def create_image(
    zfs: ZfsCli,
    config: Config,
    name: str,
    size: int,
    *,
    thick: bool = False,
    volblocksize: int | None = None,
    compression: str | None = None,
) -> str:
    name = image_name(name)
    state = read_state(zfs, config)
    dataset = f"{config.images}/{name}"
    if name in state.images or zfs.exists(dataset):
        raise Conflict(f"image {name!r} exists already", hint=f"zboot image show {name}")
    ensure_layout(zfs, config)
    zfs.create_volume(
        dataset,
        size,
        sparse=not thick,
        volblocksize=volblocksize,
        compression=compression,
        props={KIND: "image", "created": now()},
    )
    return dataset


def next_version(image: Image) -> str:
    taken = {v.name for v in image.versions}
    n = len(image.versions) + 1
    while f"v{n}" in taken:
        n += 1
    return f"v{n}"


def snapshot_image(
    zfs: ZfsCli, config: Config, name: str, version: str | None, message: str | None
) -> str:
    name = image_name(name)
    version = snapshot_name(version) if version else None
    image = read_state(zfs, config).image(name)
    if image.dataset.prop("state") == "importing":
        raise Conflict(
            f"image {name!r} is an import that did not finish",
            hint=f"import it again (the half image is replaced) or zboot image destroy {name}",
        )
    version = version or next_version(image)
    if any(v.name == version for v in image.versions):
        raise Conflict(f"image {name!r} already has a version {version!r}")
    if message is not None:
        names.message(message)
    props = {"created": now()} | ({"message": message} if message else {})
    zfs.snapshot([f"{image.dataset.name}@{version}"], props)
    return version


def destroy_image(zfs: ZfsCli, config: Config, spec: str) -> list[str]:
    """Destroy an image (all versions) or one version; refuse while hosts depend on it."""
    name, _, version = spec.partition("@")
    name, version = image_name(name), snapshot_name(version) if version else ""
    image = read_state(zfs, config).image(name)
    versions = [image.version(version)] if version else image.versions
    dependents = sorted({h for v in versions for h in v.dependents})
    if dependents:
        raise Conflict(
            f"image {spec!r} has hosts that depend on it: {', '.join(dependents)}",
            hint="destroy or re-provision those hosts first",
        )
    if version:
        zfs.destroy(versions[0].dataset.name)
        return [versions[0].dataset.name]
    zfs.destroy(image.dataset.name, recursive=True)
    return [image.dataset.name]


def list_images(zfs: ZfsCli, config: Config) -> list[Image]:
    return sorted(read_state(zfs, config).images.values(), key=lambda i: i.name)


def show_image(zfs: ZfsCli, config: Config, name: ImageName) -> Image:
    return read_state(zfs, config).image(name)
