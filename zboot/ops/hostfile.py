"""The hosts of a batch, from a CSV or TOML file an admin writes by hand or
exports from a spreadsheet.

CSV: a header line naming the columns `host`, `mac` and optionally
`initiator` and `chap` (empty, `one-way` or `mutual`), then one host a line.
TOML: `[[host]]` tables with the same keys. Names are not checked here: a bad
one fails its own host, not the file."""

from __future__ import annotations

import csv
import io
import tomllib
from dataclasses import dataclass
from pathlib import Path

from ..errors import InvalidInput

COLUMNS = ("host", "mac", "initiator", "chap")
CHAP_KINDS = ("", "one-way", "mutual")


@dataclass(frozen=True)
class HostSpec:
    """One line of a hosts file: what `zboot clone` needs for one machine."""

    host: str
    mac: str
    initiator: str | None = None
    chap: str = ""  # "", "one-way" or "mutual"


def spec(row: dict[str, object], where: str, need_mac: bool = True) -> HostSpec:
    unknown = set(row) - set(COLUMNS)
    if unknown:
        raise InvalidInput(
            f"{where}: unknown column(s) {', '.join(sorted(unknown))}",
            hint=f"columns: {', '.join(COLUMNS)}",
        )
    values = {k: "" if v is None else str(v).strip() for k, v in row.items()}
    if not values.get("host"):
        raise InvalidInput(f"{where}: every host needs a host name")
    if need_mac and not values.get("mac"):
        raise InvalidInput(f"{where}: every host needs a host name and a mac")
    if values.get("chap", "") not in CHAP_KINDS:
        raise InvalidInput(
            f"{where}: chap must be empty, one-way or mutual, not {values['chap']!r}"
        )
    return HostSpec(
        values["host"],
        values.get("mac", ""),
        values.get("initiator") or None,
        values.get("chap", ""),
    )


def parse_csv(text: str, name: str, need_mac: bool = True) -> list[HostSpec]:
    rows = csv.reader(io.StringIO(text))
    try:
        header = [field.strip() for field in next(rows, [])]
        if not ({"host", "mac"} if need_mac else {"host"}) <= set(header):
            least = "host and mac" if need_mac else "host"
            raise InvalidInput(
                f"{name}: the first line must name the columns, at least {least}",
                hint="e.g. host,mac,initiator,chap",
            )
        if twice := sorted({field for field in header if header.count(field) > 1}):
            raise InvalidInput(f"{name} line 1: a column is named twice: {', '.join(twice)}")
        return [
            row_spec(header, row, f"{name} line {rows.line_num}", need_mac) for row in rows if row
        ]
    except csv.Error as err:
        raise InvalidInput(f"{name} line {rows.line_num}: not valid CSV: {err}") from None


def row_spec(header: list[str], row: list[str], where: str, need_mac: bool = True) -> HostSpec:
    """One CSV line; fewer fields than columns leave the last ones empty, more
    are refused (a stray comma, or a value with a comma that needs quotes)."""
    if len(row) > len(header):
        raise InvalidInput(
            f"{where}: {len(row)} fields, but the first line names {len(header)} columns",
            hint='put a value with a comma in double quotes: "a,b"',
        )
    return spec(dict(zip(header, row, strict=False)), where, need_mac)


def parse_toml(text: str, name: str, need_mac: bool = True) -> list[HostSpec]:
    try:
        tables = tomllib.loads(text).get("host", [])
    except tomllib.TOMLDecodeError as err:
        raise InvalidInput(f"{name}: not valid TOML: {err}") from None
    if not isinstance(tables, list):
        raise InvalidInput(f"{name}: hosts go in [[host]] tables")
    return [spec(t, f"{name} host {n}", need_mac) for n, t in enumerate(tables, start=1)]


def read_host_names(path: Path) -> list[str]:
    """The host names of a hosts file, for commands on existing hosts
    (rebase): the file `zboot clone --hosts` took, or one with the host
    column alone; the other columns, when there, are checked as for clone."""
    return [s.host for s in read_hosts(path, need_mac=False)]


def read_hosts(path: Path, need_mac: bool = True) -> list[HostSpec]:
    """The hosts listed in a .csv or .toml file, in file order."""
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise InvalidInput(f"cannot read hosts file {path}: {err}") from None
    parse = parse_toml if path.suffix.lower() == ".toml" else parse_csv
    specs = parse(text, path.name, need_mac)
    if not specs:
        raise InvalidInput(f"{path}: lists no hosts")
    return specs
