"""``report --format html``: one self-contained page with the table and a chart of cost per month.

The chart is inline SVG, one bar per month stacked by the costliest keys, the rest as "other".
The page loads nothing (no script, font, style sheet or image from anywhere), so it opens the
same offline, in a mail, or years later. Every bar segment carries its exact cost in
``data-cost``, and the totals row its sum, so what is drawn can be checked against the table.
Server text is HTML-escaped, with its control and bidi characters shown escaped as everywhere.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from decimal import Decimal

import attrs

from .._periods import YearMonth
from ._records import KeyRow, Totals
from ._safe import for_terminal
from ._tables import chf, count, period_text, plural

__all__ = ["CHART_KEYS", "Segment", "chart_segments", "html_page"]

CHART_KEYS = 5
"""Keys the chart stacks by default; the rest are one "other" segment."""
# Tableau 10; the last, grey, is "other".
_COLOURS = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7",
            "#9c755f")
_OTHER_COLOUR = "#bab0ac"
OTHER = "other"
_PLOT_HEIGHT = 240
_BAR, _GAP, _LEFT, _TOP, _BOTTOM = 40, 16, 80, 12, 28
_STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { padding: 0.2em 0.8em; border-bottom: 1px solid #ddd; white-space: nowrap; }
th { text-align: left; } td.n { text-align: right; font-variant-numeric: tabular-nums; }
tfoot td { font-weight: bold; border-top: 2px solid #888; }
.exceeded { color: #c00; font-weight: bold; } .warning { color: #a60; }
svg text { font: 11px sans-serif; fill: #444; }
.legend span { display: inline-block; margin-right: 1.2em; }
.legend i { display: inline-block; width: 0.9em; height: 0.9em; margin-right: 0.3em; vertical-align: -0.1em; }
"""


@attrs.frozen
class Segment:
    """One key's (or the others') cost in one month: a piece of that month's bar."""

    month: YearMonth
    key: str
    label: str
    cost: Decimal
    colour: str


def _t(text: str) -> str:
    return html.escape(for_terminal(text))


def chart_segments(rows: Sequence[KeyRow], months: Sequence[YearMonth], keys: int) -> list[Segment]:
    """The bars' segments: the ``keys`` costliest keys of ``rows`` (costliest first), then the
    others summed; months without cost give no segment. They sum to the rows' total cost."""
    stacked = list(rows[: min(keys, len(_COLOURS))])
    others = rows[len(stacked):]
    segments: list[Segment] = []
    for month in months:
        for row, colour in zip(stacked, _COLOURS[: len(stacked)], strict=True):
            cost = row.costs.get(month, Decimal(0))
            if cost:
                segments.append(Segment(month, row.api_key_id, row.name or row.api_key_id, cost, colour))
        rest = sum((r.costs.get(month, Decimal(0)) for r in others), Decimal(0))
        if rest:
            label = f"{plural(len(others), 'other key')}"
            segments.append(Segment(month, OTHER, label, rest, _OTHER_COLOUR))
    return segments


def _svg(segments: Sequence[Segment], months: Sequence[YearMonth]) -> str:
    month_totals = {m: sum((s.cost for s in segments if s.month == m), Decimal(0)) for m in months}
    top = max(month_totals.values(), default=Decimal(0)) or Decimal(1)
    width = _LEFT + len(months) * (_BAR + _GAP)
    height = _TOP + _PLOT_HEIGHT + _BOTTOM
    base = _TOP + _PLOT_HEIGHT
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" id="chart" width="{width}" height="{height}" '
             f'role="img" aria-label="cost per month in CHF">']
    for fraction in (Decimal(0), Decimal("0.5"), Decimal(1)):
        y = base - float(fraction) * _PLOT_HEIGHT
        parts.append(f'<line x1="{_LEFT - 4}" x2="{width}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd"/>'
                     f'<text x="{_LEFT - 8}" y="{y + 4:.1f}" text-anchor="end">{chf(top * fraction)}</text>')
    for i, month in enumerate(months):
        x = _LEFT + i * (_BAR + _GAP) + _GAP / 2
        y = float(base)
        for segment in (s for s in segments if s.month == month):
            h = float(segment.cost / top) * _PLOT_HEIGHT
            y -= h
            parts.append(
                f'<rect class="bar" x="{x:.1f}" y="{y:.2f}" width="{_BAR}" height="{h:.2f}" '
                f'fill="{segment.colour}" data-month="{month}" data-key="{_t(segment.key)}" '
                f'data-cost="{segment.cost}"><title>{month} {_t(segment.label)}: CHF {chf(segment.cost)}'
                "</title></rect>"
            )
        parts.append(f'<text x="{x + _BAR / 2:.1f}" y="{base + 16}" text-anchor="middle">{month}</text>')
    parts.append("</svg>")
    return "\n".join(parts)


def _legend(segments: Sequence[Segment]) -> str:
    seen = dict.fromkeys((s.colour, s.label) for s in segments)
    items = (f'<span><i style="background:{colour}"></i>{_t(label)}</span>' for colour, label in seen)
    return f'<p class="legend">{"".join(items)}</p>'


def _key_table(shown: Sequence[KeyRow], rest: Sequence[KeyRow], total: Totals, n_months: int) -> str:
    head = "".join(f"<th>{h}</th>" for h in
                   ("Key ID", "Name", "Months OK", "Requests", "Cost", "Synapses", "Neurons", "Limit"))
    body = []
    for row in shown:
        fetched = row.months_ok > 0
        figures = (f"{row.requests:,}", chf(row.cost), count(row.synapses), count(row.neurons))
        cells = "".join(f'<td class="n">{f if fetched else "-"}</td>' for f in figures)
        key = _t(row.api_key_id)
        body.append(f'<tr data-key="{key}" data-cost="{row.cost}"><td>{key}</td><td>{_t(row.name)}</td>'
                    f'<td class="n">{row.months_ok}/{n_months}</td>{cells}'
                    f'<td class="{_t(row.status)}">{_t(row.status)}</td></tr>')
    if rest:
        cost = sum((r.cost for r in rest), Decimal(0))
        body.append(f'<tr data-cost="{cost}"><td colspan="4">({plural(len(rest), "more key")})</td>'
                    f'<td class="n">{chf(cost)}</td><td colspan="3"></td></tr>')
    foot = (f'<tr id="total" data-cost="{total.cost}"><td>Total ({plural(total.keys, "key")})</td><td></td>'
            f'<td class="n">{total.months_ok}/{n_months * total.keys}</td>'
            f'<td class="n">{total.requests:,}</td>'
            f'<td class="n">{chf(total.cost)}</td><td class="n">{count(total.synapses)}</td>'
            f'<td class="n">{count(total.neurons)}</td><td></td></tr>')
    return (f'<table id="keys"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody>'
            f"<tfoot>{foot}</tfoot></table>")


def html_page(
    org_id: str, months: Sequence[YearMonth], shown: Sequence[KeyRow], rest: Sequence[KeyRow],
    total: Totals, segments: Sequence[Segment],
) -> str:
    """The whole page: title, chart, legend, the key table with its totals, the failed months."""
    title = f"API key usage of {_t(org_id)}, {period_text(months)}"
    failed = "".join(
        f"<li>{_t(row.api_key_id)}: {plural(len(row.errors), 'month')} not fetched</li>"
        for row in [*shown, *rest] if row.errors
    )
    return "\n".join([
        "<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
        f"<title>{title}</title>", f"<style>{_STYLE}</style>", "</head>", "<body>",
        f"<h1>{title}</h1>", "<p>Cost in CHF, per month, stacked by key.</p>",
        _svg(segments, months), _legend(segments), _key_table(shown, rest, total, len(months)),
        f'<h2>Not fetched</h2><ul id="failed">{failed}</ul>' if failed else "", "</body>", "</html>", "",
    ])
