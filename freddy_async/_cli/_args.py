"""The command line's arguments: the parser, and what its values mean before any request.

Every check that can be made without the network is made here or right after parsing, so that
a mistake is one line naming its flag (exit status 2), before any request and before
``--output`` is opened.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from .. import _config
from .._config import API_KEY_ENV, BASE_URL_ENV, DEFAULT_BASE_URL
from .._periods import YearMonth
from .._version import __version__
from ._records import STATUSES

__all__ = [
    "BASE_URL_ENV",
    "DEMO_LAST_MONTH",
    "FORMATS",
    "PROG",
    "UsageError",
    "build_parser",
    "key_ids_of",
    "months_ending",
    "parse_key_lines",
    "report_months",
]

PROG = "freddy-usage"
FORMATS = ("table", "csv", "jsonl", "json")
REPORT_FORMATS = (*FORMATS, "html")
# The fake server serves 2020-2030; a fixed last month keeps the demo's numbers reproducible.
DEMO_LAST_MONTH = YearMonth(2025, 12)
DEMO_RATE_LIMIT = 30_000  # requests per minute, i.e. 500/s: 200 keys x 12 months in ~5 s


class UsageError(Exception):
    """A mistake on the command line: one line on stderr, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # argparse would print the whole usage block first; the one line is enough.
        raise UsageError(f"{self.prog}: error: {message}")


# -- values ----------------------------------------------------------------------------------


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


def _statuses_arg(text: str) -> tuple[str, ...]:
    statuses = tuple(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
    unknown = [s for s in statuses if s not in STATUSES]
    if unknown or not statuses:
        raise argparse.ArgumentTypeError(
            f"expected statuses from {','.join(STATUSES)} separated by commas, not {text!r}"
        )
    return statuses


def months_ending(last: YearMonth, count: int) -> list[YearMonth]:
    """The ``count`` months up to ``last``, oldest first."""
    index = last.year * 12 + last.month - 1 - (count - 1)
    if index < 12:
        raise ValueError(f"{count} months up to {last} would start before 0001-01")
    return YearMonth.range(YearMonth(index // 12, index % 12 + 1), last)


def report_months(args: argparse.Namespace, current: YearMonth) -> list[YearMonth]:
    """The months ``--from``/``--to`` or ``--last`` name; ``current`` is this month.

    Raises:
        UsageError: neither or both given, or ``--to`` before ``--from``.
    """
    command = f"{PROG} {args.command}: error:"
    if args.last is not None:
        if args.from_month is not None or args.to_month is not None:
            raise UsageError(f"{command} --last goes without --from and --to")
        # The last closed month: the current one is still counting.
        previous = months_ending(current, 2)[0]
        try:
            return months_ending(previous, args.last)
        except ValueError as exc:
            raise UsageError(f"{command} --last: {exc}") from None
    if args.from_month is None:
        raise UsageError(f"{command} give the months as --from YYYY-MM [--to YYYY-MM], or as --last N")
    last: YearMonth = args.to_month if args.to_month is not None else current
    if last < args.from_month:
        which = "--to" if args.to_month is not None else "the current month"
        raise UsageError(f"{command} {which} {last} comes before --from {args.from_month}")
    return YearMonth.range(args.from_month, last)


def parse_key_lines(text: str) -> list[str]:
    """The key IDs of a ``--keys @FILE`` or ``--keys -`` text: one a line, ``#`` starts a comment."""
    return [line.split("#", 1)[0].strip() for line in text.splitlines() if line.split("#", 1)[0].strip()]


def key_ids_of(values: Sequence[str] | None, read: Callable[[str], str]) -> list[str] | None:
    """The key IDs ``--keys`` names, in order and once each; ``None`` when it is not given.

    A value is ``ID,ID...``, ``@FILE`` or ``-`` (stdin); ``read`` gives the text of a file name
    or of ``-`` and raises :class:`UsageError` when it cannot.
    """
    if not values:
        return None
    ids: list[str] = []
    for value in values:
        if value == "-" or value.startswith("@"):
            ids += parse_key_lines(read(value if value == "-" else value[1:]))
        else:
            ids += [part.strip() for part in value.split(",") if part.strip()]
    if not ids:
        raise UsageError(f"{PROG} report: error: --keys names no key")
    return list(dict.fromkeys(ids))


# -- the parser ------------------------------------------------------------------------------


def _output_options(formats: Sequence[str]) -> _Parser:
    parent = _Parser(add_help=False)
    group = parent.add_argument_group("output")
    group.add_argument("--format", choices=formats, default="table", help="output format (default: table)")
    group.add_argument("-o", "--output", metavar="FILE", help="write the data to FILE instead of stdout")
    group.add_argument("-q", "--quiet", action="store_true", help="no progress and no status on stderr")
    group.add_argument("--no-progress", action="store_true", help="no progress bar, even on a terminal")
    group.add_argument("-v", "--verbose", action="store_true", help="log every retry on stderr")
    return parent


def _connection_options() -> _Parser:
    parent = _Parser(add_help=False)
    group = parent.add_argument_group("connection")
    add = group.add_argument
    add("--org", required=True, help="organization ID, e.g. org_abc123")
    add("--base-url", help=f"API root URL (default: ${BASE_URL_ENV}, else {DEFAULT_BASE_URL})")
    add("--api-key-env", default=API_KEY_ENV, metavar="NAME",
        help=f"environment variable that holds the API key (default: {API_KEY_ENV})")
    add("--max-concurrency", type=_int_arg(1), default=_config.MAX_CONCURRENCY, metavar="N",
        help=f"requests in flight at once (default: {_config.MAX_CONCURRENCY})")
    add("--requests-per-minute", type=_positive_float, default=None, metavar="N",
        help="client-side cap per organization (default: pace by the server's rate-limit headers)")
    add("--timeout", type=_positive_float, default=_config.TIMEOUT, metavar="SECONDS",
        help=f"seconds one attempt may take (default: {_config.TIMEOUT:g})")
    add("--max-retries", type=_int_arg(0), default=_config.MAX_RETRIES, metavar="N",
        help=f"retries of a failed request (default: {_config.MAX_RETRIES})")
    add("--retry-deadline", type=_positive_float, default=_config.RETRY_DEADLINE, metavar="SECONDS",
        help=f"seconds after which a request stops retrying (default: {_config.RETRY_DEADLINE:g})")
    add("--allow-insecure-http", action="store_true",
        help="permit a plain http:// base URL to a host other than loopback")
    where = parent.add_mutually_exclusive_group()
    where.add_argument("--cache", metavar="PATH", help="the cache file of closed months (default: "
                       f"$XDG_CACHE_HOME/{PROG}/cache.sqlite3, else ~/.cache/{PROG}/cache.sqlite3)")
    where.add_argument("--no-cache", action="store_true", help="fetch everything; read and write no cache")
    add("--refresh", action="store_true", help="fetch everything again, and store it in the cache")
    return parent


def _month_options(parser: argparse.ArgumentParser, *, from_help: str, to_help: str) -> None:
    parser.add_argument("--from", dest="from_month", type=_month_arg, default=None, metavar="YYYY-MM",
                        help=from_help)
    parser.add_argument("--to", dest="to_month", type=_month_arg, default=None, metavar="YYYY-MM",
                        help=to_help)
    parser.add_argument("--last", type=_int_arg(1), default=None, metavar="N",
                        help="the N months up to the last closed one (instead of --from/--to)")


def _add_report(commands: Any, parents: list[argparse.ArgumentParser]) -> None:
    report = commands.add_parser(
        "report", parents=parents, help="usage of every key (or of --keys) over a range of months",
        description="table: one row per key, costliest first, with totals and the worst limit status. "
        "csv, jsonl, json: one record per (key, month), sorted by key ID and month, with a 'period' "
        "(YYYY-MM) and every field of the answer; a month that could not be fetched is a record with "
        "an 'error'. html: one self-contained page with the table and a chart of cost per month.",
    )
    report.add_argument("--keys", action="append", metavar="ID,ID...|@FILE|-",
                        help="only these key IDs: comma-separated, @FILE (one a line, # comments) or - "
                        "(stdin); repeatable (default: every key of --org)")
    _month_options(report, from_help="first month",
                   to_help="last month, included (default: the current month)")
    report.add_argument("--top", type=_int_arg(1), default=None, metavar="N",
                        help="table and html: only the N costliest keys (the totals still cover every key)")
    report.add_argument("--status", type=_statuses_arg, default=(), metavar="STATUS,...",
                        help=f"table and html: only keys whose worst limit status is one of these "
                        f"({', '.join(STATUSES)})")


def _add_demo(commands: Any) -> None:
    demo = commands.add_parser(
        "demo", parents=[_output_options(REPORT_FORMATS)],
        help="a report against a built-in fake server (no account, no network)",
        description="Starts a fake Freddy API on 127.0.0.1 with a rate limit and injected faults, "
        f"and reports all its keys over the last N months up to {DEMO_LAST_MONTH}.",
    )
    add = demo.add_argument
    add("--keys", type=_int_arg(1), default=200, metavar="N", help="API keys (default: 200)")
    add("--months", type=_int_arg(1), default=12, metavar="N",
        help=f"months, the last one {DEMO_LAST_MONTH} (default: 12)")
    add("--seed", type=int, default=0, help="seed of the fake data and faults (default: 0)")
    add("--max-concurrency", type=_int_arg(1), default=_config.MAX_CONCURRENCY, metavar="N",
        help=f"requests in flight at once (default: {_config.MAX_CONCURRENCY})")
    add("--requests-per-minute", type=_positive_float, default=DEMO_RATE_LIMIT, metavar="N",
        help=f"the fake server's rate limit per organization (default: {DEMO_RATE_LIMIT:,}; the "
        "real API's is 100)")


def build_parser() -> argparse.ArgumentParser:
    """The parser of every command."""
    parser = _Parser(
        prog=PROG,
        description="Usage and cost (CHF) of the API keys of a Freddy organization. The API key "
        f"is read from ${API_KEY_ENV}, never from the command line.",
        epilog="exit status: 0 all fetched, 1 some keys failed or the API refused the batch, "
        "2 usage error, 130 interrupted",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)
    connection = _connection_options()
    _add_report(commands, [connection, _output_options(REPORT_FORMATS)])
    daily = commands.add_parser(
        "daily", parents=[connection, _output_options(FORMATS)],
        help="an organization's API-key usage, day by day",
        description="The daily breakdown of one month; the table draws the cost of each day as a bar.",
    )
    daily.add_argument("--month", type=_month_arg, required=True, metavar="YYYY-MM", help="the month")
    costs = commands.add_parser(
        "costs", parents=[connection, _output_options(FORMATS)],
        help="every key's cost over a range of months, one request a month",
        description="Every key's cost (CHF) from the usage-limits answer: one request a month, "
        "none per key. table: a row per key (costliest first), a column per month, the total "
        "and the last month's limit status. csv: the same, wide, sorted by key ID. jsonl, json: "
        "one record per (key, month). For requests, synapses and neurons use 'report'.",
    )
    _month_options(costs, from_help="first month (default: 12 months up to --to)",
                   to_help="last month, included (default: the current month)")
    costs.add_argument("--top", type=_int_arg(1), default=None, metavar="N",
                       help="only the N costliest keys (the table's totals still cover every key)")
    _add_demo(commands)
    return parser
