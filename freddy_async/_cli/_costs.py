"""``freddy-usage costs``: every key's cost over a range of months, one request a month.

The usage-limits answer (API.md §4) holds every key's cost of its month, so the whole table
takes as many requests as there are months, however many keys the organization has. What it
does not hold (requests, synapses, neurons) is ``report``'s business, at one request per key
and month.

Everything is fetched before anything is written: a table, a wide csv and a sorted listing all
need every month, and a month that fails ends the command with nothing half-written.
"""

from __future__ import annotations

import argparse
import csv
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

import attrs

from .._client import FreddyClient
from .._models import ApiKeyLimit
from .._periods import YearMonth
from ._console import Redacting
from ._output import chf, clip, csv_text, json_text, plain, plural, render
from ._safe import for_terminal

__all__ = ["KeyCosts", "add_parser", "costs_months", "fetch_costs", "summary_line", "write_costs"]

# A year of months ending at --to, when --from is not given.
_DEFAULT_MONTHS = 12
_NAME_WIDTH = 24


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
    if fmt == "csv":
        _write_csv(kept, months, out)
    elif fmt in ("jsonl", "json"):
        _write_records(kept, months, out, as_array=fmt == "json")
    else:
        out.write("\n".join(_table(keys, months, org_id, top)) + "\n")
    out.flush()


def _write_csv(keys: Sequence[KeyCosts], months: Sequence[YearMonth], out: Redacting) -> None:
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["api_key_id", "api_key_name", *map(str, months), "total"])
    for key in sorted(keys, key=lambda k: k.api_key_id):
        # A month whose answer did not list the key is left empty: unknown is not zero.
        cells = [csv_text(key.months[m].current_usage) if m in key.months else "" for m in months]
        writer.writerow([csv_text(key.api_key_id), csv_text(key.name), *cells, csv_text(key.total)])


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


def _write_records(
    keys: Sequence[KeyCosts], months: Sequence[YearMonth], out: Redacting, *, as_array: bool
) -> None:
    records = [
        json_text(_record(month, key.months[month]))
        for key in sorted(keys, key=lambda k: k.api_key_id)
        for month in months
        if month in key.months
    ]
    if not as_array:
        out.write("".join(f"{record}\n" for record in records))
    elif records:
        out.write("[\n  " + ",\n  ".join(records) + "\n]\n")
    else:
        out.write("[]\n")


def _table(keys: Sequence[KeyCosts], months: Sequence[YearMonth], org_id: str, top: int | None) -> list[str]:
    ranked = _by_cost(keys)
    shown, rest = (ranked[:top], ranked[top:]) if top is not None else (ranked, [])
    last = months[-1]

    def money(values: Sequence[Decimal | None]) -> list[str]:
        return ["-" if v is None else chf(v) for v in values]

    def month_sums(group: Sequence[KeyCosts]) -> list[Decimal]:
        return [sum((k.months[m].current_usage for k in group if m in k.months), Decimal(0)) for m in months]

    rows: list[list[str]] = []
    for key in shown:
        name = clip(key.name, _NAME_WIDTH)
        cells = money([key.months[m].current_usage if m in key.months else None for m in months])
        # Server text: render() shows its control characters escaped.
        status = str(plain(key.months[last].status)) if last in key.months else "-"
        rows.append([key.api_key_id, name, *cells, chf(key.total), status])
    if rest:
        rows.append([f"({plural(len(rest), 'more key')})", "", *money(month_sums(rest)),
                     chf(sum((k.total for k in rest), Decimal(0))), ""])
    rows.append([])
    total = sum((k.total for k in keys), Decimal(0))
    rows.append([f"TOTAL ({plural(len(keys), 'key')})", "", *money(month_sums(keys)), chf(total), ""])
    period = str(months[0]) if len(months) == 1 else f"{months[0]}..{last}"
    title = f"API key cost of {for_terminal(org_id)}, {period} ({plural(len(months), 'month')}), in CHF"
    headers = ["KEY ID", "NAME", *map(str, months), "TOTAL", f"LIMIT {last}"]
    right = set(range(2, 3 + len(months)))
    return [title, "", *render(headers, rows, right)]


def add_parser(
    commands: Any, parents: Sequence[argparse.ArgumentParser], month: Callable[[str], YearMonth],
    count: Callable[[str], int],
) -> None:
    """Add ``costs`` to the subcommands, with the common ``parents`` options."""
    parser = commands.add_parser(
        "costs", parents=parents, help="every key's cost over a range of months, one request a month",
        description="Every key's cost (CHF) from the usage-limits answer: one request a month, "
        "none per key. table: a row per key (costliest first), a column per month, the total "
        "and the last month's limit status. csv: the same, wide, sorted by key ID. jsonl, json: "
        "one record per (key, month). For requests, synapses and neurons use 'report'.",
    )
    parser.add_argument("--from", dest="from_month", type=month, default=None, metavar="YYYY-MM",
                        help=f"first month (default: {_DEFAULT_MONTHS} months up to --to)")
    parser.add_argument("--to", dest="to_month", type=month, default=None, metavar="YYYY-MM",
                        help="last month, included (default: the current month)")
    parser.add_argument("--top", type=count, default=None, metavar="N",
                        help="only the N costliest keys (the table's totals still cover every key)")


def summary_line(keys: Sequence[KeyCosts], months: Sequence[YearMonth]) -> str:
    """``6 keys x 3 months: CHF 1,234.56``."""
    total = sum((k.total for k in keys), Decimal(0))
    return f"{plural(len(keys), 'key')} x {plural(len(months), 'month')}: CHF {chf(total)}"
