"""Time to first result: the first ``KeyUsageReport`` of a 2,000-key x 12-month batch.

The baseline is the same client fetching one key's 12 months alone (one-key batch, same
settings: max_concurrency 64). Both start from a fresh client (so both open their connections
inside the timing) and stop at the first report; leaving the big batch early then cancels its
other jobs, and how long that takes is shown too. Rounds alternate baseline, batch, ...

Target: first report of the 2,000-key batch <= 3x one key's months alone.

    python benchmarks/first_result.py [--quick] [--rounds N]
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

from _common import Server, Verdicts, list_key_ids, machine_line, median, parse_args, print_table

from freddy_async import FreddyClient, YearMonth

CONCURRENCY = 64
TARGET = 3.0


@dataclass
class Timing:
    first: float
    cancel: float


async def first_report(srv: Server, key_ids: Sequence[str] | None, months: Sequence[YearMonth]) -> Timing:
    async with FreddyClient(srv.api_key, base_url=srv.base_url, max_concurrency=CONCURRENCY) as client:
        started = time.perf_counter()
        reports = client.iter_api_key_usage(srv.org_id, key_ids, months=months)
        report = await anext(reports)
        first = time.perf_counter() - started
        if report.errors or len(report.usage) != len(months):
            raise RuntimeError(f"{report.api_key_id}: {len(report.usage)} months, {report.errors}")
        started = time.perf_counter()
        aclose = getattr(reports, "aclose", None)
        if aclose is not None:
            await aclose()
        cancel = time.perf_counter() - started
    return Timing(first, cancel)


async def main_async(quick: bool, rounds: int) -> None:
    n_keys, n_months = (200, 12) if quick else (2_000, 12)
    months = [YearMonth(2025, m) for m in range(1, n_months + 1)]
    print(machine_line())
    print(f"first-result: batch of {n_keys} keys x {n_months} months = {n_keys * n_months} jobs vs one "
          f"key x {n_months} months alone, max_concurrency {CONCURRENCY}, {rounds} round(s), alternating")
    runs: dict[str, list[Timing]] = {"alone": [], "batch": [], "listed": []}
    with Server(n_keys) as srv:
        key_ids = await list_key_ids(srv)
        # Warm-up, not counted: server caches for the first keys' months, client hooks.
        await first_report(srv, key_ids[:1], months)
        await first_report(srv, key_ids, months)
        await first_report(srv, None, months)
        for _ in range(rounds):
            runs["alone"].append(await first_report(srv, key_ids[:1], months))
            runs["batch"].append(await first_report(srv, key_ids, months))
            runs["listed"].append(await first_report(srv, None, months))

    ratio = median([b.first / a.first for a, b in zip(runs["alone"], runs["batch"], strict=True)])
    listed = median([b.first / a.first for a, b in zip(runs["alone"], runs["listed"], strict=True)])
    alone_ms = median([t.first for t in runs["alone"]]) * 1000

    def row(name: str, timings: Sequence[Timing], vs: str) -> list[str]:
        first = median([t.first for t in timings]) * 1000
        return [name, f"{first:.1f}", vs, f"{median([t.cancel for t in timings]) * 1000:.1f}"]

    print_table(
        ["run", "first report ms", "vs alone (median of paired rounds)", "leaving early ms"],
        [
            row(f"one key x {n_months} months alone", runs["alone"], "1.00x"),
            row(f"{n_keys}-key batch, IDs given", runs["batch"], f"{ratio:.2f}x"),
            row(f"{n_keys}-key batch, keys listed by the client (info)", runs["listed"], f"{listed:.2f}x"),
        ],
    )
    print(f"one key alone: {alone_ms:.1f} ms; rounds (alone / batch ms): " + "; ".join(
        f"{a.first * 1000:.1f}/{b.first * 1000:.1f}"
        for a, b in zip(runs["alone"], runs["batch"], strict=True)))
    verdicts = Verdicts()
    verdicts.check("first-result", ratio <= TARGET,
                   f"{ratio:.3f}x one key alone (target <= {TARGET:.0f}x)")
    verdicts.print()


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(__doc__ or "", argv)
    rounds = args.rounds or (1 if args.quick else 9)
    asyncio.run(main_async(args.quick, rounds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
