"""The `lab` command line."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

from . import vm
from .install import install_all
from .keys import ssh_argv
from .layout import Layout
from .procs import LabError


def cmd_up(layout: Layout, args: argparse.Namespace) -> int:
    install_all(layout)
    vm.start(layout)
    return 0


def cmd_down(layout: Layout, args: argparse.Namespace) -> int:
    if not vm.shutdown(layout):
        print("lab: the storage VM was not running", file=sys.stderr)
    return 0


def cmd_ssh(layout: Layout, args: argparse.Namespace) -> int:
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    return subprocess.call([*ssh_argv(layout), *command])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lab", description=__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("up", help="install, build and boot the storage VM")
    sub.add_parser("down", help="stop every process the lab started")
    p = sub.add_parser("ssh", help="run a command on the storage VM")
    p.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    layout = Layout.from_env()
    handlers = {"up": cmd_up, "down": cmd_down, "ssh": cmd_ssh}
    try:
        return handlers[args.cmd](layout, args)
    except LabError as err:
        print(f"lab: error: {err}", file=sys.stderr)
        return 1
