"""freddy-usage with its cache (--cache, --no-cache, --refresh), run as a subprocess on loopback.

tests/conftest.py points XDG_CACHE_HOME at a temporary directory for every test, so that no
run of the command line, here or in the other CLI tests, writes the user's own cache.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sqlite3
import stat
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

import pytest
from test_cli import INTERRUPTIBLE, TIMEOUT, Result, _env, run_cli

from freddy_async.testing import FakeFreddyServer

ORG = "org_cli"
MONTHS = ["2025-01", "2025-02", "2025-03"]
MONTH_ARGS = ["--from", MONTHS[0], "--to", MONTHS[-1]]


@pytest.fixture
async def server() -> AsyncIterator[FakeFreddyServer]:
    async with FakeFreddyServer(keys=6, org_id=ORG, seed=7) as fake:
        yield fake


def _usage_requests(server: FakeFreddyServer) -> int:
    return sum(1 for r in server.requests if "/api-keys/usage/" in r.path)


def _rows(path: Path) -> int:
    with contextlib.closing(sqlite3.connect(path)) as db:
        count: int = db.execute("SELECT count(*) FROM answers").fetchone()[0]
    return count


def _records(result: Result) -> list[str]:
    # A report is written as keys complete: the same records, in an order that may differ.
    return sorted(result.stdout.splitlines())


def _status(result: Result) -> str:
    return result.stderr.strip().splitlines()[-1]


async def report(server: FakeFreddyServer, *args: str, env: Mapping[str, str] | None = None) -> Result:
    return await run_cli(
        "report", "--org", ORG, *MONTH_ARGS, "--format", "csv", *args, server=server, env=env
    )


async def test_a_second_report_comes_from_the_cache(server: FakeFreddyServer, tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite3"
    first = await report(server, "--cache", str(path))
    assert first.returncode == 0, first.stderr
    assert "0 months from the cache, 18 fetched" in _status(first)
    assert server.request_count == 1 + 6 * 3
    server.reset_counters()

    second = await report(server, "--cache", str(path))

    assert second.returncode == 0, second.stderr
    assert _records(second) == _records(first)
    assert "18 months from the cache, 0 fetched" in _status(second)
    assert "fetched with 1 HTTP request" in _status(second)
    assert server.request_count == 1  # the key listing only
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


async def test_the_default_file_is_under_xdg_cache_home(server: FakeFreddyServer, tmp_path: Path) -> None:
    env = _env(server, {"XDG_CACHE_HOME": str(tmp_path / "xdg")})
    for _ in range(2):
        result = await report(server, env=env)
        assert result.returncode == 0, result.stderr
    assert "18 months from the cache, 0 fetched" in _status(result)
    assert _rows(tmp_path / "xdg" / "freddy-usage" / "cache.sqlite3") == 18


async def test_without_xdg_cache_home_the_file_is_under_home(
    server: FakeFreddyServer, tmp_path: Path
) -> None:
    env = {k: v for k, v in _env(server).items() if k != "XDG_CACHE_HOME"}
    env["HOME"] = str(tmp_path)
    result = await run_cli("daily", "--org", ORG, "--month", "2025-02", "--format", "json", env=env)
    assert result.returncode == 0, result.stderr
    path = tmp_path / ".cache" / "freddy-usage" / "cache.sqlite3"
    assert _rows(path) == 1
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


async def test_no_cache_reads_and_writes_none(server: FakeFreddyServer, tmp_path: Path) -> None:
    env = _env(server, {"XDG_CACHE_HOME": str(tmp_path)})
    await report(server, env=env)
    server.reset_counters()
    result = await report(server, "--no-cache", env=env)
    assert result.returncode == 0, result.stderr
    assert "from the cache" not in result.stderr
    assert server.request_count == 1 + 6 * 3


async def test_refresh_fetches_everything_and_stores_it(server: FakeFreddyServer, tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite3"
    await report(server, "--cache", str(path))
    server.reset_counters()
    refreshed = await report(server, "--cache", str(path), "--refresh")
    assert refreshed.returncode == 0, refreshed.stderr
    assert "0 months from the cache, 18 fetched" in _status(refreshed)
    assert server.request_count == 1 + 6 * 3
    assert _rows(path) == 18
    server.reset_counters()
    again = await report(server, "--cache", str(path))
    assert _records(again) == _records(refreshed)
    assert server.request_count == 1


async def test_daily_and_costs_use_the_cache_too(server: FakeFreddyServer, tmp_path: Path) -> None:
    cache = ["--cache", str(tmp_path / "cache.sqlite3")]
    daily = ["daily", "--org", ORG, "--month", "2025-02", "--format", "json", *cache]
    costs = ["costs", "--org", ORG, *MONTH_ARGS, "--format", "csv", *cache]
    first = [await run_cli(*daily, server=server), await run_cli(*costs, server=server)]
    assert server.request_count == 1 + 3
    server.reset_counters()
    second = [await run_cli(*daily, server=server), await run_cli(*costs, server=server)]
    assert server.request_count == 0
    assert [r.stdout for r in second] == [r.stdout for r in first]
    assert "1 month from the cache, 0 fetched" in _status(second[0])
    assert "3 months from the cache, 0 fetched" in _status(second[1])


async def test_a_partly_failed_report_rerun_fetches_only_what_is_missing(
    server: FakeFreddyServer, tmp_path: Path
) -> None:
    cache = ["--cache", str(tmp_path / "cache.sqlite3"), "--keys", f"{server.key_ids[0]},apikey_doesnotexist"]
    first = await report(server, *cache)
    assert first.returncode == 1
    assert _usage_requests(server) == 6
    server.reset_counters()
    second = await report(server, *cache)
    assert second.returncode == 1
    good = [[line for line in _records(r) if "doesnotexist" not in line] for r in (first, second)]
    assert good[0] == good[1]
    assert len(good[0]) == 1 + 3  # the header, and the good key's months
    assert "3 months from the cache, 0 fetched" in _status(second)  # the 3 failed ones are asked again
    assert _usage_requests(server) == 3
    assert {r.path.rsplit("/", 1)[1] for r in server.requests} == {"apikey_doesnotexist"}


@pytest.mark.parametrize(
    ("sign", "status"),
    [(signal.SIGINT, 130), (signal.SIGKILL, -signal.SIGKILL)],  # Ctrl-C, and a crash
)
async def test_an_interrupted_report_rerun_fetches_only_what_is_missing(
    sign: signal.Signals, status: int, tmp_path: Path
) -> None:
    path = tmp_path / "cache.sqlite3"
    # 10 requests/s, one at a time: the run is surely half-way when the signal comes.
    args = ["--cache", str(path), "--max-concurrency", "1", "--requests-per-minute", "600"]
    async with FakeFreddyServer(keys=6, org_id=ORG, seed=7) as server:
        process = await asyncio.create_subprocess_exec(
            *INTERRUPTIBLE, "report", "--org", ORG, *MONTH_ARGS, *args,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE, env=_env(server),
        )  # fmt: skip

        async def half_way() -> None:
            while _usage_requests(server) < 8:
                await asyncio.sleep(0.01)

        await asyncio.wait_for(half_way(), TIMEOUT)
        process.send_signal(sign)
        _, err = await asyncio.wait_for(process.communicate(), TIMEOUT)
        assert process.returncode == status, err.decode()
        stored = _rows(path)
        assert 7 <= stored < 18  # the 8th request may still have been in flight
        server.reset_counters()

        result = await report(server, "--cache", str(path))

        assert result.returncode == 0, result.stderr
        assert _usage_requests(server) == 18 - stored
        assert f"{stored} months from the cache, {18 - stored} fetched" in _status(result)


async def test_two_reports_at_once_share_one_file(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite3"
    async with FakeFreddyServer(keys=30, org_id=ORG, seed=3) as server:
        both = await asyncio.gather(*(report(server, "--cache", str(path)) for _ in range(2)))
        assert [r.returncode for r in both] == [0, 0], [r.stderr for r in both]
        assert _records(both[0]) == _records(both[1])
        server.reset_counters()
        third = await report(server, "--cache", str(path))
        assert server.request_count == 1
        assert _records(third) == _records(both[0])


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (b"not a database at all\n", "file is not a database"),
        (b"", None),  # an empty file is taken as a new cache
    ],
)
async def test_a_bad_cache_file_exits_2_with_one_line(
    content: bytes, says: str | None, server: FakeFreddyServer, tmp_path: Path
) -> None:
    path = tmp_path / "cache.sqlite3"
    path.write_bytes(content)
    result = await report(server, "--cache", str(path))
    if says is None:
        assert result.returncode == 0, result.stderr
        return
    assert result.returncode == 2
    assert result.stdout == ""
    assert len(result.stderr.splitlines()) == 1
    assert says in result.stderr and str(path) in result.stderr
    assert "--no-cache" in result.stderr
    assert server.request_count == 0


async def test_a_foreign_database_is_refused_and_left_alone(server: FakeFreddyServer, tmp_path: Path) -> None:
    path = tmp_path / "mine.db"
    with contextlib.closing(sqlite3.connect(path)) as db, db:
        db.execute("CREATE TABLE notes (text TEXT)")
    before = path.read_bytes()
    result = await report(server, "--cache", str(path))
    assert result.returncode == 2
    assert result.stderr.startswith(f"freddy-usage: error: {path} is not a freddy_async usage cache")
    assert path.read_bytes() == before
    assert not any(name.startswith("mine.db-") for name in os.listdir(tmp_path))


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--no-cache", "--refresh"], "--refresh stores in the cache"),
        (["--no-cache", "--cache", "x.sqlite3"], "not allowed with argument"),
    ],
)
async def test_contradictory_cache_options_exit_2(
    args: list[str], says: str, server: FakeFreddyServer
) -> None:
    result = await report(server, *args)
    assert result.returncode == 2
    assert says in result.stderr
    assert len(result.stderr.splitlines()) == 1
    assert server.request_count == 0
