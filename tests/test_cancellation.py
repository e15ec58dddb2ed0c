"""Cancelling a batch anywhere: the caller sees CancelledError and nothing is left behind.

Each seed picks a batch kind and a point to cancel at (after so many loop turns, after so many
reports, or while the consumer's own loop body is waiting), against a server that fails,
throttles and drops now and then, so the cancellation lands in every part of the client:
the key listing, pacing, a retry wait, a request in flight, a body being read.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from tasks import client_tasks, settle, turns_until

from freddy_async import ApiKeyDailyUsage, FreddyClient, KeyUsageReport, YearMonth
from freddy_async.testing import FakeFreddyServer, RecordedWait, instant_retries

MONTHS = YearMonth.range("2025-01", "2025-03")
DAILY_MONTHS = YearMonth.range("2020-01", "2030-12")  # every month the API accepts
KEYS = 200
# Fails only guard against a hang (a semaphore slot or a pacer lock never given back).
HANG_GUARD = 20.0


@contextlib.asynccontextmanager
async def loop_errors_collected() -> AsyncIterator[list[dict[str, Any]]]:
    """Collect what the loop would log (a task's exception never retrieved, a failing callback)."""
    loop = asyncio.get_running_loop()
    collected: list[dict[str, Any]] = []
    old = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: collected.append(context))
    try:
        yield collected
    finally:
        loop.set_exception_handler(old)


async def check_client_still_works(client: FreddyClient, server: FakeFreddyServer) -> None:
    # Faults and limit off: what is checked is the client after a cancellation, not its retries.
    server.error_rate = server.drop_rate = server.truncate_rate = 0.0
    server.requests_per_minute = None
    key = server.key_ids[0]
    usage = await asyncio.wait_for(
        client.get_api_key_usage(server.org_id, key, month=1, year=2025), HANG_GUARD
    )
    assert usage.usage.total_cost == server.expected_usage(key, 2025, 1)["usage"]["total_cost"]

    # A whole batch at full concurrency: every semaphore slot and pacer lock was given back.
    keys = server.key_ids[:40]

    async def full_batch() -> list[KeyUsageReport]:
        return [r async for r in client.iter_api_key_usage(server.org_id, keys, months=MONTHS[:1])]

    reports = await asyncio.wait_for(full_batch(), HANG_GUARD)
    assert sorted(r.api_key_id for r in reports) == sorted(keys)
    assert sum(len(r.usage) + len(r.errors) for r in reports) == len(keys)


@pytest.mark.parametrize("seed", range(10))
async def test_cancel_a_batch_at_a_random_point(seed: int, waits: list[RecordedWait]) -> None:
    rng = random.Random(seed)
    kind = rng.choice(["given keys", "listed keys", "daily"])
    where = rng.choice(["loop turns", "reports", "loop body"])
    server = FakeFreddyServer(
        # Daily answers sum every key of the organization: fewer keys keep them cheap.
        keys=10 if kind == "daily" else KEYS, seed=seed, error_rate=0.1, drop_rate=0.03, truncate_rate=0.02,
        requests_per_minute=60_000, rate_limit_burst=3,
        # 132 daily months are few requests: a millisecond each keeps the batch from ending
        # within the 400 loop turns a seed may wait before cancelling.
        latency=0.001 if kind == "daily" else 0.0,
    )
    async with server, aiohttp.ClientSession() as session, loop_errors_collected() as loop_errors:
        client = FreddyClient(
            server.api_key, base_url=server.base_url, max_retries=4, max_concurrency=8, session=session,
        )
        got: list[KeyUsageReport | ApiKeyDailyUsage] = []
        in_body = asyncio.Event()

        async def consume() -> None:
            batch: AsyncIterator[KeyUsageReport | ApiKeyDailyUsage]
            if kind == "daily":
                batch = client.iter_daily_usage(server.org_id, months=DAILY_MONTHS)
            else:
                keys = server.key_ids if kind == "given keys" else None
                batch = client.iter_api_key_usage(server.org_id, keys, months=MONTHS)
            async for item in batch:
                got.append(item)
                if where == "loop body":
                    in_body.set()
                    for _ in range(rng.randrange(1, 5)):
                        await asyncio.sleep(0)  # the consumer's own await, not the batch's
                    in_body.clear()

        task = asyncio.create_task(consume())
        if where == "loop turns":
            for _ in range(rng.randrange(0, 400)):
                await asyncio.sleep(0)
        elif where == "reports":
            wanted = rng.randrange(0, 8)
            await turns_until(lambda: len(got) >= wanted, what=f"{wanted} reports")
        else:
            await turns_until(in_body.is_set, what="the consumer's loop body")
        assert not task.done(), ("the batch ended before the cancellation point", len(got), task)

        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await settle()
        assert client_tasks() == [], [t.get_stack() for t in client_tasks()]
        assert not session.closed

        await check_client_still_works(client, server)
        await client.aclose()
        assert not session.closed, "the client closed a session it only borrowed"
        await settle()
        assert client_tasks() == []
        assert loop_errors == []


async def test_cancel_with_an_owned_session_then_close(waits: list[RecordedWait]) -> None:
    async with FakeFreddyServer(keys=KEYS, latency=0.001) as server, loop_errors_collected() as errors:
        async with FreddyClient(server.api_key, base_url=server.base_url, max_concurrency=8) as client:
            got: list[KeyUsageReport] = []

            async def consume() -> None:
                async for report in client.iter_api_key_usage(server.org_id, months=MONTHS):
                    got.append(report)

            task = asyncio.create_task(consume())
            await turns_until(lambda: len(got) >= 2, what="2 reports")
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await settle()
            assert client_tasks() == []
            await check_client_still_works(client, server)
        await settle()
        assert client_tasks() == []
        assert errors == []


async def test_cancel_calls_waiting_for_a_slot_and_in_flight(waits: list[RecordedWait]) -> None:
    # max_concurrency=1: the first call holds the only slot while its answer is held back, the
    # second waits for the slot. Both cancelled, the slot must be free again.
    async with FakeFreddyServer(keys=3, latency=30.0) as server, aiohttp.ClientSession() as session:
        client = FreddyClient(server.api_key, base_url=server.base_url, max_concurrency=1, session=session)
        key = server.key_ids[0]
        first = asyncio.create_task(client.get_api_key_usage(server.org_id, key, month=1, year=2025))
        second = asyncio.create_task(client.get_api_key_usage(server.org_id, key, month=2, year=2025))
        await server.wait_for_requests(1)
        second.cancel()
        first.cancel()
        for task in (first, second):
            with pytest.raises(asyncio.CancelledError):
                await task
        await settle()
        assert client_tasks() == []
        assert server.request_count == 1
        server.latency = 0.0
        await check_client_still_works(client, server)
        await client.aclose()
        assert not session.closed


async def test_cancel_a_call_waiting_for_its_pacing_turn() -> None:
    # One request per 1,000 minutes: after the first call, the next one waits in the pacer, for
    # real, holding the organization's pacing lock. Cancelled there, it must give the lock back.
    async with FakeFreddyServer(keys=3) as server, aiohttp.ClientSession() as session:
        client = FreddyClient(
            server.api_key, base_url=server.base_url, requests_per_minute=0.001, session=session,
        )
        key = server.key_ids[0]
        await client.get_api_key_usage(server.org_id, key, month=1, year=2025)
        second = asyncio.create_task(client.get_api_key_usage(server.org_id, key, month=2, year=2025))
        await settle()
        assert not second.done()
        second.cancel()
        with pytest.raises(asyncio.CancelledError):
            await second
        assert server.request_count == 1
        await settle()
        assert client_tasks() == []
        # The next call's pacing wait is instant; it could only hang on a lock never released.
        with instant_retries() as waits:
            usage = await asyncio.wait_for(
                client.get_api_key_usage(server.org_id, key, month=3, year=2025), HANG_GUARD
            )
        assert usage.month == 3
        assert [w.kind for w in waits] == ["pace"]
        await client.aclose()
        assert not session.closed


@pytest.mark.parametrize("kind", ["usage", "daily"])
async def test_a_caller_cancelled_in_its_loop_body_stops_the_batch_at_once(
    kind: str, waits: list[RecordedWait]
) -> None:
    # The caller's CancelledError is kept, and with it (through its traceback) the caller's frame
    # and the iterator: the iterator is not garbage-collected, as on Python 3.10, where a cancelled
    # Task keeps that exception for as long as the Task lives. The batch must stop all the same.
    async with serve(keys=KEYS, concurrency=8) as (server, client):
        in_body = asyncio.Event()

        async def consume() -> None:
            batch: AsyncIterator[object]
            if kind == "daily":
                batch = client.iter_daily_usage(server.org_id, months=DAILY_MONTHS)
            else:
                batch = client.iter_api_key_usage(server.org_id, server.key_ids, months=MONTHS)
            async for _item in batch:
                in_body.set()
                await asyncio.Event().wait()  # parked in the loop body until cancelled

        task = asyncio.create_task(consume())
        await turns_until(in_body.is_set, what="the consumer's loop body")
        task.cancel()
        with pytest.raises(asyncio.CancelledError) as kept:
            await task
        await settle()
        assert client_tasks() == [], [t.get_stack() for t in client_tasks()]
        requests = server.request_count
        await settle()
        assert server.request_count == requests
        assert kept.value is not None  # still alive here, and so is the iterator
        await check_client_still_works(client, server)


async def test_a_batch_advanced_by_one_helper_task_per_report_runs_to_the_end(
    waits: list[RecordedWait],
) -> None:
    # wait_for(anext(batch)) runs each step in a task of its own that ends once it has its
    # report: such a task ending is not the caller going away.
    async with serve() as (server, client):
        batch = client.iter_api_key_usage(server.org_id, server.key_ids, months=MONTHS)
        got = []
        with contextlib.suppress(StopAsyncIteration):
            while True:
                got.append(await asyncio.wait_for(anext(batch), HANG_GUARD))
                await settle()
        assert sorted(r.api_key_id for r in got) == sorted(server.key_ids)
        await settle()
        assert client_tasks() == []


async def test_resuming_a_batch_whose_caller_was_cancelled_is_an_error(
    waits: list[RecordedWait],
) -> None:
    async with serve() as (server, client):
        batch = client.iter_api_key_usage(server.org_id, server.key_ids, months=MONTHS)
        got = []

        async def take_one_then_wait() -> None:
            got.append(await anext(batch))
            await asyncio.Event().wait()

        task = asyncio.create_task(take_one_then_wait())
        await turns_until(lambda: got, what="the first report")
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await settle()
        assert client_tasks() == []
        with pytest.raises(RuntimeError, match="stopped when the task iterating it was cancelled"):
            await anext(batch)


@contextlib.asynccontextmanager
async def serve(keys: int = 20, concurrency: int = 4) -> AsyncIterator[tuple[FakeFreddyServer, FreddyClient]]:
    async with (
        FakeFreddyServer(keys=keys, latency=0.001) as server,
        FreddyClient(server.api_key, base_url=server.base_url, max_concurrency=concurrency) as client,
    ):
        yield server, client
