"""Hostile answers: whatever comes back, the caller gets a model or a typed FreddyError.

Each row is one answer a broken server, proxy or attacker could send, served byte for byte by a
tiny raw HTTP server on 127.0.0.1 (aioresponses cannot send a lying Content-Length, a broken
gzip stream or bytes that are not HTTP at all). The expected class is exact: never a bare
KeyError, TypeError, JSONDecodeError or ValueError, and never the wrong kind of FreddyError.
"""

from __future__ import annotations

import contextlib
import json
import time
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from typing import Any

import pytest
from rawhttp import Answer, RawServer, always, http, raw_server
from seeds import seed_usage

from freddy_async import (
    APIConnectionError,
    ApiKeyUsage,
    APIStatusError,
    FreddyClient,
    FreddyError,
    InternalServerError,
    KeyUsageReport,
    NotFoundError,
    RateLimitError,
    ResponseValidationError,
    UnprocessableEntityError,
)
from freddy_async.testing import RecordedWait

ORG = "org_1"
KEY = "apikey_1"
PATH = f"/v1/analytics/api-keys/usage/{ORG}/{KEY}"
MAX_RETRIES = 2
TEN_DAYS = 10 * 86_400

USAGE = seed_usage(ORG, KEY)


def usage_with(section: str | None, name: str, raw: str) -> bytes:
    """The valid usage body with one field's JSON text replaced by ``raw`` (e.g. ``NaN``)."""
    marker = "__HOSTILE__"
    body = json.loads(json.dumps(USAGE))
    (body[section] if section else body)[name] = marker
    return json.dumps(body).replace(f'"{marker}"', raw).encode()


def envelope(status: int | None = 404, **extra: Any) -> bytes:
    error: dict[str, Any] = {"code": "API_KEY_NOT_FOUND", "message": "API key not found",
                             "type": "client_error", "trace_id": "abc-123", **extra}
    if status is not None:
        error["status"] = status
    return json.dumps({"success": False, "error": error}).encode()


async def fetch(server: RawServer) -> ApiKeyUsage:
    async with FreddyClient("k", base_url=server.base_url, max_retries=MAX_RETRIES) as client:
        return await client.get_api_key_usage(ORG, KEY, month=11, year=2025)


# -- the table ---------------------------------------------------------------------------------

RVE = ResponseValidationError
ATTEMPTS_ALL = MAX_RETRIES + 1
# A server that answers 429 "come back now" forever: the pauses double from 0.5 s (0, 0.5, 1, ...
# 16 s) until the next (32 s) would pass the 60 s deadline; max_retries does not count 429s.
ATTEMPTS_429_STORM = 8
HTML = b"<html><body><h1>Welcome to nginx!</h1></body></html>"
TEN_MB = b'{"pad": "' + b"x" * (10 * 1024 * 1024) + b'"}'
DEEP = b"[" * 100_000 + b"]" * 100_000

# (id, answer, expected class (or ApiKeyUsage for "works"), attempts made)
ROWS: list[tuple[str, bytes, type[Any], int]] = [
    ("empty body", http(200, b""), RVE, 1),
    ("204 no content", http(204, b"", content_type=None), RVE, 1),
    ("null", http(200, b"null"), RVE, 1),
    ("a list instead of an object", http(200, b"[]"), RVE, 1),
    ("the object inside a list", http(200, json.dumps([USAGE]).encode()), RVE, 1),
    ("a bare string", http(200, b'"ok"'), RVE, 1),
    ("not JSON", http(200, b"{not json"), RVE, 1),
    ("invalid UTF-8", http(200, b'{"apiKeyId": "\xff\xfe"}'), RVE, 1),
    ("nesting 100,000 deep", http(200, DEEP), RVE, 1),
    ("a string where a count belongs", http(200, usage_with("usage", "totalRequests", '"1250"')), RVE, 1),
    ("a string where money belongs", http(200, usage_with("usage", "totalCost", '"350.25"')), RVE, 1),
    ("a string where the month belongs", http(200, usage_with(None, "month", '"11"')), RVE, 1),
    ("a bool where a count belongs", http(200, usage_with("usage", "totalRequests", "true")), RVE, 1),
    ("an object where money belongs", http(200, usage_with("usage", "totalCost", "{}")), RVE, 1),
    ("NaN money", http(200, usage_with("usage", "totalCost", "NaN")), RVE, 1),
    ("Infinity count", http(200, usage_with("usage", "totalRequests", "Infinity")), RVE, 1),
    ("-Infinity synapses", http(200, usage_with("usage", "totalSynapses", "-Infinity")), RVE, 1),
    ("NaN percentage", http(200, usage_with("limit", "utilizationPercentage", "NaN")), RVE, 1),
    ("a negative count", http(200, usage_with("usage", "totalRequests", "-1")), RVE, 1),
    ("negative neurons", http(200, usage_with("usage", "totalNeurons", "-0.5")), RVE, 1),
    ("a fractional count", http(200, usage_with("usage", "totalRequests", "12.5")), RVE, 1),
    ("money 1e400", http(200, usage_with("usage", "totalCost", "1e400")), RVE, 1),
    ("count 1e400", http(200, usage_with("usage", "totalRequests", "1e400")), RVE, 1),
    ("synapses 1e400", http(200, usage_with("usage", "totalSynapses", "1e400")), RVE, 1),
    ("count 10**30", http(200, usage_with("usage", "totalRequests", str(10**30))), RVE, 1),
    ("money 10**30", http(200, usage_with("usage", "totalCost", str(10**30))), RVE, 1),
    ("a 5,000-digit integer", http(200, usage_with("usage", "totalRequests", "9" * 5000)), RVE, 1),
    ("a fractional month", http(200, usage_with(None, "month", "13.5")), RVE, 1),
    ("a required field missing", http(200, json.dumps({**USAGE, "usage": {}}).encode()), RVE, 1),
    ("10 MB body with its length", http(200, TEN_MB), RVE, 1),
    ("10 MB body, chunked", http(200, TEN_MB, chunked=True), RVE, 1),
    # The body decides, not the label: JSON served as text/html is read as JSON.
    ("text/html with JSON inside", http(200, json.dumps(USAGE).encode(), content_type="text/html"),
     ApiKeyUsage, 1),
    ("text/html with HTML", http(200, HTML, content_type="text/html"), RVE, 1),
    ("JSON labelled with HTML inside", http(200, HTML), RVE, 1),
    ("a UTF-8 BOM before valid JSON", http(200, b"\xef\xbb\xbf" + json.dumps(USAGE).encode()),
     ApiKeyUsage, 1),
    # A body that cannot be decoded is an answer that never arrived whole: retried, then typed.
    ("gzip header, plain body", http(200, json.dumps(USAGE).encode(), {"Content-Encoding": "gzip"}),
     APIConnectionError, ATTEMPTS_ALL),
    ("deflate header, plain body", http(200, json.dumps(USAGE).encode(), {"Content-Encoding": "deflate"}),
     APIConnectionError, ATTEMPTS_ALL),
    ("Content-Length longer than the body", http(200, json.dumps(USAGE).encode(), length=100_000),
     APIConnectionError, ATTEMPTS_ALL),
    ("Content-Length shorter than the body", http(200, json.dumps(USAGE).encode(), length=10),
     APIConnectionError, ATTEMPTS_ALL),
    ("not HTTP at all", b"SSH-2.0-OpenSSH_9.6\r\n\r\n", APIConnectionError, ATTEMPTS_ALL),
    ("a 100 kB header line", http(200, b"{}", {"X-Junk": "j" * 100_000}), APIConnectionError, ATTEMPTS_ALL),
    ("a 200 with the error envelope", http(200, envelope(404)), NotFoundError, 1),
    # Not a 429 on the wire: nothing to wait out, and not a failure another attempt cures.
    ("a 200 with an envelope saying 429", http(200, envelope(429)), RateLimitError, 1),
    ("a 200 with an envelope without status", http(200, envelope(None)), InternalServerError, ATTEMPTS_ALL),
    ("a 200 with an envelope saying 200", http(200, envelope(200)), InternalServerError, ATTEMPTS_ALL),
    ("a 200 with a string as error", http(200, b'{"success": false, "error": "boom"}'),
     InternalServerError, ATTEMPTS_ALL),
    ("an envelope of wrong types", http(404, envelope(404, code=7, message=["x"], details="d", trace_id={})),
     NotFoundError, 1),
    ("a 404 with HTML", http(404, HTML, content_type="text/html"), NotFoundError, 1),
    ("a 422 with junk FastAPI detail", http(422, b'{"detail": [1, null, {"loc": 5}]}'),
     UnprocessableEntityError, 1),
    ("a 418", http(418, b"I'm a teapot", content_type="text/plain"), APIStatusError, 1),
    ("a 599 with nothing", http(599, b""), InternalServerError, ATTEMPTS_ALL),
    ("a 502 with HTML", http(502, HTML, content_type="text/html"), InternalServerError, ATTEMPTS_ALL),
    # The client never follows a redirect: the API key would go along to wherever it points.
    ("a redirect loop", http(302, b"", {"Location": PATH + "?month=11&year=2025"}), APIStatusError, 1),
    ("a redirect elsewhere", http(301, b"", {"Location": "http://evil.example/steal"}), APIStatusError, 1),
    ("a 307 without Location", http(307, b""), APIStatusError, 1),
    ("a 308 to https", http(308, b"", {"Location": "https://127.0.0.1/"}), APIStatusError, 1),
    # Nonsense waits fall back to the client's own backoff; a wait longer than the call may
    # last ends the call at once, with the server's wait on the error for the caller to see.
    ("Retry-After -1", http(429, b"", {"Retry-After": "-1"}), RateLimitError, ATTEMPTS_429_STORM),
    ("Retry-After abc", http(429, b"", {"Retry-After": "abc"}), RateLimitError, ATTEMPTS_429_STORM),
    ("Retry-After nan", http(429, b"", {"Retry-After": "nan"}), RateLimitError, ATTEMPTS_429_STORM),
    ("Retry-After inf", http(503, b"", {"Retry-After": "inf"}), InternalServerError, ATTEMPTS_ALL),
    ("retry-after-ms -5", http(429, b"", {"retry-after-ms": "-5"}), RateLimitError, ATTEMPTS_429_STORM),
    ("Retry-After 10 days", http(429, b"", {"Retry-After": str(TEN_DAYS)}), RateLimitError, 1),
    ("Retry-After 10 days on a 503", http(503, b"", {"Retry-After": str(TEN_DAYS)}), InternalServerError, 1),
    ("Retry-After a date 10 days ahead",
     http(429, b"", {"Retry-After": format_datetime(datetime.now(timezone.utc) + timedelta(days=10),
                                                    usegmt=True)}),
     RateLimitError, 1),
    ("Retry-After a date in 1970", http(429, b"", {"Retry-After": "Thu, 01 Jan 1970 00:00:00 GMT"}),
     RateLimitError, ATTEMPTS_429_STORM),
]


@pytest.mark.parametrize(("answer", "expected", "attempts"), [r[1:] for r in ROWS], ids=[r[0] for r in ROWS])
async def test_hostile_answer_gives_a_model_or_a_typed_error(
    answer: bytes, expected: type[Any], attempts: int, waits: list[RecordedWait]
) -> None:
    async with raw_server(always(answer)) as server:
        if expected is ApiKeyUsage:
            usage = await fetch(server)
            assert usage.usage.total_requests == 1250
        else:
            with pytest.raises(FreddyError) as info:
                await fetch(server)
            assert type(info.value) is expected, repr(info.value)
            assert info.value.attempts == attempts
            assert str(info.value) and repr(info.value)  # both work on any answer
    # Retries, and nothing else: no redirect followed, no request to another path.
    assert len(server.requests) == attempts
    assert all(line == f"GET {PATH}?month=11&year=2025 HTTP/1.1" for line in server.requests)
    # Waits stay sane whatever the server said: at most the 60 s cap on a single wait.
    assert all(0 <= w.seconds <= 60 for w in waits if w.kind == "retry")


async def test_the_10_days_retry_after_is_kept_on_the_error(waits: list[RecordedWait]) -> None:
    async with raw_server(always(http(429, b"", {"Retry-After": str(TEN_DAYS)}))) as server:
        with pytest.raises(RateLimitError) as info:
            await fetch(server)
    assert info.value.retry_after == TEN_DAYS
    assert [w for w in waits if w.kind == "retry"] == []


async def test_validation_errors_name_the_field(waits: list[RecordedWait]) -> None:
    async with raw_server(always(http(200, usage_with("usage", "totalCost", "NaN")))) as server:
        with pytest.raises(ResponseValidationError) as info:
            await fetch(server)
    assert info.value.path == "usage.totalCost"


# -- known holes -------------------------------------------------------------------------------


async def test_a_count_with_a_huge_exponent_is_a_validation_error(waits: list[RecordedWait]) -> None:
    async with raw_server(always(http(200, usage_with("usage", "totalRequests", "1e100000")))) as server:
        with pytest.raises(ResponseValidationError):
            await fetch(server)


async def test_a_huge_error_page_is_still_a_server_error(waits: list[RecordedWait]) -> None:
    async with raw_server(always(http(503, TEN_MB, content_type="text/html"))) as server:
        with pytest.raises(FreddyError) as info:
            await fetch(server)
    assert type(info.value) is InternalServerError
    assert info.value.attempts == ATTEMPTS_ALL


def _wait_then_ok(first: bytes) -> Answer:
    ok = http(200, json.dumps(USAGE).encode())
    return lambda n, _head: first if n == 0 else ok


@pytest.mark.parametrize(
    "first",
    [
        http(429, b"", {"Retry-After": str(TEN_DAYS)}),
        http(200, json.dumps(USAGE).encode(),
             {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(int(time.time()) + TEN_DAYS)}),
    ],
    ids=["429 Retry-After 10 days", "X-RateLimit-Reset in 10 days"],
)
async def test_a_hostile_wait_does_not_stall_the_organization(
    first: bytes, waits: list[RecordedWait]
) -> None:
    async with (
        raw_server(_wait_then_ok(first)) as server,
        FreddyClient("k", base_url=server.base_url, max_retries=MAX_RETRIES) as client,
    ):
        with contextlib.suppress(RateLimitError):
            await client.get_api_key_usage(ORG, KEY, month=11, year=2025)
        usage = await client.get_api_key_usage(ORG, KEY, month=11, year=2025)
    assert usage.month == 11
    # Under instant_retries a stall shows as a recorded wait instead of a hang.
    assert max((w.seconds for w in waits), default=0) <= 60, waits


async def test_a_batch_never_files_another_keys_usage(waits: list[RecordedWait]) -> None:
    other = json.dumps({**USAGE, "apiKeyId": "apikey_someone_else"}).encode()
    async with (
        raw_server(always(http(200, other))) as server,
        FreddyClient("k", base_url=server.base_url) as client,
    ):
        (report,) = [r async for r in client.iter_api_key_usage(ORG, [KEY], months=["2025-11"])]
    assert report.usage == ()
    assert [type(e) for e in report.errors.values()] == [ResponseValidationError]


# -- hostile key listings ------------------------------------------------------------------------


def key_object(key_id: str) -> dict[str, Any]:
    return {"id": key_id, "organization_id": ORG, "key_name": "n", "key_prefix": None,
            "is_active": True, "is_paused": False, "usage_limit_chf": None, "scopes": [],
            "created_by": None, "created_at": None}


def listing_then_usage(listing: dict[str, Any]) -> Answer:
    page = http(200, json.dumps(listing).encode())
    usage = http(200, json.dumps(USAGE).encode())
    return lambda n, _head: page if n == 0 else usage


@pytest.mark.parametrize(
    "listing",
    [
        {"keys": None, "total": 1},
        {"keys": {"id": KEY}, "total": 1},
        {"keys": [{"id": 5}], "total": 1},
        {"keys": [key_object(KEY) | {"is_active": "yes"}], "total": 1},
        {"api_keys": [key_object(KEY)], "pagination": "all"},
        {"items": [key_object(KEY)]},
    ],
    ids=["null keys", "an object as keys", "a number as ID", "a string as bool", "junk pagination",
         "an unknown shape"],
)
async def test_a_junk_listing_is_a_validation_error_or_read_as_documented(
    listing: dict[str, Any], waits: list[RecordedWait]
) -> None:
    async with (
        raw_server(listing_then_usage(listing)) as server,
        FreddyClient("k", base_url=server.base_url) as client,
    ):
        outcome: list[str] | FreddyError
        try:
            outcome = [k.id async for k in client.list_api_keys(ORG)]
        except FreddyError as exc:
            outcome = exc
    if isinstance(outcome, FreddyError):
        assert type(outcome) is ResponseValidationError
    else:
        assert outcome in ([], [KEY])  # null keys: an empty page; junk pagination: one page


async def test_a_listed_key_id_that_is_not_an_id_costs_only_that_key(waits: list[RecordedWait]) -> None:
    bad = "../../organizations/other/api-keys"
    listing = {"keys": [key_object(bad), key_object(KEY)], "total": 2}
    async with (
        raw_server(listing_then_usage(listing)) as server,
        FreddyClient("k", base_url=server.base_url) as client,
    ):
        outcome: dict[str, KeyUsageReport] | FreddyError
        try:
            outcome = {r.api_key_id: r async for r in client.iter_api_key_usage(ORG, months=["2025-11"])}
        except FreddyError as exc:
            outcome = exc
    if isinstance(outcome, FreddyError):
        assert type(outcome) is ResponseValidationError  # refusing the whole listing is fine too
    else:
        assert outcome[KEY].ok
        assert [type(e) for e in outcome[bad].errors.values()] == [ResponseValidationError]
    assert all("/other/" not in line for line in server.requests)


async def test_a_listing_that_repeats_its_page_is_not_walked_for_ever(waits: list[RecordedWait]) -> None:
    listing = http(200, json.dumps({"api_keys": [key_object(KEY)],
                                    "pagination": {"total_count": 10**9, "total_pages": 10**9}}).encode())
    stop = http(400, envelope(400, code="INVALID_REQUEST"))
    async with (
        raw_server(lambda n, _head: listing if n < 30 else stop) as server,
        FreddyClient("k", base_url=server.base_url) as client,
    ):
        keys: list[str] = []
        with contextlib.suppress(FreddyError):
            async for key in client.list_api_keys(ORG, page_size=1):
                keys.append(key.id)
    # A page that brings no key not seen before ends the walk.
    assert len(server.requests) <= 3
    assert keys == [KEY]
