"""freddy-usage: the command line of freddy_async (also ``python -m freddy_async``).

::

    freddy-usage report --org ORG [--keys ID,ID...] --from 2025-01 [--to 2025-11] [--format FMT]
    freddy-usage daily  --org ORG --month 2025-11 [--format FMT]
    freddy-usage costs  --org ORG [--from 2025-01] [--to 2025-11] [--format FMT] [--top N]
    freddy-usage demo   [--keys 200] [--months 12]

report, daily and costs keep the answers of closed months in a cache file (``--cache PATH``,
default ``$XDG_CACHE_HOME/freddy-usage/cache.sqlite3``, else ``~/.cache/freddy-usage/...``):
a re-run fetches only what it does not hold. ``--refresh`` fetches everything again and stores
it; ``--no-cache`` neither reads nor writes one.

Data goes to stdout (or ``--output``); progress and status go to stderr, the progress bar only
when stderr is a terminal, so ``freddy-usage report ... --format csv | ...`` stays clean.

Text from the server (key names, statuses, error messages) never drives the terminal: its
control and bidi characters are shown escaped (``\x1b``, ``\u202e``) in tables, on stderr, and
in csv written to a terminal. A csv text cell that a spreadsheet would run as a formula
(``=``, ``+``, ``-``, ``@``, tab, CR) starts with ``'``; numbers are written as the API sent them.
json and jsonl keep the text exactly (JSON escapes control characters itself).

Exit status: 0 everything was fetched; 1 some (key, month) pairs failed (the rest is still
written) or the API refused the whole batch; 2 a usage error (bad month, missing API key);
130 interrupted. The API key is read from the environment only, never from the command line,
and never appears in any output.

Only the standard library is used beyond freddy_async itself; the library never imports this.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import math
import os
import re
import sys
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from decimal import Decimal
from typing import NoReturn

from ._cache import UsageCache
from ._cli import _costs
from ._cli._console import Console, Progress, Redacting, Stats
from ._cli._output import ReportWriter, chf, plural, report_writer, write_daily
from ._client import API_KEY_ENV, DEFAULT_BASE_URL, FreddyClient, _check_id
from ._errors import AuthenticationError, FreddyError, PermissionDeniedError, ResponseValidationError
from ._models import KeyUsageReport
from ._periods import YearMonth
from ._version import __version__

__all__ = ["main"]

PROG = "freddy-usage"
BASE_URL_ENV = "FREDDY_BASE_URL"
FORMATS = ("table", "csv", "jsonl", "json")

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

# list_api_keys is walked with this page size, so the listing's requests can be counted.
_PAGE_SIZE = 100
# A "secret" shorter than this would be found inside ordinary words; no real key is that short.
_MIN_SECRET = 6
# Only a conventional variable name is echoed back: anything else might be the key itself.
_ENV_NAME = re.compile(r"[A-Z_][A-Z0-9_]{0,63}")

# The fake server serves 2020-2030; a fixed last month keeps the demo's numbers reproducible.
_DEMO_LAST_MONTH = YearMonth(2025, 12)
_DEMO_MAX_MONTHS = 72
_DEMO_MAX_KEYS = 10_000
_DEMO_RATE_LIMIT = 30_000  # requests per minute, i.e. 500/s: 200 keys x 12 months in ~5 s
_DEMO_ERROR_RATE = 0.02  # 500, 502 (an HTML page) and 503 (JSON or empty)
_DEMO_DROP_RATE = 0.01  # connections closed without an answer
_DEMO_TRUNCATE_RATE = 0.01  # bodies cut short of their Content-Length
_DEMO_MAX_RETRIES = 5


class UsageError(Exception):
    """A mistake on the command line: one line on stderr, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # argparse would print the whole usage block first; the one line is enough.
        raise UsageError(f"{self.prog}: error: {message}")


class _Run:
    """What one invocation shares: its arguments, streams, counters and progress line."""

    def __init__(self, args: argparse.Namespace, stdout: Redacting, console: Console) -> None:
        self.args = args
        self.stdout = stdout
        self.console = console
        self.stats = Stats()
        show = not args.quiet and not args.no_progress and console.err.isatty()
        self.progress = Progress(console, self.stats, enabled=show)
        self.cache: UsageCache | None = None

    def protect(self, secret: str) -> None:
        """Redact ``secret`` from everything written from now on, on every stream."""
        secrets = self.stdout.secrets  # shared by every stream of the run
        if len(secret) >= _MIN_SECRET and secret not in secrets:
            secrets.append(secret)


class _Result:
    """What a report fetched."""

    def __init__(self) -> None:
        self.keys = 0
        self.failed_keys = 0
        self.failed_months = 0
        self.cost = Decimal(0)
        self.requests = 0
        self.months = 0  # (key, month) pairs answered

    def add(self, report: KeyUsageReport) -> None:
        """Count one key's report."""
        self.keys += 1
        self.cost += report.total_cost
        self.requests += report.total_requests
        self.months += len(report.usage)
        if report.errors:
            self.failed_keys += 1
            self.failed_months += len(report.errors)


# -- shared steps ----------------------------------------------------------------------------


def _read_api_key(env_name: str) -> str:
    value = os.environ.get(env_name, "").strip()
    if value:
        return value
    if env_name == API_KEY_ENV:
        raise UsageError(
            f"no API key: set the {API_KEY_ENV} environment variable "
            "(or name another variable with --api-key-env)"
        )
    if _ENV_NAME.fullmatch(env_name):
        raise UsageError(f"no API key: the environment variable {env_name} (--api-key-env) is not set")
    raise UsageError("--api-key-env takes the NAME of an environment variable, not a key")


def _make_client(run: _Run) -> FreddyClient:
    args = run.args
    api_key = _read_api_key(args.api_key_env)
    run.protect(api_key)
    base_url = args.base_url or os.environ.get(BASE_URL_ENV, "").strip() or DEFAULT_BASE_URL
    try:
        client = FreddyClient(
            api_key, base_url=base_url, max_concurrency=args.max_concurrency,
            requests_per_minute=args.requests_per_minute, timeout=args.timeout,
            max_retries=args.max_retries, allow_insecure_http=args.allow_insecure_http,
            cache=run.cache,
        )
    except ValueError as exc:  # a base URL the client refuses (plain http to a remote host...)
        raise UsageError(str(exc)) from None
    run.stats.client = client
    return client


# -- the cache ---------------------------------------------------------------------------------


def _default_cache_path() -> str:
    base = os.environ.get("XDG_CACHE_HOME", "")
    if not os.path.isabs(base):  # the XDG spec: a relative (or empty) value is ignored
        base = os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, PROG, "cache.sqlite3")


@contextlib.asynccontextmanager
async def _cache_of(args: argparse.Namespace) -> AsyncIterator[UsageCache | None]:
    """The cache the options ask for, open (a bad file is a usage error); None with --no-cache."""
    if getattr(args, "no_cache", True):  # demo has no cache options: its server is new each run
        yield None
        return
    cache = UsageCache(args.cache or _default_cache_path(), refresh=args.refresh)
    try:
        await cache.__aenter__()
    except FreddyError as exc:
        text = " ".join(str(exc).split())
        raise UsageError(f"{text} (--cache PATH names another file, --no-cache uses none)") from None
    try:
        yield cache
    finally:
        await cache.aclose()


def _cache_text(run: _Run, answers: int) -> str:
    """How many of ``answers`` came from the cache: for the summary line."""
    if run.cache is None or run.stats.client is None:
        return ""
    hits = run.stats.client.stats.cache_hits
    return f"; {plural(hits, 'month')} from the cache, {answers - hits:,} fetched"


def _check_ids(command: str, option: str, ids: Sequence[str]) -> None:
    """Refuse an ID the library would refuse, before any request and before --output is opened."""
    for value in ids:
        try:
            _check_id(value, "ID")
        except ValueError as exc:
            raise UsageError(f"{PROG} {command}: error: {option}: {exc}") from None


@contextlib.contextmanager
def _output(path: str | None, run: _Run) -> Iterator[Redacting]:
    if path is None or path == "-":
        yield run.stdout
        return
    newline = "" if run.args.format == "csv" else None
    try:
        stream = open(path, "w", encoding="utf-8", newline=newline)  # noqa: SIM115
    except OSError as exc:
        raise UsageError(f"{PROG}: error: cannot write {path}: {exc.strerror or exc}") from None
    with stream:
        yield Redacting(stream, run.stdout.secrets)


def _sent_text(run: _Run, sent: int | None = None) -> str:
    s = run.stats
    requests = s.requests if sent is None else sent
    return f"{plural(requests, 'HTTP request')}, {plural(s.retries, 'retry', 'retries')}, {s.elapsed:.1f} s"


def _summary(run: _Run, result: _Result, n_months: int, sent: int | None = None) -> str:
    text = (
        f"{plural(result.keys, 'key')} x {plural(n_months, 'month')}: {result.requests:,} requests, "
        f"CHF {chf(result.cost)}"
    )
    if result.failed_months:
        text += f"; {plural(result.failed_months, 'month')} of {plural(result.failed_keys, 'key')} failed"
    return f"{text}; fetched with {_sent_text(run, sent)}{_cache_text(run, result.months)}"


# -- report ----------------------------------------------------------------------------------


async def _list_key_ids(run: _Run, client: FreddyClient, org_id: str) -> list[str]:
    ids: list[str] = []
    async for key in client.list_api_keys(org_id, page_size=_PAGE_SIZE):
        ids.append(key.id)
        run.stats.keys_listed = len(ids)
        run.progress.draw()
    return ids


def _split_listed(key_ids: list[str], months: Sequence[YearMonth]) -> tuple[list[str], list[KeyUsageReport]]:
    """The listed IDs a request can be made for, and failed reports of the others.

    One ID that cannot be put in a URL would make the library refuse the whole batch; it is
    the server's fault, so it fails that key only, as the library does when it lists the keys.
    """
    usable: list[str] = []
    unusable: list[KeyUsageReport] = []
    for key_id in key_ids:
        try:
            _check_id(key_id, "api_key_id")
        except ValueError as exc:
            error = ResponseValidationError(f"the key listing holds an unusable ID: {exc}", path="keys[].id")
            unusable.append(KeyUsageReport(key_id, (), dict.fromkeys(months, error)))
        else:
            usable.append(key_id)
    return usable, unusable


async def _report(
    run: _Run, client: FreddyClient, org_id: str, key_ids: list[str] | None,
    months: Sequence[YearMonth], out: Redacting,
) -> _Result:
    """Fetch the usage and write it as it comes.

    Raises:
        FreddyError: what ends the batch (401, 403, a listing that failed after its retries).
    """
    stats, progress = run.stats, run.progress
    result = _Result()
    writer: ReportWriter | None = None
    complete = False
    progress.start()
    try:
        if key_ids is None:
            progress.draw(force=True)
            key_ids = await _list_key_ids(run, client, org_id)
        stats.keys_total = len(key_ids)
        stats.org_id, stats.months = org_id, len(months)
        progress.draw(force=True)
        order = {key: i for i, key in enumerate(key_ids)}
        writer = report_writer(run.args.format, out, org_id, months, order)
        key_ids, unusable = _split_listed(key_ids, months)
        for report in unusable:
            writer.add(report)
            result.add(report)
            stats.keys_done += 1
        if key_ids:
            async for report in client.iter_api_key_usage(org_id, key_ids, months=months):
                writer.add(report)
                result.add(report)
                stats.keys_done += 1
                progress.draw()
        complete = True
    finally:
        await progress.stop()
        if writer is not None:
            writer.finish(complete=complete)
    return result


def _months_of(args: argparse.Namespace) -> list[YearMonth]:
    first: YearMonth = args.from_month
    last: YearMonth = args.to_month if args.to_month is not None else YearMonth.current()
    if last < first:
        which = "--to" if args.to_month is not None else "the current month"
        raise UsageError(f"{PROG} report: error: {which} {last} comes before --from {first}")
    return YearMonth.range(first, last)


def _key_list(values: Sequence[str] | None) -> list[str] | None:
    if not values:
        return None
    ids = [part.strip() for value in values for part in value.split(",") if part.strip()]
    if not ids:
        raise UsageError(f"{PROG} report: error: --keys names no key")
    return list(dict.fromkeys(ids))


async def _cmd_report(run: _Run) -> int:
    args = run.args
    months = _months_of(args)
    key_ids = _key_list(args.keys)
    _check_ids("report", "--org", [args.org])
    _check_ids("report", "--keys", key_ids or [])
    client = _make_client(run)
    async with client:
        with _output(args.output, run) as out:
            result = await _report(run, client, args.org, key_ids, months, out)
    run.console.status(f"{PROG}: {_summary(run, result, len(months))}")
    return EXIT_FAILED if result.failed_months else EXIT_OK


# -- daily -----------------------------------------------------------------------------------


async def _cmd_daily(run: _Run) -> int:
    args = run.args
    month: YearMonth = args.month
    _check_ids("daily", "--org", [args.org])
    client = _make_client(run)
    async with client:
        with _output(args.output, run) as out:
            # One request: no progress bar (its retries are still counted, and shown with -v).
            daily = await client.get_api_key_daily_usage(args.org, year=month.year, month=month.month)
            write_daily(daily, args.format, out)
    run.console.status(
        f"{PROG}: {month}: {plural(len(daily.daily_usage), 'day')} with usage; "
        f"fetched with {_sent_text(run)}{_cache_text(run, 1)}"
    )
    return EXIT_OK


# -- costs -----------------------------------------------------------------------------------


async def _cmd_costs(run: _Run) -> int:
    args = run.args
    try:
        months = _costs.costs_months(args.from_month, args.to_month)
    except ValueError as exc:
        raise UsageError(f"{PROG} costs: error: {exc}") from None
    _check_ids("costs", "--org", [args.org])
    async with _make_client(run) as client:
        with _output(args.output, run) as out:
            keys = await _costs.fetch_costs(client, args.org, months)
            _costs.write_costs(keys, months, args.format, out, org_id=args.org, top=args.top)
    run.console.status(
        f"{PROG}: {_costs.summary_line(keys, months)}; fetched with {_sent_text(run)}"
        f"{_cache_text(run, len(months))}"
    )
    return EXIT_OK


# -- demo ------------------------------------------------------------------------------------


def _last_months(last: YearMonth, count: int) -> list[YearMonth]:
    first = last
    for _ in range(count - 1):
        first = YearMonth(first.year - 1, 12) if first.month == 1 else YearMonth(first.year, first.month - 1)
    return YearMonth.range(first, last)


async def _cmd_demo(run: _Run) -> int:
    from .testing import FakeFreddyServer  # only the demo needs it (and aiohttp.web)

    args = run.args
    if args.keys > _DEMO_MAX_KEYS:
        raise UsageError(f"{PROG} demo: error: --keys must be from 1 to {_DEMO_MAX_KEYS:,}")
    if args.months > _DEMO_MAX_MONTHS:
        raise UsageError(
            f"{PROG} demo: error: --months must be from 1 to {_DEMO_MAX_MONTHS} "
            f"(the demo ends at {_DEMO_LAST_MONTH}; the fake server serves 2020-2030)"
        )
    months = _last_months(_DEMO_LAST_MONTH, args.months)
    server = FakeFreddyServer(
        keys=args.keys, seed=args.seed, requests_per_minute=_DEMO_RATE_LIMIT,
        error_rate=_DEMO_ERROR_RATE, drop_rate=_DEMO_DROP_RATE, truncate_rate=_DEMO_TRUNCATE_RATE,
    )
    async with server:
        run.protect(server.api_key)
        run.console.status(
            f"{PROG} demo: a fake Freddy API on {server.base_url} with {plural(args.keys, 'key')} "
            f"(seed {args.seed}), limited to {_DEMO_RATE_LIMIT:,} requests/min per organization, "
            f"failing on purpose: {_DEMO_ERROR_RATE:.0%} server errors (500/502/503), "
            f"{_DEMO_DROP_RATE:.0%} dropped connections, {_DEMO_TRUNCATE_RATE:.0%} truncated bodies"
        )
        client = FreddyClient(
            server.api_key, base_url=server.base_url, max_concurrency=args.max_concurrency,
            max_retries=_DEMO_MAX_RETRIES,
        )
        run.stats.client = client
        async with client:
            with _output(args.output, run) as out:
                result = await _report(run, client, server.org_id, None, months, out)
        expected = server.expected_totals(months=months)
        # The server's own count includes what the client never sees: aiohttp quietly resends
        # a request whose reused connection was dropped before any answer.
        received = server.request_count
        faults = server.faults.total
        limited = server.rate_limited_count
    exact = result.cost == expected.cost and result.requests == expected.requests
    check = "equal to" if exact else f"NOT equal to (CHF {chf(expected.cost)})"
    run.console.say(
        f"{PROG} demo: {_summary(run, result, len(months), sent=received)}; the server injected "
        f"{plural(faults, 'fault')} and answered {limited:,} with 429; the total is {check} "
        "what the server's seed says"
    )
    return EXIT_OK if exact and not result.failed_months else EXIT_FAILED


# -- arguments -------------------------------------------------------------------------------


def _month_arg(text: str) -> YearMonth:
    try:
        return YearMonth.parse(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid month {text!r} (expected YYYY-MM, e.g. 2025-11)") from None


def _int_arg(minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = minimum - 1
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected a whole number >= {minimum}, not {text!r}")
        return value

    return parse


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"expected a number > 0, not {text!r}")
    return value


def _build_parser() -> _Parser:
    output = _Parser(add_help=False)
    group = output.add_argument_group("output")
    group.add_argument("--format", choices=FORMATS, default="table", help="output format (default: table)")
    group.add_argument("-o", "--output", metavar="FILE", help="write the data to FILE instead of stdout")
    group.add_argument("-q", "--quiet", action="store_true", help="no progress and no status on stderr")
    group.add_argument("--no-progress", action="store_true", help="no progress bar, even on a terminal")
    group.add_argument("-v", "--verbose", action="store_true", help="log every retry on stderr")

    connection = _Parser(add_help=False)
    group = connection.add_argument_group("connection")
    group.add_argument("--org", required=True, help="organization ID, e.g. org_abc123")
    group.add_argument(
        "--base-url", help=f"API root URL (default: ${BASE_URL_ENV}, else {DEFAULT_BASE_URL})"
    )
    group.add_argument(
        "--api-key-env", default=API_KEY_ENV, metavar="NAME",
        help=f"environment variable that holds the API key (default: {API_KEY_ENV})",
    )
    group.add_argument("--max-concurrency", type=_int_arg(1), default=16, metavar="N",
                       help="requests in flight at once (default: 16)")
    group.add_argument(
        "--requests-per-minute", type=_positive_float, default=None, metavar="N",
        help="client-side cap per organization (default: pace by the server's X-RateLimit headers)",
    )
    group.add_argument("--timeout", type=_positive_float, default=30.0, metavar="SECONDS",
                       help="seconds one attempt may take (default: 30)")
    group.add_argument("--max-retries", type=_int_arg(0), default=3, metavar="N",
                       help="retries of a failed request (default: 3)")
    group.add_argument("--allow-insecure-http", action="store_true",
                       help="permit a plain http:// base URL to a host other than loopback")
    group = connection.add_argument_group("cache")
    where = group.add_mutually_exclusive_group()
    where.add_argument("--cache", metavar="PATH", help="the cache file (default: "
                       f"$XDG_CACHE_HOME/{PROG}/cache.sqlite3, else ~/.cache/{PROG}/cache.sqlite3)")
    where.add_argument("--no-cache", action="store_true", help="fetch everything; read and write no cache")
    group.add_argument("--refresh", action="store_true",
                       help="fetch everything again, and store it in the cache")

    parser = _Parser(
        prog=PROG,
        description="Usage and cost (CHF) of the API keys of a Freddy organization. The API key "
        f"is read from ${API_KEY_ENV}, never from the command line.",
        epilog="exit status: 0 all fetched, 1 some keys failed or the API refused the batch, "
        "2 usage error, 130 interrupted",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)

    report = commands.add_parser(
        "report", parents=[connection, output],
        help="usage of every key (or of --keys) over a range of months",
        description="table: one row per key with totals and the worst limit status. csv, jsonl, "
        "json: one record per (key, month) with every field of the answer; a month that could "
        "not be fetched is a record with an 'error'. A csv text cell that a spreadsheet would run "
        "as a formula is written with a leading '.",
    )
    report.add_argument("--keys", action="append", metavar="ID,ID...",
                        help="only these key IDs (comma-separated, repeatable; default: every key of --org)")
    report.add_argument("--from", dest="from_month", type=_month_arg, required=True, metavar="YYYY-MM",
                        help="first month")
    report.add_argument("--to", dest="to_month", type=_month_arg, default=None, metavar="YYYY-MM",
                        help="last month, included (default: the current month)")

    daily = commands.add_parser(
        "daily", parents=[connection, output], help="an organization's API-key usage, day by day",
        description="The daily breakdown of one month; the table draws the cost of each day as a bar.",
    )
    daily.add_argument("--month", type=_month_arg, required=True, metavar="YYYY-MM", help="the month")
    _costs.add_parser(commands, [connection, output], _month_arg, _int_arg(1))

    demo = commands.add_parser(
        "demo", parents=[output], help="a report against a built-in fake server (no account, no network)",
        description="Starts a fake Freddy API on 127.0.0.1 with a rate limit and injected faults, "
        f"and reports all its keys over the last N months up to {_DEMO_LAST_MONTH}.",
    )
    demo.add_argument("--keys", type=_int_arg(1), default=200, metavar="N", help="API keys (default: 200)")
    demo.add_argument("--months", type=_int_arg(1), default=12, metavar="N",
                      help=f"months, the last one {_DEMO_LAST_MONTH} (default: 12)")
    demo.add_argument("--seed", type=int, default=0, help="seed of the fake data and faults (default: 0)")
    demo.add_argument("--max-concurrency", type=_int_arg(1), default=16, metavar="N",
                      help="requests in flight at once (default: 16)")
    return parser


# -- entry point -----------------------------------------------------------------------------


class _VerboseHandler(logging.Handler):
    def __init__(self, console: Console) -> None:
        super().__init__(logging.INFO)
        self._console = console

    def emit(self, record: logging.LogRecord) -> None:
        self._console.say(f"{PROG}: {record.getMessage()}")


async def _dispatch(run: _Run) -> int:
    if getattr(run.args, "refresh", False) and run.args.no_cache:
        raise UsageError(f"{PROG}: error: --refresh stores in the cache: it cannot go with --no-cache")
    async with _cache_of(run.args) as run.cache:
        return await _command(run)


async def _command(run: _Run) -> int:
    if run.args.command == "report":
        return await _cmd_report(run)
    if run.args.command == "daily":
        return await _cmd_daily(run)
    if run.args.command == "costs":
        return await _cmd_costs(run)
    return await _cmd_demo(run)


def _fatal_message(exc: FreddyError) -> str:
    if isinstance(exc, AuthenticationError):
        what = "the API key was refused"
    elif isinstance(exc, PermissionDeniedError):
        what = "access denied"
    else:
        what = "the request failed"
    return f"{PROG}: error: {what}: {type(exc).__name__}: {' '.join(str(exc).split())}"


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``freddy-usage`` with ``argv`` (default: ``sys.argv[1:]``) and return the exit status."""
    secrets: list[str] = []
    stdout = Redacting(sys.stdout, secrets)
    console = Console(Redacting(sys.stderr, secrets))
    logger = logging.getLogger("freddy_async")
    old_level = logger.level
    handlers: list[logging.Handler] = []
    try:
        args = _build_parser().parse_args(argv)
        console.quiet = args.quiet
        run = _Run(args, stdout, console)
        if args.verbose:
            handlers.append(_VerboseHandler(console))
        for handler in handlers:
            logger.addHandler(handler)
        if handlers and logger.getEffectiveLevel() > logging.INFO:
            logger.setLevel(logging.INFO)  # -v shows the retries, which are logged at INFO
        return asyncio.run(_dispatch(run))
    except UsageError as exc:
        text = str(exc)
        console.say(text if text.startswith(PROG) else f"{PROG}: error: {text}")
        return EXIT_USAGE
    except FreddyError as exc:
        console.say(_fatal_message(exc))
        return EXIT_FAILED
    except KeyboardInterrupt:
        console.say(f"{PROG}: interrupted")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (| head): stop quietly, and keep the interpreter's final flush
        # of stdout from failing again.
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILED
    finally:
        for handler in handlers:
            logger.removeHandler(handler)
        logger.setLevel(old_level)
