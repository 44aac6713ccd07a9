"""A small in-memory stand-in for rtslib-fb, enough to run zboot's LIO agent
(zboot/targets/lio_agent.py) in the test process: storage objects, targets
with one TPG, LUNs, ACLs with CHAP, sessions. It keeps rtslib's rules that
matter to the agent: deleting a target leaves its storage objects, and a
storage object a LUN uses cannot be deleted."""

from __future__ import annotations

import contextlib
import io
import json
import sys
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zboot.targets.lio import AGENT

LOCK_LINE = 'TARGETCLI_LOCK = "/var/run/targetcli.lock"'


@dataclass
class World:
    """What the kernel target has: every object the fake made, and saves."""

    stores: list[StorageObject] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)
    saves: int = 0
    walks: int = 0  # listings of every target or store (each a configfs walk)
    vanishing: int = 0  # walks of the targets that meet an entry removed meanwhile


class RTSLibError(Exception):
    pass


class RTSLibNotInCFS(RTSLibError):
    """An object that vanished from configfs while it was read."""


class RTSLibBrokenLink(RTSLibError):
    """A LUN whose storage object went first, seen while it was read."""


class StorageObject:
    def __init__(self, world: World, name: str, dev: str, wwn: str = "") -> None:
        self.world, self.name, self.udev_path, self.wwn = world, name, dev, wwn
        world.stores.append(self)

    @property
    def attached_luns(self) -> list[LUN]:
        self.world.walks += 1  # rtslib walks every target's LUNs for this
        return self._luns()

    def _luns(self) -> list[LUN]:
        return [
            lun
            for t in self.world.targets
            for tpg in t.tpgs
            for lun in tpg.luns
            if lun.storage_object is self
        ]

    def delete(self) -> None:  # (rtslib's own check; not counted as the agent's walk)
        if self._luns():
            raise RTSLibError(f"storage object {self.name} is in use")
        self.world.stores.remove(self)


class Target:
    def __init__(self, world: World, wwn: str) -> None:
        self.world, self.wwn = world, wwn
        self.tpgs: list[TPG] = []
        world.targets.append(self)

    def delete(self) -> None:  # its TPGs, LUNs and ACLs go; its stores stay
        self.world.targets.remove(self)


class TPG:
    def __init__(self, target: Target, tag: int) -> None:
        self.parent_target, self.tag = target, tag
        self.luns: list[LUN] = []
        self.node_acls: list[NodeACL] = []
        self.attributes: dict[str, str] = {}
        self.enable = False
        target.tpgs.append(self)

    def set_attribute(self, name: str, value: str) -> None:
        self.attributes[name] = value


class LUN:
    def __init__(self, tpg: TPG, lun: int, storage_object: StorageObject) -> None:
        self.parent_tpg, self.lun, self.storage_object = tpg, lun, storage_object
        tpg.luns.append(self)


class NodeACL:
    def __init__(self, tpg: TPG, node_wwn: str) -> None:
        self.parent_tpg, self.node_wwn = tpg, node_wwn
        self.chap_userid = self.chap_password = ""
        self.chap_mutual_userid = self.chap_mutual_password = ""
        self.session: dict[str, str] | None = None
        self.mapped_luns: list[MappedLUN] = []
        tpg.node_acls.append(self)


class MappedLUN:
    def __init__(self, acl: NodeACL, mapped_lun: int, tpg_lun: LUN) -> None:
        self.parent_nodeacl, self.mapped_lun, self.tpg_lun = acl, mapped_lun, tpg_lun
        acl.mapped_luns.append(self)


def module(world: World) -> types.ModuleType:
    """An `rtslib_fb` module whose objects live in world."""
    fake = types.ModuleType("rtslib_fb")

    class RTSRoot:
        @property
        def storage_objects(self) -> list[StorageObject]:
            world.walks += 1
            return list(world.stores)

        @property
        def targets(self) -> list[Target]:
            world.walks += 1
            if world.vanishing:  # another process removed a target under this walk
                world.vanishing -= 1
                if world.vanishing % 2:
                    raise RTSLibBrokenLink("Broken LUN in configFS, no storage object")
                raise FileNotFoundError("/sys/kernel/config/target/iscsi/gone/tpgt_1")
            return list(world.targets)

        def save_to_file(self) -> None:
            world.saves += 1

    names: dict[str, Any] = {
        "RTSRoot": RTSRoot,
        "BlockStorageObject": lambda name, dev, wwn="": StorageObject(world, name, dev, wwn),
        "FabricModule": lambda name: name,
        "Target": lambda fabric, wwn: Target(world, wwn),
        "TPG": TPG,
        "NetworkPortal": lambda tpg, ip, port: None,
        "LUN": LUN,
        "NodeACL": NodeACL,
        "MappedLUN": MappedLUN,
        "RTSLibNotInCFS": RTSLibNotInCFS,
        "RTSLibBrokenLink": RTSLibBrokenLink,
    }
    for name, value in names.items():
        setattr(fake, name, value)
    return fake


def export(
    world: World, host: str, target: str, device: str, initiator: str, data_device: str = ""
) -> NodeACL:
    """A host's export as the agent makes it (no CHAP), with its data disk at
    LUN 1 when data_device; returns its ACL."""
    tpg = TPG(Target(world, target), 1)
    acl = NodeACL(tpg, initiator)
    MappedLUN(acl, 0, LUN(tpg, 0, StorageObject(world, f"zboot-{host}", device)))
    if data_device:
        data = StorageObject(world, f"zboot-{host}.data", data_device)
        MappedLUN(acl, 1, LUN(tpg, 1, data))
    return acl


def run_agent(world: World, request: dict[str, Any], lock: Path) -> Any:
    """Run the LIO agent's source, as the server would, against world."""
    assert LOCK_LINE in AGENT
    source = AGENT.replace(LOCK_LINE, f"TARGETCLI_LOCK = {str(lock)!r}")
    out = io.StringIO()
    saved = sys.modules.get("rtslib_fb")
    sys.modules["rtslib_fb"] = module(world)
    try:
        with contextlib.redirect_stdout(out):
            exec(  # noqa: S102  # the agent's own source, as the bootstrap runs it
                compile(source, "zboot-lio-agent", "exec"),
                {"__name__": "zboot_lio_agent", "REQUEST": json.dumps(request).encode()},
            )
    finally:
        if saved is None:
            del sys.modules["rtslib_fb"]
        else:
            sys.modules["rtslib_fb"] = saved
    return json.loads(out.getvalue())
