"""Flat memory: 10,000 keys x 12 months = 120,000 jobs, each report consumed as it streams.

The client lists the organization's keys itself (``api_key_ids=None``) and runs the batch at
``max_concurrency=64``. RSS is read before the batch and sampled during it (``/proc/self/statm``
from a background task every 10 ms and at every 100th report, plus the ``ru_maxrss``
high-water mark); live asyncio tasks are counted at every report and by the same sampler.
One round at full size: it is long.

Targets: peak RSS growth <= 64 MB; peak live asyncio tasks <= max_concurrency + 8 (the count
includes this script's main task and its sampler task).

    python benchmarks/memory.py [--quick] [--rounds N]
"""

from __future__ import annotations

import asyncio
import gc
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from _common import (
    Server,
    Verdicts,
    cpu_seconds,
    current_rss_bytes,
    machine_line,
    max_rss_bytes,
    median,
    parse_args,
    print_table,
)

from freddy_async import FreddyClient, YearMonth

CONCURRENCY = 64
RSS_TARGET_MB = 64.0
TASK_SLACK = 8
MB = 1024 * 1024
SAMPLE_EVERY = 0.01


@dataclass
class Peaks:
    rss: int = 0
    tasks: int = 0
    progress: list[tuple[int, int]] = field(default_factory=list)  # (reports, rss)

    def sample(self) -> None:
        self.rss = max(self.rss, current_rss_bytes())
        self.tasks = max(self.tasks, len(asyncio.all_tasks()))


@dataclass
class Result:
    jobs: int
    reports: int
    wall: float
    cpu: float
    rss_before: int
    rss_peak: int
    rss_after: int
    tasks_peak: int
    progress: list[tuple[int, int]]

    @property
    def growth_mb(self) -> float:
        return (self.rss_peak - self.rss_before) / MB


async def _sampler(peaks: Peaks) -> None:
    while True:
        peaks.sample()
        await asyncio.sleep(SAMPLE_EVERY)


async def one_round(n_keys: int, months: Sequence[YearMonth]) -> Result:
    with Server(n_keys) as srv:
        async with FreddyClient(
            srv.api_key, base_url=srv.base_url, max_concurrency=CONCURRENCY
        ) as client:
            # Warm-up, not counted: the session, the converter's hooks, a first connection.
            async for key in client.list_api_keys(srv.org_id, page_size=1):
                await client.get_api_key_usage(srv.org_id, key.id, month=1, year=2025)
                break
            gc.collect()
            rss_before = current_rss_bytes()
            max_before = max_rss_bytes()
            peaks = Peaks(rss=rss_before)
            sampler = asyncio.create_task(_sampler(peaks))
            await asyncio.sleep(0)
            reports = jobs = 0
            total_cost = Decimal(0)
            step = max(1, n_keys // 10)
            cpu_before = cpu_seconds()
            started = time.perf_counter()
            async for report in client.iter_api_key_usage(srv.org_id, months=months):
                if report.errors:
                    raise RuntimeError(f"{report.api_key_id} failed: {report.errors}")
                reports += 1
                jobs += len(report.usage)
                total_cost += report.total_cost
                peaks.tasks = max(peaks.tasks, len(asyncio.all_tasks()))
                if reports % 100 == 0:
                    peaks.sample()
                if reports % step == 0:
                    peaks.progress.append((reports, current_rss_bytes()))
            wall = time.perf_counter() - started
            cpu = cpu_seconds() - cpu_before
            sampler.cancel()
            await asyncio.gather(sampler, return_exceptions=True)
            peaks.sample()
            max_after = max_rss_bytes()
            # ru_maxrss only says something about the batch if it rose during it.
            rss_peak = max(peaks.rss, max_after if max_after > max_before else 0)
            rss_after = current_rss_bytes()
    if reports != n_keys or jobs != n_keys * len(months):
        raise RuntimeError(f"{reports} reports / {jobs} months for {n_keys} keys x {len(months)} months")
    return Result(jobs, reports, wall, cpu, rss_before, rss_peak, rss_after, peaks.tasks, peaks.progress)


async def main_async(quick: bool, rounds: int) -> None:
    n_keys, n_months = (300, 2) if quick else (10_000, 12)
    months = [YearMonth(2025, m) for m in range(1, n_months + 1)]
    print(machine_line())
    print(f"memory: {n_keys} keys x {n_months} months = {n_keys * n_months} jobs, keys listed by the "
          f"client, max_concurrency {CONCURRENCY}, {rounds} round(s)")
    results = [await one_round(n_keys, months) for _ in range(rounds)]

    growth = median([r.growth_mb for r in results])
    tasks = max(r.tasks_peak for r in results)
    last = results[-1]
    print_table(
        ["jobs", "wall s", "requests/s", "client CPU µs/request", "RSS before MB", "RSS peak MB",
         "peak growth MB", "RSS after MB", "peak live tasks"],
        [[
            str(last.jobs),
            f"{median([r.wall for r in results]):.1f}",
            f"{median([r.jobs / r.wall for r in results]):.0f}",
            f"{median([r.cpu / r.jobs * 1e6 for r in results]):.0f}",
            f"{last.rss_before / MB:.1f}",
            f"{last.rss_peak / MB:.1f}",
            f"{growth:.1f}",
            f"{last.rss_after / MB:.1f}",
            str(tasks),
        ]],
    )
    print("RSS growth as the batch went (reports done: MB over before): " + ", ".join(
        f"{n}: {(rss - last.rss_before) / MB:+.1f}" for n, rss in last.progress))
    verdicts = Verdicts()
    verdicts.check("memory peak RSS growth", growth <= RSS_TARGET_MB,
                   f"{growth:.1f} MB (target <= {RSS_TARGET_MB:.0f} MB)")
    verdicts.check("memory peak live tasks", tasks <= CONCURRENCY + TASK_SLACK,
                   f"{tasks} (target <= max_concurrency + {TASK_SLACK} = {CONCURRENCY + TASK_SLACK})")
    verdicts.print()


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(__doc__ or "", argv)
    asyncio.run(main_async(args.quick, args.rounds or 1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
