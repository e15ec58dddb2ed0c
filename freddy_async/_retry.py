"""Which failed requests are tried again, and how long to wait first. The only tenacity import.

The decisions are pure functions of the policy, the attempt and the failure (:func:`is_retryable`,
:func:`backoff`, :func:`gives_up`, and :func:`waits_out` for a 429); :func:`retry` hands them to
tenacity, which runs the loop, and is entered only after a call's first attempt failed.

Retried: no answer (connection errors, timeouts, cut-off bodies), 408 and every 5xx; all the
API's calls are GETs, so a repeat is always safe. Never retried here: other 4xx, a body that does
not fit the model, a TLS certificate that does not verify, a cancelled task. A 429 is not a
failure at all: the client waits it out as flow control before a call ever gets here (see
``_ratelimit``), unless :func:`waits_out` says it is none (then it is raised at once). A call
stops after ``max_retries`` retries or when the next wait would pass its deadline, whichever
comes first, and raises the last error.

How long a retry waits (a ``Retry-After`` aside, which is honoured up to ``max_retry_after``):

- after an answer (408, 5xx), *full jitter*: uniformly 0 to ``initial_backoff * 2**n`` (0-0.5 s,
  0-1 s, 0-2 s, ... up to ``max_backoff``). The server is up; tasks that failed together spread
  out at once.
- after no answer (refused, reset, cut short, timed out), *equal jitter on twice the base*:
  uniformly half to all of ``2 * initial_backoff * 2**n`` (0.5-1 s, 1-2 s, 2-4 s, ...). A server
  that is restarting takes seconds to come back, and full jitter could spend all three default
  retries within a second of the first refusal; with this floor they span at least 3.5 s, still
  spread out by up to as much again.
"""

from __future__ import annotations

import functools
import logging
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

import attrs
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception

from . import _clock, _config
from ._errors import APIConnectionError, APIStatusError, FreddyError

__all__ = [
    "RetryPolicy",
    "backoff",
    "first_timeout",
    "gives_up",
    "is_retryable",
    "retry",
    "waits_out",
]

T = TypeVar("T")

logger = logging.getLogger("freddy_async")


@attrs.frozen
class RetryPolicy:
    """How hard one call tries. Defaults are the documented ones (see ``_config``)."""

    max_retries: int = _config.MAX_RETRIES
    deadline: float = _config.RETRY_DEADLINE
    initial_backoff: float = _config.INITIAL_BACKOFF
    max_backoff: float = _config.MAX_BACKOFF
    max_retry_after: float = _config.MAX_WAIT


# -- the decisions: pure functions of the policy, the attempt and the failure --------------------


def is_retryable(exc: BaseException) -> bool:
    """True for the failures that another attempt can cure."""
    if isinstance(exc, APIConnectionError):
        return exc.retryable
    if isinstance(exc, APIStatusError):
        return exc.status == 408 or exc.status >= 500
    return False


def backoff(policy: RetryPolicy, attempts: int, failure: BaseException | None) -> float:
    """Seconds to wait after ``attempts`` attempts, the last of which failed with ``failure``."""
    retry_after = getattr(failure, "retry_after", None)
    if retry_after is not None:
        return float(min(retry_after, policy.max_retry_after))
    base = policy.initial_backoff * 2 ** (attempts - 1)
    if isinstance(failure, APIConnectionError):
        ceiling = min(policy.max_backoff, 2 * base)
        return random.uniform(ceiling / 2, ceiling)  # equal jitter: see the module docstring
    return random.uniform(0, min(policy.max_backoff, base))  # full jitter


def gives_up(
    policy: RetryPolicy, attempts: int, failure: BaseException | None, wait: float, remaining: float
) -> bool:
    """True when a call that made ``attempts`` attempts stops: no retry left, or no time for the wait."""
    if attempts > policy.max_retries:
        return True
    # A server that asks for more time than is left gets its answer now, not after a wait.
    needed = max(wait, getattr(failure, "retry_after", None) or 0.0)
    return needed >= remaining


def waits_out(retry_after: float | None, now: float, deadline: float) -> bool:
    """True when a 429 asking for ``retry_after`` seconds is flow control to wait out.

    A wait past the call's deadline would only end in failure; a wait past ``MAX_WAIT`` is a
    spending limit used up (hours or days), not throttling: both are raised at once.
    """
    if retry_after is None:
        return True
    return retry_after <= _config.MAX_WAIT and now + retry_after <= deadline


def first_timeout(policy: RetryPolicy, timeout: float) -> float:
    """The timeout of a call's first attempt (no attempt may outlive the call's deadline)."""
    return min(timeout, max(policy.deadline, 0.001))


# -- tenacity, handed those decisions ------------------------------------------------------------


async def retry(
    failed: FreddyError,
    attempt: Callable[[float], Awaitable[T]],
    policy: RetryPolicy,
    *,
    started: float,
    timeout: float,
    what: str,
) -> T:
    """Go on with a call whose first attempt failed with ``failed``: run
    ``attempt(timeout_for_this_attempt)`` until it succeeds or the policy gives up.

    The caller makes the first attempt itself, so the common, successful call never builds a
    tenacity loop (that would cost more CPU than the request). ``started`` is the call's first
    send, read from ``_clock.now()``: the deadline counts from there.

    Raises:
        FreddyError: the last failure.
    """
    if policy.max_retries == 0 or not is_retryable(failed):
        raise failed

    def remaining() -> float:
        return policy.deadline - (_clock.now() - started)

    async for tenacity_attempt in _retrying(policy, remaining, what):
        with tenacity_attempt:
            if tenacity_attempt.retry_state.attempt_number == 1:
                raise failed  # made before tenacity was entered: its outcome is tenacity's first
            # No attempt may outlive the call's deadline, but each gets at least a moment.
            return await attempt(min(timeout, max(remaining(), 0.001)))
    raise AssertionError("tenacity ends its loop by returning or raising")  # pragma: no cover


def _retrying(policy: RetryPolicy, remaining: Callable[[], float], what: str) -> AsyncRetrying:
    return AsyncRetrying(
        retry=retry_if_exception(is_retryable),
        wait=lambda state: backoff(policy, state.attempt_number, _failure(state)),
        stop=lambda state: gives_up(
            policy, state.attempt_number, _failure(state), state.upcoming_sleep, remaining()
        ),
        sleep=_sleep,
        before_sleep=functools.partial(_log_retry, policy, what),
        reraise=True,
    )


def _failure(state: RetryCallState) -> BaseException | None:
    return state.outcome.exception() if state.outcome else None


async def _sleep(seconds: float) -> None:
    await _clock.sleep(seconds, "retry")


def _log_retry(policy: RetryPolicy, what: str, state: RetryCallState) -> None:
    logger.info(
        "retrying %s in %.3f s: attempt %d of %d failed with %s",
        what,
        state.upcoming_sleep,
        state.attempt_number,
        policy.max_retries + 1,
        _describe(_failure(state)),
    )


def _describe(exc: BaseException | None) -> str:
    if isinstance(exc, APIStatusError):
        text = f"{exc.status} {exc.code or ''}".strip()
        return f"{text} trace_id={exc.trace_id}" if exc.trace_id else text
    return type(exc).__name__ if exc is not None else "?"
