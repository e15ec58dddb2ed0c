"""Bounded fan-out of many requests, handed back as async iterators.

This module only orchestrates: it is given an async ``fetch`` callable and knows nothing of HTTP,
so :class:`FreddyClient` composes it rather than the other way round.

Jobs are produced lazily, key by key, and at most ``concurrency`` of them run at once; a
finished job is filed under its key, and a key whose months are all done is yielded at once. So
the tasks alive and the reports half-built stay bounded by ``concurrency`` however many keys a
batch has. Leaving the iteration (break, an exception in the caller's loop, cancellation,
``aclose()``) cancels and awaits every job still running before the iterator is done.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterable, Sequence
from typing import TypeVar

import attrs

from ._errors import (
    AuthenticationError,
    FreddyError,
    PermissionDeniedError,
    ResponseValidationError,
)
from ._models import ApiKeyUsage, KeyUsageReport
from ._periods import YearMonth

__all__ = ["iter_in_order", "iter_usage"]

T = TypeVar("T")
Item = TypeVar("Item")

UsageFetch = Callable[[str, YearMonth], Awaitable[ApiKeyUsage]]
_Outcome = ApiKeyUsage | FreddyError

# These fail every request of the batch alike; recording them per job would only hide that.
_BATCH_FATAL = (AuthenticationError, PermissionDeniedError)


@attrs.define
class _Partial:
    """A key whose months are not all back yet."""

    waiting: int
    usage: list[ApiKeyUsage] = attrs.Factory(list)
    errors: dict[YearMonth, FreddyError] = attrs.Factory(dict)

    def report(self, key_id: str) -> KeyUsageReport:
        self.usage.sort(key=lambda u: (u.year, u.month))
        return KeyUsageReport(key_id, tuple(self.usage), self.errors)


async def _jobs(
    keys: Iterable[str] | AsyncIterator[str], months: Sequence[YearMonth]
) -> AsyncGenerator[tuple[str, YearMonth], None]:
    seen: set[str] = set()
    if isinstance(keys, AsyncIterator):
        async for key in keys:
            if key not in seen:
                seen.add(key)
                for month in months:
                    yield key, month
    else:
        for key in keys:
            if key not in seen:
                seen.add(key)
                for month in months:
                    yield key, month


async def _run(fetch: UsageFetch, key: str, month: YearMonth) -> tuple[str, YearMonth, _Outcome]:
    try:
        usage = await fetch(key, month)
    except FreddyError as exc:
        return key, month, exc
    return key, month, usage


async def _cancel(tasks: Iterable[asyncio.Task[T]]) -> None:
    tasks = list(tasks)
    for task in tasks:
        task.cancel()
    # Awaiting them retrieves every result and exception, so nothing is reported as lost.
    await asyncio.gather(*tasks, return_exceptions=True)


async def iter_usage(
    fetch: UsageFetch,
    keys: Iterable[str] | AsyncIterator[str],
    months: Sequence[YearMonth],
    *,
    concurrency: int,
) -> AsyncIterator[KeyUsageReport]:
    """Yield one :class:`KeyUsageReport` per distinct key, in completion order."""
    loop = asyncio.get_running_loop()
    finished: asyncio.Queue[asyncio.Task[tuple[str, YearMonth, _Outcome]]] = asyncio.Queue()
    running: set[asyncio.Task[tuple[str, YearMonth, _Outcome]]] = set()
    partial: dict[str, _Partial] = {}
    jobs = _jobs(keys, months)
    more = True
    try:
        while True:
            while more and len(running) < concurrency:
                job = await anext(jobs, None)
                if job is None:
                    more = False
                    break
                key, month = job
                if key not in partial:
                    partial[key] = _Partial(len(months))
                task = loop.create_task(_run(fetch, key, month))
                task.add_done_callback(finished.put_nowait)
                running.add(task)
            if not running:
                return
            task = await finished.get()
            running.discard(task)
            key, month, outcome = task.result()
            entry = partial[key]
            if isinstance(outcome, FreddyError):
                if isinstance(outcome, _BATCH_FATAL):
                    raise outcome
                entry.errors[month] = outcome
            elif (outcome.year, outcome.month) != (month.year, month.month):
                entry.errors[month] = ResponseValidationError(
                    f"asked for {month} of {key}, the server answered {outcome.period}",
                    path="month",
                )
            elif outcome.api_key_id != key:
                entry.errors[month] = ResponseValidationError(
                    f"asked for {key}, the server answered about {outcome.api_key_id}",
                    path="apiKeyId",
                )
            else:
                entry.usage.append(outcome)
            entry.waiting -= 1
            if not entry.waiting:
                del partial[key]
                yield entry.report(key)
    finally:
        await _cancel(running)
        await jobs.aclose()


async def _next_done(window: deque[asyncio.Task[T]]) -> T:
    # Pop only once done, so a cancellation while waiting still finds the task in the window.
    result = await window[0]
    window.popleft()
    return result


async def iter_in_order(
    fetch: Callable[[Item], Awaitable[T]], items: Sequence[Item], *, concurrency: int
) -> AsyncIterator[T]:
    """Yield ``fetch(item)`` for every item in order, up to ``concurrency`` fetched ahead.

    The first failure is raised (after the retries ``fetch`` makes itself); nothing is skipped.
    """
    loop = asyncio.get_running_loop()
    window: deque[asyncio.Task[T]] = deque()
    try:
        for item in items:
            window.append(loop.create_task(fetch(item)))  # type: ignore[arg-type]
            if len(window) >= concurrency:
                yield await _next_done(window)
        while window:
            yield await _next_done(window)
    finally:
        await _cancel(window)
