"""docs/server-setup.md, run from its own code blocks: a bare Debian server
(a second VM with none of the lab's zboot set-up) is prepared by the page's
steps, zboot is installed from its wheel by pipx into an empty home, and a
diskless client boots from the host it provisions, through the page's DHCP,
TFTP, nginx and LIO. How each block is run is in the page's last section."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from doc_commands import code_blocks
from zboot_lab import client, vm
from zboot_lab.devenv import BackgroundBoot
from zboot_lab.golden import write_golden
from zboot_lab.keys import ssh_argv
from zboot_lab.layout import Layout

REPO = Path(__file__).resolve().parents[2]
PAGE = REPO / "docs" / "server-setup.md"
MAC = "52:54:00:12:34:56"  # the page's first machine
# Where each block runs, by its first line (the page's "How this page is tested").
PLACES = {
    "# server, as root: packages": "packages",
    "# server, as root": "server",
    "# your computer": "computer",
}
SKIP = "# not run by the test: "
# The page's example names, as the lab has them (listed in the page too).
SERVER_NAMES = {
    "/dev/disk/by-id/ata-EXAMPLE-DISK": "/dev/disk/by-id/scsi-0virtme_disk_pool",
    "interface=eno2": "interface=lan0",
}
# No systemd in the VM: each unit is its package's /etc/init.d script.
SYSTEMCTL = """\
systemctl() {
    local verb=$1 unit
    shift
    [ "$verb" = enable ] && [ "${1:-}" = --now ] && shift
    case "$verb" in enable | restart | reload | start) ;; *) return 1 ;; esac
    for unit; do "/etc/init.d/$unit" restart; done
}
"""


@dataclass(frozen=True)
class Block:
    place: str  # packages, server, computer or skip
    text: str


def page_blocks(text: str) -> list[Block]:
    """The page's sh blocks in order, each with where it runs."""
    blocks = []
    for body in (b.text for b in code_blocks(text) if b.language == "sh"):
        first = body.splitlines()[0] if body.strip() else ""
        if first.startswith(SKIP) and len(first) > len(SKIP) + 10:
            blocks.append(Block("skip", body))
            continue
        place = PLACES.get(first)
        if place is None:
            raise AssertionError(f"a block in {PAGE.name} does not say where it runs: {first!r}")
        blocks.append(Block(place, body))
    return blocks


def test_every_block_of_the_page_says_where_it_runs() -> None:
    blocks = page_blocks(PAGE.read_text())
    places = [b.place for b in blocks]
    assert {"packages", "server", "computer"} <= set(places)
    # The packages come before anything uses them; zboot is installed before it runs.
    assert places.index("packages") < places.index("server")
    for name in SERVER_NAMES:
        assert name in PAGE.read_text(), f"the page no longer uses the example {name!r}"


@pytest.fixture
def page_packages() -> None:
    """The page's package steps, on this machine, before the VM boots: the VM
    runs this machine's /usr, and its /etc and /var are overlays that show
    what was there when it booted."""
    for block in page_blocks(PAGE.read_text()):
        if block.place == "packages":
            run_packages(block)


@pytest.fixture
def bare_server(page_packages: None) -> Iterator[BackgroundBoot]:
    """The second VM, booting with a blank pool disk while the test gets the
    admin's computer ready (see booted), stopped at the end. It needs
    nothing of the lab's storage VM (which may run beside it)."""
    bare = Layout.from_env().bare_server()
    vm.shutdown(bare)  # one left by an interrupted run
    bare.pool_disk.unlink(missing_ok=True)
    boot = BackgroundBoot(bare)
    boot.start()
    try:
        yield boot
    finally:
        boot.join()  # a VM half-booted is stopped too, not left behind
        print(f"bare server console: {bare.console_log}", file=sys.stderr)
        vm.shutdown(bare)


def booted(boot: BackgroundBoot) -> Layout:
    """The bare server, once its VM is up."""
    boot.join()
    if boot.error is not None:
        raise AssertionError(f"the bare server did not boot: {boot.error}")
    return boot.layout


@dataclass(frozen=True)
class Computer:
    """The admin's computer: an empty home on this machine, with the SSH
    access to the server an admin has (root, by key) and nothing of zboot's."""

    home: Path
    work: Path
    env: dict[str, str]


def admin_computer(tmp_path: Path, bare: Layout) -> Computer:
    home, work = tmp_path / "home", tmp_path / "work"
    ssh_dir = home / ".ssh"
    ssh_dir.mkdir(parents=True, mode=0o700)
    work.mkdir(exist_ok=True)
    shutil.copyfile(bare.client_key, ssh_dir / "admin")
    (ssh_dir / "admin").chmod(0o600)
    host_pub = bare.host_key.with_suffix(".pub").read_text().split()
    (ssh_dir / "known_hosts").write_text(f"storage {host_pub[0]} {host_pub[1]}\n")
    # Absolute paths: OpenSSH takes ~ from the password database, not $HOME.
    (ssh_dir / "config").write_text(
        "Host storage\n"
        "    HostName 127.0.0.1\n"
        f"    Port {bare.ssh_port}\n"
        "    HostKeyAlias storage\n"
        f"    UserKnownHostsFile {ssh_dir / 'known_hosts'}\n"
        f"    IdentityFile {ssh_dir / 'admin'}\n"
        f"    IdentityFile {ssh_dir / 'zboot'}\n"
    )
    # ... and its config file from there too: ssh and scp are told where it is.
    wrappers = tmp_path / "wrappers"
    wrappers.mkdir()
    for tool in ("ssh", "scp"):
        (wrappers / tool).write_text(
            f'#!/bin/sh\nexec /usr/bin/{tool} -F "$HOME/.ssh/config" "$@"\n'
        )
        (wrappers / tool).chmod(0o755)
    keep = ("PATH", "LANG", "LC_ALL", "TERM")
    env = {k: v for k, v in os.environ.items() if k in keep}
    bin_dir = home / ".local" / "bin"
    env.update(
        HOME=str(home),
        PATH=":".join(
            [
                str(wrappers),
                str(bin_dir),
                str(tmp_path / "pipx" / "bin"),
                env.get("PATH", "/usr/bin:/bin"),
            ]
        ),
        PIPX_HOME=str(home / ".local" / "pipx"),
        PIPX_BIN_DIR=str(bin_dir),
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        PIP_CACHE_DIR="/root/.cache/pip",  # the machine's cache: wheels downloaded once
        NO_COLOR="1",
    )
    return Computer(home, work, env)


def wheel_and_pipx(tmp_path: Path, work: Path) -> None:
    """zboot's wheel in the computer's working directory, and pipx to install it."""
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(work), str(REPO)],
        check=True,
    )
    subprocess.run(["/usr/bin/python3", "-m", "venv", str(tmp_path / "pipx")], check=True)
    subprocess.run(
        [str(tmp_path / "pipx" / "bin" / "pip"), "install", "-q", "pipx"],
        check=True,
        env=dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1"),
    )


def run_packages(block: Block) -> None:
    """The page's apt line, on this machine: the VM runs its /usr."""
    lines = [ln for ln in block.text.splitlines() if ln and not ln.startswith("#")]
    assert lines and all(ln.startswith("apt install ") for ln in lines), lines
    for line in lines:
        packages = line.split()[2:]
        subprocess.run(
            # --no-upgrade: what the lab installed stays as it is (a newer
            # zfs-dkms would rebuild the module under the running lab)
            ["apt-get", "install", "-y", "-q", "--no-upgrade", *packages],
            check=True,
            env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"),
            stdout=subprocess.DEVNULL,
        )


def run_server(bare: Layout, block: Block) -> None:
    text = block.text
    for example, lab_name in SERVER_NAMES.items():
        text = text.replace(example, lab_name)
    script = "set -euo pipefail\n" + SYSTEMCTL + text
    result = subprocess.run(
        [*ssh_argv(bare), "bash", "-s"],
        input=script,
        text=True,
        capture_output=True,
        timeout=600,
    )
    assert result.returncode == 0, f"server block failed:\n{text}\n{result.stdout}{result.stderr}"


def run_computer(computer: Computer, block: Block) -> None:
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", block.text],
        cwd=computer.work,
        env=computer.env,
        text=True,
        capture_output=True,
        timeout=900,
    )
    assert result.returncode == 0, (
        f"computer block failed:\n{block.text}\n{result.stdout}{result.stderr}"
    )


@pytest.mark.e2e
def test_a_bare_server_set_up_from_the_page_boots_a_client(
    bare_server: BackgroundBoot, tmp_path: Path
) -> None:
    work = tmp_path / "work"  # the computer's, made ready while the server boots
    work.mkdir()
    wheel_and_pipx(tmp_path, work)
    write_golden("bios", work / "golden.img")
    bare = booted(bare_server)
    computer = admin_computer(tmp_path, bare)
    for block in page_blocks(PAGE.read_text()):
        if block.place == "server":
            run_server(bare, block)
        elif block.place == "computer":
            run_computer(computer, block)
    # zboot came from the wheel: no checkout on its path.
    installed = subprocess.run(
        ["zboot", "--version"], env=computer.env, capture_output=True, text=True, check=True
    )
    assert installed.stdout.strip().endswith(
        subprocess.run(
            [sys.executable, "-c", "import importlib.metadata as m; print(m.version('zboot'))"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    where = subprocess.run(
        [
            str(computer.home / ".local" / "pipx" / "venvs" / "zboot" / "bin" / "python"),
            "-c",
            "import zboot; print(zboot.__file__)",
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=computer.work,  # `python -c` looks in its working directory first
    )
    assert not where.stdout.startswith(str(REPO)), where.stdout

    result = client.boot(bare, MAC, "bios", timeout=300, lan=True)
    assert result.booted and result.counter == 1, (result.ipxe_errors, result.log)
