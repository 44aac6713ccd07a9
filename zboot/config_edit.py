"""Editing a config file's text: set the values given on the command line,
add the keys the file lacks, and keep everything else as the admin wrote it
(comments, order, spacing, inline tables, dotted keys, quoting). tomlkit
round-trips the file; the result is read back with the standard parser and
checked exactly as `config.load` checks a file, so an edit never writes a
file zboot would refuse."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomlkit
from tomlkit.exceptions import TOMLKitError
from tomlkit.items import Comment, Table, Whitespace

from .config import KEYS, Config, checked, from_tables
from .errors import InvalidInput

# table -> key -> value; None: not given
Values = dict[str, dict[str, Any]]
HEADER = "# zboot configuration, written by `zboot init`. Every key: docs/config.md"


@dataclass(frozen=True)
class Edited:
    text: str  # the file as it would be written
    config: Config  # what it loads to
    added: list[str]  # table.key the file did not have
    changed: list[str]  # table.key whose value was replaced

    @property
    def touched(self) -> bool:
        return bool(self.added or self.changed)


def check_value(table: str, key: str, value: object, option: str) -> object:
    """A command-line value checked (and normalised) by its key's rule, the one
    `config.load` applies; InvalidInput naming the option."""
    try:
        return KEYS[table][key](value)
    except InvalidInput as err:
        raise err.retold(f"{option} {value!r}: {err.message}") from None


def parse(text: str, where: str) -> tomlkit.TOMLDocument:
    try:
        return tomlkit.parse(text)
    except (TOMLKitError, ValueError) as err:
        raise InvalidInput(f"cannot read config file {where!r}: {err}") from None


def _table(doc: tomlkit.TOMLDocument, name: str, where: str) -> Any:
    """The document's table `name`, made (at the end) when it has none."""
    if name not in doc:
        doc.add(name, tomlkit.table())
    found = doc[name]
    if not isinstance(found, dict):
        raise InvalidInput(f"[{name}] in {where} must be a table, not {found!r}")
    return found


def _put(table: Any, key: str, value: object) -> None:
    """Set key in table. A new key goes after the table's last key, before the
    blank lines and comments that end it (they belong to what follows)."""
    if key in table or not isinstance(table, Table):
        table[key] = value
        return
    body = table.value.body
    tail: list[Any] = []
    while body and body[-1][0] is None and isinstance(body[-1][1], Comment | Whitespace):
        tail.insert(0, body.pop()[1])
    table[key] = value
    for item in tail:
        table.value.body.append((None, item))


def _in_order(given: Values, fill: Values) -> Values:
    """given over fill, tables and keys in KEYS' order."""
    return {
        name: {key: given.get(name, {}).get(key, fill.get(name, {}).get(key)) for key in keys}
        for name, keys in KEYS.items()
        if name in given or name in fill
    }


def edit(text: str, given: Values, fill: Values, path: Path | None) -> Edited:
    """text (a config file; "" for a new one) with the given values set,
    replacing the file's, and the fill values added where the file lacks the
    key (None: leave it out). The result parses and passes every check of
    `config.load`, else InvalidInput naming the key."""
    where = str(path)
    doc = parse(text, where)
    passes = [(given, True), (fill, False)]
    if not text.strip():  # a new file: tables and keys in the documented order
        doc.add(tomlkit.comment(HEADER[2:]))
        passes = [(_in_order(given, fill), True)]
    added: list[str] = []
    changed: list[str] = []
    for values, replace in passes:
        for name, keys in values.items():
            for key, value in keys.items():
                if value is None:
                    continue
                table = _table(doc, name, where)
                if key in table:
                    if not replace or table[key] == value:
                        continue
                    changed.append(f"{name}.{key}")
                else:
                    added.append(f"{name}.{key}")
                _put(table, key, value)
    out = doc.as_string()
    if "\r\n" in text:  # the admin's line ends (a value never holds a newline)
        out = out.replace("\r\n", "\n").replace("\n", "\r\n")
    try:
        data = tomllib.loads(out)
    except tomllib.TOMLDecodeError as err:
        raise InvalidInput(f"cannot read config file {where!r}: {err}") from None
    return Edited(out, from_tables(checked(data, where), path), added, changed)
