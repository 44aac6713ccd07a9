"""How a command over several hosts reports: one row per host (a table, or
`hosts` in --json), a count line, and the failed hosts' errors, which make
the exit code non-zero while the others' results still show."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from ..errors import ZbootError
from .output import table
from .session import Outcome


@dataclass
class HostResult:
    host: str
    data: dict[str, Any] = field(default_factory=dict)  # the host's own fields in --json
    detail: str = ""  # the table's last column when it worked
    error: ZbootError | None = None
    cells: dict[str, str] = field(default_factory=dict)  # more table columns, in order


def about_host(host: str, err: ZbootError) -> ZbootError:
    """The error with the host it is about in front of its message."""
    return err.retold(message=f"host {host}: {err.message}")


def batch_outcome(results: list[HostResult], done: str, data: Mapping[str, Any]) -> Outcome:
    """data plus `hosts` (host, ok, the host's fields, error); the text is a
    table with result `done` or `failed` for each host and the counts."""
    columns = list(dict.fromkeys(c for r in results for c in r.cells))
    rows = [
        {"host": r.host, "ok": r.error is None}
        | r.data
        | {"error": r.error.to_json() if r.error else None}
        for r in results
    ]
    lines = [
        {"host": r.host, "result": "failed" if r.error else done}
        | {c: "" if r.error else r.cells.get(c, "") for c in columns}
        | {"detail": r.error.message if r.error else r.detail}
        for r in results
    ]
    failed = [r for r in results if r.error is not None]
    text = (
        table(lines, ["host", "result", *columns, "detail"])
        + f"\n{len(results) - len(failed)} {done}, {len(failed)} failed"
    )
    return Outcome(
        dict(data) | {"hosts": rows},
        text,
        [about_host(r.host, e) for r in failed if (e := r.error) is not None],
    )


R = TypeVar("R", bound="PerHost")


class PerHost(Protocol):
    """What every workflow's per-host result has."""

    @property
    def host(self) -> str: ...
    @property
    def error(self) -> ZbootError | None: ...


def one_or_batch(
    results: Sequence[R],
    single: Callable[[R], Outcome],
    batch: Callable[[list[R]], Outcome],
    batched: bool,
) -> Outcome:
    """One host: its outcome, or its error raised (exit code and message as
    for any failure). Several: a row each, through batch."""
    if not batched:
        [one] = results
        if one.error is not None:
            raise one.error
        return single(one)
    return batch(list(results))
