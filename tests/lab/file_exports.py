"""Exports backed by plain files, for the engines tested on the host itself
(istgt, a private tgtd), where there is no ZFS; and libiscsi logins to them."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from zboot_lab.layout import IQN_BASE

from zboot.ops.chap import new_chap
from zboot.targets.base import Export, TargetEngine


def file_export(
    tmp_path: Path,
    host: str,
    data: bytes | None = None,
    size: int = 8 << 20,
    chap: bool = False,
    mutual: bool = False,
) -> Export:
    """Host's "disk": a file holding data (or a sparse file of size bytes)."""
    disk = tmp_path / "hosts" / host
    disk.parent.mkdir(exist_ok=True)
    if data is not None:
        disk.write_bytes(data)
    else:
        with disk.open("wb") as f:
            f.truncate(size)
    target, initiator = f"{IQN_BASE}:{host}", f"iqn.2010-04.org.ipxe:{host}"
    return Export(
        host=host,
        target=target,
        device=str(disk),
        initiator=initiator,
        chap=new_chap(initiator, target, mutual) if chap or mutual else None,
    )


def creds(e: Export, secret: str | None = None, target_secret: str | None = None) -> dict[str, str]:
    """libiscsi's CHAP variables for e (a wrong secret or target secret if given)."""
    assert e.chap is not None
    found = {
        "LIBISCSI_CHAP_USERNAME": e.chap.user,
        "LIBISCSI_CHAP_PASSWORD": secret or e.chap.secret,
    }
    if e.chap.mutual_user and e.chap.mutual_secret:
        found |= {
            "LIBISCSI_CHAP_TARGET_USERNAME": e.chap.mutual_user,
            "LIBISCSI_CHAP_TARGET_PASSWORD": target_secret or e.chap.mutual_secret,
        }
    return found


def env_with(chap: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("LIBISCSI_")} | chap


def login(
    portal: str, e: Export, lun: int, initiator: str | None = None, **chap: str
) -> subprocess.CompletedProcess[str]:
    """An iSCSI login and INQUIRY as initiator (e's own by default)."""
    return subprocess.run(
        ["iscsi-inq", "-i", initiator or e.initiator, f"iscsi://{portal}/{e.target}/{lun}"],
        capture_output=True,
        text=True,
        env=env_with(chap),
        timeout=60,
    )


@contextmanager
def held_session(
    engine: TargetEngine, url: str, e: Export, env: dict[str, str] | None = None
) -> Iterator[None]:
    """An iscsi-perf session on url as e's initiator, held open until the
    engine reports it (at most 30 s), and ended afterwards."""
    perf = subprocess.Popen(
        ["iscsi-perf", "-i", e.initiator, url],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    try:
        deadline = time.monotonic() + 30
        while not engine.sessions([e.target]) and time.monotonic() < deadline:
            time.sleep(0.2)
        yield
    finally:
        perf.terminate()
        perf.wait(timeout=30)
