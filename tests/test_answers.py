"""What an answer means (read_answer), and every rate-limit header dialect, read from literal
headers: well-formed, malformed, hostile."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from decimal import Decimal
from email.utils import format_datetime
from functools import partial

import pytest
from multidict import CIMultiDict

from freddy_async import (
    ApiKeyUsage,
    APIStatusError,
    FreddyError,
    InternalServerError,
    NotFoundError,
    RateLimitError,
    ResponseValidationError,
)
from freddy_async._answers import RateLimitInfo, read_answer, read_rate_limit, retry_after, server_time
from freddy_async._convert import structure
from freddy_async._errors import Redactor

NOW = 1_764_412_800.0  # 2025-11-29 10:40:00 UTC, the server's clock


def read(**headers: str) -> RateLimitInfo:
    return read_rate_limit(CIMultiDict({k.replace("_", "-"): v for k, v in headers.items()}), lambda: NOW)


@pytest.mark.parametrize(
    ("reset", "seconds"),
    [
        (str(int(NOW) + 18), 18.0),  # epoch seconds
        (str(int(NOW * 1000) + 18_500), 18.5),  # epoch milliseconds
        ("18", 18.0),  # delta seconds
        ("0.25", 0.25),  # a fractional delta
        (str(int(NOW) - 5), None),  # an epoch already past says nothing about now
    ],
    ids=["epoch-s", "epoch-ms", "delta", "fraction", "past"],
)
def test_x_ratelimit_reset_in_every_form(reset: str, seconds: float | None) -> None:
    info = read(X_RateLimit_Limit="100", X_RateLimit_Remaining="42", X_RateLimit_Reset=reset)
    assert (info.limit, info.remaining, info.window) == (100, 42, None)
    assert info.reset == (pytest.approx(seconds) if seconds is not None else None)
    assert info.has_budget is (seconds is not None)


def test_ietf_draft_with_a_policy_gives_the_window() -> None:
    info = read(RateLimit_Limit="100", RateLimit_Remaining="42", RateLimit_Reset="18",
                RateLimit_Policy="100;w=60")
    assert info == RateLimitInfo(limit=100, remaining=42, reset=18, window=60)


def test_ietf_draft_list_form_of_the_limit() -> None:
    info = read(RateLimit_Limit="25, 25;w=1, 1000;w=3600", RateLimit_Remaining="3", RateLimit_Reset="1",
                RateLimit_Policy="25;w=1, 1000;w=3600")
    assert (info.limit, info.window) == (25, 1)


def test_ietf_structured_form() -> None:
    info = read(RateLimit='"default";r=42;t=18', RateLimit_Policy='"default";q=100;w=60')
    assert info == RateLimitInfo(limit=100, remaining=42, reset=18, window=60)


def test_ietf_structured_takes_the_tightest_of_several_policies() -> None:
    info = read(RateLimit='"burst";r=9;t=1, "day";r=2;t=3000',
                RateLimit_Policy='"burst";q=10;w=1, "day";q=1000;w=86400')
    assert info == RateLimitInfo(limit=1000, remaining=2, reset=3000, window=86400)


@pytest.mark.parametrize(
    "headers",
    [
        {"X-RateLimit-Remaining": "-1", "X-RateLimit-Reset": "10"},
        {"X-RateLimit-Remaining": "nan", "X-RateLimit-Reset": "10"},
        {"X-RateLimit-Remaining": "5", "X-RateLimit-Reset": "inf"},
        {"X-RateLimit-Remaining": "5", "X-RateLimit-Reset": "soon"},
        {"X-RateLimit-Remaining": "", "X-RateLimit-Reset": ""},
        {"X-RateLimit-Remaining": "1e400", "X-RateLimit-Reset": "1"},
        {"RateLimit": "garbage;;;===", "RateLimit-Policy": ",,,"},
        {"RateLimit": '"d";r=-3;t=nan'},
        {"RateLimit-Remaining": "x" * 10_000, "RateLimit-Reset": "1"},
    ],
    ids=["negative", "nan", "inf", "word", "empty", "overflow", "structured-junk", "structured-nan", "huge"],
)
def test_nonsense_counts_as_absent(headers: dict[str, str]) -> None:
    info = read_rate_limit(CIMultiDict(headers), lambda: NOW)
    assert not info.has_budget
    assert info.retry_after is None


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"Retry-After": "7"}, 7.0),
        ({"Retry-After": "1.999"}, 1.999),
        ({"Retry-After": "0"}, 0.0),
        ({"retry-after-ms": "250", "Retry-After": "9"}, 0.25),
        ({"Retry-After": format_datetime(datetime.fromtimestamp(NOW + 30, timezone.utc), usegmt=True)}, 30.0),
        ({"Retry-After": "Thu, 01 Jan 1970 00:00:00 GMT"}, 0.0),
        ({"Retry-After": "-1"}, None),
        ({"Retry-After": "Someday"}, None),
        ({"retry-after-ms": "-5"}, None),
        ({}, None),
    ],
)
def test_retry_after_forms(headers: dict[str, str], seconds: float | None) -> None:
    expected = pytest.approx(seconds) if seconds is not None else None
    assert retry_after(CIMultiDict(headers), lambda: NOW) == expected


def test_an_http_date_counts_from_the_servers_clock() -> None:
    # A server 30 s ahead asks for 10 s: by its own Date the wait is 10 s, not 40.
    ahead = NOW + 30
    headers = CIMultiDict({
        "Date": format_datetime(datetime.fromtimestamp(ahead, timezone.utc), usegmt=True),
        "Retry-After": format_datetime(datetime.fromtimestamp(ahead + 10, timezone.utc), usegmt=True),
    })
    date = server_time(headers)
    assert date == ahead
    assert retry_after(headers, lambda: ahead) == 10


def test_a_bad_date_header_is_ignored() -> None:
    assert server_time(CIMultiDict({"Date": "yesterday-ish"})) is None
    assert server_time(CIMultiDict()) is None


# -- read_answer: what a whole answer means, without any I/O --------------------------------------


SECRET = "sk-test-0123456789abcdef"
USAGE = {"apiKeyId": "apikey_1", "apiKeyName": "Production Key", "organizationId": "org_1",
         "month": 11, "year": 2025,
         "usage": {"totalRequests": 1250, "totalCost": 350.25, "totalSynapses": 125000,
                   "totalNeurons": 2500000, "averageCostPerRequest": 0.28},
         "limit": {"monthlyLimit": 500.00, "utilizationPercentage": 70.05,
                   "remainingBudget": 149.75, "status": "ok"}}


def answer(status: int, body: bytes | str | dict[str, object], **headers: str) -> object:
    raw = json.dumps(body).encode() if isinstance(body, dict) else body
    raw = raw.encode() if isinstance(raw, str) else raw
    return read_answer(
        status, CIMultiDict(headers), raw, read=partial(structure, cls=ApiKeyUsage),
        redact=Redactor(SECRET), reason="Reason", retry_after=None,
    )


def test_a_200_gives_the_model_with_exact_money() -> None:
    usage = answer(200, USAGE)
    assert isinstance(usage, ApiKeyUsage)
    assert usage.usage.total_cost == Decimal("350.25")


def test_an_error_status_gives_its_class_from_the_envelope_without_raising() -> None:
    error = answer(404, {"success": False, "error": {"code": "API_KEY_NOT_FOUND", "message": "gone",
                                                     "status": 404, "trace_id": "t-1"}})
    assert isinstance(error, NotFoundError)
    assert (error.status, error.code, error.trace_id) == (404, "API_KEY_NOT_FOUND", "t-1")


def test_a_429_carries_the_wait_it_was_given() -> None:
    error = read_answer(429, CIMultiDict(), b"", read=dict, redact=Redactor(SECRET), retry_after=7.5)
    assert isinstance(error, RateLimitError)
    assert error.retry_after == 7.5


def test_an_html_proxy_page_is_an_error_with_a_status_not_a_decoding_crash() -> None:
    error = answer(502, "<html><body>Bad Gateway</body></html>")
    assert isinstance(error, InternalServerError)
    assert error.status == 502
    assert "Bad Gateway" in error.message


def test_a_redirect_is_an_error_naming_the_location_without_the_key() -> None:
    error = answer(302, "", Location=f"https://elsewhere.example/?key={SECRET}")
    assert type(error) is APIStatusError
    assert error.status == 302
    assert "elsewhere.example" in error.message
    assert SECRET not in error.message


def test_an_error_envelope_with_a_200_is_the_error_it_names() -> None:
    error = answer(200, {"success": False, "error": {"code": "INTERNAL_ERROR", "status": 503,
                                                     "message": f"boom {SECRET}"}})
    assert isinstance(error, InternalServerError)
    assert error.status == 503
    assert SECRET not in str(error) + error.body


@pytest.mark.parametrize(
    ("body", "path"),
    [(b"{not json", ""), (json.dumps({**USAGE, "month": "eleven"}).encode(), "month")],
    ids=["not-json", "wrong-field"],
)
def test_a_2xx_that_does_not_fit_gives_a_validation_error(body: bytes, path: str) -> None:
    error = answer(200, body)
    assert isinstance(error, ResponseValidationError)
    assert error.path == path


def test_read_answer_never_raises_a_freddy_error() -> None:
    for status, body in [(200, b""), (500, b""), (404, b"{}"), (301, b""), (200, b"[]")]:
        assert isinstance(answer(status, body), FreddyError)


def test_an_answer_without_rate_limit_headers_says_nothing_of_them() -> None:
    headers = CIMultiDict({"Content-Type": "application/json", "Date": "Sun, 29 Nov 2026 18:00:00 GMT"})
    assert read_rate_limit(headers, lambda: NOW) == RateLimitInfo()
    # A header of any dialect, in any casing, is still read.
    assert read_rate_limit(CIMultiDict({"rAtElImIt-rEmAiNiNg": "3", "ratelimit-reset": "9"}),
                           lambda: NOW) == RateLimitInfo(remaining=3.0, reset=9.0)
