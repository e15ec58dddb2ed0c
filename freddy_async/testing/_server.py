"""FakeFreddyServer: the documented Freddy API on a loopback aiohttp server, faults included."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import email.utils
import math
import re
import secrets
from collections import Counter
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timezone
from decimal import Decimal
from types import TracebackType
from typing import Any, Generic, Literal, Protocol, TypeVar, cast, get_args, overload
from urllib.parse import unquote

from aiohttp import web

from freddy_async import _clock

from ._data import (
    DayRow,
    KeyProfile,
    MonthTotals,
    daily_body,
    days_passed,
    key_days,
    key_object,
    limits_body,
    make_keys,
    month_totals,
    org_days,
    org_limit_centimes,
    summary_body,
    usage_body,
)
from ._faults import (
    FaultCounts,
    FixedWindow,
    Limiter,
    Plan,
    SlidingWindow,
    TokenBucket,
    Verdict,
    plan_attempt,
)
from ._query import DAILY_YEARS, InvalidParams, Problem, invalid_answer, read_paging, read_period
from ._wire import DOCS_SNAKE_KEYS, RawNumber, dumps, envelope, now_iso, recase

__all__ = [
    "Algorithm",
    "Casing",
    "ExpectedTotals",
    "FakeFreddyServer",
    "InvalidParams",
    "ListShape",
    "MonthLike",
    "RateLimitHeaders",
    "RecordedRequest",
    "ResetFormat",
    "RetryAfterFormat",
]

Casing = Literal["camel", "snake", "docs"]
ListShape = Literal["keys", "api_keys"]
Algorithm = Literal["token_bucket", "fixed_window", "sliding_window"]
RateLimitHeaders = Literal["x-ratelimit", "ietf", "ietf-structured", "none"]
ResetFormat = Literal["epoch", "epoch-ms", "delta"]
RetryAfterFormat = Literal["seconds", "fraction", "ms", "http-date", "none"]

_HOST = "127.0.0.1"
_BAD_GATEWAY_HTML = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
    "</body>\r\n</html>\r\n"
)
# stop() wakes every held-back answer, so handlers end at once; the drain timeout only matters
# on a badly loaded machine, and aiohttp's shutdown timeout only for a handler stuck anyway.
_DRAIN_TIMEOUT = 5.0
_SHUTDOWN_TIMEOUT = 0.25
# What a spent spending limit says to wait: a day, as such answers do (API.md, rate limits).
_SPENDING_RETRY_AFTER = 86400.0


class _YearMonthAttrs(Protocol):
    @property
    def year(self) -> int: ...

    @property
    def month(self) -> int: ...


MonthLike = tuple[int, int] | str | _YearMonthAttrs
"""A month for the expected-value helpers: ``(2025, 11)``, ``"2025-11"`` or a ``YearMonth``."""


def _month_of(value: MonthLike) -> tuple[int, int]:
    if isinstance(value, tuple):
        year, month = value
    elif isinstance(value, str):
        match = re.fullmatch(r"(\d{4})-(\d{1,2})", value.strip())
        if match is None:
            raise ValueError(f"expected a month as 'YYYY-MM', not {value!r}")
        year, month = int(match[1]), int(match[2])
    else:
        year, month = value.year, value.month
    if not 1 <= month <= 12:
        raise ValueError(f"month must be from 1 to 12, not {month}")
    return int(year), int(month)


@dataclass
class RecordedRequest:
    """One request as the server received it, and how it was answered."""

    method: str
    path: str
    """The path exactly as sent, still percent-encoded, without the query string."""
    query_string: str
    """The raw query string, without the ``?``."""
    status: int | None = None
    """Status answered; None when the connection was dropped without an answer."""
    fault: str | None = None
    """Name of the injected fault (a :class:`FaultCounts` field), if any."""


@dataclass(frozen=True)
class ExpectedTotals:
    """Totals the server will report for a set of (key, month) pairs."""

    requests: int
    cost: Decimal
    synapses: int
    neurons: int


_NO_FAULT = Plan()


class _Hangup(Exception):
    """Close the connection without an answer."""


class _Answer(Exception):
    """Stop handling and send this response."""

    def __init__(self, response: web.StreamResponse) -> None:
        super().__init__(response.status)
        self.response = response


def _json(status: int, body: Any, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(status=status, body=dumps(body), content_type="application/json", headers=headers)


def _error(
    status: int,
    code: str,
    message: str,
    *,
    system_message: str | None = None,
    error_type: str = "client_error",
    details: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
) -> _Answer:
    body = envelope(
        status,
        code,
        message,
        system_message=system_message,
        error_type=error_type,
        details=details,
    )
    return _Answer(_json(status, body, headers))


def _check_rate(name: str, value: float) -> float:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be between 0 and 1, not {value!r}")
    return float(value)


def _check_seconds(name: str, value: float) -> float:
    if not value >= 0.0:
        raise ValueError(f"{name} must be zero or more seconds, not {value!r}")
    return float(value)


def _check_org_id(org_id: str) -> str:
    if not isinstance(org_id, str) or not org_id or "/" in org_id:
        raise ValueError(f"an organization ID must be a non-empty string without '/': {org_id!r}")
    return org_id


def _number_text(value: float) -> str:
    """An integer when whole, else the shortest decimals that read back the same float."""
    if float(value).is_integer():
        return str(int(value))
    return f"{Decimal(repr(float(value))):f}"  # never an exponent, as in repr(1e-05)


def _choice(name: str, value: object, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, allowed))}, not {value!r}")


@dataclass(frozen=True)
class _RateLimits:
    """The server's rate-limit options, checked together (see FakeFreddyServer for each)."""

    requests_per_minute: float | None = None
    rate_limit_burst: float | None = None
    rate_limit_algorithm: Algorithm = "token_bucket"
    rate_limit_window: float = 60.0
    shared_quota: float = 0.0
    rate_limit_headers: RateLimitHeaders = "x-ratelimit"
    rate_limit_reset: ResetFormat = "epoch"
    retry_after_format: RetryAfterFormat = "seconds"
    clock_skew: float = 0.0
    exhausted_keys: frozenset[str] = frozenset()

    # Changing one of these starts every organization's quota afresh.
    SHAPING = (
        "requests_per_minute",
        "rate_limit_burst",
        "rate_limit_algorithm",
        "rate_limit_window",
        "shared_quota",
    )

    def __post_init__(self) -> None:
        rpm, window, share = self.requests_per_minute, self.rate_limit_window, self.shared_quota
        if rpm is not None and not rpm > 0:
            raise ValueError(f"requests_per_minute must be positive, not {rpm}")
        if self.rate_limit_burst is not None and not self.rate_limit_burst >= 1:
            raise ValueError(f"rate_limit_burst must be at least 1, not {self.rate_limit_burst}")
        _choice("rate_limit_algorithm", self.rate_limit_algorithm, get_args(Algorithm))
        if not 0 < window < math.inf:
            raise ValueError(f"rate_limit_window must be a positive number of seconds, not {window}")
        if not 0 <= share < 1:
            raise ValueError(f"shared_quota must be from 0 to below 1, not {share}")
        _choice("rate_limit_headers", self.rate_limit_headers, get_args(RateLimitHeaders))
        _choice("rate_limit_reset", self.rate_limit_reset, get_args(ResetFormat))
        _choice("retry_after_format", self.retry_after_format, get_args(RetryAfterFormat))
        if not math.isfinite(self.clock_skew):
            raise ValueError(f"clock_skew must be a finite number of seconds, not {self.clock_skew}")
        self._check_keys()
        self._check_quota()

    def _check_keys(self) -> None:
        keys: Any = self.exhausted_keys
        # A bare string is a collection of one-letter keys: surely not what was meant.
        if isinstance(keys, str) or not all(isinstance(k, str) and k for k in keys):
            raise ValueError(f"exhausted_keys must be a collection of key IDs, not {keys!r}")
        object.__setattr__(self, "exhausted_keys", frozenset(self.exhausted_keys))

    def _check_quota(self) -> None:
        quota = self.quota
        if quota is None:
            return
        if not quota + 1e-9 >= 1:
            raise ValueError(
                "the quota per window, requests_per_minute * rate_limit_window / 60, "
                f"must be at least 1, not {quota:g}"
            )
        # A window admits whole requests: the other consumer must leave one a window to us.
        if self.rate_limit_algorithm != "token_bucket" and (1 - self.shared_quota) * quota < 1:
            raise ValueError(
                f"shared_quota {self.shared_quota} leaves less than one request of the quota "
                f"of {quota:g} a window"
            )

    @property
    def quota(self) -> float | None:
        """Requests per window (Q), None without a limit."""
        if self.requests_per_minute is None:
            return None
        return self.requests_per_minute * self.rate_limit_window / 60

    @property
    def burst(self) -> float | None:
        """The token bucket's capacity: as given, else one second's worth and at least 1."""
        if self.rate_limit_burst is not None or self.requests_per_minute is None:
            return self.rate_limit_burst
        return max(1.0, self.requests_per_minute / 60)


_T = TypeVar("_T")


class _LimitOption(Generic[_T]):
    """A rate-limit option of the server: checked when set, and in force from the next request."""

    def __set_name__(self, owner: type[Any], name: str) -> None:
        self._name = name

    @overload
    def __get__(self, server: None, owner: type[Any]) -> _LimitOption[_T]: ...

    @overload
    def __get__(self, server: FakeFreddyServer, owner: type[Any]) -> _T: ...

    def __get__(self, server: FakeFreddyServer | None, owner: type[Any]) -> _T | _LimitOption[_T]:
        if server is None:
            return self
        return cast("_T", getattr(server._limits, self._name))

    def __set__(self, server: FakeFreddyServer, value: _T) -> None:
        server._set_limits(**{self._name: value})


def _round_up(seconds: float) -> int:
    # To the microsecond first, so that float noise around a whole second (a window's end
    # computed as now + (end - now)) does not add a second; the limiters take a request a
    # microsecond early as on time.
    return math.ceil(round(seconds, 6))


def _http_date(epoch: float) -> str:
    """RFC 9110 IMF-fixdate, e.g. ``Sun, 06 Nov 1994 08:49:37 GMT``."""
    return email.utils.formatdate(epoch, usegmt=True)


def _reset_text(limits: _RateLimits, seconds: float, server_now: float) -> str:
    if limits.rate_limit_reset == "delta":
        return str(_round_up(seconds))
    if limits.rate_limit_reset == "epoch-ms":
        return str(_round_up((server_now + seconds) * 1000))
    return str(_round_up(server_now + seconds))


def _budget_headers(limits: _RateLimits, verdict: Verdict, server_now: float) -> dict[str, str]:
    """The headers that tell the budget, in the dialect of ``rate_limit_headers``."""
    assert limits.quota is not None
    quota, window = _number_text(limits.quota), _number_text(limits.rate_limit_window)
    remaining, delta = str(verdict.remaining), str(_round_up(verdict.reset_after))
    if limits.rate_limit_headers == "x-ratelimit":
        return {
            "X-RateLimit-Limit": quota,
            "X-RateLimit-Remaining": remaining,
            "X-RateLimit-Reset": _reset_text(limits, verdict.reset_after, server_now),
        }
    if limits.rate_limit_headers == "ietf":
        return {
            "RateLimit-Limit": quota,
            "RateLimit-Remaining": remaining,
            "RateLimit-Reset": delta,
            "RateLimit-Policy": f"{quota};w={window}",
        }
    if limits.rate_limit_headers == "ietf-structured":
        return {
            "RateLimit": f'"default";r={remaining};t={delta}',
            "RateLimit-Policy": f'"default";q={quota};w={window}',
        }
    return {}


def _retry_after(
    limits: _RateLimits, wait: float, server_now: float
) -> tuple[dict[str, str], RawNumber | None]:
    """The header that says how long to wait, and the same wait in seconds for the envelope.

    Every format rounds up: waiting what it says always finds room.
    """
    fmt = limits.retry_after_format
    seconds = str(_round_up(wait))
    if fmt == "seconds":
        return {"Retry-After": seconds}, RawNumber(seconds)
    millis = math.ceil(round(wait * 1000, 3))  # to the microsecond first, as _round_up
    fraction = _number_text(millis / 1000)
    if fmt == "fraction":
        return {"Retry-After": fraction}, RawNumber(fraction)
    if fmt == "ms":
        return {"retry-after-ms": str(millis)}, RawNumber(fraction)
    if fmt == "http-date":
        return {"Retry-After": _http_date(_round_up(server_now + wait))}, RawNumber(seconds)
    return {}, None


class FakeFreddyServer:
    """A real HTTP server on 127.0.0.1 that speaks the Freddy analytics API, deterministically.

    It serves the usage (API.md §1), daily (§2), key listing (§3), usage-limits and summary
    (§4) endpoints for one organization, ``org_id``, with ``keys`` API keys, plus any
    ``extra_orgs``. Every number
    depends only on ``seed``, so the ``expected_*`` methods tell a test what the server will
    answer without any HTTP. Faults (rate limits, 5xx, dropped or truncated answers, delays)
    are all off by default and seeded when on.

    Use it as an async context manager::

        async with FakeFreddyServer(keys=5) as server:
            client = FreddyClient(server.api_key, base_url=server.base_url)

    Args:
        keys: Number of API keys of ``org_id``.
        org_id: The organization the server knows; any other (not in ``extra_orgs``) is
            answered 403 ``ORGANIZATION_ACCESS_DENIED``.
        api_key: The value the ``X-API-Key`` header must carry; random when None.
        seed: Seed of all data and of the fault draws.
        casing: Body key casing. ``"snake"`` (default) is what the API most likely sends: the
            API's own SDKs are generated from the OpenAPI document that its FastAPI server
            derives from the models it serialises, and they are snake_case. ``"camel"`` is how
            the usage docs page prints it; ``"docs"`` is the daily page's mixed casing (camel
            for usage; snake for the usage-limits and summary answers, as API.md §4 prints
            them). Use the others to check that code reads every spelling.
        list_shape: Key listing shape: ``"keys"`` (default; ``keys``/``total``/``page``/
            ``page_size``, the only shape the generated SDKs know) or ``"api_keys"``
            (``api_keys``/``pagination``, the other shape the docs print).
        invalid_params: The answer to an invalid query parameter: ``"fastapi"`` (default: 422
            with FastAPI's ``{"detail": [{"loc", "msg", "type", ...}]}``, every problem listed,
            the only error the OpenAPI spec declares) or ``"docs"`` (the docs pages' 400
            ``INVALID_REQUEST`` envelope). ``month`` must be 1-12 everywhere; ``year`` must be
            2020-2030 on the daily endpoint only, the one page that documents a range.
        today: The server's date (see :attr:`today`); None follows its clock.
        extra_orgs: More organizations, ID to key count, reachable with the same ``api_key``.
        port: Port to listen on; 0 picks a free one.
        requests_per_minute: The rate of the per-organization limit of the analytics
            endpoints; None for no limit. The key listing is not limited.
        rate_limit_burst: The token bucket's capacity; default one second's worth, at least 1.
        rate_limit_algorithm: How the limit counts (see below): ``"token_bucket"`` (default),
            ``"fixed_window"`` or ``"sliding_window"``.
        rate_limit_window: The window W in seconds (default 60). The quota per window is
            Q = ``requests_per_minute * rate_limit_window / 60``, at least 1; the windowed
            algorithms admit Q rounded down a window.
        shared_quota: The share, from 0 to below 1, of the quota that another consumer of the
            same organization uses: it spends ``shared_quota * requests_per_minute / 60``
            requests a second whenever the quota has room, so about ``1 - shared_quota`` of
            the limit is left to the caller. Simulated, lazily, at each request.
        rate_limit_headers: The budget headers sent with every limited answer, 200 and 429:
            ``"x-ratelimit"`` (``X-RateLimit-Limit``/``-Remaining``/``-Reset``), ``"ietf"``
            (``RateLimit-Limit``/``-Remaining``/``-Reset`` in delta seconds and
            ``RateLimit-Policy: Q;w=W``), ``"ietf-structured"`` (``RateLimit: "default";r=R;t=T``
            and ``RateLimit-Policy: "default";q=Q;w=W``) or ``"none"``.
        rate_limit_reset: ``X-RateLimit-Reset`` as ``"epoch"`` seconds (default),
            ``"epoch-ms"`` or ``"delta"`` seconds from now.
        retry_after_format: The wait of a 429: ``"seconds"`` (default: integer
            ``Retry-After``), ``"fraction"`` (decimal seconds to the millisecond),
            ``"ms"`` (``retry-after-ms`` in integer milliseconds instead), ``"http-date"``
            (``Retry-After`` as a date) or ``"none"``. Every format rounds up, so waiting what
            it says finds room; the envelope's ``details.retry_after`` gives the same wait in
            seconds when a header does.
        clock_skew: Seconds the server's clock runs ahead of the caller's (may be negative):
            moves epoch resets, HTTP dates and the fixed windows' alignment.
        exhausted_keys: Keys whose spending limit is used up: their usage requests answer 429
            ``USAGE_LIMIT_EXCEEDED`` naming the key, with a one-day ``Retry-After`` (in
            ``retry_after_format``), without touching the rate limit.
        error_rate: Share of 500/502/503 answers (502 with an HTML body; 503 JSON or empty).
        drop_rate: Share of requests whose connection is closed without an answer.
        truncate_rate: Share of 200 answers cut short of their declared Content-Length.
        latency: Seconds added to every answer.
        slow_rate: Share of answers held back by ``slow_delay`` seconds.
        slow_delay: The hold-back of a slow answer, in seconds.
        fail_first: The first N attempts of each distinct request (path and query) answer 503.
        log_requests: Keep every request in :attr:`requests`; a long-running server (the
            standalone command) turns this off to keep its memory flat.

    Faults apply to the analytics and listing endpoints, after the authentication and
    organization checks, and before the query is validated. The fault options
    (``error_rate``, ``drop_rate``, ``truncate_rate``, ``latency``, ``slow_rate``,
    ``slow_delay``, ``fail_first``) are attributes that may be changed on a running server.
    So are the rate-limit options, checked when set; changing ``requests_per_minute``,
    ``rate_limit_burst``, ``rate_limit_algorithm``, ``rate_limit_window`` or
    ``shared_quota`` starts every organization's quota afresh.

    Rate limits, per organization, all read on the clock of ``freddy_async._clock`` (virtual
    inside :func:`~freddy_async.testing.instant_retries`):

    - ``token_bucket``: ``requests_per_minute / 60`` tokens a second refill a bucket of
      ``rate_limit_burst`` tokens; a request takes one. Reset: with no whole token left, when
      the bucket next holds one; else when it is full again.
    - ``fixed_window``: windows of W seconds aligned to multiples of W on the server's epoch
      clock (``clock_skew`` included); the count restarts at each. Reset: the window's end.
    - ``sliding_window``: a log of accepted requests (429s are not logged); a request is
      accepted while fewer than Q were accepted in the last W seconds. Reset: when the oldest
      logged request leaves the window (W from now when none is logged).

    Remaining (R) is the whole number of requests that would be accepted right now, after
    this one. ``Retry-After`` is the time until a request would be accepted: one token, the
    window's end, or the oldest logged request leaving (later if the other consumer of
    ``shared_quota``, which waits its turn first, takes that room). Q and W are written as
    integers when whole, else as decimals; times are rounded up to whole seconds (or
    milliseconds). Every answer carries the server's own ``Date`` (``clock_skew`` included).

    Raises:
        ValueError: an option is out of range.
    """

    def __init__(
        self,
        *,
        keys: int = 20,
        org_id: str = "org_demo",
        api_key: str | None = None,
        seed: int = 0,
        casing: Casing = "snake",
        list_shape: ListShape = "keys",
        invalid_params: InvalidParams = "fastapi",
        today: date | None = None,
        extra_orgs: Mapping[str, int] | None = None,
        port: int = 0,
        requests_per_minute: float | None = None,
        rate_limit_burst: float | None = None,
        rate_limit_algorithm: Algorithm = "token_bucket",
        rate_limit_window: float = 60.0,
        shared_quota: float = 0.0,
        rate_limit_headers: RateLimitHeaders = "x-ratelimit",
        rate_limit_reset: ResetFormat = "epoch",
        retry_after_format: RetryAfterFormat = "seconds",
        clock_skew: float = 0.0,
        exhausted_keys: Collection[str] = (),
        error_rate: float = 0.0,
        drop_rate: float = 0.0,
        truncate_rate: float = 0.0,
        latency: float = 0.0,
        slow_rate: float = 0.0,
        slow_delay: float = 30.0,
        fail_first: int = 0,
        log_requests: bool = True,
    ) -> None:
        if casing not in ("camel", "snake", "docs"):
            raise ValueError(f"casing must be 'camel', 'snake' or 'docs', not {casing!r}")
        if list_shape not in ("keys", "api_keys"):
            raise ValueError(f"list_shape must be 'keys' or 'api_keys', not {list_shape!r}")
        _choice("invalid_params", invalid_params, get_args(InvalidParams))
        if today is not None and not isinstance(today, date):
            raise ValueError(f"today must be a datetime.date, not {today!r}")
        if not 0 <= port <= 65535:
            raise ValueError(f"port must be from 0 to 65535, not {port}")
        if fail_first < 0:
            raise ValueError(f"fail_first must be zero or more, not {fail_first}")
        self._limits = _RateLimits(
            requests_per_minute=requests_per_minute,
            rate_limit_burst=rate_limit_burst,
            rate_limit_algorithm=rate_limit_algorithm,
            rate_limit_window=rate_limit_window,
            shared_quota=shared_quota,
            rate_limit_headers=rate_limit_headers,
            rate_limit_reset=rate_limit_reset,
            retry_after_format=retry_after_format,
            clock_skew=clock_skew,
            exhausted_keys=cast("frozenset[str]", exhausted_keys),  # made one when checked
        )
        self._limiters: dict[str, Limiter] = {}
        self._decided_at: float | None = None
        if api_key is not None and not api_key:
            raise ValueError("api_key must not be empty")
        orgs = {_check_org_id(org_id): keys, **(extra_orgs or {})}
        if len(orgs) != 1 + len(extra_orgs or {}):
            raise ValueError(f"extra_orgs must not repeat org_id {org_id!r}")
        taken: set[str] = set()
        self._orgs: dict[str, list[KeyProfile]] = {}
        for org, count in orgs.items():
            if count < 0:
                raise ValueError(f"key count of {org!r} must be zero or more, not {count}")
            self._orgs[_check_org_id(org)] = make_keys(seed, org, count, taken)
        self._keys = {k.key_id: k for profiles in self._orgs.values() for k in profiles}

        self.api_key: str = api_key if api_key is not None else f"fk_{secrets.token_urlsafe(24)}"
        """The value every request must send in ``X-API-Key``."""
        self.org_id: str = org_id
        """The main organization."""
        self.seed: int = seed
        self.casing: Casing = casing
        self.list_shape: ListShape = list_shape
        self.invalid_params: InvalidParams = invalid_params
        self._fixed_today = today
        self.error_rate = _check_rate("error_rate", error_rate)
        self.drop_rate = _check_rate("drop_rate", drop_rate)
        self.truncate_rate = _check_rate("truncate_rate", truncate_rate)
        self.slow_rate = _check_rate("slow_rate", slow_rate)
        self.latency = _check_seconds("latency", latency)
        self.slow_delay = _check_seconds("slow_delay", slow_delay)
        self.fail_first = fail_first

        self.log_requests = log_requests
        self.requests: list[RecordedRequest] = []
        """Every request received, in arrival order (cleared by :meth:`reset_counters`)."""
        self._request_count = 0
        self.rate_limited_count = 0
        """429 answers given by the rate limiter."""
        self.spending_limited_count = 0
        """429 answers given for ``exhausted_keys``."""
        self.faults = FaultCounts()
        """Answers of each injected fault."""
        self._fetches: Counter[tuple[str, int, int]] = Counter()
        self._daily_fetches: Counter[tuple[str, int, int]] = Counter()
        self._limits_fetches: Counter[tuple[str, int, int]] = Counter()
        self._summary_fetches: Counter[tuple[str, int, int]] = Counter()
        self._attempts: Counter[str] = Counter()
        self._totals: dict[tuple[str, int, int, int], MonthTotals] = {}
        self._daily: dict[tuple[str, int, int, int], tuple[list[DayRow], MonthTotals]] = {}

        self._port = port
        self._runner: web.AppRunner | None = None
        self._closing: asyncio.Event | None = None
        self._idle: asyncio.Event | None = None
        self._inflight = 0
        self._arrived = asyncio.Event()

    requests_per_minute = _LimitOption[float | None]()
    rate_limit_algorithm = _LimitOption[Algorithm]()
    rate_limit_window = _LimitOption[float]()
    shared_quota = _LimitOption[float]()
    rate_limit_headers = _LimitOption[RateLimitHeaders]()
    rate_limit_reset = _LimitOption[ResetFormat]()
    retry_after_format = _LimitOption[RetryAfterFormat]()
    clock_skew = _LimitOption[float]()
    exhausted_keys = _LimitOption[Collection[str]]()

    @property
    def rate_limit_burst(self) -> float | None:
        """The token bucket's capacity (the default filled in); None without a limit."""
        return self._limits.burst

    @rate_limit_burst.setter
    def rate_limit_burst(self, value: float | None) -> None:
        self._set_limits(rate_limit_burst=value)

    def _set_limits(self, **changes: Any) -> None:
        limits = dataclasses.replace(self._limits, **changes)  # checks, or raises ValueError
        if any(getattr(limits, n) != getattr(self._limits, n) for n in _RateLimits.SHAPING):
            self._limiters.clear()
        self._limits = limits

    def __repr__(self) -> str:
        # The API key stays out on purpose: reprs end up in logs.
        where = self.base_url if self._runner is not None else "stopped"
        return f"<FakeFreddyServer {where} org_id={self.org_id!r} keys={len(self.key_ids)}>"

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Start listening on 127.0.0.1.

        Raises:
            RuntimeError: the server is already running.
            OSError: the port cannot be bound.
        """
        if self._runner is not None:
            raise RuntimeError("the server is already running")
        # Events bind to the loop that first uses them: fresh ones let a stopped server be
        # started again on another loop (one per test, with pytest-asyncio).
        self._closing = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._arrived = asyncio.Event()
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        app.on_response_prepare.append(self._stamp_date)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=_SHUTDOWN_TIMEOUT)
        await runner.setup()
        try:
            site = web.TCPSite(runner, _HOST, self._port)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._port = runner.addresses[0][1]
        self._runner = runner

    async def stop(self) -> None:
        """Stop the server; answers still held back are cut off. Does nothing when stopped."""
        runner, self._runner = self._runner, None
        if runner is None:
            return
        assert self._closing is not None
        assert self._idle is not None
        # Wake the handlers sleeping on latency or slow_delay so that none outlives the loop;
        # runner.cleanup() cancels whatever is still left after the wait.
        self._closing.set()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._idle.wait(), _DRAIN_TIMEOUT)
        await runner.cleanup()

    async def __aenter__(self) -> FakeFreddyServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # -- what tests read -------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The port listened on (the chosen one once started with ``port=0``)."""
        return self._port

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``, to pass as the client's base URL.

        Raises:
            RuntimeError: the server has not been started.
        """
        if self._runner is None:
            raise RuntimeError("the server is not running; use 'async with' or start()")
        return f"http://{_HOST}:{self._port}"

    @property
    def key_ids(self) -> list[str]:
        """IDs of the main organization's keys, in listing order (stable for a seed)."""
        return self.key_ids_for(self.org_id)

    @property
    def org_ids(self) -> list[str]:
        """Every organization the server knows, ``org_id`` first."""
        return list(self._orgs)

    def key_ids_for(self, org_id: str) -> list[str]:
        """IDs of one organization's keys, in listing order.

        Raises:
            KeyError: the server does not know that organization.
        """
        return [k.key_id for k in self._orgs[org_id]]

    @property
    def request_count(self) -> int:
        """Requests received on any path (since the last :meth:`reset_counters`)."""
        return self._request_count

    async def wait_for_requests(self, count: int = 1) -> None:
        """Return once at least ``count`` requests have arrived (since the last reset).

        Handy to act while a request is in flight, e.g. held back by ``latency``.
        """
        while self.request_count < count:
            self._arrived.clear()
            await self._arrived.wait()

    def fetch_count(self, key_id: str, year: int, month: int) -> int:
        """How many times the usage endpoint was hit for this key and month.

        Every hit counts, including those answered with an error or a fault.
        """
        return self._fetches[(key_id, year, month)]

    def daily_fetch_count(self, year: int, month: int, *, org_id: str | None = None) -> int:
        """How many times the daily endpoint was hit for this organization and month."""
        return self._daily_fetches[(org_id or self.org_id, year, month)]

    def limits_fetch_count(self, year: int, month: int, *, org_id: str | None = None) -> int:
        """How many times the usage-limits endpoint was hit for this organization and month."""
        return self._limits_fetches[(org_id or self.org_id, year, month)]

    def summary_fetch_count(self, year: int, month: int, *, org_id: str | None = None) -> int:
        """How many times the summary endpoint was hit for this organization and month."""
        return self._summary_fetches[(org_id or self.org_id, year, month)]

    def reset_counters(self) -> None:
        """Forget every request, count and ``fail_first`` attempt (rate limits stay as they are)."""
        self.requests.clear()
        self._request_count = 0
        self.rate_limited_count = 0
        self.spending_limited_count = 0
        self.faults.reset()
        self._fetches.clear()
        self._daily_fetches.clear()
        self._limits_fetches.clear()
        self._summary_fetches.clear()
        self._attempts.clear()

    # -- expected values (no HTTP) ---------------------------------------------------------

    def _key(self, key_id: str) -> KeyProfile:
        try:
            return self._keys[key_id]
        except KeyError:
            raise KeyError(f"the server has no API key {key_id!r}") from None

    @property
    def today(self) -> date:
        """The server's date: ``today`` as given, else the UTC date of its clock (skew included).

        Days after it have no traffic yet: a future month is all zeros, and the current month
        has its days up to and including today, the same in every answer and ``expected_*``.
        """
        if self._fixed_today is not None:
            return self._fixed_today
        return datetime.fromtimestamp(self._server_now(), timezone.utc).date()

    def _through(self, year: int, month: int) -> int:
        return days_passed(year, month, self.today)

    def _month_totals(self, key: KeyProfile, year: int, month: int) -> MonthTotals:
        cache_key = (key.key_id, year, month, self._through(year, month))
        totals = self._totals.get(cache_key)
        if totals is None:
            totals = month_totals(key_days(self.seed, key, year, month, cache_key[3]))
            self._totals[cache_key] = totals
        return totals

    def expected_usage(self, key_id: str, year: int, month: int) -> dict[str, Any]:
        """Return the usage body the server answers for this key and month.

        Keys are snake_case whatever ``casing`` is; money is ``Decimal`` (totals and limits
        with 2 decimals, ``average_cost_per_request`` with 4, zero without traffic); a key
        without a limit has ``monthly_limit`` and ``remaining_budget`` None, status
        ``"no_limit"`` and ``utilization_percentage`` 0.

        Raises:
            KeyError: the server has no such key.
        """
        key = self._key(key_id)
        return usage_body(key, self._month_totals(key, year, month), year, month)

    def _org_month(self, org_id: str, year: int, month: int) -> tuple[list[DayRow], MonthTotals]:
        cache_key = (org_id, year, month, self._through(year, month))
        cached = self._daily.get(cache_key)
        if cached is None:
            keys = self._orgs[org_id]
            totals = MonthTotals()
            for key in keys:
                totals += self._month_totals(key, year, month)
            cached = (org_days(self.seed, keys, year, month, cache_key[3]), totals)
            self._daily[cache_key] = cached
        return cached

    def expected_daily(self, year: int, month: int, *, org_id: str | None = None) -> dict[str, Any]:
        """Return the daily body the server answers, snake_case, without ``generated_at``.

        ``daily_usage`` runs newest first and leaves out days without traffic.

        Raises:
            KeyError: the server does not know that organization.
        """
        org = org_id or self.org_id
        rows, totals = self._org_month(org, year, month)
        return daily_body(org, rows, totals, year, month)

    def expected_limits(self, year: int, month: int, *, org_id: str | None = None) -> dict[str, Any]:
        """Return the usage-limits body the server answers, snake_case, money as ``Decimal``.

        ``api_key_limits`` holds every key in listing order, each ``current_usage`` equal to
        the key's ``usage.total_cost`` that month (:meth:`expected_usage`), and
        ``organization_limits.current_usage`` their sum. The organization's limit depends on
        the seed; ``api_limits`` has none. ``summary.overall_status`` is the worst status of
        the organization and its keys (exceeded, warning, ok, no_limit).

        Raises:
            KeyError: the server does not know that organization.
        """
        org = org_id or self.org_id
        keys = self._orgs[org]
        return limits_body(
            org_limit_centimes(self.seed, org, len(keys)),
            [(key, self._month_totals(key, year, month)) for key in keys],
        )

    def expected_summary(self, year: int, month: int, *, org_id: str | None = None) -> dict[str, Any]:
        """Return the summary body the server answers, snake_case, without ``generated_at``:
        the ``summary`` of :meth:`expected_daily`.

        Raises:
            KeyError: the server does not know that organization.
        """
        org = org_id or self.org_id
        _, totals = self._org_month(org, year, month)
        return summary_body(org, totals, year, month)

    def expected_keys(self, *, org_id: str | None = None) -> list[dict[str, Any]]:
        """Return every key object of the listing, in order (``usage_limit_chf`` as Decimal).

        Raises:
            KeyError: the server does not know that organization.
        """
        return [key_object(k) for k in self._orgs[org_id or self.org_id]]

    def expected_totals(
        self,
        key_ids: Iterable[str] | None = None,
        *,
        months: Iterable[MonthLike],
        org_id: str | None = None,
    ) -> ExpectedTotals:
        """Sum the usage of ``key_ids`` (default: every key of ``org_id``) over ``months``.

        Raises:
            KeyError: an unknown key or organization.
            ValueError: a month is not valid.
        """
        profiles = self._orgs[org_id or self.org_id] if key_ids is None else [self._key(k) for k in key_ids]
        total = MonthTotals()
        for year, month in (_month_of(m) for m in months):
            for key in profiles:
                total += self._month_totals(key, year, month)
        return ExpectedTotals(total.requests, total.cost, total.synapses, total.neurons)

    def expected_total_cost(
        self,
        key_ids: Iterable[str] | None = None,
        *,
        months: Iterable[MonthLike],
        org_id: str | None = None,
    ) -> Decimal:
        """Sum of ``total_cost`` over ``key_ids`` x ``months``, exact (see :meth:`expected_totals`)."""
        return self.expected_totals(key_ids, months=months, org_id=org_id).cost

    def expected_total_requests(
        self,
        key_ids: Iterable[str] | None = None,
        *,
        months: Iterable[MonthLike],
        org_id: str | None = None,
    ) -> int:
        """Sum of ``total_requests`` over ``key_ids`` x ``months`` (see :meth:`expected_totals`)."""
        return self.expected_totals(key_ids, months=months, org_id=org_id).requests

    def keys_with_status(self, status: str, year: int, month: int, *, org_id: str | None = None) -> list[str]:
        """IDs of the keys whose limit status that month is ``status`` (e.g. ``"exceeded"``)."""
        return [
            k.key_id
            for k in self._orgs[org_id or self.org_id]
            if self.expected_usage(k.key_id, year, month)["limit"]["status"] == status
        ]

    def keys_without_traffic(self, year: int, month: int, *, org_id: str | None = None) -> list[str]:
        """IDs of the keys with zero requests that month."""
        return [
            k.key_id
            for k in self._orgs[org_id or self.org_id]
            if self._month_totals(k, year, month).requests == 0
        ]

    # -- serving ---------------------------------------------------------------------------

    async def _pause(self, seconds: float) -> None:
        """Sleep, unless the server stops first: then hang up."""
        assert self._closing is not None
        if self._closing.is_set():
            raise _Hangup
        try:
            await asyncio.wait_for(self._closing.wait(), seconds)
        except asyncio.TimeoutError:
            return
        raise _Hangup

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        assert self._idle is not None
        path, _, query = request.raw_path.partition("?")
        record = RecordedRequest(request.method, path, query)
        self._request_count += 1
        if self.log_requests:
            self.requests.append(record)
        self._arrived.set()
        self._inflight += 1
        self._idle.clear()
        try:
            if self.latency:
                await self._pause(self.latency)
            response = await self._route(request, record, path)
        except _Answer as answer:
            response = answer.response
        except _Hangup:
            # An injected drop has named itself; otherwise the server is stopping.
            record.status = None
            if request.transport is not None:
                request.transport.close()
            # Nothing reaches the client: the transport is already closed.
            return web.Response(status=499)
        finally:
            self._inflight -= 1
            if not self._inflight:
                self._idle.set()
        if record.status is None:
            record.status = response.status
        return response

    async def _route(self, request: web.Request, record: RecordedRequest, path: str) -> web.StreamResponse:
        parts = [unquote(segment) for segment in path.split("/")[1:]]
        kind: str | None = None
        org_id = ""
        if len(parts) == 6 and parts[:4] == ["v1", "analytics", "api-keys", "usage"]:
            kind, org_id = "usage", parts[4]
            self._count_usage(request, parts[5])
        elif len(parts) == 5 and parts[:4] == ["v1", "analytics", "api-keys", "daily"]:
            kind, org_id = "daily", parts[4]
            self._count_month(self._daily_fetches, request, org_id)
        elif len(parts) == 5 and parts[:4] == ["v1", "analytics", "usage", "limits"]:
            kind, org_id = "limits", parts[4]
            self._count_month(self._limits_fetches, request, org_id)
        elif len(parts) == 5 and parts[:4] == ["v1", "analytics", "api-keys", "summary"]:
            kind, org_id = "summary", parts[4]
            self._count_month(self._summary_fetches, request, org_id)
        elif len(parts) == 4 and parts[:2] == ["v1", "organizations"] and parts[3] == "api-keys":
            kind, org_id = "list", parts[2]
        if kind is None or not all(parts):
            raise _error(404, "NOT_FOUND", "Not found", details={"path": path})
        if request.method != "GET":
            raise _error(
                405,
                "METHOD_NOT_ALLOWED",
                "Method not allowed",
                details={"method": request.method},
                headers={"Allow": "GET"},
            )
        self._authenticate(request)
        if org_id not in self._orgs:
            raise _error(
                403,
                "ORGANIZATION_ACCESS_DENIED",
                "Access denied to organization",
                system_message="API key doesn't belong to organization",
                error_type="authorization_error",
                details={"organization_id": org_id},
            )
        if kind == "usage":
            self._check_spending(org_id, parts[5])
        rate_headers = self._rate_limit(org_id) if kind != "list" else {}
        plan = self._plan(path, record.query_string)
        await self._misbehave(plan, record)
        if kind == "usage":
            body = self._usage(request, org_id, parts[5])
        elif kind == "daily":
            body = self._daily_answer(request, org_id)
        elif kind == "limits":
            body = self._limits_answer(request, org_id)
        elif kind == "summary":
            body = self._summary_answer(request, org_id)
        else:
            body = self._listing(request, org_id)
        if plan.slow:
            self.faults.slow += 1
            record.fault = "slow"
            await self._pause(self.slow_delay)
        if plan.truncate:
            return await self._truncated(request, record, body, rate_headers, plan)
        return _json(200, body, rate_headers)

    def _authenticate(self, request: web.Request) -> None:
        sent = request.headers.get("X-API-Key")
        if not sent:
            raise _error(
                401,
                "AUTHENTICATION_REQUIRED",
                "Authentication required",
                system_message="No API key provided",
            )
        sent_bytes = sent.encode("utf-8", "surrogateescape")
        if not secrets.compare_digest(sent_bytes, self.api_key.encode("utf-8")):
            raise _error(401, "INVALID_API_KEY", "Invalid API key")

    def _server_now(self) -> float:
        """The server's epoch clock: the one clock of the library, plus ``clock_skew``."""
        return _clock.wall() + self._limits.clock_skew

    def _decision_time(self) -> float:
        return self._decided_at if self._decided_at is not None else self._server_now()

    async def _stamp_date(self, request: web.Request, response: web.StreamResponse) -> None:
        # aiohttp keeps a Date it is given: this one follows the virtual clock and the skew.
        response.headers["Date"] = _http_date(self._server_now())

    def _check_spending(self, org_id: str, key_id: str) -> None:
        """Answer 429 for a key whose spending limit is used up: no throttling, a long wait."""
        if key_id not in self._limits.exhausted_keys:
            return
        self.spending_limited_count += 1
        headers, _ = _retry_after(self._limits, _SPENDING_RETRY_AFTER, self._server_now())
        raise _error(
            429,
            "USAGE_LIMIT_EXCEEDED",
            "Usage limit exceeded",
            system_message="The API key's spending limit is used up",
            details={"api_key_id": key_id, "organization_id": org_id},
            headers=headers,
        )

    def _limiter(self, org_id: str) -> Limiter:
        limiter = self._limiters.get(org_id)
        if limiter is None:
            limiter = self._limiters[org_id] = self._new_limiter()
        return limiter

    def _new_limiter(self) -> Limiter:
        limits = self._limits
        assert limits.quota is not None
        assert limits.requests_per_minute is not None
        assert limits.burst is not None
        window = limits.rate_limit_window
        shared = limits.shared_quota * limits.requests_per_minute / 60
        if limits.rate_limit_algorithm == "fixed_window":
            # Real servers align fixed windows to their own epoch clock.
            return FixedWindow(limits.quota, window, self._decision_time, shared_rate=shared)
        if limits.rate_limit_algorithm == "sliding_window":
            return SlidingWindow(limits.quota, window, _clock.now, shared_rate=shared)
        return TokenBucket(limits.quota, window, _clock.now, capacity=limits.burst, shared_rate=shared)

    def _rate_limit(self, org_id: str) -> dict[str, str]:
        """Pass the request through its organization's limit; answer 429 when there is no room."""
        limits = self._limits
        if limits.quota is None:
            return {}
        # One reading of the clock for the decision and its headers: read twice, a window's end
        # (a whole second) could be written a microsecond late, and rounded up a second late.
        server_now = self._decided_at = self._server_now()
        try:
            verdict = self._limiter(org_id).take()
        finally:
            self._decided_at = None
        headers = _budget_headers(limits, verdict, server_now)
        if verdict.accepted:
            return headers
        self.rate_limited_count += 1
        wait_headers, wait = _retry_after(limits, verdict.retry_after, server_now)
        details: dict[str, Any] = {"organization_id": org_id}
        if wait is not None:
            details["retry_after"] = wait
        raise _error(
            429,
            "RATE_LIMIT_EXCEEDED",
            "Rate limit exceeded",
            system_message=(
                f"More than {_number_text(limits.quota)} requests in "
                f"{_number_text(limits.rate_limit_window)} seconds"
            ),
            details=details,
            headers={**headers, **wait_headers},
        )

    def _plan(self, path: str, query: str) -> Plan:
        rates = (self.error_rate, self.drop_rate, self.truncate_rate, self.slow_rate)
        if not self.fail_first and not any(rates):
            return _NO_FAULT  # and no attempt bookkeeping for a well-behaved server
        request_key = f"{path}?{query}"
        attempt = self._attempts[request_key]
        self._attempts[request_key] = attempt + 1
        return plan_attempt(
            seed=self.seed,
            request_key=request_key,
            attempt=attempt,
            fail_first=self.fail_first,
            error_rate=self.error_rate,
            drop_rate=self.drop_rate,
            truncate_rate=self.truncate_rate,
            slow_rate=self.slow_rate,
        )

    async def _misbehave(self, plan: Plan, record: RecordedRequest) -> None:
        """Give the planned fault answer, if the plan has one that replaces the answer."""
        if plan.fail_first:
            self.faults.fail_first += 1
            record.fault = "fail_first"
            raise _error(
                503,
                "SERVICE_UNAVAILABLE",
                "Service temporarily unavailable",
                error_type="server_error",
            )
        if plan.drop:
            self.faults.dropped += 1
            record.fault = "dropped"
            raise _Hangup
        if plan.error_status == 500:
            self.faults.error_500 += 1
            record.fault = "error_500"
            raise _error(
                500,
                "INTERNAL_ERROR",
                "An unexpected error occurred",
                system_message="Database query failed",
                error_type="server_error",
            )
        if plan.error_status == 502:
            self.faults.error_502 += 1
            record.fault = "error_502"
            raise _Answer(web.Response(status=502, text=_BAD_GATEWAY_HTML, content_type="text/html"))
        if plan.error_status == 503:
            self.faults.error_503 += 1
            record.fault = "error_503"
            if plan.error_variant < 0.5:
                raise _Answer(web.Response(status=503))
            raise _error(
                503,
                "SERVICE_UNAVAILABLE",
                "Service temporarily unavailable",
                error_type="server_error",
            )

    async def _truncated(
        self,
        request: web.Request,
        record: RecordedRequest,
        body: Any,
        headers: Mapping[str, str],
        plan: Plan,
    ) -> web.StreamResponse:
        """Declare the whole body's length, send part of it, then close the connection."""
        data = dumps(body)
        response = web.StreamResponse(status=200, headers=headers)
        response.content_type = "application/json"
        response.content_length = len(data)
        await response.prepare(request)
        await response.write(data[: max(1, int(len(data) * plan.truncate_share))])
        self.faults.truncated += 1
        record.fault = "truncated"
        record.status = 200
        # close() still flushes what was written; the client then misses the rest.
        if request.transport is not None:
            request.transport.close()
        return response

    # -- the three endpoints ---------------------------------------------------------------

    def _count_usage(self, request: web.Request, key_id: str) -> None:
        period = read_period(request.query, self.today)
        if isinstance(period, tuple):
            self._fetches[(key_id, period[0], period[1])] += 1

    def _count_month(self, counter: Counter[tuple[str, int, int]], request: web.Request, org_id: str) -> None:
        period = read_period(request.query, self.today)
        if isinstance(period, tuple):
            counter[(org_id, period[0], period[1])] += 1

    def _period(self, request: web.Request, years: tuple[int, int] | None = None) -> tuple[int, int]:
        """Read ``year`` and ``month`` (default: the server's current month)."""
        period = read_period(request.query, self.today, years=years)
        if isinstance(period, list):
            raise self._invalid(period)
        return period

    def _invalid(self, problems: list[Problem]) -> _Answer:
        status, body = invalid_answer(problems, self.invalid_params)
        return _Answer(_json(status, body))

    def _usage(self, request: web.Request, org_id: str, key_id: str) -> Any:
        year, month = self._period(request)
        key = self._keys.get(key_id)
        if key is None:
            raise _error(
                404,
                "API_KEY_NOT_FOUND",
                "API key not found",
                details={"api_key_id": key_id},
            )
        if key.organization_id != org_id:
            raise _error(
                403,
                "ORGANIZATION_ACCESS_DENIED",
                "You don't have permission to access this API key",
                system_message="Authorization error",
                details={"api_key_id": key_id, "organization_id": org_id},
            )
        body = usage_body(key, self._month_totals(key, year, month), year, month)
        return recase(body, self.casing)

    def _daily_answer(self, request: web.Request, org_id: str) -> Any:
        year, month = self._period(request, DAILY_YEARS)
        rows, totals = self._org_month(org_id, year, month)
        body = daily_body(org_id, rows, totals, year, month)
        # The daily page prints synapses and neurons as floats ("425000.0").
        for row in body["daily_usage"]:
            row["synapses"] = RawNumber(f"{row['synapses']}.0")
            row["neurons"] = RawNumber(f"{row['neurons']}.0")
        body["summary"] = self._as_printed(body["summary"])
        return recase(body, self.casing, DOCS_SNAKE_KEYS)

    @staticmethod
    def _as_printed(summary: dict[str, Any]) -> dict[str, Any]:
        """The month's summary as the pages print it: counts as floats, a ``generated_at``."""
        summary["total_synapses"] = RawNumber(f"{summary['total_synapses']}.0")
        summary["total_neurons"] = RawNumber(f"{summary['total_neurons']}.0")
        summary["generated_at"] = now_iso()
        return summary

    def _section4_casing(self) -> Casing:
        # API.md §4 prints these answers as the generated SDKs spell them: snake_case.
        return "snake" if self.casing == "docs" else self.casing

    def _limits_answer(self, request: web.Request, org_id: str) -> Any:
        year, month = self._period(request)
        body = self.expected_limits(year, month, org_id=org_id)
        return recase(body, self._section4_casing())

    def _summary_answer(self, request: web.Request, org_id: str) -> Any:
        year, month = self._period(request)
        body = self._as_printed(self.expected_summary(year, month, org_id=org_id))
        return recase(body, self._section4_casing())

    def _listing(self, request: web.Request, org_id: str) -> Any:
        paging = read_paging(request.query)
        if isinstance(paging, list):
            raise self._invalid(paging)
        page, size = paging
        keys = self._orgs[org_id]
        items = [key_object(k) for k in keys[(page - 1) * size : page * size]]
        if self.list_shape == "keys":
            return {"keys": items, "total": len(keys), "page": page, "page_size": size}
        return {
            "api_keys": items,
            "pagination": {
                "page": page,
                "page_size": size,
                "total_count": len(keys),
                "total_pages": -(-len(keys) // size),
            },
        }
