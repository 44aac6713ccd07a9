"""`zboot unlock` on the server (see remote.lock): `python3 -I -c <this
source> BASE PID`. Prints, as JSON, whether the lock is held and by whom;
with PID (the holder the admin agreed to end), sends that holder SIGTERM,
which ends its zboot's commands and lets the lock go, and waits until it
has. Never creates anything."""

import fcntl
import json
import os
import re
import signal
import sys
import time

WAIT = 20.0  # the holder's grace for its commands is 5 s


def state(path: str) -> dict[str, object]:
    try:
        fd = os.open(path, os.O_RDWR | os.O_NOFOLLOW)
    except FileNotFoundError:
        return {"held": False}
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        text = os.pread(fd, 4096, 0).decode(errors="replace").strip()
        found = re.search(r"\[holder pid (\d+)\]$", text)
        return {"held": True, "holder": text, "pid": int(found[1]) if found else None}
    finally:
        os.close(fd)
    return {"held": False}


def main(base: str, pid: str) -> None:
    base = base or ("/run" if os.path.isdir("/run") else "/var/run")
    path = os.path.join(base, "zboot", "lock")
    now = state(path)
    if pid and now.get("pid") == int(pid):
        os.kill(int(pid), signal.SIGTERM)
        deadline = time.monotonic() + WAIT
        while now["held"] and time.monotonic() < deadline:
            time.sleep(0.2)
            now = state(path)
        now["ended"] = int(pid)
    print(json.dumps(now))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
