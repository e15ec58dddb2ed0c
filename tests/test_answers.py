"""Every rate-limit header dialect, read from literal headers: well-formed, malformed, hostile."""

from __future__ import annotations

from datetime import datetime, timezone
from email.utils import format_datetime

import pytest
from multidict import CIMultiDict

from freddy_async._answers import RateLimitInfo, read_rate_limit, retry_after, server_time

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
