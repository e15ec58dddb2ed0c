"""Records as csv, jsonl or json, with exactly the digits the API sent.

A csv text cell a spreadsheet would run as a formula starts with ``'``; its control characters
are shown escaped too when the csv goes to a terminal. json and jsonl keep the text exactly
(JSON escapes control characters itself).
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from ._console import Redacting
from ._records import plain
from ._safe import for_spreadsheet, for_terminal

__all__ = ["DATA_FORMATS", "csv_text", "json_text", "write_records"]

DATA_FORMATS = ("csv", "jsonl", "json")


def json_text(value: Any) -> str:
    """JSON for plain values; a ``Decimal`` is written as a number with exactly its own digits."""
    value = plain(value)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else "null"
    if isinstance(value, (int, str)):
        return json.dumps(value)
    if isinstance(value, Mapping):
        items = (f"{json.dumps(str(k))}: {json_text(v)}" for k, v in value.items())
        return "{" + ", ".join(items) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(json_text(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def csv_text(value: Any, *, terminal: bool = False) -> str:
    """A csv cell: numbers with their own digits; text neutralised if a spreadsheet would run it,
    and its control characters escaped too when the csv goes to a ``terminal``."""
    value = plain(value)
    if value is None:
        return ""
    if isinstance(value, str):
        text = for_spreadsheet(value)
        return for_terminal(text) if terminal else text
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _flatten(record: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for name, value in record.items():
        if isinstance(value, Mapping):
            flat.update(_flatten(value, f"{prefix}{name}_"))
        else:
            flat[f"{prefix}{name}"] = value
    return flat


def write_records(
    fmt: str, records: Sequence[Mapping[str, Any]], out: Redacting, *, columns: Sequence[str]
) -> None:
    """Write ``records`` as ``fmt``: csv (flattened into ``columns``), jsonl, or a json array."""
    if fmt == "csv":
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(columns)
        terminal = out.isatty()
        for record in records:
            flat = _flatten(record)
            writer.writerow([csv_text(flat.get(column), terminal=terminal) for column in columns])
    elif fmt == "jsonl":
        out.write("".join(f"{json_text(record)}\n" for record in records))
    elif records:
        out.write("[\n  " + ",\n  ".join(json_text(record) for record in records) + "\n]\n")
    else:
        out.write("[]\n")
    out.flush()
