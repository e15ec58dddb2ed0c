"""What the command line writes as data: records, csv/jsonl/json, and the tables.

Money stays ``Decimal`` from the answer to the output: JSON numbers and csv cells carry
exactly the digits the API sent, and table sums are exact before they are rounded to centimes.
"""

from __future__ import annotations

import csv
import enum
import json
import math
import typing
from collections.abc import Iterator, Mapping, Sequence
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Protocol

from .._convert import unstructure
from .._errors import APIStatusError, FreddyError, ResponseValidationError
from .._models import ApiKeyDailyUsage, ApiKeyUsage, DailyUsage, KeyUsageReport
from .._periods import YearMonth
from ._console import Redacting
from ._safe import for_spreadsheet, for_terminal

__all__ = [
    "USAGE_COLUMNS",
    "ReportWriter",
    "chf",
    "clip",
    "error_fields",
    "report_writer",
    "write_daily",
]

_CENT = Decimal("0.01")
# Worst first wins. A status this version does not know may be news, so it outranks "warning"
# (but not "exceeded"); it is shown as the server spelled it.
_STATUS_RANK = {"no_limit": 0, "ok": 1, "warning": 2, "exceeded": 4}
_UNKNOWN_STATUS_RANK = 3
_NAME_WIDTH = 24
_BAR_WIDTH = 30
_EIGHTHS = ("", "\u258f", "\u258e", "\u258d", "\u258c", "\u258b", "\u258a", "\u2589")


# -- values ----------------------------------------------------------------------------------


def plain(value: Any) -> Any:
    """An enum member as its value; anything else as it is."""
    return value.value if isinstance(value, enum.Enum) else value


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


def chf(amount: Decimal) -> str:
    """``1,234.57``: rounded half up to the centime only here, for people to read."""
    return f"{amount.quantize(_CENT, rounding=ROUND_HALF_UP):,.2f}"


def _count(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"


def plural(n: int, word: str, words: str | None = None) -> str:
    """``1 key``, ``2 keys``; ``words`` for an irregular plural."""
    return f"{n:,} {word}" if n == 1 else f"{n:,} {words or word + 's'}"


def _flatten(record: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for name, value in record.items():
        if isinstance(value, Mapping):
            flat.update(_flatten(value, f"{prefix}{name}_"))
        else:
            flat[f"{prefix}{name}"] = value
    return flat


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


_USAGE_TOP = [field.name for field in ApiKeyUsage.__attrs_attrs__]
_ERROR_FIELDS = ("class", "status", "code", "message", "attempts", "trace_id")
USAGE_COLUMNS = [*_columns(ApiKeyUsage), *(f"error_{name}" for name in _ERROR_FIELDS)]
"""csv columns of a report: every field of ApiKeyUsage flattened, then the error's."""
_DAILY_COLUMNS = ["organization_id", "year", "month", *_columns(DailyUsage)]


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


def _usage_record(usage: ApiKeyUsage) -> dict[str, Any]:
    record: dict[str, Any] = unstructure(usage)
    record["error"] = None
    return record


def _failure_record(org_id: str, key_id: str, month: YearMonth, exc: FreddyError) -> dict[str, Any]:
    # The same keys as a usage record, so that every line of a jsonl file has one shape.
    record: dict[str, Any] = dict.fromkeys(_USAGE_TOP)
    record.update(
        api_key_id=key_id, organization_id=org_id, month=month.month, year=month.year,
        error=error_fields(exc),
    )
    return record


def key_records(
    org_id: str, report: KeyUsageReport, months: Sequence[YearMonth]
) -> Iterator[dict[str, Any]]:
    """One record per requested month of the key, oldest first, the failed ones included."""
    found = {u.period: u for u in report.usage}
    for month in months:
        if month in found:
            yield _usage_record(found[month])
        elif month in report.errors:
            yield _failure_record(org_id, report.api_key_id, month, report.errors[month])
    # The batch files every month under usage or errors; should it ever do otherwise, the
    # record is still written rather than lost.
    requested = set(months)
    for usage in report.usage:
        if usage.period not in requested:
            yield _usage_record(usage)
    for month, exc in report.errors.items():
        if month not in requested:
            yield _failure_record(org_id, report.api_key_id, month, exc)


# -- tables ----------------------------------------------------------------------------------


def render(headers: Sequence[str], rows: Sequence[Sequence[str]], right: set[int]) -> list[str]:
    """Lay out a table: columns padded to fit, ``right`` ones right-aligned; an empty row is
    drawn as a rule. Control characters in a cell are shown escaped, and measured so."""
    rows = [[for_terminal(cell) for cell in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))

    def line(cells: Sequence[str]) -> str:
        parts = [
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return "  ".join(parts).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return [line(headers), rule, *(line(row) if row else rule for row in rows)]


def month_ranges(months: Sequence[YearMonth]) -> str:
    """``2025-01..2025-03, 2025-06`` for sorted months."""
    spans: list[list[YearMonth]] = []
    for month in months:
        if spans and spans[-1][-1].next() == month:
            spans[-1].append(month)
        else:
            spans.append([month])
    return ", ".join(str(s[0]) if len(s) == 1 else f"{s[0]}..{s[-1]}" for s in spans)


def worst_status(statuses: Sequence[Any]) -> str:
    """exceeded > (unknown) > warning > ok > no_limit; ``-`` when there is none."""
    texts = sorted({str(plain(s)) for s in statuses})
    if not texts:
        return "-"
    return max(texts, key=lambda s: _STATUS_RANK.get(s, _UNKNOWN_STATUS_RANK))


# -- report writers --------------------------------------------------------------------------


class ReportWriter(Protocol):
    """Where the reports of a batch go, one :class:`KeyUsageReport` at a time."""

    def add(self, report: KeyUsageReport) -> None: ...

    def finish(self, *, complete: bool) -> None:
        """End the output; ``complete`` is False when the batch was cut short."""


class _CsvReport:
    def __init__(self, out: Redacting, org_id: str, months: Sequence[YearMonth]) -> None:
        self._out = out
        self._org_id = org_id
        self._months = months
        self._terminal = out.isatty()
        self._writer = csv.DictWriter(out, fieldnames=USAGE_COLUMNS, lineterminator="\n")
        self._writer.writeheader()

    def add(self, report: KeyUsageReport) -> None:
        for record in key_records(self._org_id, report, self._months):
            flat = _flatten(record)
            self._writer.writerow(
                {column: csv_text(flat.get(column), terminal=self._terminal) for column in USAGE_COLUMNS}
            )
        self._out.flush()

    def finish(self, *, complete: bool) -> None:
        self._out.flush()


class _JsonlReport:
    def __init__(self, out: Redacting, org_id: str, months: Sequence[YearMonth]) -> None:
        self._out = out
        self._org_id = org_id
        self._months = months

    def add(self, report: KeyUsageReport) -> None:
        for record in key_records(self._org_id, report, self._months):
            self._out.write(json_text(record) + "\n")
        self._out.flush()

    def finish(self, *, complete: bool) -> None:
        self._out.flush()


class _JsonReport:
    """A JSON array of the jsonl records, written as it goes."""

    def __init__(self, out: Redacting, org_id: str, months: Sequence[YearMonth]) -> None:
        self._out = out
        self._org_id = org_id
        self._months = months
        self._first = True
        out.write("[")

    def add(self, report: KeyUsageReport) -> None:
        for record in key_records(self._org_id, report, self._months):
            self._out.write(("\n  " if self._first else ",\n  ") + json_text(record))
            self._first = False

    def finish(self, *, complete: bool) -> None:
        # Closed even when cut short, so that what was written still parses.
        self._out.write("]\n" if self._first else "\n]\n")
        self._out.flush()


class _TableReport:
    """One row per key, in the order the keys were given or listed; a totals row; the errors."""

    def __init__(
        self, out: Redacting, org_id: str, months: Sequence[YearMonth], order: Mapping[str, int]
    ) -> None:
        self._out = out
        self._org_id = org_id
        self._months = months
        self._order = order
        self._reports: list[KeyUsageReport] = []

    def add(self, report: KeyUsageReport) -> None:
        self._reports.append(report)

    def finish(self, *, complete: bool) -> None:
        if not complete:
            return  # a table of some of the keys would read as the whole organization's
        last = len(self._order)
        reports = sorted(self._reports, key=lambda r: (self._order.get(r.api_key_id, last), r.api_key_id))
        n_months = len(self._months)
        period = str(self._months[0]) if n_months == 1 else f"{self._months[0]}..{self._months[-1]}"
        title = (
            f"API key usage of {for_terminal(self._org_id)}, {period} ({plural(n_months, 'month')}), "
            "cost in CHF"
        )
        rows: list[list[str]] = []
        cost = Decimal(0)
        requests = months_ok = 0
        synapses: list[float] = []
        neurons: list[float] = []
        for report in reports:
            key_synapses = math.fsum(u.usage.total_synapses for u in report.usage)
            key_neurons = math.fsum(u.usage.total_neurons for u in report.usage)
            name = clip(report.usage[-1].api_key_name, _NAME_WIDTH) if report.usage else ""
            if report.usage:
                figures = [
                    f"{report.total_requests:,}", chf(report.total_cost), _count(key_synapses),
                    _count(key_neurons),
                ]
            else:  # nothing fetched is not the same as nothing used
                figures = ["-", "-", "-", "-"]
            rows.append([
                report.api_key_id, name, f"{len(report.usage)}/{n_months}", *figures,
                worst_status([u.limit.status for u in report.usage]),
            ])
            cost += report.total_cost
            requests += report.total_requests
            months_ok += len(report.usage)
            synapses.append(key_synapses)
            neurons.append(key_neurons)
        rows.append([])
        rows.append([
            f"TOTAL ({plural(len(reports), 'key')})", "", f"{months_ok}/{n_months * len(reports)}",
            f"{requests:,}", chf(cost), _count(math.fsum(synapses)), _count(math.fsum(neurons)), "",
        ])
        headers = ["KEY ID", "NAME", "MONTHS OK", "REQUESTS", "COST", "SYNAPSES", "NEURONS", "LIMIT"]
        lines = [title, "", *render(headers, rows, right={2, 3, 4, 5, 6}), *_error_lines(reports)]
        self._out.write("\n".join(lines) + "\n")
        self._out.flush()


def clip(text: str, width: int) -> str:
    """``text`` shown on a terminal in at most ``width`` columns, cut with ``~``, never inside an
    escape such as ``\\x1b``."""
    shown = for_terminal(text)
    if len(shown) <= width:
        return shown
    kept: list[str] = []
    room = width - 1
    for char in text:
        piece = for_terminal(char)
        if len(piece) > room:
            break
        kept.append(piece)
        room -= len(piece)
    return "".join(kept) + "~"


def _error_lines(reports: Sequence[KeyUsageReport]) -> list[str]:
    failed = [r for r in reports if r.errors]
    if not failed:
        return []
    n_errors = sum(len(r.errors) for r in failed)
    rows: list[list[str]] = []
    for report in failed:
        # The months a key failed alike are listed once, as ranges.
        groups: dict[tuple[str, str], list[YearMonth]] = {}
        for month in sorted(report.errors):
            exc = report.errors[month]
            groups.setdefault((error_label(exc), str(error_fields(exc)["message"])), []).append(month)
        for (label, message), months in groups.items():
            rows.append([report.api_key_id, month_ranges(months), label, message])
    heading = f"Not fetched: {plural(n_errors, 'month')} of {plural(len(failed), 'key')}"
    return ["", heading, "", *render(["KEY ID", "MONTHS", "ERROR", "MESSAGE"], rows, right=set())]


def report_writer(
    fmt: str, out: Redacting, org_id: str, months: Sequence[YearMonth], order: Mapping[str, int]
) -> ReportWriter:
    """The writer of ``fmt`` (table, csv, jsonl or json); ``order`` ranks the keys of a table."""
    if fmt == "csv":
        return _CsvReport(out, org_id, months)
    if fmt == "jsonl":
        return _JsonlReport(out, org_id, months)
    if fmt == "json":
        return _JsonReport(out, org_id, months)
    return _TableReport(out, org_id, months, order)


# -- the daily breakdown ---------------------------------------------------------------------


def write_daily(daily: ApiKeyDailyUsage, fmt: str, out: Redacting) -> None:
    """Write a month's daily breakdown, days oldest first.

    csv and jsonl: one record per day with traffic; json: the whole answer, nested; table:
    every day of the month with a bar of its cost, and the month's totals.
    """
    days = sorted(daily.daily_usage, key=lambda d: d.date)
    base = {"organization_id": daily.organization_id, "year": daily.period.year, "month": daily.period.month}
    records = [{**base, **unstructure(day)} for day in days]
    if fmt == "csv":
        writer = csv.DictWriter(out, fieldnames=_DAILY_COLUMNS, lineterminator="\n")
        writer.writeheader()
        terminal = out.isatty()
        for record in records:
            writer.writerow(
                {column: csv_text(record.get(column), terminal=terminal) for column in _DAILY_COLUMNS}
            )
    elif fmt == "jsonl":
        for record in records:
            out.write(json_text(record) + "\n")
    elif fmt == "json":
        whole: dict[str, Any] = unstructure(daily)
        whole["daily_usage"] = [unstructure(day) for day in days]
        out.write(json_text(whole) + "\n")
    else:
        unicode = out.encoding.lower().replace("-", "").startswith("utf")
        out.write("\n".join(_daily_table(daily, unicode=unicode)) + "\n")
    out.flush()


def _bar(value: Decimal, top: Decimal, unicode: bool) -> str:
    if top <= 0 or value <= 0:
        return ""
    eighths = max(1, int(value / top * _BAR_WIDTH * 8))
    if not unicode:
        return "#" * max(1, eighths // 8)
    full, part = divmod(eighths, 8)
    return "\u2588" * full + _EIGHTHS[part]


def _daily_table(daily: ApiKeyDailyUsage, *, unicode: bool) -> list[str]:
    period = daily.period
    by_date = {d.date: d for d in daily.daily_usage}
    first, last = period.start_date, period.end_date
    dates = {first + timedelta(days=i) for i in range((last - first).days + 1)}
    dates.update(by_date)  # a day outside the stated period is still shown
    top = max((d.cost for d in daily.daily_usage), default=Decimal(0))
    rows: list[list[str]] = []
    for day in sorted(dates):
        row = by_date.get(day)
        if row is None:
            rows.append([_day_label(day), "0", "0.00", "0", "0", ""])
        else:
            rows.append([
                _day_label(day), f"{row.requests:,}", chf(row.cost), _count(row.synapses),
                _count(row.neurons), _bar(row.cost, top, unicode),
            ])
    summary = daily.summary
    rows.append([])
    rows.append([
        "TOTAL", f"{summary.total_api_key_requests:,}", chf(summary.total_api_key_cost),
        _count(summary.total_synapses), _count(summary.total_neurons), "",
    ])
    title = (
        f"Daily API-key usage of {for_terminal(daily.organization_id)}, "
        f"{YearMonth(period.year, period.month)} "
        f"({period.days_with_api_usage} of {plural(period.days_in_month, 'day')} with usage), cost in CHF"
    )
    headers = ["DATE", "REQUESTS", "COST", "SYNAPSES", "NEURONS", "COST PER DAY"]
    return [title, "", *render(headers, rows, right={1, 2, 3, 4})]


def _day_label(day: date) -> str:
    return f"{day.isoformat()} {day.strftime('%a')}"
