"""What every target engine offers zboot, and the export it is asked to make."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

from ..chap import Chap

# A fixed namespace: a host's disk serial is the same on every run and every
# server, so a re-created clone looks like the same disk to the client.
SERIAL_NAMESPACE = uuid.UUID("6f1c7b0e-2b61-4c8e-9a51-7a0d3c4e9b10")


def disk_serial(host: str) -> str:
    """A deterministic unit serial (a UUID string) for the host's LUN."""
    return str(uuid.uuid5(SERIAL_NAMESPACE, host))


def storage_name(host: str) -> str:
    """The engine-side name of the host's backing store; the prefix marks it zboot's."""
    return f"zboot-{host}"


# Host names are [A-Za-z0-9-], so no host's store is named like another's data store.
DATA_SUFFIX = ".data"


def data_storage_name(host: str) -> str:
    """The engine-side name of the host's data disk's backing store."""
    return f"{storage_name(host)}{DATA_SUFFIX}"


def data_serial(host: str) -> str:
    """The data disk's unit serial: deterministic, and not the OS disk's."""
    return str(uuid.uuid5(SERIAL_NAMESPACE, f"{host}{DATA_SUFFIX}"))


@dataclass(frozen=True)
class Export:
    """One host's disk as one target for one initiator: the OS disk at the
    engine's LUN (`TargetEngine.lun`) and, when the host has one, its data
    disk at the LUN after it."""

    host: str
    target: str  # the target IQN
    device: str  # /dev/zvol/<pool>/.../<host>
    initiator: str  # the only initiator IQN let in
    # Engines do not report secrets back, so two exports compare without them.
    chap: Chap | None = field(default=None, compare=False)
    data_device: str = ""  # /dev/zvol/<pool>/.../data/<host>; "": no data disk

    @property
    def serial(self) -> str:
        return disk_serial(self.host)

    @property
    def storage(self) -> str:
        return storage_name(self.host)

    @property
    def data_serial(self) -> str:
        return data_serial(self.host)

    @property
    def data_storage(self) -> str:
        return data_storage_name(self.host)


class TargetEngine(Protocol):
    name: str
    lun: int  # the LUN number the host's disk really gets; its data disk gets lun + 1

    def exports(self) -> dict[str, Export]:
        """The exports zboot made that the engine has now, by target IQN."""
        ...

    def apply(
        self, create: Iterable[Export] = (), delete: Iterable[str] = (), persist: bool = True
    ) -> None:
        """Create and delete exports (targets by IQN) in one batch, and persist.
        persist=False: the change need not outlive a restart, because the
        next apply undoes it and saves (a rollback takes exports down, then
        puts them back: one save). Engines whose live config is their file
        persist anyway."""
        ...

    def sessions(self, targets: Iterable[str]) -> dict[str, list[str]]:
        """Initiators logged in now, by target IQN (targets without any left out)."""
        ...


class NoEngine:
    """A server without a target engine: disks are made, nothing is exported."""

    name = "none"
    lun = 0

    def exports(self) -> dict[str, Export]:
        return {}

    def apply(
        self, create: Iterable[Export] = (), delete: Iterable[str] = (), persist: bool = True
    ) -> None:
        return None

    def sessions(self, targets: Iterable[str]) -> dict[str, list[str]]:
        return {}
