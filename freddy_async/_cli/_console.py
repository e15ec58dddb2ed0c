"""stderr for people: redaction of the API key, status lines, and the rich progress display."""

from __future__ import annotations

import asyncio
import codecs
from typing import TYPE_CHECKING, TextIO

from rich.console import Console as RichConsole
from rich.progress import BarColumn, ProgressColumn, Task
from rich.progress import Progress as RichProgress
from rich.text import Text

from .. import _clock
from ._safe import for_terminal

if TYPE_CHECKING:
    from .._cache import UsageCache
    from .._client import FreddyClient

__all__ = ["Console", "Progress", "Redacting", "Stats", "clock_text", "progress_text", "rich_console"]

REDACTED = "[redacted]"
# Lines written to a file or a pipe are data: never wrapped, whatever their length.
_UNWRAPPED = 1_000_000
# The display is redrawn at most this often (seconds) as keys finish, and by a ticker while
# nothing finishes, so that the clock keeps moving.
_DRAW_EVERY = 0.1
_TICK_EVERY = 0.5


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


def rich_console(stream: Redacting) -> RichConsole:
    """A rich console writing to ``stream``: on a terminal, its width and colours (none under
    ``NO_COLOR``); elsewhere plain text, never wrapped. Server text is never read as markup."""
    width = None if stream.isatty() else _UNWRAPPED
    return RichConsole(file=stream, width=width, markup=False, highlight=False, emoji=False)  # type: ignore[arg-type]


class Console:
    """Lines for the person at the terminal, on stderr, printed above the progress display."""

    def __init__(self, stderr: Redacting, *, quiet: bool = False) -> None:
        self.err = stderr
        self.quiet = quiet
        self.rich = rich_console(stderr)

    def status(self, text: str) -> None:
        """Write one line of status (suppressed by ``--quiet``)."""
        if not self.quiet:
            self.say(text)

    def say(self, text: str) -> None:
        """Write one line whatever ``--quiet`` says (errors, warnings).

        Control characters in ``text`` (it may quote the server) are shown escaped.
        """
        self.rich.print(Text(for_terminal(text)), soft_wrap=True)


class Stats:
    """What a run has done so far; requests and retries come from the client once it exists."""

    def __init__(self) -> None:
        self.started = _clock.now()
        self.client: FreddyClient | None = None
        self.cache: UsageCache | None = None
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
        """Seconds since the run started, on the library's clock (virtual in tests)."""
        return _clock.now() - self.started


def clock_text(seconds: float) -> str:
    """``0:07``, ``12:34``, ``1:02:03``."""
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def progress_text(stats: Stats) -> str:
    """The counters after the bar: keys, the ETA and limit while rate-bound, requests, retries,
    elapsed time and rate. The ETA comes first after the keys, so a narrow terminal keeps it."""
    if stats.keys_total is None:
        parts = [f"listing keys: {stats.keys_listed:,}"]
    else:
        parts = [f"{stats.keys_done:,}/{stats.keys_total:,} keys"]
    eta, paced = stats.eta(), stats.paced_rate
    if eta is not None and paced is not None:
        parts.append(f"ETA {clock_text(eta)}  limit {paced * 60:,.0f}/min")
    elapsed = stats.elapsed
    rate = stats.requests / elapsed if elapsed > 0 else 0.0
    parts.append(
        f"{stats.requests:,} req  {stats.retries:,} retries  {clock_text(elapsed)}  {rate:,.0f} req/s"
    )
    return "  ".join(parts)


class _StatsColumn(ProgressColumn):
    def __init__(self, stats: Stats) -> None:
        super().__init__()
        self._stats = stats

    def render(self, task: Task) -> Text:
        return Text(progress_text(self._stats), no_wrap=True, overflow="ellipsis")


class Progress:
    """The progress display on stderr: a bar, then :func:`progress_text`.

    Drawn by rich only when ``enabled`` (stderr is a terminal); redrawn as keys finish (at most
    every 0.1 s), at once on ``draw(force=True)``, and by a ticker every 0.5 s; cleared at the end.
    """

    def __init__(self, console: Console, stats: Stats, *, enabled: bool) -> None:
        self._stats = stats
        self.enabled = enabled
        self._display = RichProgress(
            BarColumn(bar_width=24), _StatsColumn(stats), console=console.rich, auto_refresh=False,
            transient=True, redirect_stdout=False, redirect_stderr=False,
        )
        self._task = self._display.add_task("keys", total=None)
        self._last = 0.0
        self._ticker: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self.enabled and self._ticker is None:
            self._display.start()
            self._ticker = asyncio.get_running_loop().create_task(self._tick())

    async def _tick(self) -> None:
        while True:
            # Real time on purpose: the display is for a person, whatever clock the run uses.
            await asyncio.sleep(_TICK_EVERY)
            self.draw(force=True)

    def draw(self, *, force: bool = False) -> None:
        """Redraw now if forced or if the last drawing is old enough."""
        if self._ticker is None:
            return
        now = _clock.now()
        if not force and now - self._last < _DRAW_EVERY:
            return
        self._last = now
        s = self._stats
        self._display.update(self._task, total=s.keys_total, completed=s.keys_done)
        self._display.refresh()

    async def stop(self) -> None:
        """Stop the ticker and clear the display. Idempotent."""
        ticker, self._ticker = self._ticker, None
        if ticker is not None:
            ticker.cancel()
            # wait() does not raise the ticker's CancelledError, and does not swallow our own.
            await asyncio.wait([ticker])
            self._display.stop()
