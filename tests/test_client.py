"""FreddyClient: configuration, the request it sends, argument checks, session lifecycle, secrecy."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from typing import Any

import aiohttp
import pytest
from aioresponses import aioresponses
from yarl import URL

import freddy_async
from freddy_async import (
    APIConnectionError,
    ApiKeyDailyUsage,
    ApiKeyUsage,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    FreddyClient,
    FreddyError,
    InternalServerError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ResponseValidationError,
    UnprocessableEntityError,
)
from freddy_async._clock import instant_waits
from freddy_async.testing import FakeFreddyServer

SECRET = "sk-TOPSECRET-0123456789abcdef"
BASE = "https://api.aitronos.com"
USAGE_PATH = "/v1/analytics/api-keys/usage/org_1/apikey_1"
DAILY_PATH = "/v1/analytics/api-keys/daily/org_1"
USAGE_URL = f"{BASE}{USAGE_PATH}?month=11&year=2025"
DAILY_URL = f"{BASE}{DAILY_PATH}?month=11&year=2025"
ANY_URL = re.compile(r"^https?://.*$")

USAGE_BODY = """{"apiKeyId": "apikey_1", "apiKeyName": "Production Key", "organizationId": "org_1",
 "month": 11, "year": 2025,
 "usage": {"totalRequests": 1250, "totalCost": 350.25, "totalSynapses": 125000, "totalNeurons": 2500000,
           "averageCostPerRequest": 0.28},
 "limit": {"monthlyLimit": 500.00, "utilizationPercentage": 70.05, "remainingBudget": 149.75,
           "status": "ok"}}"""


def usage_body(key_id: str = "apikey_1", month: int = 11, year: int = 2025) -> str:
    """USAGE_BODY about another key or month: the client refuses an answer to another question."""
    body = json.loads(USAGE_BODY)
    return json.dumps({**body, "apiKeyId": key_id, "month": month, "year": year})


DAILY_BODY = """{"organization_id": "org_1",
 "period": {"year": 2025, "month": 11, "startDate": "2025-11-01", "endDate": "2025-11-30",
            "daysInMonth": 30, "daysWithApiUsage": 1},
 "dailyUsage": [{"date": "2025-11-15", "requests": 850, "cost": 212.5, "synapses": 425000.0,
                 "neurons": 8500.0}],
 "summary": {"organization_id": "org_1", "month": 11, "year": 2025, "totalApiKeyRequests": 850,
             "totalApiKeyCost": 212.5, "averageCostPerRequest": 0.25, "total_synapses": 425000.0,
             "totalNeurons": 8500.0, "generatedAt": "2025-11-15T10:30:00Z"}}"""

NOT_FOUND = """{"success": false, "error": {"code": "API_KEY_NOT_FOUND", "message": "API key not found",
 "system_message": "API key not found", "type": "client_error", "status": 404,
 "details": {"api_key_id": "apikey_123"}, "trace_id": "abc-123-def", "timestamp": "2025-11-19T10:30:00Z"}}"""


@pytest.fixture
def sessions(monkeypatch: pytest.MonkeyPatch) -> list[aiohttp.ClientSession]:
    """Every aiohttp.ClientSession created during the test, in order."""
    created: list[aiohttp.ClientSession] = []
    original = aiohttp.ClientSession.__init__

    def spy(self: aiohttp.ClientSession, *args: Any, **kwargs: Any) -> None:
        created.append(self)
        original(self, *args, **kwargs)

    monkeypatch.setattr(aiohttp.ClientSession, "__init__", spy)
    return created


def sent(mock: aioresponses) -> list[tuple[str, URL, dict[str, Any]]]:
    """(method, url, kwargs) of every request aioresponses saw."""
    return [(method, url, call.kwargs) for (method, url), calls in mock.requests.items() for call in calls]


async def get_usage(client: FreddyClient) -> ApiKeyUsage:
    return await client.get_api_key_usage("org_1", "apikey_1", month=11, year=2025)


async def call(
    client: FreddyClient,
    endpoint: str,
    *,
    org_id: Any = "org_1",
    api_key_id: Any = "apikey_1",
    month: Any = 11,
    year: Any = 2025,
) -> object:
    """One call of ``endpoint`` ("usage" or "daily") with the given arguments."""
    if endpoint == "usage":
        return await client.get_api_key_usage(org_id, api_key_id, month=month, year=year)
    return await client.get_api_key_daily_usage(org_id, year=year, month=month)


# -- the API key -------------------------------------------------------------------------------


async def test_api_key_from_the_environment(mock: aioresponses, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FREDDY_API_KEY", "sk-from-env")
    mock.get(USAGE_URL, body=USAGE_BODY)

    async with FreddyClient() as client:
        await get_usage(client)

    [(_, _, kwargs)] = sent(mock)
    assert kwargs["headers"]["X-API-Key"] == "sk-from-env"


async def test_explicit_api_key_wins_over_the_environment(
    mock: aioresponses, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FREDDY_API_KEY", "sk-from-env")
    mock.get(USAGE_URL, body=USAGE_BODY)

    async with FreddyClient("sk-explicit") as client:
        await get_usage(client)

    [(_, _, kwargs)] = sent(mock)
    assert kwargs["headers"]["X-API-Key"] == "sk-explicit"


async def test_base_url_from_the_environment_reaches_the_fake_server(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # What `python -m freddy_async.testing` prints, exported, is all a quickstart needs.
    async with FakeFreddyServer(keys=1) as server:
        monkeypatch.setenv("FREDDY_BASE_URL", server.base_url)
        monkeypatch.setenv("FREDDY_API_KEY", server.api_key)
        async with FreddyClient() as client:
            assert client.base_url == server.base_url
            usage = await client.get_api_key_usage(server.org_id, server.key_ids[0], month=1, year=2025)
    assert usage.api_key_id == server.key_ids[0]
    assert server.fetch_count(server.key_ids[0], 2025, 1) == 1


@pytest.mark.parametrize(("env", "given", "expected"), [
    (None, None, "https://api.aitronos.com"),
    ("", None, "https://api.aitronos.com"),
    ("https://eu.example.test/", None, "https://eu.example.test"),
    ("https://eu.example.test", "https://api.example.test", "https://api.example.test"),
])
def test_base_url_precedence(
    monkeypatch: pytest.MonkeyPatch, env: str | None, given: str | None, expected: str
) -> None:
    if env is not None:
        monkeypatch.setenv("FREDDY_BASE_URL", env)
    assert FreddyClient("k", base_url=given).base_url == expected


def test_a_bad_base_url_from_the_environment_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FREDDY_BASE_URL", "http://api.example.test")  # plain http, not loopback
    with pytest.raises(ValueError, match="plain http"):
        FreddyClient("k")


@pytest.mark.parametrize("env", [None, ""], ids=["unset", "empty"])
def test_no_api_key_names_the_variable(monkeypatch: pytest.MonkeyPatch, env: str | None) -> None:
    if env is None:
        monkeypatch.delenv("FREDDY_API_KEY", raising=False)
    else:
        monkeypatch.setenv("FREDDY_API_KEY", env)

    with pytest.raises(FreddyError, match="FREDDY_API_KEY") as info:
        FreddyClient()

    assert type(info.value) is FreddyError


async def test_request_headers(mock: aioresponses) -> None:
    mock.get(USAGE_URL, body=USAGE_BODY)

    async with FreddyClient(SECRET) as client:
        await get_usage(client)

    [(method, url, kwargs)] = sent(mock)
    assert method == "GET"
    assert url == URL(USAGE_URL)
    assert kwargs["headers"]["X-API-Key"] == SECRET
    assert kwargs["headers"]["User-Agent"] == f"freddy-async/{freddy_async.__version__}"
    assert kwargs["allow_redirects"] is False


def test_version_is_a_string() -> None:
    assert isinstance(freddy_async.__version__, str)
    assert freddy_async.__version__


# -- the query ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("month", "year", "query"),
    [
        (11, 2025, {"month": "11", "year": "2025"}),
        (None, None, {}),
        (11, None, {"month": "11"}),
        (None, 2025, {"year": "2025"}),
        (1, 2020, {"month": "1", "year": "2020"}),
        (12, 2030, {"month": "12", "year": "2030"}),
    ],
)
@pytest.mark.parametrize("endpoint", ["usage", "daily"])
async def test_month_and_year_are_left_out_when_none(
    mock: aioresponses, endpoint: str, month: int | None, year: int | None, query: dict[str, str]
) -> None:
    path = USAGE_PATH if endpoint == "usage" else DAILY_PATH
    url = URL(f"{BASE}{path}").with_query(query)
    answered = usage_body(month=month or 11, year=year or 2025)
    mock.get(str(url), body=answered if endpoint == "usage" else DAILY_BODY)

    async with FreddyClient(SECRET) as client:
        if endpoint == "usage":
            result: object = await client.get_api_key_usage("org_1", "apikey_1", month=month, year=year)
            assert isinstance(result, ApiKeyUsage)
        else:
            result = await client.get_api_key_daily_usage("org_1", year=year, month=month)
            assert isinstance(result, ApiKeyDailyUsage)

    [(_, sent_url, _)] = sent(mock)
    assert sent_url.path == path
    assert dict(sent_url.query) == query


# -- bad arguments: ValueError before any request ----------------------------------------------

BAD_MONTHS: list[Any] = [0, 13, -1, "11", 11.0, True, False]
BAD_YEARS: list[Any] = [True, "2025", 2025.0, 0, 10_000]
BAD_IDS: list[Any] = ["", "a/b", "a?b", "a#b", "a b", "a\nb", "a\x00b", "a\tb", "a\\b", "a\x7fb", "..", ".",
                      " ", "x" * 10_000, 123, None]


def ids(values: list[Any]) -> list[str]:
    return [repr(v)[:20] for v in values]


@pytest.mark.parametrize("month", BAD_MONTHS, ids=ids(BAD_MONTHS))
@pytest.mark.parametrize("endpoint", ["usage", "daily"])
async def test_bad_month_raises_before_any_request(mock: aioresponses, endpoint: str, month: Any) -> None:
    async with FreddyClient(SECRET) as client:
        with pytest.raises(ValueError, match="month"):
            await call(client, endpoint, month=month)

    assert mock.requests == {}


@pytest.mark.parametrize("year", BAD_YEARS, ids=ids(BAD_YEARS))
@pytest.mark.parametrize("endpoint", ["usage", "daily"])
async def test_bad_year_raises_before_any_request(mock: aioresponses, endpoint: str, year: Any) -> None:
    async with FreddyClient(SECRET) as client:
        with pytest.raises(ValueError, match="year"):
            await call(client, endpoint, year=year)

    assert mock.requests == {}


@pytest.mark.parametrize("bad", BAD_IDS, ids=ids(BAD_IDS))
@pytest.mark.parametrize(
    ("endpoint", "argument"), [("usage", "org_id"), ("usage", "api_key_id"), ("daily", "org_id")]
)
async def test_bad_id_raises_before_any_request(
    mock: aioresponses, endpoint: str, argument: str, bad: Any
) -> None:
    async with FreddyClient(SECRET) as client:
        with pytest.raises(ValueError, match=argument):
            await call(client, endpoint, **{argument: bad})

    assert mock.requests == {}


@pytest.mark.parametrize("bad", ["a\x80b", "a\x9bb"], ids=["U+0080", "U+009B"])
async def test_id_with_c1_control_character_raises(mock: aioresponses, bad: str) -> None:
    async with FreddyClient(SECRET) as client:
        with pytest.raises(ValueError, match="api_key_id"):
            await client.get_api_key_usage("org_1", bad, month=11, year=2025)

    assert mock.requests == {}


@pytest.mark.parametrize(
    ("key_id", "raw_segment"),
    [
        ("apikey_def456", "apikey_def456"),
        ("ak_def456", "ak_def456"),
        ("apk_def456", "apk_def456"),
        ("def456", "def456"),
        ("key.v2", "key.v2"),
        ("apk_50%off", "apk_50%25off"),
        ("a+b", "a%2Bb"),
        ("key:1", "key%3A1"),
        ("a@b;c=d&e", "a%40b%3Bc%3Dd%26e"),
        ("ü", "%C3%BC"),
        ("a%2Fb", "a%252Fb"),
        ("x" * 256, "x" * 256),
    ],
)
async def test_ids_of_any_prefix_are_accepted_and_quoted(
    mock: aioresponses, key_id: str, raw_segment: str
) -> None:
    mock.get(ANY_URL, body=usage_body(key_id))

    async with FreddyClient(SECRET) as client:
        await client.get_api_key_usage("org_1", key_id, month=11, year=2025)

    [(_, url, _)] = sent(mock)
    assert url.raw_path == f"/v1/analytics/api-keys/usage/org_1/{raw_segment}"
    assert url.path == f"/v1/analytics/api-keys/usage/org_1/{key_id}"


async def test_org_id_is_quoted_on_the_daily_endpoint(mock: aioresponses) -> None:
    mock.get(ANY_URL, body=DAILY_BODY)

    async with FreddyClient(SECRET) as client:
        await client.get_api_key_daily_usage("org:1+2", year=2025, month=11)

    [(_, url, _)] = sent(mock)
    assert url.raw_path == "/v1/analytics/api-keys/daily/org%3A1%2B2"


# -- session lifecycle -------------------------------------------------------------------------


async def test_borrowed_session_is_left_open(mock: aioresponses) -> None:
    mock.get(USAGE_URL, body=USAGE_BODY, repeat=True)
    session = aiohttp.ClientSession()
    try:
        async with FreddyClient(SECRET, session=session) as client:
            await get_usage(client)
        await client.aclose()

        assert not session.closed
        async with session.get(USAGE_URL) as response:  # still usable by its owner
            assert response.status == 200
    finally:
        await session.close()


async def test_borrowed_session_is_the_one_used(
    mock: aioresponses, sessions: list[aiohttp.ClientSession]
) -> None:
    mock.get(USAGE_URL, body=USAGE_BODY)
    session = aiohttp.ClientSession()
    try:
        async with FreddyClient(SECRET, session=session) as client:
            await get_usage(client)
        assert sessions == [session]
    finally:
        await session.close()


async def test_owned_session_is_closed_once(
    mock: aioresponses, sessions: list[aiohttp.ClientSession]
) -> None:
    mock.get(USAGE_URL, body=USAGE_BODY)

    async with FreddyClient(SECRET) as client:
        await get_usage(client)
        assert len(sessions) == 1
        assert not sessions[0].closed

    assert sessions[0].closed
    await client.aclose()
    await client.aclose()
    assert len(sessions) == 1


async def test_aclose_without_use_creates_no_session(sessions: list[aiohttp.ClientSession]) -> None:
    client = FreddyClient(SECRET)
    await client.aclose()
    await client.aclose()

    assert sessions == []


@pytest.mark.parametrize("entered", [True, False], ids=["after-async-with", "after-aclose"])
@pytest.mark.parametrize("endpoint", ["usage", "daily"])
async def test_calls_after_close_raise_runtime_error(
    mock: aioresponses, entered: bool, endpoint: str
) -> None:
    if entered:
        async with FreddyClient(SECRET) as client:
            pass
    else:
        client = FreddyClient(SECRET)
        await client.aclose()

    with pytest.raises(RuntimeError, match="closed"):
        await call(client, endpoint)
    with pytest.raises(RuntimeError, match="closed"):
        async with client:
            pass
    assert mock.requests == {}


async def test_concurrent_calls_share_one_session(
    mock: aioresponses, sessions: list[aiohttp.ClientSession]
) -> None:
    for index in range(100):
        mock.get(f"{BASE}/v1/analytics/api-keys/usage/org_1/apikey_{index}?month=11&year=2025",
                 body=usage_body(f"apikey_{index}"))
    mock.get(DAILY_URL, body=DAILY_BODY, repeat=True)

    async with FreddyClient(SECRET, max_concurrency=8) as client:
        usages = await asyncio.gather(
            *(client.get_api_key_usage("org_1", f"apikey_{i}", month=11, year=2025) for i in range(100))
        )
        dailies = await asyncio.gather(
            *(client.get_api_key_daily_usage("org_1", year=2025, month=11) for _ in range(20))
        )

    assert len(usages) == 100
    assert all(usage.usage.total_requests == 1250 for usage in usages)
    assert len(dailies) == 20
    assert len(sent(mock)) == 120
    assert len(sessions) == 1
    assert sessions[0].closed


async def test_concurrent_first_calls_without_async_with_share_one_session(
    mock: aioresponses, sessions: list[aiohttp.ClientSession]
) -> None:
    mock.get(USAGE_URL, body=USAGE_BODY, repeat=True)
    client = FreddyClient(SECRET)
    try:
        await asyncio.gather(*(get_usage(client) for _ in range(30)))
    finally:
        await client.aclose()

    assert len(sessions) == 1
    assert sessions[0].closed


# -- base URL ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("base_url", "expected_base"),
    [
        ("https://api.aitronos.com", "https://api.aitronos.com"),
        ("https://api.aitronos.com/", "https://api.aitronos.com"),
        ("https://proxy.example.com/freddy", "https://proxy.example.com/freddy"),
        ("https://proxy.example.com/freddy/", "https://proxy.example.com/freddy"),
        ("https://proxy.example.com:8443/a/b/", "https://proxy.example.com:8443/a/b"),
        ("http://localhost:8080", "http://localhost:8080"),
        ("http://127.0.0.1:8080/", "http://127.0.0.1:8080"),
        ("http://[::1]:8080", "http://[::1]:8080"),
    ],
)
async def test_base_url_variants(mock: aioresponses, base_url: str, expected_base: str) -> None:
    expected = f"{expected_base}{USAGE_PATH}?month=11&year=2025"
    mock.get(expected, body=USAGE_BODY)

    async with FreddyClient(SECRET, base_url=base_url) as client:
        assert client.base_url == expected_base
        await get_usage(client)

    [(_, url, _)] = sent(mock)
    assert str(url) == expected


@pytest.mark.parametrize(
    "base_url", ["http://api.aitronos.com", "http://10.0.0.1:8080", "http://example.com/freddy/"]
)
def test_plain_http_to_a_remote_host_is_refused(base_url: str) -> None:
    with pytest.raises(ValueError, match="http") as info:
        FreddyClient(SECRET, base_url=base_url)

    assert SECRET not in str(info.value)


async def test_plain_http_can_be_allowed_explicitly(mock: aioresponses) -> None:
    mock.get(f"http://api.aitronos.com{USAGE_PATH}?month=11&year=2025", body=USAGE_BODY)

    async with FreddyClient(SECRET, base_url="http://api.aitronos.com", allow_insecure_http=True) as client:
        assert (await get_usage(client)).api_key_id == "apikey_1"

    assert len(sent(mock)) == 1


@pytest.mark.parametrize(
    "base_url",
    ["ftp://api.aitronos.com", "api.aitronos.com", "https://", "https://api.aitronos.com?x=1",
     "https://api.aitronos.com#frag", "https://user:pw@api.aitronos.com"],
)
def test_unusable_base_url_is_refused(base_url: str) -> None:
    with pytest.raises(ValueError, match="base_url"):
        FreddyClient(SECRET, base_url=base_url)


# -- answers the client must not take at face value ---------------------------------------------


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
async def test_redirect_is_not_followed(mock: aioresponses, status: int) -> None:
    mock.get(USAGE_URL, status=status, headers={"Location": "https://elsewhere.example/steal"}, repeat=True)
    mock.get("https://elsewhere.example/steal", body=USAGE_BODY)

    with instant_waits() as waits:
        async with FreddyClient(SECRET) as client:
            with pytest.raises(APIStatusError) as info:
                await get_usage(client)

    assert type(info.value) is APIStatusError
    assert info.value.status == status
    assert "https://elsewhere.example/steal" in info.value.message
    assert [str(url) for _, url, _ in sent(mock)] == [USAGE_URL]
    assert waits == []


@pytest.mark.parametrize(
    ("error_status", "cls"),
    [
        (400, BadRequestError),
        (401, AuthenticationError),
        (403, PermissionDeniedError),
        (404, NotFoundError),
        (422, UnprocessableEntityError),
        (429, RateLimitError),
        (500, InternalServerError),
        (503, InternalServerError),
        (418, APIStatusError),
    ],
)
async def test_ok_status_carrying_an_error_envelope_raises_its_error(
    mock: aioresponses, error_status: int, cls: type[APIStatusError]
) -> None:
    body = NOT_FOUND.replace('"status": 404', f'"status": {error_status}')
    mock.get(USAGE_URL, body=body)

    async with FreddyClient(SECRET, max_retries=0) as client:
        with pytest.raises(APIStatusError) as info:
            await get_usage(client)

    assert type(info.value) is cls
    assert info.value.status == error_status
    assert info.value.code == "API_KEY_NOT_FOUND"
    assert info.value.trace_id == "abc-123-def"
    assert info.value.details == {"api_key_id": "apikey_123"}


async def test_ok_status_carrying_an_envelope_without_status_is_a_server_error(mock: aioresponses) -> None:
    mock.get(USAGE_URL, body='{"success": false, "error": {"code": "X", "message": "broken"}}')

    async with FreddyClient(SECRET, max_retries=0) as client:
        with pytest.raises(APIStatusError) as info:
            await get_usage(client)

    assert type(info.value) is InternalServerError
    assert info.value.status == 500
    assert info.value.message == "broken"


# -- secrecy -------------------------------------------------------------------------------------


def test_key_absent_from_repr_and_str_of_the_client() -> None:
    client = FreddyClient(SECRET)

    assert SECRET not in repr(client)
    assert SECRET not in str(client)
    assert repr(client).startswith("FreddyClient(")
    assert "https://api.aitronos.com" in repr(client)


async def test_key_absent_from_repr_of_an_open_client(mock: aioresponses) -> None:
    mock.get(USAGE_URL, body=USAGE_BODY)
    async with FreddyClient(SECRET) as client:
        await get_usage(client)
        assert SECRET not in repr(client)
        assert SECRET not in str(client)


ANSWERS: list[tuple[str, dict[str, Any], type[Exception]]] = [
    ("400", {"status": 400, "body": NOT_FOUND.replace("404", "400")}, BadRequestError),
    ("401", {"status": 401, "body": NOT_FOUND.replace("404", "401")}, AuthenticationError),
    ("403", {"status": 403, "body": "Forbidden", "content_type": "text/plain"}, PermissionDeniedError),
    ("404", {"status": 404, "body": NOT_FOUND}, NotFoundError),
    ("422", {"status": 422, "body": '{"detail": [{"loc": ["query"], "msg": "bad"}]}'},
     UnprocessableEntityError),
    ("429", {"status": 429, "body": "", "headers": {"Retry-After": "0"}}, RateLimitError),
    ("502", {"status": 502, "body": "<html>bad gateway</html>", "content_type": "text/html"},
     InternalServerError),
    ("418", {"status": 418, "body": ""}, APIStatusError),
    ("302", {"status": 302, "headers": {"Location": "https://elsewhere.example/"}}, APIStatusError),
    ("reset", {"exception": aiohttp.ClientConnectionError("reset")}, APIConnectionError),
    ("timeout", {"exception": asyncio.TimeoutError()}, APITimeoutError),
    ("not-json", {"body": "<html>ok</html>"}, ResponseValidationError),
    ("missing-field", {"body": '{"apiKeyId": "apikey_1"}'}, ResponseValidationError),
]


@pytest.mark.parametrize(
    ("answer", "cls"), [pytest.param(a, c, id=i) for i, a, c in ANSWERS]
)
async def test_key_absent_from_every_raised_exception(
    mock: aioresponses, answer: dict[str, Any], cls: type[Exception]
) -> None:
    mock.get(USAGE_URL, repeat=True, **answer)

    with instant_waits():
        async with FreddyClient(SECRET) as client:
            with pytest.raises(FreddyError) as info:
                await get_usage(client)

    assert type(info.value) is cls
    for text in (str(info.value), repr(info.value), repr(info.value.args), repr(vars(info.value))):
        assert SECRET not in text


async def test_key_absent_from_argument_and_lifecycle_errors() -> None:
    client = FreddyClient(SECRET)
    raised: list[Exception] = []
    for bad in ({"api_key_id": "a/b"}, {"month": 13}, {"org_id": ""}):
        with pytest.raises(ValueError, match=r"month|org_id|api_key_id") as info:
            await call(client, "usage", **bad)
        raised.append(info.value)
    await client.aclose()
    with pytest.raises(RuntimeError) as closed:
        await get_usage(client)
    raised.append(closed.value)
    with pytest.raises(ValueError, match="http") as insecure:
        FreddyClient(SECRET, base_url="http://api.aitronos.com")
    raised.append(insecure.value)

    assert len(raised) == 5
    for exc in raised:
        assert SECRET not in str(exc)
        assert SECRET not in repr(exc)


@pytest.mark.parametrize("key", ["sk/abc+def==", "sk#1", "sk?1", "sk\\1", "sk 1"])
async def test_api_key_with_printable_punctuation_is_sent_unchanged(mock: aioresponses, key: str) -> None:
    mock.get(USAGE_URL, body=USAGE_BODY)

    async with FreddyClient(key) as client:
        await get_usage(client)

    [(_, _, kwargs)] = sent(mock)
    assert kwargs["headers"]["X-API-Key"] == key


@pytest.mark.parametrize("key", ["sk\n1", "sk\r\nX-Evil: 1", "sk\x00"])
def test_api_key_with_control_characters_is_refused(key: str) -> None:
    with pytest.raises(ValueError, match="api_key") as info:
        FreddyClient(key)

    assert key not in str(info.value)


# -- logging -------------------------------------------------------------------------------------


async def test_logs_go_to_the_freddy_async_logger_without_the_key(
    mock: aioresponses, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG)
    mock.get(USAGE_URL, status=503, body="")
    mock.get(USAGE_URL, body=USAGE_BODY)
    mock.get(DAILY_URL, status=401, body=NOT_FOUND.replace("404", "401"))

    with instant_waits():
        async with FreddyClient(SECRET) as client:
            await get_usage(client)
            with pytest.raises(AuthenticationError):
                await client.get_api_key_daily_usage("org_1", year=2025, month=11)

    records = caplog.records
    assert {record.name for record in records} == {"freddy_async"}
    messages = [record.getMessage() for record in records]
    assert any("503" in message for message in messages)
    assert any("retrying" in message for message in messages)
    assert any("401" in message for message in messages)
    assert all(SECRET not in message for message in messages)
    assert SECRET not in caplog.text
    out, err = capsys.readouterr()
    assert (out, err) == ("", "")
