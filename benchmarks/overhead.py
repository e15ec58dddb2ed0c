"""Client overhead: ``iter_api_key_usage`` against a bare aiohttp + json loop, same GETs.

5,000 (key, month) jobs (500 keys x 10 months) at concurrency 64, rounds alternating baseline,
client, baseline, client... so that drift on a shared machine hits both alike. The fake server
runs in its own process; CPU is read in this process only.

Targets: client CPU per request <= 1.15x baseline; wall throughput >= 0.85x baseline.

    python benchmarks/overhead.py [--quick] [--rounds N] [--profile PATH]
"""

from __future__ import annotations

import asyncio
import cProfile
import json
import pstats
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

import aiohttp
from _common import (
    Server,
    Verdicts,
    cpu_seconds,
    list_key_ids,
    machine_line,
    median,
    parse_args,
    print_table,
    server_cpu_seconds,
)

from freddy_async import FreddyClient, YearMonth, __version__

CONCURRENCY = 64
CPU_TARGET = 1.15
THROUGHPUT_TARGET = 0.85


@dataclass
class Round:
    requests: int
    wall: float
    cpu: float
    server_cpu: float

    @property
    def cpu_us_per_request(self) -> float:
        return self.cpu / self.requests * 1e6

    @property
    def server_us_per_request(self) -> float:
        return self.server_cpu / self.requests * 1e6

    @property
    def throughput(self) -> float:
        return self.requests / self.wall


def _urls(srv: Server, key_ids: Sequence[str], months: Sequence[YearMonth]) -> list[str]:
    # The client's own URL shape (the server's IDs need no quoting), then month and year.
    return [
        f"{srv.base_url}/v1/analytics/api-keys/usage/{srv.org_id}/{key}?month={m.month}&year={m.year}"
        for key in key_ids
        for m in months
    ]


async def run_baseline(srv: Server, urls: Sequence[str]) -> int:
    """The hand-written loop: 64 workers, one session, ``json.loads`` of each body."""
    headers = {
        "X-API-Key": srv.api_key,
        "User-Agent": f"freddy-async/{__version__}",
        "Accept": "application/json",
    }
    pending = iter(urls)
    done = 0

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal done
        for url in pending:
            async with session.get(url, headers=headers) as response:
                body = await response.read()
                if response.status != 200:
                    raise RuntimeError(f"baseline: {url} answered {response.status}")
            json.loads(body)
            done += 1

    connector = aiohttp.TCPConnector(limit=CONCURRENCY)
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(worker(session) for _ in range(CONCURRENCY)))
    return done


async def run_client(srv: Server, key_ids: Sequence[str], months: Sequence[YearMonth]) -> int:
    """The library: one batch over every (key, month), reports consumed as they come."""
    done = 0
    async with FreddyClient(
        srv.api_key, base_url=srv.base_url, max_concurrency=CONCURRENCY
    ) as client:
        async for report in client.iter_api_key_usage(srv.org_id, key_ids, months=months):
            if report.errors:
                raise RuntimeError(f"client: {report.api_key_id} failed: {report.errors}")
            done += len(report.usage)
    return done


async def measure(srv: Server, kind: str, key_ids: Sequence[str], months: Sequence[YearMonth],
                  urls: Sequence[str]) -> Round:
    server_before = server_cpu_seconds(srv.pid)
    cpu_before = cpu_seconds()
    started = time.perf_counter()
    if kind == "baseline":
        done = await run_baseline(srv, urls)
    else:
        done = await run_client(srv, key_ids, months)
    wall = time.perf_counter() - started
    cpu = cpu_seconds() - cpu_before
    server_cpu = server_cpu_seconds(srv.pid) - server_before
    if done != len(urls):
        raise RuntimeError(f"{kind}: {done} results for {len(urls)} jobs")
    return Round(done, wall, cpu, server_cpu)


async def profile_client(
    srv: Server, key_ids: Sequence[str], months: Sequence[YearMonth], path: str
) -> None:
    """One more client round under cProfile, timed by CPU; print where the library spends it.

    cProfile's own cost per call inflates code made of many small calls (conversion, the
    request path's layers) against code that waits in C; read the ranking, not the µs.
    """
    profiler = cProfile.Profile(time.process_time)
    profiler.enable()
    await run_client(srv, key_ids, months)
    profiler.disable()
    profiler.dump_stats(path)
    stats = pstats.Stats(profiler)
    total = 0.0
    library: list[tuple[float, float, str]] = []
    for (filename, line, name), (_, _, tottime, cumtime, _) in stats.stats.items():  # type: ignore[attr-defined]
        total += tottime
        if "freddy_async" in filename and "testing" not in filename:
            library.append((tottime, cumtime, f"{filename.rsplit('/', 1)[-1]}:{line}({name})"))
    library.sort(reverse=True)
    share = sum(t for t, _, _ in library) / total * 100 if total else 0.0
    print(f"profile of one client round saved to {path}; freddy_async's own code: {share:.1f}% "
          "of the profiled CPU time. Hottest library functions (own time, with callees):")
    for tottime, cumtime, where in library[:15]:
        print(f"  {tottime / total * 100:5.1f}%  {cumtime / total * 100:5.1f}%  {where}")


async def main_async(quick: bool, rounds: int, profile: str | None = None) -> None:
    n_keys, n_months = (60, 5) if quick else (500, 10)
    months = [YearMonth(2025, m) for m in range(1, n_months + 1)]
    print(machine_line())
    print(f"overhead: {n_keys} keys x {n_months} months = {n_keys * n_months} jobs, "
          f"concurrency {CONCURRENCY}, {rounds} round(s) of each, alternating")
    with Server(n_keys) as srv:
        key_ids = await list_key_ids(srv)
        urls = _urls(srv, key_ids, months)
        # Warm-up, not counted: the server computes and caches every month once, the client
        # builds its converter hooks, and both pay their first-connection costs.
        await run_baseline(srv, urls)
        await run_client(srv, key_ids[:10], months)
        results: dict[str, list[Round]] = {"baseline": [], "client": []}
        for _ in range(rounds):
            for kind in ("baseline", "client"):
                results[kind].append(await measure(srv, kind, key_ids, months, urls))

    base, client = results["baseline"], results["client"]
    # Paired ratios (round i of each) cancel drift between rounds better than ratios of medians.
    cpu_ratio = median([c.cpu / b.cpu for b, c in zip(base, client, strict=True)])
    tput_ratio = median([c.throughput / b.throughput for b, c in zip(base, client, strict=True)])
    rows = []
    for name, rs in (("bare aiohttp + json.loads", base), ("FreddyClient.iter_api_key_usage", client)):
        rows.append([
            name,
            f"{median([r.cpu_us_per_request for r in rs]):.0f}",
            f"{median([r.wall for r in rs]):.2f}",
            f"{median([r.throughput for r in rs]):.0f}",
            f"{median([r.server_us_per_request for r in rs]):.0f}",
        ])
    rows.append(["client / baseline (median of paired rounds)", f"{cpu_ratio:.2f}x", "",
                 f"{tput_ratio:.2f}x", ""])
    print_table(["run", "client CPU µs/request", "wall s", "requests/s", "server CPU µs/request"],
                rows)
    print("rounds (cpu µs/req, req/s): " + "; ".join(
        f"base {b.cpu_us_per_request:.0f}/{b.throughput:.0f} client {c.cpu_us_per_request:.0f}/"
        f"{c.throughput:.0f}" for b, c in zip(base, client, strict=True)))
    if profile is not None:
        with Server(n_keys) as srv:
            await run_client(srv, key_ids, months)  # warm-up
            await profile_client(srv, key_ids, months, profile)
    verdicts = Verdicts()
    verdicts.check("overhead CPU per request", cpu_ratio <= CPU_TARGET,
                   f"{cpu_ratio:.3f}x baseline (target <= {CPU_TARGET}x)")
    verdicts.check("overhead wall throughput", tput_ratio >= THROUGHPUT_TARGET,
                   f"{tput_ratio:.3f}x baseline (target >= {THROUGHPUT_TARGET}x)")
    verdicts.print()


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(__doc__ or "", argv, profile=True)
    rounds = args.rounds or (1 if args.quick else 5)
    asyncio.run(main_async(args.quick, rounds, args.profile))
    return 0


if __name__ == "__main__":
    sys.exit(main())
