"""The fenced code blocks of a markdown page, and the shell commands in them:
what a docs test runs, so a page's commands cannot rot.

`code_blocks` follows CommonMark's fences: a line of three or more backticks
(or tildes) indented by at most three spaces, or more inside a list item,
opens a block; its info string is the rest of that line; a fence of the same
character, at least as long and with nothing after it, closes it (an
unclosed block runs to the end of the page). The block's lines lose the
opening fence's indentation. `commands` turns a shell block into its
commands: backslash-continued lines joined, blank lines and comments
dropped, each split into words as the shell would (no expansion)."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

FENCE = re.compile(r"^(?P<indent> *)(?P<fence>`{3,}|~{3,})(?P<info>.*)$")


@dataclass(frozen=True)
class CodeBlock:
    info: str  # the info string after the opening fence, stripped ("sh", "toml title=x", "")
    text: str  # the block's lines, each ending in a newline
    line: int  # the line of the opening fence, counting from 1

    @property
    def language(self) -> str:
        """The info string's first word ("" when there is none)."""
        return self.info.split()[0] if self.info.split() else ""


@dataclass(frozen=True)
class Command:
    words: list[str]
    line: int  # in the page, counting from 1
    text: str  # as written, continuations joined


def code_blocks(source: str | Path) -> list[CodeBlock]:
    """The fenced code blocks of a markdown page (a path, or the text itself),
    in order."""
    text = source.read_text() if isinstance(source, Path) else source
    blocks: list[CodeBlock] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if opening is None or (opening["fence"][0] == "`" and "`" in opening["info"]):
            i += 1
            continue
        indent, fence = len(opening["indent"]), opening["fence"]
        body: list[str] = []
        j = i + 1
        while j < len(lines):
            closing = FENCE.match(lines[j])
            if (
                closing is not None
                and closing["fence"][0] == fence[0]
                and len(closing["fence"]) >= len(fence)
                and not closing["info"].strip()
            ):
                break
            line = lines[j]
            body.append(line[min(indent, len(line) - len(line.lstrip(" "))) :])
            j += 1
        blocks.append(CodeBlock(opening["info"].strip(), "".join(f"{b}\n" for b in body), i + 1))
        i = j + 1
    return blocks


def commands(block: CodeBlock) -> list[Command]:
    """A shell block's commands, in order."""
    out: list[Command] = []
    pending: list[str] = []
    start = 0
    for n, line in enumerate(block.text.splitlines(), start=block.line + 1):
        if not pending:
            start = n
            if not line.strip() or line.lstrip().startswith("#"):
                continue
        if line.endswith("\\") and not line.endswith("\\\\"):
            pending.append(line[:-1])
            continue
        pending.append(line)
        joined = " ".join(part.strip() for part in pending)
        pending = []
        words = shlex.split(joined, comments=True)
        if words:
            out.append(Command(words, start, joined))
    if pending:
        raise ValueError(f"line {start}: the command ends in a continuation backslash")
    return out


def shell_commands(source: str | Path, languages: tuple[str, ...] = ("sh",)) -> list[Command]:
    """Every command of the page's blocks in those languages, in page order."""
    return [c for b in code_blocks(source) if b.language in languages for c in commands(b)]
