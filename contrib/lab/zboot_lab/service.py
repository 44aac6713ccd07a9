"""`zboot serve` in the storage VM, run the way a site runs it on its storage
server: this checkout's zboot with `--server local`, as root, answering on
the boot LAN. The lab starts it in the background with its PID recorded in
the guest, stops it by that PID, and the tests read its log (one line per
request)."""

from __future__ import annotations

import shlex
import time
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from . import layout as L
from . import vm
from .layout import REPO_ROOT, Layout
from .procs import LabError
from .remote import ssh, ssh_text

RUN = "/run/zboot-lab-serve"  # in the storage VM
PORT = 8080
URL = f"http://{L.LAN_SERVER}:{PORT}/"
PYTHON = REPO_ROOT / ".venv" / "bin" / "python"  # the guest sees this checkout read-only


def client_config(text: str) -> str:
    """A test's config (zboot on this machine, over SSH) pointed at the
    service: its boot URL, and no script files written."""
    tables = tomllib.loads(text)
    tables.setdefault("boot", {}).update({"url": URL, "scripts": "service"})
    return render(tables)


def server_config(text: str, **serve: Any) -> str:
    """The same root as the service sees it, on the server itself."""
    tables = tomllib.loads(client_config(text))
    tables.pop("server", None)
    tables["serve"] = {"listen": "0.0.0.0", "port": PORT} | serve  # noqa: S104 (the VM's LAN)
    return render(tables)


def render(tables: dict[str, dict[str, Any]]) -> str:
    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        return str(v) if isinstance(v, int) else '"' + str(v).replace('"', '\\"') + '"'

    return "".join(
        f"[{name}]\n" + "".join(f"{k} = {value(v)}\n" for k, v in keys.items())
        for name, keys in tables.items()
    )


def start(layout: Layout, config: Path, **serve: Any) -> None:
    """Start the service for config's root (any the lab ran before is stopped)."""
    stop(layout)
    # The guest sees this checkout through 9p, which caches what it read:
    # without this, a warm VM can run the zboot of an earlier edit.
    vm.forget_cached_files(layout)
    ssh(layout, ["mkdir", "-p", RUN])
    ssh(
        layout,
        ["sh", "-c", 'cat > "$1"', "sh", f"{RUN}/zboot.toml"],
        stdin=server_config(config.read_text(), **serve).encode(),
    )
    argv = [str(PYTHON), "-m", "zboot", "--config", f"{RUN}/zboot.toml", "serve"]
    command = (
        f"cd {shlex.quote(str(REPO_ROOT))} && nohup {shlex.join(argv)} </dev/null "
        f">{RUN}/serve.log 2>&1 & echo $! >{RUN}/serve.pid"
    )
    ssh(layout, ["sh", "-c", command])
    # Its first start after a cache drop reads Python and zboot over 9p:
    # on a slow day of the emulated VM, over 30 s.
    deadline = time.monotonic() + 180
    while "listening on" not in (said := log(layout)):
        if time.monotonic() > deadline or "Traceback" in said:
            raise LabError(f"zboot serve did not start:\n{said}")
        time.sleep(0.5)


def stop(layout: Layout) -> None:
    script = '[ -e "$1" ] && kill "$(cat "$1")" 2>/dev/null; rm -f "$1"; true'
    ssh(layout, ["sh", "-c", script, "sh", f"{RUN}/serve.pid"])


def log(layout: Layout) -> str:
    return ssh_text(layout, ["sh", "-c", f"cat {RUN}/serve.log 2>/dev/null; true"])


@contextmanager
def serving(layout: Layout, config: Path, **serve: Any) -> Iterator[None]:
    start(layout, config, **serve)
    try:
        yield
    finally:
        stop(layout)
