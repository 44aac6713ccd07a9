"""Golden images: create, import, snapshot (versions), destroy."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field

from .. import names
from ..config import Config
from ..errors import Conflict, InvalidInput
from ..names import ImageName, image_name, snapshot_name
from ..zfs.cli import ZfsCli
from .state import KIND, Image, State, leaf, now, read_state


def ensure_layout(
    zfs: ZfsCli, config: Config, known: Collection[str] = (), data: bool = False
) -> list[str]:
    """The root dataset and its images/hosts/archive children (data: and the
    parent of data disks); returns what it created. Names in known (read
    just before) are not looked up again."""
    layout = (config.root, config.images, config.hosts, config.archive)
    wanted = [n for n in layout + ((config.data,) if data else ()) if n not in known]
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


@dataclass
class PrunedVersions:
    """What `image prune` removed, and the old versions it kept, with why."""

    image: str
    removed: list[str] = field(default_factory=list)
    kept: dict[str, str] = field(default_factory=dict)  # version -> what depends on it


def depends_on(state: State, image: Image, version: str) -> str:
    """What keeps a version: hosts on it (by their records), and any disk ZFS
    made from it (an archived disk, a host whose record says otherwise)."""
    v = image.version(version)
    hosts = sorted(set(v.dependents))
    disks = sorted(leaf(d) for d in state.clones.get(v.dataset.name, []) if leaf(d) not in hosts)
    parts = ([f"hosts {', '.join(hosts)}"] if hosts else []) + (
        [f"disks {', '.join(disks)}"] if disks else []
    )
    return "; ".join(parts)


def prune_versions(zfs: ZfsCli, config: Config, name: str, keep: int) -> PrunedVersions:
    """Destroy the image's versions older than its newest `keep`, but none
    that a host or an archived disk depends on; oldest first, each alone (a
    version something took meanwhile is kept, with the reason)."""
    if keep < 1:
        raise InvalidInput(f"--keep must be at least 1, not {keep}", hint="the newest stays")
    name = image_name(name)
    state = read_state(zfs, config)
    image = state.image(name)
    result = PrunedVersions(name)
    for v in image.versions[: max(len(image.versions) - keep, 0)]:
        if why := depends_on(state, image, v.name):
            result.kept[v.name] = why
        else:
            result.removed.append(v.name)
    for version in list(result.removed):
        try:
            zfs.destroy(f"{image.dataset.name}@{version}")
        except Conflict as err:  # something took it since the state was read
            result.removed.remove(version)
            result.kept[version] = err.message
    return result
