"""Many short commands in one remote shell. Each command zboot runs over SSH
costs a channel, a session and a login shell on the server (about 0.3 s on
the lab's emulated VM, more than `zfs clone` itself), so a batch sends its
commands as chains: each chain's steps run in order and stop at the first
failure (like `&&`), every chain runs whatever the others did, and all of it
is one `sh -c`. Each chain reports which step failed, its exit code and what
it printed, so one bad host fails alone."""

from __future__ import annotations

import re
import secrets
import shlex
from collections.abc import Sequence

from ..errors import ServerError
from .base import DEFAULT_TIMEOUT, Chain, ChainFailure, Result, Runner

CHUNK = 10  # chains per shell: a progress bar moves, a timeout covers little


def script(chains: Sequence[Chain], mark: str) -> str:
    """A POSIX sh script running chains; after each, a line `<mark> <step> <code>`
    (step 0: all steps succeeded)."""
    lines = []
    for chain in chains:
        lines.append("s=0 c=0")
        for number, argv in enumerate(chain, start=1):
            line = " ".join(shlex.quote(arg) for arg in argv)
            lines.append(
                f'if [ "$s" = 0 ]; then {line} </dev/null 2>&1 || {{ c=$?; s={number}; }}; fi'
            )
        lines.append(f'printf "\\n%s %s %s\\n" {mark} "$s" "$c"')
    return "\n".join(lines) + "\n"


def parse(chains: Sequence[Chain], output: str, mark: str) -> list[ChainFailure | None]:
    """The outcome of each chain from the script's output."""
    found = list(re.finditer(rf"^{re.escape(mark)} (\d+) (\d+)$", output, re.MULTILINE))
    if len(found) != len(chains):
        raise ValueError(f"the shell reported {len(found)} of {len(chains)} chains")
    outcomes: list[ChainFailure | None] = []
    start = 0
    for chain, match in zip(chains, found, strict=True):
        step, code = int(match[1]), int(match[2])
        printed = output[start : match.start()].strip("\n")
        start = match.end()
        if step == 0:
            outcomes.append(None)
            continue
        argv = tuple(chain[step - 1])
        outcomes.append(ChainFailure(step - 1, Result(argv, code or 1, b"", printed.encode())))
    return outcomes


def run_in_shells(
    runner: Runner, chains: Sequence[Chain], timeout: float = DEFAULT_TIMEOUT
) -> list[ChainFailure | None]:
    """Run chains, CHUNK to a shell; the runner's record lists each step run."""
    outcomes: list[ChainFailure | None] = []
    for first in range(0, len(chains), CHUNK):
        part = chains[first : first + CHUNK]
        mark = f"zboot-chain-{secrets.token_hex(8)}"
        steps = sum(len(c) for c in part)
        result = runner.run(
            ["sh", "-c", script(part, mark)], check=False, timeout=timeout + 10 * steps
        )
        runner.commands[-1:] = [tuple(argv) for chain in part for argv in chain]
        try:
            outcomes += parse(part, result.stdout.decode("utf-8", errors="replace"), mark)
        except ValueError as err:
            raise_failed(result, str(err))
    return outcomes


def raise_failed(result: Result, why: str) -> None:
    detail = result.stderr.decode("utf-8", errors="replace").strip()
    raise ServerError(
        f"a batch of commands broke off on the server ({why})" + (f": {detail}" if detail else "")
    )
