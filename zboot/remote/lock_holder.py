"""The program that holds the server's lock (see remote.lock); it runs on the
server as root: `python3 -I -c <this source> BASE OWNER WAIT SILENCE`.

1. Makes BASE/zboot, a directory only root may use (refused if it is a link,
   not root's, or open to others), and opens `lock` in it without following
   links.
2. Takes the lock (fcntl), saying once `zboot-lock-busy <holder>` if another
   zboot has it, giving up with TIMED_OUT after WAIT seconds, and steps
   the lock's generation to odd (held); letting go steps it to even.
3. Ends what an earlier holder that died without cleaning up left running
   (its lease directory), then makes its own lease directory: each command
   the zboot runs while it holds the lock registers there (its pid) for as
   long as it runs.
4. Prints `zboot-lease <dir>` and `zboot-locked`, then reads stdin: zboot
   sends a line every few seconds. End-of-file (zboot let go, was killed,
   its connection closed), SILENCE seconds without a line (its laptop
   vanished, it was stopped), SIGTERM (`zboot unlock`) or SIGHUP all end the
   lease the same way: the lease directory is renamed (no new command can
   register), every registered command's process group is ended (TERM, then
   KILL after a grace), and only then does the lock go, with this process.

Where zboot's session agent runs (remote.session_agent), it holds the lock
itself with take() and let_go() below, shipped to it as this text: no
process and no SSH channel of their own, and the same steps."""

import fcntl
import os
import select
import signal
import stat
import sys
import time
from collections.abc import Callable

BUSY = "zboot-lock-busy"
LEASE = "zboot-lease"
LOCKED = "zboot-locked"
GENERATION = "generation"
TIMED_OUT = 75  # EX_TEMPFAIL
UNSAFE = 77  # EX_NOPERM: the lock directory is not root's alone
GRACE = 5.0  # seconds a command gets between TERM and KILL


def private_directory(path: str) -> str:
    """path as a directory only this user may use; SystemExit(UNSAFE) if it
    is anything else (a link, someone else's, open to others)."""
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    info = os.lstat(path)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & 0o077:
        print(f"{path} is not a directory only uid {os.geteuid()} may use", file=sys.stderr)
        raise SystemExit(UNSAFE)
    return path


def lock(fd: int, wait: float, busy: Callable[[str], None]) -> None:
    """Take the lock on fd, waiting up to wait seconds; busy(holder) once
    if another zboot has it."""
    deadline = time.monotonic() + wait
    said = False
    while True:
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except OSError:
            if not said:
                busy(os.pread(fd, 4096, 0).decode(errors="replace").strip())
                said = True
            if time.monotonic() >= deadline:
                raise SystemExit(TIMED_OUT) from None
            time.sleep(0.2)


def process_groups(pids: list[int]) -> set[int]:
    """The process groups of those pids still alive (never this one's)."""
    mine = os.getpgid(0)
    groups = set()
    for pid in pids:
        try:
            group = os.getpgid(pid)
        except OSError:
            continue
        groups.add(group if group != mine else -pid)  # -pid: that process alone
    return groups


def signal_all(groups: set[int], number: int) -> None:
    for group in groups:
        try:
            if group < 0:
                os.kill(-group, number)
            else:
                os.killpg(group, number)
        except OSError:
            pass


def end_lease(lease: str) -> None:
    """No command may register any more; end those that did and still run."""
    ending = f"{lease}.ending"
    try:
        os.rename(lease, ending)
    except FileNotFoundError:
        if not os.path.isdir(ending):
            return
    pids = [int(name) for name in os.listdir(ending) if name.isdigit()]
    groups = process_groups(pids)
    signal_all(groups, signal.SIGTERM)
    deadline = time.monotonic() + GRACE
    while groups and time.monotonic() < deadline:
        time.sleep(0.1)
        groups = process_groups(pids)
    signal_all(groups, signal.SIGKILL)
    for name in os.listdir(ending):
        try:
            os.unlink(os.path.join(ending, name))
        except OSError:
            pass
    try:
        os.rmdir(ending)
    except OSError:
        pass


def wait_for_end(silence: float) -> None:
    """Until stdin ends or stays silent for silence seconds."""
    while True:
        ready, _, _ = select.select([0], [], [], silence)
        if not ready or not os.read(0, 4096):
            return


def stop(number: int, frame: object) -> None:
    raise SystemExit(0)


def take(base: str, owner: str, wait: float, busy: Callable[[str], None]) -> tuple[int, str, int]:
    """Steps 1 to 3: the lock taken for owner, stale leases ended, and this
    process's lease made: (the lock file's fd, the lease directory, the
    lock's generation before this holder took it)."""
    base = base or ("/run" if os.path.isdir("/run") else "/var/run")
    directory = private_directory(os.path.join(base, "zboot"))
    fd = os.open(os.path.join(directory, "lock"), os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    lock(fd, wait, busy)
    before = step_generation(directory, held=True)
    for name in os.listdir(directory):  # a holder that died without ending its lease
        if name.startswith("lease."):
            end_lease(os.path.join(directory, name.removesuffix(".ending")))
    lease = os.path.join(directory, f"lease.{os.getpid()}")
    os.mkdir(lease, 0o700)
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{owner} [holder pid {os.getpid()}]\n".encode(), 0)
    return fd, lease, before


def let_go(fd: int, lease: str) -> None:
    """The lease ended (its commands with it), the generation stepped to
    free, then the holder's name cleared; the lock itself goes with this
    process (or its fd)."""
    end_lease(lease)
    step_generation(os.path.dirname(lease), held=False)
    os.ftruncate(fd, 0)


def step_generation(directory: str, held: bool) -> int:
    """The lock's generation, a count in the file GENERATION that every
    holder steps as it takes the lock (to odd) and as it lets go (to even):
    reads made before the lock stand only if it was even then and is the
    same when the lock is taken (see remote.lock, early reads). What it was
    before; -1 if it was not a count."""
    path = os.path.join(directory, GENERATION)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        text = os.pread(fd, 64, 0).decode(errors="replace").strip()
        before = int(text) if text.isdigit() else -1
        after = before + 1 if (before + 1) % 2 == held else before + 2
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(after).encode(), 0)
    finally:
        os.close(fd)
    return before


def main(base: str, owner: str, wait: float, silence: float) -> None:
    fd, lease, _ = take(base, owner, wait, lambda holder: print(BUSY, holder, flush=True))
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGHUP, stop)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    try:
        print(LEASE, lease, flush=True)
        print(LOCKED, flush=True)
        wait_for_end(silence)
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        let_go(fd, lease)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4]))
