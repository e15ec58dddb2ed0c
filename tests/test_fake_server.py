"""FakeFreddyServer, driven with plain aiohttp: endpoints, casings, listing, errors and sums.

The client library is deliberately not used here: these tests pin the wire format of API.md,
so that a client/server mismatch shows up in the client's tests instead of cancelling out.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import aiohttp
import pytest
from yarl import URL

from freddy_async import _clock
from freddy_async.testing import ExpectedTotals, FakeFreddyServer, RecordedRequest, instant_retries

MONEY = re.compile(r"-?\d+\.\d{2}")
TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")


@dataclass
class Answer:
    status: int
    text: str
    headers: Mapping[str, str]

    def json(self) -> Any:
        return json.loads(self.text, parse_float=Decimal)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def server() -> AsyncIterator[FakeFreddyServer]:
    async with FakeFreddyServer(keys=12, seed=3) as running:
        yield running


async def get(
    http: aiohttp.ClientSession,
    server: FakeFreddyServer,
    path: str,
    params: Mapping[str, str | int] | None = None,
    *,
    api_key: str | None = "",
    method: str = "GET",
) -> Answer:
    """Send one request; ``api_key=""`` means the server's key, None means no header."""
    key = server.api_key if api_key == "" else api_key
    headers = {} if key is None else {"X-API-Key": key}
    url = URL(server.base_url + path, encoded=True)
    async with http.request(method, url, params=params, headers=headers) as response:
        return Answer(response.status, await response.text(), dict(response.headers))


def usage_path(server: FakeFreddyServer, key_id: str, org_id: str | None = None) -> str:
    return f"/v1/analytics/api-keys/usage/{org_id or server.org_id}/{key_id}"


def daily_path(org_id: str) -> str:
    return f"/v1/analytics/api-keys/daily/{org_id}"


def list_path(org_id: str) -> str:
    return f"/v1/organizations/{org_id}/api-keys"


def month_path(server: FakeFreddyServer, endpoint: str) -> str:
    """The path of an endpoint that takes ``year`` and ``month``, for the main organization."""
    org = server.org_id
    return {
        "usage": usage_path(server, server.key_ids[0]),
        "daily": daily_path(org),
        "limits": f"/v1/analytics/usage/limits/{org}",
        "summary": f"/v1/analytics/api-keys/summary/{org}",
    }[endpoint]


def snake(value: Any) -> Any:
    """Rename camelCase keys to snake_case, recursively (the test's own converter)."""
    if isinstance(value, dict):
        return {re.sub(r"(?<!^)(?=[A-Z])", "_", k).lower(): snake(v) for k, v in value.items()}
    if isinstance(value, list):
        return [snake(item) for item in value]
    return value


def key_paths(value: Any, prefix: str = "") -> set[str]:
    """Every dict key of a body as a dotted path (list items share their list's path)."""
    paths: set[str] = set()
    if isinstance(value, dict):
        for k, v in value.items():
            paths.add(prefix + k)
            paths |= key_paths(v, prefix + k + ".")
    elif isinstance(value, list):
        for item in value:
            paths |= key_paths(item, prefix)
    return paths


# -- usage (API.md §1) ---------------------------------------------------------------------

USAGE_CAMEL = {
    "apiKeyId", "apiKeyName", "organizationId", "month", "year", "usage", "limit",
    "usage.totalRequests", "usage.totalCost", "usage.totalSynapses", "usage.totalNeurons",
    "usage.averageCostPerRequest", "limit.monthlyLimit", "limit.utilizationPercentage",
    "limit.remainingBudget", "limit.status",
}  # fmt: skip
USAGE_SNAKE = {
    "api_key_id", "api_key_name", "organization_id", "month", "year", "usage", "limit",
    "usage.total_requests", "usage.total_cost", "usage.total_synapses", "usage.total_neurons",
    "usage.average_cost_per_request", "limit.monthly_limit", "limit.utilization_percentage",
    "limit.remaining_budget", "limit.status",
}  # fmt: skip


async def test_usage_matches_expected_for_every_key(
    http: aiohttp.ClientSession, server: FakeFreddyServer
) -> None:
    for key_id in server.key_ids:
        answer = await get(http, server, usage_path(server, key_id), {"month": 11, "year": 2025})
        assert answer.status == 200
        assert answer.headers["Content-Type"].startswith("application/json")
        body = answer.json()
        assert key_paths(body) == USAGE_SNAKE
        assert body == server.expected_usage(key_id, 2025, 11)
        assert body["api_key_id"] == key_id
        assert body["organization_id"] == server.org_id


async def test_usage_money_is_exact_two_decimal_text(
    http: aiohttp.ClientSession, server: FakeFreddyServer
) -> None:
    for key_id in server.key_ids:
        answer = await get(http, server, usage_path(server, key_id), {"month": 3, "year": 2024})
        for name in ("total_cost", "monthly_limit", "remaining_budget", "utilization_percentage"):
            text = re.search(rf'"{name}": ([^,}}]+)', answer.text)
            assert text is not None
            assert text[1] == "null" or MONEY.fullmatch(text[1]), (name, text[1])
        average = re.search(r'"average_cost_per_request": ([^,}]+)', answer.text)
        assert average is not None
        assert re.fullmatch(r"\d+\.\d{4}", average[1])


@pytest.mark.parametrize(("casing", "expected"), [("camel", USAGE_CAMEL), ("docs", USAGE_CAMEL)])
async def test_usage_casings(
    http: aiohttp.ClientSession, casing: Any, expected: set[str]
) -> None:
    async with FakeFreddyServer(keys=2, casing=casing) as server:
        key_id = server.key_ids[0]
        answer = await get(http, server, usage_path(server, key_id), {"month": 1, "year": 2025})
        assert key_paths(answer.json()) == expected
        assert snake(answer.json()) == server.expected_usage(key_id, 2025, 1)


async def test_usage_defaults_to_current_utc_month(
    http: aiohttp.ClientSession, server: FakeFreddyServer
) -> None:
    before = datetime.now(timezone.utc)
    body = (await get(http, server, usage_path(server, server.key_ids[0]))).json()
    after = datetime.now(timezone.utc)
    assert (body["year"], body["month"]) in {(before.year, before.month), (after.year, after.month)}


async def test_limit_statuses_follow_the_documented_thresholds(
    http: aiohttp.ClientSession,
) -> None:
    seen: set[str] = set()
    async with FakeFreddyServer(keys=20) as server:
        for key_id in server.key_ids:
            body = (await get(http, server, usage_path(server, key_id), {"month": 6, "year": 2025}))
            limit = body.json()["limit"]
            seen.add(limit["status"])
            if limit["status"] == "no_limit":
                assert limit["monthly_limit"] is None
                assert limit["remaining_budget"] is None
                continue
            cost = body.json()["usage"]["total_cost"]
            assert limit["remaining_budget"] == limit["monthly_limit"] - cost
            percent = limit["utilization_percentage"]
            if limit["status"] == "exceeded":
                assert percent >= 100
                assert limit["remaining_budget"] <= 0
            elif limit["status"] == "warning":
                assert 80 <= percent < 100
            else:
                assert limit["status"] == "ok"
                assert percent < 80
        assert seen == {"ok", "warning", "exceeded", "no_limit"}
        assert server.keys_with_status("exceeded", 2025, 6)
        for key_id in server.keys_with_status("exceeded", 2025, 6):
            assert server.expected_usage(key_id, 2025, 6)["limit"]["remaining_budget"] < 0


async def test_some_keys_have_months_without_traffic(
    http: aiohttp.ClientSession, server: FakeFreddyServer
) -> None:
    idle = [(m, k) for m in range(1, 13) for k in server.keys_without_traffic(2025, m)]
    assert idle
    month, key_id = idle[0]
    usage = (await get(http, server, usage_path(server, key_id), {"month": month, "year": 2025}))
    totals = usage.json()["usage"]
    assert totals["total_requests"] == totals["total_synapses"] == totals["total_neurons"] == 0
    assert totals["total_cost"] == 0
    assert totals["average_cost_per_request"] == 0


# -- daily (API.md §2) ---------------------------------------------------------------------

DAILY_CAMEL = {
    "organizationId", "period", "dailyUsage", "summary",
    "period.year", "period.month", "period.startDate", "period.endDate", "period.daysInMonth",
    "period.daysWithApiUsage",
    "dailyUsage.date", "dailyUsage.requests", "dailyUsage.cost", "dailyUsage.synapses",
    "dailyUsage.neurons",
    "summary.organizationId", "summary.month", "summary.year", "summary.totalApiKeyRequests",
    "summary.totalApiKeyCost", "summary.averageCostPerRequest", "summary.totalSynapses",
    "summary.totalNeurons", "summary.generatedAt",
}  # fmt: skip
# Exactly as printed on the daily page: two snake_case names among the camelCase ones.
DAILY_DOCS = (
    DAILY_CAMEL - {"organizationId", "summary.organizationId", "summary.totalSynapses"}
) | {"organization_id", "summary.organization_id", "summary.total_synapses"}
DAILY_SNAKE = {
    "organization_id", "period", "daily_usage", "summary",
    "period.year", "period.month", "period.start_date", "period.end_date",
    "period.days_in_month", "period.days_with_api_usage",
    "daily_usage.date", "daily_usage.requests", "daily_usage.cost", "daily_usage.synapses",
    "daily_usage.neurons",
    "summary.organization_id", "summary.month", "summary.year",
    "summary.total_api_key_requests", "summary.total_api_key_cost",
    "summary.average_cost_per_request", "summary.total_synapses", "summary.total_neurons",
    "summary.generated_at",
}  # fmt: skip


@pytest.mark.parametrize(
    ("casing", "expected"), [("camel", DAILY_CAMEL), ("snake", DAILY_SNAKE), ("docs", DAILY_DOCS)]
)
async def test_daily_casings(http: aiohttp.ClientSession, casing: Any, expected: set[str]) -> None:
    async with FakeFreddyServer(keys=3, casing=casing) as server:
        answer = await get(http, server, daily_path(server.org_id), {"year": 2025, "month": 11})
        assert answer.status == 200
        body = answer.json()
        assert key_paths(body) == expected
        want = server.expected_daily(2025, 11)
        got = snake(body)
        assert TIMESTAMP.fullmatch(got["summary"].pop("generated_at"))
        assert got == want


async def test_daily_rows_add_up_to_summary_and_to_the_keys(
    http: aiohttp.ClientSession, server: FakeFreddyServer
) -> None:
    for year, month in [(2024, 2), (2025, 11)]:
        daily = await get(http, server, daily_path(server.org_id), {"year": year, "month": month})
        body = daily.json()
        rows, summary, period = body["daily_usage"], body["summary"], body["period"]
        dates = [row["date"] for row in rows]
        assert dates == sorted(dates, reverse=True)  # newest first, as in the docs
        assert all(row["requests"] > 0 for row in rows)
        assert period["days_with_api_usage"] == len(rows)
        assert sum(row["requests"] for row in rows) == summary["total_api_key_requests"]
        assert sum(row["cost"] for row in rows) == summary["total_api_key_cost"]
        assert sum(row["synapses"] for row in rows) == summary["total_synapses"]
        assert sum(row["neurons"] for row in rows) == summary["total_neurons"]

        per_key = [
            (await get(http, server, usage_path(server, k), {"year": year, "month": month}))
            .json()["usage"]
            for k in server.key_ids
        ]
        assert sum(u["total_requests"] for u in per_key) == summary["total_api_key_requests"]
        assert sum(u["total_cost"] for u in per_key) == summary["total_api_key_cost"]
        assert sum(u["total_synapses"] for u in per_key) == summary["total_synapses"]
        assert sum(u["total_neurons"] for u in per_key) == summary["total_neurons"]
        average = summary["total_api_key_cost"] / summary["total_api_key_requests"]
        assert summary["average_cost_per_request"] == average.quantize(Decimal("0.0001"))
        assert isinstance(summary["total_api_key_cost"], Decimal)
        assert summary["total_api_key_cost"] == server.expected_total_cost(months=[(year, month)])


async def test_daily_period_of_a_leap_february(
    http: aiohttp.ClientSession, server: FakeFreddyServer
) -> None:
    answer = await get(http, server, daily_path(server.org_id), {"year": 2024, "month": 2})
    body = answer.json()
    assert body["period"]["start_date"] == "2024-02-01"
    assert body["period"]["end_date"] == "2024-02-29"
    assert body["period"]["days_in_month"] == 29
    # Synapses and neurons come as floats ("425000.0"), as printed on the daily page.
    text = answer.text
    assert re.search(r'"synapses": \d+\.0[,}]', text)
    assert re.search(r'"total_neurons": \d+\.0[,}]', text)


# -- listing (API.md §3) -------------------------------------------------------------------

KEY_FIELDS = {
    "id", "organization_id", "key_name", "key_prefix", "is_active", "is_paused", "created_by",
    "created_at", "usage_limit_chf", "scopes", "last_used_at", "expires_at",
}  # fmt: skip


async def test_listing_pages_keys_shape(http: aiohttp.ClientSession) -> None:
    async with FakeFreddyServer(keys=45) as server:
        seen: list[str] = []
        for page, size in [(1, 20), (2, 20), (3, 5)]:
            answer = await get(http, server, list_path(server.org_id), {"page": page})
            body = answer.json()
            assert set(body) == {"keys", "total", "page", "page_size"}
            assert (body["total"], body["page"], body["page_size"]) == (45, page, 20)
            assert len(body["keys"]) == size
            seen += [key["id"] for key in body["keys"]]
        assert seen == server.key_ids
        beyond = (await get(http, server, list_path(server.org_id), {"page": 4})).json()
        assert beyond["keys"] == []
        assert beyond["total"] == 45


async def test_listing_pages_api_keys_shape(http: aiohttp.ClientSession) -> None:
    async with FakeFreddyServer(keys=7, list_shape="api_keys") as server:
        seen: list[str] = []
        for page in (1, 2, 3, 4):
            params = {"page": page, "page_size": 3}
            body = (await get(http, server, list_path(server.org_id), params)).json()
            assert set(body) == {"api_keys", "pagination"}
            assert body["pagination"] == {
                "page": page, "page_size": 3, "total_count": 7, "total_pages": 3,
            }  # fmt: skip
            seen += [key["id"] for key in body["api_keys"]]
        assert seen == server.key_ids


async def test_listing_key_objects(http: aiohttp.ClientSession) -> None:
    async with FakeFreddyServer(keys=30, seed=5) as server:
        params = {"page_size": 100}
        body = (await get(http, server, list_path(server.org_id), params)).json()
        assert [key["id"] for key in body["keys"]] == server.key_ids
        assert {key_id.split("_")[0] for key_id in server.key_ids} == {"apikey", "ak", "apk"}
        for key in body["keys"]:
            assert set(key) == KEY_FIELDS
            assert key["organization_id"] == server.org_id
            assert isinstance(key["is_active"], bool)
            assert isinstance(key["scopes"], list)
            assert TIMESTAMP.fullmatch(key["created_at"])
            for name in ("last_used_at", "expires_at"):
                assert key[name] is None or TIMESTAMP.fullmatch(key[name])
            limit = server.expected_usage(key["id"], 2025, 1)["limit"]["monthly_limit"]
            assert key["usage_limit_chf"] == limit
        assert body["keys"] == server.expected_keys()
        assert any(key["usage_limit_chf"] is None for key in body["keys"])
        assert any(key["last_used_at"] is None for key in body["keys"])


@pytest.mark.parametrize(
    ("params", "kind"),
    [
        ({"page_size": 101}, "less_than_equal"),
        ({"page_size": 0}, "greater_than_equal"),
        ({"page": 0}, "greater_than_equal"),
        ({"page": "two"}, "int_parsing"),
        ({"page_size": "1.5"}, "int_parsing"),
    ],
)
async def test_listing_rejects_bad_paging(
    http: aiohttp.ClientSession, server: FakeFreddyServer, params: dict[str, str | int], kind: str
) -> None:
    answer = await get(http, server, list_path(server.org_id), params)
    [(name, value)] = params.items()
    assert fastapi_detail(answer) == [(["query", name], kind, str(value))]
    server.invalid_params = "docs"
    answer = await get(http, server, list_path(server.org_id), params)
    assert check_envelope(answer, 400, "INVALID_REQUEST")["details"]["parameter"] == name


# -- errors --------------------------------------------------------------------------------


def fastapi_detail(answer: Answer) -> list[tuple[list[str], str, str]]:
    """The (loc, type, input) of each problem of a 422 in FastAPI's shape, checking its form."""
    assert answer.status == 422
    body = answer.json()
    assert set(body) == {"detail"}
    for item in body["detail"]:
        assert {"loc", "msg", "type", "input"} <= set(item)
        assert isinstance(item["msg"], str) and item["msg"]
    return [(item["loc"], item["type"], item["input"]) for item in body["detail"]]


def check_envelope(answer: Answer, status: int, code: str) -> dict[str, Any]:
    assert answer.status == status
    body = answer.json()
    assert body["success"] is False
    error: dict[str, Any] = body["error"]
    assert error["code"] == code
    assert error["status"] == status
    assert {"code", "message", "system_message", "type", "status", "trace_id", "timestamp"} <= set(
        error
    )
    assert error["type"] in {"client_error", "validation_error", "authorization_error"}
    assert TIMESTAMP.fullmatch(error["timestamp"])
    return error


@pytest.mark.parametrize(
    ("api_key", "code"), [(None, "AUTHENTICATION_REQUIRED"), ("wrong", "INVALID_API_KEY")]
)
@pytest.mark.parametrize("endpoint", ["usage", "daily", "list"])
async def test_authentication_errors(
    http: aiohttp.ClientSession,
    server: FakeFreddyServer,
    api_key: str | None,
    code: str,
    endpoint: str,
) -> None:
    path = {
        "usage": usage_path(server, server.key_ids[0]),
        "daily": daily_path(server.org_id),
        "list": list_path(server.org_id),
    }[endpoint]
    check_envelope(await get(http, server, path, api_key=api_key), 401, code)


async def test_other_organization_is_denied(
    http: aiohttp.ClientSession, server: FakeFreddyServer
) -> None:
    for path in (
        usage_path(server, server.key_ids[0], org_id="org_other"),
        daily_path("org_other"),
        list_path("org_other"),
    ):
        error = check_envelope(await get(http, server, path), 403, "ORGANIZATION_ACCESS_DENIED")
        assert error["details"]["organization_id"] == "org_other"


async def test_unknown_key_is_404_with_details(
    http: aiohttp.ClientSession, server: FakeFreddyServer
) -> None:
    answer = await get(http, server, usage_path(server, "apikey_nope"), {"month": 1, "year": 2025})
    error = check_envelope(answer, 404, "API_KEY_NOT_FOUND")
    assert error["details"] == {"api_key_id": "apikey_nope"}


@pytest.mark.parametrize(
    ("params", "problems"),
    [
        ({"month": 13, "year": 2025}, [("month", "less_than_equal")]),
        ({"month": 0, "year": 2025}, [("month", "greater_than_equal")]),
        ({"month": "nov", "year": 2025}, [("month", "int_parsing")]),
        ({"month": 11, "year": "2025.0"}, [("year", "int_parsing")]),
        ({"month": "x", "year": "y"}, [("year", "int_parsing"), ("month", "int_parsing")]),
    ],
)
@pytest.mark.parametrize("endpoint", ["usage", "daily", "limits", "summary"])
async def test_bad_month_or_year_is_422_with_every_problem(
    http: aiohttp.ClientSession,
    server: FakeFreddyServer,
    params: dict[str, str | int],
    problems: list[tuple[str, str]],
    endpoint: str,
) -> None:
    path = month_path(server, endpoint)
    detail = fastapi_detail(await get(http, server, path, params))
    assert [(loc, kind) for loc, kind, _ in detail] == [(["query", n], k) for n, k in problems]
    assert [value for _, _, value in detail] == [str(params[n]) for n, _ in problems]


@pytest.mark.parametrize("endpoint", ["usage", "daily", "limits", "summary"])
async def test_docs_style_keeps_the_400_envelope(
    http: aiohttp.ClientSession, endpoint: str
) -> None:
    async with FakeFreddyServer(keys=2, invalid_params="docs") as server:
        answer = await get(http, server, month_path(server, endpoint), {"month": 13})
        error = check_envelope(answer, 400, "INVALID_REQUEST")
        assert error["type"] == "validation_error"
        assert error["details"] == {"parameter": "month", "value": "13"}


@pytest.mark.parametrize("year", [2019, 2031])
async def test_the_year_range_applies_to_the_daily_endpoint_only(
    http: aiohttp.ClientSession, server: FakeFreddyServer, year: int
) -> None:
    params = {"month": 11, "year": year}
    daily = fastapi_detail(await get(http, server, daily_path(server.org_id), params))
    bound = "greater_than_equal" if year < 2020 else "less_than_equal"
    assert daily == [(["query", "year"], bound, str(year))]
    for endpoint in ("usage", "limits", "summary"):
        answer = await get(http, server, month_path(server, endpoint), params)
        assert answer.status == 200, endpoint
    key_id = server.key_ids[0]
    usage = (await get(http, server, usage_path(server, key_id), params)).json()
    assert usage == server.expected_usage(key_id, year, 11)


def test_invalid_params_option_is_checked() -> None:
    with pytest.raises(ValueError, match="invalid_params"):
        FakeFreddyServer(invalid_params="html")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="today"):
        FakeFreddyServer(today="2026-11-29")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/v1/analytics/api-keys/usage/org_demo",
        "/v1/analytics/api-keys/usage/org_demo/",
        "/v1/analytics/api-keys/summary/org_demo/extra",
        "/v2/organizations/org_demo/api-keys",
    ],
)
async def test_unknown_path_is_404(
    http: aiohttp.ClientSession, server: FakeFreddyServer, path: str
) -> None:
    check_envelope(await get(http, server, path), 404, "NOT_FOUND")


async def test_only_get_is_allowed(http: aiohttp.ClientSession, server: FakeFreddyServer) -> None:
    answer = await get(http, server, list_path(server.org_id), method="POST")
    check_envelope(answer, 405, "METHOD_NOT_ALLOWED")
    assert answer.headers["Allow"] == "GET"


async def test_trace_ids_are_unique(http: aiohttp.ClientSession, server: FakeFreddyServer) -> None:
    answers = [await get(http, server, daily_path("org_x")) for _ in range(5)]
    assert len({a.json()["error"]["trace_id"] for a in answers}) == 5


async def test_path_segments_are_percent_decoded_and_logged_raw(
    http: aiohttp.ClientSession, server: FakeFreddyServer
) -> None:
    answer = await get(http, server, usage_path(server, "a%2Fb"), {"month": 1, "year": 2025})
    assert check_envelope(answer, 404, "API_KEY_NOT_FOUND")["details"]["api_key_id"] == "a/b"
    assert server.requests[-1] == RecordedRequest(
        "GET", "/v1/analytics/api-keys/usage/org_demo/a%2Fb", "month=1&year=2025", 404
    )


# -- more organizations --------------------------------------------------------------------


async def test_extra_organizations(http: aiohttp.ClientSession) -> None:
    async with FakeFreddyServer(keys=3, extra_orgs={"org_two": 4}) as server:
        assert server.org_ids == ["org_demo", "org_two"]
        two = server.key_ids_for("org_two")
        assert len(two) == 4
        assert not set(two) & set(server.key_ids)
        listing = (await get(http, server, list_path("org_two"))).json()
        assert [key["id"] for key in listing["keys"]] == two
        usage = await get(http, server, usage_path(server, two[0], "org_two"), {"month": 2})
        assert snake(usage.json()) == server.expected_usage(
            two[0], usage.json()["year"], 2
        )
        assert usage.json()["organization_id"] == "org_two"
        # A key asked for under the wrong (but known) organization.
        wrong = await get(http, server, usage_path(server, two[0]), {"month": 2})
        error = check_envelope(wrong, 403, "ORGANIZATION_ACCESS_DENIED")
        assert error["details"] == {"api_key_id": two[0], "organization_id": "org_demo"}
        daily = (await get(http, server, daily_path("org_two"), {"year": 2025, "month": 5})).json()
        assert daily["summary"]["total_api_key_cost"] == server.expected_total_cost(
            months=["2025-05"], org_id="org_two"
        )


# -- counters and expected values ----------------------------------------------------------


async def test_counters_and_request_log(
    http: aiohttp.ClientSession, server: FakeFreddyServer
) -> None:
    key_id = server.key_ids[1]
    for _ in range(3):
        await get(http, server, usage_path(server, key_id), {"month": 4, "year": 2025})
    await get(http, server, usage_path(server, key_id), {"month": 4, "year": 2025}, api_key="bad")
    await get(http, server, daily_path(server.org_id), {"month": 4, "year": 2025})
    await get(http, server, "/elsewhere")
    assert server.fetch_count(key_id, 2025, 4) == 4
    assert server.fetch_count(key_id, 2025, 5) == 0
    assert server.daily_fetch_count(2025, 4) == 1
    assert server.request_count == 6
    assert [r.status for r in server.requests] == [200, 200, 200, 401, 200, 404]
    assert server.requests[-1].path == "/elsewhere"
    assert all(r.method == "GET" for r in server.requests)
    server.reset_counters()
    assert server.request_count == 0
    assert server.fetch_count(key_id, 2025, 4) == 0
    assert server.requests == []


@dataclass(frozen=True)
class YM:
    year: int
    month: int


async def test_expected_totals_match_the_wire(
    http: aiohttp.ClientSession, server: FakeFreddyServer
) -> None:
    months = [(2025, 1), (2025, 2), (2025, 3)]
    cost = Decimal(0)
    requests = 0
    for key_id in server.key_ids[:5]:
        for year, month in months:
            params = {"year": year, "month": month}
            usage = (await get(http, server, usage_path(server, key_id), params)).json()["usage"]
            cost += usage["total_cost"]
            requests += usage["total_requests"]
    keys = server.key_ids[:5]
    for spelled in (months, ["2025-01", "2025-02", "2025-3"], [YM(y, m) for y, m in months]):
        assert server.expected_total_cost(keys, months=spelled) == cost
        assert server.expected_total_requests(keys, months=spelled) == requests
    totals = server.expected_totals(keys, months=months)
    assert isinstance(totals, ExpectedTotals)
    assert (totals.cost, totals.requests) == (cost, requests)
    assert server.expected_total_cost(months=months) == sum(
        (server.expected_total_cost([k], months=months) for k in server.key_ids), Decimal(0)
    )


def test_expected_helpers_reject_unknown_things() -> None:
    server = FakeFreddyServer(keys=2)
    with pytest.raises(KeyError, match="apikey_missing"):
        server.expected_usage("apikey_missing", 2025, 1)
    with pytest.raises(ValueError, match="month"):
        server.expected_total_cost(months=[(2025, 13)])
    with pytest.raises(ValueError, match="YYYY-MM"):
        server.expected_total_cost(months=["November"])
    with pytest.raises(KeyError):
        server.key_ids_for("org_unknown")


# -- determinism ---------------------------------------------------------------------------


async def test_same_seed_same_answers(http: aiohttp.ClientSession) -> None:
    async with FakeFreddyServer(seed=11, keys=6) as one, FakeFreddyServer(seed=11, keys=6) as two:
        assert one.key_ids == two.key_ids
        assert one.api_key != two.api_key  # generated per server
        for key_id in one.key_ids:
            params = {"year": 2025, "month": 8}
            first = await get(http, one, usage_path(one, key_id), params)
            second = await get(http, two, usage_path(two, key_id), params)
            assert first.text == second.text
        listing = [(await get(http, s, list_path(s.org_id))).text for s in (one, two)]
        assert listing[0] == listing[1]
    other = FakeFreddyServer(seed=12, keys=6)
    assert other.key_ids != one.key_ids


def test_a_bigger_server_only_adds_keys() -> None:
    small, large = FakeFreddyServer(keys=3), FakeFreddyServer(keys=40)
    assert large.key_ids[:3] == small.key_ids
    for key_id in small.key_ids:
        assert small.expected_usage(key_id, 2025, 1) == large.expected_usage(key_id, 2025, 1)


# -- the pytest plugin, as a user's suite uses it ------------------------------------------


async def test_freddy_server_fixture(
    freddy_server: FakeFreddyServer, http: aiohttp.ClientSession
) -> None:
    assert freddy_server.base_url.startswith("http://127.0.0.1:")
    assert len(freddy_server.key_ids) == 20
    key_id = freddy_server.key_ids[0]
    answer = await get(http, freddy_server, usage_path(freddy_server, key_id), {"month": 1})
    assert answer.status == 200
    assert freddy_server.fetch_count(key_id, answer.json()["year"], 1) == 1


# -- the current month ---------------------------------------------------------------------


async def test_the_current_month_has_no_future_days_and_adds_up_everywhere(
    http: aiohttp.ClientSession,
) -> None:
    async with FakeFreddyServer(keys=10, seed=4, today=date(2026, 11, 29)) as server:
        assert server.today == date(2026, 11, 29)
        org, keys = server.org_id, server.key_ids
        daily = (await get(http, server, daily_path(org))).json()
        assert (daily["period"]["year"], daily["period"]["month"]) == (2026, 11)
        assert daily["daily_usage"]
        assert max(row["date"] for row in daily["daily_usage"]) <= "2026-11-29"
        summary = (await get(http, server, month_path(server, "summary"))).json()
        limits = (await get(http, server, month_path(server, "limits"))).json()
        usage = [(await get(http, server, usage_path(server, k))).json() for k in keys]
        for body in (summary, daily["summary"]):
            assert TIMESTAMP.fullmatch(body.pop("generated_at"))
            assert body == server.expected_summary(2026, 11)
        assert limits == server.expected_limits(2026, 11)
        assert usage == [server.expected_usage(k, 2026, 11) for k in keys]
        costs = [u["usage"]["total_cost"] for u in usage]
        assert [k["current_usage"] for k in limits["api_key_limits"]] == costs
        assert sum(costs) == summary["total_api_key_cost"] == sum(
            row["cost"] for row in daily["daily_usage"]
        )


async def test_days_that_have_passed_keep_their_numbers() -> None:
    during = FakeFreddyServer(keys=8, seed=4, today=date(2026, 11, 29))
    after = FakeFreddyServer(keys=8, seed=4, today=date(2026, 12, 1))
    rows = after.expected_daily(2026, 11)["daily_usage"]
    assert rows[0]["date"] == "2026-11-30"  # the day the first server has not seen yet
    assert during.expected_daily(2026, 11)["daily_usage"] == rows[1:]
    assert during.expected_total_cost(months=["2026-11"]) < after.expected_total_cost(
        months=["2026-11"]
    )
    assert during.expected_total_cost(months=["2026-10"]) == after.expected_total_cost(
        months=["2026-10"]
    )


async def test_a_future_month_has_no_traffic(http: aiohttp.ClientSession) -> None:
    async with FakeFreddyServer(keys=5, today=date(2026, 11, 29)) as server:
        params = {"year": 2026, "month": 12}
        daily = (await get(http, server, daily_path(server.org_id), params)).json()
        assert daily["daily_usage"] == []
        assert daily["summary"]["total_api_key_cost"] == 0
        assert sorted(server.keys_without_traffic(2026, 12)) == sorted(server.key_ids)
        usage = (await get(http, server, usage_path(server, server.key_ids[0]), params)).json()
        assert usage["usage"]["total_requests"] == 0


def test_today_follows_the_server_clock_by_default() -> None:
    with instant_retries():
        server = FakeFreddyServer(keys=1, clock_skew=2 * 86400)
        now = datetime.fromtimestamp(_clock.wall(), timezone.utc)
        assert server.today == (now + timedelta(days=2)).date()
