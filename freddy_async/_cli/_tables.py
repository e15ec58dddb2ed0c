"""The tables, laid out by rich: on a terminal in its width and colours, elsewhere as plain text.

Only layout lives here; every number comes from ``_records``. Server text is shown with its
control characters escaped (``_safe.for_terminal``), and never read as rich markup.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal

from rich import box
from rich.console import Console as RichConsole
from rich.console import RenderableType
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from .._errors import FreddyError
from .._models import ApiKeyDailyUsage
from .._periods import YearMonth
from ._console import Redacting, rich_console
from ._flags import with_flags
from ._records import KeyRow, Totals, error_fields, error_label
from ._safe import for_terminal

__all__ = [
    "chf",
    "clip",
    "count",
    "daily_table",
    "make_table",
    "month_ranges",
    "period_text",
    "plural",
    "report_table",
    "status_cell",
    "write_renderables",
]

_CENT = Decimal("0.01")
_NAME_WIDTH = 24
_BAR_WIDTH = 30
_EIGHTHS = ("", "\u258f", "\u258e", "\u258d", "\u258c", "\u258b", "\u258a", "\u2589")
_STATUS_STYLE = {"exceeded": "bold red", "warning": "yellow", "ok": "green", "no_limit": "dim"}
# What a terminal too narrow for the whole table does without, before rich shortens every column.
_OPTIONAL = ("NEURONS", "SYNAPSES")
_UNBOUNDED = 1_000_000


# -- text ------------------------------------------------------------------------------------


def chf(amount: Decimal) -> str:
    """``1,234.57``: rounded half up to the centime only here, for people to read."""
    return f"{amount.quantize(_CENT, rounding=ROUND_HALF_UP):,.2f}"


def count(value: float) -> str:
    """``68,705``; a count that is not whole keeps one decimal."""
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"


def plural(n: int, word: str, words: str | None = None) -> str:
    """``1 key``, ``2 keys``; ``words`` for an irregular plural."""
    return f"{n:,} {word}" if n == 1 else f"{n:,} {words or word + 's'}"


def period_text(months: Sequence[YearMonth]) -> str:
    """``2025-01..2025-03 (3 months)``."""
    span = str(months[0]) if len(months) == 1 else f"{months[0]}..{months[-1]}"
    return f"{span} ({plural(len(months), 'month')})"


def clip(text: str, width: int = _NAME_WIDTH) -> str:
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


def month_ranges(months: Iterable[YearMonth]) -> str:
    """``2025-01..2025-03, 2025-06`` for sorted months."""
    spans: list[list[YearMonth]] = []
    for month in months:
        if spans and spans[-1][-1].next() == month:
            spans[-1].append(month)
        else:
            spans.append([month])
    return ", ".join(str(s[0]) if len(s) == 1 else f"{s[0]}..{s[-1]}" for s in spans)


def status_cell(status: str) -> Text:
    """A limit status, coloured on a terminal; an unknown one as the server spelled it."""
    return Text(for_terminal(status), style=_STATUS_STYLE.get(status, "magenta"))


# -- layout ----------------------------------------------------------------------------------


def make_table(
    headers: Sequence[str], right: Iterable[int], footer: Sequence[str] | None = None, *,
    wrap: Iterable[int] = (),
) -> Table:
    """A plain table: a rule under the headers and above the ``footer`` (the totals), no frame,
    ``right`` columns right-aligned; only the ``wrap`` columns (names, messages) wrap on a narrow
    terminal. Cells are escaped by the caller (:func:`clip`, ``Text``)."""
    table = Table(box=box.SIMPLE, show_edge=False, pad_edge=False, collapse_padding=True,
                  show_footer=footer is not None, header_style="bold", footer_style="bold")
    aligned, wrapped = set(right), set(wrap)
    for i, header in enumerate(headers):
        table.add_column(header, footer=footer[i] if footer else "", no_wrap=i not in wrapped,
                         justify="right" if i in aligned else "left",
                         overflow="ellipsis" if i in wrapped else "fold")
    return table


def _fit(console: RichConsole, item: RenderableType) -> RenderableType:
    """``item``, without the columns a terminal too narrow for it can do without."""
    if isinstance(item, Table):
        unbounded = console.options.update_width(_UNBOUNDED)
        for column in [c for c in item.columns if c.header in _OPTIONAL]:
            if Measurement.get(console, unbounded, item).minimum <= console.width:
                break
            item.columns.remove(column)
    return item


def write_renderables(out: Redacting, items: Sequence[RenderableType]) -> None:
    """Print ``items`` to ``out``: as rich draws them on a terminal, in its width; else plain,
    whole and unpadded."""
    console = rich_console(out)
    if console.is_terminal:
        for item in items:
            console.print(_fit(console, item))
        return
    with console.capture() as captured:
        for item in items:
            console.print(item)
    out.write("".join(f"{line.rstrip()}\n" for line in captured.get().splitlines()))
    out.flush()


def _figures(row: KeyRow) -> list[str]:
    if not row.months_ok:  # nothing fetched is not the same as nothing used
        return ["-", "-", "-", "-"]
    return [f"{row.requests:,}", chf(row.cost), count(row.synapses), count(row.neurons)]


def report_table(
    org_id: str, months: Sequence[YearMonth], shown: Sequence[KeyRow], rest: Sequence[KeyRow],
    total: Totals,
) -> list[RenderableType]:
    """The title, a row per shown key, the rest in one row, the totals of every key, the errors."""
    n = len(months)
    footer = [f"TOTAL ({plural(total.keys, 'key')})", "", f"{total.months_ok}/{n * total.keys}",
              f"{total.requests:,}", chf(total.cost), count(total.synapses), count(total.neurons), ""]
    headers = ["KEY ID", "NAME", "MONTHS OK", "REQUESTS", "COST", "SYNAPSES", "NEURONS", "LIMIT"]
    table = make_table(headers, right={2, 3, 4, 5, 6}, footer=footer, wrap={1})
    for row in shown:
        table.add_row(for_terminal(row.api_key_id), clip(row.name), f"{row.months_ok}/{n}", *_figures(row),
                      status_cell(row.status))
    if rest:
        others = [f"{sum(r.months_ok for r in rest)}/{n * len(rest)}",
                  f"{sum(r.requests for r in rest):,}", chf(sum((r.cost for r in rest), Decimal(0))), "", ""]
        table.add_row(f"({plural(len(rest), 'more key')})", "", *others, "")
    title = f"API key usage of {for_terminal(org_id)}, {period_text(months)}, cost in CHF"
    return [Text(title), Text(""), table, *_error_section(shown, rest)]


def _error_section(shown: Sequence[KeyRow], rest: Sequence[KeyRow]) -> list[RenderableType]:
    failed = [r for r in [*shown, *rest] if r.errors]
    if not failed:
        return []
    table = make_table(["KEY ID", "MONTHS", "ERROR", "MESSAGE"], right=(), wrap={3})
    for row in failed:
        # The months a key failed alike are listed once, as ranges.
        groups: dict[tuple[str, str], list[YearMonth]] = {}
        for month in sorted(row.errors):
            exc: FreddyError = row.errors[month]
            message = with_flags(str(error_fields(exc)["message"]))
            groups.setdefault((error_label(exc), message), []).append(month)
        for (label, message), months in groups.items():
            table.add_row(for_terminal(row.api_key_id), month_ranges(months), for_terminal(label),
                          for_terminal(message))
    n_errors = sum(len(r.errors) for r in failed)
    heading = f"Not fetched: {plural(n_errors, 'month')} of {plural(len(failed), 'key')}"
    return [Text(""), Text(heading), Text(""), table]


# -- the daily breakdown ---------------------------------------------------------------------


def _bar(value: Decimal, top: Decimal, unicode: bool) -> str:
    if top <= 0 or value <= 0:
        return ""
    eighths = max(1, int(value / top * _BAR_WIDTH * 8))
    if not unicode:
        return "#" * max(1, eighths // 8)
    full, part = divmod(eighths, 8)
    return "\u2588" * full + _EIGHTHS[part]


def _day_label(day: date) -> str:
    return f"{day.isoformat()} {day.strftime('%a')}"


def daily_table(daily: ApiKeyDailyUsage, *, unicode: bool) -> list[RenderableType]:
    """Every day of the month with a bar of its cost, and the month's totals."""
    period, summary = daily.period, daily.summary
    by_date = {d.date: d for d in daily.daily_usage}
    first, last = period.start_date, period.end_date
    dates = {first + timedelta(days=i) for i in range((last - first).days + 1)} | set(by_date)
    top = max((d.cost for d in daily.daily_usage), default=Decimal(0))
    footer = ["TOTAL", f"{summary.total_api_key_requests:,}", chf(summary.total_api_key_cost),
              count(summary.total_synapses), count(summary.total_neurons), ""]
    headers = ["DATE", "REQUESTS", "COST", "SYNAPSES", "NEURONS", "COST PER DAY"]
    table = make_table(headers, right={1, 2, 3, 4}, footer=footer)
    for day in sorted(dates):  # a day outside the stated period is still shown
        row = by_date.get(day)
        if row is None:
            table.add_row(_day_label(day), "0", "0.00", "0", "0", "")
        else:
            table.add_row(_day_label(day), f"{row.requests:,}", chf(row.cost), count(row.synapses),
                          count(row.neurons), Text(_bar(row.cost, top, unicode), style="cyan"))
    title = (
        f"Daily API-key usage of {for_terminal(daily.organization_id)}, "
        f"{YearMonth(period.year, period.month)} "
        f"({period.days_with_api_usage} of {plural(period.days_in_month, 'day')} with usage), cost in CHF"
    )
    return [Text(title), Text(""), table]
