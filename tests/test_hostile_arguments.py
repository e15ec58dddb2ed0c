"""Hostile arguments: each works as a user would expect, or is a ValueError before any request.

"Works" is checked on the wire: the fake server's log shows every request on the path the
caller meant, an ID always one percent-encoded path segment, never a slash or a dot segment.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any
from urllib.parse import unquote

import pytest
import pytest_asyncio

from freddy_async import (
    FreddyClient,
    NotFoundError,
    PermissionDeniedError,
    YearMonth,
)
from freddy_async.testing import FakeFreddyServer, RecordedWait

USAGE_PREFIX = ["v1", "analytics", "api-keys", "usage"]


@pytest_asyncio.fixture
async def server() -> AsyncIterator[FakeFreddyServer]:
    async with FakeFreddyServer(keys=2) as fake:
        yield fake


@pytest_asyncio.fixture
async def client(server: FakeFreddyServer) -> AsyncIterator[FreddyClient]:
    async with FreddyClient(server.api_key, base_url=server.base_url, max_retries=0) as freddy:
        yield freddy


def segments(path: str) -> list[str]:
    """The decoded segments of a path as the server received it (still encoded)."""
    return [unquote(part) for part in path.split("/")[1:]]


# -- IDs -----------------------------------------------------------------------------------------

REFUSED_IDS: list[tuple[str, Any]] = [
    ("empty", ""),
    ("dot-dot-slash", "../apikey_1"),
    ("dot-dot", ".."),
    ("dot", "."),
    ("dots only", "...."),
    ("slash inside", "apikey/1"),
    ("leading slash", "/apikey_1"),
    ("trailing slash", "apikey_1/"),
    ("backslash", "..\\apikey_1"),
    ("query mark", "apikey_1?month=1"),
    ("fragment mark", "apikey_1#x"),
    ("NUL", "apikey\x001"),
    ("newline", "apikey_1\nX-Injected: 1"),
    ("CRLF", "apikey_1\r\n"),
    ("tab", "api\tkey"),
    ("space", "api key"),
    ("DEL", "apikey\x7f"),
    ("unicode line separator", "apikey\u2028"),
    ("no-break space", "apikey\u00a0"),
    ("10,000 characters", "a" * 10_000),
    ("257 characters", "a" * 257),
    ("an int", 12345),
    ("None", None),
    ("bytes", b"apikey_1"),
]

# IDs that are odd but can be IDs: sent percent-encoded, as exactly one path segment.
ODD_IDS: list[tuple[str, str]] = [
    ("encoded slash", "%2F"),
    ("encoded dot-dot", "%2e%2e"),
    ("encoded dot-dot-slash", "..%2F..%2Fadmin"),
    ("dots inside", "a..b"),
    ("leading dots", "..a"),
    ("percent", "100%"),
    ("sub-delimiters", "a;b=c&d+e@f:g,h!$'()*"),
    ("cyrillic", "ключ"),
    ("emoji", "🔑"),
    ("zero-width space", "key\u200b"),
    ("256 characters", "a" * 256),
]


@pytest.mark.parametrize("bad", [r[1] for r in REFUSED_IDS], ids=[r[0] for r in REFUSED_IDS])
async def test_a_bad_id_is_refused_before_any_request(
    bad: Any, server: FakeFreddyServer, client: FreddyClient
) -> None:
    key = server.key_ids[0]
    with pytest.raises(ValueError, match="api_key_id"):
        await client.get_api_key_usage(server.org_id, bad, month=1, year=2025)
    with pytest.raises(ValueError, match="org_id"):
        await client.get_api_key_usage(bad, key, month=1, year=2025)
    with pytest.raises(ValueError, match="org_id"):
        await client.get_api_key_daily_usage(bad, month=1, year=2025)
    with pytest.raises(ValueError, match="org_id"):
        client.list_api_keys(bad)
    with pytest.raises(ValueError, match="org_id"):
        client.iter_api_key_usage(bad, [key], months=["2025-01"])
    with pytest.raises(ValueError, match="api_key_id"):
        client.iter_api_key_usage(server.org_id, [key, bad], months=["2025-01"])
    with pytest.raises(ValueError, match="org_id"):
        client.iter_daily_usage(bad, months=["2025-01"])
    assert server.requests == []


@pytest.mark.parametrize("odd", [r[1] for r in ODD_IDS], ids=[r[0] for r in ODD_IDS])
async def test_an_odd_id_travels_as_one_encoded_segment(
    odd: str, server: FakeFreddyServer, client: FreddyClient
) -> None:
    with pytest.raises(NotFoundError):  # no such key, and the server says so
        await client.get_api_key_usage(server.org_id, odd, month=1, year=2025)
    with pytest.raises(PermissionDeniedError):  # no such organization
        await client.get_api_key_usage(odd, server.key_ids[0], month=1, year=2025)
    with pytest.raises(PermissionDeniedError):
        await client.get_api_key_daily_usage(odd, month=1, year=2025)
    usage, org, daily = server.requests
    assert segments(usage.path) == [*USAGE_PREFIX, server.org_id, odd]
    assert segments(org.path) == [*USAGE_PREFIX, odd, server.key_ids[0]]
    assert segments(daily.path) == ["v1", "analytics", "api-keys", "daily", odd]
    for request in server.requests:
        # Nothing the server could read as another segment or a dot segment.
        assert "/" not in odd or "%2F" in request.path
        assert all(part not in (".", "..") for part in request.path.split("/"))
        assert request.query_string == "month=1&year=2025"


async def test_odd_ids_in_a_batch_are_each_their_own_job(
    server: FakeFreddyServer, client: FreddyClient
) -> None:
    ids = [odd for _, odd in ODD_IDS]
    batch = client.iter_api_key_usage(server.org_id, ids, months=["2025-01"])
    reports = {r.api_key_id: r async for r in batch}
    assert sorted(reports) == sorted(ids)
    assert all(isinstance(e, NotFoundError) for r in reports.values() for e in r.errors.values())
    assert sorted(segments(r.path)[-1] for r in server.requests) == sorted(ids)


# -- months and years ------------------------------------------------------------------------------

BAD_MONTHS: list[tuple[str, Any]] = [
    ("the string '11'", "11"), ("11.0", 11.0), ("True", True), ("False", False), ("0", 0), ("13", 13),
    ("-1", -1), ("a Decimal", Decimal(11)), ("a list", [11]),
]
BAD_YEARS: list[tuple[str, Any]] = [
    ("the string '2025'", "2025"), ("2025.0", 2025.0), ("True", True), ("0", 0), ("10000", 10_000),
]


@pytest.mark.parametrize("month", [r[1] for r in BAD_MONTHS], ids=[r[0] for r in BAD_MONTHS])
async def test_a_bad_month_is_refused_before_any_request(
    month: Any, server: FakeFreddyServer, client: FreddyClient
) -> None:
    with pytest.raises(ValueError, match="month"):
        await client.get_api_key_usage(server.org_id, server.key_ids[0], month=month, year=2025)
    with pytest.raises(ValueError, match="month"):
        await client.get_api_key_daily_usage(server.org_id, month=month, year=2025)
    with pytest.raises(ValueError, match="month"):
        client.iter_api_key_usage(server.org_id, server.key_ids, months=[(2025, month)])
    with pytest.raises(ValueError, match="month"):
        client.iter_daily_usage(server.org_id, months=[(2025, month)])
    assert server.requests == []


@pytest.mark.parametrize("year", [r[1] for r in BAD_YEARS], ids=[r[0] for r in BAD_YEARS])
async def test_a_bad_year_is_refused_before_any_request(
    year: Any, server: FakeFreddyServer, client: FreddyClient
) -> None:
    with pytest.raises(ValueError, match="year"):
        await client.get_api_key_usage(server.org_id, server.key_ids[0], month=1, year=year)
    with pytest.raises(ValueError, match="year"):
        await client.get_api_key_daily_usage(server.org_id, month=1, year=year)
    with pytest.raises(ValueError, match="year"):
        client.iter_api_key_usage(server.org_id, server.key_ids, months=[(year, 1)])
    assert server.requests == []


@pytest.mark.parametrize(
    "months",
    [["11"], [11], [11.0], [True], ["2025-13"], ["2025-00"], ["2025/11"], ["11-2025"],
     ["\uff12\uff10\uff12\uff15-11"], ["2025-11-01"], [(2025,)], [(2025, 11, 1)], [("2025", 11)],
     [[2025, 11]], [None], [], ["2025-11", "x"]],
    ids=repr,
)
async def test_bad_months_of_a_batch_are_refused_before_any_request(
    months: Any, server: FakeFreddyServer, client: FreddyClient
) -> None:
    with pytest.raises(ValueError, match=r"month|year"):
        client.iter_api_key_usage(server.org_id, server.key_ids, months=months)
    with pytest.raises(ValueError, match=r"month|year"):
        client.iter_daily_usage(server.org_id, months=months)
    assert server.requests == []


@pytest.mark.parametrize("months", [11, True, 11.0, None], ids=repr)
async def test_a_lone_non_iterable_months_is_a_value_error(
    months: Any, server: FakeFreddyServer, client: FreddyClient
) -> None:
    try:
        with pytest.raises(ValueError, match="month"):
            client.iter_api_key_usage(server.org_id, server.key_ids, months=months)
        with pytest.raises(ValueError, match="month"):
            client.iter_daily_usage(server.org_id, months=months)
        if months is not None:  # api_key_ids=None means every key of the organization
            with pytest.raises(ValueError, match="api_key_ids"):
                client.iter_api_key_usage(server.org_id, months, months=["2025-11"])
    finally:
        assert server.requests == []


@pytest.mark.parametrize(
    ("months", "sent"),
    [
        ("2025-11", ["month=11&year=2025"]),  # one month as a plain string, not its characters
        (" 2025-11 ", ["month=11&year=2025"]),
        ("2025-1", ["month=1&year=2025"]),
        (YearMonth(2025, 11), ["month=11&year=2025"]),
        ([(2025, 11), "2025-11", YearMonth(2025, 11)], ["month=11&year=2025"]),  # one month, once
        (["2025-12", "2025-11"], ["month=11&year=2025", "month=12&year=2025"]),
    ],
    ids=repr,
)
async def test_month_spellings_a_user_would_use_work(
    months: Any, sent: list[str], server: FakeFreddyServer, client: FreddyClient
) -> None:
    key = server.key_ids[0]
    (report,) = [r async for r in client.iter_api_key_usage(server.org_id, [key], months=months)]
    assert report.ok
    assert sorted(r.query_string for r in server.requests) == sent


async def test_an_omitted_month_and_year_are_left_to_the_server(
    server: FakeFreddyServer, client: FreddyClient
) -> None:
    await client.get_api_key_usage(server.org_id, server.key_ids[0])
    await client.get_api_key_usage(server.org_id, server.key_ids[0], month=3)
    await client.get_api_key_usage(server.org_id, server.key_ids[0], year=2025)
    assert [r.query_string for r in server.requests] == ["", "month=3", "year=2025"]


# -- base_url --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("suffix", "prefix"),
    [
        ("", ""),
        ("/", ""),
        ("//", ""),
        ("/?", ""),
        ("/proxy", "/proxy"),
        ("/proxy/", "/proxy"),
        ("/a/b/c/", "/a/b/c"),
        ("/a/../", ""),  # dot segments are resolved before anything is sent
        ("/%2e%2e/x", "/x"),
        ("/my proxy", "/my%20proxy"),
        ("/a%2Fb", "/a%2Fb"),
    ],
    ids=repr,
)
async def test_a_base_url_path_is_kept_as_a_prefix(
    suffix: str, prefix: str, server: FakeFreddyServer, waits: list[RecordedWait]
) -> None:
    key = server.key_ids[0]
    async with FreddyClient(server.api_key, base_url=server.base_url + suffix, max_retries=0) as client:
        assert client.base_url == server.base_url + prefix
        if prefix:
            # The fake server serves the API at its root only: a prefixed path is its 404.
            with pytest.raises(NotFoundError):
                await client.get_api_key_usage(server.org_id, key, month=1, year=2025)
        else:
            await client.get_api_key_usage(server.org_id, key, month=1, year=2025)
    (request,) = server.requests
    assert request.path == f"{prefix}/v1/analytics/api-keys/usage/{server.org_id}/{key}"
    assert request.query_string == "month=1&year=2025"


@pytest.mark.parametrize(
    "base_url",
    [
        "", "   ", "127.0.0.1:8080", "//127.0.0.1", "http://", "http:///v1", "https://", "ftp://127.0.0.1",
        "file:///etc/passwd", "ws://127.0.0.1", "http://127.0.0.1/?x=1", "http://127.0.0.1?x=1",
        "http://127.0.0.1/#frag", "http://user:secret@127.0.0.1", "http://:secret@127.0.0.1",
        "http://api.aitronos.com", "http://10.0.0.1", "http://localhost.evil.example",
        b"https://api.aitronos.com", 42,  # (None means: from FREDDY_BASE_URL, else the API)
    ],
    ids=repr,
)
def test_a_bad_base_url_is_a_value_error(base_url: Any) -> None:
    with pytest.raises(ValueError, match="base_url") as info:
        FreddyClient("k", base_url=base_url)
    assert "secret" not in str(info.value)  # credentials in a URL are not echoed back


@pytest.mark.parametrize(
    "base_url",
    ["https://api.aitronos.com", "https://api.aitronos.com/", "HTTPS://API.AITRONOS.COM",
     "https://api.aitronos.com:8443/freddy", "https://[2001:db8::1]/"],
)
def test_a_good_base_url_is_accepted_without_any_request(base_url: str) -> None:
    client = FreddyClient("k", base_url=base_url)
    assert not client.base_url.endswith("/")
    assert "?" not in client.base_url and "#" not in client.base_url


# -- the other options -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("timeout", 0), ("timeout", -1), ("timeout", float("nan")), ("timeout", "30"), ("timeout", None),
        ("max_retries", -1), ("max_retries", 1.0), ("max_retries", True), ("max_retries", "3"),
        ("max_concurrency", 0), ("max_concurrency", 2.0), ("max_concurrency", True),
        ("requests_per_minute", 0), ("requests_per_minute", -5), ("requests_per_minute", float("nan")),
        ("retry_deadline", 0), ("retry_deadline", float("nan")), ("retry_deadline", "60"),
    ],
    ids=repr,
)
def test_a_bad_option_is_a_value_error(option: str, value: Any) -> None:
    with pytest.raises(ValueError, match=option):
        FreddyClient("k", **{option: value})


@pytest.mark.parametrize(
    "api_key", ["key\nX-Injected: 1", "key\r", "key\x00", "\x7f", 12345, b"key"], ids=repr
)
def test_an_api_key_that_cannot_be_a_header_is_a_value_error(api_key: Any) -> None:
    with pytest.raises(ValueError, match="api_key") as info:
        FreddyClient(api_key)
    assert "key\n" not in str(info.value) and "12345" not in str(info.value)
