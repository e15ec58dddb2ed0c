"""What a report says, as plain values: one record per (key, month), one row per key, totals.

Pure: no I/O, no layout. The writers (``_writers``, ``_tables``, ``_html``) only lay these out,
so every format shows the same numbers. Money stays ``Decimal`` from the answer to the output;
counts the API sends as floats (``68705.0``) are whole numbers again here.
"""

from __future__ import annotations

import enum
import math
import typing
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any

import attrs

from .._convert import unstructure
from .._errors import APIStatusError, FreddyError, ResponseValidationError
from .._models import ApiKeyDailyUsage, ApiKeyUsage, DailyUsage, KeyUsageReport
from .._periods import YearMonth

__all__ = [
    "DAILY_COLUMNS",
    "STATUSES",
    "USAGE_COLUMNS",
    "KeyRow",
    "Totals",
    "daily_document",
    "daily_records",
    "error_fields",
    "error_label",
    "key_rows",
    "plain",
    "report_records",
    "select_rows",
    "totals",
    "whole",
    "worst_status",
]

# Worst first wins. A status this version does not know may be news, so it outranks "warning"
# (but not "exceeded"); it is shown as the server spelled it.
_STATUS_RANK = {"no_limit": 0, "ok": 1, "warning": 2, "exceeded": 4}
_UNKNOWN_STATUS_RANK = 3
STATUSES = tuple(_STATUS_RANK)
"""The limit statuses ``--status`` takes."""


def plain(value: Any) -> Any:
    """An enum member as its value; anything else as it is."""
    return value.value if isinstance(value, enum.Enum) else value


def whole(value: Any) -> Any:
    """A count the API sent as a float (``68705.0``) as the integer it is; anything else as is."""
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    return value


def _columns(cls: type[Any], prefix: str = "") -> list[str]:
    """Flattened column names of a model, read from the class so that they follow it."""
    hints = typing.get_type_hints(cls)
    names: list[str] = []
    for field in cls.__attrs_attrs__:
        kind = hints[field.name]
        if hasattr(kind, "__attrs_attrs__"):
            names.extend(_columns(kind, f"{prefix}{field.name}_"))
        else:
            names.append(f"{prefix}{field.name}")
    return names


_USAGE_FIELDS = [field.name for field in ApiKeyUsage.__attrs_attrs__]
_ERROR_FIELDS = ("class", "status", "code", "message", "attempts", "trace_id")
# "period" (YYYY-MM) follows the key, so a spreadsheet sorts and pivots on one column.
_LEAD = ["api_key_id", "api_key_name", "organization_id", "period"]
USAGE_COLUMNS = [
    *_LEAD, *(c for c in _columns(ApiKeyUsage) if c not in _LEAD), *(f"error_{n}" for n in _ERROR_FIELDS)
]
"""csv columns of a report: key, name, organization, period, every other field of ApiKeyUsage
flattened, then the error's."""
DAILY_COLUMNS = ["organization_id", "year", "month", *_columns(DailyUsage)]


# -- records ---------------------------------------------------------------------------------


def error_fields(exc: FreddyError) -> dict[str, Any]:
    """The ``error`` of a failed record: class, status, code, message, attempts, trace_id."""
    status_error = exc if isinstance(exc, APIStatusError) else None
    return {
        "class": type(exc).__name__,
        "status": status_error.status if status_error else None,
        "code": status_error.code if status_error else None,
        "message": str(exc) if isinstance(exc, ResponseValidationError) else exc.message,
        "attempts": exc.attempts,
        "trace_id": status_error.trace_id if status_error else None,
    }


def error_label(exc: FreddyError) -> str:
    """``404 API_KEY_NOT_FOUND``, ``503 InternalServerError``, ``APIConnectionError``."""
    if isinstance(exc, APIStatusError):
        return f"{exc.status} {exc.code or type(exc).__name__}"
    return type(exc).__name__


def _lead(key_id: str, name: str | None, org_id: str, month: YearMonth) -> dict[str, Any]:
    return {"api_key_id": key_id, "api_key_name": name, "organization_id": org_id, "period": str(month)}


def _usage_record(usage: ApiKeyUsage) -> dict[str, Any]:
    answer: dict[str, Any] = unstructure(usage)
    answer["usage"] = {name: whole(value) for name, value in answer["usage"].items()}
    record = _lead(usage.api_key_id, usage.api_key_name, usage.organization_id, usage.period)
    return {**record, **answer, "error": None}


def _failure_record(
    org_id: str, key_id: str, name: str | None, month: YearMonth, exc: FreddyError
) -> dict[str, Any]:
    # The same keys, in the same order, as a usage record: every line of a jsonl file has one shape.
    lead = _lead(key_id, name, org_id, month)
    record = {**lead, **dict.fromkeys(_USAGE_FIELDS), "error": error_fields(exc)}
    record.update(lead, month=month.month, year=month.year)
    return record


def key_name(report: KeyUsageReport, names: Mapping[str, str]) -> str | None:
    """The key's name: that of its latest month fetched (a key can be renamed), else the listing's."""
    if report.usage:
        return max(report.usage, key=lambda u: u.period).api_key_name
    return names.get(report.api_key_id)


def _key_records(org_id: str, report: KeyUsageReport, names: Mapping[str, str]) -> list[dict[str, Any]]:
    name = key_name(report, names)
    records = [_usage_record(usage) for usage in report.usage]
    records += [_failure_record(org_id, report.api_key_id, name, m, e) for m, e in report.errors.items()]
    return records


def report_records(
    org_id: str, reports: Iterable[KeyUsageReport], names: Mapping[str, str]
) -> list[dict[str, Any]]:
    """One record per (key, month), failed months included, sorted by key ID then month, so
    that two runs over the same data give the same bytes whatever order the keys finished in.

    ``names`` (key ID to name, from the listing) names the failed months of a key no fetched
    month names.
    """
    records = [record for report in reports for record in _key_records(org_id, report, names)]
    return sorted(records, key=lambda r: (r["api_key_id"], r["period"]))


def _whole_counts(model: Any) -> dict[str, Any]:
    return {name: whole(value) for name, value in unstructure(model).items()}


def _days(daily: ApiKeyDailyUsage) -> list[dict[str, Any]]:
    return [_whole_counts(day) for day in sorted(daily.daily_usage, key=lambda d: d.date)]


def daily_records(daily: ApiKeyDailyUsage) -> list[dict[str, Any]]:
    """One record per day with traffic, oldest first."""
    base = {"organization_id": daily.organization_id, "year": daily.period.year, "month": daily.period.month}
    return [{**base, **day} for day in _days(daily)]


def daily_document(daily: ApiKeyDailyUsage) -> dict[str, Any]:
    """The whole daily answer, nested, its days oldest first."""
    document: dict[str, Any] = unstructure(daily)
    document["daily_usage"] = _days(daily)
    document["summary"] = _whole_counts(daily.summary)
    return document


# -- rows and totals -------------------------------------------------------------------------


def worst_status(statuses: Iterable[Any]) -> str:
    """exceeded > (unknown) > warning > ok > no_limit; ``-`` when there is none."""
    texts = sorted({str(plain(s)) for s in statuses})
    if not texts:
        return "-"
    return max(texts, key=lambda s: _STATUS_RANK.get(s, _UNKNOWN_STATUS_RANK))


@attrs.frozen
class KeyRow:
    """One key over the months asked."""

    api_key_id: str
    name: str
    months_ok: int
    requests: int
    cost: Decimal
    synapses: float
    neurons: float
    status: str
    errors: Mapping[YearMonth, FreddyError]
    costs: Mapping[YearMonth, Decimal]


@attrs.frozen
class Totals:
    """The sums of some key rows."""

    keys: int
    months_ok: int
    requests: int
    cost: Decimal
    synapses: float
    neurons: float
    failed_months: int
    failed_keys: int


def key_rows(reports: Iterable[KeyUsageReport], names: Mapping[str, str]) -> list[KeyRow]:
    """A row per key, costliest first (then by key ID: the order is the same every run)."""
    rows = [
        KeyRow(
            api_key_id=report.api_key_id, name=key_name(report, names) or "", months_ok=len(report.usage),
            requests=report.total_requests, cost=report.total_cost,
            synapses=math.fsum(u.usage.total_synapses for u in report.usage),
            neurons=math.fsum(u.usage.total_neurons for u in report.usage),
            status=worst_status(u.limit.status for u in report.usage), errors=dict(report.errors),
            costs={u.period: u.usage.total_cost for u in report.usage},
        )
        for report in reports
    ]
    return sorted(rows, key=lambda r: (-r.cost, r.api_key_id))


def totals(rows: Sequence[KeyRow]) -> Totals:
    """The exact sums of ``rows``."""
    return Totals(
        keys=len(rows), months_ok=sum(r.months_ok for r in rows), requests=sum(r.requests for r in rows),
        cost=sum((r.cost for r in rows), Decimal(0)), synapses=math.fsum(r.synapses for r in rows),
        neurons=math.fsum(r.neurons for r in rows), failed_months=sum(len(r.errors) for r in rows),
        failed_keys=sum(1 for r in rows if r.errors),
    )


def select_rows(
    rows: Sequence[KeyRow], *, top: int | None = None, statuses: Sequence[str] = ()
) -> tuple[list[KeyRow], list[KeyRow]]:
    """The rows shown (``statuses`` kept, then the ``top`` costliest) and the rest."""
    kept = [r for r in rows if not statuses or r.status in statuses]
    shown = kept[:top] if top is not None else kept
    chosen = {r.api_key_id for r in shown}
    return shown, [r for r in rows if r.api_key_id not in chosen]
