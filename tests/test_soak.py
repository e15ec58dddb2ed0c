"""Fault soak: 2,000 (key, month) jobs against a server that fails in every way it knows.

The promise under test: under faults and rate limits the client loses nothing, counts nothing
twice, raises only typed errors, and leaves no task, connection or warning behind.
"""

from __future__ import annotations

import asyncio
import gc
import warnings
from collections import Counter
from decimal import Decimal
from typing import Any

import aiohttp
from tasks import client_tasks, settle

from freddy_async import APIConnectionError, FreddyClient, FreddyError, YearMonth
from freddy_async.testing import FakeFreddyServer, RecordedWait

KEYS = 500
MONTHS = YearMonth.range("2025-01", "2025-04")
MAX_RETRIES = 6
CONCURRENCY = 16

# One clock: inside instant_retries() the client's waits (backoff, pauses after a 429, pacing)
# and the fake server's token bucket read the same virtual time, so the client paces to the
# server's real limit and a run repeats. The limit (100 a second, a burst of 5) makes the
# client pace every one of its 2,000 jobs; a 429 still happens where a fault's retry meets the
# pace, and goes through the real 429 path (a pause, then the same request again).
SERVER_RPM = 6_000
SERVER_BURST = 5
RETRY_DEADLINE = 60.0
# An answer held back for slow_delay meets the client's timeout first and is retried.
TIMEOUT = 0.5
SLOW_DELAY = 1.5


async def assert_all_connections_free(
    session: aiohttp.ClientSession, server: FakeFreddyServer, limit: int
) -> None:
    """Prove through public API alone that none of the connector's ``limit`` slots is held.

    A leaked (acquired, never released) connection keeps its slot, and aiohttp exposes no public
    count of acquired connections (``TCPConnector._acquired`` is private). So: hold ``limit``
    requests open at the server at once; all of them can only arrive if every slot is free.
    """
    server.reset_counters()
    server.latency = 60.0  # held until cancelled below, or cut off by server.stop()
    url = f"{server.base_url}/v1/organizations/{server.org_id}/api-keys"

    async def hold() -> None:
        async with session.get(url, headers={"X-API-Key": server.api_key}) as response:
            await response.read()

    probes = [asyncio.create_task(hold()) for _ in range(limit)]
    try:
        # The timeout only turns a leak (a probe that can never be sent) into a failure.
        await asyncio.wait_for(server.wait_for_requests(limit), 10)
    finally:
        for probe in probes:
            probe.cancel()
        await asyncio.gather(*probes, return_exceptions=True)
        server.latency = 0.0


async def test_fault_soak_loses_nothing_and_leaks_nothing(waits: list[RecordedWait]) -> None:
    loop = asyncio.get_running_loop()
    loop_errors: list[dict[str, Any]] = []
    old_handler = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: loop_errors.append(context))
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            await _soak(waits)
            gc.collect()  # an unclosed session, connector or response warns when collected
            await settle()
        assert [str(w.message) for w in caught] == []
        assert loop_errors == []
    finally:
        loop.set_exception_handler(old_handler)


async def _soak(waits: list[RecordedWait]) -> None:
    server = FakeFreddyServer(
        keys=KEYS,
        seed=8,
        error_rate=0.10,
        drop_rate=0.03,
        truncate_rate=0.02,
        slow_rate=0.01,
        slow_delay=SLOW_DELAY,
        requests_per_minute=SERVER_RPM,
        rate_limit_burst=SERVER_BURST,
    )
    async with server:
        connector = aiohttp.TCPConnector(limit=CONCURRENCY)
        session = aiohttp.ClientSession(connector=connector)
        try:
            client = FreddyClient(
                server.api_key,
                base_url=server.base_url,
                timeout=TIMEOUT,
                max_retries=MAX_RETRIES,
                max_concurrency=CONCURRENCY,
                retry_deadline=RETRY_DEADLINE,
                session=session,
            )
            async with client:
                reports = [
                    r async for r in client.iter_api_key_usage(server.org_id, server.key_ids, months=MONTHS)
                ]
                await settle()
                assert client_tasks() == []

            # Every job is accounted for exactly once: in usage or in errors, never both, never twice.
            assert sorted(r.api_key_id for r in reports) == sorted(server.key_ids)
            fetched = [(r.api_key_id, u.period) for r in reports for u in r.usage]
            failed = [(r.api_key_id, m) for r in reports for m in r.errors]
            jobs = {(k, m) for k in server.key_ids for m in MONTHS}
            assert len(fetched) + len(failed) == len(jobs) == KEYS * len(MONTHS)
            assert set(fetched) | set(failed) == jobs
            assert not set(fetched) & set(failed)
            for report in reports:
                assert [u.period for u in report.usage] == sorted(u.period for u in report.usage)
                assert all(u.api_key_id == report.api_key_id for u in report.usage)

            # The fetched months carry exactly the seed's numbers, to the centime.
            for report in reports:
                months = [u.period for u in report.usage]
                if months:
                    expected = server.expected_totals([report.api_key_id], months=months)
                    assert report.total_cost == expected.cost
                    assert report.total_requests == expected.requests
            got_cost = sum((r.total_cost for r in reports), Decimal(0))
            want_cost = sum(
                (server.expected_total_cost([k], months=[m]) for k, m in fetched), Decimal(0)
            )
            assert got_cost == want_cost

            # Failures are typed, and only ever come after the retries were used up. The fault
            # plan alone fails a job with odds of about 0.16**7, so more than a handful of failed
            # jobs means the client gives up too early, not bad luck.
            errors = [e for r in reports for e in r.errors.values()]
            assert all(isinstance(e, FreddyError) for e in errors)
            for error in errors:
                # Every retry used up; a 429 waited out on the way is a send but no retry.
                assert error.attempts >= MAX_RETRIES + 1, repr(error)
            assert len(errors) <= len(jobs) // 100, [repr(e) for e in errors[:5]]

            # Every kind of fault was met, and every one of them was retried rather than lost.
            faults = server.faults
            assert faults.error_500 and faults.error_502 and faults.error_503
            assert faults.dropped and faults.truncated and faults.slow
            # A 429 is answered before the fault plan is drawn, so it costs no fault attempt.
            # aiohttp itself sends a GET once more when a reused keep-alive connection is closed
            # before any answer (RFC 9112 9.3.1), so a dropped connection may cost no attempt of
            # the client's either: the server can see up to twice 1 + max_retries sends.
            throttled = Counter((r.path, r.query_string) for r in server.requests if r.status == 429)
            for key, month in jobs:
                path = f"/v1/analytics/api-keys/usage/{server.org_id}/{key}"
                query = f"month={month.month}&year={month.year}"
                sent = server.fetch_count(key, month.year, month.month) - throttled[(path, query)]
                assert 1 <= sent <= 2 * (MAX_RETRIES + 1)
            retries = sum(1 for w in waits if w.kind == "retry")
            # Every other request that met a fault was retried, unless it was a failed job's last.
            # (Counted per request: a slow answer can also be a truncated one.)
            faulted = sum(1 for r in server.requests if r.fault not in (None, "dropped"))
            assert retries >= faulted - len(errors)

            # The borrowed session is open, and no connection of its connector is still held.
            assert not session.closed
            await assert_all_connections_free(session, server, CONCURRENCY)
        finally:
            await session.close()
        assert connector.closed


async def test_a_server_that_never_answers_in_time_fails_typed_and_frees_its_connections(
    waits: list[RecordedWait],
) -> None:
    # Every answer is slower than the timeout: each job ends as APITimeoutError after all its
    # attempts, and each timed-out attempt must give its connection back.
    async with FakeFreddyServer(keys=8, latency=5.0) as server:
        connector = aiohttp.TCPConnector(limit=4)
        async with aiohttp.ClientSession(connector=connector) as session:
            client = FreddyClient(
                server.api_key, base_url=server.base_url, timeout=0.05, max_retries=1,
                max_concurrency=4, session=session,
            )
            reports = [
                r async for r in client.iter_api_key_usage(server.org_id, server.key_ids, months=["2025-01"])
            ]
            await client.aclose()
            assert sorted(r.api_key_id for r in reports) == sorted(server.key_ids)
            errors = [e for r in reports for e in r.errors.values()]
            assert len(errors) == 8
            assert all(isinstance(e, APIConnectionError) and e.attempts == 2 for e in errors)
            await settle()
            assert client_tasks() == []
            assert not session.closed
            await assert_all_connections_free(session, server, 4)
