"""Per-organization pacing: the shared pause after a 429, requests_per_minute, X-RateLimit-*."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import pytest
from aioresponses import aioresponses
from tasks import turns_until

from freddy_async import ClientStats, FreddyClient, RateLimitError, _clock
from freddy_async._cli._console import Stats, progress_text
from freddy_async.testing import RecordedWait

BASE = "https://api.aitronos.com/v1/analytics/api-keys/usage"


def body(org: str, key: str) -> dict[str, Any]:
    return {
        "apiKeyId": key, "apiKeyName": key, "organizationId": org, "month": 11, "year": 2025,
        "usage": {"totalRequests": 1, "totalCost": 0.25, "totalSynapses": 1, "totalNeurons": 1},
        "limit": {"monthlyLimit": None, "utilizationPercentage": None, "remainingBudget": None,
                  "status": "no_limit"},
    }


def url(org: str, key: str) -> str:
    return f"{BASE}/{org}/{key}?month=11&year=2025"


async def get(client: FreddyClient, org: str, key: str) -> None:
    await client.get_api_key_usage(org, key, month=11, year=2025)


def of_kind(waits: list[RecordedWait], kind: str, org: str | None = None) -> list[float]:
    return [w.seconds for w in waits if w.kind == kind and (org is None or w.org_id == org)]


async def test_a_429_pauses_its_organization_and_holds_no_slot(
    mock: aioresponses, waits: list[RecordedWait]
) -> None:
    mock.get(url("org_a", "k0"), status=429, headers={"Retry-After": "5"}, body="")
    mock.get(url("org_a", "k0"), payload=body("org_a", "k0"))
    for key in ("k1", "k2", "k3"):
        mock.get(url("org_b", key), payload=body("org_b", key))
    done: dict[str, float] = {}

    async def timed(org: str, key: str) -> None:
        await get(client, org, key)
        done[key] = _clock.now()

    # One concurrency slot: org_a's pause must not hold it while org_b waits.
    async with FreddyClient("k", max_concurrency=1, max_retries=0) as client:
        start = _clock.now()
        paused = asyncio.create_task(timed("org_a", "k0"))
        await turns_until(lambda: client.stats.throttled == 1)
        await asyncio.gather(*(timed("org_b", key) for key in ("k1", "k2", "k3")))
        await paused
    assert all(done[key] == start for key in ("k1", "k2", "k3"))
    assert done["k0"] == pytest.approx(start + 5)
    assert of_kind(waits, "pause", "org_a") == [pytest.approx(5)]
    assert of_kind(waits, "pause", "org_b") == []
    assert client.stats == ClientStats(requests=5, retries=1, throttled=1)


async def test_a_waited_out_429_does_not_use_up_max_retries(
    mock: aioresponses, waits: list[RecordedWait]
) -> None:
    for _ in range(4):
        mock.get(url("org_a", "k0"), status=429, headers={"Retry-After": "3"}, body="")
    mock.get(url("org_a", "k0"), payload=body("org_a", "k0"))
    mock.get(url("org_a", "k1"), payload=body("org_a", "k1"))
    async with FreddyClient("k", max_retries=0) as client:
        await get(client, "org_a", "k0")
        await get(client, "org_a", "k1")
    # Four pauses of the organization, no retry: the next request found the pause over.
    assert of_kind(waits, "pause") == [3.0] * 4
    assert of_kind(waits, "retry") == []
    assert sum(len(v) for v in mock.requests.values()) == 6


async def test_requests_per_minute_paces_requests(
    mock: aioresponses, waits: list[RecordedWait]
) -> None:
    for key in ("k1", "k2", "k3", "k4"):
        mock.get(url("org_a", key), payload=body("org_a", key))
    async with FreddyClient("k", requests_per_minute=120) as client:
        for key in ("k1", "k2", "k3", "k4"):
            await get(client, "org_a", key)
    # 120/min is one request every 0.5 s; the first goes at once.
    paces = of_kind(waits, "pace", "org_a")
    assert len(paces) == 3
    assert all(0.45 <= p <= 0.5 for p in paces)


async def test_a_budget_is_spread_over_the_time_to_its_reset(
    mock: aioresponses, waits: list[RecordedWait]
) -> None:
    reset = str(int(_clock.wall()) + 60)
    headers = {"X-RateLimit-Limit": "60", "X-RateLimit-Remaining": "50", "X-RateLimit-Reset": reset}
    for key in ("k1", "k2", "k3", "k4"):
        mock.get(url("org_a", key), payload=body("org_a", key), headers=headers)
    async with FreddyClient("k") as client:
        for key in ("k1", "k2", "k3", "k4"):
            await get(client, "org_a", key)
    # 50 requests left for about 60 s of a window of (at least) 60: one every 1 to 1.2 s. The first
    # answer is news to the client, so the second request goes at once, the others on the beat.
    paces = of_kind(waits, "pace", "org_a")
    assert len(paces) == 2
    assert all(1.0 <= p <= 1.21 for p in paces)  # 1 s while the window may slide, at most 1.2 s


async def test_an_exhausted_budget_waits_for_the_reset(
    mock: aioresponses, waits: list[RecordedWait]
) -> None:
    reset = _clock.wall() + 20
    mock.get(url("org_a", "k1"), payload=body("org_a", "k1"),
               headers={"X-RateLimit-Remaining": "1", "X-RateLimit-Reset": str(int(reset))})
    for key in ("k2", "k3"):
        mock.get(url("org_a", key), payload=body("org_a", key))
    async with FreddyClient("k") as client:
        await get(client, "org_a", "k1")
        await get(client, "org_a", "k2")  # uses the one request left
        await get(client, "org_a", "k3")  # must wait for the reset instead of drawing a 429
    (pause,) = of_kind(waits, "pause", "org_a")
    assert 18 <= pause <= 20


async def test_a_budget_spent_by_others_waits_for_its_reset_even_when_pacing(
    mock: aioresponses, waits: list[RecordedWait]
) -> None:
    reset = str(int(_clock.wall()) + 30)
    mock.get(url("org_a", "k1"), payload=body("org_a", "k1"),
               headers={"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": reset})
    mock.get(url("org_a", "k2"), payload=body("org_a", "k2"))
    async with FreddyClient("k", requests_per_minute=600) as client:
        await get(client, "org_a", "k1")
        await get(client, "org_a", "k2")
    # Probing sooner would only draw a 429: the server said nothing is left until the reset.
    (pause,) = of_kind(waits, "pause", "org_a")
    assert 29 <= pause <= 30


async def test_reset_given_as_delta_seconds_is_understood(
    mock: aioresponses, waits: list[RecordedWait]
) -> None:
    mock.get(url("org_a", "k1"), payload=body("org_a", "k1"),
               headers={"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "7"})
    mock.get(url("org_a", "k2"), payload=body("org_a", "k2"))
    async with FreddyClient("k") as client:
        await get(client, "org_a", "k1")
        await get(client, "org_a", "k2")
    assert of_kind(waits, "pause", "org_a") == [pytest.approx(7, abs=0.1)]


async def test_no_rate_limit_information_means_no_waits(
    mock: aioresponses, waits: list[RecordedWait]
) -> None:
    for key in ("k1", "k2", "k3"):
        mock.get(url("org_a", key), payload=body("org_a", key))
    async with FreddyClient("k") as client:
        await asyncio.gather(*(get(client, "org_a", key) for key in ("k1", "k2", "k3")))
    assert waits == []


def key_refusal(key: str, retry_after: str) -> dict[str, Any]:
    envelope = {"success": False, "error": {
        "code": "USAGE_LIMIT_EXCEEDED", "message": "Spending limit reached", "status": 429,
        "details": {"api_key_id": key}}}
    return {"status": 429, "headers": {"Retry-After": retry_after}, "payload": envelope}


async def test_a_429_naming_a_key_holds_back_that_key_only(
    mock: aioresponses, waits: list[RecordedWait]
) -> None:
    mock.get(url("org_a", "k0"), **key_refusal("k0", "4"))
    mock.get(url("org_a", "k0"), payload=body("org_a", "k0"))
    mock.get(url("org_a", "k1"), payload=body("org_a", "k1"))
    async with FreddyClient("k") as client:
        held = asyncio.create_task(get(client, "org_a", "k0"))
        await turns_until(lambda: client.stats.throttled == 1)
        start = _clock.now()
        await get(client, "org_a", "k1")  # the organization is not paused
        assert _clock.now() == start
        await held
    assert of_kind(waits, "pause", "org_a") == [pytest.approx(4)]


async def test_a_429_asking_more_than_the_cap_is_a_spending_limit_and_fails_at_once(
    mock: aioresponses, waits: list[RecordedWait]
) -> None:
    mock.get(url("org_a", "k0"), **key_refusal("k0", str(24 * 3600)), repeat=True)
    for key in ("k1", "k2"):
        mock.get(url("org_a", key), payload=body("org_a", key))
    async with FreddyClient("k", retry_deadline=7 * 24 * 3600) as client:
        with pytest.raises(RateLimitError) as info:
            await get(client, "org_a", "k0")
        await asyncio.gather(get(client, "org_a", "k1"), get(client, "org_a", "k2"))
    assert info.value.retry_after == 24 * 3600
    assert info.value.attempts == 1
    assert waits == []  # neither the key nor its organization was held


async def test_the_deadline_counts_from_the_first_send_not_from_the_queue(
    mock: aioresponses, waits: list[RecordedWait]
) -> None:
    # k1 queues 50 s behind its organization's pause, then meets a 429 asking 20 s: within a
    # 30 s deadline counted from its own first send, so it is waited out and k1 succeeds.
    mock.get(url("org_a", "k0"), status=429, headers={"Retry-After": "50"}, body="")
    mock.get(url("org_a", "k0"), payload=body("org_a", "k0"))
    mock.get(url("org_a", "k1"), status=429, headers={"Retry-After": "20"}, body="")
    mock.get(url("org_a", "k1"), payload=body("org_a", "k1"))
    async with FreddyClient("k", retry_deadline=60) as client:
        first = asyncio.create_task(get(client, "org_a", "k0"))
        await turns_until(lambda: client.stats.throttled == 1)
        await get(client, "org_a", "k1")
        await first
    assert of_kind(waits, "pause", "org_a") == [pytest.approx(50), pytest.approx(20)]


async def test_a_wait_past_the_deadline_raises_at_once_with_retry_after(
    mock: aioresponses, waits: list[RecordedWait]
) -> None:
    mock.get(url("org_a", "k0"), status=429, headers={"Retry-After": "45"}, body="", repeat=True)
    async with FreddyClient("k", retry_deadline=30) as client:
        with pytest.raises(RateLimitError) as info:
            await get(client, "org_a", "k0")
    assert info.value.retry_after == 45
    assert waits == []


@pytest.mark.parametrize(
    "headers",
    [
        {"X-RateLimit-Limit": "0.001", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "86400"},
        {"RateLimit-Limit": "1", "RateLimit-Remaining": "0", "RateLimit-Reset": "1e9",
         "RateLimit-Policy": "1;w=100000"},
        {"RateLimit": '"d";r=0;t=99999', "RateLimit-Policy": '"d";q=0.001;w=86400'},
    ],
    ids=["x-ratelimit", "ietf", "ietf-structured"],
)
async def test_no_wait_from_a_header_exceeds_the_cap(
    mock: aioresponses, waits: list[RecordedWait], headers: dict[str, str]
) -> None:
    for key in ("k1", "k2", "k3"):
        mock.get(url("org_a", key), payload=body("org_a", key), headers=headers)
    async with FreddyClient("k") as client:
        for key in ("k1", "k2", "k3"):
            await get(client, "org_a", key)
    assert waits
    assert all(w.seconds <= 60 for w in waits)


async def test_without_headers_the_pace_adapts_to_the_429s(
    mock: aioresponses, waits: list[RecordedWait]
) -> None:
    # Ten answers granted at once, then a 429 with nothing said: from then on the organization
    # is paced from the rate granted so far (its pause included), not left to collide, and the
    # pace climbs with each success to find the limit.
    for i in range(10):
        mock.get(url("org_a", f"k{i}"), payload=body("org_a", f"k{i}"))
    mock.get(url("org_a", "k10"), status=429, body="")
    for i in range(10, 15):
        mock.get(url("org_a", f"k{i}"), payload=body("org_a", f"k{i}"))
    sent: list[float] = []
    async with FreddyClient("k") as client:
        for i in range(10):
            await get(client, "org_a", f"k{i}")
        for i in range(10, 15):
            await get(client, "org_a", f"k{i}")
            sent.append(_clock.now())
    assert of_kind(waits, "pause", "org_a") == [0.5]
    gaps = [b - a for a, b in itertools.pairwise(sent)]
    assert 1 / 30 <= gaps[0] <= 1 / 10  # 10 granted over the 0.5 s pause: about 20 a second
    assert all(a > b for a, b in itertools.pairwise(gaps))  # each success quickens the pace


async def test_the_progress_line_shows_the_learned_limit_and_an_eta(
    mock: aioresponses, waits: list[RecordedWait]
) -> None:
    headers = {"RateLimit": '"default";r=50;t=30', "RateLimit-Policy": '"default";q=60;w=60'}
    mock.get(url("org_a", "k1"), payload=body("org_a", "k1"), headers=headers)
    stats = Stats()
    async with FreddyClient("k") as client:
        stats.client, stats.org_id, stats.months, stats.keys_total = client, "org_a", 12, 10
        assert client.paced_rate("org_a") is None
        assert "ETA" not in progress_text(stats)  # nothing known of the limit yet
        await get(client, "org_a", "k1")
        stats.keys_done = 5
        assert client.paced_rate("org_a") == pytest.approx(1.0)  # 60 a minute
        # 5 keys x 12 months left at one request a second: one minute.
        assert "5/10 keys  ETA 1:00  limit 60/min  " in progress_text(stats)


async def test_a_retry_held_past_its_deadline_by_another_calls_pause_raises_at_once(
    mock: aioresponses, waits: list[RecordedWait]
) -> None:
    # k1 meets a 503 asking 20 s at t=0; k0, sent at t=15, meets a 429 holding the organization
    # until t=40. At t=20 k1's retry would wait until 40, past its 30 s deadline: it gets a
    # RateLimitError with that wait, at once, while k0 (deadline 45) waits its pause out.
    mock.get(url("org_a", "k1"), status=503, headers={"Retry-After": "20"}, body="")
    mock.get(url("org_a", "k0"), status=429, headers={"Retry-After": "25"}, body="")
    mock.get(url("org_a", "k0"), payload=body("org_a", "k0"))
    async with FreddyClient("k", retry_deadline=30) as client:
        first = asyncio.create_task(get(client, "org_a", "k1"))
        await _clock.sleep(15, "test")
        second = asyncio.create_task(get(client, "org_a", "k0"))
        with pytest.raises(RateLimitError) as info:
            await first
        await second
    assert info.value.retry_after == pytest.approx(20)
    assert "retry_deadline" in str(info.value)
