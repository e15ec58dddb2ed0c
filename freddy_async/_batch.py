"""Bounded fan-out of many requests, handed back as async iterators.

This module only orchestrates: it is given an async ``fetch`` callable and knows nothing of HTTP,
nor of which errors end a batch (the client tells it), so :class:`FreddyClient` composes it rather
than the other way round.

A batch (:func:`iter_usage`), end to end: :class:`_Jobs` makes the (key, month) jobs lazily, key
by key; at most ``concurrency`` workers take them (a slow start: one key's worth of workers first,
one more per answer); each finished job is filed under its key, and a key whose months are all
done is handed over as a :class:`KeyUsageReport` at once. So the tasks alive and the reports
half-built stay bounded by ``concurrency`` however many keys a batch has. Leaving the iteration
(break, an exception in the caller's loop, cancellation, ``aclose()``) cancels and awaits every
job still running before the iterator is done; cancelling the caller's task while it is busy with
a result cancels the jobs at once (see :class:`_Handover`).
"""

from __future__ import annotations

import asyncio
import itertools
from collections import deque
from collections.abc import (
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
    jobs = _Jobs(keys, months)
    batch = _UsageBatch(fetch, jobs, len(months), concurrency, ends_batch)
    handover = _Handover(batch.workers)
    try:
        batch.start()
        while (report := await batch.next_report()) is not None:
            with handover:
                yield report
    finally:
        await _cancel(batch.workers)
        await jobs.aclose()


class _Jobs:
    """The (key, month) jobs of a batch, made as they are taken: each distinct key's months."""

    def __init__(self, keys: Iterable[str] | AsyncIterator[str], months: Sequence[YearMonth]) -> None:
        self._keys = keys if isinstance(keys, AsyncIterator) else _async_keys(keys)
        self._months = months
        self._pending: Iterator[tuple[str, YearMonth]] = iter(())  # the months of the last key
        self._seen: set[str] = set()
        self._closed = False
        # An async iterator must not be advanced by two tasks at once (one may be awaiting the
        # next page of the key listing); a key's months are handed out without it.
        self._lock = asyncio.Lock()

    def ready(self) -> tuple[str, YearMonth] | None:
        """The next of the current key's jobs, if one is left: nothing to await."""
        return next(self._pending, None)

    async def take(self) -> tuple[str, YearMonth] | None:
        """The next job, or ``None`` when there is none left (or :meth:`close` was called)."""
        job = self.ready()
        if job is None and not self._closed:
            async with self._lock:
                job = await self._next_key()
        return job

    async def _next_key(self) -> tuple[str, YearMonth] | None:
        # Another worker may have taken the next key while this one waited for the lock.
        job = self.ready()
        while job is None and not self._closed:
            key = await anext(self._keys, None)
            if key is None:
                return None
            if key not in self._seen:
                self._seen.add(key)
                self._pending = ((key, month) for month in self._months)
                job = next(self._pending, None)
        return job

    def close(self) -> None:
        """Hand out no more jobs."""
        self._closed = True
        self._pending = iter(())

    async def aclose(self) -> None:
        """Close the key iterator (the key listing's pages, when the keys come from it)."""
        self.close()
        aclose = getattr(self._keys, "aclose", None)
        if aclose is not None:
            await aclose()


async def _async_keys(keys: Iterable[str]) -> AsyncIterator[str]:
    for key in keys:
        yield key


@attrs.define
class _Partial:
    """A key whose months are not all back yet."""

    waiting: int
    usage: list[ApiKeyUsage] = attrs.Factory(list)
    errors: dict[YearMonth, FreddyError] = attrs.Factory(dict)

    def report(self, key_id: str) -> KeyUsageReport:
        self.usage.sort(key=lambda u: (u.year, u.month))
        return KeyUsageReport(key_id, tuple(self.usage), self.errors)


class _WorkerDone:
    """Put by a worker that found no job left."""


class _Stop:
    """Put by a worker that hit a batch-fatal error, or a bug (any exception but a FreddyError)."""

    def __init__(self, exc: Exception) -> None:
        self.exc = exc


_DONE = _WorkerDone()


class _UsageBatch:
    """The workers of one :func:`iter_usage`, the keys they have half done, the reports ready."""

    def __init__(
        self, fetch: UsageFetch, jobs: _Jobs, n_months: int, concurrency: int, ends_batch: EndsBatch
    ) -> None:
        self._fetch = fetch
        self._jobs = jobs
        self._n_months = n_months
        self._concurrency = concurrency
        self._ends_batch = ends_batch
        self._partial: dict[str, _Partial] = {}
        self._finished = 0
        self.workers: list[asyncio.Task[None]] = []
        # Workers file each job's outcome under its key themselves and hand over whole reports, so
        # the caller's task wakes once per key, not once per request. Bounded: while the caller is
        # busy with a report, at most `concurrency` reports wait here and the workers stop taking
        # jobs, so memory stays flat however slow the caller is.
        self._reports: asyncio.Queue[KeyUsageReport | _WorkerDone | _Stop] = asyncio.Queue(
            maxsize=concurrency
        )

    def start(self) -> None:
        """Start one key's worth of workers; each answer then starts one more, up to ``concurrency``.

        The first key's months are so not queued behind ``concurrency`` connections being opened
        at once, and its report comes about as soon as that key's alone would; the pool still
        reaches full width within a few round trips.
        """
        for _ in range(min(self._concurrency, self._n_months)):
            self._add_worker()

    def _add_worker(self) -> None:
        self.workers.append(asyncio.get_running_loop().create_task(self._work()))

    async def next_report(self) -> KeyUsageReport | None:
        """The next key done; ``None`` once every worker is done; raise what ended the batch."""
        while self._finished < len(self.workers):
            message = await self._reports.get()
            if isinstance(message, _Stop):
                raise message.exc
            if isinstance(message, KeyUsageReport):
                return message
            self._finished += 1
        return None

    async def _work(self) -> None:
        try:
            # Most jobs are months of a key already taken: no coroutine to make for them.
            while (job := self._jobs.ready() or await self._jobs.take()) is not None:
                key, month = job
                try:
                    outcome: ApiKeyUsage | FreddyError = await self._fetch(key, month)
                except FreddyError as exc:
                    outcome = exc
                report = self._file(key, month, outcome)
                if report is not None:
                    await self._reports.put(report)
        except Exception as exc:
            # An error that ends the batch, or a bug (in fetch, the caller's key iterable,
            # anywhere here): no more jobs are handed out, and the caller gets the exception,
            # never a hang.
            self._jobs.close()
            await self._reports.put(_Stop(exc))
        else:
            await self._reports.put(_DONE)

    def _file(self, key: str, month: YearMonth, outcome: ApiKeyUsage | FreddyError) -> KeyUsageReport | None:
        """File one job's outcome under its key; return the key's report once its months are in.

        Raises:
            FreddyError: ``outcome``, when it ends the batch.
        """
        if isinstance(outcome, FreddyError) and self._ends_batch(outcome, key):
            raise outcome
        if len(self.workers) < self._concurrency:
            self._add_worker()  # the slow start: one more worker per answer
        entry = self._partial.get(key)
        if entry is None:
            entry = self._partial[key] = _Partial(self._n_months)
        if isinstance(outcome, FreddyError):
            entry.errors[month] = outcome
        else:
            entry.usage.append(outcome)
        entry.waiting -= 1
        if entry.waiting:
            return None
        del self._partial[key]
        return entry.report(key)


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


async def iter_in_order(
    fetch: Callable[[Item], Coroutine[Any, Any, T]], items: Sequence[Item], *, concurrency: int
) -> AsyncIterator[T]:
    """Yield ``fetch(item)`` for every item in order, up to ``concurrency`` fetched ahead.

    The first failure is raised (after the retries ``fetch`` makes itself); nothing is skipped.
    """
    loop = asyncio.get_running_loop()
    window: deque[asyncio.Task[T]] = deque()
    handover = _Handover(window)
    pending = iter(items)
    try:
        while True:
            for item in itertools.islice(pending, concurrency - len(window)):
                window.append(loop.create_task(fetch(item)))
            if not window:
                return
            result = await _next_done(window)
            with handover:
                yield result
    finally:
        await _cancel(window)


async def _next_done(window: deque[asyncio.Task[T]]) -> T:
    # Pop only once done, so a cancellation while waiting still finds the task in the window.
    result = await window[0]
    window.popleft()
    return result
