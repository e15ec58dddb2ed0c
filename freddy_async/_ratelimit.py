"""Per-organization admission: pace every task of an organization to the server's limit.

The API limits requests per organization, so that is the unit here. Before each send a task is
admitted by its organization's :class:`OrgPacer` (before it takes a concurrency slot, so a
waiting organization holds up no other); after each answer the pacer learns from its headers:

- **a budget** (remaining requests and the seconds until they are renewed, in any dialect of
  ``_answers``) is spread evenly over the time left, counting the requests already sent but not
  yet answered against it, so that concurrency never overshoots; and never faster than the
  quota over its window (``w=`` of a policy, else the reset a fresh window shows). A spent budget
  waits for its reset (a fixed window), or for one request's worth (a bucket, a sliding window:
  told apart by the first answer after a reset). When a window has passed, one request probes
  first: its answer tells what the new window holds (a sliding window or a shared quota renews
  less than the whole);
- **a 429** pauses the organization (or, when it names a key, that key only) for its
  ``Retry-After``. With no budget headers at all the pacer adapts from the 429s themselves: a
  first 429 paces it at the rate granted so far, from which it climbs fast until the next 429;
  after that it paces a little under the rate of the last 429 and climbs back slowly;
- ``requests_per_minute`` is a ceiling the caller sets, always kept.

No wait taken from a header exceeds :data:`MAX_WAIT`; an organization that has said nothing
costs a few dictionary look-ups per answer.
"""

from __future__ import annotations

import asyncio
import functools
import math
from collections.abc import Mapping

from . import _clock
from ._answers import NO_RATE_LIMIT, RateLimitInfo, mentions_rate_limit, read_rate_limit, server_time
from ._config import MAX_WAIT

__all__ = ["MAX_WAIT", "OrgPacer", "Pacers", "WaitTooLong"]

# A 429 that says nothing of when to come back: the first pause, doubled while 429s go on.
_FIRST_PAUSE = 0.5
# Without budget headers (see _FoundRate): the pace doubles every quarter second of successes
# while it climbs, grows by 10 % a second back up to _CUT of the last 429's, and above that by
# half a percent a second, doubled every _PROBE_DOUBLING seconds without a 429; the cuts at a
# 429 that ends the climb and at a later one; how far back successes count; how often a
# climbing pace is looked at anew.
_FAST_GROWTH = math.log(2) / 0.25
_REGROWTH = 0.1
_SLOW_GROWTH = 0.005
_PROBE_DOUBLING = 10.0
_FIRST_CUT = 0.6
_CUT = 0.9
_HORIZON = 60.0
_CLIMB_RECHECK = 0.05
# Another consumer of a quota renewed a request at a time: our share of it, cut at each 429 that
# says the room went elsewhere, and given back slowly.
_SHARE_BACK_OFF = 0.8
_SHARE_CREEP = 1.002
_MIN_SHARE = 0.25
# Two requests sent one renewal apart can arrive closer together than that (timers, the network):
# a bucket with no room to spare refuses the second. A margin for that, on a spent budget only.
_ARRIVAL_SPREAD = 0.001
# The Date header counts whole seconds: a smaller difference from our clock is its rounding.
_SKEW_NOISE = 1.5
# The API documents its limit per minute: the window of a quota no answer has shown yet.
_DOCUMENTED_WINDOW = 60.0
# Requests in flight to an organization not heard from yet: one, then doubled per answer, so a
# first wave does not meet the limit before its first answer could tell what the limit is.
_SLOW_START_END = 64


class WaitTooLong(Exception):
    """Admission would take ``wait`` seconds, past the deadline the caller gave."""

    def __init__(self, wait: float) -> None:
        super().__init__(wait)
        self.wait = wait


class OrgPacer:
    """Admission control for one organization's requests."""

    def __init__(self, org_id: str, requests_per_minute: float | None) -> None:
        self._org_id = org_id
        self._lock = asyncio.Lock()
        self._answer = asyncio.Event()
        self._min_interval = 60 / requests_per_minute if requests_per_minute else 0.0
        self._inflight = 0
        self._next_at = 0.0
        self._paused_until = 0.0
        self._key_holds: dict[str, float] = {}
        self._budget: float | None = None  # requests left before _reset_at, in-flight ones counted
        self._reset_at = 0.0
        self._limit: float | None = None
        self._window: float | None = None  # from a policy
        self._window_seen = 0.0  # from a fresh window's reset
        self._in_flight_cap: int | None = 1
        self._budget_seen = False
        self._remaining = 0.0  # as the last answer said, for telling a renewed window
        self._renews_whole: bool | None = None  # a fixed window, or a bucket or sliding window
        self._last_send = 0.0
        self._share = 1.0  # of a quota renewed a request at a time, what others leave to us
        self._skew = 0.0
        self._found = _FoundRate()  # when no answer has said anything of a budget
        self._successes = 0
        self._successes_at_refusal = 0
        self._refusals = 0

    # -- what callers may read --------------------------------------------------------------

    @property
    def idle(self) -> bool:
        """True when nothing restrains this organization (the common, fast case)."""
        return not (
            self._min_interval or self._paused_until or self._budget_seen
            or self._found.rate or self._key_holds or self._in_flight_cap
        )

    @property
    def rate(self) -> float | None:
        """Requests per second this organization is paced to, when it is paced at all."""
        interval = self._interval(_clock.now())
        return 1 / interval if interval else None

    # -- admission ----------------------------------------------------------------------------

    def try_admit(self) -> bool:
        """Admit one request at once if nothing restrains the organization; never waits."""
        # An organization's first requests always wait in admit() (the slow start): _take()
        # has told _found when sending began before this can admit anything.
        if not self.idle:
            return False
        self._inflight += 1
        return True

    async def admit(self, key_id: str | None = None, deadline: float | None = None) -> None:
        """Wait until this organization (and ``key_id``) may send one more request; count it.

        Raises:
            WaitTooLong: the wait would end after ``deadline`` (a :func:`_clock.now` time).
        """
        await self._wait_for_key(key_id, deadline)
        # Known before queueing: a pause that ends after the deadline (the queue only adds).
        now = _clock.now()
        if deadline is not None and self._paused_until > deadline:
            raise WaitTooLong(self._paused_until - now)
        async with self._lock:  # one waiter at a time: requests leave in arrival order
            while True:
                now = _clock.now()
                wait, kind = self._delay(now)
                if wait <= 0:
                    break
                if kind != "answer" and deadline is not None and now + wait > deadline:
                    raise WaitTooLong(wait)
                if kind == "answer":
                    self._answer.clear()
                    await self._answer.wait()
                else:
                    await _clock.sleep(self._recheck(wait, kind), kind, self._org_id)
            self._take(now)

    def _recheck(self, wait: float, kind: str) -> float:
        """How long to sleep before asking again: while the pace climbs, each success raises it."""
        if kind == "pace" and self._found.climbing:
            return min(wait, _CLIMB_RECHECK)
        return wait

    async def _wait_for_key(self, key_id: str | None, deadline: float | None) -> None:
        while key_id in self._key_holds:
            now = _clock.now()
            until = self._key_holds[key_id]
            if until <= now:
                del self._key_holds[key_id]
                return
            if deadline is not None and until > deadline:
                raise WaitTooLong(until - now)
            await _clock.sleep(until - now, "pause", self._org_id)

    def _delay(self, now: float) -> tuple[float, str]:
        """How long the next request must wait, and why; pure but for renewing a past budget."""
        if self._paused_until > now:
            return self._paused_until - now, "pause"
        if self._budget is not None and now >= self._reset_at:
            self._budget = None  # renewed, to what the probe's answer will tell
        if self._budget is not None and self._budget < 1:
            return self._slot_free_at(now) - now, "pause"
        if self._budget is None and self._budget_seen and self._inflight:
            return math.inf, "answer"  # probing a renewed window: its answer says what it holds
        if self._in_flight_cap is not None and self._inflight >= self._in_flight_cap:
            return math.inf, "answer"  # slow start: the first answers come before the crowd
        if self._next_at > now:
            return self._next_at - now, "pace"
        return 0.0, ""

    def _slot_free_at(self, now: float) -> float:
        """When a spent budget has room again.

        A fixed window renews at its reset. A bucket or a sliding window renews a request at a
        time, about one interval of the quota after our last request, which a reset in whole
        seconds says up to a second late. Until a reset has shown which kind it is, the reset
        holds. With no window known, the quota is taken as the API documents it: per minute.
        """
        if self._renews_whole is not False or not self._limit:
            return self._reset_at
        window = self._quota_window or _DOCUMENTED_WINDOW
        due = self._last_send + window / (self._limit * self._share) + _ARRIVAL_SPREAD
        due = max(due, self._reset_at - 1)
        return min(self._reset_at, max(due, now))

    def _interval(self, now: float) -> float:
        """The spacing of requests: the budget spread over its window, else the learned rate."""
        spread = 0.0
        window = self._quota_window
        if self._limit and window:
            # Never faster than the quota over its window, whatever a budget would allow: a
            # sliding window or a bucket renews one request at a time, not all at once.
            spread = window / (self._limit * self._share)
        # What is left, spread over the time left; not in a window that slides, whose
        # whole-second resets would spread it too thin (its quota comes back one at a time).
        if self._budget is not None and self._reset_at > now and (self._renews_whole or not spread):
            spread = max(spread, (self._reset_at - now) / max(self._budget, 1))
        elif not self._budget_seen and self._found.rate:
            spread = 1 / self._found.rate
        return max(self._min_interval, min(spread, MAX_WAIT))

    def _take(self, now: float) -> None:
        interval = self._interval(now)
        self._inflight += 1
        if self._budget is not None:
            self._budget -= 1
        # A timer that fired late keeps the schedule (the next request is due on time); after
        # an idle spell the schedule starts anew from now: no burst either way.
        late = now - self._next_at
        self._next_at = (self._next_at if 0 <= late < interval else now) + interval
        self._found.sent(now)
        self._last_send = now

    # -- learning from answers ------------------------------------------------------------------

    def unanswered(self) -> None:
        """The admitted request got no answer (connection error, timeout, cancellation)."""
        self._inflight -= 1
        self._answer.set()

    def answered(self, status: int, headers: Mapping[str, str]) -> RateLimitInfo:
        """Learn from an answer to an admitted request (any status); return what it said."""
        self._inflight -= 1
        self._answer.set()
        now = _clock.now()
        info = (
            read_rate_limit(headers, functools.partial(self._server_now, headers))
            if mentions_rate_limit(headers)
            else NO_RATE_LIMIT
        )
        if status < 400:
            self._successes += 1
            if self._in_flight_cap is not None:
                self._in_flight_cap *= 2
                if self._in_flight_cap >= _SLOW_START_END:
                    self._in_flight_cap = None
        if info.has_budget:
            self._learn_budget(info, now)
            if status < 400:
                self._share = min(1.0, self._share * _SHARE_CREEP)
        elif status < 400 and not self._budget_seen and self._found.granted(now):
            # A request already scheduled at the old pace goes at the new one.
            self._next_at = min(self._next_at, self._last_send + self._interval(now))
        return info

    def _learn_budget(self, info: RateLimitInfo, now: float) -> None:
        assert info.remaining is not None
        assert info.reset is not None
        reset_at = now + min(info.reset, MAX_WAIT)
        # Resets often come in whole seconds: while the same window lasts (nothing renewed),
        # the earliest reset any answer implied is the closest to the true one.
        same_window = (
            self._renews_whole is not False and info.remaining <= self._remaining and self._reset_at > now
        )
        if self._renews_whole is None and info.limit and (
            not self._budget_seen or now >= self._reset_at
        ):
            # How the quota renews: all at once (a fixed window) or a request at a time (a
            # bucket, a sliding window). The first answer after a reset tells; so does a first
            # answer with less than half the quota left.
            whole = info.remaining >= info.limit / 2
            if self._budget_seen or not whole:
                self._renews_whole = whole
        self._reset_at = min(reset_at, self._reset_at) if same_window else reset_at
        self._remaining = info.remaining
        self._budget = info.remaining - self._inflight
        self._budget_seen = True
        self._limit = info.limit or self._limit
        if info.window:
            self._window = info.window
        elif info.limit and info.remaining >= info.limit / 2:
            # A window not half used shows its reset about (at least half) a window away.
            self._window_seen = max(self._window_seen, info.reset)

    @property
    def _quota_window(self) -> float | None:
        return self._window or self._window_seen or None

    def _server_now(self, headers: Mapping[str, str]) -> float:
        wall = _clock.wall()
        date = server_time(headers)
        if date is not None:
            # Date floors the server's clock to the second: the largest difference seen is the
            # closest to its true lead, and a difference within rounding is no lead at all.
            lead = date - wall
            if abs(lead) > _SKEW_NOISE and (not self._skew or lead > self._skew):
                self._skew = lead
        return wall + self._skew

    def throttled(self, info: RateLimitInfo, key_id: str | None = None) -> None:
        """Hold this organization (or only ``key_id``) after a 429 that is flow control."""
        now = _clock.now()
        wait = info.retry_after
        if wait is None:
            wait = info.reset if info.reset is not None and info.has_budget else _FIRST_PAUSE
        wait = min(max(wait, self._escalation(now)), MAX_WAIT)
        if self._renews_whole is False:
            # The room a quota renewed a request at a time had went to another consumer of it.
            self._share = max(_MIN_SHARE, self._share * _SHARE_BACK_OFF)
        if not info.has_budget and not self._budget_seen and now >= self._paused_until:
            self._found.refused(now, wait)
        until = now + wait
        if key_id is not None:
            self._key_holds[key_id] = max(self._key_holds.get(key_id, 0.0), until)
        else:
            self._paused_until = max(self._paused_until, until)
            # The pace starts anew after the pause: the schedule from before it is void.
            self._next_at = max(self._next_at, self._paused_until)

    def _escalation(self, now: float) -> float:
        """Nothing for a first 429; then a pause doubling from ``_FIRST_PAUSE`` while 429s go on.

        A server that keeps refusing with ``Retry-After: 0`` (or nothing) must not be asked
        again at once forever. A 429 to a request sent during a pause does not count: only a
        429 after the pause has ended, with no success since, says the server still refuses.
        """
        if now < self._paused_until:
            return 0.0
        if self._successes != self._successes_at_refusal:
            self._refusals = 0
        self._successes_at_refusal = self._successes
        self._refusals += 1
        return 0.0 if self._refusals == 1 else min(_FIRST_PAUSE * 2 ** (self._refusals - 2), MAX_WAIT)


class _FoundRate:
    """The rate of an organization that says nothing of its limit, found from its 429s.

    Each 429 costs a pause (a Retry-After rounded up to a second is 25 requests at 25 a
    second), so the limit must be found with few of them. A first 429 sets the rate to what the
    server granted so far, the pause included. From there it climbs, doubling every quarter
    second of successes, to find the limit in a few seconds whatever it is. The 429 that ends
    the climb came above the limit by how much the server's burst let it overshoot, up to half
    again: the rate is cut deep (_FIRST_CUT) and grows back quickly to just under that 429's
    rate (the ceiling). Later 429s come close to the limit: a cut to the ceiling, and slow growth
    past it, so that they come some 20 s apart; slow at first, faster the longer no 429 comes,
    since the 429 that set the ceiling may have been a passing one (another consumer's burst).
    """

    __slots__ = ("_ceiling", "_count", "_count_before", "_count_from", "_cut_at", "_since", "rate")

    def __init__(self) -> None:
        self.rate: float | None = None
        self._ceiling: float | None = None  # _CUT of the rate at the last 429; None while climbing
        self._cut_at = 0.0
        self._since: float | None = None
        # Successes in the horizon, as a sliding-window counter: counted since _count_from, and
        # in the horizon before it. Every success passes here: a deque of their times cost half
        # a microsecond a request, and at 10,000 requests a second held 600,000 of them.
        self._count = 0
        self._count_before = 0
        self._count_from = 0.0

    @property
    def climbing(self) -> bool:
        return self.rate is not None and self._ceiling is None

    def sent(self, now: float) -> None:
        if self._since is None:
            self._since = now

    def granted(self, now: float) -> bool:
        """Count a success; True when it raised the rate."""
        if self.rate is None:  # counted until a first 429 sets the rate from the count
            if now - self._count_from >= _HORIZON:
                # A new horizon; the last one counts only if it just ended.
                self._count_before = self._count if now - self._count_from < 2 * _HORIZON else 0
                self._count_from = now
                self._count = 0
            self._count += 1
            return False
        if self._ceiling is None:
            growth = _FAST_GROWTH
        elif self.rate < self._ceiling:
            growth = _REGROWTH
        else:
            growth = min(_SLOW_GROWTH * 2 ** ((now - self._cut_at) / _PROBE_DOUBLING), _REGROWTH)
        self.rate *= math.exp(growth / self.rate)  # one success at the rate is 1/rate s of it
        return True

    def refused(self, now: float, pause: float) -> None:
        """A 429 (not one to a request sent before the last pause ended)."""
        if self.rate is not None:
            cut = _FIRST_CUT if self._ceiling is None else _CUT
            self._ceiling = max(self.rate * _CUT, 1 / MAX_WAIT)
            self.rate = max(self.rate * cut, 1 / MAX_WAIT)
            self._cut_at = now
            return
        assert self._since is not None
        span = min(now - self._since, _HORIZON) + pause
        if span > 0:  # else the pauses after each 429 do the holding back
            # The horizon before the current count is taken as evenly spread over it.
            older = self._count_before * max(0.0, 1 - (now - self._count_from) / _HORIZON)
            granted = self._count + older
            self.rate = max(max(granted, 1) / span, 1 / MAX_WAIT)


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

    def rate(self, org_id: str) -> float | None:
        """The rate ``org_id`` is paced to (requests per second), if it is paced."""
        pacer = self._by_org.get(org_id)
        return pacer.rate if pacer is not None else None
