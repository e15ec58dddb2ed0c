"""stderr for people: redaction of the API key, status lines, the progress line, the counters."""

from __future__ import annotations

import asyncio
import codecs
import os
import shutil
import time
from typing import TYPE_CHECKING, TextIO

from ._safe import for_terminal

if TYPE_CHECKING:
    from .._client import FreddyClient

__all__ = ["Console", "Progress", "Redacting", "Stats"]

REDACTED = "[redacted]"


class Redacting:
    """A text stream that never lets a secret through.

    Every stream of one run shares the same ``secrets`` list, so a secret learnt late (the demo
    server's key) is hidden everywhere from then on. A character the stream's encoding lacks
    (a key name in Japanese, written to an ASCII stdout) is written as ``\\u65e5``, not raised.
    """

    def __init__(self, stream: TextIO, secrets: list[str]) -> None:
        self.stream = stream
        self.secrets = secrets
        codec = codecs.lookup(getattr(stream, "encoding", None) or "utf-8").name
        # Only an encoding that lacks characters pays for the round trip.
        self._narrow = None if codec.startswith("utf") else codec

    def redact(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, REDACTED)
        return text

    def write(self, text: str) -> int:
        text = self.redact(text)
        if self._narrow is not None:
            text = text.encode(self._narrow, "backslashreplace").decode(self._narrow)
        return self.stream.write(text)

    def flush(self) -> None:
        self.stream.flush()

    def isatty(self) -> bool:
        return self.stream.isatty()

    @property
    def encoding(self) -> str:
        return getattr(self.stream, "encoding", None) or "ascii"


class Console:
    """Lines for the person at the terminal, on stderr; one of them may be a progress line
    that is redrawn in place and cleared before anything else is written."""

    def __init__(self, stderr: Redacting, *, quiet: bool = False) -> None:
        self.err = stderr
        self.quiet = quiet
        self._line_shown = False

    def clear_line(self) -> None:
        if self._line_shown:
            self.err.write("\r\x1b[K")
            self.err.flush()
            self._line_shown = False

    def show_line(self, text: str) -> None:
        self.err.write(f"\r{text}\x1b[K")
        self.err.flush()
        self._line_shown = True

    def width(self) -> int:
        """Columns of the terminal on stderr (80 when it cannot be told)."""
        try:
            columns = os.get_terminal_size(self.err.stream.fileno()).columns
        except (AttributeError, OSError, ValueError):
            columns = 0
        # A terminal that reports no size (a bare pseudo-terminal) gets the usual fallback.
        return columns if columns > 0 else shutil.get_terminal_size((80, 24)).columns

    def status(self, text: str) -> None:
        """Write one line of status (suppressed by ``--quiet``)."""
        if not self.quiet:
            self.say(text)

    def say(self, text: str) -> None:
        """Write one line whatever ``--quiet`` says (errors, the demo's result).

        Control characters in ``text`` (it may quote the server) are shown escaped.
        """
        self.clear_line()
        self.err.write(f"{for_terminal(text)}\n")
        self.err.flush()


class Stats:
    """What a run has done so far; requests and retries come from the client once it exists."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.client: FreddyClient | None = None
        self.keys_done = 0
        self.keys_total: int | None = None
        self.keys_listed = 0
        self.org_id = ""
        self.months = 1

    @property
    def paced_rate(self) -> float | None:
        """The rate the client is held to for this run's organization, when it is held."""
        return self.client.paced_rate(self.org_id) if self.client and self.org_id else None

    def eta(self) -> float | None:
        """Seconds left at the paced rate, counting whole keys (a key's months go together)."""
        rate = self.paced_rate
        if not rate or self.keys_total is None:
            return None
        return (self.keys_total - self.keys_done) * self.months / rate

    @property
    def retries(self) -> int:
        return self.client.stats.retries if self.client else 0

    @property
    def requests(self) -> int:
        return self.client.stats.requests if self.client else 0

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started


def clock_text(seconds: float) -> str:
    """``0:07``, ``12:34``, ``1:02:03``."""
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class Progress:
    """The progress line: keys done of total, requests, retries, elapsed time, rate.

    Drawn only when ``enabled`` (stderr is a terminal), at most every 0.1 s, and every 0.5 s
    by a ticker task while nothing finishes, so the clock keeps moving.
    """

    def __init__(self, console: Console, stats: Stats, *, enabled: bool) -> None:
        self._console = console
        self._stats = stats
        self.enabled = enabled
        self._last = 0.0
        self._ticker: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self.enabled and self._ticker is None:
            self._ticker = asyncio.get_running_loop().create_task(self._tick())

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(0.5)
            self.draw(force=True)

    def draw(self, *, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self._last < 0.1:
            return
        self._last = now
        self._console.show_line(self.text(self._console.width() - 1))

    def text(self, width: int) -> str:
        s = self._stats
        elapsed = s.elapsed
        rate = s.requests / elapsed if elapsed > 0 else 0.0
        tail = f"{s.requests:,} req  {s.retries:,} retries  {clock_text(elapsed)}  {rate:,.0f} req/s"
        eta, paced = s.eta(), s.paced_rate
        if eta is not None and paced is not None:
            # Rate-bound: what the limit means for the person waiting.
            tail += f"  limit {paced * 60:,.0f}/min  ETA {clock_text(eta)}"
        if s.keys_total is None:
            return f"listing keys: {s.keys_listed:,}  {tail}"[:width]
        counts = f" {s.keys_done:,}/{s.keys_total:,} keys  {tail}"
        bar_width = min(30, width - len(counts) - 2)
        if bar_width < 5:
            return counts.strip()[:width]
        filled = bar_width * s.keys_done // max(s.keys_total, 1)
        return f"[{'#' * filled}{'.' * (bar_width - filled)}]{counts}"

    async def stop(self) -> None:
        """Stop the ticker and clear the line. Idempotent."""
        ticker, self._ticker = self._ticker, None
        if ticker is not None:
            ticker.cancel()
            # wait() does not raise the ticker's CancelledError, and does not swallow our own.
            await asyncio.wait([ticker])
        if self.enabled:
            self._console.clear_line()
