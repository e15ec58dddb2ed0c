"""Rate-limit efficiency: 1,000 jobs against a server limited to 6,000 requests/min per org.

The ideal time is N / rate (the server's burst of one second's worth of tokens makes even
that a little beatable). The client runs with default options and learns the limit from the
``X-RateLimit-*`` headers. Beside it, a naive client: ``asyncio.gather`` over every job, each
retried by tenacity on 429 with plain exponential backoff. Each run gets a fresh server so
the buckets start full; 429 answers are counted on the client side by an aiohttp TraceConfig.

Targets: client wall time <= 1.10x ideal; 429 answers <= 1% of requests.

    python benchmarks/ratelimit.py [--quick] [--rounds N]
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from types import SimpleNamespace

import aiohttp
from _common import Server, Verdicts, list_key_ids, machine_line, median, parse_args, print_table
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from freddy_async import FreddyClient, YearMonth, __version__

WALL_TARGET = 1.10
RATE_LIMITED_TARGET = 0.01
NAIVE_ATTEMPTS = 30


@dataclass
class Run:
    wall: float
    statuses: Counter[int]
    failed: int = 0

    @property
    def requests(self) -> int:
        return sum(self.statuses.values())

    @property
    def rate_limited(self) -> int:
        return self.statuses[429]


def _status_counter() -> tuple[aiohttp.TraceConfig, Counter[int]]:
    statuses: Counter[int] = Counter()

    async def on_end(
        session: aiohttp.ClientSession, ctx: SimpleNamespace, params: aiohttp.TraceRequestEndParams
    ) -> None:
        statuses[params.response.status] += 1

    trace = aiohttp.TraceConfig()
    trace.on_request_end.append(on_end)
    return trace, statuses


class _RateLimited(Exception):
    pass


async def run_client(srv: Server, key_ids: Sequence[str], months: Sequence[YearMonth]) -> Run:
    """FreddyClient with default options, on a borrowed session that counts statuses."""
    trace, statuses = _status_counter()
    done = 0
    async with aiohttp.ClientSession(trace_configs=[trace]) as session:
        client = FreddyClient(srv.api_key, base_url=srv.base_url, session=session)
        started = time.perf_counter()
        async with client:
            async for report in client.iter_api_key_usage(srv.org_id, key_ids, months=months):
                done += len(report.usage)
        wall = time.perf_counter() - started
    return Run(wall, statuses, failed=len(key_ids) * len(months) - done)


async def run_naive(srv: Server, key_ids: Sequence[str], months: Sequence[YearMonth]) -> Run:
    """Everything at once through ``asyncio.gather``; tenacity retries 429 with backoff."""
    trace, statuses = _status_counter()
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
    async with aiohttp.ClientSession(trace_configs=[trace]) as session:
        started = time.perf_counter()
        results = await asyncio.gather(*(fetch(session, url) for url in urls), return_exceptions=True)
        wall = time.perf_counter() - started
    return Run(wall, statuses, failed=sum(isinstance(r, BaseException) for r in results))


async def one_round(kind: str, n_keys: int, months: Sequence[YearMonth], rpm: int) -> Run:
    # A fresh server per run: its token bucket starts full, as the client's pacer starts blind.
    with Server(n_keys, ["--requests-per-minute", str(rpm)]) as srv:
        key_ids = await list_key_ids(srv)  # the listing is not rate limited
        if kind == "client":
            return await run_client(srv, key_ids, months)
        return await run_naive(srv, key_ids, months)


def _row(name: str, runs: Sequence[Run], ideal: float) -> list[str]:
    wall = median([r.wall for r in runs])
    return [
        name,
        f"{wall:.2f}",
        f"{wall / ideal:.2f}x",
        f"{median([r.requests for r in runs]):.0f}",
        f"{median([r.rate_limited for r in runs]):.0f}",
        f"{median([r.rate_limited / r.requests for r in runs]) * 100:.1f}%",
        f"{median([r.failed for r in runs]):.0f}",
    ]


async def main_async(quick: bool, rounds: int) -> None:
    n_keys, n_months, rpm = (20, 3, 1200) if quick else (100, 10, 6000)
    jobs = n_keys * n_months
    months = [YearMonth(2025, m) for m in range(1, n_months + 1)]
    ideal = jobs / (rpm / 60)
    floor = (jobs - rpm // 60) / (rpm / 60)
    print(machine_line())
    print(f"ratelimit: {jobs} jobs ({n_keys} keys x {n_months} months), server limit {rpm} requests/min "
          f"per org (burst {rpm // 60}), ideal N / rate = {ideal:.2f} s, {rounds} round(s), "
          "a fresh server per run")
    runs: dict[str, list[Run]] = {"client": [], "naive": []}
    for _ in range(rounds):
        for kind in ("client", "naive"):
            runs[kind].append(await one_round(kind, n_keys, months, rpm))

    print_table(
        ["run", "wall s", "wall / ideal", "requests sent", "429 answers", "429 share", "jobs failed"],
        [
            ["ideal (N / rate)", f"{ideal:.2f}", "1.00x", str(jobs), "0", "0.0%", "0"],
            ["floor with the server's burst ((N - burst) / rate)", f"{floor:.2f}",
             f"{floor / ideal:.2f}x", str(jobs), "0", "0.0%", "0"],
            _row("FreddyClient (defaults)", runs["client"], ideal),
            _row(f"naive gather + tenacity wait_exponential ({NAIVE_ATTEMPTS} attempts)",
                 runs["naive"], ideal),
        ],
    )
    print("rounds (wall s / 429s): " + "; ".join(
        f"client {c.wall:.2f}/{c.rate_limited} naive {n.wall:.2f}/{n.rate_limited}"
        for c, n in zip(runs["client"], runs["naive"], strict=True)))
    client = runs["client"]
    wall_ratio = median([r.wall for r in client]) / ideal
    limited_share = median([r.rate_limited / r.requests for r in client])
    failed = max(r.failed for r in client)
    verdicts = Verdicts()
    verdicts.check("ratelimit wall time", wall_ratio <= WALL_TARGET and not failed,
                   f"{wall_ratio:.3f}x ideal (target <= {WALL_TARGET}x); {failed} jobs failed")
    verdicts.check("ratelimit 429 share", limited_share <= RATE_LIMITED_TARGET,
                   f"{limited_share * 100:.2f}% of requests (target <= {RATE_LIMITED_TARGET * 100:.0f}%)")
    verdicts.print()


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(__doc__ or "", argv)
    rounds = args.rounds or (1 if args.quick else 3)
    asyncio.run(main_async(args.quick, rounds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
