"""Rate-limit efficiency, in real time on loopback: one row per kind of server limiter.

Every row runs ``iter_api_key_usage`` over keys x months with a ``FreddyClient`` on default
options (no ``requests_per_minute``: the client learns the limit from what the server says)
against a fresh ``python -m freddy_async.testing`` process, so every limiter starts fresh. The
rows cover token buckets of several bursts, fixed windows (the ``X-RateLimit-Reset`` formats and
a server clock 30 s ahead), a sliding-window log, the two IETF dialects, no budget headers at
all (rows three times as long: finding an unknown limit has a fixed cost), and another
consumer taking a quarter of the quota. Row 1 is the documented limit,
100 requests/min: 60 months, 36 s ideal; the others run faster so each takes a few seconds.

The ideal time is jobs / (rate x (1 - shared quota)). A limiter's initial burst (or a fixed
window's first quota) makes that a little beatable, so wall / ideal may be below 1. Beside the
client, on a few rows, a naive client: ``asyncio.gather`` over every job, each retried by
tenacity on 429 with plain exponential backoff. 429 answers are counted on the client side by an
aiohttp ``TraceConfig`` on the session each one uses (the client borrows it). "longest gap" is
the longest time between two requests the client sent: where a row is slow, the wait to blame.

Targets: no failed month in any row; on rows whose server sends budget headers, wall <= 1.05x
ideal and 429 answers <= 1 % of requests; on rows without them, wall <= 1.3x ideal and 429s
<= 10 %.

A run still going at 4x its ideal is stopped and its months left are counted as unfinished, so a
crawling row costs at most that. The full run takes about 9 minutes at one round, hence one round
by default (``--rounds 3`` would take half an hour); ``--quick`` runs four rows of 40 jobs in
about 20 s.

    python benchmarks/ratelimit.py [--quick] [--rounds N]
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import SimpleNamespace

import aiohttp
from _common import Server, Verdicts, list_key_ids, machine_line, median, parse_args, print_table
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from freddy_async import FreddyClient, YearMonth, __version__

HEADERS_WALL_TARGET = 1.05
HEADERS_429_TARGET = 0.01
BLIND_WALL_TARGET = 1.3
BLIND_429_TARGET = 0.10
NAIVE_ATTEMPTS = 30
MONTHS = 10
# A run still going at this many times its ideal is stopped: its months left are "unfinished"
# (a miss either way), so one crawling row cannot hold up the whole benchmark.
CAP = 4.0


@dataclass(frozen=True)
class Limiter:
    """One row: the server's limiter, the batch size, and whether the naive client runs too."""

    name: str
    rpm: float
    keys: int
    algorithm: str = "token_bucket"
    burst: float | None = None
    window: float | None = None
    headers: str = "x-ratelimit"
    reset: str = "epoch"
    shared_quota: float = 0.0
    clock_skew: float = 0.0
    naive: bool = False

    @property
    def jobs(self) -> int:
        return self.keys * MONTHS

    @property
    def ideal(self) -> float:
        return self.jobs / (self.rpm / 60 * (1 - self.shared_quota))

    @property
    def sends_budget(self) -> bool:
        return self.headers != "none"

    def server_args(self) -> list[str]:
        args = [
            "--requests-per-minute", str(self.rpm),
            "--rate-limit-algorithm", self.algorithm,
            "--rate-limit-headers", self.headers,
            "--rate-limit-reset", self.reset,
            "--shared-quota", str(self.shared_quota),
            "--clock-skew", str(self.clock_skew),
        ]
        if self.burst is not None:
            args += ["--rate-limit-burst", str(self.burst)]
        if self.window is not None:
            args += ["--rate-limit-window", str(self.window)]
        return args


FAST = 1500.0  # 25/s: 250 jobs in 10 s
SLOW = 360.0  # 6/s, Q = 60 a 10 s window: 120 jobs in 20 s, over three windows
FULL = [
    Limiter("documented: token bucket 100/min, burst 1.67, x-ratelimit", 100, 6, burst=1.67),
    Limiter("token bucket 25/s, burst 1", FAST, 25, burst=1),
    Limiter("token bucket 25/s, burst 1.67", FAST, 25, burst=1.67),
    Limiter("token bucket 25/s, burst 100", FAST, 25, burst=100, naive=True),
    Limiter("fixed window 1 s, 25/s, epoch reset", FAST, 25, "fixed_window", window=1, naive=True),
    Limiter("fixed window 1 s, 25/s, delta reset", FAST, 25, "fixed_window", window=1, reset="delta"),
    Limiter("fixed window 1 s, 25/s, epoch-ms reset", FAST, 25, "fixed_window", window=1,
            reset="epoch-ms"),
    Limiter("fixed window 1 s, 25/s, epoch reset, server clock +30 s", FAST, 25, "fixed_window",
            window=1, clock_skew=30),
    Limiter("fixed window 10 s, 360/min (Q=60)", SLOW, 12, "fixed_window", window=10, naive=True),
    Limiter("sliding window log 10 s, 360/min", SLOW, 12, "sliding_window", window=10),
    Limiter("ietf: fixed window 10 s, 360/min", SLOW, 12, "fixed_window", window=10, headers="ietf"),
    Limiter("ietf-structured: fixed window 10 s, 360/min", SLOW, 12, "fixed_window", window=10,
            headers="ietf-structured"),
    # Three times as long as their siblings: without headers the limit is found by meeting it,
    # a fixed cost (a wave of up to max_concurrency 429s, a climb to the rate) that a report of
    # a few hundred months pays once; the rows show it against a run of several windows.
    Limiter("no headers: token bucket 25/s, burst 1.67", FAST, 75, burst=1.67, headers="none"),
    Limiter("no headers: fixed window 10 s, 360/min", SLOW, 36, "fixed_window", window=10,
            headers="none"),
    Limiter("shared quota 0.25: fixed window 10 s, 360/min", SLOW, 12, "fixed_window", window=10,
            shared_quota=0.25),
    Limiter("shared quota 0.25: token bucket 25/s", FAST, 25, shared_quota=0.25),
]
QUICK = [
    Limiter("token bucket 25/s, burst 1", FAST, 4, burst=1),
    Limiter("fixed window 1 s, 25/s, epoch reset", FAST, 4, "fixed_window", window=1, naive=True),
    Limiter("no headers: token bucket 25/s, burst 1.67", FAST, 4, burst=1.67, headers="none"),
    Limiter("shared quota 0.25: token bucket 25/s", FAST, 4, shared_quota=0.25),
]


@dataclass
class Run:
    wall: float
    statuses: Counter[int]
    sent_at: list[float]
    failed: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    unfinished: int = 0

    @property
    def requests(self) -> int:
        return sum(self.statuses.values())

    @property
    def limited_share(self) -> float:
        return self.statuses[429] / self.requests if self.requests else 0.0

    @property
    def longest_gap(self) -> float:
        times = sorted(self.sent_at)
        return max((b - a for a, b in itertools.pairwise(times)), default=0.0)


def _tracer() -> tuple[aiohttp.TraceConfig, Counter[int], list[float]]:
    statuses: Counter[int] = Counter()
    sent_at: list[float] = []

    async def on_start(
        session: aiohttp.ClientSession, ctx: SimpleNamespace, params: aiohttp.TraceRequestStartParams
    ) -> None:
        sent_at.append(time.perf_counter())

    async def on_end(
        session: aiohttp.ClientSession, ctx: SimpleNamespace, params: aiohttp.TraceRequestEndParams
    ) -> None:
        statuses[params.response.status] += 1

    trace = aiohttp.TraceConfig()
    trace.on_request_start.append(on_start)
    trace.on_request_end.append(on_end)
    return trace, statuses, sent_at


class _RateLimited(Exception):
    pass


async def run_client(
    srv: Server, key_ids: Sequence[str], months: Sequence[YearMonth], cap: float
) -> Run:
    """FreddyClient with default options, on a borrowed session that counts statuses."""
    trace, statuses, sent_at = _tracer()
    errors: Counter[str] = Counter()
    done = 0

    async def consume(client: FreddyClient) -> None:
        nonlocal done
        async for report in client.iter_api_key_usage(srv.org_id, key_ids, months=months):
            errors.update(type(error).__name__ for error in report.errors.values())
            done += len(report.usage) + len(report.errors)

    async with aiohttp.ClientSession(trace_configs=[trace]) as session:
        client = FreddyClient(srv.api_key, base_url=srv.base_url, session=session)
        started = time.perf_counter()
        async with client:
            try:
                await asyncio.wait_for(consume(client), cap)
            except asyncio.TimeoutError:
                # Stopped: count the months answered, not only those of keys reported whole.
                done = max(done, statuses[200])
        wall = time.perf_counter() - started
    unfinished = len(key_ids) * len(months) - done
    return Run(wall, statuses, sent_at, sum(errors.values()), errors, unfinished)


async def run_naive(
    srv: Server, key_ids: Sequence[str], months: Sequence[YearMonth], cap: float
) -> Run:
    """Everything at once through ``asyncio.gather``; tenacity retries 429 with backoff."""
    trace, statuses, sent_at = _tracer()
    headers = {"X-API-Key": srv.api_key, "User-Agent": f"freddy-async/{__version__}"}

    async def fetch(session: aiohttp.ClientSession, url: str) -> bytes:
        async for attempt in AsyncRetrying(
            retry=retry_if_exception_type(_RateLimited),
            wait=wait_exponential(multiplier=0.1, max=5),
            stop=stop_after_attempt(NAIVE_ATTEMPTS),
            reraise=True,
        ):
            with attempt:
                async with session.get(url, headers=headers) as response:
                    body = await response.read()
                    if response.status == 429:
                        raise _RateLimited
                    response.raise_for_status()
                    return body
        raise AssertionError("unreachable")

    urls = [
        f"{srv.base_url}/v1/analytics/api-keys/usage/{srv.org_id}/{key}?month={m.month}&year={m.year}"
        for key in key_ids
        for m in months
    ]
    results: list[bytes | BaseException] = []
    async with aiohttp.ClientSession(trace_configs=[trace]) as session:
        started = time.perf_counter()
        with contextlib.suppress(asyncio.TimeoutError):
            results = await asyncio.wait_for(
                asyncio.gather(*(fetch(session, url) for url in urls), return_exceptions=True), cap
            )
        wall = time.perf_counter() - started
    errors = Counter(type(r).__name__ for r in results if isinstance(r, BaseException))
    unfinished = len(urls) - len(results)
    return Run(wall, statuses, sent_at, sum(errors.values()), errors, unfinished)


async def one_run(kind: str, limiter: Limiter) -> Run:
    # A fresh server per run: its limiter starts afresh, as the client's pacer starts blind.
    months = [YearMonth(2025, m) for m in range(1, MONTHS + 1)]
    with Server(limiter.keys, limiter.server_args()) as srv:
        key_ids = await list_key_ids(srv)  # the listing is not rate limited
        cap = CAP * limiter.ideal
        if kind == "client":
            return await run_client(srv, key_ids, months, cap)
        return await run_naive(srv, key_ids, months, cap)


@dataclass
class Result:
    limiter: Limiter
    client: list[Run]
    naive: list[Run]

    def wall_ratio(self, runs: Sequence[Run]) -> float:
        return median([r.wall for r in runs]) / self.limiter.ideal

    def cells(self) -> list[str]:
        lim, client = self.limiter, self.client
        row = [
            lim.name, str(lim.jobs), f"{lim.ideal:.1f}",
            _wall(client), f"{_capped(client)}{self.wall_ratio(client):.3f}x",
            _share(client), _failed(client), f"{median([r.longest_gap for r in client]):.2f}",
        ]
        if not self.naive:
            return [*row, "-", "-", "-"]
        naive = self.naive
        return [*row, f"{_capped(naive)}{self.wall_ratio(naive):.2f}x", _share(naive), _failed(naive)]


def _capped(runs: Sequence[Run]) -> str:
    return ">" if any(r.unfinished for r in runs) else ""


def _wall(runs: Sequence[Run]) -> str:
    return f"{_capped(runs)}{median([r.wall for r in runs]):.2f}"


def _failed(runs: Sequence[Run]) -> str:
    failed = str(max(r.failed for r in runs))
    unfinished = max(r.unfinished for r in runs)
    return f"{failed} (+{unfinished} unfinished at {CAP:g}x ideal)" if unfinished else failed


def _share(runs: Sequence[Run]) -> str:
    share = median([r.limited_share for r in runs])
    limited = median([r.statuses[429] for r in runs])
    requests = median([r.requests for r in runs])
    return f"{share * 100:.1f}% ({limited:.0f}/{requests:.0f})"


def _judge(results: Sequence[Result]) -> Verdicts:
    verdicts = Verdicts()
    failed = [(r.limiter.name, max(run.failed for run in r.client)) for r in results]
    missed = [f"{name}: {n}" for name, n in failed if n]
    unfinished = sum(max(run.unfinished for run in r.client) for r in results)
    verdicts.check("ratelimit failed months", not missed,
                   f"{sum(n for _, n in failed)} in {len(results)} rows (target 0)"
                   + (f"; {', '.join(missed)}" if missed else "")
                   + (f"; {unfinished} more unfinished when runs were stopped at {CAP:g}x ideal"
                      if unfinished else ""))
    for budget, wall_target, share_target, label in (
        (True, HEADERS_WALL_TARGET, HEADERS_429_TARGET, "budget headers"),
        (False, BLIND_WALL_TARGET, BLIND_429_TARGET, "no headers"),
    ):
        rows = [r for r in results if r.limiter.sends_budget is budget]
        if not rows:
            continue
        walls = [(r.wall_ratio(r.client), r.limiter.name) for r in rows]
        shares = [(median([run.limited_share for run in r.client]), r.limiter.name) for r in rows]
        slow = [f"{name} {ratio:.3f}x" for ratio, name in walls if ratio > wall_target]
        limited = [f"{name} {share * 100:.1f}%" for share, name in shares if share > share_target]
        worst_wall, worst_wall_row = max(walls)
        worst_share, worst_share_row = max(shares)
        verdicts.check(f"ratelimit wall time, {label}", not slow,
                       f"worst {worst_wall:.3f}x ideal ({worst_wall_row}) over {len(rows)} rows "
                       f"(target <= {wall_target}x)" + (f"; missed: {', '.join(slow)}" if slow else ""))
        verdicts.check(f"ratelimit 429 share, {label}", not limited,
                       f"worst {worst_share * 100:.2f}% ({worst_share_row}) over {len(rows)} rows "
                       f"(target <= {share_target * 100:.0f}%)"
                       + (f"; missed: {', '.join(limited)}" if limited else ""))
    return verdicts


async def main_async(quick: bool, rounds: int) -> None:
    limiters = QUICK if quick else FULL
    print(machine_line())
    print(f"ratelimit: {len(limiters)} limiters, real time on loopback, {rounds} round(s), "
          "a fresh server per run; the client on default options")
    sys.stdout.flush()
    results = [Result(lim, [], []) for lim in limiters]
    for _ in range(rounds):
        for result in results:
            result.client.append(await one_run("client", result.limiter))
            if result.limiter.naive:
                result.naive.append(await one_run("naive", result.limiter))

    print_table(
        ["limiter", "jobs", "ideal s", "wall s", "wall / ideal", "429 share", "failed months",
         "longest gap s", "naive wall / ideal", "naive 429 share", "naive failed months"],
        [r.cells() for r in results],
    )
    for result in results:
        for kind, runs in (("client", result.client), ("naive", result.naive)):
            errors = sum((r.errors for r in runs), Counter[str]())
            if errors:
                print(f"{kind} errors, {result.limiter.name}: "
                      + ", ".join(f"{n} {name}" for name, n in errors.most_common()))
    if rounds > 1:
        print("rounds (client wall s): " + "; ".join(
            f"{r.limiter.name} " + "/".join(f"{run.wall:.2f}" for run in r.client) for r in results))
    _judge(results).print()


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(__doc__ or "", argv)
    asyncio.run(main_async(args.quick, args.rounds or 1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
