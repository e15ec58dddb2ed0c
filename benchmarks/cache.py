"""UsageCache: a 50-key x 12-month report run twice at 100 requests/min, and 2,400 months served.

Part 1 runs ``client.iter_api_key_usage`` (what ``freddy-usage report`` runs) twice over the
same closed year, with one cache file, against one ``FakeFreddyServer`` limited to 100
requests/min per organization, the documented analytics limit. The first run lists the keys and
fetches every (key, month): 601 requests, about 6 minutes at that limit. The second finds every
month in the cache and sends only the listing's request. Both runs take place in virtual time
(``freddy_async.testing.instant_retries()``): the client's pacing and the server's token bucket
read one virtual clock, so the 6 minutes pass in seconds, and the wall figures are what the runs
would take against the real limit. The real seconds of each run are shown beside them.

Part 2 times, in real time, serving 200 keys x 12 months = 2,400 months from a cache that
holds them all (given key IDs, so no request at all): the median of the rounds.

Targets: the second run sends only the listing's requests (and the 429s it waits out); both runs
give the same usage for every (key, month), to the last digit; 2,400 cached months are served in
under 0.5 s.

    python benchmarks/cache.py [--quick] [--rounds N]
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from _common import Verdicts, machine_line, median, parse_args, print_table

from freddy_async import ApiKeyUsage, FreddyClient, UsageCache, YearMonth, _clock
from freddy_async.testing import FakeFreddyServer, instant_retries

RATE = 100  # requests per minute per organization (API.md, rate limits)
SERVE_TARGET = 0.5  # seconds for 2,400 cached months (the goal)


@dataclass
class Run:
    seconds: float  # virtual seconds: what the run takes against the real limit
    real: float
    requests: int
    rate_limited: int
    hits: int
    usage: dict[tuple[str, YearMonth], ApiKeyUsage]


async def report(server: FakeFreddyServer, path: Path, months: Sequence[YearMonth]) -> Run:
    """One report of every key of the server's organization, through the cache at ``path``."""
    before, limited = server.request_count, server.rate_limited_count
    started, real_started = _clock.now(), time.perf_counter()
    async with (
        UsageCache(path) as cache,
        FreddyClient(server.api_key, base_url=server.base_url, cache=cache) as client,
    ):
        usage = {
            (u.api_key_id, u.period): u
            async for r in client.iter_api_key_usage(server.org_id, months=months)
            for u in r.usage
        }
    return Run(
        _clock.now() - started,
        time.perf_counter() - real_started,
        server.request_count - before,
        server.rate_limited_count - limited,
        client.stats.cache_hits,
        usage,
    )


async def report_twice(n_keys: int, months: Sequence[YearMonth], path: Path) -> tuple[Run, Run]:
    with instant_retries():
        async with FakeFreddyServer(keys=n_keys, requests_per_minute=RATE, log_requests=False) as server:
            return await report(server, path, months), await report(server, path, months)


async def serve_from_cache(n_keys: int, months: Sequence[YearMonth], path: Path, rounds: int) -> list[float]:
    """Real seconds to serve ``n_keys`` x ``months`` from a full cache, once per round."""
    async with FakeFreddyServer(keys=n_keys, log_requests=False) as server:
        keys = server.key_ids
        async with (
            UsageCache(path) as cache,
            FreddyClient(server.api_key, base_url=server.base_url, cache=cache) as client,
        ):
            async for _ in client.iter_api_key_usage(server.org_id, keys, months=months):
                pass  # fills the cache
        seconds = []
        for _ in range(rounds):
            started = time.perf_counter()
            async with (
                UsageCache(path) as cache,
                FreddyClient(server.api_key, base_url=server.base_url, cache=cache) as client,
            ):
                served = sum(
                    [
                        len(r.usage)
                        async for r in client.iter_api_key_usage(server.org_id, keys, months=months)
                    ]
                )
            seconds.append(time.perf_counter() - started)
            if served != len(keys) * len(months) or client.stats.requests != 0:
                raise RuntimeError(f"served {served} months with {client.stats.requests} requests")
    return seconds


def _row(name: str, run: Run) -> list[str]:
    return [
        name,
        str(run.requests),
        str(run.rate_limited),
        str(run.hits),
        f"{run.seconds:.1f}",
        f"{run.real:.2f}",
    ]


async def main_async(quick: bool, rounds: int) -> None:
    n_keys, n_months, serve_keys = (10, 3, 20) if quick else (50, 12, 200)
    months = YearMonth.range(YearMonth(2025, 1), YearMonth(2025, n_months))
    serve_months = YearMonth.range("2025-01", "2025-12")
    print(machine_line())
    print(
        f"cache: a {n_keys}-key x {n_months}-month report run twice with one cache file against a fake "
        f"server limited to {RATE} requests/min per organization (virtual time); then "
        f"{serve_keys} x 12 = {serve_keys * 12} months served from the cache in real time, {rounds} round(s)"
    )
    with tempfile.TemporaryDirectory() as directory:
        first, second = await report_twice(n_keys, months, Path(directory) / "report.sqlite3")
        serving = await serve_from_cache(serve_keys, serve_months, Path(directory) / "serve.sqlite3", rounds)
    print_table(
        ["run", "requests received", "429 answers", "cache hits", "wall s (virtual)", "real s of the run"],
        [
            _row(f"first run (listing + {n_keys} x {n_months} usage requests)", first),
            _row("second run, same cache file", second),
            [f"{serve_keys * 12} cached months served (median of {rounds})", "0", "0",
             str(serve_keys * 12), "-", f"{median(serving):.3f}"],
        ],
    )  # fmt: skip
    verdicts = Verdicts()
    cells = n_keys * n_months
    extra = second.requests - second.rate_limited - 1
    verdicts.check(
        "second run only lists",
        extra == 0 and second.hits == cells,
        f"{second.requests} requests ({second.rate_limited} 429s), {extra:+d} beyond the listing's 1, "
        f"{second.hits} of {cells} months from the cache",
    )
    same = second.usage == first.usage and len(first.usage) == cells
    equal = "all equal" if same else "NOT all equal"
    verdicts.check("second run equals first", same, f"{len(second.usage)} (key, month) usages, {equal}")
    served, target = median(serving), SERVE_TARGET * serve_keys * 12 / 2400
    verdicts.check(
        "serving",
        served < target,
        f"{serve_keys * 12} cached months in {served:.3f} s (target < {target:.3g} s)",
    )
    verdicts.print()


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(__doc__ or "", argv)
    asyncio.run(main_async(args.quick, args.rounds or (1 if args.quick else 5)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
