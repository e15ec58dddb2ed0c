"""Bounded fan-out of many requests, handed back as async iterators.

This module only orchestrates: it is given an async ``fetch`` callable and knows nothing of HTTP,
so :class:`FreddyClient` composes it rather than the other way round.

Jobs are produced lazily, key by key, and at most ``concurrency`` of them run at once; a
finished job is filed under its key, and a key whose months are all done is yielded at once. So
the tasks alive and the reports half-built stay bounded by ``concurrency`` however many keys a
batch has. Leaving the iteration (break, an exception in the caller's loop, cancellation,
``aclose()``) cancels and awaits every job still running before the iterator is done; cancelling
the caller's task while it is busy with a result cancels the jobs at once (see :class:`_Handover`).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Collection,
    Coroutine,
    Iterable,
    Iterator,
    Sequence,
)
from typing import Any, TypeVar

import attrs

from ._errors import FreddyError
from ._models import ApiKeyUsage, KeyUsageReport
from ._periods import YearMonth

__all__ = ["iter_in_order", "iter_usage"]

T = TypeVar("T")
Item = TypeVar("Item")

UsageFetch = Callable[[str, YearMonth], Awaitable[ApiKeyUsage]]
EndsBatch = Callable[[FreddyError, str], bool]
"""Told an error and the key it came for: True when it ends the whole batch."""


def _nothing_ends_it(error: FreddyError, key: str) -> bool:
    return False


@attrs.define
class _Partial:
    """A key whose months are not all back yet."""

    waiting: int
    usage: list[ApiKeyUsage] = attrs.Factory(list)
    errors: dict[YearMonth, FreddyError] = attrs.Factory(dict)

    def report(self, key_id: str) -> KeyUsageReport:
        self.usage.sort(key=lambda u: (u.year, u.month))
        return KeyUsageReport(key_id, tuple(self.usage), self.errors)


def _sync_jobs(keys: Iterable[str], months: Sequence[YearMonth]) -> Iterator[tuple[str, YearMonth]]:
    seen: set[str] = set()
    for key in keys:
        if key not in seen:
            seen.add(key)
            for month in months:
                yield key, month


async def _async_jobs(
    keys: AsyncIterator[str], months: Sequence[YearMonth]
) -> AsyncGenerator[tuple[str, YearMonth], None]:
    seen: set[str] = set()
    async for key in keys:
        if key not in seen:
            seen.add(key)
            for month in months:
                yield key, month


async def _cancel(tasks: Iterable[asyncio.Task[T]]) -> None:
    tasks = list(tasks)
    for task in tasks:
        task.cancel()
    # Awaiting them retrieves every result and exception, so nothing is reported as lost.
    await asyncio.gather(*tasks, return_exceptions=True)


class _Handover:
    """Around each ``yield``: cancel ``tasks`` if the caller's task is cancelled before it resumes us.

    ``async for`` does not close an iterator that its body leaves by an exception, so a caller
    cancelled in its loop body leaves this generator suspended at ``yield`` until it is
    garbage-collected. That can be much later: on Python 3.10 a cancelled task keeps the
    CancelledError, hence its frames, hence this generator, for as long as the Task object
    lives, and meanwhile the jobs would go on sending requests. Only a *cancelled* caller stops
    the jobs: a task that ends normally may have been a helper that fetched one result
    (``wait_for(anext(batch), ...)``), with the iteration going on in another task.
    """

    def __init__(self, tasks: Collection[asyncio.Task[Any]]) -> None:
        self._tasks = tasks
        self._caller: asyncio.Task[Any] | None = None
        self.stopped = False

    def _on_caller_done(self, caller: asyncio.Task[Any]) -> None:
        if caller.cancelled():
            self.stopped = True
            for task in self._tasks:
                task.cancel()

    def __enter__(self) -> None:
        self._caller = asyncio.current_task()
        if self._caller is not None:
            self._caller.add_done_callback(self._on_caller_done)

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        if self._caller is not None:
            self._caller.remove_done_callback(self._on_caller_done)
            self._caller = None
        if self.stopped and exc_type is None:
            # Resumed after all, by another task than the cancelled one: the jobs are gone.
            raise RuntimeError("the batch was stopped when the task iterating it was cancelled")


class _WorkerDone:
    """Put by a worker that found no job left."""


class _Stop:
    """Put by a worker that hit a batch-fatal error, or a bug (any exception but a FreddyError)."""

    def __init__(self, exc: Exception) -> None:
        self.exc = exc


_DONE = _WorkerDone()


async def iter_usage(
    fetch: UsageFetch,
    keys: Iterable[str] | AsyncIterator[str],
    months: Sequence[YearMonth],
    *,
    concurrency: int,
    ends_batch: EndsBatch = _nothing_ends_it,
) -> AsyncIterator[KeyUsageReport]:
    """Yield one :class:`KeyUsageReport` per distinct key, in completion order.

    A :class:`FreddyError` is recorded in its key's report, unless ``ends_batch`` says it ends
    the batch: then it is raised to the caller and every job is cancelled.
    """
    loop = asyncio.get_running_loop()
    # Workers file each job's outcome under its key themselves and hand over whole reports, so
    # the caller's task wakes once per key, not once per request. Bounded: while the caller is
    # busy with a report, at most `concurrency` reports wait here and the workers stop taking
    # jobs, so memory stays flat however slow the caller is.
    reports: asyncio.Queue[KeyUsageReport | _WorkerDone | _Stop] = asyncio.Queue(maxsize=concurrency)
    partial: dict[str, _Partial] = {}
    n_months = len(months)
    sync_jobs: Iterator[tuple[str, YearMonth]] | None = None
    async_jobs: AsyncGenerator[tuple[str, YearMonth], None] | None = None
    if isinstance(keys, AsyncIterator):
        async_jobs = _async_jobs(keys, months)
    else:
        sync_jobs = _sync_jobs(keys, months)
    # An async generator must not be advanced by two tasks at once (one may be awaiting the
    # next page of keys); a plain generator needs no lock.
    job_lock = asyncio.Lock()
    workers: list[asyncio.Task[None]] = []
    stopping = False

    async def worker() -> None:
        nonlocal stopping
        try:
            while not stopping:
                if sync_jobs is not None:
                    job = next(sync_jobs, None)
                else:
                    assert async_jobs is not None
                    async with job_lock:
                        job = await anext(async_jobs, None)
                if job is None:
                    break
                key, month = job
                entry = partial.get(key)
                if entry is None:
                    entry = partial[key] = _Partial(n_months)
                try:
                    usage = await fetch(key, month)
                except FreddyError as exc:
                    if ends_batch(exc, key):
                        raise
                    entry.errors[month] = exc
                else:
                    entry.usage.append(usage)
                if len(workers) < concurrency:
                    start_worker()
                entry.waiting -= 1
                if not entry.waiting:
                    del partial[key]
                    await reports.put(entry.report(key))
        except Exception as exc:
            # An error that ends the batch, or a bug (in fetch, the caller's key iterable,
            # anywhere here): every worker stops taking jobs at once, and the caller gets the
            # exception, never a hang.
            stopping = True
            await reports.put(_Stop(exc))
        else:
            await reports.put(_DONE)

    def start_worker() -> None:
        workers.append(loop.create_task(worker()))

    # Slow start: one key's worth of workers first, then one more per answer up to
    # `concurrency`. The first key's months are then not queued behind `concurrency`
    # connections being opened at once, so its report comes about as soon as that key alone
    # would; the pool still reaches full width within a few round trips.
    for _ in range(min(concurrency, n_months)):
        start_worker()
    finished = 0
    handover = _Handover(workers)
    try:
        while finished < len(workers):
            message = await reports.get()
            if message is _DONE:
                finished += 1
            elif isinstance(message, _Stop):
                raise message.exc
            else:
                assert isinstance(message, KeyUsageReport)
                with handover:
                    yield message
    finally:
        await _cancel(workers)
        if async_jobs is not None:
            await async_jobs.aclose()


async def _next_done(window: deque[asyncio.Task[T]]) -> T:
    # Pop only once done, so a cancellation while waiting still finds the task in the window.
    result = await window[0]
    window.popleft()
    return result


async def iter_in_order(
    fetch: Callable[[Item], Coroutine[Any, Any, T]], items: Sequence[Item], *, concurrency: int
) -> AsyncIterator[T]:
    """Yield ``fetch(item)`` for every item in order, up to ``concurrency`` fetched ahead.

    The first failure is raised (after the retries ``fetch`` makes itself); nothing is skipped.
    """
    loop = asyncio.get_running_loop()
    window: deque[asyncio.Task[T]] = deque()
    handover = _Handover(window)
    try:
        for item in items:
            window.append(loop.create_task(fetch(item)))
            if len(window) >= concurrency:
                result = await _next_done(window)
                with handover:
                    yield result
        while window:
            result = await _next_done(window)
            with handover:
                yield result
    finally:
        await _cancel(window)
