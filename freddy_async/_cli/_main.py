"""The entry point: parse, run the command, and turn what went wrong into one line and a status."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import Iterator, Sequence

from .._errors import AuthenticationError, FreddyError, PermissionDeniedError
from ._args import PROG, UsageError, build_parser
from ._commands import dispatch
from ._console import Console, Redacting
from ._flags import with_flags
from ._run import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_USAGE, Run

__all__ = ["main", "run_in_loop"]


class _VerboseHandler(logging.Handler):
    def __init__(self, console: Console) -> None:
        super().__init__(logging.INFO)
        self._console = console

    def emit(self, record: logging.LogRecord) -> None:
        self._console.say(f"{PROG}: {with_flags(record.getMessage())}")


@contextlib.contextmanager
def _verbose(console: Console, on: bool) -> Iterator[None]:
    """Show the library's retries (logged at INFO) on the console while ``on``."""
    if not on:
        yield
        return
    logger = logging.getLogger("freddy_async")
    old_level, handler = logger.level, _VerboseHandler(console)
    logger.addHandler(handler)
    if logger.getEffectiveLevel() > logging.INFO:
        logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)


def _fatal_message(exc: FreddyError) -> str:
    if isinstance(exc, AuthenticationError):
        what = "the API key was refused"
    elif isinstance(exc, PermissionDeniedError):
        what = "access denied"
    else:
        what = "the request failed"
    return f"{PROG}: error: {what}: {type(exc).__name__}: {with_flags(' '.join(str(exc).split()))}"


async def run_in_loop(argv: Sequence[str], stdout: Redacting, console: Console) -> int:
    """Run ``freddy-usage argv`` in the running event loop and return its exit status.

    What :func:`main` does, for a caller that has a loop already (benchmarks) and handles
    ``UsageError``, ``FreddyError`` and interruptions itself.
    """
    args = build_parser().parse_args(argv)
    console.quiet = args.quiet
    with _verbose(console, args.verbose):
        return await dispatch(Run(args, stdout, console))


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``freddy-usage`` with ``argv`` (default: ``sys.argv[1:]``) and return the exit status."""
    secrets: list[str] = []
    stdout = Redacting(sys.stdout, secrets)
    console = Console(Redacting(sys.stderr, secrets))
    try:
        return asyncio.run(run_in_loop(sys.argv[1:] if argv is None else argv, stdout, console))
    except UsageError as exc:
        text = str(exc)
        console.say(text if text.startswith(PROG) else f"{PROG}: error: {text}")
        return EXIT_USAGE
    except FreddyError as exc:
        console.say(_fatal_message(exc))
        return EXIT_FAILED
    except KeyboardInterrupt:
        console.say(f"{PROG}: interrupted")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (| head): stop quietly, and keep the interpreter's final flush
        # of stdout from failing again.
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILED
