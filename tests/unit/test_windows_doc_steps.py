"""docs/windows.md without the lab: its `sh` blocks hold zboot commands only,
each one parses against the real CLI (a misspelt option or a missing
argument is caught here, before the lab test runs the page), no zboot
command hides in a block the lab test does not run, and the page's names
stay apart from the other lab tests' (the boot directory and the target
names are shared by every root in the lab)."""

from __future__ import annotations

import importlib
import re
from typing import Any

import pytest
import typer
from doc_commands import Command, code_blocks
from test_windows_doc import DOC, IMAGE_PLACEHOLDER, doc_steps

from zboot.cli.app import app

MAC_PREFIX = "52:54:00:d0:c0:"  # no other test uses it
ZBOOT_LINE = re.compile(r"^\s*(\$\s+)?zboot\s")


def usage_error(command: Any) -> type[Exception]:
    """click's UsageError, from wherever this typer takes click (newer typers
    carry their own copy, typer._click)."""
    for base in type(command).__mro__:
        if base.__module__.endswith("click.core"):
            package = importlib.import_module(base.__module__.rsplit(".", 1)[0] + ".exceptions")
            error: type[Exception] = package.UsageError
            return error
    raise AssertionError(f"{type(command)} is no click command")


ROOT = typer.main.get_command(app)
UsageError = usage_error(ROOT)


def parse(words: list[str]) -> Any:
    """What zboot would parse words into, without running anything: the
    group's options, then each subcommand down to the command itself (the
    command's context: its params)."""
    command: Any = ROOT
    ctx = command.make_context("zboot", list(words[1:]))
    while hasattr(command, "resolve_command"):  # a group
        protected = getattr(ctx, "_protected_args", None)
        if protected is None:
            protected = ctx.protected_args
        name, sub, rest = command.resolve_command(ctx, [*protected, *ctx.args])
        assert sub is not None and name is not None, words
        command, ctx = sub, sub.make_context(name, rest, parent=ctx)
    return ctx


def where(step: Command) -> str:
    return f"docs/windows.md line {step.line}: {step.text}"


def test_the_page_has_zboot_steps_in_sh_blocks() -> None:
    assert sum(b.language == "sh" for b in code_blocks(DOC)) >= 5
    assert len(doc_steps()) >= 10


@pytest.mark.parametrize("step", doc_steps(), ids=lambda s: f"line{s.line}")
def test_each_sh_step_is_a_zboot_command_the_cli_accepts(step: Command) -> None:
    assert step.words[0] == "zboot", f"{where(step)}: only zboot commands run in the docs test"
    try:
        parse(step.words)
    except UsageError as e:
        pytest.fail(f"{where(step)}: {e}")


def test_parse_catches_what_the_page_could_get_wrong() -> None:
    """The check above can fail: a wrong option, a missing argument and an
    unknown command are refused."""
    for words in (
        ["zboot", "mode", "doc-pc01", "install", "--wimpe", "http://x/"],
        ["zboot", "commit", "doc-pc01"],  # no -m
        ["zboot", "image", "snapshop", "win11-doc"],
    ):
        with pytest.raises(UsageError):
            parse(words)
    assert parse(["zboot", "--dry-run", "image", "prune", "x", "--keep", "2"]).params["keep"] == 2


def test_no_zboot_command_outside_the_sh_blocks() -> None:
    """The lab test runs the sh blocks only: a zboot line elsewhere would be
    documented without being run."""
    for block in code_blocks(DOC):
        if block.language == "sh":
            continue
        for n, line in enumerate(block.text.splitlines(), start=block.line + 1):
            assert not ZBOOT_LINE.match(line), f"docs/windows.md line {n} ({block.info}): {line}"


def test_paths_are_the_documented_placeholder() -> None:
    text = DOC.read_text()
    assert f"`{IMAGE_PLACEHOLDER}`" in text  # the page's table of names explains it
    for step in doc_steps():
        for word in step.words:
            assert not word.startswith("/") or word == IMAGE_PLACEHOLDER, where(step)


def named(ctx: Any, keys: tuple[str, ...]) -> list[str]:
    """The values of those parameters, lists flattened."""
    out: list[str] = []
    for key in keys:
        value = ctx.params.get(key)
        out += value if isinstance(value, list | tuple) else [value] if value else []
    return out


def test_names_stay_apart_from_other_lab_tests() -> None:
    """Each root in the lab has its own datasets, but the boot directory
    (scripts named by MAC) and the target names (<iqn base>:<host>,
    <iqn base>:image.<image>) are shared by all of them."""
    seen = 0
    for step in doc_steps():
        ctx = parse(step.words)
        for mac in named(ctx, ("mac",)):
            assert mac.lower().startswith(MAC_PREFIX), where(step)
        for host in named(ctx, ("host", "hosts")):
            assert host.startswith("doc-"), where(step)
        images = ("image", "to", "name") if ctx.parent.info_name == "image" else ("image", "to")
        for image in named(ctx, images):
            assert image.startswith("win11-doc"), where(step)
        seen += bool(named(ctx, ("mac", "host", "hosts", "image", "to")))
    assert seen >= 10
