"""Client instructions per request, counted by valgrind: overhead.py's comparison, without the noise.

CPU time on a shared 2-core machine drifts by more than the few percent a change to the request
path is worth; instructions retired do not. Each side (the bare aiohttp + ``json.loads`` loop of
overhead.py, and ``iter_api_key_usage`` at concurrency 64) runs in a child process under
``valgrind --tool=callgrind``, once with one round and once with three, after a warm-up: half the
difference is one round, without start-up and imports. The fake server runs unmeasured.

    python benchmarks/_instructions.py [--keys 100] [TREE ...]

Each TREE (default: this checkout) is a source tree put first on the children's ``PYTHONPATH``,
so two versions of the library compare against one server. Needs valgrind; prints a table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import aiohttp
from _common import Server, list_key_ids, machine_line, print_table

from freddy_async import FreddyClient, YearMonth, __version__

MONTHS = [YearMonth(2025, m) for m in range(1, 11)]
CONCURRENCY = 64


async def _baseline(base_url: str, api_key: str, org_id: str, keys: Sequence[str]) -> None:
    urls = [
        f"{base_url}/v1/analytics/api-keys/usage/{org_id}/{k}?month={m.month}&year={m.year}"
        for k in keys
        for m in MONTHS
    ]
    headers = {
        "X-API-Key": api_key,
        "User-Agent": f"freddy-async/{__version__}",
        "Accept": "application/json",
    }
    pending = iter(urls)

    async def worker(session: aiohttp.ClientSession) -> None:
        for url in pending:
            async with session.get(url, headers=headers) as response:
                body = await response.read()
            json.loads(body)

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=CONCURRENCY)) as session:
        await asyncio.gather(*(worker(session) for _ in range(CONCURRENCY)))


async def _client(base_url: str, api_key: str, org_id: str, keys: Sequence[str]) -> None:
    async with FreddyClient(api_key, base_url=base_url, max_concurrency=CONCURRENCY) as client:
        async for report in client.iter_api_key_usage(org_id, keys, months=MONTHS):
            if report.errors:
                raise RuntimeError(f"{report.api_key_id}: {report.errors}")


async def _child(kind: str, rounds: int, base_url: str, api_key: str, org_id: str, keys: list[str]) -> None:
    run = _baseline if kind == "baseline" else _client
    await run(base_url, api_key, org_id, keys[:20])  # warm-up: imports, hooks, connections
    for _ in range(rounds):
        await run(base_url, api_key, org_id, keys)


def _instructions(tree: Path, kind: str, rounds: int, srv: Server, keys: Sequence[str]) -> int:
    command = [
        "valgrind",
        "--tool=callgrind",
        "--callgrind-out-file=/dev/null",
        sys.executable,
        __file__,
        "--child",
        kind,
        str(rounds),
        srv.base_url,
        srv.api_key,
        srv.org_id,
        ",".join(keys),
    ]
    env = dict(os.environ, PYTHONPATH=f"{tree}{os.pathsep}{Path(__file__).parent}")
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    found = re.search(r"Collected : (\d+)", done.stderr)
    if done.returncode or not found:
        raise RuntimeError(f"{kind} under valgrind failed: {done.stderr[-2000:]}")
    return int(found.group(1))


def _per_request(tree: Path, kind: str, srv: Server, keys: Sequence[str]) -> float:
    one, three = (_instructions(tree, kind, rounds, srv, keys) for rounds in (1, 3))
    return (three - one) / 2 / (len(keys) * len(MONTHS))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--keys", type=int, default=100, help="keys per round, x 10 months (default: 100)")
    parser.add_argument("trees", nargs="*", type=Path, default=[Path(__file__).resolve().parent.parent])
    args = parser.parse_args(argv)
    print(machine_line())
    print(f"instructions: {args.keys} keys x {len(MONTHS)} months a round, concurrency {CONCURRENCY}")
    with Server(args.keys) as srv:
        keys = asyncio.run(list_key_ids(srv))
        baseline = _per_request(args.trees[0], "baseline", srv, keys)
        rows = [["bare aiohttp + json.loads", f"{baseline:,.0f}", "1.000x"]]
        for tree in args.trees:
            client = _per_request(tree, "client", srv, keys)
            ratio = f"{client / baseline:.3f}x"
            rows.append([f"FreddyClient.iter_api_key_usage ({tree})", f"{client:,.0f}", ratio])
    print_table(["run", "instructions/request", "vs baseline"], rows)
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        kind, rounds, url, key, org, ids = sys.argv[2:8]
        asyncio.run(_child(kind, int(rounds), url, key, org, ids.split(",")))
    else:
        sys.exit(main())
