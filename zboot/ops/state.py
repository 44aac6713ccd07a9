"""What zboot knows, read from ZFS: images with their versions, hosts with their
restore points and archived states. User properties are the only state."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from enum import StrEnum
from functools import cached_property

from ..config import Config
from ..errors import NotFound
from ..names import HostName, image_name, snapshot_name
from ..zfs.cli import Dataset, ZfsCli

KIND = "kind"  # image | host | archive | data
# An ephemeral host's disk as it was cloned: resets roll back to it in place
# (ops/reset.py). Not a restore point.
BASE = "zboot-base"
# A host's disk as `zboot commit` sends it, and the image's new version as
# it is received, before it takes its name (ops/commit.py); gone when the
# commit ends. Not a restore point, not a version.
COMMIT = "zboot-commit"
HIDDEN = (BASE, COMMIT)


# A host's `state` is "ready" once every step of the last operation on it is
# done; in between it names the operation (provisioning, rolling-back,
# destroying, switching) and `step` the last step reached ("<op>:<step>"),
# so a re-run of the same command, or `zboot sync`, can finish it.
class HostState(StrEnum):
    """A host's `state` property: ready, or the operation under way on it."""

    READY = "ready"
    PROVISIONING = "provisioning"
    ROLLING_BACK = "rolling-back"
    DESTROYING = "destroying"
    SWITCHING = "switching"


READY = HostState.READY


@dataclass(frozen=True)
class HostRecord:
    """A host's ZFS user properties, typed; "" for one it does not have."""

    mac: str = ""
    image: str = ""
    version: str = ""
    origin: str = ""
    created: str = ""
    mode: str = ""  # normal, install, local, maintenance ("" read as normal)
    initiator: str = ""
    target: str = ""  # the target IQN, when the host is exported
    chap: str = ""  # "", "one-way" or "mutual"
    state: str = ""  # a HostState value ("" for a host made before states)
    step: str = ""  # "<operation>:<step>" last reached
    ephemeral: str = ""  # "on": the disk returns to its base when the machine boots
    keep: str = ""  # "on": an ephemeral host's boots keep their changes until "off"
    data: str = ""  # "on": the host has a data disk (<root>/data/<host>, the next LUN)

    @classmethod
    def of(cls, props: Mapping[str, str]) -> HostRecord:
        return cls(**{f.name: props.get(f.name, "") for f in fields(cls)})

    @property
    def unfinished(self) -> bool:
        """An operation on the host stopped before its last step."""
        return self.state not in (READY, "")

    @property
    def resets_at_boot(self) -> bool:
        """An ephemeral host not told to keep its changes: its next boot
        starts from the image version it was cloned from."""
        return self.ephemeral == "on" and self.keep != "on"


def reached(op: str, step: str, state: str | None = None) -> dict[str, str]:
    """The properties that record a step; state=None keeps the state."""
    return {"step": f"{op}:{step}"} | ({"state": state} if state else {})


def done(op: str) -> dict[str, str]:
    return reached(op, "done", READY)


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def leaf(name: str) -> str:
    return name.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class Version:
    name: str  # the snapshot name after "@"
    dataset: Dataset
    dependents: list[str] = field(default_factory=list)  # host names cloned from it


@dataclass(frozen=True)
class Image:
    name: str
    dataset: Dataset
    versions: list[Version]

    def version(self, name: str | None) -> Version:
        if not self.versions:
            raise NotFound(
                f"image {self.name!r} has no versions", hint=f"zboot image snapshot {self.name}"
            )
        if name is None:
            return self.versions[-1]
        for v in self.versions:
            if v.name == name:
                return v
        raise NotFound(
            f"image {self.name!r} has no version {name!r}",
            hint=f"versions: {', '.join(v.name for v in self.versions)}",
        )


@dataclass(frozen=True)
class Host:
    name: HostName  # read from our own records: checked when the host was made
    dataset: Dataset
    restore_points: list[Dataset]
    archives: list[Dataset]

    @cached_property
    def record(self) -> HostRecord:
        return HostRecord.of(self.dataset.record())

    def get(self, key: str) -> str:
        """A property HostRecord does not name (e.g. a rollback's plan)."""
        return self.dataset.prop(key) or ""

    @property
    def unfinished(self) -> bool:
        return self.record.unfinished


@dataclass(frozen=True)
class State:
    images: dict[str, Image]
    hosts: dict[str, Host]
    # host name -> the properties of its disk, renamed into the archive by a
    # rollback that stopped before the new clone was made
    unfinished_rollbacks: dict[str, dict[str, str]] = field(default_factory=dict)
    names: frozenset[str] = frozenset()  # every dataset and snapshot under the root
    # the properties of <root>/discovered (ops/enrol.py: machines no host has)
    discovered: dict[str, str] = field(default_factory=dict)
    # snapshot -> the datasets ZFS made from it (hosts, archived disks): what
    # keeps a snapshot from being destroyed, whatever the records say
    clones: dict[str, list[str]] = field(default_factory=dict)
    # the root dataset's used and available bytes (None: no root yet)
    space: tuple[int, int] | None = None
    # host name -> its data disk (<root>/data/<host>, kind "data")
    data: dict[str, Dataset] = field(default_factory=dict)
    # every dataset and snapshot under the root, by name
    datasets: dict[str, Dataset] = field(default_factory=dict)

    def image(self, name: str) -> Image:
        if name not in self.images:
            raise NotFound(f"no image named {name!r}", hint="zboot image list")
        return self.images[name]

    def record(self, name: str) -> HostRecord:
        """A host's record: from its disk, or, when a rollback of it was cut
        short, from its old disk waiting in the archive."""
        if name not in self.hosts and name in self.unfinished_rollbacks:
            return HostRecord.of(self.unfinished_rollbacks[name])
        return self.host(name).record

    def host(self, name: str) -> Host:
        if name in self.unfinished_rollbacks and name not in self.hosts:
            raise NotFound(
                f"host {name!r} has no disk: a rollback of it was cut short",
                hint=f"zboot rollback {name} finishes it",
            )
        if name not in self.hosts:
            raise NotFound(f"no host named {name!r}", hint="zboot list")
        return self.hosts[name]


def version_snapshot(state: State, spec: str) -> str:
    """IMAGE[@VERSION] (default: its newest version) as a snapshot name."""
    name, _, version = spec.partition("@")
    image = state.image(image_name(name))
    return image.version(snapshot_name(version) if version else None).dataset.name


def discovered_dataset(config: Config) -> str:
    """Where the boot service records machines that no host has (ops/enrol.py)."""
    return f"{config.root}/discovered"


def read_state(zfs: ZfsCli, config: Config) -> State:
    """Two zfs commands, whatever the size of the fleet."""
    all_sets = zfs.datasets(config.root)
    snaps: dict[str, list[Dataset]] = {}
    for ds in all_sets.values():
        if ds.type == "snapshot":
            snaps.setdefault(ds.name.split("@")[0], []).append(ds)
    hosts_by_origin: dict[str, list[str]] = {}
    archives: dict[str, list[Dataset]] = {}
    host_sets = []
    unfinished: dict[str, dict[str, str]] = {}
    for ds in all_sets.values():
        kind = ds.prop(KIND)
        if kind == "host" and ds.name.startswith(config.hosts + "/"):
            host_sets.append(ds)
            hosts_by_origin.setdefault(ds.prop("origin") or "", []).append(leaf(ds.name))
        elif kind == "host" and ds.name.startswith(config.archive + "/"):
            # renamed by a rollback, not yet marked as an archive
            host = ds.prop("host") or ""
            unfinished[host] = ds.record()
            archives.setdefault(host, []).append(ds)
        elif kind == "archive":
            archives.setdefault(ds.prop("host") or "", []).append(ds)
    images = {}
    for ds in all_sets.values():
        if ds.prop(KIND) == "image" and ds.name.startswith(config.images + "/"):
            versions = [
                Version(s.name.split("@")[1], s, sorted(hosts_by_origin.get(s.name, [])))
                for s in snaps.get(ds.name, [])
                if s.name.split("@")[1] not in HIDDEN
            ]
            images[leaf(ds.name)] = Image(leaf(ds.name), ds, versions)
    hosts: dict[str, Host] = {}
    for ds in host_sets:
        name = HostName(leaf(ds.name))
        points = [s for s in snaps.get(ds.name, []) if s.name.split("@")[1] not in HIDDEN]
        hosts[name] = Host(name, ds, points, archives.get(name, []))
    data = {
        leaf(ds.name): ds
        for ds in all_sets.values()
        if ds.prop(KIND) == "data" and ds.name.startswith(config.data + "/")
    }
    seen = all_sets.get(discovered_dataset(config))
    clones: dict[str, list[str]] = {}
    for ds in all_sets.values():
        if ds.origin:
            clones.setdefault(ds.origin, []).append(ds.name)
    return State(
        images=images,
        hosts=hosts,
        unfinished_rollbacks=unfinished,
        names=frozenset(all_sets),
        discovered=seen.record() if seen is not None else {},
        clones=clones,
        space=root_space(all_sets.get(config.root)),
        data=data,
        datasets=all_sets,
    )


def root_space(root: Dataset | None) -> tuple[int, int] | None:
    if root is None or root.available is None:
        return None
    return root.used, root.available
