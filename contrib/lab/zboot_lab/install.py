"""Everything the lab needs on this machine: Debian packages, the ZFS module
built for the guest kernel, and the lab's own virtualenv. Each part is checked
first and only done when missing, so a second run costs seconds."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from .layout import Layout
from .procs import LabError, output, run
from .progress import step

SOURCES_FILE = Path("/etc/apt/sources.list.d/zboot-lab.sources")
# Debian ships OpenZFS in `contrib`; the 2.3 series comes from backports. The
# image's own sources already have `main` for bookworm and bookworm-updates.
SOURCES = """\
# Written by zboot's lab (contrib/lab/lab): OpenZFS lives in contrib and backports.
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: contrib
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main contrib
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
"""

# The guest kernel and what builds modules for it come first: zfs-dkms builds
# zfs.ko for every kernel whose headers are installed.
KERNEL_PACKAGES = ["linux-image-amd64", "linux-headers-amd64", "dkms"]
MAIN_PACKAGES = [
    "qemu-system-x86",
    "qemu-utils",
    "libnbd-bin",
    "ipxe-qemu",
    "ovmf",  # VMs, iPXE, UEFI
    "qemu-block-extra",  # qemu-img over libiscsi
    "targetcli-fb",
    "python3-rtslib-fb",
    "tgt",
    "istgt",  # iSCSI targets
    "libiscsi-bin",  # iSCSI test client
    "inotify-tools",  # tests count config saves
    "isc-dhcp-server",
    "dnsmasq-base",
    "kea-dhcp4-server",  # check generated DHCP configs
    "openssh-server",
    "openssh-client",
    "udev",
    "kmod",
    "iproute2",
    "busybox-static",
    "python3-venv",
    "nasm",
    "gdisk",
    "dosfstools",
    "mtools",
    "grub-efi-amd64-bin",
    "grub-common",
    # the golden Linux image and the boot LAN (issue 17): the OS's own
    # initiator, its boot loaders, iPXE's first stages, DHCP and TFTP
    "open-iscsi",
    "syslinux",
    "syslinux-common",
    "pxelinux",
    "ipxe",
    "e2fsprogs",
    "cpio",
    "isolinux",
    "xorriso",  # the installer CD
]
BACKPORTS_PACKAGES = ["zfs-dkms", "zfsutils-linux", "python3-pyzfs"]
ALL_PACKAGES = KERNEL_PACKAGES + MAIN_PACKAGES + BACKPORTS_PACKAGES

VIRTME_NG = "virtme-ng==1.42"
SYSTEM_PYTHON = "/usr/bin/python3"


def missing_packages(names: list[str]) -> list[str]:
    result = subprocess.run(
        ["dpkg-query", "-W", "-f", "${Package} ${db:Status-Status}\n", *names],
        capture_output=True,
        text=True,
    )
    installed = {
        line.split()[0] for line in result.stdout.splitlines() if line.endswith(" installed")
    }
    return [n for n in names if n not in installed]


def apt_install(packages: list[str], log: Path, *, release: str | None = None) -> None:
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    argv = ["apt-get", "install", "-y", "-q", "-o", "Dpkg::Options::=--force-confold"]
    if release:
        argv += ["-t", release]
    run([*argv, *packages], env=env, log=log)


def guest_kernel() -> str:
    """The version of the kernel that linux-image-amd64 points to (never hard-coded)."""
    depends = output(["dpkg-query", "-W", "-f", "${Depends}", "linux-image-amd64"])
    for dep in depends.split(","):
        name = dep.strip().split()[0]
        if name.startswith("linux-image-"):
            return name.removeprefix("linux-image-")
    raise LabError(f"cannot tell the kernel version from linux-image-amd64: {depends!r}")


def zfs_module_built(kernel: str) -> bool:
    return subprocess.run(["modinfo", "-k", kernel, "zfs"], capture_output=True).returncode == 0


def install_packages(layout: Layout) -> None:
    log = layout.state / "install.log"
    missing = missing_packages(ALL_PACKAGES)
    if missing:
        with step(f"installing {len(missing)} Debian packages (log: {log})"):
            if not SOURCES_FILE.exists() or SOURCES_FILE.read_text() != SOURCES:
                SOURCES_FILE.write_text(SOURCES)
            run(["apt-get", "update", "-q"], log=log)
            if kernel_packages := missing_packages(KERNEL_PACKAGES):
                apt_install(kernel_packages, log)
            if main := missing_packages(MAIN_PACKAGES):
                apt_install(main, log)
            if backports := missing_packages(BACKPORTS_PACKAGES):
                apt_install(backports, log, release="bookworm-backports")
    kernel = guest_kernel()
    if not zfs_module_built(kernel):
        with step(f"building the ZFS module for {kernel} (a few minutes)"):
            run(["dkms", "autoinstall", "-k", kernel], log=log)
            if not zfs_module_built(kernel):
                raise LabError(f"dkms ran but zfs.ko for {kernel} is missing; see {log}")


def install_virtme(layout: Layout) -> None:
    """The lab's own virtualenv with virtme-ng, which boots the storage VM."""
    stamp = layout.venv / ".zboot-lab-installed"
    if stamp.exists() and stamp.read_text() == VIRTME_NG:
        return
    with step(f"installing {VIRTME_NG} into {layout.venv}"):
        run([SYSTEM_PYTHON, "-m", "venv", str(layout.venv)])
        run([str(layout.venv / "bin" / "pip"), "install", "-q", VIRTME_NG])
        stamp.write_text(VIRTME_NG)


def install_all(layout: Layout) -> None:
    layout.state.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        raise LabError("the lab installs packages and starts VMs: run it as root")
    install_packages(layout)
    install_virtme(layout)
