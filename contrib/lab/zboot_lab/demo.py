"""`lab demo`: the whole chain on the built-in lab. zboot imports a golden
Linux image, snapshots it and clones a host from it; the host's disk is
exported over iSCSI (LIO) to that host's initiator alone and gets a per-MAC
iPXE script; a diskless client boots it twice: iPXE attaches the disk, the
Linux kernel takes it over through the iBFT, mounts its root from it and
counts the boot there (1, 2); `zboot rollback` gives it back its provisioned
disk (the next boot counts 1 again). The client is on QEMU's user network
(its DHCP hands iPXE the script): the e2e tests use the boot LAN with real
DHCP servers instead, which takes more setting up than a demo needs."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from pathlib import Path

from . import client, exports, vm
from .config import write_config
from .devenv import ensure_venv
from .install import install_all
from .layout import IQN_BASE, ZBOOT_ROOT, Layout
from .linux_golden import write_linux_golden
from .procs import LabError
from .progress import say, step

IMAGE = "demo-golden"
HOST = "demo-pc"
MAC = "52:54:00:de:00:01"
ZVOL = f"{ZBOOT_ROOT}/hosts/{HOST}"
IQN = f"{IQN_BASE}:{HOST}"  # what zboot names the host's target


def zboot(python: Path, config: Path, *args: str, check: bool = True) -> str:
    """Run the real zboot CLI as a user would, printing the command and its output."""
    say("$ zboot " + shlex.join(args))
    result = subprocess.run(
        [str(python), "-m", "zboot", *args],
        capture_output=True,
        text=True,
        env=dict(os.environ, ZBOOT_CONFIG=str(config)),
    )
    for line in (result.stdout + result.stderr).splitlines():
        say("  " + line)
    if check and result.returncode != 0:
        raise LabError(f"zboot {' '.join(args)} failed (exit {result.returncode})")
    return result.stdout


def zboot_data(python: Path, config: Path, *args: str) -> dict[str, object]:
    """A read-only zboot query's JSON data, for the demo's own checks."""
    result = subprocess.run(
        [str(python), "-m", "zboot", "--json", *args],
        capture_output=True,
        text=True,
        env=dict(os.environ, ZBOOT_CONFIG=str(config)),
    )
    data = json.loads(result.stdout or "{}").get("data")
    return data if isinstance(data, dict) else {}


def boot(layout: Layout, attempt: str) -> int | None:
    with step(f"powering on the diskless client {MAC} ({attempt})"):
        result = client.boot(layout, MAC, "bios", timeout=180)
    say(
        f"client: booted={result.booted} counter={result.counter} "
        f"SAN={','.join(result.san_devices) or '-'} ({result.seconds}s; log {result.log})"
    )
    if result.linux:
        ibft = result.linux
        say(
            "client's Linux took its disk over through the iBFT: "
            f"initiator {ibft.get('initiator')}, target {ibft.get('target')} "
            f"at {ibft.get('portal')}, NIC {ibft.get('mac')}"
        )
    if not result.booted:
        raise LabError(f"the client did not boot its disk: {result.ipxe_errors}")
    return result.counter


def run_demo(layout: Layout) -> int:
    install_all(layout)
    python = ensure_venv()
    vm.start(layout)
    config = write_config(layout)
    image = layout.golden / "demo-linux.img"
    with step("cleaning up after an earlier demo"):
        exports.lio_unexport(layout, ZVOL, IQN)  # an export made by hand by older demos
        zboot(python, config, "destroy", HOST, "--yes", "--force", check=False)
        zboot(python, config, "image", "destroy", IMAGE, "--yes", check=False)
    with step("provisioning with zboot"):
        write_linux_golden(layout, image)
        zboot(python, config, "init")
        zboot(python, config, "image", "import", IMAGE, str(image))
        zboot(python, config, "image", "snapshot", IMAGE, "-m", "demo golden image")
        zboot(python, config, "clone", IMAGE, HOST, "--mac", MAC)
        shown = zboot_data(python, config, "export", "show", HOST)
        if shown.get("target") != IQN or not shown.get("exported"):
            raise LabError(f"zboot did not export {HOST} as {IQN}: {shown}")
        zboot(python, config, "list")
    counters = [boot(layout, "first boot"), boot(layout, "second boot")]
    with step("rolling the host back with zboot (it takes the export down and back up)"):
        zboot(python, config, "rollback", HOST)
    counters.append(boot(layout, "after rollback"))
    zboot(python, config, "show", HOST)
    say(
        f"boot counters: {counters} (want [1, 2, 1]). "
        "The lab is still up: `contrib/lab/lab down` stops it."
    )
    return 0 if counters == [1, 2, 1] else 1
