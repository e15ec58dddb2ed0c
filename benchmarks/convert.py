"""Conversion cost: one ``ApiKeyUsage`` and one 31-day ``ApiKeyDailyUsage`` from bytes.

The bodies are fetched once from the fake server (its own process, in the usage docs page's
camelCase, as the results recorded so far were measured). Shown, in µs per call (median of
several repeats): ``json.loads`` alone, ``json.loads`` with ``parse_float=Decimal``,
``orjson.loads`` when importable, the library's ``parse_json``, its ``structure`` alone and the
two together. The very first ``structure``
call of each class is timed apart: it builds the cattrs hooks, and every later call must reuse
them. That is checked twice: the call time drops, and the converter's dispatch cache records no
new miss over the timed calls.

No target yet; one PASS/MISS line for "hooks built once".

    python benchmarks/convert.py [--quick] [--rounds N]
"""

from __future__ import annotations

import asyncio
import importlib
import json
import sys
import time
from collections.abc import Callable
from decimal import Decimal
from functools import partial
from typing import Any

import aiohttp
from _common import Server, Verdicts, list_key_ids, machine_line, median, parse_args, print_table

from freddy_async import ApiKeyDailyUsage, ApiKeyUsage, _convert
from freddy_async._convert import parse_json, structure

MONTHS_WITH_31_DAYS = (1, 3, 5, 7, 8, 10, 12)


async def fetch_bodies() -> tuple[bytes, bytes]:
    """One usage body and one daily body with 31 day rows, as the server sends them."""
    with Server(20, ["--casing", "camel"]) as srv:
        key_id = (await list_key_ids(srv))[0]
        headers = {"X-API-Key": srv.api_key}
        async with aiohttp.ClientSession(headers=headers) as session:
            base = f"{srv.base_url}/v1/analytics/api-keys"
            async with session.get(f"{base}/usage/{srv.org_id}/{key_id}?month=3&year=2025") as r:
                r.raise_for_status()
                usage = await r.read()
            for month in MONTHS_WITH_31_DAYS:
                async with session.get(f"{base}/daily/{srv.org_id}?month={month}&year=2025") as r:
                    r.raise_for_status()
                    daily = await r.read()
                if len(json.loads(daily)["dailyUsage"]) == 31:
                    return usage, daily
    raise RuntimeError("no month of 2025 had traffic on all 31 days")


def per_call_us(func: Callable[[], Any], calls: int, repeats: int) -> float:
    """Median over ``repeats`` of the mean time of ``calls`` calls, in µs."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        for _ in range(calls):
            func()
        times.append((time.perf_counter() - started) / calls)
    return median(times) * 1e6


def once_us(func: Callable[[], Any]) -> float:
    started = time.perf_counter()
    func()
    return (time.perf_counter() - started) * 1e6


def _dispatch_misses() -> int | None:
    # cattrs caches the hook it dispatches to per class; a miss means a hook was (re)built.
    dispatch = getattr(getattr(_convert._converter, "_structure_func", None), "dispatch", None)
    info = getattr(dispatch, "cache_info", None)
    return int(info().misses) if info is not None else None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(__doc__ or "", argv)
    repeats = args.rounds or (3 if args.quick else 7)
    scale = 10 if args.quick else 1
    usage_raw, daily_raw = asyncio.run(fetch_bodies())
    try:
        orjson_loads: Callable[[bytes], Any] | None = importlib.import_module("orjson").loads
    except ImportError:
        orjson_loads = None

    print(machine_line())
    print(f"convert: usage body {len(usage_raw)} bytes, daily body {len(daily_raw)} bytes (31 days); "
          f"median of {repeats} repeats; orjson {'present' if orjson_loads else 'not installed'}")

    rows = []
    built_once = True
    notes = []
    models: tuple[tuple[type[Any], bytes, int], ...] = (
        (ApiKeyUsage, usage_raw, 5000),
        (ApiKeyDailyUsage, daily_raw, 1000),
    )
    for cls, raw, calls in models:
        calls //= scale
        parsed = parse_json(raw)
        misses_before = _dispatch_misses()
        first = once_us(partial(structure, parsed, cls))
        misses_after_first = _dispatch_misses()
        second = once_us(partial(structure, parsed, cls))

        def full(cls: type[Any] = cls, raw: bytes = raw) -> Any:
            return structure(parse_json(raw), cls)

        candidates: list[tuple[str, Callable[[], Any]]] = [
            ("json.loads", partial(json.loads, raw)),
            ("json.loads(parse_float=Decimal)", partial(json.loads, raw, parse_float=Decimal)),
        ]
        if orjson_loads is not None:
            candidates.append(("orjson.loads", partial(orjson_loads, raw)))
        candidates += [
            ("parse_json (library)", partial(parse_json, raw)),
            ("structure alone (library)", partial(structure, parsed, cls)),
            ("parse_json + structure (library)", full),
        ]
        timings = [(name, per_call_us(func, calls, repeats)) for name, func in candidates]
        misses_end = _dispatch_misses()
        steady = dict(timings)["structure alone (library)"]
        base = dict(timings)["json.loads"]
        for name, us in timings:
            rows.append([cls.__name__, name, f"{us:.1f}", f"{us / base:.1f}x"])
        rows.append([cls.__name__, "structure, first call (builds hooks)", f"{first:.1f}", ""])
        rows.append([cls.__name__, "structure, second call", f"{second:.1f}", ""])
        if misses_before is not None and misses_after_first is not None and misses_end is not None:
            rebuilt = misses_end - misses_after_first
            notes.append(f"{cls.__name__}: {misses_after_first - misses_before} dispatch misses on the "
                         f"first call, {rebuilt} over the {calls * (2 * repeats + 1) + 1} calls after")
            built_once = built_once and rebuilt == 0
        built_once = built_once and steady < first
    print_table(["model", "what", "µs per call", "vs json.loads"], rows)
    for note in notes:
        print(note)
    verdicts = Verdicts()
    verdicts.check("convert hooks built once", built_once,
                   "no hook rebuilt after the first call, and later calls are cheaper (no time target)")
    verdicts.print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
