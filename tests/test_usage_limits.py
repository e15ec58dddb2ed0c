"""The usage-limits and summary endpoints (API.md §4): models, both casings, nulls, exact money."""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Any

import pytest
from aioresponses import aioresponses

from freddy_async import (
    ApiKeyLimit,
    DailyUsageSummary,
    FreddyClient,
    LimitsSummary,
    LimitStatus,
    LimitUsage,
    NotFoundError,
    ResponseValidationError,
    UnprocessableEntityError,
    UsageLimits,
    YearMonth,
)

BASE = "https://api.aitronos.com"
LIMITS_PATH = "/v1/analytics/usage/limits/org_1"
SUMMARY_PATH = "/v1/analytics/api-keys/summary/org_1"
ANY_LIMITS = re.compile(r"^https://api\.aitronos\.com/v1/analytics/usage/limits/org_1.*$")

# API.md §4 as printed (the generated SDKs' snake_case), with a second key added.
LIMITS_SNAKE = """{"organization_limits": {"monthly_limit": 5000.0, "current_usage": 1234.56,
                         "utilization_percentage": 24.69, "remaining_budget": 3765.44, "status": "ok"},
 "api_limits": {"monthly_limit": null, "current_usage": 1234.56, "utilization_percentage": 0.0,
                "remaining_budget": 0.0, "status": "no_limit"},
 "api_key_limits": [{"api_key_id": "apikey_abc123", "api_key_name": "Production Key",
                     "monthly_limit": 500.0, "current_usage": 350.25,
                     "utilization_percentage": 70.05, "status": "ok"},
                    {"api_key_id": "ak_2", "api_key_name": "CI", "monthly_limit": null,
                     "current_usage": 884.31, "utilization_percentage": 0.0, "status": "no_limit"}],
 "summary": {"total_keys": 12, "keys_with_limits": 7, "keys_exceeded": 1, "overall_status": "warning"}}"""


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def _camel_body(snake_text: str) -> str:
    # Keys renamed in the text itself, so every number keeps its exact digits.
    return re.sub(r'"([a-z]+(?:_[a-z]+)+)":', lambda m: f'"{_camel(m[1])}":', snake_text)


EXPECTED = UsageLimits(
    organization_limits=LimitUsage(
        Decimal("5000.0"), Decimal("1234.56"), 24.69, Decimal("3765.44"), LimitStatus.OK
    ),
    api_limits=LimitUsage(None, Decimal("1234.56"), 0.0, Decimal("0.0"), LimitStatus.NO_LIMIT),
    api_key_limits=(
        ApiKeyLimit("apikey_abc123", "Production Key", Decimal("500.0"), Decimal("350.25"), 70.05,
                    LimitStatus.OK),
        ApiKeyLimit("ak_2", "CI", None, Decimal("884.31"), 0.0, LimitStatus.NO_LIMIT),
    ),
    summary=LimitsSummary(12, 7, 1, LimitStatus.WARNING),
)

SUMMARY_SNAKE = """{"organization_id": "org_1", "month": 11, "year": 2025,
 "total_api_key_requests": 25000, "total_api_key_cost": 6250.10, "average_cost_per_request": 0.2500,
 "total_synapses": 12500000.0, "total_neurons": 250000.0, "generated_at": "2025-11-15T10:30:00Z"}"""


@pytest.fixture
async def client() -> Any:
    async with FreddyClient("sk-test-0123456789") as c:
        yield c


@pytest.mark.parametrize("casing", ["snake", "camel"])
async def test_limits_read_from_either_casing(
    mock: aioresponses, client: FreddyClient, casing: str
) -> None:
    body = LIMITS_SNAKE if casing == "snake" else _camel_body(LIMITS_SNAKE)
    mock.get(f"{BASE}{LIMITS_PATH}?month=11&year=2025", body=body)

    limits = await client.get_usage_limits("org_1", month=11, year=2025)

    assert limits == EXPECTED
    # Money keeps the digits of the JSON text: no binary float in between.
    assert str(limits.api_key_limits[0].current_usage) == "350.25"
    assert str(limits.organization_limits.monthly_limit) == "5000.0"
    assert type(limits.api_key_limits[0].utilization_percentage) is float


def test_camel_body_helper_renames_every_key() -> None:
    camel = _camel_body(LIMITS_SNAKE)
    assert "_" not in "".join(re.findall(r'"([A-Za-z_]+)":', camel))
    assert "350.25" in camel


async def test_the_query_carries_only_what_was_given(mock: aioresponses, client: FreddyClient) -> None:
    mock.get(ANY_LIMITS, body=LIMITS_SNAKE, repeat=True)

    await client.get_usage_limits("org_1")
    await client.get_usage_limits("org_1", month=3)
    await client.get_usage_limits("org_1", year=2024)
    await client.get_usage_limits("org_1", month=3, year=2024)

    urls = [str(url) for (_, url) in mock.requests]
    assert urls == [
        f"{BASE}{LIMITS_PATH}",
        f"{BASE}{LIMITS_PATH}?month=3",
        f"{BASE}{LIMITS_PATH}?year=2024",
        f"{BASE}{LIMITS_PATH}?month=3&year=2024",
    ]


async def test_nulls_are_none(mock: aioresponses, client: FreddyClient) -> None:
    body = json.loads(LIMITS_SNAKE)
    body["organization_limits"].update(
        monthly_limit=None, utilization_percentage=None, remaining_budget=None, status="no_limit"
    )
    body["api_key_limits"][0].update(monthly_limit=None, utilization_percentage=None)
    # Optional fields may be absent, too.
    del body["api_limits"]["remaining_budget"]
    mock.get(f"{BASE}{LIMITS_PATH}", body=json.dumps(body))

    limits = await client.get_usage_limits("org_1")

    org = limits.organization_limits
    assert (org.monthly_limit, org.utilization_percentage, org.remaining_budget) == (None, None, None)
    assert limits.api_limits.remaining_budget is None
    assert limits.api_key_limits[0].monthly_limit is None
    assert limits.api_key_limits[0].utilization_percentage is None


async def test_negative_budgets_and_passed_limits_are_kept(mock: aioresponses, client: FreddyClient) -> None:
    body = LIMITS_SNAKE.replace('"remaining_budget": 3765.44', '"remaining_budget": -12.30').replace(
        '"utilization_percentage": 24.69', '"utilization_percentage": 100.25'
    )
    mock.get(f"{BASE}{LIMITS_PATH}", body=body)

    limits = await client.get_usage_limits("org_1")

    assert limits.organization_limits.remaining_budget == Decimal("-12.30")
    assert limits.organization_limits.utilization_percentage == 100.25


async def test_unknown_statuses_are_kept_as_strings(mock: aioresponses, client: FreddyClient) -> None:
    body = json.loads(LIMITS_SNAKE)
    body["organization_limits"]["status"] = "suspended"
    body["api_key_limits"][1]["status"] = "paused"
    body["summary"]["overall_status"] = "critical"
    mock.get(f"{BASE}{LIMITS_PATH}", body=json.dumps(body))

    limits = await client.get_usage_limits("org_1")

    assert limits.organization_limits.status == "suspended"
    assert limits.api_key_limits[0].status is LimitStatus.OK
    assert limits.api_key_limits[1].status == "paused"
    assert not isinstance(limits.api_key_limits[1].status, LimitStatus)
    assert limits.summary.overall_status == "critical"


async def test_key_costs_sum_exactly(mock: aioresponses, client: FreddyClient) -> None:
    # 0.1 + 0.2 is 0.30000000000000004 in binary floats; here it must be exactly 0.3.
    keys = ", ".join(
        f'{{"api_key_id": "k{i}", "api_key_name": "", "monthly_limit": null, "current_usage": {cost}, '
        '"utilization_percentage": 0, "status": "no_limit"}'
        for i, cost in enumerate(["0.1", "0.2", "1234567890123.45", "0.00"])
    )
    body = json.loads(LIMITS_SNAKE)
    body["api_key_limits"] = "KEYS"
    text = json.dumps(body).replace('"KEYS"', f"[{keys}]")
    mock.get(f"{BASE}{LIMITS_PATH}", body=text)

    limits = await client.get_usage_limits("org_1")

    total = sum((k.current_usage for k in limits.api_key_limits), Decimal(0))
    assert total == Decimal("1234567890123.75")
    assert [str(k.current_usage) for k in limits.api_key_limits] == ["0.1", "0.2", "1234567890123.45", "0.00"]
    assert limits.api_key_limits[0].utilization_percentage == 0.0


async def test_no_keys_is_an_empty_tuple(mock: aioresponses, client: FreddyClient) -> None:
    body = json.loads(LIMITS_SNAKE)
    body["api_key_limits"] = []
    mock.get(f"{BASE}{LIMITS_PATH}", body=json.dumps(body))

    limits = await client.get_usage_limits("org_1")

    assert limits.api_key_limits == ()


@pytest.mark.parametrize(
    ("change", "path"),
    [
        (lambda b: b["api_key_limits"][1].pop("current_usage"), "api_key_limits[1].currentUsage"),
        (lambda b: b["api_key_limits"][0].update(current_usage="350.25"), "api_key_limits[0].current_usage"),
        (lambda b: b["summary"].update(total_keys=-1), "summary.total_keys"),
        (lambda b: b.pop("organization_limits"), "organizationLimits"),
        (lambda b: b["api_limits"].update(status=None), "api_limits.status"),
    ],
)
async def test_a_body_that_does_not_fit_names_the_field(
    mock: aioresponses, client: FreddyClient, change: Any, path: str
) -> None:
    body = json.loads(LIMITS_SNAKE)
    change(body)
    mock.get(f"{BASE}{LIMITS_PATH}", body=json.dumps(body))

    with pytest.raises(ResponseValidationError) as caught:
        await client.get_usage_limits("org_1")

    # A field that is there is named as the body spells it; a missing one in camelCase.
    assert caught.value.path == path


async def test_a_fastapi_422_is_typed(mock: aioresponses, client: FreddyClient) -> None:
    detail = {"detail": [{"loc": ["query", "month"], "msg": "Input should be less than or equal to 12",
                          "type": "less_than_equal"}]}
    mock.get(f"{BASE}{LIMITS_PATH}?month=12", status=422, body=json.dumps(detail))

    with pytest.raises(UnprocessableEntityError):
        await client.get_usage_limits("org_1", month=12)


@pytest.mark.parametrize(
    "kwargs",
    [{"org_id": ""}, {"org_id": "org/1"}, {"org_id": 5}, {"month": 13}, {"month": 0}, {"year": "2025"},
     {"month": True}],
)
async def test_bad_arguments_raise_before_any_request(
    mock: aioresponses, client: FreddyClient, kwargs: dict[str, Any]
) -> None:
    args: dict[str, Any] = {"org_id": "org_1", **kwargs}
    org = args.pop("org_id")
    with pytest.raises(ValueError, match=r"org_id|month|year"):
        await client.get_usage_limits(org, **args)
    with pytest.raises(ValueError, match=r"org_id|month|year"):
        await client.get_api_key_usage_summary(org, **args)
    assert not mock.requests


async def test_an_org_id_is_quoted_as_one_segment(mock: aioresponses, client: FreddyClient) -> None:
    mock.get(re.compile(r"^https://.*$"), body=LIMITS_SNAKE)
    mock.get(re.compile(r"^https://.*$"), body=SUMMARY_SNAKE)

    await client.get_usage_limits("org:1+2")
    await client.get_api_key_usage_summary("org:1+2")

    assert [url.raw_path for (_, url) in mock.requests] == [
        "/v1/analytics/usage/limits/org%3A1%2B2",
        "/v1/analytics/api-keys/summary/org%3A1%2B2",
    ]


# -- the summary -----------------------------------------------------------------------------


@pytest.mark.parametrize("casing", ["snake", "camel"])
async def test_summary_reads_from_either_casing(
    mock: aioresponses, client: FreddyClient, casing: str
) -> None:
    body = SUMMARY_SNAKE if casing == "snake" else _camel_body(SUMMARY_SNAKE)
    mock.get(f"{BASE}{SUMMARY_PATH}?month=11&year=2025", body=body)

    summary = await client.get_api_key_usage_summary("org_1", year=2025, month=11)

    assert isinstance(summary, DailyUsageSummary)
    assert summary.total_api_key_cost == Decimal("6250.10")
    assert str(summary.total_api_key_cost) == "6250.10"
    assert summary.average_cost_per_request == Decimal("0.2500")
    assert (summary.organization_id, summary.year, summary.month) == ("org_1", 2025, 11)
    assert summary.total_api_key_requests == 25000
    assert summary.total_synapses == 12_500_000.0
    assert summary.generated_at is not None and summary.generated_at.year == 2025


async def test_summary_without_optional_fields(mock: aioresponses, client: FreddyClient) -> None:
    body = json.loads(SUMMARY_SNAKE, parse_float=Decimal)
    del body["generated_at"]
    body["average_cost_per_request"] = None
    text = json.dumps(body, default=str).replace('"6250.10"', "6250.10")
    text = text.replace('"12500000.0"', "12500000.0").replace('"250000.0"', "250000.0")
    mock.get(f"{BASE}{SUMMARY_PATH}", body=text)

    summary = await client.get_api_key_usage_summary("org_1")

    assert summary.generated_at is None
    assert summary.average_cost_per_request is None
    assert summary.total_api_key_cost == Decimal("6250.10")


# -- many months -----------------------------------------------------------------------------


def _limits_with_cost(cost: str) -> str:
    return LIMITS_SNAKE.replace("350.25", cost)


async def test_iter_usage_limits_yields_oldest_first(mock: aioresponses, client: FreddyClient) -> None:
    months: list[YearMonth | str | tuple[int, int]] = ["2025-03", (2025, 1), YearMonth(2024, 12), "2025-01"]
    for (year, month), cost in [((2024, 12), "1.00"), ((2025, 1), "2.00"), ((2025, 3), "3.00")]:
        mock.get(f"{BASE}{LIMITS_PATH}?month={month}&year={year}", body=_limits_with_cost(cost))

    got = [limits async for limits in client.iter_usage_limits("org_1", months=months)]

    assert [str(g.api_key_limits[0].current_usage) for g in got] == ["1.00", "2.00", "3.00"]
    # One request a month: the duplicate month is fetched once.
    assert sum(len(calls) for calls in mock.requests.values()) == 3
    # What the docstring promises: the sorted, de-duplicated months pair with the answers.
    paired = dict(zip(sorted({YearMonth.coerce(m) for m in months}), got, strict=True))
    assert paired[YearMonth(2025, 3)].api_key_limits[0].current_usage == Decimal("3.00")


async def test_iter_usage_limits_raises_the_first_failure(mock: aioresponses, client: FreddyClient) -> None:
    mock.get(f"{BASE}{LIMITS_PATH}?month=1&year=2025", body=_limits_with_cost("1.00"))
    not_found = json.dumps({"success": False, "error": {"code": "NOT_FOUND", "message": "no", "status": 404}})
    mock.get(f"{BASE}{LIMITS_PATH}?month=2&year=2025", status=404, body=not_found)
    mock.get(f"{BASE}{LIMITS_PATH}?month=3&year=2025", body=_limits_with_cost("3.00"))

    got: list[UsageLimits] = []

    async def collect() -> None:
        async for limits in client.iter_usage_limits("org_1", months=YearMonth.range("2025-01", "2025-03")):
            got.append(limits)

    with pytest.raises(NotFoundError):
        await collect()

    assert [str(g.api_key_limits[0].current_usage) for g in got] == ["1.00"]


async def test_iter_usage_limits_checks_its_arguments_first(mock: aioresponses, client: FreddyClient) -> None:
    with pytest.raises(ValueError, match="empty"):
        client.iter_usage_limits("org_1", months=[])
    with pytest.raises(ValueError, match="month"):
        client.iter_usage_limits("org_1", months=["2025-13"])
    with pytest.raises(ValueError, match="org_id"):
        client.iter_usage_limits("", months=["2025-01"])
    assert not mock.requests
