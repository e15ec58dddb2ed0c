"""JSON bodies to models: both casings, exact money, nullable fields, and strict validation.

Every body goes through the public client against aioresponses, as a caller would see it. Bodies
are sent as raw JSON text (never ``payload=``), so that ``500.00`` reaches the client as written.
"""

from __future__ import annotations

import json
import math
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from aioresponses import aioresponses

from freddy_async import (
    ApiKeyDailyUsage,
    ApiKeyUsage,
    DailyUsage,
    DailyUsageSummary,
    FreddyClient,
    FreddyError,
    LimitStatus,
    ResponseValidationError,
    UsageLimit,
    UsagePeriod,
    UsageTotals,
)
from freddy_async._clock import instant_waits
from freddy_async._convert import parse_json, structure

API_KEY = "sk-test-0123456789abcdef"
USAGE_URL = "https://api.aitronos.com/v1/analytics/api-keys/usage/org_123/apikey_abc123?month=11&year=2025"
DAILY_URL = "https://api.aitronos.com/v1/analytics/api-keys/daily/org_abc123?month=11&year=2025"

# -- the seed bodies, verbatim from the documentation pages ------------------------------------

SEED_USAGE = """{
  "apiKeyId": "apikey_abc123", "apiKeyName": "Production Key", "organizationId": "org_123",
  "month": 11, "year": 2025,
  "usage": {"totalRequests": 1250, "totalCost": 350.25, "totalSynapses": 125000,
            "totalNeurons": 2500000, "averageCostPerRequest": 0.28},
  "limit": {"monthlyLimit": 500.00, "utilizationPercentage": 70.05,
            "remainingBudget": 149.75, "status": "ok"}
}"""

SNAKE_USAGE = """{
  "api_key_id": "apikey_abc123", "api_key_name": "Production Key", "organization_id": "org_123",
  "month": 11, "year": 2025,
  "usage": {"total_requests": 1250, "total_cost": 350.25, "total_synapses": 125000,
            "total_neurons": 2500000, "average_cost_per_request": 0.28},
  "limit": {"monthly_limit": 500.00, "utilization_percentage": 70.05,
            "remaining_budget": 149.75, "status": "ok"}
}"""

SEED_DAILY = """{
  "organization_id": "org_abc123",
  "period": {"year": 2025, "month": 11, "startDate": "2025-11-01", "endDate": "2025-11-30",
             "daysInMonth": 30, "daysWithApiUsage": 28},
  "dailyUsage": [
    {"date": "2025-11-15", "requests": 850, "cost": 212.5, "synapses": 425000.0, "neurons": 8500.0},
    {"date": "2025-11-14", "requests": 820, "cost": 205.0, "synapses": 410000.0, "neurons": 8200.0}
  ],
  "summary": {"organization_id": "org_abc123", "month": 11, "year": 2025,
              "totalApiKeyRequests": 25000, "totalApiKeyCost": 6250.0, "averageCostPerRequest": 0.25,
              "total_synapses": 12500000.0, "totalNeurons": 250000.0,
              "generatedAt": "2025-11-15T10:30:00Z"}
}"""

CAMEL_DAILY = """{
  "organizationId": "org_abc123",
  "period": {"year": 2025, "month": 11, "startDate": "2025-11-01", "endDate": "2025-11-30",
             "daysInMonth": 30, "daysWithApiUsage": 28},
  "dailyUsage": [
    {"date": "2025-11-15", "requests": 850, "cost": 212.5, "synapses": 425000.0, "neurons": 8500.0},
    {"date": "2025-11-14", "requests": 820, "cost": 205.0, "synapses": 410000.0, "neurons": 8200.0}
  ],
  "summary": {"organizationId": "org_abc123", "month": 11, "year": 2025,
              "totalApiKeyRequests": 25000, "totalApiKeyCost": 6250.0, "averageCostPerRequest": 0.25,
              "totalSynapses": 12500000.0, "totalNeurons": 250000.0,
              "generatedAt": "2025-11-15T10:30:00Z"}
}"""

SNAKE_DAILY = """{
  "organization_id": "org_abc123",
  "period": {"year": 2025, "month": 11, "start_date": "2025-11-01", "end_date": "2025-11-30",
             "days_in_month": 30, "days_with_api_usage": 28},
  "daily_usage": [
    {"date": "2025-11-15", "requests": 850, "cost": 212.5, "synapses": 425000.0, "neurons": 8500.0},
    {"date": "2025-11-14", "requests": 820, "cost": 205.0, "synapses": 410000.0, "neurons": 8200.0}
  ],
  "summary": {"organization_id": "org_abc123", "month": 11, "year": 2025,
              "total_api_key_requests": 25000, "total_api_key_cost": 6250.0,
              "average_cost_per_request": 0.25, "total_synapses": 12500000.0, "total_neurons": 250000.0,
              "generated_at": "2025-11-15T10:30:00Z"}
}"""

EXPECTED_USAGE = ApiKeyUsage(
    api_key_id="apikey_abc123",
    api_key_name="Production Key",
    organization_id="org_123",
    month=11,
    year=2025,
    usage=UsageTotals(
        total_requests=1250,
        total_cost=Decimal("350.25"),
        total_synapses=125000.0,
        total_neurons=2500000.0,
        average_cost_per_request=Decimal("0.28"),
    ),
    limit=UsageLimit(
        monthly_limit=Decimal("500.00"),
        utilization_percentage=70.05,
        remaining_budget=Decimal("149.75"),
        status=LimitStatus.OK,
    ),
)

EXPECTED_DAILY = ApiKeyDailyUsage(
    organization_id="org_abc123",
    period=UsagePeriod(
        year=2025,
        month=11,
        start_date=date(2025, 11, 1),
        end_date=date(2025, 11, 30),
        days_in_month=30,
        days_with_api_usage=28,
    ),
    daily_usage=(
        DailyUsage(
            date=date(2025, 11, 15),
            requests=850,
            cost=Decimal("212.5"),
            synapses=425000.0,
            neurons=8500.0,
        ),
        DailyUsage(
            date=date(2025, 11, 14),
            requests=820,
            cost=Decimal("205.0"),
            synapses=410000.0,
            neurons=8200.0,
        ),
    ),
    summary=DailyUsageSummary(
        organization_id="org_abc123",
        month=11,
        year=2025,
        total_api_key_requests=25000,
        total_api_key_cost=Decimal("6250.0"),
        average_cost_per_request=Decimal("0.25"),
        total_synapses=12500000.0,
        total_neurons=250000.0,
        generated_at=datetime(2025, 11, 15, 10, 30, tzinfo=timezone.utc),
    ),
)


# -- helpers -----------------------------------------------------------------------------------


class Raw(str):
    """Text emitted into a body as is: ``Raw("NaN")``, ``Raw("500.00")``."""


def dump(value: Any) -> str:
    """JSON text of ``value``, writing ``Decimal`` and ``Raw`` values exactly as their text."""
    if isinstance(value, Raw):
        return str(value)
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)}: {dump(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(dump(v) for v in value) + "]"
    return json.dumps(value)


def load(text: str) -> Any:
    return json.loads(text, parse_float=Decimal)


def edit(text: str, path: str, value: Any = ..., *, rename: str | None = None) -> str:
    """A copy of body ``text`` with the field at dotted ``path`` set, deleted (``value`` omitted)
    or renamed. ``path`` parts that are digits index lists."""
    data = load(text)
    *parents, last = path.split(".")
    node = data
    for part in parents:
        node = node[int(part)] if part.isdigit() else node[part]
    if rename is not None:
        node[rename] = node.pop(last)
    elif value is ...:
        del node[last]
    else:
        node[int(last) if last.isdigit() else last] = value
    return dump(data)


async def fetch_usage(mock: aioresponses, body: str) -> ApiKeyUsage:
    mock.get(USAGE_URL, body=body)
    async with FreddyClient(API_KEY, max_retries=0) as client:
        return await client.get_api_key_usage("org_123", "apikey_abc123", month=11, year=2025)


async def fetch_daily(mock: aioresponses, body: str) -> ApiKeyDailyUsage:
    mock.get(DAILY_URL, body=body)
    async with FreddyClient(API_KEY, max_retries=0) as client:
        return await client.get_api_key_daily_usage("org_abc123", year=2025, month=11)


# -- the usage body ----------------------------------------------------------------------------


async def test_seed_usage_body_gives_every_field(mock: aioresponses) -> None:
    result = await fetch_usage(mock, SEED_USAGE)

    assert result == EXPECTED_USAGE
    assert result.api_key_id == "apikey_abc123"
    assert result.api_key_name == "Production Key"
    assert result.organization_id == "org_123"
    assert (result.month, result.year) == (11, 2025)
    assert type(result.month) is int
    assert type(result.year) is int
    totals = result.usage
    assert totals.total_requests == 1250
    assert type(totals.total_requests) is int
    assert type(totals.total_cost) is Decimal
    assert str(totals.total_cost) == "350.25"
    assert totals.total_synapses == 125000.0
    assert type(totals.total_synapses) is float
    assert totals.total_neurons == 2500000.0
    assert type(totals.total_neurons) is float
    assert type(totals.average_cost_per_request) is Decimal
    assert str(totals.average_cost_per_request) == "0.28"
    limit = result.limit
    assert type(limit.monthly_limit) is Decimal
    assert str(limit.monthly_limit) == "500.00"
    assert limit.utilization_percentage == 70.05
    assert type(limit.utilization_percentage) is float
    assert type(limit.remaining_budget) is Decimal
    assert str(limit.remaining_budget) == "149.75"
    assert limit.status is LimitStatus.OK


async def test_snake_case_usage_body_equals_camel_case(mock: aioresponses) -> None:
    camel = await fetch_usage(mock, SEED_USAGE)
    snake = await fetch_usage(mock, SNAKE_USAGE)

    assert snake == camel == EXPECTED_USAGE


USAGE_KEYS = [
    ("apiKeyId", "api_key_id"),
    ("apiKeyName", "api_key_name"),
    ("organizationId", "organization_id"),
    ("usage.totalRequests", "total_requests"),
    ("usage.totalCost", "total_cost"),
    ("usage.totalSynapses", "total_synapses"),
    ("usage.totalNeurons", "total_neurons"),
    ("usage.averageCostPerRequest", "average_cost_per_request"),
    ("limit.monthlyLimit", "monthly_limit"),
    ("limit.utilizationPercentage", "utilization_percentage"),
    ("limit.remainingBudget", "remaining_budget"),
]


@pytest.mark.parametrize(("path", "snake"), USAGE_KEYS)
async def test_each_usage_field_alone_in_snake_case(mock: aioresponses, path: str, snake: str) -> None:
    body = edit(SEED_USAGE, path, rename=snake)
    assert snake in body

    assert await fetch_usage(mock, body) == EXPECTED_USAGE


@pytest.mark.parametrize(("path", "snake"), USAGE_KEYS)
async def test_each_usage_field_alone_in_camel_case(mock: aioresponses, path: str, snake: str) -> None:
    snake_path = ".".join([*path.split(".")[:-1], snake])
    body = edit(SNAKE_USAGE, snake_path, rename=path.split(".")[-1])

    assert await fetch_usage(mock, body) == EXPECTED_USAGE


async def test_a_field_spelled_both_ways_is_read_from_its_snake_case_key(mock: aioresponses) -> None:
    body = edit(SNAKE_USAGE, "usage.totalCost", 999.99)

    assert (await fetch_usage(mock, body)).usage.total_cost == Decimal("350.25")


@pytest.mark.parametrize(
    ("null_path", "other_path"),
    [("usage.total_cost", "usage.totalCost"), ("usage.totalCost", "usage.total_cost")],
    ids=["snake null", "camel null"],
)
async def test_a_null_spelling_does_not_hide_the_other(
    mock: aioresponses, null_path: str, other_path: str
) -> None:
    body = edit(edit(SNAKE_USAGE, "usage.total_cost"), null_path, None)
    body = edit(body, other_path, 350.25)

    assert await fetch_usage(mock, body) == EXPECTED_USAGE


async def test_a_wrong_value_under_the_second_spelling_is_named_by_it(mock: aioresponses) -> None:
    body = edit(edit(SNAKE_USAGE, "usage.total_cost", None), "usage.totalCost", "lots")

    with pytest.raises(ResponseValidationError) as caught:
        await fetch_usage(mock, body)
    assert caught.value.path == "usage.totalCost"


# -- money -------------------------------------------------------------------------------------


async def test_money_is_the_decimal_of_the_json_text(mock: aioresponses) -> None:
    result = await fetch_usage(mock, SEED_USAGE)

    assert result.usage.total_cost == Decimal("350.25")
    assert result.limit.monthly_limit == Decimal("500.00")
    assert result.limit.monthly_limit.as_tuple() == Decimal("500.00").as_tuple()
    assert result.limit.remaining_budget == Decimal("149.75")
    assert result.usage.average_cost_per_request == Decimal("0.28")
    assert result.usage.average_cost_per_request != Decimal.from_float(0.28)  # no binary tail


async def test_sum_of_ten_thousand_seed_costs_is_exact(mock: aioresponses) -> None:
    result = await fetch_usage(mock, SEED_USAGE)
    average = result.usage.average_cost_per_request
    assert average is not None

    total = sum((result.usage.total_cost for _ in range(10_000)), Decimal(0))
    averages = sum((average for _ in range(10_000)), Decimal(0))

    assert total == Decimal("3502500.00")
    assert str(total) == "3502500.00"
    assert str(averages) == "2800.00"
    # What binary floats would have given, even summed with correct rounding (math.fsum), so
    # on every Python whatever algorithm its sum() uses.
    assert math.fsum(0.28 for _ in range(10_000)) != 2800.0


async def test_daily_costs_sum_exactly(mock: aioresponses) -> None:
    # aioresponses cannot feed a body above 64 KiB, hence 500 rows rather than 10,000.
    # 2.01 is a cost whose float sum is off even when correctly rounded (math.fsum), so the
    # check below holds on every Python, whatever algorithm its sum() uses.
    row = {"date": "2025-11-15", "requests": 1, "cost": Raw("2.01"), "synapses": 1.0, "neurons": 1.0}
    data = load(SEED_DAILY)
    data["dailyUsage"] = [row] * 500

    result = await fetch_daily(mock, dump(data))

    assert len(result.daily_usage) == 500
    assert all(type(day.cost) is Decimal and day.cost == Decimal("2.01") for day in result.daily_usage)
    assert str(sum((day.cost for day in result.daily_usage), Decimal(0))) == "1005.00"
    assert math.fsum(float(day.cost) for day in result.daily_usage) != 1005.0  # what floats give


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("350.25", "350.25"),
        ("500.00", "500.00"),
        ("0.1", "0.1"),
        ("0", "0"),
        ("6250", "6250"),
        ("1e2", "1E+2"),
        ("-12.30", "-12.30"),
        ("0.000000000000000001", "1E-18"),
    ],
)
async def test_money_keeps_every_digit(mock: aioresponses, text: str, expected: str) -> None:
    body = edit(SEED_USAGE, "limit.remainingBudget", Raw(text))

    result = await fetch_usage(mock, body)

    assert result.limit.remaining_budget is not None
    assert str(result.limit.remaining_budget) == expected


# -- the daily body ----------------------------------------------------------------------------


async def test_seed_daily_body_with_mixed_casing_gives_every_field(mock: aioresponses) -> None:
    result = await fetch_daily(mock, SEED_DAILY)

    assert result == EXPECTED_DAILY
    assert result.organization_id == "org_abc123"
    assert type(result.period.start_date) is date
    assert type(result.period.end_date) is date
    assert result.period.days_in_month == 30
    assert result.period.days_with_api_usage == 28
    assert [day.date for day in result.daily_usage] == [date(2025, 11, 15), date(2025, 11, 14)]
    assert all(type(day.date) is date for day in result.daily_usage)
    assert [str(day.cost) for day in result.daily_usage] == ["212.5", "205.0"]
    assert [day.requests for day in result.daily_usage] == [850, 820]
    summary = result.summary
    assert summary.total_api_key_requests == 25000
    assert str(summary.total_api_key_cost) == "6250.0"
    assert summary.average_cost_per_request == Decimal("0.25")
    assert summary.total_synapses == 12500000.0
    assert summary.total_neurons == 250000.0
    assert isinstance(result.daily_usage, tuple)


async def test_generated_at_is_an_aware_utc_datetime(mock: aioresponses) -> None:
    generated = (await fetch_daily(mock, SEED_DAILY)).summary.generated_at

    assert generated == datetime(2025, 11, 15, 10, 30, tzinfo=timezone.utc)
    assert generated is not None
    assert generated.tzinfo is not None
    assert generated.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2025-11-15T10:30:00Z", datetime(2025, 11, 15, 10, 30, tzinfo=timezone.utc)),
        ("2025-11-15T10:30:00+00:00", datetime(2025, 11, 15, 10, 30, tzinfo=timezone.utc)),
        ("2025-11-15T10:30:00.123456Z", datetime(2025, 11, 15, 10, 30, 0, 123456, tzinfo=timezone.utc)),
        ("2025-11-15T11:30:00+01:00", datetime(2025, 11, 15, 10, 30, tzinfo=timezone.utc)),
        # No offset: this API's timestamps are UTC, and callers only ever get aware datetimes.
        ("2025-11-15T10:30:00", datetime(2025, 11, 15, 10, 30, tzinfo=timezone.utc)),
    ],
)
async def test_generated_at_forms(mock: aioresponses, text: str, expected: datetime) -> None:
    body = edit(SEED_DAILY, "summary.generatedAt", text)

    generated = (await fetch_daily(mock, body)).summary.generated_at

    assert generated == expected
    assert generated is not None
    assert generated.utcoffset() is not None


@pytest.mark.parametrize("body", [CAMEL_DAILY, SNAKE_DAILY], ids=["camel", "snake"])
async def test_daily_body_in_one_casing_equals_the_seed(mock: aioresponses, body: str) -> None:
    assert await fetch_daily(mock, body) == EXPECTED_DAILY


async def test_daily_rows_keep_the_server_order(mock: aioresponses) -> None:
    data = load(SEED_DAILY)
    data["dailyUsage"].reverse()

    result = await fetch_daily(mock, dump(data))

    assert [day.date.day for day in result.daily_usage] == [14, 15]


async def test_empty_daily_usage_list(mock: aioresponses) -> None:
    result = await fetch_daily(mock, edit(SEED_DAILY, "dailyUsage", []))

    assert result.daily_usage == ()


# -- nullable, absent and unusual values -------------------------------------------------------


async def test_no_limit_nulls_become_none(mock: aioresponses) -> None:
    body = edit(SEED_USAGE, "limit.monthlyLimit", None)
    body = edit(body, "limit.remainingBudget", None)
    body = edit(body, "limit.status", "no_limit")

    limit = (await fetch_usage(mock, body)).limit

    assert limit == UsageLimit(
        monthly_limit=None,
        utilization_percentage=70.05,
        remaining_budget=None,
        status=LimitStatus.NO_LIMIT,
    )


@pytest.mark.parametrize(
    "path",
    [
        "usage.averageCostPerRequest",
        "limit.monthlyLimit",
        "limit.remainingBudget",
        "limit.utilizationPercentage",
    ],
)
@pytest.mark.parametrize("how", ["absent", "null"])
async def test_optional_usage_fields_absent_or_null_are_none(
    mock: aioresponses, path: str, how: str
) -> None:
    body = edit(SEED_USAGE, path) if how == "absent" else edit(SEED_USAGE, path, None)

    result = await fetch_usage(mock, body)

    field = path.split(".")[1]
    values = {
        "averageCostPerRequest": result.usage.average_cost_per_request,
        "monthlyLimit": result.limit.monthly_limit,
        "remainingBudget": result.limit.remaining_budget,
        "utilizationPercentage": result.limit.utilization_percentage,
    }
    assert values.pop(field) is None
    assert all(value is not None for value in values.values())


@pytest.mark.parametrize("path", ["summary.averageCostPerRequest", "summary.generatedAt"])
@pytest.mark.parametrize("how", ["absent", "null"])
async def test_optional_summary_fields_absent_or_null_are_none(
    mock: aioresponses, path: str, how: str
) -> None:
    body = edit(SEED_DAILY, path) if how == "absent" else edit(SEED_DAILY, path, None)

    summary = (await fetch_daily(mock, body)).summary

    if path.endswith("averageCostPerRequest"):
        assert summary.average_cost_per_request is None
        assert summary.generated_at is not None
    else:
        assert summary.generated_at is None
        assert summary.average_cost_per_request == Decimal("0.25")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ok", LimitStatus.OK),
        ("warning", LimitStatus.WARNING),
        ("exceeded", LimitStatus.EXCEEDED),
        ("no_limit", LimitStatus.NO_LIMIT),
    ],
)
async def test_known_status_is_a_limit_status(mock: aioresponses, text: str, expected: LimitStatus) -> None:
    status = (await fetch_usage(mock, edit(SEED_USAGE, "limit.status", text))).limit.status

    assert status is expected
    assert status == text
    assert str(status) == text


@pytest.mark.parametrize("text", ["paused", "OK", "", "over_budget"])
async def test_unknown_status_is_kept_as_plain_string(mock: aioresponses, text: str) -> None:
    status = (await fetch_usage(mock, edit(SEED_USAGE, "limit.status", text))).limit.status

    assert status == text
    assert type(status) is str


@pytest.mark.parametrize(
    ("member", "text"),
    [(LimitStatus.OK, "ok"), (LimitStatus.WARNING, "warning"), (LimitStatus.EXCEEDED, "exceeded"),
     (LimitStatus.NO_LIMIT, "no_limit")],
)
def test_limit_status_is_a_str_enum(member: LimitStatus, text: str) -> None:
    assert member == text
    assert isinstance(member, str)
    assert member.value == text
    assert str(member) == text
    assert f"{member}" == text
    assert LimitStatus(text) is member


def test_limit_status_members() -> None:
    assert [member.value for member in LimitStatus] == ["ok", "warning", "exceeded", "no_limit"]


async def test_unknown_extra_fields_are_ignored(mock: aioresponses) -> None:
    data = load(SEED_USAGE)
    data["brandNewField"] = {"nested": [1, 2, 3]}
    data["currency"] = "CHF"
    data["usage"]["totalTokens"] = "not a number, and nobody asked"
    data["limit"]["limitType"] = None

    assert await fetch_usage(mock, dump(data)) == EXPECTED_USAGE


async def test_unknown_extra_fields_in_the_daily_body_are_ignored(mock: aioresponses) -> None:
    data = load(SEED_DAILY)
    data["success"] = True
    data["period"]["timezone"] = "UTC"
    data["dailyUsage"][1]["weekday"] = "Friday"
    data["summary"]["currency"] = "CHF"

    assert await fetch_daily(mock, dump(data)) == EXPECTED_DAILY


async def test_over_limit_values_are_accepted(mock: aioresponses) -> None:
    body = edit(SEED_USAGE, "limit.remainingBudget", Raw("-25.50"))
    body = edit(body, "limit.utilizationPercentage", Raw("105.1"))
    body = edit(body, "limit.status", "exceeded")

    limit = (await fetch_usage(mock, body)).limit

    assert limit.remaining_budget == Decimal("-25.50")
    assert str(limit.remaining_budget) == "-25.50"
    assert limit.utilization_percentage == 105.1
    assert limit.status is LimitStatus.EXCEEDED


@pytest.mark.parametrize(
    ("average", "expected"),
    [(Raw("0"), Decimal(0)), (Raw("0.0"), Decimal("0.0")), (..., None)],
    ids=["zero", "zero-point-zero", "absent"],
)
async def test_key_without_traffic(mock: aioresponses, average: Any, expected: Decimal | None) -> None:
    usage: dict[str, Any] = {"totalRequests": 0, "totalCost": Raw("0"), "totalSynapses": 0, "totalNeurons": 0}
    if average is not ...:
        usage["averageCostPerRequest"] = average
    body = edit(SEED_USAGE, "usage", usage)

    totals = (await fetch_usage(mock, body)).usage

    assert totals == UsageTotals(
        total_requests=0,
        total_cost=Decimal(0),
        total_synapses=0.0,
        total_neurons=0.0,
        average_cost_per_request=expected,
    )
    assert type(totals.total_cost) is Decimal
    assert type(totals.total_synapses) is float


async def test_integers_for_money_and_floats_for_counts(mock: aioresponses) -> None:
    body = edit(SEED_DAILY, "summary.totalApiKeyCost", 6250)

    summary = (await fetch_daily(mock, body)).summary

    assert summary.total_api_key_cost == Decimal(6250)
    assert type(summary.total_api_key_cost) is Decimal


# -- bodies that do not fit: ResponseValidationError naming the field ---------------------------

USAGE_BAD_BODIES: list[tuple[str, str, str]] = [
    ("missing-total-cost", edit(SEED_USAGE, "usage.totalCost"), "usage.totalCost"),
    ("missing-usage", edit(SEED_USAGE, "usage"), "usage"),
    ("missing-api-key-id", edit(SEED_USAGE, "apiKeyId"), "apiKeyId"),
    ("missing-status", edit(SEED_USAGE, "limit.status"), "limit.status"),
    ("usage-not-object", edit(SEED_USAGE, "usage", [1, 2]), "usage"),
    ("required-null", edit(SEED_USAGE, "apiKeyName", None), "apiKeyName"),
    ("cost-null", edit(SEED_USAGE, "usage.totalCost", None), "usage.totalCost"),
    ("cost-string", edit(SEED_USAGE, "usage.totalCost", "350.25"), "usage.totalCost"),
    ("requests-string", edit(SEED_USAGE, "usage.totalRequests", "1250"), "usage.totalRequests"),
    ("synapses-string", edit(SEED_USAGE, "usage.totalSynapses", "125000"), "usage.totalSynapses"),
    ("utilization-string", edit(SEED_USAGE, "limit.utilizationPercentage", "70%"),
     "limit.utilizationPercentage"),
    ("id-number", edit(SEED_USAGE, "apiKeyId", 123), "apiKeyId"),
    ("requests-bool", edit(SEED_USAGE, "usage.totalRequests", True), "usage.totalRequests"),
    ("month-bool", edit(SEED_USAGE, "month", True), "month"),
    ("cost-bool", edit(SEED_USAGE, "usage.totalCost", False), "usage.totalCost"),
    ("neurons-bool", edit(SEED_USAGE, "usage.totalNeurons", True), "usage.totalNeurons"),
    ("requests-fraction", edit(SEED_USAGE, "usage.totalRequests", Raw("12.5")), "usage.totalRequests"),
    ("cost-nan", edit(SEED_USAGE, "usage.totalCost", Raw("NaN")), "usage.totalCost"),
    ("cost-infinity", edit(SEED_USAGE, "usage.totalCost", Raw("Infinity")), "usage.totalCost"),
    ("budget-minus-infinity", edit(SEED_USAGE, "limit.remainingBudget", Raw("-Infinity")),
     "limit.remainingBudget"),
    ("utilization-nan", edit(SEED_USAGE, "limit.utilizationPercentage", Raw("NaN")),
     "limit.utilizationPercentage"),
    ("synapses-infinity", edit(SEED_USAGE, "usage.totalSynapses", Raw("Infinity")), "usage.totalSynapses"),
    ("requests-nan", edit(SEED_USAGE, "usage.totalRequests", Raw("NaN")), "usage.totalRequests"),
    ("synapses-overflow", edit(SEED_USAGE, "usage.totalSynapses", Raw("1e400")), "usage.totalSynapses"),
    ("requests-negative", edit(SEED_USAGE, "usage.totalRequests", -1), "usage.totalRequests"),
    ("synapses-negative", edit(SEED_USAGE, "usage.totalSynapses", Raw("-1.5")), "usage.totalSynapses"),
    ("neurons-negative", edit(SEED_USAGE, "usage.totalNeurons", -2500000), "usage.totalNeurons"),
    ("requests-huge", edit(SEED_USAGE, "usage.totalRequests", 2**64), "usage.totalRequests"),
    ("status-null", edit(SEED_USAGE, "limit.status", None), "limit.status"),
    ("status-number", edit(SEED_USAGE, "limit.status", 1), "limit.status"),
    # The path names the field as the body spells it.
    ("snake-spelled", edit(SNAKE_USAGE, "usage.total_cost", "x"), "usage.total_cost"),
    ("snake-missing", edit(SNAKE_USAGE, "usage.total_cost"), "usage.totalCost"),
]


@pytest.mark.parametrize(
    ("body", "path"), [pytest.param(b, p, id=i) for i, b, p in USAGE_BAD_BODIES]
)
async def test_usage_body_that_does_not_fit_names_the_field(
    mock: aioresponses, body: str, path: str
) -> None:
    with pytest.raises(ResponseValidationError) as info:
        await fetch_usage(mock, body)

    assert info.value.path == path
    assert str(info.value).startswith(f"{path}: ")
    assert info.value.__cause__ is None
    assert info.value.__suppress_context__


DAILY_BAD_BODIES: list[tuple[str, str, str]] = [
    ("cost-string-second-row", edit(SEED_DAILY, "dailyUsage.1.cost", "205.0"), "dailyUsage[1].cost"),
    ("cost-bool-second-row", edit(SEED_DAILY, "dailyUsage.1.cost", True), "dailyUsage[1].cost"),
    ("cost-missing-first-row", edit(SEED_DAILY, "dailyUsage.0.cost"), "dailyUsage[0].cost"),
    ("date-bad", edit(SEED_DAILY, "dailyUsage.0.date", "15/11/2025"), "dailyUsage[0].date"),
    ("date-timestamp", edit(SEED_DAILY, "dailyUsage.1.date", "2025-11-14T00:00:00Z"), "dailyUsage[1].date"),
    ("date-impossible", edit(SEED_DAILY, "dailyUsage.0.date", "2025-02-30"), "dailyUsage[0].date"),
    ("requests-negative", edit(SEED_DAILY, "dailyUsage.1.requests", -5), "dailyUsage[1].requests"),
    ("synapses-nan", edit(SEED_DAILY, "dailyUsage.0.synapses", Raw("NaN")), "dailyUsage[0].synapses"),
    ("row-not-object", edit(SEED_DAILY, "dailyUsage.1", "2025-11-14"), "dailyUsage[1]"),
    ("rows-not-list", edit(SEED_DAILY, "dailyUsage", {"date": "2025-11-15"}), "dailyUsage"),
    ("rows-null", edit(SEED_DAILY, "dailyUsage", None), "dailyUsage"),
    ("start-date-missing", edit(SEED_DAILY, "period.startDate"), "period.startDate"),
    ("days-in-month-bool", edit(SEED_DAILY, "period.daysInMonth", True), "period.daysInMonth"),
    ("summary-cost-string", edit(SEED_DAILY, "summary.totalApiKeyCost", "6250.0"),
     "summary.totalApiKeyCost"),
    ("summary-synapses-snake-string", edit(SEED_DAILY, "summary.total_synapses", "many"),
     "summary.total_synapses"),
    ("generated-at-bad", edit(SEED_DAILY, "summary.generatedAt", "yesterday"), "summary.generatedAt"),
    ("generated-at-number", edit(SEED_DAILY, "summary.generatedAt", 1763202600), "summary.generatedAt"),
]


@pytest.mark.parametrize(
    ("body", "path"), [pytest.param(b, p, id=i) for i, b, p in DAILY_BAD_BODIES]
)
async def test_daily_body_that_does_not_fit_names_the_field(
    mock: aioresponses, body: str, path: str
) -> None:
    with pytest.raises(ResponseValidationError) as info:
        await fetch_daily(mock, body)

    assert info.value.path == path
    assert str(info.value).startswith(f"{path}: ")


@pytest.mark.parametrize(
    "body",
    ["", "   ", "not json", "<html><body>OK</body></html>", '{"apiKeyId": ', "null", "[]",
     "[" + SEED_USAGE + "]", '"a string"', "42", "true", "NaN"],
    ids=["empty", "blank", "text", "html", "truncated", "null", "empty-list", "list", "string",
         "number", "true", "nan"],
)
async def test_body_that_is_not_an_object_has_an_empty_path(mock: aioresponses, body: str) -> None:
    with pytest.raises(ResponseValidationError) as info:
        await fetch_usage(mock, body)

    assert info.value.path == ""
    assert str(info.value) == info.value.message
    assert info.value.message
    assert "Traceback" not in str(info.value)


async def test_a_body_that_does_not_fit_is_not_retried(mock: aioresponses) -> None:
    mock.get(USAGE_URL, body=edit(SEED_USAGE, "usage.totalCost"), repeat=True)

    with instant_waits() as waits, pytest.raises(ResponseValidationError) as info:
        async with FreddyClient(API_KEY, max_retries=3) as client:
            await client.get_api_key_usage("org_123", "apikey_abc123", month=11, year=2025)

    assert info.value.path == "usage.totalCost"
    assert info.value.attempts == 1
    assert waits == []
    assert sum(len(calls) for calls in mock.requests.values()) == 1


async def test_validation_error_is_a_freddy_error_with_the_body(mock: aioresponses) -> None:
    with pytest.raises(FreddyError) as info:
        await fetch_usage(mock, "<html>oops</html>")

    assert type(info.value) is ResponseValidationError
    assert info.value.body == "<html>oops</html>"


def test_unstructure_gives_plain_json_values() -> None:
    from freddy_async._convert import unstructure

    usage = structure(parse_json(SNAKE_USAGE), ApiKeyUsage)
    plain = unstructure(usage)
    assert plain["limit"]["status"] == "ok"
    assert type(plain["limit"]["status"]) is str
    assert plain["usage"]["total_cost"] == Decimal("350.25")
    assert structure(plain, ApiKeyUsage) == usage


def test_a_percentage_of_hundreds_of_digits_is_a_validation_error() -> None:
    # Found by the fuzz tests: float() of so large an int raises OverflowError, not a FreddyError.
    body = b'{"monthly_limit": null, "utilization_percentage": 1' + b"0" * 400 + b', "status": "ok"}'
    with pytest.raises(ResponseValidationError) as info:
        structure(parse_json(body), UsageLimit)
    assert info.value.path == "utilization_percentage"
