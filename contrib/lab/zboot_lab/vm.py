"""The storage VM: Debian's kernel booted by virtme-ng over the host's own root
(read-only 9p), with the pool on a sparse disk file and every port forwarded to
127.0.0.1."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path

from . import layout as L
from .costs import timed
from .install import guest_kernel
from .keys import (
    control_argv,
    control_path,
    ensure_keys,
    master_argv,
    master_pidfile,
    ssh_argv,
)
from .layout import Layout
from .procs import LabError, alive, processes_mentioning, read_pid, stop
from .progress import say, step

READY_MARKER = "ZBOOT-LAB-READY"
POOL_DISK_SIZE = 64 * 1024**3  # sparse: only what is written takes space
VM_MEMORY = "3G"
VM_CPUS = "2"


def running_pid(layout: Layout) -> int | None:
    pid = read_pid(layout.vm_pid)
    return pid if pid is not None and alive(pid) else None


def ephemeral_range() -> tuple[int, int]:
    """The local ports Linux picks from for outgoing connections."""
    low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
    return int(low), int(high)


def port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def prepare_files(layout: Layout) -> None:
    """Disk, keys, and the guest's script and settings (read by it over 9p)."""
    ensure_keys(layout)
    layout.pool_disk.parent.mkdir(parents=True, exist_ok=True)
    if not layout.pool_disk.exists():
        with layout.pool_disk.open("wb") as disk:
            disk.truncate(POOL_DISK_SIZE)
    run_dir = layout.run
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "qemu.pid").unlink(missing_ok=True)
    shutil.copyfile(L.LAB_SRC / "guest" / layout.guest_script, run_dir / "storage-init.sh")
    shutil.copyfile(L.LAB_SRC / "guest" / "guest-common.sh", run_dir / "guest-common.sh")
    shutil.copyfile(layout.host_key, run_dir / "ssh_host_ed25519_key")
    (run_dir / "ssh_host_ed25519_key").chmod(0o600)
    shutil.copyfile(layout.client_key.with_suffix(".pub"), run_dir / "authorized_keys")
    (run_dir / "guest.env").write_text(
        f"LAB_POOL={L.POOL}\n"
        f"LAB_DISK_NAME={L.DISK_NAME}\n"
        f"LAB_BOOT_DIR={L.BOOT_DIR}\n"
        f"LAB_HTTP_PORT={L.GUEST_HTTP_PORT}\n"
        f"LAB_TGT_PORT={L.GUEST_TGT_PORT}\n"
        f"LAB_REPO={L.REPO_ROOT}\n"
        f"LAB_LAN_SERVER={L.LAN_SERVER}/{L.LAN_PREFIX}\n"
        f"LAB_LAN_SERVER6={L.LAN_SERVER6}\n"
        f"LAB_LAN_MAC_PREFIX={L.LAN_MAC_PREFIX}\n"
        f"LAB_TFTP_DIR={L.LAN_TFTP_DIR}\n"
    )


USR_TAG = "labusr"
REPO_TAG = "labrepo"


def vm_argv(layout: Layout, kernel: str) -> list[str]:
    forwards = ",".join(
        f"hostfwd=tcp:127.0.0.1:{host}-:{guest}" for host, guest in layout.forwards().items()
    )
    return [
        str(layout.venv / "bin" / "virtme-run"),
        "--kimg",
        f"/boot/vmlinuz-{kernel}",
        "--mods",
        "auto",  # the kernel's modules (and zfs.ko) from the shared root
        "--force-9p",
        "--disable-kvm",  # Debian's kernel hangs under KVM here; TCG works
        "--memory",
        VM_MEMORY,
        "--cpus",
        VM_CPUS,
        "--disk",
        f"{L.DISK_NAME}={layout.pool_disk}",
        "--overlay-rwdir",
        "/etc",
        "--overlay-rwdir",
        "/var",
        # Writable, as on any server (libnbd makes its sockets under /tmp), and
        # still showing the host's /tmp, where a checkout may live.
        "--overlay-rwdir",
        "/tmp",  # noqa: S108 (the guest's /tmp, not a temp file)
        "--script-sh",
        f"bash {layout.run / 'storage-init.sh'}",
        "--qemu-opts",
        "-pidfile",
        str(layout.run / "qemu.pid"),
        "-netdev",
        f"user,id=lab0,{forwards}",
        "-device",
        "virtio-net-pci,netdev=lab0",
        *lan_links(layout),
        # The host's /usr once more, for storage-init.sh to mount with the
        # guest's page cache on (the root's 9p mount has none): every program
        # and library the guest runs comes from /usr, read again over 9p at
        # each start otherwise.
        "-fsdev",
        f"local,id={USR_TAG},path=/usr,security_model=none,readonly=on",
        "-device",
        f"virtio-9p-pci,fsdev={USR_TAG},mount_tag={USR_TAG}",
        # The checkout (with its .venv) the same way: tests run zboot and the
        # contract suite inside the guest, and Python looks up hundreds of
        # files per start. `lab up` drops the guest's caches when it reuses a
        # running VM, so each test session sees the checkout as it is.
        "-fsdev",
        f"local,id={REPO_TAG},path={L.REPO_ROOT},security_model=none,readonly=on",
        "-device",
        f"virtio-9p-pci,fsdev={REPO_TAG},mount_tag={REPO_TAG}",
    ]


def lan_links(layout: Layout) -> list[str]:
    """The storage VM's boot-LAN NICs: each waits on a 127.0.0.1 port for one
    client's QEMU to connect (and again after it goes)."""
    argv: list[str] = []
    for link in range(L.LAN_LINKS):
        argv += [
            "-netdev",
            f"socket,id=lan{link},listen=127.0.0.1:{layout.lan_port(link)}",
            "-device",
            f"virtio-net-pci,netdev=lan{link},mac={L.LAN_MAC_PREFIX}{link:02x}",
        ]
    return argv


def wait_for_qemu(layout: Layout, launcher: subprocess.Popen[bytes]) -> int:
    """virtme-run starts QEMU and lets it run on; QEMU's own pidfile names the VM."""
    pidfile = layout.run / "qemu.pid"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        pid = read_pid(pidfile)
        if pid is not None and alive(pid):
            layout.vm_pid.write_text(f"{pid}\n")
            return pid
        if launcher.poll() is not None and launcher.returncode != 0:
            break
        time.sleep(0.2)
    raise LabError(
        "QEMU did not start; see " + str(layout.console_log) + ":\n" + tail(layout.console_log)
    )


def ssh_ok(layout: Layout) -> bool:
    result = subprocess.run(
        [*ssh_argv(layout), "true"], capture_output=True, stdin=subprocess.DEVNULL, timeout=120
    )
    return result.returncode == 0


def master_pid(layout: Layout) -> int | None:
    """The PID of the lab's shared SSH connection, if it runs."""
    check = subprocess.run(
        control_argv(layout, "check"),
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=30,
    )
    found = re.search(r"pid=(\d+)", check.stderr)
    return int(found.group(1)) if check.returncode == 0 and found else None


def ensure_master(layout: Layout) -> None:
    """One SSH connection that the lab's own commands and the tests' ssh calls
    share (each session on it skips a login, 1.8 s or more under emulation).
    zboot itself never uses it: it makes its own connection, as for a user."""
    pid = master_pid(layout)
    if pid is None:
        stop_master(layout)  # a socket left by a master that died with an old VM
        subprocess.run(
            master_argv(layout),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=120,
            check=False,
        )
        pid = master_pid(layout)
    if pid is None:
        say("no shared SSH connection to the storage VM; every command logs in on its own")
        return
    master_pidfile(layout).write_text(f"{pid}\n")


def stop_master(layout: Layout) -> None:
    """Stop the shared connection by its recorded PID, and only if that PID
    is still our ssh (a stale file may name someone else's process)."""
    pidfile = master_pidfile(layout)
    pid = read_pid(pidfile)
    if pid is not None and alive(pid) and pid in processes_mentioning(str(control_path(layout))):
        subprocess.run(
            control_argv(layout, "exit"),
            capture_output=True,
            stdin=subprocess.DEVNULL,
            timeout=30,
            check=False,
        )
        stop(pid)
    pidfile.unlink(missing_ok=True)
    control_path(layout).unlink(missing_ok=True)


# What the guest reads over 9p and a change to which it must see: the
# checkout (not its caches or build output) and, through /usr, the packages.
NOT_READ = {".git", ".venv", "__pycache__", ".mypy_cache", ".ruff_cache", ".pytest_cache"}
NOT_READ |= {".hypothesis", "build", "dist"}
CHANGED_WITH = [L.REPO_ROOT / ".venv" / ".zboot-installed", Path("/var/lib/dpkg/status")]


def checkout_fingerprint() -> str:
    """Every file of the checkout the guest may read, by path, size and
    modification time, and the stamps of .venv's install and of the
    packages in /usr: equal fingerprints, nothing the guest cached changed."""
    digest = hashlib.sha256()
    for top, dirs, files in os.walk(L.REPO_ROOT):
        dirs[:] = sorted(d for d in dirs if d not in NOT_READ and not d.endswith(".egg-info"))
        for name in sorted(files):
            path = os.path.join(top, name)
            with contextlib.suppress(OSError):
                info = os.stat(path)
                digest.update(f"{path}\0{info.st_size}\0{info.st_mtime_ns}\n".encode())
    for stamp in CHANGED_WITH:
        with contextlib.suppress(OSError):
            digest.update(f"{stamp}\0{stamp.stat().st_mtime_ns}\n".encode())
    return digest.hexdigest()


def cache_mark(layout: Layout) -> Path:
    return layout.run / "guest-cache.fingerprint"


def forget_cached_files(layout: Layout) -> None:
    """The guest caches the checkout and /usr it reads over 9p without asking
    the host again: drop those caches when files changed since the guest
    booted or last dropped them, so it sees them as they are. (Dropping
    them when nothing changed only makes the next commands read it all
    again over 9p, seconds each under emulation.)"""
    now = checkout_fingerprint()
    mark = cache_mark(layout)
    if mark.exists() and mark.read_text() == now:
        return
    subprocess.run(
        [*ssh_argv(layout), "sync; echo 3 > /proc/sys/vm/drop_caches"],
        capture_output=True,
        stdin=subprocess.DEVNULL,
        timeout=120,
    )
    mark.write_text(now)


def wait_for_ssh(layout: Layout, timeout: float = 180.0) -> bool:
    """Log in until it works: under a slow host the forwarded port can reset
    connections for a while after the guest says sshd is up."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if ssh_ok(layout):
                return True
        except subprocess.TimeoutExpired:
            pass
        if time.monotonic() > deadline:
            return False
        time.sleep(2)


def wait_ready(layout: Layout, pid: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive(pid):
            raise LabError(
                f"the storage VM exited during start-up; see {layout.console_log}:\n"
                + tail(layout.console_log)
            )
        text = layout.console_log.read_text(errors="replace")
        if "zboot-lab: ERROR" in text:
            stop(pid)
            raise LabError("the storage VM failed to start:\n" + tail(layout.console_log))
        if READY_MARKER in text:
            return
        time.sleep(0.5)
    raise LabError(f"the storage VM was not ready after {timeout:.0f}s; see {layout.console_log}")


def tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def start(layout: Layout, *, timeout: float = 600) -> None:
    """Boot the storage VM and wait until sshd answers; reuse one that runs."""
    pid = running_pid(layout)
    if pid is not None:
        say(f"the storage VM is already running (pid {pid})")
        with step("checking SSH into the running storage VM"):
            if not wait_for_ssh(layout):
                raise LabError("the storage VM runs but SSH does not answer; try `lab down`")
            ensure_master(layout)
            forget_cached_files(layout)
        return
    low, high = ephemeral_range()
    ephemeral = [p for p in layout.host_ports() if low <= p <= high]
    if ephemeral:
        raise LabError(
            f"ports {ephemeral} are in this machine's ephemeral range {low}-{high} "
            "(net.ipv4.ip_local_port_range): a client connection could hold one; "
            "set ZBOOT_LAB_PORT_BASE so that base..base+3264 lie outside it"
        )
    ports = [*layout.forwards(), *(layout.lan_port(n) for n in range(L.LAN_LINKS))]
    busy = [p for p in ports if not port_free(p)]
    if busy:
        raise LabError(f"ports {busy} on 127.0.0.1 are taken; set ZBOOT_LAB_PORT_BASE")
    with timed("storage VM boot (to SSH ready)"):
        _boot(layout, timeout)


def _boot(layout: Layout, timeout: float) -> None:
    stop_master(layout)  # one left from a VM that is gone
    prepare_files(layout)
    cache_mark(layout).unlink(missing_ok=True)
    seen = checkout_fingerprint()  # what the new guest will read
    with step("booting the storage VM (ZFS, LIO, tgtd, sshd, HTTP)"):
        with layout.console_log.open("w") as console:
            proc = subprocess.Popen(
                vm_argv(layout, guest_kernel()),
                stdin=subprocess.DEVNULL,
                stdout=console,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        (layout.run / "launcher.pid").write_text(f"{proc.pid}\n")
        pid = wait_for_qemu(layout, proc)
        wait_ready(layout, pid, timeout)
    with step("first SSH login to the storage VM"):
        if not wait_for_ssh(layout):
            raise LabError("sshd in the storage VM does not accept the lab key")
        ensure_master(layout)
    cache_mark(layout).write_text(seen)


def flush_disks(layout: Layout) -> None:
    """What a clean shutdown does before power-off: write out what ZFS still
    holds in memory (the last few seconds of changes), so stopping the VM
    loses nothing. A VM that does not answer is stopped all the same."""
    try:
        subprocess.run(
            [*ssh_argv(layout), "sync; zpool sync"],
            capture_output=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        say("the storage VM did not flush its disks in 60 s; stopping it anyway")


def shutdown(layout: Layout) -> bool:
    """Stop, by their recorded PIDs, the VM, its launcher and any client left
    behind by an interrupted `lab client`. Returns False when no VM ran."""
    pid = running_pid(layout)
    if pid is not None:
        flush_disks(layout)
    stop_master(layout)
    if pid is not None:
        with step(f"stopping the storage VM (pid {pid})"), timed("storage VM stop"):
            stop(pid)
    launcher = read_pid(layout.run / "launcher.pid")
    if launcher is not None and alive(launcher):
        stop(launcher)
    for pidfile in layout.clients.glob("*.pid") if layout.clients.exists() else []:
        client_pid = read_pid(pidfile)
        if client_pid is not None and alive(client_pid):
            with step(f"stopping a left-over client (pid {client_pid})"):
                stop(client_pid)
        pidfile.unlink(missing_ok=True)
    for path in (layout.vm_pid, layout.run / "launcher.pid", layout.run / "qemu.pid"):
        path.unlink(missing_ok=True)
    survivors = processes_mentioning(str(layout.state))
    if survivors:
        raise LabError(
            f"processes still use {layout.state}: {survivors} (not started by "
            "this lab run, or not stoppable); left alone"
        )
    return pid is not None
