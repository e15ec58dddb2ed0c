"""Helpers shared by the tests that check no task of the client outlives its work."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from typing import Any


def client_tasks() -> list[asyncio.Task[Any]]:
    """Unfinished tasks running the client's code, other than the current one.

    An async generator finalised by the loop runs as a task whose coroutine is an
    ``async_generator_athrow``; it counts too, since only the client makes async generators here.
    """
    found = []
    for task in asyncio.all_tasks():
        if task.done() or task is asyncio.current_task():
            continue
        coro = task.get_coro()
        code = getattr(coro, "cr_code", None)
        where = code.co_filename if code is not None else type(coro).__name__
        if f"freddy_async{os.sep}_" in where or "athrow" in where:
            found.append(task)
    return found


async def settle() -> None:
    """Give cancelled tasks loop turns (not wall-clock time) to finish unwinding."""
    for _ in range(20):
        await asyncio.sleep(0)


async def turns_until(condition: Callable[[], object], limit: int = 100_000, *, what: str = "") -> None:
    """Give the loop turns until ``condition()`` is true; fail after ``limit`` turns, never hang.

    The default is ample for loopback I/O on a loaded machine (a turn is some microseconds), so a
    regression that would wait forever fails within seconds instead.

    Raises:
        AssertionError: naming what was waited for (``what``, else the condition's name).
    """
    for _ in range(limit):
        if condition():
            return
        await asyncio.sleep(0)
    if condition():
        return
    name = what or getattr(condition, "__qualname__", repr(condition))
    raise AssertionError(f"still waiting after {limit} loop turns for: {name}")
