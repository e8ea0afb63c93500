"""CSV movement files -> canonical `Movement`s, with row-precise errors.

Layout: UTF-8 (a BOM is allowed), comma-separated, RFC 4180 quoting, a header row naming the
columns in any order. Columns (`COLUMNS`): ``kind``, ``sku``, ``location``, ``quantity`` and
``occurred_at`` are required; ``movement_id``, ``unit``, ``lot``, ``serials`` (separated by
``|``), ``reason_code`` and ``references`` (separated by ``|``) may be left out or empty. The
values mean what the fields of `Movement` (and of ``POST /v1/movements``) mean.

``movement_id`` is the movement's idempotency key everywhere (the same id over the JSON API and
in a file is one movement). A row without one gets ``<file digest, 16 hex>-<line>``: the same
file read twice names its rows the same, so a second pass (after a crash) adds nothing.

Limits come first, before any parsing: the byte size, then the number of lines (a cheap count
of line feeds). A file over a limit, not UTF-8, or whose header is wrong is refused whole
(`CsvFile.refused`); a bad row is rejected on its own (`CsvFile.rejected`, with its line and raw
text) and the other rows are read.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from integration_core.errors import InteropError
from integration_core.feed.files import Problem
from integration_core.models import Catalog, Movement

REQUIRED = ("kind", "sku", "location", "quantity", "occurred_at")
OPTIONAL = ("movement_id", "unit", "lot", "serials", "reason_code", "references")
COLUMNS = (*REQUIRED, *OPTIONAL)
LISTS = ("serials", "references")
LIST_SEPARATOR = "|"
_LINES = re.compile(r"(?<=\n)")


@dataclass(frozen=True, slots=True)
class CsvLimits:
    max_bytes: int = 64 << 20
    max_rows: int = 1_000_000
    """Data rows (lines after the header) at most."""


@dataclass(slots=True)
class CsvFile:
    movements: list[tuple[int, Movement]] = field(default_factory=list)
    """(line, movement) for every valid row, in file order."""
    rejected: list[Problem] = field(default_factory=list)
    refused: Problem | None = None
    """Why the whole file was refused (nothing in it read)."""
    rows: int = 0
    """Data rows read (blank lines not counted)."""


def row_id(file_digest: str, line: int) -> str:
    return f"{file_digest[:16]}-{line}"


def check_limits(size: int, limits: CsvLimits) -> Problem | None:
    """The size check, before the file is even read (the service asks with the file's size)."""
    if size > limits.max_bytes:
        return Problem(f"file of {size} bytes is over the limit of {limits.max_bytes}")
    return None


def read_movements(data: bytes, catalog: Catalog, file_digest: str,
                   limits: CsvLimits = CsvLimits()) -> CsvFile:
    out = CsvFile()
    refused = check_limits(len(data), limits)
    if refused is None:
        lines = data.count(b"\n") + (not data.endswith(b"\n"))
        if lines - 1 > limits.max_rows:  # line feeds inside quotes count too: conservative
            refused = Problem(f"{lines - 1} lines after the header: over the limit of "
                              f"{limits.max_rows} rows")
    if refused is not None:
        out.refused = refused
        return out
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        out.refused = Problem(f"not UTF-8: byte 0x{data[exc.start]:02x} at offset {exc.start}",
                              line=line)
        return out
    pieces = [p for p in _LINES.split(text) if p]
    reader = csv.reader(pieces, strict=True)
    try:
        header = next(reader)
    except StopIteration:
        out.refused = Problem("empty file: a header row is required", line=1)
        return out
    except csv.Error as exc:
        out.refused = Problem(f"header row unreadable: {exc}", line=1, raw=pieces[0])
        return out
    columns = [h.strip() for h in header]
    wrong = _check_header(columns)
    if wrong is not None:
        out.refused = Problem(wrong, line=1, raw=pieces[0].rstrip("\r\n"))
        return out
    done = reader.line_num
    while True:
        start = done + 1
        try:
            values = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:  # a broken quote: the rest of that record is lost with it
            done = reader.line_num
            out.rows += 1
            out.rejected.append(Problem(f"unreadable CSV: {exc}", line=start,
                                        raw=_raw(pieces, start, done)))
            continue
        done = reader.line_num
        if not values or (len(values) == 1 and not values[0].strip()):
            continue  # a blank line
        out.rows += 1
        raw = _raw(pieces, start, done)
        if len(values) != len(columns):
            out.rejected.append(Problem(f"{len(values)} fields, the header has "
                                        f"{len(columns)}", line=start, raw=raw))
            continue
        record: dict[str, Any] = {}
        for name, value in zip(columns, values, strict=True):
            value = value.strip()
            if not value:
                continue  # empty: the field's default (and a required field is missing)
            record[name] = ([v.strip() for v in value.split(LIST_SEPARATOR) if v.strip()]
                            if name in LISTS else value)
        record.setdefault("movement_id", row_id(file_digest, start))
        try:
            out.movements.append((start, catalog.parse(Movement, record)))
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "row"
            msg = first["msg"].removeprefix("Value error, ")
            out.rejected.append(Problem(f"{where}: {msg}", line=start, raw=raw, field=where))
        except (ValueError, LookupError, InteropError) as exc:  # the item master refused
            out.rejected.append(Problem(str(exc), line=start, raw=raw))
    return out


def _check_header(columns: list[str]) -> str | None:
    unknown = [c for c in columns if c not in COLUMNS]
    if unknown:
        return f"unknown column(s) {unknown}; the columns are {list(COLUMNS)}"
    twice = sorted({c for c in columns if columns.count(c) > 1})
    if twice:
        return f"column(s) {twice} named twice"
    missing = [c for c in REQUIRED if c not in columns]
    if missing:
        return f"required column(s) {missing} missing"
    return None


def _raw(pieces: list[str], first: int, last: int) -> str:
    return "".join(pieces[first - 1:last]).rstrip("\r\n")
