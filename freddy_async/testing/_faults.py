"""Misbehaviour on purpose: the seeded fault plan, the answers faults send, and the rate limiters.

The limiters are pure: each reads time only through the clock callable it is given, so the
server hands them the one clock of :mod:`freddy_async._clock` and a test a hand-moved one.
"""

from __future__ import annotations

import copy
import hashlib
import math
import random
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, fields

from ._endpoints import Reply, error_reply

__all__ = [
    "FaultCounts",
    "FixedWindow",
    "Limiter",
    "Plan",
    "SlidingWindow",
    "TokenBucket",
    "Verdict",
    "fault_reply",
    "plan_attempt",
]

_BAD_GATEWAY_HTML = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
    "</body>\r\n</html>\r\n"
)


@dataclass
class FaultCounts:
    """How many answers of each kind of injected fault the server has given."""

    fail_first: int = 0
    """503 answers given by ``fail_first``."""
    error_500: int = 0
    """500 answers (JSON envelope) drawn by ``error_rate``."""
    error_502: int = 0
    """502 answers with an HTML body, as a proxy sends them."""
    error_503: int = 0
    """503 answers drawn by ``error_rate`` (JSON or empty body)."""
    dropped: int = 0
    """Connections closed without any answer."""
    truncated: int = 0
    """200 answers cut short of their declared Content-Length."""
    slow: int = 0
    """Answers held back by ``slow_delay``."""

    @property
    def total(self) -> int:
        """All injected faults together (slow answers included)."""
        return sum(getattr(self, f.name) for f in fields(self))

    def reset(self) -> None:
        """Set every count back to zero."""
        for f in fields(self):
            setattr(self, f.name, 0)


@dataclass(frozen=True)
class Plan:
    """What one attempt of one request is going to suffer."""

    fail_first: bool = False
    drop: bool = False
    error_status: int | None = None
    error_variant: float = 0.0
    truncate: bool = False
    truncate_share: float = 0.5
    slow: bool = False


def _unavailable() -> Reply:
    unavailable = "Service temporarily unavailable"
    return error_reply(503, "SERVICE_UNAVAILABLE", unavailable, error_type="server_error")


def fault_reply(plan: Plan) -> tuple[str, Reply | None] | None:
    """The planned fault that replaces the answer, if any: its name (a :class:`FaultCounts`
    field) and what to send instead, None for a connection closed without an answer."""
    if plan.fail_first:
        return "fail_first", _unavailable()
    if plan.drop:
        return "dropped", None
    if plan.error_status == 500:
        internal = error_reply(
            500,
            "INTERNAL_ERROR",
            "An unexpected error occurred",
            system_message="Database query failed",
            error_type="server_error",
        )
        return "error_500", internal
    if plan.error_status == 502:
        return "error_502", Reply(502, text=_BAD_GATEWAY_HTML, content_type="text/html")
    if plan.error_status == 503:
        # As proxies and starting servers send it: half of them with an empty body.
        empty = plan.error_variant < 0.5
        return "error_503", Reply(503, text="") if empty else _unavailable()
    return None


def plan_attempt(
    *,
    seed: int,
    request_key: str,
    attempt: int,
    fail_first: int,
    error_rate: float,
    drop_rate: float,
    truncate_rate: float,
    slow_rate: float,
) -> Plan:
    """Decide the faults of attempt number ``attempt`` (from 0) of ``request_key``.

    The draw depends only on (seed, request, attempt), never on arrival order, so a run with
    concurrent requests repeats exactly.
    """
    if attempt < fail_first:
        return Plan(fail_first=True)
    digest = hashlib.sha256(f"fault\x1f{seed}\x1f{request_key}\x1f{attempt}".encode()).digest()
    rng = random.Random(int.from_bytes(digest[:16], "big"))
    # Always draw every number, so that changing one rate does not reshuffle the others.
    drop, error, kind, variant, truncate, share, slow = (rng.random() for _ in range(7))
    if drop < drop_rate:
        return Plan(drop=True)
    if error < error_rate:
        return Plan(error_status=(500, 502, 503)[int(kind * 3)], error_variant=variant)
    return Plan(
        truncate=truncate < truncate_rate,
        truncate_share=0.1 + 0.8 * share,
        slow=slow < slow_rate,
    )



# -- rate limiters -------------------------------------------------------------------------

Clock = Callable[[], float]

# Waits go on the wire rounded to the microsecond at best, and float sums of times land a hair
# either side of a boundary: a request up to this early (seconds) is on time, so waiting the
# announced time always finds room.
_TOLERANCE = 1e-6
# A quota computed as a product may fall a hair short of a whole number.
_EPSILON = 1e-9

# A search for room that never ends would be a bug (the shared quota always leaves room in
# the end): fail loudly rather than hang the server.
_MAX_STEPS = 100_000


@dataclass(frozen=True)
class Verdict:
    """What a limiter decided about one request, at one instant."""

    accepted: bool
    remaining: int
    """Whole requests that would be accepted right now, after this one."""
    reset_after: float
    """Seconds until the limit resets, in the sense of the limiter's class."""
    retry_after: float
    """Seconds until a request would be accepted; 0 when this one was."""


class Limiter(ABC):
    """A limit of ``quota`` requests per ``window`` seconds, read on ``clock``.

    ``shared_rate`` (requests a second, below ``quota / window``) is another consumer of the
    same quota, as another service of the same organization would be. It is simulated, never
    run: its spending is accounted lazily at each call.
    """

    def __init__(self, quota: float, window: float, clock: Clock, shared_rate: float) -> None:
        if not quota + _EPSILON >= 1 or not window > 0:
            raise ValueError(f"a limit needs a quota of at least 1 and a window, not {quota}/{window}")
        if not 0 <= shared_rate < quota / window:
            raise ValueError(f"shared_rate must be from 0 to below the limit, not {shared_rate}")
        self.quota = quota
        self.window = window
        self.shared_rate = shared_rate
        self._clock = clock
        self._last = clock()

    def take(self) -> Verdict:
        """Admit one request if there is room now; say what is left either way."""
        now = self._now()
        self._catch_up(now)
        accepted = self._room() >= 1
        if accepted:
            self._spend(now, irregular=True)
        wait = 0.0 if accepted else self._wait(now)
        return Verdict(accepted, self._room(), self._reset_after(now), wait)

    def _now(self) -> float:
        # A wall clock may step back; a limiter's time never does.
        self._last = max(self._last, self._clock())
        return self._last

    @abstractmethod
    def _catch_up(self, now: float) -> None:
        """Bring the state to ``now``, the other consumer's spending included."""

    @abstractmethod
    def _room(self) -> int:
        """Whole requests that would be accepted at the state's time."""

    @abstractmethod
    def _spend(self, at: float, *, irregular: bool) -> None:
        """Count one accepted request at ``at``: ours, or the other consumer's.

        ``irregular`` is False only for the other consumer's request served on arrival; the
        sliding window's shortcut over idle stretches needs to know.
        """

    @abstractmethod
    def _reset_after(self, now: float) -> float:
        """Seconds from ``now`` until the limit resets."""

    @abstractmethod
    def _wait(self, now: float) -> float:
        """Seconds from ``now`` until a request would be accepted (there is no room now)."""


class TokenBucket(Limiter):
    """Refills ``quota / window`` tokens a second, holds at most ``capacity``; a request takes one.

    The other consumer drains ``shared_rate`` tokens a second: less than the refill, so it always
    finds room, and the bucket fills at the difference. Reset is when the bucket next holds one
    more whole token if none is left, else when it is full again.
    """

    def __init__(
        self,
        quota: float,
        window: float,
        clock: Clock,
        *,
        capacity: float,
        shared_rate: float = 0.0,
    ) -> None:
        if not capacity >= 1:
            raise ValueError(f"capacity must be at least 1, not {capacity}")
        super().__init__(quota, window, clock, shared_rate)
        self.capacity = capacity
        self._fill_rate = quota / window - shared_rate
        self._tokens = capacity
        self._stamp = self._last

    def _catch_up(self, now: float) -> None:
        self._tokens = min(self.capacity, self._tokens + (now - self._stamp) * self._fill_rate)
        self._stamp = now

    def _room(self) -> int:
        return math.floor(self._tokens + _TOLERANCE * self._fill_rate)

    def _spend(self, at: float, *, irregular: bool) -> None:
        self._tokens -= 1

    def _reset_after(self, now: float) -> float:
        target = 1.0 if self._room() == 0 else self.capacity
        return max(0.0, (target - self._tokens) / self._fill_rate)

    def _wait(self, now: float) -> float:
        return max(0.0, (1 - self._tokens) / self._fill_rate)


class _Window(Limiter):
    """What the window limiters share: at most ``quota`` requests (rounded down) per window.

    The other consumer sends one request every ``1 / shared_rate`` seconds from the limiter's
    start. One that finds no room waits, and takes room the moment it appears, ahead of any of
    ours (it is already waiting): over time it gets its whole rate and we get the rest.
    """

    def __init__(self, quota: float, window: float, clock: Clock, shared_rate: float) -> None:
        super().__init__(quota, window, clock, shared_rate)
        self.slots = math.floor(quota + _EPSILON)
        if shared_rate * window >= self.slots:
            raise ValueError(f"shared_rate {shared_rate} leaves no room in {self.slots} a window")
        self._start = self._last
        self._sent = 0  # the other consumer's requests arrived so far
        self._waiting = 0  # ... of which still wait for room
        self._sim = self._last  # the time the state is at

    def _arrival(self, index: int) -> float:
        """When the other consumer's request number ``index`` (from 0) arrives."""
        if not self.shared_rate:
            return math.inf
        return self._start + (index + 1) / self.shared_rate

    def _first_arrival(self, moment: float, has_come: Callable[[float], bool]) -> int:
        """The index of the other consumer's first request past ``moment`` by ``has_come``."""
        index = max(self._sent, math.floor((moment - self._start) * self.shared_rate) - 2)
        while has_come(self._arrival(index)):
            index += 1
        return index

    def _catch_up(self, now: float) -> None:
        while self._serve_other(now):
            pass
        self._advance(now)
        self._sim = now

    def _serve_other(self, now: float) -> bool:
        """Play the other consumer's next event up to ``now``; return whether there was one."""
        if self._waiting and self._room() >= 1:
            served = self._sent - self._waiting
            self._spend(self._sim, irregular=self._sim != self._arrival(served))
            self._waiting -= 1
            return True
        self._skip_idle(now)
        due = self._arrival(self._sent)
        at = min(due, self._room_appears()) if self._waiting else due
        if at > now:
            return False
        self._advance(at)
        self._sim = at
        if at == due:
            self._sent += 1
            self._waiting += 1
        return True

    def _wait(self, now: float) -> float:
        trial = self._clone()
        for _ in range(_MAX_STEPS):
            at = trial._room_appears()
            trial._catch_up(at)
            if trial._room() >= 1:
                return at - now
        raise RuntimeError("no room in sight for a request")  # pragma: no cover

    def _clone(self) -> _Window:
        return copy.copy(self)

    @abstractmethod
    def _advance(self, at: float) -> None:
        """Move the state to ``at`` (not before its time), without the other consumer."""

    @abstractmethod
    def _room_appears(self) -> float:
        """When room next appears, with no request in between."""

    @abstractmethod
    def _skip_idle(self, now: float) -> None:
        """Jump over a stretch where only the other consumer sends, and always finds room."""


class FixedWindow(_Window):
    """Windows aligned to multiples of ``window`` on ``clock``; the count restarts at each one.

    Give it a wall clock: real servers align windows to the epoch. Reset is the current
    window's end.
    """

    def __init__(
        self, quota: float, window: float, clock: Clock, *, shared_rate: float = 0.0
    ) -> None:
        super().__init__(quota, window, clock, shared_rate)
        self._current = self._index(self._last)
        self._count = 0

    def _index(self, at: float) -> int:
        # Float division can land either side of a boundary that multiplication puts exactly.
        at += _TOLERANCE
        index = math.floor(at / self.window)
        if (index + 1) * self.window <= at:
            return index + 1
        return index - 1 if index * self.window > at else index

    def _advance(self, at: float) -> None:
        index = self._index(at)
        if index != self._current:
            self._current = index
            self._count = 0

    def _room(self) -> int:
        return self.slots - self._count

    def _spend(self, at: float, *, irregular: bool) -> None:
        self._count += 1

    def _room_appears(self) -> float:
        return (self._current + 1) * self.window

    def _reset_after(self, now: float) -> float:
        return self._room_appears() - now

    def _skip_idle(self, now: float) -> None:
        due = self._arrival(self._sent)
        if self._waiting or due == math.inf:
            return
        first, last = self._index(due), self._index(now)
        # From a window of its own on, the other consumer alone never fills one.
        if self._current < first < last:
            start = last * self.window
            self._sent = self._first_arrival(start, lambda at: self._index(at) < last)
            self._advance(start)
            self._sim = start


class SlidingWindow(_Window):
    """A log of accepted requests: one is accepted while fewer than ``quota`` are in the log.

    A request leaves the log ``window`` seconds after it was accepted; refused ones are never
    logged. Reset is when the oldest logged request leaves (``window`` from now when the log is
    empty).
    """

    def __init__(
        self, quota: float, window: float, clock: Clock, *, shared_rate: float = 0.0
    ) -> None:
        super().__init__(quota, window, clock, shared_rate)
        # (accepted at, irregular): irregular is ours, or the other consumer's served late.
        self._log: deque[tuple[float, bool]] = deque()
        self._irregular = 0

    def _clone(self) -> SlidingWindow:
        clone = copy.copy(self)
        clone._log = deque(self._log)
        return clone

    def _advance(self, at: float) -> None:
        # The same sum as _room_appears, so a request is gone when room is announced.
        while self._log and self._log[0][0] + self.window <= at + _TOLERANCE:
            self._irregular -= self._log.popleft()[1]

    def _room(self) -> int:
        return self.slots - len(self._log)

    def _spend(self, at: float, *, irregular: bool) -> None:
        self._log.append((at, irregular))
        self._irregular += irregular

    def _room_appears(self) -> float:
        return self._log[0][0] + self.window

    def _reset_after(self, now: float) -> float:
        return self._room_appears() - now if self._log else self.window

    def _skip_idle(self, now: float) -> None:
        due = self._arrival(self._sent)
        # Only the other consumer's on-time requests in the log: its regular stream keeps on
        # finding room, and what arrives before now - window has left the log by now.
        if self._waiting or self._irregular or due + self.window > now:
            return
        self._sent = self._first_arrival(now - self.window, lambda at: at + self.window <= now)
        self._log.clear()
