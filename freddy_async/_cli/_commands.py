"""The commands besides ``report``: ``daily``, ``costs`` and ``demo``; and which one runs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from .._client import FreddyClient
from .._models import ApiKeyDailyUsage
from .._periods import YearMonth
from . import _costs
from ._args import DEMO_LAST_MONTH, PROG, UsageError, months_ending, report_months
from ._console import Redacting
from ._records import DAILY_COLUMNS, Totals, daily_document, daily_records
from ._report import Fetched, cmd_report, fetch_report, write_report
from ._run import EXIT_FAILED, EXIT_OK, Run, check_ids
from ._summary import cache_text, daily_summary, fetched_with, report_summary
from ._tables import chf, daily_table, plural, write_renderables
from ._writers import json_text, write_records

if TYPE_CHECKING:
    from ..testing import FakeFreddyServer

__all__ = ["dispatch"]

_DEMO_MAX_MONTHS = 72
_DEMO_MAX_KEYS = 10_000
_DEMO_ERROR_RATE = 0.02  # 500, 502 (an HTML page) and 503 (JSON or empty)
_DEMO_DROP_RATE = 0.01  # connections closed without an answer
_DEMO_TRUNCATE_RATE = 0.01  # bodies cut short of their Content-Length
_DEMO_MAX_RETRIES = 5


def _write_daily(fmt: str, daily: ApiKeyDailyUsage, out: Redacting) -> None:
    if fmt == "json":
        out.write(json_text(daily_document(daily)) + "\n")
        out.flush()
    elif fmt in ("csv", "jsonl"):
        write_records(fmt, daily_records(daily), out, columns=DAILY_COLUMNS)
    else:
        unicode = out.encoding.lower().replace("-", "").startswith("utf")
        write_renderables(out, daily_table(daily, unicode=unicode))


async def cmd_daily(run: Run) -> int:
    args = run.args
    month: YearMonth = args.month
    check_ids("daily", "--org", [args.org])
    async with run.make_client() as client:
        with run.output() as out:
            # One request: no progress bar (its retries are still counted, and shown with -v).
            daily = await client.get_api_key_daily_usage(args.org, year=month.year, month=month.month)
            _write_daily(args.format, daily, out)
    run.console.status(f"{PROG}: {daily_summary(daily, month, run.stats)}")
    return EXIT_OK


async def cmd_costs(run: Run) -> int:
    args = run.args
    try:
        if args.last is not None:
            months = report_months(args, YearMonth.current())
        else:
            months = _costs.costs_months(args.from_month, args.to_month)
    except ValueError as exc:
        raise UsageError(f"{PROG} costs: error: {exc}") from None
    check_ids("costs", "--org", [args.org])
    async with run.make_client() as client:
        with run.output() as out:
            keys = await _costs.fetch_costs(client, args.org, months)
            _costs.write_costs(keys, months, args.format, out, org_id=args.org, top=args.top)
    run.console.status(
        f"{PROG}: {_costs.summary_line(keys, months)}; {fetched_with(run.stats)}"
        f"{cache_text(run.stats, len(months))}"
    )
    return EXIT_OK


def _check_demo(keys: int, months: int) -> None:
    if keys > _DEMO_MAX_KEYS:
        raise UsageError(f"{PROG} demo: error: --keys must be from 1 to {_DEMO_MAX_KEYS:,}")
    if months > _DEMO_MAX_MONTHS:
        raise UsageError(
            f"{PROG} demo: error: --months must be from 1 to {_DEMO_MAX_MONTHS} "
            f"(the demo ends at {DEMO_LAST_MONTH}; the fake server serves 2020-2030)"
        )


async def _demo_report(run: Run, server: FakeFreddyServer, months: Sequence[YearMonth]) -> Totals:
    client = FreddyClient(server.api_key, base_url=server.base_url, max_concurrency=run.args.max_concurrency,
                          max_retries=_DEMO_MAX_RETRIES)
    run.stats.client = client
    fetched = Fetched(server.org_id, months)
    async with client:
        with run.output() as out:
            try:
                await fetch_report(run, client, fetched, None)
            finally:
                total = write_report(run.args.format, out, fetched)
    return total


async def cmd_demo(run: Run) -> int:
    from ..testing import FakeFreddyServer  # only the demo needs it (and aiohttp.web)

    args = run.args
    _check_demo(args.keys, args.months)
    months = months_ending(DEMO_LAST_MONTH, args.months)
    rate = args.requests_per_minute
    server = FakeFreddyServer(
        keys=args.keys, seed=args.seed, requests_per_minute=rate, error_rate=_DEMO_ERROR_RATE,
        drop_rate=_DEMO_DROP_RATE, truncate_rate=_DEMO_TRUNCATE_RATE,
    )
    async with server:
        run.protect(server.api_key)
        run.console.status(
            f"{PROG} demo: a fake Freddy API on {server.base_url} with {plural(args.keys, 'key')} "
            f"(seed {args.seed}) speaking snake_case, as the API's own generated SDKs read it "
            "(the documentation pages' camelCase: python -m freddy_async.testing --casing camel), "
            f"limited to {rate:,.0f} requests/min per organization, "
            f"failing on purpose: {_DEMO_ERROR_RATE:.0%} server errors (500/502/503), "
            f"{_DEMO_DROP_RATE:.0%} dropped connections, {_DEMO_TRUNCATE_RATE:.0%} truncated bodies"
        )
        total = await _demo_report(run, server, months)
        expected = server.expected_totals(months=months)
        # The server's own count includes what the client never sees: aiohttp quietly resends
        # a request whose reused connection was dropped before any answer.
        received, faults, limited = server.request_count, server.faults.total, server.rate_limited_count
    exact = total.cost == expected.cost and total.requests == expected.requests
    check = "equal to" if exact else f"NOT equal to (CHF {chf(expected.cost)})"
    run.console.status(
        f"{PROG} demo: {report_summary(total, months, run.stats, sent=received)}; the server injected "
        f"{plural(faults, 'fault')} and answered {limited:,} with 429; the total is {check} "
        "what the server's seed says"
    )
    return EXIT_OK if exact and not total.failed_months else EXIT_FAILED


async def dispatch(run: Run) -> int:
    """Run the command ``run.args`` names and return its exit status."""
    commands = {"report": cmd_report, "daily": cmd_daily, "costs": cmd_costs, "demo": cmd_demo}
    async with run.open_cache():
        return await commands[run.args.command](run)
