"""What an answer means: pure functions of its status, headers and body, no I/O, no clock of their own.

:func:`read_answer` gives the decoded data or the :class:`FreddyError` the answer is (the sans-I/O
core of the request path, as gidgethub's ``decipher_response``); :func:`read_rate_limit` what its
headers say about the rate limit. Every dialect of ``API.md`` is read, and the window length is never assumed:

- ``X-RateLimit-Limit`` / ``-Remaining`` / ``-Reset``, the reset as epoch seconds, epoch
  milliseconds or delta seconds, told apart by magnitude;
- the IETF draft's ``RateLimit-Limit`` / ``-Remaining`` / ``-Reset`` (delta seconds) with
  ``RateLimit-Policy: 100;w=60``, and its structured form ``RateLimit: "default";r=42;t=18`` with
  ``RateLimit-Policy: "default";q=100;w=60``;
- ``Retry-After`` (integer, fractional or an HTTP date) and ``retry-after-ms``.

A value that is absent, negative, not finite or not a number counts as absent: a server's
nonsense never turns into a wait.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from datetime import timezone
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

import attrs

from ._convert import parse_json
from ._errors import APIStatusError, FreddyError, Redactor, ResponseValidationError, error_from_response

__all__ = [
    "NO_RATE_LIMIT",
    "RateLimitInfo",
    "header_number",
    "mentions_rate_limit",
    "read_answer",
    "read_rate_limit",
    "retry_after",
    "server_time",
]

T = TypeVar("T")

# Reset values at least this large are epoch timestamps (seconds since 2001-09-09), not deltas;
# from 1e12 on they are epoch milliseconds (1e12 seconds is 30,000 years away).
_EPOCH_SECONDS = 1e9
_EPOCH_MILLIS = 1e12
# "name";key=value items of a structured field (RFC 8941), or a bare leading number.
_PARAM = re.compile(r";\s*([a-z*][a-z0-9_.*-]*)\s*=\s*([^;,\s]+)")


@attrs.frozen
class RateLimitInfo:
    """The rate-limit state one answer reports, in seconds from the moment it was read.

    ``limit`` is the quota of one window, ``window`` its length when a policy names it,
    ``remaining`` what is left of the quota and ``reset`` the seconds until it is renewed.
    ``retry_after`` is the wait a 429 (or 503) asks for. Anything not reported is ``None``.
    """

    limit: float | None = None
    remaining: float | None = None
    reset: float | None = None
    window: float | None = None
    retry_after: float | None = None

    @property
    def has_budget(self) -> bool:
        """True when the answer tells what is left and when it is renewed."""
        return self.remaining is not None and self.reset is not None


def header_number(text: str | None) -> float | None:
    """A header's value as a finite number >= 0, or ``None`` when absent or not one."""
    if text is None:
        return None
    try:
        value = float(text.strip())
    except ValueError:
        return None
    # "-1", "nan" and "inf" are nonsense from a server: treated as if the header were absent.
    return value if 0 <= value < math.inf else None


def _leading_number(text: str | None) -> float | None:
    # "100, 100;w=60" (an older draft's list form) and "100;w=60" both start with the quota.
    return None if text is None else header_number(re.split(r"[;,]", text, maxsplit=1)[0])


def _params(item: str) -> dict[str, float]:
    params = {}
    for key, value in _PARAM.findall(item):
        number = header_number(value)
        if number is not None:
            params[key] = number
    return params


def _items(text: str | None) -> list[tuple[str, dict[str, float]]]:
    """The ``name;k=v`` items of a list field, name unquoted (an unnamed item is named ``""``)."""
    if not text:
        return []
    items = []
    for item in text.split(","):
        name = item.split(";", 1)[0].strip().strip('"')
        items.append((name, _params(item)))
    return items


def server_time(headers: Mapping[str, str]) -> float | None:
    """The server's clock (epoch seconds) from its ``Date`` header, or ``None``."""
    value = headers.get("Date")
    return _http_date(value) if value else None


def _http_date(text: str) -> float | None:
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # RFC 9110 dates are GMT
        return when.replace(tzinfo=timezone.utc).timestamp()
    return when.timestamp()


def retry_after(headers: Mapping[str, str], server_now: Callable[[], float]) -> float | None:
    """Seconds the server asks us to wait: ``retry-after-ms``, then ``Retry-After`` as seconds
    (0 and fractions included) or as an HTTP date, counted from ``server_now()`` (the server's
    clock, epoch seconds). ``None`` when absent or unreadable."""
    millis = header_number(headers.get("retry-after-ms"))
    if millis is not None:
        return millis / 1000
    value = headers.get("Retry-After")
    if value is None:
        return None
    seconds = header_number(value)
    if seconds is not None:
        return seconds
    when = _http_date(value)
    return None if when is None else max(0.0, when - server_now())


def _reset_seconds(value: float | None, server_now: Callable[[], float]) -> float | None:
    """An ``X-RateLimit-Reset`` as seconds from now, whichever of the three forms it is in."""
    if value is None:
        return None
    if value >= _EPOCH_MILLIS:
        value = value / 1000 - server_now()
    elif value >= _EPOCH_SECONDS:
        value -= server_now()
    # An epoch reset already past (a stale answer, or clocks apart) says nothing about now.
    return value if value >= 0 else None


# Every header read below, lower-cased: an answer with none of them says nothing.
_NAMES = frozenset(
    name.lower()
    for name in (
        "Retry-After",
        "retry-after-ms",
        "RateLimit",
        "RateLimit-Policy",
        "RateLimit-Limit",
        "RateLimit-Remaining",
        "RateLimit-Reset",
        "X-RateLimit-Limit",
        "X-RateLimit-Remaining",
        "X-RateLimit-Reset",
    )
)
NO_RATE_LIMIT = RateLimitInfo()
"""What an answer without any rate-limit header says."""


def mentions_rate_limit(headers: Mapping[str, str]) -> bool:
    """Whether any header of an answer is one :func:`read_rate_limit` reads.

    Most answers carry none: one pass over their few names tells, in a sixth of the time
    the full read takes (0.25 against 1.65 us).
    """
    for name in headers:  # noqa: SIM110 (any() over a generator takes twice as long)
        if name.lower() in _NAMES:
            return True
    return False


def read_rate_limit(headers: Mapping[str, str], server_now: Callable[[], float]) -> RateLimitInfo:
    """Read every rate-limit header of an answer.

    Args:
        headers: the answer's headers (case-insensitive mapping).
        server_now: gives the server's clock when it answered, epoch seconds: epoch resets and
            HTTP dates are counted from it, so a server whose clock runs ahead is read right.
            Called only for those (reading a ``Date`` header is not free).

    An answer that :func:`mentions_rate_limit` not at all says :data:`NO_RATE_LIMIT`: the
    pacer asks that first, and reads no further for most answers.
    """
    wait = retry_after(headers, server_now)
    structured = _items(headers.get("RateLimit"))
    policies = _items(headers.get("RateLimit-Policy"))
    if structured:
        name, params = min(structured, key=lambda item: item[1].get("r", math.inf))
        policy = next((p for n, p in policies if n == name), policies[0][1] if policies else {})
        return RateLimitInfo(
            limit=policy.get("q"),
            remaining=params.get("r"),
            reset=params.get("t"),
            window=policy.get("w"),
            retry_after=wait,
        )
    if "RateLimit-Remaining" in headers or "RateLimit-Limit" in headers:
        window = next((p["w"] for _, p in policies if "w" in p), None)
        return RateLimitInfo(
            limit=_leading_number(headers.get("RateLimit-Limit")),
            remaining=header_number(headers.get("RateLimit-Remaining")),
            reset=header_number(headers.get("RateLimit-Reset")),
            window=window,
            retry_after=wait,
        )
    return RateLimitInfo(
        limit=_leading_number(headers.get("X-RateLimit-Limit")),
        remaining=header_number(headers.get("X-RateLimit-Remaining")),
        reset=_reset_seconds(header_number(headers.get("X-RateLimit-Reset")), server_now),
        retry_after=wait,
    )


# -- what an answer means ------------------------------------------------------------------------


def read_answer(
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    *,
    read: Callable[[Any], T],
    redact: Redactor,
    reason: str | None = None,
    retry_after: float | None = None,
) -> T | FreddyError:
    """Say what an answer means: its data, decoded and built by ``read``, or the error it is.

    Never raises: the caller decides what an error leads to (a 429 waited out, a retry, or the
    exception of the call). A status >= 400 gives the ``APIStatusError`` subclass for it, read from
    the error envelope when the body is one; a redirect is an ``APIStatusError`` too (never followed:
    it would carry the API key elsewhere); a 2xx that carries an error envelope is the error it
    says; a 2xx body that is not JSON or does not fit gives ``ResponseValidationError``.

    Args:
        status, headers, body: the answer as it came (the body already cut to its cap).
        read: builds the result from the decoded JSON, e.g. a model's structuring function.
        redact: cuts the API key out of any text an error keeps.
        reason: the status line's reason phrase, for the message of an error page without one.
        retry_after: the wait the answer asks for (``RateLimitInfo.retry_after``), kept on the error.
    """
    if status >= 300:
        return _status_error(status, headers, body, redact, reason, retry_after)
    try:
        data = parse_json(body)
        if isinstance(data, dict) and data.get("success") is False and "error" in data:
            return _error_in_success(data["error"], body, redact)
        return read(data)
    except ResponseValidationError as exc:
        return exc


def _status_error(
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    redact: Redactor,
    reason: str | None,
    retry_after: float | None,
) -> APIStatusError:
    text = redact.text(body.decode("utf-8", "replace"))
    if status >= 400:
        return error_from_response(status, text, reason=reason, retry_after=retry_after)
    location = redact.text(headers.get("Location", ""))
    return APIStatusError(
        f"unexpected redirect to {location!r}; not followed", status=status, body=text[:4096]
    )


def _error_in_success(envelope: Any, body: bytes, redact: Redactor) -> APIStatusError:
    """An error envelope with a 2xx status: still an error, typed by the status it names."""
    named = envelope.get("status") if isinstance(envelope, dict) else None
    status = named if type(named) is int and named >= 400 else 500
    return error_from_response(status, redact.text(body.decode("utf-8", "replace")))
