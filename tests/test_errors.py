"""Error answers become typed exceptions carrying the envelope; the tree; pickling."""

from __future__ import annotations

import asyncio
import json
import pickle
from http import HTTPStatus
from typing import Any

import aiohttp
import pytest
from aioresponses import aioresponses

from freddy_async import (
    APIConnectionError,
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

API_KEY = "sk-test-0123456789abcdef"
URL = "https://api.aitronos.com/v1/analytics/api-keys/usage/org_123/apikey_123?month=11&year=2025"

# -- the envelopes printed on the two seed pages, verbatim -------------------------------------

NOT_FOUND_404 = """{ "success": false, "error": { "code": "API_KEY_NOT_FOUND", "message": "API key not found",
 "system_message": "API key not found", "type": "client_error", "status": 404,
 "details": { "api_key_id": "apikey_123" }, "trace_id": "abc-123-def",
 "timestamp": "2025-11-19T10:30:00Z" } }"""

FORBIDDEN_403 = """{ "success": false, "error": { "code": "ORGANIZATION_ACCESS_DENIED",
 "message": "You don't have permission to access this API key", "system_message": "Authorization error",
 "type": "client_error", "status": 403,
 "details": { "api_key_id": "apikey_123", "organization_id": "org_456" }, "trace_id": "def-456-ghi",
 "timestamp": "2025-11-19T10:30:00Z" } }"""

UNAUTHORIZED_401 = """{ "success": false, "error": { "code": "AUTHENTICATION_REQUIRED",
 "message": "Authentication required", "system_message": "No API key provided", "type": "client_error",
 "status": 401, "trace_id": "abc-123-def", "timestamp": "2025-11-15T10:30:00Z" } }"""

FORBIDDEN_403_DAILY = """{ "success": false, "error": { "code": "ORGANIZATION_ACCESS_DENIED",
 "message": "Access denied to organization", "system_message": "API key doesn't belong to organization",
 "type": "authorization_error", "status": 403, "trace_id": "def-456-ghi",
 "timestamp": "2025-11-15T10:30:00Z" } }"""

BAD_REQUEST_400 = """{ "success": false, "error": { "code": "INVALID_REQUEST",
 "message": "Invalid query parameters", "system_message": "year and month are required",
 "type": "validation_error", "status": 400,
 "trace_id": "ghi-789-jkl", "timestamp": "2025-11-15T10:30:00Z" } }"""

SERVER_500 = """{ "success": false, "error": { "code": "INTERNAL_ERROR",
 "message": "An unexpected error occurred", "system_message": "Database query failed",
 "type": "server_error", "status": 500,
 "trace_id": "jkl-012-mno", "timestamp": "2025-11-15T10:30:00Z" } }"""


def envelope(status: int, code: str, message: str, type_: str, **extra: Any) -> str:
    """An envelope in the documented shape, for the statuses the seed pages do not print."""
    error = {"code": code, "message": message, "system_message": f"system: {message}", "type": type_,
             "status": status, "trace_id": f"trace-{status}", "timestamp": "2025-11-19T10:30:00Z"}
    error.update(extra)
    return json.dumps({"success": False, "error": error})


ENVELOPE_CASES: list[tuple[str, int, str, type[APIStatusError], dict[str, Any]]] = [
    ("400-seed", 400, BAD_REQUEST_400, BadRequestError, {
        "code": "INVALID_REQUEST", "message": "Invalid query parameters",
        "system_message": "year and month are required", "type": "validation_error", "details": None,
        "trace_id": "ghi-789-jkl", "timestamp": "2025-11-15T10:30:00Z"}),
    ("401-seed", 401, UNAUTHORIZED_401, AuthenticationError, {
        "code": "AUTHENTICATION_REQUIRED", "message": "Authentication required",
        "system_message": "No API key provided", "type": "client_error", "details": None,
        "trace_id": "abc-123-def", "timestamp": "2025-11-15T10:30:00Z"}),
    ("403-seed-usage", 403, FORBIDDEN_403, PermissionDeniedError, {
        "code": "ORGANIZATION_ACCESS_DENIED", "message": "You don't have permission to access this API key",
        "system_message": "Authorization error", "type": "client_error",
        "details": {"api_key_id": "apikey_123", "organization_id": "org_456"},
        "trace_id": "def-456-ghi", "timestamp": "2025-11-19T10:30:00Z"}),
    ("403-seed-daily", 403, FORBIDDEN_403_DAILY, PermissionDeniedError, {
        "code": "ORGANIZATION_ACCESS_DENIED", "message": "Access denied to organization",
        "system_message": "API key doesn't belong to organization", "type": "authorization_error",
        "details": None, "trace_id": "def-456-ghi", "timestamp": "2025-11-15T10:30:00Z"}),
    ("404-seed", 404, NOT_FOUND_404, NotFoundError, {
        "code": "API_KEY_NOT_FOUND", "message": "API key not found", "system_message": "API key not found",
        "type": "client_error", "details": {"api_key_id": "apikey_123"}, "trace_id": "abc-123-def",
        "timestamp": "2025-11-19T10:30:00Z"}),
    ("422-envelope", 422, envelope(422, "VALIDATION_ERROR", "month must be 1-12", "validation_error",
                                   details={"field": "month"}),
     UnprocessableEntityError, {
        "code": "VALIDATION_ERROR", "message": "month must be 1-12",
        "system_message": "system: month must be 1-12", "type": "validation_error",
        "details": {"field": "month"}, "trace_id": "trace-422", "timestamp": "2025-11-19T10:30:00Z"}),
    ("429-envelope", 429, envelope(429, "RATE_LIMIT_EXCEEDED", "Too many requests", "client_error"),
     RateLimitError, {
        "code": "RATE_LIMIT_EXCEEDED", "message": "Too many requests",
        "system_message": "system: Too many requests", "type": "client_error", "details": None,
        "trace_id": "trace-429", "timestamp": "2025-11-19T10:30:00Z"}),
    ("500-seed", 500, SERVER_500, InternalServerError, {
        "code": "INTERNAL_ERROR", "message": "An unexpected error occurred",
        "system_message": "Database query failed", "type": "server_error", "details": None,
        "trace_id": "jkl-012-mno", "timestamp": "2025-11-15T10:30:00Z"}),
    ("502-envelope", 502, envelope(502, "BAD_GATEWAY", "Upstream failed", "server_error"),
     InternalServerError, {
        "code": "BAD_GATEWAY", "message": "Upstream failed", "system_message": "system: Upstream failed",
        "type": "server_error", "details": None, "trace_id": "trace-502",
        "timestamp": "2025-11-19T10:30:00Z"}),
    ("503-envelope", 503, envelope(503, "SERVICE_UNAVAILABLE", "Try later", "server_error"),
     InternalServerError, {
        "code": "SERVICE_UNAVAILABLE", "message": "Try later", "system_message": "system: Try later",
        "type": "server_error", "details": None, "trace_id": "trace-503",
        "timestamp": "2025-11-19T10:30:00Z"}),
    ("418-envelope", 418, envelope(418, "TEAPOT", "I'm a teapot", "client_error"), APIStatusError, {
        "code": "TEAPOT", "message": "I'm a teapot", "system_message": "system: I'm a teapot",
        "type": "client_error", "details": None, "trace_id": "trace-418",
        "timestamp": "2025-11-19T10:30:00Z"}),
    ("401-new-code", 401, envelope(401, "API_KEY_ROTATED_YESTERDAY", "Key rotated", "client_error"),
     AuthenticationError, {
        "code": "API_KEY_ROTATED_YESTERDAY", "message": "Key rotated",
        "system_message": "system: Key rotated", "type": "client_error", "details": None,
        "trace_id": "trace-401",
        "timestamp": "2025-11-19T10:30:00Z"}),
]


async def raised(
    mock: aioresponses,
    *,
    status: int,
    body: str = "",
    content_type: str = "application/json",
    headers: dict[str, str] | None = None,
) -> FreddyError:
    """The exception one call raises when the server answers ``status`` with ``body`` (no retries).

    A 429 is flow control, waited out within the call's deadline: a deadline shorter than any
    pause after a 429 makes it the call's answer.
    """
    mock.get(URL, status=status, body=body, content_type=content_type, headers=headers)
    async with FreddyClient(API_KEY, max_retries=0, retry_deadline=0.25) as client:
        with pytest.raises(FreddyError) as info:
            await client.get_api_key_usage("org_123", "apikey_123", month=11, year=2025)
    assert sum(len(calls) for calls in mock.requests.values()) == 1
    return info.value


@pytest.mark.parametrize(
    ("status", "body", "cls", "fields"),
    [pytest.param(s, b, c, f, id=i) for i, s, b, c, f in ENVELOPE_CASES],
)
async def test_envelope_fields_land_on_the_exception(
    mock: aioresponses, status: int, body: str, cls: type[APIStatusError], fields: dict[str, Any]
) -> None:
    exc = await raised(mock, status=status, body=body)

    assert type(exc) is cls
    assert isinstance(exc, APIStatusError)
    assert exc.status == status
    assert exc.code == fields["code"]
    assert exc.message == fields["message"]
    assert exc.system_message == fields["system_message"]
    assert exc.type == fields["type"]
    assert exc.details == fields["details"]
    assert exc.trace_id == fields["trace_id"]
    assert exc.timestamp == fields["timestamp"]
    assert exc.body == body
    assert exc.attempts == 1
    assert str(exc) == f"{status} {fields['code']}: {fields['message']} (trace_id={fields['trace_id']})"


async def test_rate_limit_error_carries_retry_after(mock: aioresponses) -> None:
    body = envelope(429, "RATE_LIMIT_EXCEEDED", "Too many requests", "client_error")

    exc = await raised(mock, status=429, body=body, headers={"Retry-After": "7"})

    assert type(exc) is RateLimitError
    assert exc.retry_after == 7.0
    assert exc.code == "RATE_LIMIT_EXCEEDED"


@pytest.mark.parametrize(
    ("error", "message"),
    [
        ({"code": "X", "system_message": "only the system message"}, "only the system message"),
        ({"code": "X"}, "Not Found"),
        ({"code": "X", "message": ""}, "Not Found"),
        ({"code": 123, "message": 456}, "456"),
    ],
    ids=["system-message", "no-message", "empty-message", "numbers"],
)
async def test_sparse_envelope_still_gives_a_message(
    mock: aioresponses, error: dict[str, Any], message: str
) -> None:
    exc = await raised(mock, status=404, body=json.dumps({"success": False, "error": error}))

    assert type(exc) is NotFoundError
    assert exc.message == message
    assert exc.code == str(error["code"])
    assert exc.trace_id is None
    assert exc.timestamp is None
    assert exc.details is None


async def test_details_that_are_not_an_object_are_dropped(mock: aioresponses) -> None:
    body = json.dumps({"success": False, "error": {"code": "X", "message": "m", "details": ["a", "b"]}})

    exc = await raised(mock, status=400, body=body)

    assert type(exc) is BadRequestError
    assert exc.details is None
    assert exc.body == body


# -- FastAPI's 422 shape -----------------------------------------------------------------------

FASTAPI_ONE = {"detail": [{"loc": ["query", "month"], "msg": "Input should be less than or equal to 12",
                           "type": "less_than_equal"}]}
FASTAPI_TWO = {"detail": [
    {"loc": ["query", "month"], "msg": "Input should be a valid integer", "type": "int_parsing"},
    {"loc": ["path", "org_id"], "msg": "Field required", "type": "missing"},
]}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (FASTAPI_ONE, "query.month: Input should be less than or equal to 12"),
        (FASTAPI_TWO, "query.month: Input should be a valid integer; path.org_id: Field required"),
        ({"detail": [{"msg": "no location"}]}, "no location"),
        ({"detail": []}, "invalid request"),
        ({"detail": "Unprocessable"}, "Unprocessable"),
    ],
    ids=["one", "two", "no-loc", "empty", "string"],
)
async def test_fastapi_422_gives_a_readable_message(
    mock: aioresponses, body: dict[str, Any], message: str
) -> None:
    exc = await raised(mock, status=422, body=json.dumps(body))

    assert type(exc) is UnprocessableEntityError
    assert exc.status == 422
    assert exc.message == message
    assert exc.code == "VALIDATION_ERROR"
    assert exc.type == "validation_error"
    assert exc.details == {"detail": body["detail"]}
    assert str(exc) == f"422 VALIDATION_ERROR: {message}"


async def test_fastapi_detail_on_another_status(mock: aioresponses) -> None:
    exc = await raised(mock, status=404, body='{"detail": "Not Found"}')

    assert type(exc) is NotFoundError
    assert exc.message == "Not Found"
    assert exc.code is None


# -- bodies that are not an envelope -----------------------------------------------------------

NGINX_502 = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx/1.25.3</center>\r\n"
    + "<!-- padding -->\r\n" * 200
    + "</body>\r\n</html>\r\n"
)


@pytest.mark.parametrize(
    ("status", "body", "content_type", "cls", "message"),
    [
        (502, NGINX_502, "text/html", InternalServerError,
         "Bad Gateway: <html> <head><title>502 Bad Gateway</title></head> <body> <center><h1>502 Bad Gateway"
         "</h1></center> <hr><center>nginx/1.25.3</center> <!-- padding --> <!-- padding --> "
         "<!-- padding --> <!-- padding -…"),
        (503, "", "text/plain", InternalServerError, "Service Unavailable"),
        (504, "   \n", "text/plain", InternalServerError, "Gateway Timeout"),
        (500, "Internal Server Error", "text/plain", InternalServerError,
         "Internal Server Error: Internal Server Error"),
        (400, "bad month", "text/plain", BadRequestError, "Bad Request: bad month"),
        (401, "<html><body>Unauthorized</body></html>", "text/html", AuthenticationError,
         "Unauthorized: <html><body>Unauthorized</body></html>"),
        (403, "", "application/json", PermissionDeniedError, "Forbidden"),
        (404, '{"foo": 1}', "application/json", NotFoundError, 'Not Found: {"foo": 1}'),
        (429, "slow down", "text/plain", RateLimitError, "Too Many Requests: slow down"),
        # The phrase is the running Python's: "Unprocessable Content" since 3.13 (RFC 9110).
        (422, "null", "application/json", UnprocessableEntityError, f"{HTTPStatus(422).phrase}: null"),
        (418, "short and stout", "text/plain", APIStatusError, "I'm a Teapot: short and stout"),
        (500, '{"error": "a plain string"', "application/json", InternalServerError,
         'Internal Server Error: {"error": "a plain string"'),
        (500, "[" * 100_000, "application/json", InternalServerError,
         "Internal Server Error: " + "[" * 199 + "…"),
    ],
    ids=["html-502", "empty-503", "blank-504", "text-500", "text-400", "html-401", "empty-403",
         "other-json-404", "text-429", "null-422", "teapot-418", "broken-json-500", "deep-nesting-500"],
)
async def test_non_envelope_bodies_give_the_class_and_a_clipped_message(
    mock: aioresponses, status: int, body: str, content_type: str, cls: type[APIStatusError], message: str
) -> None:
    exc = await raised(mock, status=status, body=body, content_type=content_type)

    assert type(exc) is cls
    assert isinstance(exc, APIStatusError)
    assert exc.status == status
    assert exc.message == message
    assert len(exc.message) <= 250
    assert "\n" not in exc.message
    assert "JSONDecodeError" not in str(exc)
    assert exc.code is None
    assert exc.trace_id is None
    assert exc.body == body[:4096]
    assert str(exc) == f"{status}: {message}"


async def test_huge_error_page_is_kept_short(mock: aioresponses) -> None:
    body = "<html>" + "x" * 100_000 + "</html>"  # aioresponses cannot feed much more

    exc = await raised(mock, status=502, body=body, content_type="text/html")

    assert type(exc) is InternalServerError
    assert len(exc.message) <= 250
    assert len(str(exc)) <= 260
    assert len(exc.body) == 4096


# -- no answer -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "cls", "text"),
    [
        (aiohttp.ClientConnectionError("connection reset by peer"), APIConnectionError,
         "ClientConnectionError: connection reset by peer"),
        (aiohttp.ServerDisconnectedError(), APIConnectionError, "ServerDisconnectedError"),
        (asyncio.TimeoutError(), APITimeoutError, "no answer within 30 s"),
        (aiohttp.ServerTimeoutError("read timed out"), APITimeoutError, "no answer within 30 s"),
    ],
    ids=["reset", "disconnected", "timeout", "server-timeout"],
)
async def test_no_answer_gives_connection_errors(
    mock: aioresponses, error: Exception, cls: type[APIConnectionError], text: str
) -> None:
    mock.get(URL, exception=error)
    async with FreddyClient(API_KEY, max_retries=0) as client:
        with pytest.raises(APIConnectionError) as info:
            await client.get_api_key_usage("org_123", "apikey_123", month=11, year=2025)

    assert type(info.value) is cls
    assert str(info.value).startswith("GET /v1/analytics/api-keys/usage/org_123/apikey_123: ")
    assert text in str(info.value)
    assert info.value.attempts == 1


# -- the tree ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cls", "parent"),
    [
        (FreddyError, Exception),
        (APIStatusError, FreddyError),
        (BadRequestError, APIStatusError),
        (AuthenticationError, APIStatusError),
        (PermissionDeniedError, APIStatusError),
        (NotFoundError, APIStatusError),
        (UnprocessableEntityError, APIStatusError),
        (RateLimitError, APIStatusError),
        (InternalServerError, APIStatusError),
        (APIConnectionError, FreddyError),
        (APITimeoutError, APIConnectionError),
        (ResponseValidationError, FreddyError),
    ],
)
def test_each_class_has_its_documented_parent(cls: type[Exception], parent: type[Exception]) -> None:
    assert cls.__mro__[1] is parent


@pytest.mark.parametrize(
    ("cls", "not_parent"),
    [
        (APITimeoutError, APIStatusError),
        (APIConnectionError, APIStatusError),
        (ResponseValidationError, APIStatusError),
        (ResponseValidationError, APIConnectionError),
        (APIStatusError, APIConnectionError),
        (RateLimitError, APIConnectionError),
        (FreddyError, ValueError),
    ],
)
def test_branches_do_not_overlap(cls: type[Exception], not_parent: type[Exception]) -> None:
    assert not issubclass(cls, not_parent)


# -- pickling ------------------------------------------------------------------------------------


def examples() -> list[FreddyError]:
    return [
        FreddyError("no API key", attempts=2),
        APIStatusError("moved", status=302, body="<a>"),
        BadRequestError("bad", status=400, code="INVALID_REQUEST", trace_id="t1"),
        AuthenticationError("auth", status=401, code="INVALID_API_KEY", type="client_error",
                            system_message="sys", timestamp="2025-11-19T10:30:00Z"),
        PermissionDeniedError("denied", status=403, details={"organization_id": "org_456"}),
        NotFoundError("missing", status=404, body='{"success": false}', attempts=3),
        UnprocessableEntityError("invalid", status=422, details={"detail": [{"msg": "x"}]}),
        RateLimitError("slow", status=429, retry_after=1.5),
        InternalServerError("boom", status=503),
        APIConnectionError("reset"),
        APITimeoutError("late", attempts=4),
        ResponseValidationError("expected an amount", path="usage.totalCost", body="{}"),
    ]


@pytest.mark.parametrize("exc", examples(), ids=lambda e: type(e).__name__)
def test_exceptions_pickle_with_their_attributes(exc: FreddyError) -> None:
    copy = pickle.loads(pickle.dumps(exc))

    assert type(copy) is type(exc)
    assert vars(copy) == vars(exc)
    assert copy.args == exc.args
    assert str(copy) == str(exc)
    assert repr(copy) == repr(exc)


async def test_a_raised_exception_pickles(mock: aioresponses) -> None:
    exc = await raised(mock, status=404, body=NOT_FOUND_404)

    copy = pickle.loads(pickle.dumps(exc))

    assert type(copy) is NotFoundError
    assert isinstance(copy, NotFoundError)
    assert (copy.status, copy.code, copy.trace_id, copy.details, copy.body) == (
        404, "API_KEY_NOT_FOUND", "abc-123-def", {"api_key_id": "apikey_123"}, NOT_FOUND_404)
    assert str(copy) == "404 API_KEY_NOT_FOUND: API key not found (trace_id=abc-123-def)"


def test_str_of_errors() -> None:
    assert str(NotFoundError("gone", status=404)) == "404: gone"
    assert str(NotFoundError("gone", status=404, code="X", trace_id="t", attempts=3)) == (
        "404 X: gone (trace_id=t) after 3 attempts"
    )
    assert str(ResponseValidationError("bad", path="a.b")) == "a.b: bad"
    assert str(ResponseValidationError("bad")) == "bad"
    assert str(APITimeoutError("late")) == "late"
