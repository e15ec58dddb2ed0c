"""The API's own generated SDKs against FakeFreddyServer's defaults: they parse, and agree.

``aitronos-sdk`` and ``freddy-backend-client`` are generated from the OpenAPI document that the
API's FastAPI server derives from the models it serialises: the best evidence we have of the real
wire format. Every endpoint they share with the fake must parse with the fake's defaults, and
give the numbers of ``expected_*``. These tests need the ``peers`` extra
(``pip install -e ".[test,peers]"``) and skip cleanly without it; ``.ci/run`` runs them in a venv
of their own, so the library's own CI never depends on those SDKs.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from datetime import date, datetime
from decimal import Decimal
from types import ModuleType
from typing import Any

import pytest

from freddy_async.testing import FakeFreddyServer

# A month with traffic on both sides of the month's limit statuses, and the current month of a
# server whose date is pinned: the numbers must agree for the days that have passed.
PAST = (2025, 11)
TODAY = date(2026, 11, 29)
CURRENT = (TODAY.year, TODAY.month)
TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}T[\d:.]+(Z|[+-]\d{2}:\d{2})")


def sdk(name: str) -> ModuleType:
    """Import a module of a peer SDK, or skip the test: the ``peers`` extra is not installed."""
    why = f"{name} comes with the peers extra: pip install -e '.[test,peers]'"
    module: ModuleType = pytest.importorskip(name, reason=why)
    return module


def same(got: Any, expected: Any, where: str = "") -> None:
    """Assert that an SDK's plain data equals ``expected``: every expected field is there (an SDK
    may add its own), floats equal the exact Decimal, timestamps the same instant."""
    if isinstance(expected, Mapping):
        assert isinstance(got, Mapping), where
        for name, value in expected.items():
            assert name in got, f"{where}.{name} missing"
            same(got[name], value, f"{where}.{name}")
    elif isinstance(expected, list):
        assert isinstance(got, list) and len(got) == len(expected), where
        for i, (one, other) in enumerate(zip(got, expected, strict=True)):
            same(one, other, f"{where}[{i}]")
    elif isinstance(got, float):
        assert Decimal(repr(got)) == expected, (where, got, expected)
    elif isinstance(got, datetime) or (isinstance(got, str) and TIMESTAMP.fullmatch(got)):
        assert instant(got) == instant(expected), where
    else:
        assert got == expected, (where, got, expected)


def instant(value: str | datetime) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(value.replace("Z", "+00:00"))


def without_generated_at(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k != "generated_at"}


@pytest.fixture
async def server() -> AsyncIterator[FakeFreddyServer]:
    # Defaults only (snake_case, the "keys" listing, 422 for bad parameters), as a user gets them.
    async with FakeFreddyServer(keys=25, seed=2, today=TODAY) as running:
        yield running


# -- aitronos-sdk (Fern) ---------------------------------------------------------------------


@pytest.fixture
async def aitronos(server: FakeFreddyServer) -> AsyncIterator[Any]:
    module = sdk("aitronos")
    httpx = importlib.import_module("httpx")  # the SDK's own dependency
    async with httpx.AsyncClient() as http:
        yield module.AsyncAitronos(base_url=server.base_url, api_key=server.api_key, httpx_client=http)


def plain(model: Any) -> Any:
    """A pydantic model of the Fern SDK as plain data."""
    return model.model_dump() if hasattr(model, "model_dump") else model.dict()


@pytest.mark.parametrize("period", [PAST, CURRENT])
async def test_aitronos_reads_usage_of_every_key(
    aitronos: Any, server: FakeFreddyServer, period: tuple[int, int]
) -> None:
    year, month = period
    for key_id in server.key_ids:
        usage = await aitronos.analytics_limits.get_api_key_usage(
            server.org_id, key_id, month=month, year=year
        )
        same(plain(usage), server.expected_usage(key_id, year, month), key_id)


@pytest.mark.parametrize("period", [PAST, CURRENT])
async def test_aitronos_reads_daily_summary_and_limits(
    aitronos: Any, server: FakeFreddyServer, period: tuple[int, int]
) -> None:
    year, month = period
    org = server.org_id
    daily = plain(await aitronos.analytics_api_keys.get_api_key_daily_usage(org, year=year, month=month))
    expected = server.expected_daily(year, month)
    same(daily, {**expected, "summary": without_generated_at(expected["summary"])})
    summary = await aitronos.analytics_api_keys.get_api_key_usage_summary(org, year=year, month=month)
    same(plain(summary), server.expected_summary(year, month))
    limits = await aitronos.analytics_limits.get_usage_limits(org, month=month, year=year)
    same(plain(limits), server.expected_limits(year, month))


async def test_aitronos_lists_every_key(aitronos: Any, server: FakeFreddyServer) -> None:
    seen: list[Any] = []
    for page in (1, 2):
        listing = plain(await aitronos.api_keys.list_api_keys(server.org_id, page=page, page_size=20))
        assert (listing["total"], listing["page"], listing["page_size"]) == (25, page, 20)
        seen += listing["keys"]
    same(seen, server.expected_keys())


async def test_aitronos_reads_an_invalid_parameter_as_its_422(
    aitronos: Any, server: FakeFreddyServer
) -> None:
    errors = sdk("aitronos.errors")
    with pytest.raises(errors.UnprocessableEntityError) as info:
        await aitronos.analytics_api_keys.get_api_key_daily_usage(server.org_id, year=2019, month=13)
    assert [item["loc"] for item in info.value.body["detail"]] == [["query", "year"], ["query", "month"]]


# -- freddy-backend-client (openapi-python-client) ------------------------------------------


@pytest.fixture
async def freddy(server: FakeFreddyServer) -> AsyncIterator[Any]:
    module = sdk("freddy_client")
    async with module.Client(base_url=server.base_url, headers={"X-API-Key": server.api_key}) as client:
        yield client


def endpoint(name: str) -> Callable[..., Awaitable[Any]]:
    """The ``asyncio`` function of one generated endpoint module of freddy_client."""
    call: Callable[..., Awaitable[Any]] = sdk(f"freddy_client.api.{name}").asyncio
    return call


USAGE = "analytics_limits.get_api_key_usage_v1_analytics_api_keys_usage_org_id_api_key_id_get"
DAILY = "analytics_api_keys.get_api_key_daily_usage_v1_analytics_api_keys_daily_org_id_get"
SUMMARY = "analytics_api_keys.get_api_key_usage_summary_v1_analytics_api_keys_summary_org_id_get"
LIMITS = "analytics_limits.get_usage_limits_v1_analytics_usage_limits_org_id_get"
LISTING = "api_keys.list_api_keys_v1_organizations_org_id_api_keys_get"


async def parsed(model_name: str, answer: Awaitable[Any]) -> dict[str, Any]:
    """Await an endpoint, check it parsed into the model the spec names, and give its data."""
    result = await answer
    assert type(result).__name__ == model_name, result
    data: dict[str, Any] = result.to_dict()
    return data


@pytest.mark.parametrize("period", [PAST, CURRENT])
async def test_freddy_client_reads_usage_of_every_key(
    freddy: Any, server: FakeFreddyServer, period: tuple[int, int]
) -> None:
    year, month = period
    for key_id in server.key_ids:
        usage = endpoint(USAGE)(server.org_id, key_id, client=freddy, month=month, year=year)
        same(await parsed("ApiKeyUsageDetail", usage), server.expected_usage(key_id, year, month), key_id)


@pytest.mark.parametrize("period", [PAST, CURRENT])
async def test_freddy_client_reads_daily_summary_and_limits(
    freddy: Any, server: FakeFreddyServer, period: tuple[int, int]
) -> None:
    year, month = period
    org = server.org_id
    daily = await parsed(
        "ApiKeyDailyUsageResponse", endpoint(DAILY)(org, client=freddy, year=year, month=month)
    )
    expected = server.expected_daily(year, month)
    same(daily, {**expected, "summary": without_generated_at(expected["summary"])})
    summary = await parsed(
        "ApiKeyUsageSummary", endpoint(SUMMARY)(org, client=freddy, year=year, month=month)
    )
    same(summary, server.expected_summary(year, month))
    limits = await parsed("UsageLimitsResponse", endpoint(LIMITS)(org, client=freddy, month=month, year=year))
    same(limits, server.expected_limits(year, month))


async def test_freddy_client_lists_every_key(freddy: Any, server: FakeFreddyServer) -> None:
    seen: list[Any] = []
    for page in (1, 2):
        listing = await parsed(
            "ApiKeyListResponse", endpoint(LISTING)(server.org_id, client=freddy, page=page)
        )
        assert (listing["total"], listing["page"], listing["page_size"]) == (25, page, 20)
        seen += listing["keys"]
    same(seen, server.expected_keys())


async def test_freddy_client_reads_an_invalid_parameter_as_its_422(
    freddy: Any, server: FakeFreddyServer
) -> None:
    error = await parsed(
        "HTTPValidationError", endpoint(DAILY)(server.org_id, client=freddy, year=2031, month=1)
    )
    assert [(item["loc"], item["type"]) for item in error["detail"]] == [
        (["query", "year"], "less_than_equal")
    ]
