"""``freddy-usage costs`` vs ``freddy-usage report``: 50 keys x 12 months at 100 requests/min.

Both commands are run in-process, as the command line runs them (their arguments parsed by
the real parser, their output written to a buffer), against a ``FakeFreddyServer`` limited
to 100 requests/min per organization, the documented analytics limit. ``report`` lists the
keys and then needs one request per key and month (600), which at that limit is 6 minutes;
``costs`` needs one usage-limits request per month (12).

The comparison runs in virtual time: inside ``freddy_async.testing.instant_retries()`` the
client's waits (pacing, pauses after a 429) and the server's token bucket read one virtual
clock, so ``report``'s 6 minutes pass in a few real seconds, and the figures are the seconds
the commands would take against the real limit (read with ``freddy_async._clock.now()``).
The real seconds each virtual run took on this machine are shown beside them. ``costs`` is
also run once in real time, against a fresh server, as a check that virtual time tells the
truth. Each run gets a fresh server, so its token bucket starts full (a burst of 1.67).

Targets: ``costs`` sends one request a month (plus only the 429s it waited out); both
commands report the same cost for every (key, month), to the centime; ``costs`` takes at most
5 / keys of ``report``'s time (a tenth at 50 keys; ``report``'s time grows with the keys).

    python benchmarks/costs_vs_report.py [--quick] [--rounds N]
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal

from _common import Verdicts, machine_line, median, parse_args, print_table

from freddy_async import YearMonth, _clock
from freddy_async._cli._console import Console, Redacting
from freddy_async._cli._main import run_in_loop
from freddy_async._cli._run import EXIT_OK
from freddy_async.testing import FakeFreddyServer, instant_retries

RATE = 100  # requests per minute per organization (API.md, rate limits)
# costs' requests do not grow with the keys, report's do: the target is relative to the keys.
TIME_TARGET_KEYS = 5


@dataclass
class Run:
    seconds: float  # virtual seconds, or real ones for the real-time check
    real: float
    requests: int
    rate_limited: int
    costs: dict[tuple[str, str], Decimal]


@contextlib.contextmanager
def _api_key(value: str) -> Iterator[None]:
    # The command line reads the key from the environment only, as it does for a person.
    old = os.environ.get("FREDDY_API_KEY")
    os.environ["FREDDY_API_KEY"] = value
    try:
        yield
    finally:
        if old is None:
            del os.environ["FREDDY_API_KEY"]
        else:
            os.environ["FREDDY_API_KEY"] = old


def _costs_of(command: str, jsonl: str) -> dict[tuple[str, str], Decimal]:
    found: dict[tuple[str, str], Decimal] = {}
    for line in jsonl.splitlines():
        record = json.loads(line, parse_float=Decimal)
        if command == "costs":
            found[(record["api_key_id"], record["month"])] = record["cost"]
        else:
            month = f"{record['year']:04d}-{record['month']:02d}"
            found[(record["api_key_id"], month)] = record["usage"]["total_cost"]
    return found


async def run_command(command: str, n_keys: int, months: Sequence[YearMonth]) -> Run:
    """One run of ``freddy-usage COMMAND --format jsonl`` against a fresh rate-limited server."""
    async with FakeFreddyServer(keys=n_keys, requests_per_minute=RATE, log_requests=False) as server:
        argv = [command, "--org", server.org_id, "--base-url", server.base_url,
                "--from", str(months[0]), "--to", str(months[-1]), "--format", "jsonl", "--quiet",
                "--no-cache"]  # each run measures the requests, not a cache
        secrets: list[str] = []
        out, err = io.StringIO(), io.StringIO()
        stdout, console = Redacting(out, secrets), Console(Redacting(err, secrets), quiet=True)
        with _api_key(server.api_key):
            started, real_started = _clock.now(), time.perf_counter()
            status = await run_in_loop(argv, stdout, console)
            seconds, real = _clock.now() - started, time.perf_counter() - real_started
        if status != EXIT_OK:
            raise RuntimeError(f"{command} exited {status}: {err.getvalue()}")
        return Run(seconds, real, server.request_count, server.rate_limited_count,
                   _costs_of(command, out.getvalue()))


async def run_virtual(command: str, n_keys: int, months: Sequence[YearMonth]) -> Run:
    with instant_retries():
        return await run_command(command, n_keys, months)


def _row(name: str, runs: Sequence[Run], clock: str) -> list[str]:
    return [
        name,
        clock,
        f"{median([r.requests for r in runs]):.0f}",
        f"{median([r.rate_limited for r in runs]):.0f}",
        f"{median([r.seconds for r in runs]):.1f}",
        f"{median([r.real for r in runs]):.2f}",
    ]


async def main_async(quick: bool, rounds: int) -> None:
    n_keys, n_months = (10, 3) if quick else (50, 12)
    months = YearMonth.range(YearMonth(2025, 1), YearMonth(2025, n_months))
    print(machine_line())
    print(f"costs_vs_report: {n_keys} keys x {n_months} months against a fake server limited to "
          f"{RATE} requests/min per organization (token bucket, burst {RATE / 60:.2f}); both "
          f"commands with default options, {rounds} round(s) in virtual time, a fresh server per run")
    runs: dict[str, list[Run]] = {"costs": [], "report": []}
    for _ in range(rounds):
        for command in ("costs", "report"):
            runs[command].append(await run_virtual(command, n_keys, months))
    real_costs = await run_command("costs", n_keys, months)

    ideal_report = (n_keys * n_months) / (RATE / 60)
    print_table(
        ["command", "clock", "requests received", "429 answers", "wall s", "real s of the run"],
        [
            _row(f"costs ({n_months} usage-limits requests)", runs["costs"], "virtual"),
            _row(f"report (listing + {n_keys} x {n_months} usage requests)", runs["report"], "virtual"),
            _row("costs, check run", [real_costs], "real"),
            [f"report, ideal at the limit ({n_keys * n_months} / {RATE} per min)", "-",
             str(n_keys * n_months + 1), "0", f"{ideal_report:.1f}", "-"],
        ],
    )
    costs, report = runs["costs"], runs["report"]
    ratio = median([r.seconds for r in costs]) / median([r.seconds for r in report])
    extra = max(r.requests - r.rate_limited - n_months for r in [*costs, real_costs])
    same = all(run.costs == report[0].costs for run in [*costs, *report, real_costs])
    target = TIME_TARGET_KEYS / n_keys
    cells = len(report[0].costs)
    verdicts = Verdicts()
    verdicts.check("costs one request a month", extra == 0,
                   f"{n_months} months: {extra:+d} requests beyond one a month and the 429s waited out")
    verdicts.check("costs equal report", same and cells == n_keys * n_months,
                   f"{cells} (key, month) costs, {'all equal' if same else 'NOT all equal'} to the centime")
    verdicts.check(
        "costs time", ratio <= target,
        f"{ratio:.3f}x report's time (target <= {TIME_TARGET_KEYS} / {n_keys} keys = {target:.2f}x)",
    )
    verdicts.print()


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(__doc__ or "", argv)
    rounds = args.rounds or 1
    asyncio.run(main_async(args.quick, rounds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
