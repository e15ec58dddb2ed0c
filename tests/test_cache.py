"""UsageCache: closed months served from one SQLite file, against FakeFreddyServer on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import sqlite3
import stat
import sys
import threading
from collections.abc import AsyncIterator, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs
import pytest
from tasks import client_tasks, settle

from freddy_async import (
    ApiKeyUsage,
    FreddyClient,
    FreddyError,
    KeyUsageReport,
    UsageCache,
    YearMonth,
)
from freddy_async._cache import is_final, settled_at
from freddy_async.testing import FakeFreddyServer, RecordedWait

MONTHS = YearMonth.range("2025-01", "2025-03")
DAY = 86_400.0


def _usage_requests(server: FakeFreddyServer) -> list[str]:
    return [r.path + "?" + r.query_string for r in server.requests if "/usage/" in r.path]


def _fetched(server: FakeFreddyServer) -> set[tuple[str, YearMonth]]:
    """The (key, month) pairs the server answered with a 200 on the usage endpoint."""
    found = set()
    for request in server.requests:
        if "/api-keys/usage/" in request.path and request.status == 200:
            query = dict(part.split("=") for part in request.query_string.split("&"))
            key = request.path.rsplit("/", 1)[1]
            found.add((key, YearMonth(int(query["year"]), int(query["month"]))))
    return found


@contextlib.asynccontextmanager
async def client_of(
    server: FakeFreddyServer, cache: UsageCache, api_key: str | None = None, **options: Any
) -> AsyncIterator[FreddyClient]:
    async with FreddyClient(
        api_key or server.api_key, base_url=server.base_url, cache=cache, **options
    ) as client:
        yield client


async def run_batch(
    server: FakeFreddyServer, path: Path, months: Sequence[YearMonth] = MONTHS, **options: Any
) -> tuple[list[KeyUsageReport], FreddyClient]:
    async with UsageCache(path) as cache, client_of(server, cache, **options) as client:
        reports = [r async for r in client.iter_api_key_usage(server.org_id, months=months)]
    return sorted(reports, key=lambda r: r.api_key_id), client


@pytest.fixture
async def server() -> AsyncIterator[FakeFreddyServer]:
    async with FakeFreddyServer(keys=8, seed=5) as fake:
        yield fake


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "cache.sqlite3"


# -- served without a request ----------------------------------------------------------------


async def test_a_second_run_of_a_closed_range_makes_no_usage_request(
    server: FakeFreddyServer, path: Path, waits: list[RecordedWait]
) -> None:
    first, client = await run_batch(server, path)
    assert client.stats.requests == server.request_count == 1 + 8 * 3  # the listing, then each month
    assert client.stats.cache_hits == 0
    server.reset_counters()

    second, client = await run_batch(server, path)

    assert _usage_requests(server) == []
    assert server.request_count == 1  # the key listing only
    assert client.stats.requests == 1
    assert client.stats.cache_hits == 8 * 3
    assert second == first
    total = sum((r.total_cost for r in second), Decimal(0))
    assert total == server.expected_total_cost(months=MONTHS)


async def test_a_cached_range_is_served_while_the_server_is_down(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite3"
    async with FakeFreddyServer(keys=3, seed=2) as server:
        keys = server.key_ids
        base_url, api_key, org_id = server.base_url, server.api_key, server.org_id
        async with UsageCache(path) as cache, client_of(server, cache) as client:
            fetched = [r async for r in client.iter_api_key_usage(org_id, keys, months=MONTHS)]
            daily = await client.get_api_key_daily_usage(org_id, year=2025, month=2)
    # The server is gone: anything that needed it would fail with APIConnectionError.
    async with (
        UsageCache(path) as cache,
        FreddyClient(api_key, base_url=base_url, cache=cache, max_retries=0) as client,
    ):
        served = [r async for r in client.iter_api_key_usage(org_id, keys, months=MONTHS)]
        assert await client.get_api_key_daily_usage(org_id, year=2025, month=2) == daily
        assert client.stats.requests == 0
        assert client.stats.cache_hits == 3 * 3 + 1
    key = attrs.fields(KeyUsageReport).api_key_id.name
    assert sorted(served, key=lambda r: getattr(r, key)) == sorted(fetched, key=lambda r: getattr(r, key))


@pytest.mark.parametrize("casing", ["camel", "snake", "docs"])
async def test_a_hit_equals_the_fetch_to_the_last_digit(casing: str, path: Path) -> None:
    async with FakeFreddyServer(keys=4, seed=11, casing=casing) as server:  # type: ignore[arg-type]
        org, key = server.org_id, server.key_ids[0]

        async def every_endpoint(client: FreddyClient) -> list[Any]:
            return [
                await client.get_api_key_usage(org, key, month=6, year=2025),
                await client.get_api_key_daily_usage(org, year=2025, month=6),
                await client.get_usage_limits(org, month=6, year=2025),
                await client.get_api_key_usage_summary(org, year=2025, month=6),
            ]

        async with UsageCache(path) as cache:
            async with client_of(server, cache) as client:
                fetched = await every_endpoint(client)
            async with client_of(server, cache) as client:
                served = await every_endpoint(client)
                assert client.stats.cache_hits == 4
                assert client.stats.requests == 0
    assert served == fetched
    # Equal Decimals can differ in their digits ("12.5" == "12.50"): compare the text too.
    assert [_decimal_texts(m) for m in served] == [_decimal_texts(m) for m in fetched]
    usage = served[0]
    assert isinstance(usage, ApiKeyUsage)
    assert str(usage.usage.total_cost) == str(server.expected_usage(key, 2025, 6)["usage"]["total_cost"])


def _decimal_texts(value: Any) -> list[str]:
    if isinstance(value, Decimal):
        return [str(value)]
    if attrs.has(type(value)):
        return [t for f in attrs.fields(type(value)) for t in _decimal_texts(getattr(value, f.name))]
    if isinstance(value, (tuple, list)):
        return [t for item in value for t in _decimal_texts(item)]
    return []


# -- what is final -----------------------------------------------------------------------------


def _at(day: str, hours: float = 0.0) -> float:
    return dt.datetime.fromisoformat(day).replace(tzinfo=dt.timezone.utc).timestamp() + hours * 3600


@pytest.mark.parametrize(
    ("fetched", "now", "final"),
    [
        (_at("2025-07-03"), _at("2025-07-03"), True),  # exactly settle (2 days) after June's end
        (_at("2025-07-03") - 1, _at("2025-08-01"), False),  # one second early, whenever read
        (_at("2025-06-30", 23), _at("2025-08-01"), False),  # fetched inside the month
        (_at("2025-07-10"), _at("2025-07-02"), False),  # from "after" settling, read before: a wrong clock
    ],
)
def test_an_answer_is_final_from_settle_after_the_months_end(fetched: float, now: float, final: bool) -> None:
    assert is_final(YearMonth(2025, 6), fetched, now, 2 * DAY) is final


def test_december_ends_at_new_year_and_the_last_month_never_does() -> None:
    assert settled_at(YearMonth(2025, 12), 0.0) == _at("2026-01-01")
    assert settled_at(YearMonth(9999, 12), 0.0) == float("inf")


async def test_the_open_month_is_always_fetched(server: FakeFreddyServer, path: Path) -> None:
    key = server.key_ids[0]
    async with UsageCache(path) as cache, client_of(server, cache) as client:
        cache._wall = lambda: _at("2025-06-02", 12)  # June 2025 is the current month
        for _ in range(3):
            usage = await client.get_api_key_usage(server.org_id, key, month=6, year=2025)
            assert usage.period == YearMonth(2025, 6)
        await client.get_api_key_usage(server.org_id, key, month=5, year=2025)  # closed, not settled
        await client.get_api_key_usage(server.org_id, key, month=5, year=2025)
        await client.get_api_key_usage(server.org_id, key)  # the server's current month
        await client.get_api_key_usage(server.org_id, key)
        assert client.stats.cache_hits == 0
    assert server.fetch_count(key, 2025, 6) == 3
    assert server.fetch_count(key, 2025, 5) == 2
    assert server.request_count == 7


async def test_an_entry_stored_within_settle_is_refetched_then_kept(
    server: FakeFreddyServer, path: Path
) -> None:
    key, org = server.key_ids[1], server.org_id
    async with UsageCache(path, settle=dt.timedelta(hours=1)) as early:
        early._wall = lambda: _at("2025-07-01", 2)  # final for this cache, not for a 2-day one
        async with client_of(server, early) as client:
            await client.get_api_key_usage(org, key, month=6, year=2025)
            await client.get_api_key_usage(org, key, month=6, year=2025)
            assert client.stats.cache_hits == 1
    assert server.fetch_count(key, 2025, 6) == 1

    async with UsageCache(path) as cache:  # settle: 2 days
        cache._wall = lambda: _at("2025-07-02")
        async with client_of(server, cache) as client:
            await client.get_api_key_usage(org, key, month=6, year=2025)  # stored too early
            await client.get_api_key_usage(org, key, month=6, year=2025)  # fetched now: still early
        assert server.fetch_count(key, 2025, 6) == 3
        cache._wall = lambda: _at("2025-07-05")
        async with client_of(server, cache) as client:
            fetched = await client.get_api_key_usage(org, key, month=6, year=2025)  # final: replaced
            served = await client.get_api_key_usage(org, key, month=6, year=2025)
            assert client.stats.cache_hits == 1
    assert server.fetch_count(key, 2025, 6) == 4
    assert served == fetched


async def test_last_month_fetched_on_its_first_day_is_fetched_again(
    server: FakeFreddyServer, path: Path
) -> None:
    org = server.org_id
    async with UsageCache(path) as cache, client_of(server, cache) as client:
        cache._wall = lambda: _at("2025-07-01", 9)
        await client.get_api_key_daily_usage(org, year=2025, month=6)
        await client.get_usage_limits(org, month=6, year=2025)
        cache._wall = lambda: _at("2025-07-20")
        await client.get_api_key_daily_usage(org, year=2025, month=6)
        await client.get_usage_limits(org, month=6, year=2025)
        assert client.stats.cache_hits == 0
        await client.get_api_key_daily_usage(org, year=2025, month=6)
        await client.get_usage_limits(org, month=6, year=2025)
        assert client.stats.cache_hits == 2
    assert server.daily_fetch_count(2025, 6) == 2
    assert server.limits_fetch_count(2025, 6) == 2


# -- scope ------------------------------------------------------------------------------------


async def test_another_api_key_misses(server: FakeFreddyServer, path: Path) -> None:
    key, org = server.key_ids[0], server.org_id
    async with UsageCache(path) as cache:
        async with client_of(server, cache) as client:
            await client.get_api_key_usage(org, key, month=3, year=2025)
        first_key, server.api_key = server.api_key, "fk_another_key_of_the_same_org_0123456789"
        async with client_of(server, cache) as other:
            await other.get_api_key_usage(org, key, month=3, year=2025)
            assert other.stats.cache_hits == 0
        assert server.fetch_count(key, 2025, 3) == 2
        async with client_of(server, cache, api_key=first_key) as client:
            # The first key's entry is still there for it (the server would refuse it now).
            await client.get_api_key_usage(org, key, month=3, year=2025)
            assert client.stats.cache_hits == 1
    assert server.fetch_count(key, 2025, 3) == 2


async def test_entries_are_kept_per_organization_endpoint_and_base_url(path: Path) -> None:
    async with (
        FakeFreddyServer(keys=2, seed=1, extra_orgs={"org_b": 2}) as server,
        # The same organizations and API key at another base URL.
        FakeFreddyServer(keys=2, seed=1, api_key=server.api_key, extra_orgs={"org_b": 2}) as twin,
        UsageCache(path) as cache,
    ):
        for fake in (server, server, twin):
            async with client_of(fake, cache) as client:
                for org in (server.org_id, "org_b"):
                    await client.get_api_key_daily_usage(org, year=2025, month=4)
                    await client.get_api_key_usage_summary(org, year=2025, month=4)
        assert server.daily_fetch_count(2025, 4) == server.daily_fetch_count(2025, 4, org_id="org_b") == 1
        assert twin.daily_fetch_count(2025, 4) == twin.daily_fetch_count(2025, 4, org_id="org_b") == 1
        assert server.request_count == twin.request_count == 4


async def test_the_api_key_is_never_written(server: FakeFreddyServer, path: Path) -> None:
    await run_batch(server, path)
    async with UsageCache(path) as cache:
        assert server.api_key not in repr(cache)
        async with client_of(server, cache) as client:
            assert server.api_key not in repr(client._cache)
    secret = server.api_key.encode()
    for file in path.parent.iterdir():
        assert secret not in file.read_bytes(), file.name


# -- the file ---------------------------------------------------------------------------------


async def test_the_file_is_owner_only_wal_and_versioned(tmp_path: Path) -> None:
    path = tmp_path / "new" / "dir" / "cache.sqlite3"
    async with UsageCache(path) as cache:
        assert cache.path == str(path)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    with contextlib.closing(sqlite3.connect(path)) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("PRAGMA user_version").fetchone()[0] == 1
        assert db.execute("PRAGMA application_id").fetchone()[0] != 0


def _read(path: Path) -> bytes:
    return path.read_bytes()


def _foreign(path: Path) -> None:
    with contextlib.closing(sqlite3.connect(path)) as db, db:
        db.execute("CREATE TABLE notes (text TEXT)")
        db.execute("INSERT INTO notes VALUES ('mine')")


def _newer(path: Path) -> None:
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute("PRAGMA user_version = 99")


def _garbage(path: Path) -> None:
    path.write_bytes(b"SQLite format 3\x00" + bytes(range(256)) * 64)


def _text(path: Path) -> None:
    path.write_text("not a database at all\n")


@pytest.mark.parametrize(
    ("spoil", "says"),
    [
        (_foreign, "is not a freddy_async usage cache"),
        (_newer, "schema 99, made by a newer freddy_async"),
        (_garbage, "usage cache"),
        (_text, "file is not a database"),
    ],
)
async def test_a_file_that_is_not_a_good_cache_is_refused_by_name(
    spoil: Any, says: str, server: FakeFreddyServer, path: Path
) -> None:
    if spoil is _newer:
        await run_batch(server, path)
    spoil(path)
    before = _read(path)
    server.reset_counters()

    with pytest.raises(FreddyError, match=says) as caught:
        async with UsageCache(path):
            pass
    assert str(path) in str(caught.value)
    assert _cache_threads() == []  # a cache that failed to open is closed
    cache = UsageCache(path)  # without `async with`, the first lookup says the same
    async with client_of(server, cache) as client:
        with pytest.raises(FreddyError, match=says):
            await client.get_api_key_usage(server.org_id, server.key_ids[0], month=1, year=2025)
    await cache.aclose()
    assert server.request_count == 0  # no request on a refused cache: never data it cannot keep
    assert _read(path) == before  # another program's file is not touched


async def test_a_damaged_entry_is_an_error_never_wrong_data(server: FakeFreddyServer, path: Path) -> None:
    key, org = server.key_ids[0], server.org_id
    async with UsageCache(path) as cache, client_of(server, cache) as client:
        await client.get_api_key_usage(org, key, month=1, year=2025)
    with contextlib.closing(sqlite3.connect(path)) as db, db:
        (body,) = db.execute("SELECT body FROM answers").fetchone()
        cost = str(server.expected_usage(key, 2025, 1)["usage"]["total_cost"]).encode()
        assert cost in body
        db.execute("UPDATE answers SET body = ?", (body.replace(cost, b"1" + cost),))  # one flipped figure

    async with UsageCache(path) as cache, client_of(server, cache) as client:
        with pytest.raises(FreddyError, match="is damaged") as caught:
            await client.get_api_key_usage(org, key, month=1, year=2025)
    assert str(path) in str(caught.value)
    assert server.fetch_count(key, 2025, 1) == 1


async def test_clear_forgets_every_entry(server: FakeFreddyServer, path: Path) -> None:
    await run_batch(server, path)
    async with UsageCache(path) as cache:
        await cache.clear()
    server.reset_counters()
    await run_batch(server, path)
    assert server.request_count == 1 + 8 * 3


async def test_refresh_fetches_everything_again_and_stores_it(server: FakeFreddyServer, path: Path) -> None:
    key, org = server.key_ids[0], server.org_id
    await run_batch(server, path)
    async with UsageCache(path, refresh=True) as cache, client_of(server, cache) as client:
        reports = [r async for r in client.iter_api_key_usage(org, months=MONTHS)]
        assert client.stats.cache_hits == 0
    assert len(reports) == 8
    assert server.fetch_count(key, 2025, 1) == 2
    with contextlib.closing(sqlite3.connect(path)) as db:
        assert db.execute("SELECT count(*) FROM answers").fetchone()[0] == 8 * 3  # replaced, not added
    server.reset_counters()
    await run_batch(server, path)
    assert server.request_count == 1


# -- interruptions and sharing -----------------------------------------------------------------


@pytest.mark.parametrize("how", ["break", "cancel"])
async def test_an_interrupted_batch_rerun_fetches_exactly_the_rest(
    how: str, path: Path, waits: list[RecordedWait]
) -> None:
    async with FakeFreddyServer(keys=40, seed=9) as server:
        every = {(k, m) for k in server.key_ids for m in MONTHS}
        async with UsageCache(path) as cache, client_of(server, cache, max_concurrency=4) as client:
            seen: list[KeyUsageReport] = []

            async def consume() -> None:
                batch = client.iter_api_key_usage(server.org_id, months=MONTHS)
                async with contextlib.aclosing(batch):  # type: ignore[type-var]
                    async for report in batch:
                        seen.append(report)
                        if len(seen) == 15:
                            if how == "break":
                                break
                            await asyncio.Event().wait()  # cancelled here

            task = asyncio.create_task(consume())
            if how == "cancel":
                while len(seen) < 15:
                    await asyncio.sleep(0)
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await settle()
            assert client_tasks() == []
        answered = _fetched(server)  # including answers cut off in flight, never read
        done = {(r.api_key_id, u.period) for r in seen for u in r.usage}
        assert done <= answered < every
        stored = _stored(path)
        assert done <= stored <= answered
        assert len(answered - stored) <= 4  # max_concurrency: at most the months in flight are lost
        server.reset_counters()

        reports, client = await run_batch(server, path)

        assert _fetched(server) == every - stored  # exactly the rest
        assert server.request_count == 1 + len(every - stored)  # nothing twice
        assert client.stats.cache_hits == len(stored)
        assert all(r.ok for r in reports)
        assert sum((r.total_cost for r in reports), Decimal(0)) == server.expected_total_cost(months=MONTHS)


def _stored(path: Path) -> set[tuple[str, YearMonth]]:
    with contextlib.closing(sqlite3.connect(path)) as db:
        rows = db.execute("SELECT key_id, month FROM answers WHERE endpoint = 'usage'").fetchall()
    return {(key, YearMonth.parse(month)) for key, month in rows}


async def test_two_clients_on_one_file_at_once(path: Path, waits: list[RecordedWait]) -> None:
    async with FakeFreddyServer(keys=30, seed=4) as server:
        keys = server.key_ids
        months = YearMonth.range("2025-01", "2025-06")

        async def one(key_ids: list[str]) -> list[KeyUsageReport]:
            async with UsageCache(path) as cache, client_of(server, cache) as client:
                return [r async for r in client.iter_api_key_usage(server.org_id, key_ids, months=months)]

        # Overlapping halves: both write, some of the same rows, through two connections.
        a, b = await asyncio.gather(one(keys[:20]), one(keys[10:]))
        assert all(r.ok for r in a + b)
        assert len(a) == len(b) == 20
        server.reset_counters()
        reports, _ = await run_batch(server, path, months)
        assert server.request_count == 1
        assert sum((r.total_cost for r in reports), Decimal(0)) == server.expected_total_cost(months=months)


_OTHER_PROCESS = """
import asyncio, sys
from freddy_async import FreddyClient, UsageCache, YearMonth

async def main(path, base_url, api_key, org, keys):
    months = YearMonth.range("2025-01", "2025-06")
    async with UsageCache(path) as cache, FreddyClient(api_key, base_url=base_url, cache=cache) as client:
        reports = [r async for r in client.iter_api_key_usage(org, keys.split(","), months=months)]
    assert all(r.ok for r in reports), [r.errors for r in reports]
    print(len(reports), client.stats.requests, client.stats.cache_hits)

asyncio.run(main(*sys.argv[1:]))
"""


async def test_two_processes_on_one_file_at_once(path: Path) -> None:
    async with FakeFreddyServer(keys=30, seed=4) as server:
        keys = server.key_ids
        months = YearMonth.range("2025-01", "2025-06")
        env = {k: v for k, v in os.environ.items() if not k.startswith("FREDDY_")}
        other = await asyncio.create_subprocess_exec(
            sys.executable, "-c", _OTHER_PROCESS, str(path), server.base_url, server.api_key,
            server.org_id, ",".join(keys[10:]),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
        )  # fmt: skip
        async with UsageCache(path) as cache, client_of(server, cache) as client:
            mine = [r async for r in client.iter_api_key_usage(server.org_id, keys[:20], months=months)]
        out, err = await asyncio.wait_for(other.communicate(), 60)
        assert other.returncode == 0, err.decode()
        assert out.decode().split()[0] == "20"
        assert all(r.ok for r in mine)
        server.reset_counters()
        await run_batch(server, path, months)
        assert server.request_count == 1


async def test_caches_opening_one_new_file_at_once_all_work(tmp_path: Path) -> None:
    # Each cache has its own thread and connection: their opening really races. SQLite's busy
    # timeout does not cover switching a file to WAL, nor does one read see a half-made file.
    for round_ in range(5):
        path = tmp_path / f"new{round_}.sqlite3"
        caches = [UsageCache(path) for _ in range(6)]
        try:
            await asyncio.gather(*(cache.__aenter__() for cache in caches))
        finally:
            await asyncio.gather(*(cache.aclose() for cache in caches))


# -- lifecycle and arguments ---------------------------------------------------------------------


def _cache_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("freddy-usage-cache")]


async def test_aclose_leaves_no_thread_and_a_closed_cache_says_so(
    server: FakeFreddyServer, path: Path
) -> None:
    cache = UsageCache(path)
    async with client_of(server, cache) as client:
        await client.get_api_key_usage(server.org_id, server.key_ids[0], month=1, year=2025)
        assert _cache_threads() != []
        await cache.aclose()
        await cache.aclose()  # idempotent
        assert _cache_threads() == []
        with pytest.raises(RuntimeError, match="UsageCache is closed"):
            await client.get_api_key_usage(server.org_id, server.key_ids[0], month=1, year=2025)
    with pytest.raises(RuntimeError, match="UsageCache is closed"):
        await cache.clear()


async def test_a_month_left_to_the_server_is_neither_served_nor_stored(
    server: FakeFreddyServer, path: Path
) -> None:
    async with UsageCache(path) as cache, client_of(server, cache) as client:
        await client.get_api_key_usage(server.org_id, server.key_ids[0], year=2025)
        await client.get_api_key_usage(server.org_id, server.key_ids[0], year=2025)
        await client.get_usage_limits(server.org_id, month=1)
        await client.get_usage_limits(server.org_id, month=1)
        assert client.stats.cache_hits == 0
    assert server.request_count == 4


@pytest.mark.parametrize(
    ("args", "kwargs", "says"),
    [
        (("",), {}, "non-empty"),
        ((3,), {}, "str or os.PathLike"),
        (("c.sqlite3",), {"settle": dt.timedelta(seconds=-1)}, "settle must be"),
        (("c.sqlite3",), {"settle": 3600}, "settle must be"),
        (("c.sqlite3",), {"refresh": "yes"}, "refresh must be"),
    ],
)
async def test_bad_arguments_are_refused(args: tuple[Any, ...], kwargs: dict[str, Any], says: str) -> None:
    with pytest.raises(ValueError, match=says):
        UsageCache(*args, **kwargs)
    assert _cache_threads() == []


def test_a_client_refuses_a_cache_of_another_type() -> None:
    with pytest.raises(ValueError, match="cache must be a UsageCache"):
        FreddyClient("fk_0123456789", cache="cache.sqlite3")  # type: ignore[arg-type]
