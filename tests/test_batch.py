"""Usage of many keys over many months, streamed, against the fake server over loopback."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest
from tasks import client_tasks, settle, turns_until

from freddy_async import (
    ApiKey,
    AuthenticationError,
    FreddyClient,
    FreddyError,
    KeyUsageReport,
    NotFoundError,
    PermissionDeniedError,
    YearMonth,
)
from freddy_async.testing import FakeFreddyServer, RecordedWait

MONTHS = YearMonth.range("2025-01", "2025-03")


@contextlib.asynccontextmanager
async def serve(**options: object) -> AsyncIterator[tuple[FakeFreddyServer, FreddyClient]]:
    client_options = {k[7:]: v for k, v in options.items() if k.startswith("client_")}
    server_options = {k: v for k, v in options.items() if not k.startswith("client_")}
    async with (
        FakeFreddyServer(**server_options) as server,  # type: ignore[arg-type]
        FreddyClient(server.api_key, base_url=server.base_url, **client_options) as client,  # type: ignore[arg-type]
    ):
        yield server, client


async def collect(client: FreddyClient, org: str, keys: list[str] | None = None,
                  months: object = MONTHS) -> list[KeyUsageReport]:
    return [r async for r in client.iter_api_key_usage(org, keys, months=months)]  # type: ignore[arg-type]


async def test_faulty_server_loses_nothing_and_doubles_nothing(waits: list[RecordedWait]) -> None:
    async with serve(keys=300, seed=3, error_rate=0.1, drop_rate=0.03, truncate_rate=0.02,
                     client_max_retries=6, client_max_concurrency=32) as (server, client):
        reports = await collect(client, server.org_id)
        assert sorted(r.api_key_id for r in reports) == sorted(server.key_ids)
        outcomes = [(r.api_key_id, u.period) for r in reports for u in r.usage]
        outcomes += [(r.api_key_id, m) for r in reports for m in r.errors]
        assert len(outcomes) == len(set(outcomes)) == 900
        assert all(r.ok for r in reports), [r.errors for r in reports if not r.ok]
        assert sum((r.total_cost for r in reports), Decimal(0)) == server.expected_total_cost(months=MONTHS)
        assert sum(r.total_requests for r in reports) == server.expected_total_requests(months=MONTHS)
        counts = [server.fetch_count(k, m.year, m.month) for k in server.key_ids for m in MONTHS]
        assert max(counts) <= 7  # 1 attempt + max_retries
        faults = server.faults
        assert faults.error_500 + faults.error_502 + faults.error_503 > 0
        assert faults.dropped > 0 and faults.truncated > 0


async def test_each_report_is_exact_and_sorted_by_month(waits: list[RecordedWait]) -> None:
    async with serve(keys=4, seed=5) as (server, client):
        months = ["2025-03", (2025, 1), YearMonth(2025, 2)]
        reports = await collect(client, server.org_id, server.key_ids, months)
    for report in reports:
        assert [u.period for u in report.usage] == MONTHS
        for usage in report.usage:
            expected = server.expected_usage(report.api_key_id, usage.year, usage.month)
            assert usage.usage.total_cost == expected["usage"]["total_cost"]
            assert usage.usage.total_requests == expected["usage"]["total_requests"]
        assert report.total_cost == server.expected_total_cost([report.api_key_id], months=MONTHS)


async def test_a_duplicated_key_is_fetched_once(waits: list[RecordedWait]) -> None:
    async with serve(keys=3) as (server, client):
        keys = server.key_ids
        reports = await collect(client, server.org_id, [keys[0], keys[1], keys[0], keys[0]])
        assert sorted(r.api_key_id for r in reports) == sorted(keys[:2])
        assert server.fetch_count(keys[0], 2025, 1) == 1


async def test_a_failing_key_never_stops_the_others(waits: list[RecordedWait]) -> None:
    async with serve(keys=3) as (server, client):
        keys = [*server.key_ids, "apikey_missing"]
        reports = {r.api_key_id: r for r in await collect(client, server.org_id, keys)}
    missing = reports.pop("apikey_missing")
    assert not missing.ok and missing.usage == ()
    assert sorted(missing.errors) == MONTHS
    assert all(isinstance(e, NotFoundError) for e in missing.errors.values())
    assert all(r.ok and len(r.usage) == 3 for r in reports.values())


async def test_a_wrong_api_key_ends_the_batch_at_once(waits: list[RecordedWait]) -> None:
    async with FakeFreddyServer(keys=200) as server:
        async with FreddyClient("wrong", base_url=server.base_url, max_concurrency=8) as client:
            with pytest.raises(AuthenticationError):
                await collect(client, server.org_id, server.key_ids)
            await settle()
            assert client_tasks() == []
        # Not one error recorded per job: the batch stopped with the first answers.
        assert server.request_count <= 8 + 1


async def test_a_wrong_organization_ends_the_batch(waits: list[RecordedWait]) -> None:
    async with serve(keys=50) as (server, client):
        with pytest.raises(PermissionDeniedError):
            await collect(client, "org_someone_else", server.key_ids)


async def test_breaking_out_early_leaves_no_task_behind(waits: list[RecordedWait]) -> None:
    async with serve(keys=200, client_max_concurrency=16) as (server, client):
        seen = 0
        async for _report in client.iter_api_key_usage(server.org_id, months=MONTHS):
            seen += 1
            if seen == 5:
                break
        await settle()
        assert client_tasks() == []
        assert server.request_count < 200 * 3  # far from everything was fetched
        # The client is still usable after an abandoned batch.
        usage = await client.get_api_key_usage(server.org_id, server.key_ids[0], month=1, year=2025)
        assert usage.api_key_id == server.key_ids[0]


async def test_aclose_cancels_pending_requests(waits: list[RecordedWait]) -> None:
    async with serve(keys=100) as (_server, client):
        batch = client.iter_api_key_usage(_server.org_id, months=MONTHS)
        async with contextlib.aclosing(batch):  # type: ignore[type-var]
            await anext(batch)
            assert client_tasks() != []  # jobs are in flight ahead of the consumer
        assert client_tasks() == []  # aclose() awaited their cancellation


async def test_an_exception_in_the_loop_body_cleans_up(waits: list[RecordedWait]) -> None:
    async with serve(keys=100) as (server, client):
        async def consume() -> None:
            async for _report in client.iter_api_key_usage(server.org_id, months=MONTHS):
                raise ZeroDivisionError

        with pytest.raises(ZeroDivisionError):
            await consume()
        await settle()
        assert client_tasks() == []


async def test_cancelling_the_consumer_cancels_the_batch(waits: list[RecordedWait]) -> None:
    async with serve(keys=300, latency=0.001) as (server, client):
        got: list[KeyUsageReport] = []

        async def consume() -> None:
            async for report in client.iter_api_key_usage(server.org_id, months=MONTHS):
                got.append(report)

        task = asyncio.create_task(consume())
        await turns_until(lambda: len(got) >= 3, what="3 reports")
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await settle()
        assert client_tasks() == []


async def test_jobs_are_produced_lazily(waits: list[RecordedWait]) -> None:
    async with serve(keys=1000, client_max_concurrency=4) as (server, client):
        peak = 0
        first_at = None
        async for _report in client.iter_api_key_usage(server.org_id, months=MONTHS):
            first_at = first_at or server.request_count
            peak = max(peak, len(client_tasks()))
            if server.request_count > 60:
                break
        # Listing pages (100 keys each) and usage requests are made only as the consumer advances.
        assert first_at is not None and first_at <= 1 + 4 + 3
        assert peak <= 4 + 1
        list_requests = [r for r in server.requests if r.path.startswith("/v1/organizations/")]
        assert len(list_requests) == 1


async def test_bad_arguments_fail_before_any_request() -> None:
    async with serve(keys=2) as (server, client):
        for months in ([], ["2025-13"], ["2025/01"], [(2025, 0)], [202501]):
            with pytest.raises(ValueError, match="month"):
                client.iter_api_key_usage(server.org_id, server.key_ids, months=months)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="api_key_id"):
            client.iter_api_key_usage(server.org_id, ["ok", "bad/key"], months=MONTHS)
        with pytest.raises(ValueError, match="list of IDs"):
            client.iter_api_key_usage(server.org_id, "apikey_1", months=MONTHS)
        with pytest.raises(ValueError, match="org_id"):
            client.iter_api_key_usage("", months=MONTHS)
        assert server.request_count == 0


async def test_iter_daily_usage_yields_months_in_order(waits: list[RecordedWait]) -> None:
    async with serve(keys=5, error_rate=0.2, seed=2, client_max_retries=8) as (server, client):
        days = [d async for d in client.iter_daily_usage(server.org_id, months=["2025-02", "2025-01"])]
        assert [(d.period.year, d.period.month) for d in days] == [(2025, 1), (2025, 2)]
        for daily in days:
            expected = server.expected_daily(daily.period.year, daily.period.month)
            assert daily.summary.total_api_key_cost == expected["summary"]["total_api_key_cost"]
            assert sum((d.cost for d in daily.daily_usage), Decimal(0)) == daily.summary.total_api_key_cost


async def test_iter_daily_usage_raises_the_failure() -> None:
    async with serve(keys=2, client_max_retries=0) as (server, client):
        with pytest.raises(FreddyError):
            async for _ in client.iter_daily_usage(server.org_id, months=["2019-12"]):
                pass


# -- key listing ---------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", ["keys", "api_keys"])
@pytest.mark.parametrize(("count", "page_size", "pages"), [(57, 20, 3), (40, 20, 2), (5, 100, 1)])
async def test_list_api_keys_walks_every_page(shape: str, count: int, page_size: int, pages: int) -> None:
    async with serve(keys=count, list_shape=shape) as (server, client):
        keys = [k async for k in client.list_api_keys(server.org_id, page_size=page_size)]
        assert [k.id for k in keys] == server.key_ids
        assert all(isinstance(k, ApiKey) and k.organization_id == server.org_id for k in keys)
        list_calls = [r for r in server.requests if r.path.startswith("/v1/organizations/")]
        # A full last page needs one more (empty) page only when the counts cannot tell.
        assert len(list_calls) == pages


async def test_list_api_keys_fields_are_typed() -> None:
    async with serve(keys=30) as (server, client):
        keys = [k async for k in client.list_api_keys(server.org_id)]
        expected = {k["id"]: k for k in server.expected_keys()}
        for key in keys:
            wire = expected[key.id]
            assert key.usage_limit_chf == wire["usage_limit_chf"]
            assert key.scopes == tuple(wire["scopes"])
            assert key.created_at is not None and key.created_at.tzinfo is not None
            assert key.is_active is wire["is_active"] and key.is_paused is wire["is_paused"]


async def test_an_empty_organization_lists_nothing() -> None:
    async with serve(keys=3, extra_orgs={"org_empty": 0}) as (_server, client):
        assert [k async for k in client.list_api_keys("org_empty")] == []
        assert [r async for r in client.iter_api_key_usage("org_empty", months=MONTHS)] == []


async def test_list_api_keys_rejects_a_bad_page_size() -> None:
    async with serve(keys=1) as (server, client):
        for size in (0, 101, "10", True):
            with pytest.raises(ValueError, match="page_size"):
                client.list_api_keys(server.org_id, page_size=size)  # type: ignore[arg-type]
        assert server.request_count == 0


# -- pacing against a real rate limiter ----------------------------------------------------------


async def test_rate_limited_organization_still_gets_everything() -> None:
    # Real time, but short: 6,000/min with a burst of 5 is 100 requests a second.
    async with serve(keys=20, requests_per_minute=6000, rate_limit_burst=5,
                     client_max_concurrency=16) as (server, client):
        reports = await collect(client, server.org_id, server.key_ids)
        assert all(r.ok for r in reports)
        assert sum((r.total_cost for r in reports), Decimal(0)) == server.expected_total_cost(months=MONTHS)
        # Pacing learned from the headers keeps 429s to the first burst at most.
        assert server.rate_limited_count < 16


async def test_a_429_pause_is_per_organization(waits: list[RecordedWait]) -> None:
    async with serve(keys=3, extra_orgs={"org_other": 3}, requests_per_minute=60,
                     rate_limit_burst=1) as (server, client):
        other = server.key_ids_for("org_other")
        # org_demo: the burst of 1 is spent at once, every further request meets the limiter.
        await asyncio.gather(
            collect(client, server.org_id, server.key_ids, ["2025-01"]),
            collect(client, "org_other", other[:1], ["2025-01"]),
        )
    pauses = {w.org_id for w in waits if w.kind in ("pause", "pace")}
    assert "org_other" not in pauses


async def test_the_batch_leaves_the_loop_free_for_other_work(waits: list[RecordedWait]) -> None:
    ticks = 0
    stop = asyncio.Event()

    async def heartbeat() -> None:
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            await asyncio.sleep(0)

    async with serve(keys=50) as (server, client):
        beat = asyncio.create_task(heartbeat())
        seen_between: list[int] = []
        async for _report in client.iter_api_key_usage(server.org_id, months=MONTHS):
            seen_between.append(ticks)
        stop.set()
        await beat
    # The other task kept running between the reports, not only before or after the batch.
    assert len(set(seen_between)) > 10


async def test_a_bug_inside_the_batch_surfaces_instead_of_hanging() -> None:
    # White-box on purpose: no public input makes filing a result fail, but if anything ever
    # does, the caller must get the exception, not wait for ever on a worker that died.
    from freddy_async import _batch

    async def fetch(key: str, month: YearMonth) -> Any:
        return object()  # not an ApiKeyUsage: filing it raises AttributeError

    async def drain() -> None:
        async for _ in _batch.iter_usage(fetch, ["k1", "k2"], MONTHS, concurrency=2):
            pass

    with pytest.raises(AttributeError):
        await asyncio.wait_for(drain(), timeout=60)  # a guard against a hang, not a timing check
    await settle()
    assert client_tasks() == []


# -- _batch._Jobs, white-box: the one job source of a batch -----------------------------------------


async def take_all(jobs: Any) -> list[tuple[str, YearMonth]]:
    taken = []
    while (job := await jobs.take()) is not None:
        taken.append(job)
    return taken


@pytest.mark.parametrize("source", ["list", "async"])
async def test_jobs_hand_out_each_distinct_key_once_with_every_month(source: str) -> None:
    from freddy_async._batch import _Jobs

    ids = ["k1", "k2", "k1", "k3", "k2"]

    async def listed() -> AsyncIterator[str]:
        for key in ids:
            yield key

    jobs = _Jobs(ids if source == "list" else listed(), MONTHS)
    taken = await take_all(jobs)
    await jobs.aclose()
    assert taken == [(key, month) for key in ["k1", "k2", "k3"] for month in MONTHS]


async def test_closed_jobs_hand_out_nothing_more_and_close_the_key_source() -> None:
    from freddy_async._batch import _Jobs

    pulled: list[str] = []
    closed = asyncio.Event()

    async def listing() -> AsyncIterator[str]:
        try:
            for key in ["k1", "k2", "k3"]:
                pulled.append(key)
                yield key
        finally:
            closed.set()

    jobs = _Jobs(listing(), MONTHS)
    assert await jobs.take() == ("k1", MONTHS[0])
    jobs.close()
    assert await jobs.take() is None
    await jobs.aclose()
    assert pulled == ["k1"]  # no key pulled once closed
    assert closed.is_set()


async def test_workers_taking_jobs_at_once_never_advance_the_key_listing_together() -> None:
    from freddy_async._batch import _Jobs

    inside = 0
    most_inside = 0

    async def slow_listing() -> AsyncIterator[str]:
        nonlocal inside, most_inside
        for key in ["k1", "k2", "k3", "k4"]:
            inside += 1
            most_inside = max(most_inside, inside)
            await asyncio.sleep(0)  # a page on its way
            inside -= 1
            yield key

    jobs = _Jobs(slow_listing(), MONTHS[:1])
    taken = await asyncio.gather(*(jobs.take() for _ in range(6)))
    await jobs.aclose()
    expected = [(key, MONTHS[0]) for key in ["k1", "k2", "k3", "k4"]]
    assert sorted(job for job in taken if job is not None) == expected
    assert taken.count(None) == 2
    assert most_inside == 1
