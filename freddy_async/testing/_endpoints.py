"""The endpoints, pure: a request's method, path, key and query in, the :class:`Reply` out.

Nothing here does I/O or keeps state: the oracle gives the bodies, :mod:`._query` reads the
parameters, :mod:`._wire` spells the keys. The server's glue sends what these functions decide.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Literal
from urllib.parse import unquote

from ._oracle import Oracle, key_page, key_profile, serves
from ._query import DAILY_YEARS, InvalidParams, Problem, invalid_answer, read_paging, read_period
from ._wire import DOCS_SNAKE_KEYS, RawNumber, envelope, recase

__all__ = [
    "Casing",
    "ListShape",
    "Reply",
    "Route",
    "Style",
    "answer",
    "counted_period",
    "error_reply",
    "gate",
    "route_of",
]

Casing = Literal["camel", "snake", "docs"]
ListShape = Literal["keys", "api_keys"]
Kind = Literal["usage", "daily", "limits", "summary", "list"]


@dataclass(frozen=True)
class Reply:
    """An answer to send: status, headers, and a JSON ``body`` or, when ``text`` is set, that
    text as is (a proxy's HTML page, an empty body)."""

    status: int
    body: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)
    text: str | None = None
    content_type: str = "application/json"


def error_reply(
    status: int, code: str, message: str, *, headers: Mapping[str, str] | None = None, **fields: Any
) -> Reply:
    """The documented error envelope (API.md, "Error envelope") as a reply; ``fields`` are the
    keyword arguments of :func:`._wire.envelope`."""
    return Reply(status, envelope(status, code, message, **fields), headers or {})


@dataclass(frozen=True)
class Route:
    """Which endpoint a path names, and the IDs in it (percent-decoded)."""

    kind: Kind
    org_id: str
    key_id: str = ""


@dataclass(frozen=True)
class Style:
    """How the server spells its answers (see FakeFreddyServer's options of the same names)."""

    casing: Casing
    list_shape: ListShape
    invalid_params: InvalidParams


_PREFIXES: dict[tuple[str, ...], Kind] = {
    ("v1", "analytics", "api-keys", "usage"): "usage",
    ("v1", "analytics", "api-keys", "daily"): "daily",
    ("v1", "analytics", "usage", "limits"): "limits",
    ("v1", "analytics", "api-keys", "summary"): "summary",
}


def route_of(path: str) -> Route | None:
    """The endpoint of a raw path, or None for a path the API does not have."""
    parts = [unquote(segment) for segment in path.split("/")[1:]]
    if not all(parts):
        return None
    kind = _PREFIXES.get(tuple(parts[:4]))
    if kind == "usage" and len(parts) == 6:
        return Route(kind, parts[4], parts[5])
    if kind is not None and kind != "usage" and len(parts) == 5:
        return Route(kind, parts[4])
    if len(parts) == 4 and parts[:2] == ["v1", "organizations"] and parts[3] == "api-keys":
        return Route("list", parts[2])
    return None


def _authenticate(sent: str | None, api_key: str) -> Reply | None:
    if not sent:
        return error_reply(
            401, "AUTHENTICATION_REQUIRED", "Authentication required", system_message="No API key provided"
        )
    sent_bytes = sent.encode("utf-8", "surrogateescape")
    if not secrets.compare_digest(sent_bytes, api_key.encode("utf-8")):
        return error_reply(401, "INVALID_API_KEY", "Invalid API key")
    return None


def gate(
    method: str, path: str, route: Route | None, sent_key: str | None, api_key: str, oracle: Oracle
) -> Reply | None:
    """The error that stops a request before its endpoint, if any: a path the API does not have
    (``route`` None: 404), a method other than GET (405), no or a wrong key (401), or an
    organization the server does not serve (403)."""
    if route is None:
        return error_reply(404, "NOT_FOUND", "Not found", details={"path": path})
    if method != "GET":
        details = {"method": method}
        return error_reply(
            405, "METHOD_NOT_ALLOWED", "Method not allowed", details=details, headers={"Allow": "GET"}
        )
    refused = _authenticate(sent_key, api_key)
    if refused is not None:
        return refused
    if not serves(oracle, route.org_id):
        return error_reply(
            403,
            "ORGANIZATION_ACCESS_DENIED",
            "Access denied to organization",
            system_message="API key doesn't belong to organization",
            error_type="authorization_error",
            details={"organization_id": route.org_id},
        )
    return None


def counted_period(route: Route, query: Mapping[str, str], today: date) -> tuple[int, int] | None:
    """The month a request of a per-month endpoint is counted under; None when it names none."""
    if route.kind == "list":
        return None
    period = read_period(query, today)
    return period if isinstance(period, tuple) else None


def answer(route: Route, query: Mapping[str, str], oracle: Oracle, style: Style, generated_at: str) -> Reply:
    """The answer of an endpoint to a request that passed the :func:`gate`."""
    if route.kind == "list":
        return _listing(route.org_id, query, oracle, style)
    years = DAILY_YEARS if route.kind == "daily" else None
    period = read_period(query, oracle.today, years=years)
    if isinstance(period, list):
        return _invalid(period, style)
    year, month = period
    if route.kind == "usage":
        return _usage(route, year, month, oracle, style)
    if route.kind == "daily":
        return _daily(route.org_id, year, month, oracle, style, generated_at)
    # API.md §4 prints these two answers as the generated SDKs spell them: snake_case.
    casing = "snake" if style.casing == "docs" else style.casing
    if route.kind == "limits":
        return Reply(200, recase(oracle.expected_limits(year, month, org_id=route.org_id), casing))
    summary = _as_printed(oracle.expected_summary(year, month, org_id=route.org_id), generated_at)
    return Reply(200, recase(summary, casing))


def _invalid(problems: list[Problem], style: Style) -> Reply:
    status, body = invalid_answer(problems, style.invalid_params)
    return Reply(status, body)


def _usage(route: Route, year: int, month: int, oracle: Oracle, style: Style) -> Reply:
    key = key_profile(oracle, route.key_id)
    if key is None:
        return error_reply(
            404, "API_KEY_NOT_FOUND", "API key not found", details={"api_key_id": route.key_id}
        )
    if key.organization_id != route.org_id:
        return error_reply(
            403,
            "ORGANIZATION_ACCESS_DENIED",
            "You don't have permission to access this API key",
            system_message="Authorization error",
            details={"api_key_id": route.key_id, "organization_id": route.org_id},
        )
    return Reply(200, recase(oracle.expected_usage(key.key_id, year, month), style.casing))


def _daily(org_id: str, year: int, month: int, oracle: Oracle, style: Style, generated_at: str) -> Reply:
    body = oracle.expected_daily(year, month, org_id=org_id)
    # The daily page prints synapses and neurons as floats ("425000.0").
    for row in body["daily_usage"]:
        row["synapses"] = RawNumber(f"{row['synapses']}.0")
        row["neurons"] = RawNumber(f"{row['neurons']}.0")
    body["summary"] = _as_printed(body["summary"], generated_at)
    return Reply(200, recase(body, style.casing, DOCS_SNAKE_KEYS))


def _as_printed(summary: dict[str, Any], generated_at: str) -> dict[str, Any]:
    """The month's summary as the pages print it: counts as floats, a ``generated_at``."""
    summary["total_synapses"] = RawNumber(f"{summary['total_synapses']}.0")
    summary["total_neurons"] = RawNumber(f"{summary['total_neurons']}.0")
    summary["generated_at"] = generated_at
    return summary


def _listing(org_id: str, query: Mapping[str, str], oracle: Oracle, style: Style) -> Reply:
    paging = read_paging(query)
    if isinstance(paging, list):
        return _invalid(paging, style)
    page, size = paging
    items, total = key_page(oracle, org_id, page, size)
    if style.list_shape == "keys":
        return Reply(200, {"keys": items, "total": total, "page": page, "page_size": size})
    pagination = {"page": page, "page_size": size, "total_count": total, "total_pages": -(-total // size)}
    return Reply(200, {"api_keys": items, "pagination": pagination})
