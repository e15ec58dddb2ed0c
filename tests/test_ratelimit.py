"""Per-organization pacing: the shared pause after a 429, requests_per_minute, X-RateLimit-*."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from aioresponses import aioresponses

from freddy_async import FreddyClient, RateLimitError
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


async def test_a_429_pauses_the_whole_organization_but_not_others(
    mock: aioresponses, waits: list[RecordedWait]
) -> None:
    mock.get(url("org_a", "k0"), status=429, headers={"Retry-After": "5"}, body="")
    for key in ("k1", "k2", "k3"):
        mock.get(url("org_a", key), payload=body("org_a", key))
        mock.get(url("org_b", key), payload=body("org_b", key))
    async with FreddyClient("k", max_retries=0) as client:
        with pytest.raises(RateLimitError):
            await get(client, "org_a", "k0")
        await asyncio.gather(
            *(get(client, org, key) for org in ("org_a", "org_b") for key in ("k1", "k2", "k3"))
        )
    # One shared wait holds all three org_a requests (they queue behind it); org_b never waits.
    assert of_kind(waits, "pause", "org_a") == [pytest.approx(5, abs=0.1)]
    assert of_kind(waits, "pause", "org_b") == []
    assert of_kind(waits, "pace") == []


async def test_retrying_task_and_waiting_tasks_share_one_pause(
    mock: aioresponses, waits: list[RecordedWait]
) -> None:
    mock.get(url("org_a", "k0"), status=429, headers={"Retry-After": "3"}, body="")
    mock.get(url("org_a", "k0"), payload=body("org_a", "k0"))
    mock.get(url("org_a", "k1"), payload=body("org_a", "k1"))
    async with FreddyClient("k") as client:
        await get(client, "org_a", "k0")
        await get(client, "org_a", "k1")
    # The retry waited out the Retry-After; the pause it set was over by then, so no double wait.
    assert of_kind(waits, "retry") == [3.0]
    assert of_kind(waits, "pause") == []
    assert sum(len(v) for v in mock.requests.values()) == 3


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


async def test_server_rate_limit_header_sets_the_pace(
    mock: aioresponses, waits: list[RecordedWait]
) -> None:
    reset = str(int(time.time()) + 60)
    headers = {"X-RateLimit-Limit": "60", "X-RateLimit-Remaining": "50", "X-RateLimit-Reset": reset}
    for key in ("k1", "k2", "k3"):
        mock.get(url("org_a", key), payload=body("org_a", key), headers=headers)
    async with FreddyClient("k") as client:
        for key in ("k1", "k2", "k3"):
            await get(client, "org_a", key)
    # Learned 60/min from the first answer: one request a second after that.
    paces = of_kind(waits, "pace", "org_a")
    assert len(paces) == 2
    assert all(0.9 <= p <= 1.0 for p in paces)


async def test_an_exhausted_budget_waits_for_the_reset(
    mock: aioresponses, waits: list[RecordedWait]
) -> None:
    reset = time.time() + 20
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


async def test_a_budget_spent_by_others_holds_one_interval_when_pacing(
    mock: aioresponses, waits: list[RecordedWait]
) -> None:
    # With a known rate, an exhausted budget means another client shares the quota: hold one
    # interval and probe, rather than stall until a reset that may be a whole minute away.
    reset = str(int(time.time()) + 60)
    mock.get(url("org_a", "k1"), payload=body("org_a", "k1"),
               headers={"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": reset})
    mock.get(url("org_a", "k2"), payload=body("org_a", "k2"))
    async with FreddyClient("k", requests_per_minute=600) as client:
        await get(client, "org_a", "k1")
        await get(client, "org_a", "k2")
    assert of_kind(waits, "pause", "org_a") == [pytest.approx(0.1)]


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
