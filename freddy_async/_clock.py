"""The clock that every wait of the library goes through, so tests can make waits instant.

Backoff between retries, the shared pause after a 429 and client-side pacing all sleep through
:func:`sleep` and read time through :func:`now`. Inside :func:`instant_waits` the sleeps return at
once and move a virtual clock forward instead, and each one is recorded; tasks started inside the
block share that clock because it lives in a context variable. Being one clock, it adds up the
waits of concurrent tasks rather than overlapping them: under heavy concurrency a call's
``retry_deadline`` passes sooner than it would in real time.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from contextvars import ContextVar

import attrs

__all__ = ["RecordedWait", "instant_waits", "now", "sleep"]


@attrs.frozen
class RecordedWait:
    """One wait the client would have slept through.

    ``kind`` is ``"retry"`` (backoff or ``Retry-After`` before another attempt), ``"pause"`` (an
    organization's requests held after a 429 or an exhausted rate-limit budget) or ``"pace"``
    (client-side pacing to ``requests_per_minute``). ``org_id`` names the organization for
    ``"pause"`` and ``"pace"``.
    """

    kind: str
    seconds: float
    org_id: str | None = None


@attrs.define
class _VirtualClock:
    offset: float = 0.0
    waits: list[RecordedWait] = attrs.Factory(list)


_virtual: ContextVar[_VirtualClock | None] = ContextVar("freddy_async_virtual_clock", default=None)


def now() -> float:
    """Monotonic seconds, virtual inside :func:`instant_waits`."""
    clock = _virtual.get()
    return time.monotonic() + clock.offset if clock else time.monotonic()


async def sleep(seconds: float, kind: str, org_id: str | None = None) -> None:
    """Wait ``seconds`` (or, inside :func:`instant_waits`, record the wait and skip it)."""
    clock = _virtual.get()
    if clock is None:
        await asyncio.sleep(seconds)
        return
    clock.waits.append(RecordedWait(kind, seconds, org_id))
    clock.offset += max(seconds, 0.0)
    await asyncio.sleep(0)  # still a suspension point, so cancellation lands here as it would


@contextlib.contextmanager
def instant_waits() -> Iterator[list[RecordedWait]]:
    """Make every wait of freddy_async instant within the block; yield the list of waits skipped."""
    clock = _VirtualClock()
    token = _virtual.set(clock)
    try:
        yield clock.waits
    finally:
        try:
            _virtual.reset(token)
        except ValueError:  # left in another context (an async fixture's teardown): just clear
            _virtual.set(None)
