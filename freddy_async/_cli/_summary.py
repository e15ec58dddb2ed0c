"""The closing status line of each command, on stderr: what was fetched and what it cost.

One function per line, so that what a command says at the end is found in one place.
"""

from __future__ import annotations

from collections.abc import Sequence

from .._models import ApiKeyDailyUsage
from .._periods import YearMonth
from ._console import Stats
from ._records import Totals
from ._tables import chf, plural

__all__ = ["cache_text", "daily_summary", "fetched_with", "report_summary"]


def fetched_with(stats: Stats, sent: int | None = None) -> str:
    """``fetched with 16 HTTP requests, 0 retries, 0.4 s``; ``sent`` overrides the client's count."""
    requests = stats.requests if sent is None else sent
    return (
        f"fetched with {plural(requests, 'HTTP request')}, {plural(stats.retries, 'retry', 'retries')}, "
        f"{stats.elapsed:.1f} s"
    )


def cache_text(stats: Stats, answers: int) -> str:
    """``; 600 months from the cache, 0 fetched`` of ``answers`` months, when the run has a cache."""
    if stats.cache is None or stats.client is None:
        return ""
    hits = stats.client.stats.cache_hits
    return f"; {plural(hits, 'month')} from the cache, {answers - hits:,} fetched"


def report_summary(total: Totals, months: Sequence[YearMonth], stats: Stats, sent: int | None = None) -> str:
    """``6 keys x 3 months: 4,441 requests, CHF 1,234.56[; 3 months of 1 key failed]; fetched with ...``."""
    text = (
        f"{plural(total.keys, 'key')} x {plural(len(months), 'month')}: {total.requests:,} requests, "
        f"CHF {chf(total.cost)}"
    )
    if total.failed_months:
        text += f"; {plural(total.failed_months, 'month')} of {plural(total.failed_keys, 'key')} failed"
    return f"{text}; {fetched_with(stats, sent)}{cache_text(stats, total.months_ok)}"


def daily_summary(daily: ApiKeyDailyUsage, month: YearMonth, stats: Stats) -> str:
    """``2025-11: 28 days with usage; fetched with ...``."""
    days = plural(len(daily.daily_usage), "day")
    return f"{month}: {days} with usage; {fetched_with(stats)}{cache_text(stats, 1)}"
