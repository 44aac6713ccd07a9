"""The `lab` command line: the storage lab that zboot's tests, CI, benchmarks
and demo stand on."""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

from . import client, vm
from .config import env_vars, write_config
from .demo import run_demo
from .devenv import run_tests
from .golden import FIRMWARES, write_golden
from .install import install_all
from .keys import ssh_argv
from .layout import Layout
from .procs import LabError


def cmd_up(layout: Layout, args: argparse.Namespace) -> int:
    install_all(layout)
    vm.start(layout)
    write_config(layout)
    print(f'lab: up; `eval "$({sys.argv[0]} env)"` points zboot at it', file=sys.stderr)
    return 0


def cmd_down(layout: Layout, args: argparse.Namespace) -> int:
    if not vm.shutdown(layout):
        print("lab: the storage VM was not running", file=sys.stderr)
    return 0


def cmd_status(layout: Layout, args: argparse.Namespace) -> int:
    pid = vm.running_pid(layout)
    status = {
        "running": pid is not None,
        "pid": pid,
        "ssh": pid is not None and vm.ssh_ok(layout),
        "ports": {str(host): guest for host, guest in layout.forwards().items()},
        "state_dir": str(layout.state),
        "console_log": str(layout.console_log),
    }
    if args.json:
        print(json.dumps(status, indent=2))
    else:
        for key, value in status.items():
            print(f"{key}: {value}")
    return 0 if status["ssh"] else 3


def cmd_ssh(layout: Layout, args: argparse.Namespace) -> int:
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        raise LabError("usage: lab ssh -- COMMAND [ARG...]")
    # One argument is passed as the remote shell line; several are quoted.
    line = command[0] if len(command) == 1 else shlex.join(command)
    return subprocess.call([*ssh_argv(layout), line])


def cmd_env(layout: Layout, args: argparse.Namespace) -> int:
    write_config(layout)
    variables = env_vars(layout)
    if args.json:
        print(json.dumps(variables, indent=2))
    else:
        for name, value in variables.items():
            print(f"export {name}={shlex.quote(value)}")
    return 0


def cmd_client(layout: Layout, args: argparse.Namespace) -> int:
    result = client.boot(layout, args.mac, args.firmware, args.timeout)
    print(json.dumps(result.to_json(), indent=2))
    return 0 if result.booted else 1


def cmd_golden(layout: Layout, args: argparse.Namespace) -> int:
    write_golden(args.firmware, Path(args.out))
    print(f"lab: wrote the {args.firmware} golden image to {args.out}", file=sys.stderr)
    return 0


def cmd_test(layout: Layout, args: argparse.Namespace) -> int:
    started = time.monotonic()
    install_all(layout)
    return run_tests(layout, args.pytest_args, started, full=args.full)


def cmd_demo(layout: Layout, args: argparse.Namespace) -> int:
    return run_demo(layout)


def cmd_install(layout: Layout, args: argparse.Namespace) -> int:
    install_all(layout)
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lab", description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True, metavar="COMMAND")
    sub.add_parser("up", help="install what is missing, boot the storage VM, wait until ready")
    sub.add_parser("down", help="stop the storage VM (by PID)")
    s = sub.add_parser("status", help="is the storage VM running and reachable (exit 3 if not)")
    s.add_argument("--json", action="store_true")
    s = sub.add_parser("ssh", help="run a command on the storage VM: lab ssh -- CMD")
    s.add_argument("command", nargs=argparse.REMAINDER)
    s = sub.add_parser("env", help="print export lines (ZBOOT_CONFIG, ports, keys)")
    s.add_argument("--json", action="store_true")
    s = sub.add_parser("client", help="power on a diskless client; print the outcome as JSON")
    s.add_argument("--mac", required=True)
    s.add_argument("--firmware", choices=FIRMWARES, default="bios")
    s.add_argument("--timeout", type=float, default=120.0, help="seconds (default 120)")
    s = sub.add_parser("golden", help="write a small golden disk image for tests")
    s.add_argument("--firmware", choices=FIRMWARES, required=True)
    s.add_argument("out")
    sub.add_parser("demo", help="set up, then boot a diskless client from a golden image, twice")
    sub.add_parser("install", help="only install and build what the lab needs")
    s = sub.add_parser(
        "test",
        help="set up everything, run ruff, mypy, pytest (args to pytest; --full: also the "
        "tests CI leaves out)",
    )
    s.add_argument("pytest_args", nargs=argparse.REMAINDER)
    return p


HANDLERS = {
    "up": cmd_up,
    "down": cmd_down,
    "status": cmd_status,
    "ssh": cmd_ssh,
    "env": cmd_env,
    "client": cmd_client,
    "golden": cmd_golden,
    "install": cmd_install,
    "test": cmd_test,
    "demo": cmd_demo,
}


def main(argv: list[str] | None = None) -> int:
    p = parser()
    # `lab test` passes everything after it to pytest, options included.
    args, extra = p.parse_known_args(argv)
    if args.cmd == "test":
        given = [a for a in [*extra, *args.pytest_args] if a != "--"]
        args.full = "--full" in given  # every test, also those CI leaves out
        args.pytest_args = [a for a in given if a != "--full"]
    elif extra:
        p.error(f"unrecognized arguments: {' '.join(extra)}")
    layout = Layout.from_env()
    try:
        return HANDLERS[args.cmd](layout, args)
    except LabError as err:
        print(f"lab: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
