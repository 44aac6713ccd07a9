"""A round of a big batch's clones, renames and promotes sent to the ZFS
agent (lzc_agent.py) instead of `zfs` commands in a remote shell: one
Python on the server (zboot's session agent, where it runs) makes them
through libzfs_core, with no process per change.

One change at a time, as the shell makes them: changes side by side wait
for fewer transaction groups (on the lab's emulated server 20 renames
took 1.1 s through libzfs_core from 16 threads), but when 18 clones were
made at once, one clone's /dev/zvol node never appeared (OpenZFS makes
the nodes asynchronously; docs/architecture.md, Batches).

Below AT_LEAST chains the shell stays (libzfs_core's import costs more
than the processes it saves); a server without a usable pyzfs says so
before any change, and the batch goes on in the shell."""

from __future__ import annotations

import errno
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import Conflict, NotFound, ServerError, ZbootError
from ..remote.base import Runner
from ..remote.python import bootstrap, payload, python_argv
from .cli import Change, StepFailed, full_key

AGENT = Path(__file__).with_name("lzc_agent.py").read_text()
BOOTSTRAP = bootstrap("lzc")
VERBS = frozenset({"clone", "rename", "promote"})
AT_LEAST = 8  # chains in a round for the agent to pay off
CONCURRENT = 1  # changes under way at once (see above)
NO_LIBRARY = 3  # the agent's exit code without libzfs_core (nothing changed)


def fits(segments: Sequence[Sequence[Change]]) -> bool:
    """Is this round one for the agent: enough chains, and only the changes
    it makes?"""
    return len(segments) >= AT_LEAST and all(c.verb in VERBS for s in segments for c in s)


def lzc_error(code: int | None, name: str, detail: str) -> ZbootError:
    """A libzfs_core failure as zboot's error, by errno first, then by the
    exception's name."""
    if code == errno.ENOENT or "NotFound" in name:
        return NotFound(detail)
    if code in (errno.EEXIST, errno.EBUSY) or any(
        word in name for word in ("Exists", "Busy", "Cloned", "Dependent", "NotLatest")
    ):
        return Conflict(detail)
    if code == errno.ENOSPC:
        return ServerError(f"{detail} (out of space)")
    return ServerError(detail)


def request(segments: Sequence[Sequence[Change]]) -> dict[str, Any]:
    return {
        "chains": [
            [
                {
                    "verb": c.verb,
                    "names": list(c.names),
                    "props": {full_key(k): v for k, v in c.props},
                }
                for c in segment
            ]
            for segment in segments
        ],
        "concurrent": CONCURRENT,
    }


def run_round(
    runner: Runner, segments: Sequence[Sequence[Change]], timeout: float = 300.0
) -> list[StepFailed | None] | None:
    """Each segment's changes in order up to its first failure, all segments
    in one agent call: None for a segment that went through. None in all
    (nothing changed) when the server has no libzfs_core."""
    ran = runner.run(
        python_argv(BOOTSTRAP),
        input=payload(AGENT, request(segments)),
        timeout=timeout + 10 * sum(len(s) for s in segments),
        check=False,
    )
    if ran.returncode == NO_LIBRARY:
        return None
    said = ran.stderr.decode(errors="replace").strip().splitlines()
    if ran.returncode != 0:
        raise ServerError(
            "the ZFS agent failed on the server: " + (said[-1] if said else "no message"),
            hint="`zboot doctor` shows what is half done; the same command finishes it",
        )
    answers = json.loads(ran.stdout)
    if not isinstance(answers, list) or len(answers) != len(segments):
        raise ServerError("the ZFS agent answered for the wrong number of chains")
    outcomes: list[StepFailed | None] = []
    for segment, answer in zip(segments, answers, strict=True):
        if answer is None:
            outcomes.append(None)
            continue
        step, code, name, message = int(answer[0]), int(answer[1]), str(answer[2]), answer[3]
        change = segment[step]
        what = f"{change.verb} {' '.join(change.names)}: {name} {message}"
        outcomes.append(StepFailed(step, lzc_error(code, name, what)))
    return outcomes
