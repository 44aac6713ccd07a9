"""The backend contract suite runs where ZFS is: on the storage server (the lab
VM runs it through tests/lab/test_backend_contract.py). Elsewhere there is no
pool to run it on, so it is not collected at all (not skipped)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from zboot.remote.local import LocalRunner
from zboot.zfs.cli import ZfsCli
from zboot.zfs.lzc import LzcZfs, lzc_available

ON_SERVER = os.path.exists("/dev/zfs") and bool(os.environ.get("ZBOOT_CONTRACT_POOL"))
collect_ignore_glob = [] if ON_SERVER else ["test_*.py"]


@pytest.fixture(params=["zfs-cli", "libzfs_core"])
def zfs(request: pytest.FixtureRequest) -> ZfsCli:
    runner = LocalRunner()
    if request.param == "libzfs_core":
        assert lzc_available(), "pyzfs must be installed on the server"
        return LzcZfs(runner)
    return ZfsCli(runner)


@pytest.fixture
def root(zfs: ZfsCli) -> Iterator[str]:
    """A fresh filesystem for one test, removed afterwards."""
    name = f"{os.environ['ZBOOT_CONTRACT_POOL']}/contract-{uuid.uuid4().hex[:8]}"
    ZfsCli(LocalRunner()).create_filesystem(name)
    yield name
    LocalRunner().run(["zfs", "destroy", "-r", name], check=False)
