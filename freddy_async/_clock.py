"""The one clock that every wait of the library, and of the fake server, goes through.

Backoff between retries, the pause after a 429 and pacing sleep through :func:`sleep`, and read
time through :func:`now` (monotonic) and :func:`wall` (epoch seconds, for ``Reset`` headers and
HTTP dates). Outside :func:`instant_waits` these are ``asyncio.sleep``, ``time.monotonic`` and
``time.time``.

Inside :func:`instant_waits` time is virtual, and it is one timeline for the whole process: the
client's tasks and a ``FakeFreddyServer``'s limiters (whose handlers run in contexts of their
own) read the same clock, so a rate-limit test is exact and repeats. Virtual time stands still
while anything can still run, and jumps to the earliest sleeper's wake-up only when every task
is waiting: on a sleeper, or on something other than an HTTP exchange marked with :func:`io`.
Sleepers overlap as they would in real time: two tasks that each sleep one second take one
virtual second, not two.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import math
import time
from collections.abc import Iterator

import attrs

__all__ = ["RecordedWait", "instant_waits", "io", "now", "sleep", "wall"]

# A task that polls with ``await asyncio.sleep(0)`` keeps the loop busy forever; after this many
# turns of a loop that never goes idle, time moves on anyway rather than freezing.
_MAX_BUSY_TURNS = 50


@attrs.frozen
class RecordedWait:
    """One wait the client would have slept through.

    ``kind`` is ``"retry"`` (backoff before another attempt), ``"pause"`` (an organization's or a
    key's requests held after a 429, or until a spent budget resets) or ``"pace"`` (spreading
    requests over the rate limit). ``org_id`` names the organization for ``"pause"`` and
    ``"pace"``.
    """

    kind: str
    seconds: float
    org_id: str | None = None


class _VirtualClock:
    """A discrete-event clock: sleepers wake in order of their wake-up time."""

    def __init__(self) -> None:
        # Whole seconds, so that a server's windows aligned to the epoch fall the same way in
        # every run: a virtual run repeats exactly.
        self.now = float(int(time.monotonic()))
        self.wall_offset = int(time.time()) - self.now
        self.waits: list[RecordedWait] = []
        self.exchanges = 0
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()
        self._tick_due = False
        self._busy_turns = 0

    def add_sleeper(self, seconds: float) -> asyncio.Future[None]:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        # A wait too short to move a float clock still moves it: every sleep takes some time.
        wake = max(self.now + seconds, math.nextafter(self.now, math.inf))
        heapq.heappush(self._sleepers, (wake, next(self._order), future))
        self.schedule(loop)
        return future

    def schedule(self, loop: asyncio.AbstractEventLoop) -> None:
        if not self._tick_due and not loop.is_closed():
            self._tick_due = True
            loop.call_soon(self._tick, loop)

    def _tick(self, loop: asyncio.AbstractEventLoop) -> None:
        self._tick_due = False
        while self._sleepers and self._sleepers[0][2].done():  # cancelled sleepers
            heapq.heappop(self._sleepers)
        if not self._sleepers or self.exchanges:
            return  # the end of the last exchange schedules the next tick
        # CPython's loop keeps its runnable callbacks in `_ready`; another loop is treated as
        # busy for a fixed number of turns instead.
        ready = getattr(loop, "_ready", None)
        if (ready is None or ready) and self._busy_turns < _MAX_BUSY_TURNS:
            self._busy_turns += 1
            self.schedule(loop)
            return
        self._busy_turns = 0
        self.now = max(self.now, self._sleepers[0][0])
        while self._sleepers and self._sleepers[0][0] <= self.now:
            future = heapq.heappop(self._sleepers)[2]
            if not future.done():
                future.set_result(None)
        if self._sleepers:
            self.schedule(loop)


_stack: list[_VirtualClock] = []


def _virtual() -> _VirtualClock | None:
    return _stack[-1] if _stack else None


def now() -> float:
    """Monotonic seconds, virtual inside :func:`instant_waits`."""
    # Read on every request's path: _virtual() inlined.
    return _stack[-1].now if _stack else time.monotonic()


def wall() -> float:
    """Seconds since the epoch, moving with :func:`now` inside :func:`instant_waits`."""
    clock = _virtual()
    return clock.now + clock.wall_offset if clock else time.time()


async def sleep(seconds: float, kind: str, org_id: str | None = None) -> None:
    """Wait ``seconds``; inside :func:`instant_waits`, record the wait and take it in virtual time."""
    clock = _virtual()
    if clock is None:
        await asyncio.sleep(seconds)
        return
    clock.waits.append(RecordedWait(kind, seconds, org_id))
    if seconds <= 0:
        await asyncio.sleep(0)  # still a suspension point, so cancellation lands here as it would
        return
    future = clock.add_sleeper(seconds)
    try:
        await future
    finally:
        future.cancel()  # a cancelled sleeper leaves the heap at the next tick


def io() -> contextlib.AbstractContextManager[None]:
    """Mark an HTTP exchange: virtual time does not move on while one is under way.

    Real I/O takes real time that the virtual clock cannot see; without this mark, time would
    jump ahead of a request whose answer is simply still on its way over loopback.
    """
    clock = _virtual()
    # Outside tests, one shared do-nothing context: a generator-based one per request cost 1.5 %
    # of the client's CPU (about 9,000 of 570,000 instructions a request, benchmarks/RESULTS.md).
    return _NO_CLOCK if clock is None else _exchange(clock)


_NO_CLOCK = contextlib.nullcontext()


@contextlib.contextmanager
def _exchange(clock: _VirtualClock) -> Iterator[None]:
    clock.exchanges += 1
    try:
        yield
    finally:
        clock.exchanges -= 1
        if not clock.exchanges:
            with contextlib.suppress(RuntimeError):  # no running loop: nothing to wake
                clock.schedule(asyncio.get_running_loop())


@contextlib.contextmanager
def instant_waits() -> Iterator[list[RecordedWait]]:
    """Make every wait of freddy_async virtual within the block; yield the list of waits taken.

    The block's clock is the process's clock until it ends (blocks nest), so tasks and servers
    started before it see it too.
    """
    clock = _VirtualClock()
    _stack.append(clock)
    try:
        yield clock.waits
    finally:
        _stack.remove(clock)
