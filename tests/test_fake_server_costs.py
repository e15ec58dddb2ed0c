"""FakeFreddyServer's usage-limits and summary endpoints (API.md §4): wire format and consistency.

Driven with plain aiohttp, as tests/test_fake_server.py, so that the wire format is pinned
independently of the client; the last tests go through the client to show both agree.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Mapping
from decimal import Decimal
from typing import Any

import aiohttp
import pytest
from yarl import URL

from freddy_async import FreddyClient, YearMonth
from freddy_async.testing import FakeFreddyServer, RecordedWait

MONTHS = [(2025, 1), (2025, 6), (2025, 11)]
STATUSES = {"ok", "warning", "exceeded", "no_limit"}
RANK = ["no_limit", "ok", "warning", "exceeded"]


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def server() -> AsyncIterator[FakeFreddyServer]:
    async with FakeFreddyServer(keys=15, seed=5, casing="snake", extra_orgs={"org_empty": 0}) as running:
        yield running


def limits_path(org_id: str) -> str:
    return f"/v1/analytics/usage/limits/{org_id}"


def summary_path(org_id: str) -> str:
    return f"/v1/analytics/api-keys/summary/{org_id}"


async def get(
    http: aiohttp.ClientSession,
    server: FakeFreddyServer,
    path: str,
    params: Mapping[str, int | str] | None = None,
) -> tuple[int, Any, Mapping[str, str]]:
    url = URL(server.base_url + path, encoded=True)
    async with http.get(url, params=params, headers={"X-API-Key": server.api_key}) as response:
        return response.status, json.loads(await response.text(), parse_float=Decimal), response.headers


def keys_of(value: Any) -> set[str]:
    """Every object key in a JSON value, recursively."""
    if isinstance(value, dict):
        return set(value) | {k for v in value.values() for k in keys_of(v)}
    if isinstance(value, list):
        return {k for v in value for k in keys_of(v)}
    return set()


def _snake(name: str) -> str:
    return re.sub(r"[A-Z]", lambda m: "_" + m[0].lower(), name)


def snake(value: Any) -> Any:
    if isinstance(value, dict):
        return {_snake(k): snake(v) for k, v in value.items()}
    if isinstance(value, list):
        return [snake(v) for v in value]
    return value


# -- the limits answer -----------------------------------------------------------------------


@pytest.mark.parametrize(("year", "month"), MONTHS)
async def test_every_key_costs_what_its_usage_says(
    http: aiohttp.ClientSession, server: FakeFreddyServer, year: int, month: int
) -> None:
    status, body, _ = await get(http, server, limits_path(server.org_id), {"month": month, "year": year})

    assert status == 200
    assert body == server.expected_limits(year, month)
    limits = body["api_key_limits"]
    assert [k["api_key_id"] for k in limits] == server.key_ids
    for entry in limits:
        usage = server.expected_usage(entry["api_key_id"], year, month)
        assert entry["current_usage"] == usage["usage"]["total_cost"]
        assert entry["api_key_name"] == usage["api_key_name"]
        assert entry["monthly_limit"] == usage["limit"]["monthly_limit"]
        assert entry["utilization_percentage"] == usage["limit"]["utilization_percentage"]
        assert entry["status"] == usage["limit"]["status"]
    org_cost = sum(k["current_usage"] for k in limits)
    assert body["organization_limits"]["current_usage"] == org_cost
    assert org_cost == server.expected_total_cost(months=[(year, month)])
    assert body["api_limits"]["current_usage"] == org_cost


async def test_the_summary_counts_the_keys(http: aiohttp.ClientSession, server: FakeFreddyServer) -> None:
    for year, month in MONTHS:
        _, body, _ = await get(http, server, limits_path(server.org_id), {"month": month, "year": year})

        summary = body["summary"]
        limited = [k for k in server.expected_keys() if k["usage_limit_chf"] is not None]
        assert summary["total_keys"] == len(server.key_ids) == 15
        assert summary["keys_with_limits"] == len(limited)
        assert summary["keys_exceeded"] == len(server.keys_with_status("exceeded", year, month))
        statuses = [body["organization_limits"]["status"], *(k["status"] for k in body["api_key_limits"])]
        assert summary["overall_status"] == max(statuses, key=RANK.index)
        # 15 keys deal every kind of key three times over: every status shows up.
        assert {k["status"] for k in body["api_key_limits"]} == STATUSES


async def test_the_organization_limit_agrees_with_its_status(
    http: aiohttp.ClientSession, server: FakeFreddyServer
) -> None:
    for year, month in MONTHS:
        _, body, _ = await get(http, server, limits_path(server.org_id), {"month": month, "year": year})
        org = body["organization_limits"]
        limit, cost = org["monthly_limit"], org["current_usage"]
        assert limit is not None
        assert org["remaining_budget"] == limit - cost
        expected = "exceeded" if cost >= limit else "warning" if cost >= limit * Decimal("0.8") else "ok"
        assert org["status"] == expected
        utilization = org["utilization_percentage"]
        assert utilization <= cost * 100 / limit < utilization + Decimal("0.01")


async def test_money_is_written_with_two_decimals(
    http: aiohttp.ClientSession, server: FakeFreddyServer
) -> None:
    url = URL(server.base_url + limits_path(server.org_id) + "?month=6&year=2025", encoded=True)
    async with http.get(url, headers={"X-API-Key": server.api_key}) as response:
        text = await response.text()

    costs = re.findall(r'"current_usage": ([^,}]+)', text)
    assert len(costs) == 15 + 2
    assert all(re.fullmatch(r"\d+\.\d{2}", c) for c in costs), costs


async def test_an_organization_without_keys(http: aiohttp.ClientSession, server: FakeFreddyServer) -> None:
    status, body, _ = await get(http, server, limits_path("org_empty"), {"month": 6, "year": 2025})

    assert status == 200
    assert body["api_key_limits"] == []
    assert body["organization_limits"]["monthly_limit"] is None
    assert body["organization_limits"]["current_usage"] == Decimal("0.00")
    assert body["summary"] == {"total_keys": 0, "keys_with_limits": 0, "keys_exceeded": 0,
                               "overall_status": "no_limit"}


@pytest.mark.parametrize(
    ("casing", "top"),
    [("snake", "organization_limits"), ("docs", "organization_limits"), ("camel", "organizationLimits")],
)
async def test_limits_casings(http: aiohttp.ClientSession, casing: Any, top: str) -> None:
    async with FakeFreddyServer(keys=5, casing=casing) as server:
        _, body, _ = await get(http, server, limits_path(server.org_id), {"month": 3, "year": 2025})
        expected = server.expected_limits(2025, 3)

    assert top in body
    assert snake(body) == expected
    if casing == "camel":
        assert not any("_" in key for key in keys_of(body))
        assert "apiKeyLimits" in body and "currentUsage" in body["apiKeyLimits"][0]
    else:
        assert keys_of(body) == keys_of(expected)


# -- the summary answer ----------------------------------------------------------------------


@pytest.mark.parametrize(("year", "month"), MONTHS)
async def test_summary_is_the_daily_pages_summary(
    http: aiohttp.ClientSession, server: FakeFreddyServer, year: int, month: int
) -> None:
    params = {"year": year, "month": month}
    _, summary, _ = await get(http, server, summary_path(server.org_id), params)
    _, daily, _ = await get(http, server, f"/v1/analytics/api-keys/daily/{server.org_id}", params)

    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z", summary.pop("generated_at"))
    daily["summary"].pop("generated_at")
    assert summary == daily["summary"]
    assert summary == server.expected_summary(year, month)
    assert summary == server.expected_daily(year, month)["summary"]
    assert summary["total_api_key_cost"] == server.expected_total_cost(months=[(year, month)])
    _, limits, _ = await get(http, server, limits_path(server.org_id), params)
    assert summary["total_api_key_cost"] == limits["organization_limits"]["current_usage"]


@pytest.mark.parametrize(
    ("casing", "key"),
    [("snake", "total_api_key_cost"), ("docs", "total_api_key_cost"), ("camel", "totalApiKeyCost")],
)
async def test_summary_casings(http: aiohttp.ClientSession, casing: Any, key: str) -> None:
    async with FakeFreddyServer(keys=4, casing=casing) as server:
        _, body, _ = await get(http, server, summary_path(server.org_id), {"year": 2025, "month": 2})

    assert key in body
    assert body[key] == server.expected_summary(2025, 2)["total_api_key_cost"]


# -- counters, limits and errors -------------------------------------------------------------


async def test_request_counters(http: aiohttp.ClientSession, server: FakeFreddyServer) -> None:
    await get(http, server, limits_path(server.org_id), {"month": 6, "year": 2025})
    await get(http, server, limits_path(server.org_id), {"month": 6, "year": 2025})
    await get(http, server, summary_path(server.org_id), {"month": 7, "year": 2025})
    await get(http, server, limits_path("org_empty"), {"month": 6, "year": 2025})

    assert server.limits_fetch_count(2025, 6) == 2
    assert server.limits_fetch_count(2025, 7) == 0
    assert server.limits_fetch_count(2025, 6, org_id="org_empty") == 1
    assert server.summary_fetch_count(2025, 7) == 1
    assert server.summary_fetch_count(2025, 6) == 0
    assert server.request_count == 4
    assert [r.path for r in server.requests][:1] == [limits_path(server.org_id)]

    server.reset_counters()
    assert server.limits_fetch_count(2025, 6) == 0
    assert server.summary_fetch_count(2025, 7) == 0


async def test_without_a_month_the_current_one_is_counted(
    http: aiohttp.ClientSession, server: FakeFreddyServer
) -> None:
    now = YearMonth.current()
    status, body, _ = await get(http, server, limits_path(server.org_id))

    assert status == 200
    assert server.limits_fetch_count(now.year, now.month) == 1
    assert body == server.expected_limits(now.year, now.month)


async def test_both_endpoints_are_rate_limited(http: aiohttp.ClientSession) -> None:
    # One request a minute, a bucket of one: the second request finds it empty.
    async with FakeFreddyServer(keys=2, requests_per_minute=1) as server:
        first, _, headers = await get(http, server, limits_path(server.org_id), {"month": 1, "year": 2025})
        second, error, _ = await get(http, server, summary_path(server.org_id), {"month": 1, "year": 2025})

        assert first == 200
        assert headers["X-RateLimit-Limit"] == "1"
        assert second == 429
        assert error["error"]["code"] == "RATE_LIMIT_EXCEEDED"
        assert server.rate_limited_count == 1


@pytest.mark.parametrize("path", [limits_path, summary_path])
async def test_errors(http: aiohttp.ClientSession, server: FakeFreddyServer, path: Any) -> None:
    status, body, _ = await get(http, server, path(server.org_id), {"month": 13, "year": 2025})
    assert status == 422
    assert body["detail"][0]["loc"] == ["query", "month"]

    status, body, _ = await get(http, server, path("org_other"), {"month": 1, "year": 2025})
    assert status == 403
    assert body["error"]["code"] == "ORGANIZATION_ACCESS_DENIED"


async def test_put_on_the_limits_path_is_not_served(
    http: aiohttp.ClientSession, server: FakeFreddyServer
) -> None:
    url = URL(server.base_url + limits_path(server.org_id), encoded=True)
    async with http.put(url, headers={"X-API-Key": server.api_key}, json={}) as response:
        assert response.status == 405


# -- through the client ----------------------------------------------------------------------


@pytest.mark.parametrize("casing", ["snake", "camel", "docs"])
async def test_the_client_reads_the_same_costs_both_ways(casing: Any) -> None:
    months = YearMonth.range("2025-01", "2025-03")
    async with FakeFreddyServer(keys=10, seed=11, casing=casing) as server, FreddyClient(
        server.api_key, base_url=server.base_url
    ) as client:
        by_month = [limits async for limits in client.iter_usage_limits(server.org_id, months=months)]
        by_key = {
            (report.api_key_id, usage.period): usage.usage.total_cost
            async for report in client.iter_api_key_usage(server.org_id, months=months)
            for usage in report.usage
        }
        summaries = [await client.get_api_key_usage_summary(server.org_id, year=m.year, month=m.month)
                     for m in months]
        for month in months:
            assert server.limits_fetch_count(month.year, month.month) == 1

    for month, limits, summary in zip(months, by_month, summaries, strict=True):
        assert {(k.api_key_id, month): k.current_usage for k in limits.api_key_limits} == {
            (key, m): cost for (key, m), cost in by_key.items() if m == month
        }
        total = sum((k.current_usage for k in limits.api_key_limits), Decimal(0))
        assert limits.organization_limits.current_usage == total == summary.total_api_key_cost
        assert limits.summary.total_keys == 10


async def test_iter_usage_limits_through_faults_loses_nothing(waits: list[RecordedWait]) -> None:
    months = YearMonth.range("2024-01", "2025-12")
    async with FakeFreddyServer(keys=8, seed=4, error_rate=0.3, drop_rate=0.1) as server, FreddyClient(
        server.api_key, base_url=server.base_url, max_retries=10, max_concurrency=4
    ) as client:
        answers = [limits async for limits in client.iter_usage_limits(server.org_id, months=months)]

        assert server.faults.total > 0
        for month, limits in zip(months, answers, strict=True):
            costs = {k.api_key_id: k.current_usage for k in limits.api_key_limits}
            assert costs == {
                k: server.expected_usage(k, month.year, month.month)["usage"]["total_cost"]
                for k in server.key_ids
            }
