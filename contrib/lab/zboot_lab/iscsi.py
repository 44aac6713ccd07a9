"""iSCSI from the host side, through libiscsi: an inquiry (iscsi-inq) and a
whole-LUN read (qemu-img's libiscsi driver), each a real login with a chosen
initiator name."""

from __future__ import annotations

import subprocess
from pathlib import Path

from .costs import timed
from .procs import LabError


def wrong(secret: str) -> str:
    """The secret with its first character changed: a wrong one for certain
    (replacing it with a fixed letter is no change when it began with that
    letter, about one run in 60)."""
    return ("y" if secret[0] == "x" else "x") + secret[1:]


def inquiry(portal: str, iqn: str, lun: int, initiator: str) -> subprocess.CompletedProcess[str]:
    """Log in as initiator and send INQUIRY; the caller reads returncode and output."""
    with timed("iSCSI login from the host"):
        return subprocess.run(
            ["iscsi-inq", "-i", initiator, f"iscsi://{portal}/{iqn}/{lun}"],
            capture_output=True,
            text=True,
            timeout=120,
        )


def read_lun(portal: str, iqn: str, lun: int, initiator: str, out: Path) -> None:
    """Copy the whole LUN to out, logged in as initiator."""
    host, port = portal.rsplit(":", 1)
    opts = (
        f"driver=iscsi,transport=tcp,portal={host}:{port},target={iqn},lun={lun},"
        f"initiator-name={initiator}"
    )
    with timed("iSCSI login from the host"):
        result = subprocess.run(
            ["qemu-img", "convert", "-O", "raw", "--image-opts", opts, str(out)],
            capture_output=True,
            text=True,
            timeout=600,
        )
    if result.returncode != 0:
        raise LabError(f"reading {iqn} LUN {lun} as {initiator} failed: {result.stderr.strip()}")
