"""Rate limits as real servers apply them: the options, the headers that tell the budget, the 429s.

Pure apart from the limiters' clocks, which the server hands in: :func:`take` passes one request
through its organization's :class:`~._faults.Limiter` and says what to answer. See
:class:`~._server.FakeFreddyServer` for what each option means.
"""

from __future__ import annotations

import email.utils
import math
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Generic, Literal, Protocol, TypeVar, cast, get_args, overload

from ._endpoints import Reply, error_reply
from ._faults import FixedWindow, Limiter, SlidingWindow, TokenBucket, Verdict
from ._wire import RawNumber

__all__ = [
    "Algorithm",
    "LimitOption",
    "RateLimitHeaders",
    "RateLimits",
    "ResetFormat",
    "RetryAfterFormat",
    "check_choice",
    "http_date",
    "new_limiter",
    "spending_refusal",
    "take",
]

Algorithm = Literal["token_bucket", "fixed_window", "sliding_window"]
RateLimitHeaders = Literal["x-ratelimit", "ietf", "ietf-structured", "none"]
ResetFormat = Literal["epoch", "epoch-ms", "delta"]
RetryAfterFormat = Literal["seconds", "fraction", "ms", "http-date", "none"]

# What a spent spending limit says to wait: a day, as such answers do (API.md, rate limits).
_SPENDING_RETRY_AFTER = 86400.0


def _number_text(value: float) -> str:
    """An integer when whole, else the shortest decimals that read back the same float."""
    if float(value).is_integer():
        return str(int(value))
    return f"{Decimal(repr(float(value))):f}"  # never an exponent, as in repr(1e-05)


def check_choice(name: str, value: object, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, allowed))}, not {value!r}")


@dataclass(frozen=True)
class RateLimits:
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
        check_choice("rate_limit_algorithm", self.rate_limit_algorithm, get_args(Algorithm))
        if not 0 < window < math.inf:
            raise ValueError(f"rate_limit_window must be a positive number of seconds, not {window}")
        if not 0 <= share < 1:
            raise ValueError(f"shared_quota must be from 0 to below 1, not {share}")
        check_choice("rate_limit_headers", self.rate_limit_headers, get_args(RateLimitHeaders))
        check_choice("rate_limit_reset", self.rate_limit_reset, get_args(ResetFormat))
        check_choice("retry_after_format", self.retry_after_format, get_args(RetryAfterFormat))
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


class _Configurable(Protocol):
    _limits: RateLimits

    def _set_limits(self, **changes: Any) -> None: ...


class LimitOption(Generic[_T]):
    """A rate-limit option of the server: checked when set, and in force from the next request."""

    def __set_name__(self, owner: type[Any], name: str) -> None:
        self._name = name

    @overload
    def __get__(self, server: None, owner: type[Any]) -> LimitOption[_T]: ...

    @overload
    def __get__(self, server: _Configurable, owner: type[Any]) -> _T: ...

    def __get__(self, server: _Configurable | None, owner: type[Any]) -> _T | LimitOption[_T]:
        if server is None:
            return self
        return cast("_T", getattr(server._limits, self._name))

    def __set__(self, server: _Configurable, value: _T) -> None:
        server._set_limits(**{self._name: value})


def _round_up(seconds: float) -> int:
    # To the microsecond first, so that float noise around a whole second (a window's end
    # computed as now + (end - now)) does not add a second; the limiters take a request a
    # microsecond early as on time.
    return math.ceil(round(seconds, 6))


def http_date(epoch: float) -> str:
    """RFC 9110 IMF-fixdate, e.g. ``Sun, 06 Nov 1994 08:49:37 GMT``."""
    return email.utils.formatdate(epoch, usegmt=True)


def _reset_text(limits: RateLimits, seconds: float, server_now: float) -> str:
    if limits.rate_limit_reset == "delta":
        return str(_round_up(seconds))
    if limits.rate_limit_reset == "epoch-ms":
        return str(_round_up((server_now + seconds) * 1000))
    return str(_round_up(server_now + seconds))


def _budget_headers(limits: RateLimits, verdict: Verdict, server_now: float) -> dict[str, str]:
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
    limits: RateLimits, wait: float, server_now: float
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
        return {"Retry-After": http_date(_round_up(server_now + wait))}, RawNumber(seconds)
    return {}, None


def new_limiter(limits: RateLimits, now: Callable[[], float], server_now: Callable[[], float]) -> Limiter:
    """A fresh limiter for one organization; ``now`` is monotonic, ``server_now`` the server's
    epoch clock (skew included), which fixed windows align to, as real servers do."""
    assert limits.quota is not None
    assert limits.requests_per_minute is not None
    assert limits.burst is not None
    window = limits.rate_limit_window
    shared = limits.shared_quota * limits.requests_per_minute / 60
    if limits.rate_limit_algorithm == "fixed_window":
        return FixedWindow(limits.quota, window, server_now, shared_rate=shared)
    if limits.rate_limit_algorithm == "sliding_window":
        return SlidingWindow(limits.quota, window, now, shared_rate=shared)
    return TokenBucket(limits.quota, window, now, capacity=limits.burst, shared_rate=shared)


def take(
    limits: RateLimits, limiter: Limiter, org_id: str, server_now: float
) -> tuple[dict[str, str], Reply | None]:
    """Pass one request through ``limiter``: the budget headers of the answer, and the 429 to
    send instead of it when there is no room (None when there is)."""
    verdict = limiter.take()
    headers = _budget_headers(limits, verdict, server_now)
    if verdict.accepted:
        return headers, None
    assert limits.quota is not None
    wait_headers, wait = _retry_after(limits, verdict.retry_after, server_now)
    details: dict[str, Any] = {"organization_id": org_id}
    if wait is not None:
        details["retry_after"] = wait
    refusal = error_reply(
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
    return headers, refusal


def spending_refusal(limits: RateLimits, org_id: str, key_id: str, server_now: float) -> Reply:
    """The 429 of a key whose spending limit is used up: no throttling, a long wait."""
    headers, _ = _retry_after(limits, _SPENDING_RETRY_AFTER, server_now)
    return error_reply(
        429,
        "USAGE_LIMIT_EXCEEDED",
        "Usage limit exceeded",
        system_message="The API key's spending limit is used up",
        details={"api_key_id": key_id, "organization_id": org_id},
        headers=headers,
    )
