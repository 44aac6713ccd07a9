"""Usage errors (an unknown option, a missing argument, a bad choice) under
`--json`: the envelope on stdout, exit code 2, instead of click's usage text.
Without --json click reports them as it always does."""

from __future__ import annotations

from typing import Any

import typer
from typer.core import TyperGroup

from ..errors import BadUsage
from .output import report_error

# click's UsageError, from wherever this typer takes click (typer 0.26 and
# later carry their own copy): BadParameter, which typer exports, is one.
CLICK_USAGE_ERROR: type[Exception] = next(
    c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError"
)
JSON_KEY = "zboot.json"  # in the context's meta: --json was on the command line


def wants_json(args: list[str]) -> bool:
    """--json among the arguments (before a `--`): the global option, or one a
    user put after the command by mistake (an error then, reported in JSON)."""
    return "--json" in (args[: args.index("--")] if "--" in args else args)


def command_of(ctx: Any) -> str:
    """The command the parser got to ("image create"; "" for zboot itself)."""
    names: list[str] = []
    while ctx is not None and ctx.parent is not None:
        names.append(str(ctx.info_name))
        ctx = ctx.parent
    return " ".join(reversed(names))


def usage_exit(err: Exception) -> typer.Exit:
    """Print err as a --json envelope; the Exit that ends zboot with code 2."""
    command = command_of(getattr(err, "ctx", None))
    shown = " ".join(["zboot", command]) if command else "zboot"
    if type(err).__name__ == "NoArgsIsHelpError":  # click 8.2+: a group given no command
        message = f"{shown}: a command is missing"
    else:
        message = str(getattr(err, "format_message", lambda: str(err))())
    code = report_error(command, BadUsage(message, hint=f"{shown} --help"), as_json=True)
    return typer.Exit(code)


class JsonUsageGroup(TyperGroup):
    """zboot's top-level group: catches the usage errors of its own options
    (while parsing) and of every command below it (while invoking them)."""

    def make_context(
        self, info_name: str | None, args: list[str], parent: Any = None, **extra: Any
    ) -> Any:
        json = wants_json(args)
        try:
            ctx = super().make_context(info_name, args, parent=parent, **extra)
        except CLICK_USAGE_ERROR as err:
            if not json:
                raise
            raise usage_exit(err) from None
        ctx.meta[JSON_KEY] = json
        return ctx

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except CLICK_USAGE_ERROR as err:
            if not ctx.meta.get(JSON_KEY):
                raise
            raise usage_exit(err) from None
