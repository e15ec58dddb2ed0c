"""``freddy-usage report`` (and the demo's report): fetch every key's months, then write them.

Everything is fetched before anything is written, so the rows can be sorted: by key ID and
month in csv/jsonl/json (two runs over the same data give the same bytes), by cost in the table.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import attrs

from .._client import FreddyClient
from .._errors import ResponseValidationError
from .._ids import check_id
from .._models import KeyUsageReport
from .._periods import YearMonth
from ._args import PROG, UsageError, key_ids_of, report_months
from ._console import Redacting
from ._html import CHART_KEYS, chart_segments, html_page
from ._records import USAGE_COLUMNS, Totals, key_rows, report_records, select_rows, totals
from ._run import EXIT_FAILED, EXIT_OK, Run, check_ids
from ._summary import report_summary
from ._tables import report_table, write_renderables
from ._writers import DATA_FORMATS, write_records

__all__ = ["Fetched", "cmd_report", "fetch_report", "write_report"]

# list_api_keys is walked with this page size, so the listing's requests can be counted.
_PAGE_SIZE = 100


@attrs.define
class Fetched:
    """What a report has fetched so far."""

    org_id: str
    months: Sequence[YearMonth]
    reports: list[KeyUsageReport] = attrs.field(factory=list)
    names: dict[str, str] = attrs.field(factory=dict)  # key ID -> name, from the listing
    complete: bool = False


def _split_listed(key_ids: list[str], months: Sequence[YearMonth]) -> tuple[list[str], list[KeyUsageReport]]:
    """The listed IDs a request can be made for, and failed reports of the others.

    One ID that cannot be put in a URL would make the library refuse the whole batch; it is
    the server's fault, so it fails that key only, as the library does when it lists the keys.
    """
    usable: list[str] = []
    unusable: list[KeyUsageReport] = []
    for key_id in key_ids:
        try:
            check_id(key_id, "api_key_id")
        except ValueError as exc:
            error = ResponseValidationError(f"the key listing holds an unusable ID: {exc}", path="keys[].id")
            unusable.append(KeyUsageReport(key_id, (), dict.fromkeys(months, error)))
        else:
            usable.append(key_id)
    return usable, unusable


async def _list_keys(run: Run, client: FreddyClient, fetched: Fetched) -> list[str]:
    async for key in client.list_api_keys(fetched.org_id, page_size=_PAGE_SIZE):
        fetched.names[key.id] = key.key_name
        run.stats.keys_listed = len(fetched.names)
        run.progress.draw()
    return list(fetched.names)


async def fetch_report(run: Run, client: FreddyClient, fetched: Fetched, key_ids: list[str] | None) -> None:
    """Fetch the usage of ``key_ids`` (default: every listed key) into ``fetched``.

    Raises:
        FreddyError: what ends the batch (401, 403, a listing that failed after its retries).
    """
    stats, progress = run.stats, run.progress
    progress.start()
    try:
        progress.draw(force=True)
        if key_ids is None:
            key_ids = await _list_keys(run, client, fetched)
        stats.keys_total, stats.org_id, stats.months = len(key_ids), fetched.org_id, len(fetched.months)
        # Drawn at once: the listing's answer may already have told the rate limit, hence the ETA.
        progress.draw(force=True)
        key_ids, fetched.reports = _split_listed(key_ids, fetched.months)
        stats.keys_done = len(fetched.reports)
        if key_ids:
            async for report in client.iter_api_key_usage(fetched.org_id, key_ids, months=fetched.months):
                fetched.reports.append(report)
                stats.keys_done += 1
                progress.draw()
        fetched.complete = True
    finally:
        await progress.stop()


def write_report(
    fmt: str, out: Redacting, fetched: Fetched, *, top: int | None = None, statuses: Sequence[str] = ()
) -> Totals:
    """Write what was fetched as ``fmt`` and return the totals of every key.

    csv/jsonl/json are written even when the batch was cut short (nothing fetched is lost); a
    table or page is not, since it would read as the whole organization's.
    """
    rows = key_rows(fetched.reports, fetched.names)
    total = totals(rows)
    if fmt in DATA_FORMATS:
        records = report_records(fetched.org_id, fetched.reports, fetched.names)
        write_records(fmt, records, out, columns=USAGE_COLUMNS)
        return total
    if not fetched.complete:
        return total
    shown, rest = select_rows(rows, top=top, statuses=statuses)
    if fmt == "html":
        segments = chart_segments(rows, fetched.months, top or CHART_KEYS)
        out.write(html_page(fetched.org_id, fetched.months, shown, rest, total, segments))
        out.flush()
    else:
        write_renderables(out, report_table(fetched.org_id, fetched.months, shown, rest, total))
    return total


def _read_keys(name: str) -> str:
    """The text of ``--keys @FILE`` (or ``-``: stdin)."""
    if name == "-":
        return sys.stdin.read()
    try:
        with open(name, encoding="utf-8") as file:
            return file.read()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise UsageError(f"{PROG} report: error: --keys @{name}: cannot read it: {reason}") from None


def _check_filters(args: argparse.Namespace) -> None:
    for flag, value in (("--top", args.top), ("--status", args.status)):
        if value and args.format not in ("table", "html"):
            raise UsageError(
                f"{PROG} report: error: {flag} filters the table: it goes with --format table or html, "
                f"not {args.format} (csv, jsonl and json hold every key)"
            )


async def cmd_report(run: Run) -> int:
    args = run.args
    months = report_months(args, YearMonth.current())
    _check_filters(args)
    key_ids = key_ids_of(args.keys, _read_keys)
    check_ids("report", "--org", [args.org])
    check_ids("report", "--keys", key_ids or [])
    fetched = Fetched(args.org, months)
    async with run.make_client() as client:
        with run.output() as out:
            try:
                await fetch_report(run, client, fetched, key_ids)
            finally:
                total = write_report(args.format, out, fetched, top=args.top, statuses=args.status)
    run.console.status(f"{PROG}: {report_summary(total, months, run.stats)}")
    return EXIT_FAILED if total.failed_months else EXIT_OK
