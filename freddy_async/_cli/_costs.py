"""``freddy-usage costs``: every key's cost over a range of months, one request a month.

The usage-limits answer (API.md §4) holds every key's cost of its month, so the whole table
takes as many requests as there are months, however many keys the organization has. What it
does not hold (requests, synapses, neurons) is ``report``'s business, at one request per key
and month.

Everything is fetched before anything is written: a table, a wide csv and a sorted listing all
need every month, and a month that fails ends the command with nothing half-written.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import attrs
from rich.console import RenderableType
from rich.text import Text

from .._client import FreddyClient
from .._models import ApiKeyLimit
from .._periods import YearMonth
from ._console import Redacting
from ._records import plain
from ._safe import for_terminal
from ._tables import chf, clip, make_table, period_text, plural, status_cell, write_renderables
from ._writers import write_records

__all__ = ["KeyCosts", "costs_months", "fetch_costs", "summary_line", "write_costs"]

# A year of months ending at --to, when --from is not given.
_DEFAULT_MONTHS = 12


@attrs.frozen
class KeyCosts:
    """One key over the months asked: its entry of each month's answer that listed it."""

    api_key_id: str
    months: dict[YearMonth, ApiKeyLimit]

    @property
    def name(self) -> str:
        """The name of the key's latest month (a key can be renamed)."""
        return self.months[max(self.months)].api_key_name

    @property
    def total(self) -> Decimal:
        """Cost over the months, exact."""
        return sum((entry.current_usage for entry in self.months.values()), Decimal(0))


def costs_months(first: YearMonth | None, last: YearMonth | None) -> list[YearMonth]:
    """The months from ``first`` to ``last``; ``last`` defaults to the current month and
    ``first`` to a year of months ending at ``last``.

    Raises:
        ValueError: ``last`` comes before ``first``.
    """
    end = last if last is not None else YearMonth.current()
    if first is None:
        # Counted in months since year 0; never before 0001-01, the first month there is.
        index = max(end.year * 12 + end.month - _DEFAULT_MONTHS, 12)
        first = YearMonth(index // 12, index % 12 + 1)
    if end < first:
        which = "--to" if last is not None else "the current month"
        raise ValueError(f"{which} {end} comes before --from {first}")
    return YearMonth.range(first, end)


async def fetch_costs(client: FreddyClient, org_id: str, months: Sequence[YearMonth]) -> list[KeyCosts]:
    """Every key's cost in ``months``, one request a month.

    Raises:
        FreddyError: the first month that could not be fetched.
    """
    keys: dict[str, dict[YearMonth, ApiKeyLimit]] = {}
    # The answers name no month: iter_usage_limits yields them in the order of the sorted,
    # unique months it was given.
    ordered = iter(sorted(set(months)))
    async for limits in client.iter_usage_limits(org_id, months=months):
        month = next(ordered)
        for entry in limits.api_key_limits:
            keys.setdefault(entry.api_key_id, {})[month] = entry
    return [KeyCosts(key_id, by_month) for key_id, by_month in keys.items()]


def _by_cost(keys: Sequence[KeyCosts]) -> list[KeyCosts]:
    return sorted(keys, key=lambda k: (-k.total, k.api_key_id))


def write_costs(
    keys: Sequence[KeyCosts],
    months: Sequence[YearMonth],
    fmt: str,
    out: Redacting,
    *,
    org_id: str,
    top: int | None = None,
) -> None:
    """Write the costs as ``fmt`` (table, csv, jsonl or json); ``top`` keeps the costliest keys."""
    kept = _by_cost(keys)[:top] if top is not None else list(keys)
    by_id = sorted(kept, key=lambda k: k.api_key_id)
    if fmt == "csv":
        # Wide: a column per month. A month whose answer did not list the key is left empty:
        # unknown is not zero.
        columns = ["api_key_id", "api_key_name", *map(str, months), "total"]
        wide = [{"api_key_id": k.api_key_id, "api_key_name": k.name,
                 **{str(m): k.months[m].current_usage for m in months if m in k.months}, "total": k.total}
                for k in by_id]
        write_records(fmt, wide, out, columns=columns)
    elif fmt in ("jsonl", "json"):
        records = [_record(m, k.months[m]) for k in by_id for m in months if m in k.months]
        write_records(fmt, records, out, columns=())
    else:
        write_renderables(out, _table(keys, months, org_id, top))


def _record(month: YearMonth, entry: ApiKeyLimit) -> dict[str, Any]:
    return {
        "month": str(month),
        "api_key_id": entry.api_key_id,
        "api_key_name": entry.api_key_name,
        "cost": entry.current_usage,
        "monthly_limit": entry.monthly_limit,
        "utilization_percentage": entry.utilization_percentage,
        "status": plain(entry.status),
    }


def _month_sums(group: Sequence[KeyCosts], months: Sequence[YearMonth]) -> list[Decimal]:
    return [sum((k.months[m].current_usage for k in group if m in k.months), Decimal(0)) for m in months]


def _money(values: Sequence[Decimal | None]) -> list[str]:
    return ["-" if v is None else chf(v) for v in values]


def _table(
    keys: Sequence[KeyCosts], months: Sequence[YearMonth], org_id: str, top: int | None
) -> list[RenderableType]:
    ranked = _by_cost(keys)
    shown, rest = (ranked[:top], ranked[top:]) if top is not None else (ranked, [])
    last = months[-1]
    total = sum((k.total for k in keys), Decimal(0))
    footer = [f"TOTAL ({plural(len(keys), 'key')})", "", *_money(_month_sums(keys, months)), chf(total), ""]
    headers = ["KEY ID", "NAME", *map(str, months), "TOTAL", f"LIMIT {last}"]
    table = make_table(headers, right=range(2, 3 + len(months)), footer=footer, wrap={1})
    for key in shown:
        cells = _money([key.months[m].current_usage if m in key.months else None for m in months])
        status: Text | str = status_cell(str(plain(key.months[last].status))) if last in key.months else "-"
        table.add_row(for_terminal(key.api_key_id), clip(key.name), *cells, chf(key.total), status)
    if rest:
        table.add_row(f"({plural(len(rest), 'more key')})", "", *_money(_month_sums(rest, months)),
                      chf(sum((k.total for k in rest), Decimal(0))), "")
    title = f"API key cost of {for_terminal(org_id)}, {period_text(months)}, in CHF"
    return [Text(title), Text(""), table]


def summary_line(keys: Sequence[KeyCosts], months: Sequence[YearMonth]) -> str:
    """``6 keys x 3 months: CHF 1,234.56``."""
    total = sum((k.total for k in keys), Decimal(0))
    return f"{plural(len(keys), 'key')} x {plural(len(months), 'month')}: CHF {chf(total)}"
