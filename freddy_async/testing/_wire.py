"""JSON text as the API writes it: chosen key casing, and money as exact number text."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

__all__ = ["DOCS_SNAKE_KEYS", "RawNumber", "dumps", "envelope", "now_iso", "recase"]

# The daily page prints these two names in snake_case beside camelCase ones (API.md §2).
DOCS_SNAKE_KEYS = frozenset({"organization_id", "total_synapses"})


class RawNumber(str):
    """Number text written into the JSON as is (e.g. ``"425000.0"`` as the docs print it)."""

    __slots__ = ()


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


def recase(value: Any, casing: str, keep: frozenset[str] = frozenset()) -> Any:
    """Return ``value`` with snake_case dict keys renamed for ``casing``.

    ``"snake"`` leaves keys alone; ``"camel"`` renames all; ``"docs"`` renames all but ``keep``.
    """
    if casing == "snake":
        return value
    if isinstance(value, Mapping):
        return {
            (k if casing == "docs" and k in keep else _camel(k)): recase(v, casing, keep)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [recase(item, casing, keep) for item in value]
    return value


def _encode(value: Any, out: list[str]) -> None:
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, RawNumber):
        out.append(str.__str__(value))
    elif isinstance(value, str):
        out.append(json.dumps(value))
    elif isinstance(value, int):
        out.append(str(value))
    elif isinstance(value, Decimal):
        # Fixed-point text of the Decimal itself: never a float, never an exponent.
        out.append(format(value, "f"))
    elif isinstance(value, Mapping):
        out.append("{")
        for i, (k, v) in enumerate(value.items()):
            if i:
                out.append(", ")
            out.append(json.dumps(str(k)))
            out.append(": ")
            _encode(v, out)
        out.append("}")
    elif isinstance(value, (list, tuple)):
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(", ")
            _encode(item, out)
        out.append("]")
    else:
        raise TypeError(f"cannot encode {type(value).__name__} as JSON")


def dumps(value: Any) -> bytes:
    """Encode ``value`` as JSON; Decimal becomes its exact number text."""
    out: list[str] = []
    _encode(value, out)
    return "".join(out).encode("utf-8")


def now_iso() -> str:
    """Return the current UTC time as ``YYYY-MM-DDTHH:MM:SSZ``."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def envelope(
    status: int,
    code: str,
    message: str,
    *,
    system_message: str | None = None,
    error_type: str = "client_error",
    details: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Build the documented error envelope, with a fresh ``trace_id``."""
    error: dict[str, Any] = {
        "code": code,
        "message": message,
        "system_message": system_message if system_message is not None else message,
        "type": error_type,
        "status": status,
    }
    if details is not None:
        error["details"] = dict(details)
    error["trace_id"] = str(uuid.uuid4())
    error["timestamp"] = now_iso()
    return {"success": False, "error": error}
