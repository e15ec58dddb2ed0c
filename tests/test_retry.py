"""Retries: what is retried, how long each wait is, and when a call gives up."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from typing import Any

import aiohttp
import pytest
from aioresponses import aioresponses
from seeds import seed_usage
from tasks import turns_until

from freddy_async import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    ClientStats,
    FreddyClient,
    InternalServerError,
    NotFoundError,
    RateLimitError,
    ResponseValidationError,
    _retry,  # white-box below: the decisions tenacity is handed
)
from freddy_async.testing import FakeFreddyServer, RecordedWait

ORG = "org_1"
KEY = "apikey_1"
URL = f"https://api.aitronos.com/v1/analytics/api-keys/usage/{ORG}/{KEY}?month=11&year=2025"
BODY = seed_usage(ORG, KEY)
ENVELOPE_500 = {"success": False, "error": {"code": "INTERNAL_ERROR", "type": "server_error",
                                            "message": "An unexpected error occurred",
                                            "status": 500, "trace_id": "jkl-012-mno"}}


def calls(m: aioresponses) -> int:
    return sum(len(v) for v in m.requests.values())


def retry_waits(waits: list[RecordedWait]) -> list[float]:
    return [w.seconds for w in waits if w.kind == "retry"]


async def fetch(client: FreddyClient) -> Any:
    return await client.get_api_key_usage(ORG, KEY, month=11, year=2025)


async def test_503_503_200_succeeds_on_the_third_attempt(
    mock: aioresponses, waits: list[RecordedWait]
) -> None:
    mock.get(URL, status=503, body="")
    mock.get(URL, status=503, payload=ENVELOPE_500)
    mock.get(URL, payload=BODY)
    async with FreddyClient("k") as client:
        usage = await fetch(client)
    assert usage.api_key_id == KEY
    assert calls(mock) == 3
    first, second = retry_waits(waits)
    # Full jitter below the exponential ceiling: 0.5 s, then 1 s.
    assert 0 <= first <= 0.5
    assert 0 <= second <= 1.0


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
async def test_client_errors_are_tried_exactly_once(
    mock: aioresponses, waits: list[RecordedWait], status: int
) -> None:
    mock.get(URL, status=status, payload={"success": False, "error": {"code": "X", "message": "no"}},
               repeat=True)
    async with FreddyClient("k") as client:
        with pytest.raises(APIStatusError) as info:
            await fetch(client)
    assert info.value.status == status
    assert info.value.attempts == 1
    assert calls(mock) == 1
    assert waits == []


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504, 599])
async def test_retryable_statuses_are_retried(
    mock: aioresponses, waits: list[RecordedWait], status: int
) -> None:
    mock.get(URL, status=status, body="")
    mock.get(URL, payload=BODY)
    async with FreddyClient("k") as client:
        await fetch(client)
    assert calls(mock) == 2


async def test_exhausted_retries_raise_the_last_error_with_attempts(
    mock: aioresponses, waits: list[RecordedWait]
) -> None:
    mock.get(URL, status=503, payload=ENVELOPE_500, repeat=True)
    async with FreddyClient("k", max_retries=4) as client:
        with pytest.raises(InternalServerError) as info:
            await fetch(client)
    assert info.value.attempts == 5
    assert info.value.trace_id == "jkl-012-mno"
    assert calls(mock) == 5
    assert "after 5 attempts" in str(info.value)


async def test_max_retries_zero_disables_retries(
    mock: aioresponses, waits: list[RecordedWait]
) -> None:
    mock.get(URL, status=503, body="", repeat=True)
    async with FreddyClient("k", max_retries=0) as client:
        with pytest.raises(InternalServerError) as info:
            await fetch(client)
    assert info.value.attempts == 1
    assert calls(mock) == 1


@pytest.mark.parametrize(
    ("exception", "expected"),
    [
        (aiohttp.ClientConnectionError("refused"), APIConnectionError),
        (aiohttp.ServerDisconnectedError(), APIConnectionError),
        (aiohttp.ClientPayloadError("cut short"), APIConnectionError),
        (asyncio.TimeoutError(), APITimeoutError),
    ],
)
async def test_transport_failures_are_retried_then_typed(
    mock: aioresponses, waits: list[RecordedWait], exception: Exception,
    expected: type[Exception],
) -> None:
    for _ in range(3):
        mock.get(URL, exception=exception)
    async with FreddyClient("k", max_retries=2) as client:
        with pytest.raises(expected) as info:
            await fetch(client)
    assert info.value.attempts == 3  # type: ignore[attr-defined]
    assert calls(mock) == 3


async def test_a_body_that_does_not_fit_is_not_retried(
    mock: aioresponses, waits: list[RecordedWait]
) -> None:
    mock.get(URL, body="{not json", repeat=True)
    async with FreddyClient("k") as client:
        with pytest.raises(ResponseValidationError):
            await fetch(client)
    assert calls(mock) == 1


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Retry-After": "0"}, 0.0),
        ({"Retry-After": "1.5"}, 1.5),
        ({"Retry-After": "7"}, 7.0),
        ({"retry-after-ms": "250"}, 0.25),
        ({"retry-after-ms": "250", "Retry-After": "9"}, 0.25),
        ({"Retry-After": "45"}, 45.0),
    ],
)
async def test_retry_after_sets_the_wait(
    mock: aioresponses, waits: list[RecordedWait], headers: dict[str, str], expected: float
) -> None:
    mock.get(URL, status=503, headers=headers, body="")
    mock.get(URL, payload=BODY)
    async with FreddyClient("k") as client:
        await fetch(client)
    assert retry_waits(waits) == [pytest.approx(expected)]


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Retry-After": "0"}, []),
        ({"Retry-After": "1.5"}, [1.5]),
        ({"retry-after-ms": "250", "Retry-After": "9"}, [0.25]),
        ({}, [0.5]),  # nothing said: a first short pause
    ],
)
async def test_a_429_is_waited_out_as_a_pause_not_a_retry(
    mock: aioresponses, waits: list[RecordedWait], headers: dict[str, str], expected: list[float]
) -> None:
    mock.get(URL, status=429, headers=headers, body="")
    mock.get(URL, payload=BODY)
    async with FreddyClient("k", max_retries=0) as client:
        await fetch(client)
        assert client.stats.throttled == 1
    assert retry_waits(waits) == []
    assert [w.seconds for w in waits if w.kind == "pause"] == [pytest.approx(x) for x in expected]
    assert calls(mock) == 2


async def test_retry_after_as_http_date(mock: aioresponses, waits: list[RecordedWait]) -> None:
    when = datetime.now(timezone.utc) + timedelta(seconds=30)
    mock.get(URL, status=503, headers={"Retry-After": format_datetime(when, usegmt=True)}, body="")
    mock.get(URL, payload=BODY)
    async with FreddyClient("k") as client:
        await fetch(client)
    (wait,) = retry_waits(waits)
    assert 28 <= wait <= 30  # the header has whole seconds; the test itself takes a moment


async def test_retry_after_is_capped_at_60_seconds(
    mock: aioresponses, waits: list[RecordedWait]
) -> None:
    mock.get(URL, status=503, headers={"Retry-After": "100"}, body="")
    mock.get(URL, payload=BODY)
    async with FreddyClient("k", retry_deadline=600) as client:
        await fetch(client)
    assert retry_waits(waits) == [60.0]


@pytest.mark.parametrize("value", ["-1", "abc", "nan", ""])
async def test_unreadable_retry_after_falls_back_to_backoff(
    mock: aioresponses, waits: list[RecordedWait], value: str
) -> None:
    mock.get(URL, status=503, headers={"Retry-After": value}, body="")
    mock.get(URL, payload=BODY)
    async with FreddyClient("k") as client:
        await fetch(client)
    (wait,) = retry_waits(waits)
    assert 0 <= wait <= 0.5


async def test_429_asking_longer_than_the_deadline_is_raised_at_once(
    mock: aioresponses, waits: list[RecordedWait]
) -> None:
    mock.get(URL, status=429, headers={"Retry-After": str(10 * 24 * 3600)}, body="", repeat=True)
    async with FreddyClient("k", retry_deadline=60) as client:
        with pytest.raises(RateLimitError) as info:
            await fetch(client)
    assert info.value.retry_after == 10 * 24 * 3600
    assert info.value.attempts == 1
    assert calls(mock) == 1
    assert retry_waits(waits) == []


async def test_the_deadline_wins_over_max_retries(
    mock: aioresponses, waits: list[RecordedWait]
) -> None:
    mock.get(URL, status=503, headers={"Retry-After": "2"}, body="", repeat=True)
    async with FreddyClient("k", max_retries=10, retry_deadline=5) as client:
        with pytest.raises(InternalServerError) as info:
            await fetch(client)
    # Waits of 2 s: after 2 of them only ~1 s of the 5 s deadline is left, so the third is not made.
    assert retry_waits(waits) == [2.0, 2.0]
    assert info.value.attempts == 3
    assert calls(mock) == 3


async def test_a_cancelled_call_stops_retrying_at_once(mock: aioresponses) -> None:
    # No instant waits here: the call really sleeps for its 30 s Retry-After, and is cancelled.
    mock.get(URL, status=503, headers={"Retry-After": "30"}, body="", repeat=True)
    async with FreddyClient("k") as client:
        task = asyncio.create_task(fetch(client))
        await turns_until(lambda: calls(mock) > 0, what="the first request")
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert calls(mock) == 1


async def test_every_retry_is_logged_at_info(
    mock: aioresponses, waits: list[RecordedWait], caplog: pytest.LogCaptureFixture
) -> None:
    mock.get(URL, status=500, payload=ENVELOPE_500)
    mock.get(URL, payload=BODY)
    with caplog.at_level(logging.INFO, logger="freddy_async"):
        async with FreddyClient("very-secret-key") as client:
            await fetch(client)
    (record,) = [r for r in caplog.records if "retrying" in r.getMessage()]
    message = record.getMessage()
    assert record.levelno == logging.INFO and record.name == "freddy_async"
    assert "attempt 1 of 4" in message
    assert "500 INTERNAL_ERROR" in message
    assert "trace_id=jkl-012-mno" in message
    assert f"{retry_waits(waits)[0]:.3f} s" in message
    assert "very-secret-key" not in message


async def test_client_stats_count_requests_and_retries(
    mock: aioresponses, waits: list[RecordedWait]
) -> None:
    mock.get(URL, status=503, body="")
    mock.get(URL, status=502, body="")
    mock.get(URL, payload=BODY)
    mock.get(URL, payload=BODY)
    async with FreddyClient("k") as client:
        assert client.stats == ClientStats(requests=0, retries=0)
        await fetch(client)
        await fetch(client)
        assert client.stats == ClientStats(requests=4, retries=2)


async def test_against_the_fake_server_503_503_200_takes_three_attempts(
    waits: list[RecordedWait],
) -> None:
    async with FakeFreddyServer(keys=1, fail_first=2) as server:
        key = server.key_ids[0]
        async with FreddyClient(server.api_key, base_url=server.base_url) as client:
            usage = await client.get_api_key_usage(server.org_id, key, month=3, year=2025)
            assert client.stats == ClientStats(requests=3, retries=2)
        assert usage.usage.total_cost == server.expected_usage(key, 2025, 3)["usage"]["total_cost"]
        assert server.fetch_count(key, 2025, 3) == 3
        assert [r.status for r in server.requests] == [503, 503, 200]
    assert len(retry_waits(waits)) == 2


async def test_against_the_fake_server_404_is_tried_once(waits: list[RecordedWait]) -> None:
    async with FakeFreddyServer(keys=1) as server:
        async with FreddyClient(server.api_key, base_url=server.base_url) as client:
            with pytest.raises(NotFoundError) as info:
                await client.get_api_key_usage(server.org_id, "apikey_nope", month=3, year=2025)
        assert info.value.code == "API_KEY_NOT_FOUND"
        assert info.value.trace_id
        assert server.request_count == 1
    assert waits == []


# -- the decisions themselves: pure functions of the policy, the attempt and the failure ----------


def status_error(status: int, retry_after: float | None = None) -> APIStatusError:
    return APIStatusError("x", status=status, retry_after=retry_after)


@pytest.mark.parametrize(
    ("failure", "retryable"),
    [
        (APIConnectionError("reset"), True),
        (APITimeoutError("slow"), True),
        (APIConnectionError("TLS", retryable=False), False),
        (status_error(408), True),
        (status_error(500), True),
        (status_error(503), True),
        (status_error(429), False),  # flow control, waited out before the retry loop
        (status_error(404), False),
        (ResponseValidationError("bad body"), False),
    ],
)
def test_is_retryable(failure: Exception, retryable: bool) -> None:
    assert _retry.is_retryable(failure) is retryable


def test_backoff_full_jitter_after_an_answer_equal_jitter_after_none() -> None:
    policy = _retry.RetryPolicy()  # 0.5 s doubled per attempt, at most 8 s
    for attempts, ceiling in [(1, 0.5), (2, 1.0), (3, 2.0), (5, 8.0), (6, 8.0)]:
        for _ in range(50):
            assert 0 <= _retry.backoff(policy, attempts, status_error(503)) <= ceiling
            equal = _retry.backoff(policy, attempts, APIConnectionError("reset"))
            top = min(2 * ceiling, policy.max_backoff)
            assert top / 2 <= equal <= top


def test_backoff_honours_retry_after_up_to_the_cap() -> None:
    policy = _retry.RetryPolicy()
    assert _retry.backoff(policy, 1, status_error(503, retry_after=0.0)) == 0.0
    assert _retry.backoff(policy, 1, status_error(503, retry_after=2.5)) == 2.5
    assert _retry.backoff(policy, 1, status_error(503, retry_after=3600.0)) == policy.max_retry_after


def test_gives_up_after_max_retries_or_when_the_wait_passes_the_deadline() -> None:
    policy = _retry.RetryPolicy(max_retries=3)
    assert not _retry.gives_up(policy, 3, status_error(503), wait=1.0, remaining=10.0)
    assert _retry.gives_up(policy, 4, status_error(503), wait=1.0, remaining=10.0)
    assert _retry.gives_up(policy, 1, status_error(503), wait=10.0, remaining=10.0)
    # A server asking for more than is left gets its answer now.
    assert _retry.gives_up(policy, 1, status_error(503, retry_after=30.0), wait=0.0, remaining=10.0)


@pytest.mark.parametrize(
    ("retry_after", "now", "deadline", "waited"),
    [
        (None, 0.0, 60.0, True),  # no wait named: paused by the pacer's own rule
        (5.0, 0.0, 60.0, True),
        (5.0, 56.0, 60.0, False),  # would end past the call's deadline
        (60.0, 0.0, 1000.0, True),
        (61.0, 0.0, 1000.0, False),  # more than a minute: a spending limit, not throttling
    ],
)
def test_which_429s_are_waited_out(
    retry_after: float | None, now: float, deadline: float, waited: bool
) -> None:
    assert _retry.waits_out(retry_after, now, deadline) is waited
