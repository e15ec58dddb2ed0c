"""Which failed requests are tried again, and how long to wait first. The only tenacity import.

Retried: no answer (connection errors, timeouts, cut-off bodies), 408, 429 and every 5xx; all the
API's calls are GETs, so a repeat is always safe. Never retried: other 4xx, a body that does not
fit the model, a TLS certificate that does not verify, a cancelled task. A call stops after
``max_retries`` retries or when the next wait would pass its deadline, whichever comes first,
and raises the last error with ``attempts`` set.
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import TypeVar

import attrs
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception

from . import _clock
from ._errors import APIConnectionError, APIStatusError, FreddyError

__all__ = [
    "RetryPolicy",
    "call_with_retries",
    "first_timeout",
    "header_number",
    "is_retryable",
    "parse_retry_after",
]

T = TypeVar("T")

logger = logging.getLogger("freddy_async")


@attrs.frozen
class RetryPolicy:
    """How hard one call tries. Defaults are the documented ones."""

    max_retries: int = 3
    deadline: float = 60.0
    initial_backoff: float = 0.5
    max_backoff: float = 8.0
    max_retry_after: float = 60.0


def is_retryable(exc: BaseException) -> bool:
    """True for the failures that another attempt can cure."""
    if isinstance(exc, APIConnectionError):
        return exc.retryable
    if isinstance(exc, APIStatusError):
        return exc.status in (408, 429) or exc.status >= 500
    return False


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds the server asks us to wait: ``retry-after-ms``, then ``Retry-After`` as seconds
    (0 and fractions included) or as an HTTP date. ``None`` when absent or unreadable."""
    millis = header_number(headers.get("retry-after-ms"))
    if millis is not None:
        return millis / 1000
    value = headers.get("Retry-After")
    if value is None:
        return None
    seconds = header_number(value)
    if seconds is not None:
        return seconds
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())


def header_number(text: str | None) -> float | None:
    """A header's value as a finite number >= 0, or ``None`` when absent or not one."""
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    # "-1", "nan" and "inf" are nonsense from a server: treated as if the header were absent.
    return value if 0 <= value < math.inf else None


def _describe(exc: BaseException | None) -> str:
    if isinstance(exc, APIStatusError):
        text = f"{exc.status} {exc.code or ''}".strip()
        return f"{text} trace_id={exc.trace_id}" if exc.trace_id else text
    return type(exc).__name__ if exc is not None else "?"


def first_timeout(policy: RetryPolicy, timeout: float) -> float:
    """The timeout of a call's first attempt (no attempt may outlive the call's deadline)."""
    return min(timeout, max(policy.deadline, 0.001))


async def call_with_retries(
    attempt: Callable[[float], Awaitable[T]],
    policy: RetryPolicy,
    *,
    failed: FreddyError,
    started: float,
    timeout: float,
    what: str,
) -> T:
    """Go on with a call whose first attempt failed with ``failed``: run
    ``attempt(timeout_for_this_attempt)`` until it succeeds or the policy gives up.

    The caller makes the first attempt itself, so the common, successful call never builds a
    tenacity loop (that would cost more CPU than the request). ``started`` is the call's start,
    read from ``_clock.now()``: the deadline counts from there.

    Raises:
        FreddyError: the last failure, its ``attempts`` set to how many were made.
    """
    count = failed.attempts = 1

    def remaining() -> float:
        return policy.deadline - (_clock.now() - started)

    async def one_attempt() -> T:
        nonlocal count
        count += 1
        try:
            # No attempt may outlive the call's deadline, but each gets at least a moment.
            return await attempt(min(timeout, max(remaining(), 0.001)))
        except FreddyError as exc:
            exc.attempts = count
            raise

    def wait(state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        retry_after = getattr(exc, "retry_after", None)
        if retry_after is not None:
            return float(min(retry_after, policy.max_retry_after))
        ceiling = min(policy.max_backoff, policy.initial_backoff * 2 ** (state.attempt_number - 1))
        return random.uniform(0, ceiling)  # full jitter: spreads out tasks that failed together

    def stop(state: RetryCallState) -> bool:
        if state.attempt_number > policy.max_retries:
            return True
        exc = state.outcome.exception() if state.outcome else None
        retry_after = getattr(exc, "retry_after", None)
        # A server that asks for more time than is left gets its answer now, not after a wait.
        needed = max(state.upcoming_sleep, retry_after or 0.0)
        return needed >= remaining()

    def log_retry(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        logger.info(
            "retrying %s in %.3f s: attempt %d of %d failed with %s",
            what,
            state.upcoming_sleep,
            state.attempt_number,
            policy.max_retries + 1,
            _describe(exc),
        )

    async def sleep(seconds: float) -> None:
        await _clock.sleep(seconds, "retry")

    if policy.max_retries == 0 or not is_retryable(failed):
        raise failed
    # The loop replays the first failure as its attempt 1, so tenacity decides everything after.
    first_failure: list[FreddyError] = [failed]

    async def replay_then_attempt() -> T:
        if first_failure:
            raise first_failure.pop()
        return await one_attempt()

    retrying = AsyncRetrying(
        retry=retry_if_exception(is_retryable),
        wait=wait,
        stop=stop,
        sleep=sleep,
        before_sleep=log_retry,
        reraise=True,
    )
    return await retrying(replay_then_attempt)
