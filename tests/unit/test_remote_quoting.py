"""The SSH runner's one quoting point: command_line(argv) parsed by a real POSIX
shell gives back exactly argv."""

from __future__ import annotations

import subprocess

import pytest

from zboot.remote.ssh import command_line

HOSTILE = [
    "$(echo hacked)",
    "`echo hacked`",
    "a; echo hacked",
    "two  words",
    "'single'",
    '"double"',
    "it's",
    "new\nline",
    "*",
    "?",
    "[a-z]",
    "~",
    "~root",
    "$HOME",
    "${HOME}",
    "-n",
    "--",
    "",
    " ",
    "back\\slash",
    "tab\there",
    "&& echo hacked",
    "| cat",
    "> /tmp/x",
    "#comment",
    "!bang",
    "{a,b}",
    "ünïcødé",
    "%s\\0",
    "\\'",
    "''",
    "'\"'\"'",
]


def shell_roundtrip(line: str) -> list[str]:
    out = subprocess.run(["sh", "-c", line], capture_output=True, check=True).stdout
    return out.decode().split("\0")[:-1]


def test_hostile_arguments_survive_the_remote_shell() -> None:
    line = command_line(["printf", "%s\\0", *HOSTILE])
    assert shell_roundtrip(line) == HOSTILE


@pytest.mark.parametrize("arg", HOSTILE)
def test_each_hostile_argument_alone(arg: str) -> None:
    assert shell_roundtrip(command_line(["printf", "%s\\0", arg])) == [arg]


def test_sudo_prefix_is_outside_the_quoted_arguments() -> None:
    line = command_line(["zfs", "list", "tank/a b"], sudo=True)
    assert line == "sudo -n zfs list 'tank/a b'"
    assert command_line(["zfs", "list"]) == "zfs list"


def test_sudo_line_round_trips_when_sudo_is_replaced() -> None:
    # sudo is stubbed by a shell function that drops `-n` and runs the rest.
    line = command_line(["printf", "%s\\0", *HOSTILE], sudo=True)
    stubbed = 'sudo() { shift; "$@"; }; ' + line
    assert shell_roundtrip(stubbed) == HOSTILE
