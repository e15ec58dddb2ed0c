"""Helpers shared by the tests that check no task of the client outlives its work."""

from __future__ import annotations

import asyncio
import os
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


async def turns_until(condition: Any, limit: int = 10_000) -> None:
    """Give the loop turns until ``condition()`` holds; fail (never hang) after ``limit`` turns."""
    for _ in range(limit):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError(f"still false after {limit} loop turns: {condition}")
