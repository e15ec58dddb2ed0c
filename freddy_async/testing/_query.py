"""Query parameters as the API checks them, and the answer it gives when they are wrong.

Pure: a reader gives the values or every problem found, and :func:`invalid_answer` turns the
problems into the status and body of the chosen style. FastAPI (what the API runs on, see the
generated SDKs) checks every parameter before answering and lists all the problems at once.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, Literal

from ._wire import envelope

__all__ = [
    "DAILY_YEARS",
    "InvalidParams",
    "Problem",
    "invalid_answer",
    "read_paging",
    "read_period",
]

InvalidParams = Literal["fastapi", "docs"]

# Only the daily page documents a year range (API.md §2); no other endpoint has one.
DAILY_YEARS = (2020, 2030)
_MONTHS = (1, 12)
_MAX_PAGE_SIZE = 100
_DEFAULT_PAGE_SIZE = 20
_INT = re.compile(r"[+-]?\d{1,9}")


@dataclass(frozen=True)
class Problem:
    """One query parameter that is not an integer (``low`` and ``high`` None) or out of range."""

    name: str
    text: str
    low: int | None = None
    high: int | None = None


def _read_int(query: Mapping[str, str], name: str, default: int, low: int, high: int | None) -> int | Problem:
    text = query.get(name)
    if text is None:
        return default
    if not _INT.fullmatch(text):
        return Problem(name, text)
    value = int(text)
    if value < low or (high is not None and value > high):
        return Problem(name, text, low, high)
    return value


def _read_all(
    query: Mapping[str, str], specs: Sequence[tuple[str, int, int, int | None]]
) -> tuple[int, ...] | list[Problem]:
    read = [_read_int(query, *spec) for spec in specs]
    problems = [r for r in read if isinstance(r, Problem)]
    if problems:
        return problems
    return tuple(r for r in read if not isinstance(r, Problem))


def read_period(
    query: Mapping[str, str], today: date, *, years: tuple[int, int] | None = None
) -> tuple[int, int] | list[Problem]:
    """Read ``year`` and ``month`` (default: the month of ``today``); ``years`` bounds the year."""
    low, high = years if years is not None else (-(10**9), None)
    read = _read_all(query, [("year", today.year, low, high), ("month", today.month, *_MONTHS)])
    if isinstance(read, list):
        return read
    return read[0], read[1]


def read_paging(query: Mapping[str, str]) -> tuple[int, int] | list[Problem]:
    """Read ``page`` (from 1) and ``page_size`` (1 to 100, default 20) of the key listing."""
    read = _read_all(query, [("page", 1, 1, None), ("page_size", _DEFAULT_PAGE_SIZE, 1, _MAX_PAGE_SIZE)])
    if isinstance(read, list):
        return read
    return read[0], read[1]


def _fastapi_item(problem: Problem) -> dict[str, Any]:
    """One entry of FastAPI's ``detail`` list, as pydantic 2 words it."""
    item: dict[str, Any] = {"loc": ["query", problem.name], "input": problem.text}
    if problem.low is None:
        item["type"] = "int_parsing"
        item["msg"] = "Input should be a valid integer, unable to parse string as an integer"
    elif int(problem.text) < problem.low:
        item["type"] = "greater_than_equal"
        item["msg"] = f"Input should be greater than or equal to {problem.low}"
        item["ctx"] = {"ge": problem.low}
    else:
        item["type"] = "less_than_equal"
        item["msg"] = f"Input should be less than or equal to {problem.high}"
        item["ctx"] = {"le": problem.high}
    return item


def _why(problem: Problem) -> str:
    if problem.low is None:
        return "must be an integer"
    if problem.high is None:
        return f"must be {problem.low} or more"
    return f"must be from {problem.low} to {problem.high}"


def invalid_answer(problems: Sequence[Problem], style: InvalidParams) -> tuple[int, dict[str, Any]]:
    """The status and body for invalid parameters.

    ``"fastapi"``: 422 with ``{"detail": [{"loc", "msg", "type", ...}]}``, every problem listed,
    as the OpenAPI spec declares for every endpoint. ``"docs"``: the docs pages' 400
    ``INVALID_REQUEST`` envelope, which names the first problem.
    """
    if style == "fastapi":
        return 422, {"detail": [_fastapi_item(p) for p in problems]}
    first = problems[0]
    body = envelope(
        400,
        "INVALID_REQUEST",
        "Invalid query parameters",
        system_message=f"{first.name} {_why(first)}",
        error_type="validation_error",
        details={"parameter": first.name, "value": first.text},
    )
    return 400, body
