"""Every target engine zboot drives, in one place: its name, the tool that
shows a server has it, how it is made, and which one a server gets when the
config says `engine = "auto"`. Adding an engine is this file plus the
engine's own module."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..errors import InvalidInput
from ..remote.base import Runner
from .base import NoEngine, TargetEngine
from .comstar import ComstarEngine
from .ctld import CtldEngine
from .istgt import DEFAULT_CONF as ISTGT_CONF
from .istgt import IstgtEngine
from .lio import LioEngine, has_rtslib
from .tgt import TgtEngine

FREEBSD_ISTGT_CONF = "/usr/local/etc/istgt/istgt.conf"


def _istgt(runner: Runner) -> TargetEngine:
    on_freebsd = runner.run(["test", "-e", FREEBSD_ISTGT_CONF], check=False, read_only=True).ok
    return IstgtEngine(runner, conf=FREEBSD_ISTGT_CONF if on_freebsd else ISTGT_CONF)


@dataclass(frozen=True)
class EngineKind:
    name: str
    tool: str  # on the server's PATH when it has this target stack ("" for none)
    make: Callable[[Runner], TargetEngine]


# In the order auto-detection prefers them: LIO first, as on Linux.
ENGINES = (
    EngineKind("lio", "targetcli", LioEngine),
    EngineKind("tgt", "tgtadm", TgtEngine),
    EngineKind("istgt", "istgtcontrol", _istgt),
    EngineKind("ctld", "ctladm", CtldEngine),
    EngineKind("comstar", "itadm", ComstarEngine),
    EngineKind("none", "", lambda runner: NoEngine()),
)
NAMES = tuple(kind.name for kind in ENGINES)
TOOLS = tuple(kind.tool for kind in ENGINES if kind.tool)


def tools_on_server(runner: Runner, names: tuple[str, ...]) -> list[str]:
    """Which of these commands the server has on its PATH."""
    check = 'for t; do command -v "$t" >/dev/null && echo "$t"; done; true'
    return runner.run(["sh", "-c", check, "sh", *names], read_only=True).text.split()


def pick(tools: list[str], rtslib: bool) -> str:
    """The engine a server's tools point to. LIO also without targetcli when
    the server's Python has rtslib-fb (what zboot drives LIO with)."""
    if rtslib:
        return "lio"
    return next((kind.name for kind in ENGINES if kind.tool in tools), "none")


def detect(runner: Runner) -> str:
    return pick(tools_on_server(runner, TOOLS), has_rtslib(runner))


def make_engine(name: str, runner: Runner) -> TargetEngine:
    """The engine named in the config; "auto" looks at what the server has."""
    if name == "auto":
        name = detect(runner)
    for kind in ENGINES:
        if kind.name == name:
            return kind.make(runner)
    raise InvalidInput(
        f"target engine {name!r} is not supported",
        hint=f"set [target] engine to one of: auto, {', '.join(NAMES)}",
    )
