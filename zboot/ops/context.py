"""What every workflow works with: the configuration, the one runner on the
storage server, the zfs interface over it, and the target engine, made on
first use (a workflow that never exports never looks for one)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from .. import faults
from ..config import Config
from ..remote.base import Runner
from ..targets.base import TargetEngine
from ..targets.registry import make_engine
from ..zfs.cli import ZfsCli
from ..zfs.lzc import zfs_backend


@dataclass
class Context:
    config: Config
    runner: Runner
    zfs: ZfsCli
    make_engine: Callable[[], TargetEngine]
    dry_run: bool = False  # changes are recorded, not made (the runner knows how)
    _engine: TargetEngine | None = field(default=None, repr=False)

    @property
    def engine(self) -> TargetEngine:
        if self._engine is None:
            self._engine = self.make_engine()
        return self._engine


def open_context(
    config: Config,
    runner: Runner,
    *,
    dry_run: bool = False,
    on_progress: Callable[[int, int], None] | None = None,
) -> Context:
    """A run's context: zfs through libzfs_core when local and available, else
    zfs(8); the engine the config names (or finds), made on first use."""
    zfs = zfs_backend(runner, config.server.is_local, dry_run)
    zfs.on_progress = on_progress
    return Context(
        config, runner, zfs, lambda: faults.watch(make_engine(config.engine, runner)), dry_run
    )
