"""Per-organization pacing, shared by every task that uses one client.

The API limits requests per organization, so that is the unit here. Before each attempt a task
asks its organization's :class:`OrgPacer` for a slot; after each answer the pacer learns from it:

- a 429 pauses *all* of that organization's new requests until its ``Retry-After`` has passed,
  instead of every task running into the limit on its own;
- ``requests_per_minute`` (or, when the caller gave none, the server's ``X-RateLimit-Limit``)
  drives a token bucket whose burst is no larger than pacing needs;
- ``X-RateLimit-Remaining``/``X-RateLimit-Reset`` are a budget: once the requests sent since the
  last answer use it up, new requests wait for the reset instead of collecting 429s.

An organization that has none of these costs one attribute check per request.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping

from . import _clock
from ._retry import header_number

__all__ = ["OrgPacer", "Pacers"]

# Two tokens of burst absorb the lateness of each timer wake-up (a late wake-up finds the next
# token already earned) without letting through a burst a server would notice.
_BURST = 2.0
_DEFAULT_PAUSE = 1.0
# The longest an organization is held on the server's word (as RetryPolicy.max_retry_after):
# a Retry-After of days (a spent budget) must not park every later call for days.
_MAX_PAUSE = 60.0
# X-RateLimit-Reset below this is a delta in seconds, not epoch seconds (some servers send that).
_EPOCH_THRESHOLD = 1e9


class OrgPacer:
    """Admission control for one organization's requests."""

    __slots__ = (
        "_budget",
        "_budget_reset",
        "_capacity",
        "_fixed_rate",
        "_lock",
        "_org_id",
        "_paused_until",
        "_rate",
        "_stamp",
        "_tokens",
    )

    def __init__(self, org_id: str, requests_per_minute: float | None) -> None:
        self._org_id = org_id
        self._lock = asyncio.Lock()
        self._fixed_rate = requests_per_minute is not None
        self._rate = 0.0
        self._capacity = 1.0
        self._tokens = 1.0
        self._stamp = 0.0
        self._paused_until = 0.0
        self._budget: float | None = None
        self._budget_reset = 0.0
        if requests_per_minute is not None:
            self._set_rate(requests_per_minute / 60)

    @property
    def idle(self) -> bool:
        """True when nothing restrains this organization (the common, fast case)."""
        return not self._rate and not self._paused_until and self._budget is None

    def _set_rate(self, per_second: float, *, full: bool = True) -> None:
        self._rate = per_second
        self._capacity = _BURST
        # A caller's own rate starts with one token (no burst at all); a learned one with none.
        self._tokens = 1.0 if full else 0.0
        self._stamp = _clock.now()

    async def acquire(self) -> None:
        """Wait until this organization may send one more request, then count it."""
        if self.idle:
            return
        # One waiter at a time: requests leave in arrival order and the budget is never raced.
        async with self._lock:
            while True:
                wait, kind = self._wait_needed(_clock.now())
                if wait <= 0:
                    break
                await _clock.sleep(wait, kind, self._org_id)
            if self._rate:
                self._tokens -= 1
            if self._budget is not None:
                self._budget -= 1

    def _wait_needed(self, now: float) -> tuple[float, str]:
        if self._paused_until > now:
            return self._paused_until - now, "pause"
        self._paused_until = 0.0
        if self._budget is not None:
            if now >= self._budget_reset:
                self._budget = None
            elif self._budget < 1:
                if not self._rate:
                    return self._budget_reset - now, "pause"
                # Spent before the reset although we pace: someone else shares this quota. Hold
                # one interval, then let one request probe; its answer (or 429) says what is left.
                self._budget = None
                return 1 / self._rate, "pause"
        if self._rate:
            self._tokens = min(self._capacity, self._tokens + (now - self._stamp) * self._rate)
            self._stamp = now
            if self._tokens < 1:
                return (1 - self._tokens) / self._rate, "pace"
        return 0.0, ""

    def observe(self, status: int, headers: Mapping[str, str], retry_after: float | None) -> None:
        """Learn from an answer of this organization (any status)."""
        now = _clock.now()
        if status == 429:
            pause = retry_after if retry_after is not None else _DEFAULT_PAUSE
            self._paused_until = max(self._paused_until, now + min(pause, _MAX_PAUSE))
        limit = header_number(headers.get("X-RateLimit-Limit"))
        if limit and not self._fixed_rate and abs(limit / 60 - self._rate) > 1e-9:
            # The API's limits are per minute. Learned from an answer, the bucket starts empty:
            # the requests already sent have used this moment's share.
            self._set_rate(limit / 60, full=False)
        remaining = header_number(headers.get("X-RateLimit-Remaining"))
        reset = header_number(headers.get("X-RateLimit-Reset"))
        if remaining is not None and reset is not None:
            if reset >= _EPOCH_THRESHOLD:
                reset -= time.time()
            if reset > 0:
                self._budget = remaining
                self._budget_reset = now + min(reset, _MAX_PAUSE)


class Pacers:
    """The pacers of one client, one per organization, made on first use."""

    __slots__ = ("_by_org", "_requests_per_minute")

    def __init__(self, requests_per_minute: float | None) -> None:
        self._requests_per_minute = requests_per_minute
        self._by_org: dict[str, OrgPacer] = {}

    def get(self, org_id: str) -> OrgPacer:
        """The pacer of ``org_id``."""
        pacer = self._by_org.get(org_id)
        if pacer is None:
            pacer = self._by_org[org_id] = OrgPacer(org_id, self._requests_per_minute)
        return pacer
