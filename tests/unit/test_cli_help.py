"""Every command's `--help`, rendered as a user at an 80-column terminal sees
it (no colour), reads well: each command says what it does, paragraphs are
wrapped evenly (no line broken where the docstring happened to break), no
text is lost (square brackets included: rich markup used to eat `[[host]]`),
flags show no `<bool>`/`<int>` placeholder, and no line is wider than 80.

The commands are found by walking the click tree typer builds, so a new
command is checked without being listed here. This runs against whichever
typer is installed: `lab test` runs it on the lowest and the newest allowed."""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from zboot.cli.app import app

WIDTH = 80
# click wraps help to the terminal's width less two
WRAP = WIDTH - 2
ENV = {"COLUMNS": str(WIDTH), "LINES": "50", "NO_COLOR": "1", "TERM": "dumb"}


def commands(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """(path, click command) for zboot itself and every command and group below."""
    yield path, command
    for name, sub in sorted(getattr(command, "commands", {}).items()):
        yield from commands(sub, (*path, name))


ALL = list(commands(typer.main.get_command(app)))
IDS = [" ".join(path) or "zboot" for path, _ in ALL]


def render(path: tuple[str, ...]) -> str:
    result = CliRunner().invoke(app, [*path, "--help"], prog_name="zboot", env=ENV, color=False)
    assert result.exit_code == 0, result.output
    return result.stdout


def squeezed(text: str) -> str:
    """Text with its wrapping undone: a line broken after a hyphen joins up
    again, any other run of whitespace is one space."""
    return re.sub(r"\s+", " ", re.sub(r"(?<=\w-)\n\s*", "", text)).strip()


def first_chunk(line: str) -> str:
    """What textwrap would have moved up from this line: its first word, or
    the part of it up to a hyphen it may break at (per-host: per-)."""
    word = line.split()[0]
    hyphen = re.match(r".*?\w-(?=\w)", word)
    return hyphen.group(0) if hyphen else word


def continues(line: str, after: str, table: bool) -> bool:
    """`after` carries on `line`'s text: in the description, a line at the
    same indent; in a table (Options:, Arguments:, Commands:), a line
    indented to the help column (not the next row)."""
    indent = len(after) - len(after.lstrip())
    if not after.strip() or indent == 0 or len(line) <= indent:
        return False
    here = len(line) - len(line.lstrip())
    if not table:
        return indent == here
    return indent > here and line[indent - 2 : indent] == "  " and line[indent] != " "


def ragged(output: str) -> list[str]:
    """Lines ended early: the next line's first word would have fitted."""
    lines = output.splitlines()
    found = []
    table = False
    for line, after in itertools.pairwise(lines):
        table = table or bool(re.fullmatch(r"\S[^:]*:", line))  # Options: and the like
        if not continues(line, after, table):
            continue
        chunk = first_chunk(after)
        gap = 0 if line.endswith("-") else 2 if chunk.startswith("[") else 1
        if len(line.rstrip()) + gap + len(chunk) <= WRAP:
            found.append(f"{line.rstrip()!r} / {after.strip()!r}")
    return found


@pytest.fixture(scope="module", params=ALL, ids=IDS)
def shown(request: pytest.FixtureRequest) -> tuple[Any, str]:
    path, command = request.param
    return command, render(path)


def test_the_walk_found_the_commands_and_groups() -> None:
    found = set(IDS)
    assert {"zboot", "clone", "doctor", "image", "image create", "data rebase"} <= found
    assert len(found) >= 35, found


def test_every_command_says_what_it_does(shown: tuple[Any, str]) -> None:
    command, output = shown
    assert (command.help or "").strip(), f"{command.name} has no help text"
    assert squeezed(command.help.split("\n\n")[0]) in squeezed(output)


def test_every_option_says_what_it_is_for(shown: tuple[Any, str]) -> None:
    command, _ = shown
    options = [p for p in command.params if p.param_type_name == "option" and not p.hidden]
    bare = [p.opts for p in options if not (p.help or "").strip()]
    assert not bare, bare


def test_no_line_is_wider_than_the_terminal(shown: tuple[Any, str]) -> None:
    _, output = shown
    wide = [line for line in output.splitlines() if len(line) > WIDTH]
    assert not wide, "\n".join(wide)


def test_paragraphs_are_wrapped_evenly(shown: tuple[Any, str]) -> None:
    _, output = shown
    assert not ragged(output), "\n".join(ragged(output))


def test_no_text_is_lost_square_brackets_included(shown: tuple[Any, str]) -> None:
    """Each paragraph of the command's help and each parameter's help, as
    written in the source, is in the output (whitespace aside)."""
    command, output = shown
    texts = [p for p in (command.help or "").split("\f")[0].split("\n\n") if p.strip()]
    texts += [p.help for p in command.params if getattr(p, "help", None) and not p.hidden]
    missing = [t for t in texts if squeezed(t) not in squeezed(output)]
    assert not missing, missing


def test_flags_show_no_value_placeholder(shown: tuple[Any, str]) -> None:
    """A flag's row names the flag and nothing else (no <bool>, <int>, BOOLEAN)."""
    command, output = shown
    flags = [p for p in command.params if getattr(p, "is_flag", False) or getattr(p, "count", 0)]
    for flag in flags:
        if flag.hidden:
            continue
        names = sorted([*flag.opts, *flag.secondary_opts], key=len)
        rows = [
            line.strip()
            for line in output.splitlines()
            if re.match(rf"\s+(\S+, |\S+ / )*{re.escape(names[-1])}\b", line)
        ]
        assert rows, (names, output)
        term = re.split(r"\s{2,}", rows[0])[0]
        left = re.sub(r"[,/ ]", "", term)
        for name in names:
            left = left.replace(name, "", 1)
        assert left == "", f"{term!r}: {names}"


def test_the_checks_catch_what_they_look_for() -> None:
    """The helpers above flag a ragged break, a lost bracket and a placeholder."""
    even = "  Report drift between the hosts' records and the server: targets without a\n"
    assert not ragged(even + "  disk, disks without a target.\n")
    assert ragged(
        "  Report drift between the hosts' records and the server: targets without\n"
        "  a disk, disks without a target.\n"
    )
    row = "Options:\n  --hosts FILE    a batch: a CSV (host,mac[,initiator][,chap]) or TOML\n"
    assert ragged(row.replace(" or TOML", "") + "                  or TOML ([[host]]) file\n")
    assert not ragged(row + "                  ([[host]]) file\n")
    assert not ragged(row + "  --mac <str>\n  --chap          require CHAP\n")  # rows, not lines
    assert squeezed("TOML ([[host]]) file") not in squeezed("TOML ([]) file")
    assert squeezed("a per-\n   host disk") == "a per-host disk"
