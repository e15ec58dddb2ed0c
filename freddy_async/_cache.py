"""UsageCache: the final answers of closed months, kept in one SQLite file, read off the event loop.

A month's usage stops changing once the month is over and the API has settled it, and the API
allows about 100 requests a minute per organization: the only way past that limit is not to ask.
HTTP caches go by ``Cache-Control``, which cannot know that a closed month is final; this cache
knows the one rule that can (fetched at least ``settle`` after the month's last instant, UTC),
and keeps nothing else.

The file:

- one table of answers keyed by base URL, organization, endpoint, key ID (``""`` for the
  organization's endpoints), month and a fingerprint of the API key: HMAC-SHA256 under a random
  salt kept in the file, so the key itself is never written and another key never matches;
- each answer is the body exactly as the server sent it (money keeps its digits), structured on
  a hit by the same converter as a fresh answer, so a hit equals a fetch; a digest over the row
  is checked on every read, so a damaged row is an error, never wrong data;
- ``PRAGMA application_id`` marks the file as ours and ``PRAGMA user_version`` holds its schema:
  a file that is not SQLite, another program's database, or a newer schema raises
  :class:`FreddyError` naming the path;
- WAL journal and one transaction per stored month: a crash or Ctrl-C loses at most the months
  in flight, and other processes read and write the same file meanwhile;
- created readable by its owner only (0600; SQLite gives its ``-wal`` and ``-shm`` files the
  mode of the database), in a directory created 0700 when missing.

Every SQLite call runs on the cache's one worker thread, in the order asked; the event loop
only awaits them.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import datetime as dt
import hashlib
import hmac
import logging
import math
import os
import secrets
import sqlite3
import time
from collections.abc import Awaitable, Callable, Iterator
from types import TracebackType
from typing import Any, TypeVar

import attrs

from . import _clock
from ._convert import parse_json
from ._errors import FreddyError, ResponseValidationError
from ._periods import YearMonth

__all__ = ["CacheScope", "UsageCache", "is_final"]

T = TypeVar("T")

logger = logging.getLogger("freddy_async")

_APPLICATION_ID = 0x46524459  # "FRDY": the first thing a reader of a foreign file checks
_SCHEMA = 1
# How long a store waits for another process's transaction: each holds one month, milliseconds.
_BUSY_TIMEOUT = 30.0
_BUSY_PAUSE = 0.02
_SALT_BYTES = 16

_CREATE_META = "CREATE TABLE meta (name TEXT PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID"
_CREATE_ANSWERS = """
CREATE TABLE answers (
    base_url TEXT NOT NULL, org_id TEXT NOT NULL, endpoint TEXT NOT NULL, key_id TEXT NOT NULL,
    month TEXT NOT NULL, key_fingerprint TEXT NOT NULL,
    fetched_at REAL NOT NULL, body BLOB NOT NULL, digest BLOB NOT NULL,
    PRIMARY KEY (base_url, org_id, endpoint, key_id, month, key_fingerprint)
) WITHOUT ROWID"""
_KEY = "base_url = ? AND org_id = ? AND endpoint = ? AND key_id = ? AND month = ? AND key_fingerprint = ?"
_SELECT = f"SELECT fetched_at, body, digest FROM answers WHERE {_KEY}"
_UPSERT = "INSERT OR REPLACE INTO answers VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"

_CLOSED = "this UsageCache is closed"


def settled_at(month: YearMonth, settle: float) -> float:
    """The epoch second from which an answer about ``month`` is final: its end plus ``settle``."""
    try:
        end = month.next()
    except ValueError:  # the month after 9999-12 does not exist: that month never ends
        return math.inf
    start = dt.datetime(end.year, end.month, 1, tzinfo=dt.timezone.utc)
    return start.timestamp() + settle


def is_final(month: YearMonth, fetched_at: float, now: float, settle: float) -> bool:
    """Whether an answer about ``month`` fetched at ``fetched_at`` may be served at ``now``.

    Both must be past the settled instant: an entry that claims to be from after it while the
    clock says it has not come yet was written by a clock that was wrong, and is not trusted.
    """
    final = settled_at(month, settle)
    return fetched_at >= final and now >= final


@attrs.frozen
class _Entry:
    """Where one answer lives: the primary key of its row."""

    base_url: str
    org_id: str
    endpoint: str
    key_id: str
    month: str
    fingerprint: str

    def row(self) -> tuple[str, ...]:
        return (self.base_url, self.org_id, self.endpoint, self.key_id, self.month, self.fingerprint)

    def digest(self, fetched_at: float, body: bytes) -> bytes:
        """A checksum of the whole row, so a changed byte anywhere in it is seen on reading."""
        digest = hashlib.blake2b(digest_size=16)
        for part in (*self.row(), repr(fetched_at)):
            digest.update(part.encode("utf-8", "surrogatepass") + b"\0")
        digest.update(body)
        return digest.digest()


class _File:
    """The SQLite side of a cache. Every method runs on the cache's worker thread only."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._db: sqlite3.Connection | None = None
        self._salt = b""

    @contextlib.contextmanager
    def _named(self) -> Iterator[None]:
        """Turn what SQLite or the OS says into a FreddyError naming the file."""
        try:
            yield
        except (sqlite3.Error, OSError) as exc:
            raise FreddyError(f"usage cache {self.path}: {exc}") from None

    def open(self) -> sqlite3.Connection:
        if self._db is not None:
            return self._db
        with self._named():
            _create_owner_only(self.path)
            db = sqlite3.connect(
                self.path, timeout=_BUSY_TIMEOUT, isolation_level=None, check_same_thread=True
            )
            try:
                self._salt = _prepare_when_free(db, self.path)
            except BaseException:
                db.close()
                raise
        self._db = db
        return db

    def fingerprint(self, api_key: str) -> str:
        self.open()
        return hmac.new(self._salt, api_key.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()

    def load(self, entry: _Entry) -> tuple[float, bytes] | None:
        db = self.open()
        with self._named():
            row = db.execute(_SELECT, entry.row()).fetchone()
        if row is None:
            return None
        fetched_at, body, digest = row
        typed = isinstance(fetched_at, float) and isinstance(body, bytes) and isinstance(digest, bytes)
        if not (typed and hmac.compare_digest(entry.digest(fetched_at, body), digest)):
            raise FreddyError(
                f"usage cache {self.path} is damaged: the entry for {entry.endpoint} of "
                f"{entry.key_id or entry.org_id} in {entry.month} does not match its checksum; "
                "delete the file to start over"
            )
        return fetched_at, body

    def store(self, entry: _Entry, fetched_at: float, body: bytes) -> None:
        db = self.open()
        with self._named(), db:  # one transaction, committed here: one month per commit
            db.execute("BEGIN IMMEDIATE")
            db.execute(_UPSERT, (*entry.row(), fetched_at, body, entry.digest(fetched_at, body)))

    def clear(self) -> None:
        db = self.open()
        with self._named(), db:
            db.execute("BEGIN IMMEDIATE")
            db.execute("DELETE FROM answers")

    def close(self) -> None:
        db, self._db = self._db, None
        if db is not None:
            db.close()


def _create_owner_only(path: str) -> None:
    """Create ``path`` (and its directory) readable by its owner only, unless it exists."""
    directory = os.path.dirname(path)
    if not os.path.isdir(directory):
        os.makedirs(directory, mode=0o700, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def _prepare_when_free(db: sqlite3.Connection, path: str) -> bytes:
    """:func:`_prepare`, tried again while another process holds the file.

    SQLite's busy timeout does not cover every lock taken on opening: switching the journal to
    WAL while another process creates the file fails at once with "database is locked". This
    runs on the worker thread, so waiting here holds up no event loop.
    """
    deadline = time.monotonic() + _BUSY_TIMEOUT
    while True:
        try:
            return _prepare(db, path)
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
        time.sleep(_BUSY_PAUSE)


def _prepare(db: sqlite3.Connection, path: str) -> bytes:
    """Check that the file is a cache of our schema (making an empty file one); return its salt.

    A file that is not ours is only read, never changed.
    """
    with db:  # one read transaction: a file another process is creating is seen before or after
        db.execute("BEGIN")
        kind = _check_kind(db, path)
    if kind == "empty":
        _wal(db)
        with db:
            db.execute("BEGIN IMMEDIATE")  # two processes creating one file: the second waits,
            if _check_kind(db, path) == "empty":  # then finds it made
                _create_schema(db)
    _wal(db)
    db.execute("PRAGMA synchronous = NORMAL")  # with WAL: durable against a crash of the process
    row = db.execute("SELECT value FROM meta WHERE name = 'salt'").fetchone()
    if row is None or not isinstance(row[0], bytes) or len(row[0]) != _SALT_BYTES:
        raise FreddyError(f"usage cache {path} is damaged: its salt is missing")
    return bytes(row[0])


def _check_kind(db: sqlite3.Connection, path: str) -> str:
    """``"empty"`` (a new file), ``"ours"``, or a FreddyError saying what else the file is."""
    app_id = db.execute("PRAGMA application_id").fetchone()[0]
    version = db.execute("PRAGMA user_version").fetchone()[0]
    if app_id == 0 and version == 0 and not db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:
        return "empty"
    if app_id != _APPLICATION_ID:
        raise FreddyError(f"{path} is not a freddy_async usage cache (another program's database)")
    if version > _SCHEMA:
        raise FreddyError(
            f"usage cache {path} has schema {version}, made by a newer freddy_async; this "
            f"version reads schema {_SCHEMA}: upgrade, or use another file"
        )
    if version < _SCHEMA:
        raise FreddyError(f"usage cache {path} is damaged: it has no schema version")
    return "ours"


def _wal(db: sqlite3.Connection) -> None:
    if db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
        db.execute("PRAGMA journal_mode = WAL")


def _create_schema(db: sqlite3.Connection) -> None:
    db.execute(_CREATE_META)
    db.execute(_CREATE_ANSWERS)
    db.execute("INSERT INTO meta VALUES ('salt', ?)", (secrets.token_bytes(_SALT_BYTES),))
    db.execute(f"PRAGMA application_id = {_APPLICATION_ID}")
    db.execute(f"PRAGMA user_version = {_SCHEMA}")


def _check_path(path: Any) -> str:
    if not isinstance(path, (str, os.PathLike)):
        raise ValueError(f"path must be a str or os.PathLike, not {type(path).__name__}")
    text = os.fspath(path)
    if not isinstance(text, str) or not text:
        raise ValueError(f"path must be a non-empty file path, not {path!r}")
    # Absolute, so that SQLite never reads a name such as ":memory:" as one of its own.
    return os.path.abspath(text)


class UsageCache:
    """A cache of the API's answers about closed months, in one SQLite file.

    Pass it to :class:`FreddyClient` (``cache=``): the usage, daily usage, usage limits and
    summary of a month it holds a final answer for are served from it without a request, and
    every final answer fetched is stored. An answer is final when it was fetched at least
    ``settle`` after the month's last instant (UTC); anything else (the current month, last
    month fetched on its first day) is fetched again, and stored once it is final. Entries are
    kept per base URL, organization, endpoint, key, month and API key (as a salted hash).

    Any number of clients, and processes, may share one file. Use it as
    ``async with UsageCache(path) as cache:`` (which opens the file at once, so that a bad file
    is reported before any work) or call :meth:`aclose` when done.

    Args:
        path: the SQLite file; created (0600, its directory 0700) when missing.
        settle: how long after a month's end its figures are taken as final.
        refresh: serve nothing from the file, but still store what is fetched: ``--refresh``.

    Raises:
        ValueError: a bad argument.
        FreddyError: (from any method) the file is not a usage cache, is damaged, has a newer
            schema, or cannot be read or written; the message names the path.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        settle: dt.timedelta = dt.timedelta(days=2),
        refresh: bool = False,
    ) -> None:
        if not isinstance(settle, dt.timedelta) or settle < dt.timedelta(0):
            raise ValueError(f"settle must be a timedelta >= 0, not {settle!r}")
        if not isinstance(refresh, bool):
            raise ValueError(f"refresh must be a bool, not {refresh!r}")
        self._file = _File(_check_path(path))
        self._settle = settle
        self._refresh = refresh
        self._executor: concurrent.futures.ThreadPoolExecutor | None = concurrent.futures.ThreadPoolExecutor(
            1, thread_name_prefix="freddy-usage-cache"
        )
        # The clock the settle rule reads; a test may put a fixed instant here.
        self._wall: Callable[[], float] = _clock.wall

    def __repr__(self) -> str:
        return f"UsageCache({self.path!r}, settle={self._settle!r}, refresh={self._refresh})"

    @property
    def path(self) -> str:
        """The SQLite file, as an absolute path."""
        return self._file.path

    @property
    def settle(self) -> dt.timedelta:
        """How long after a month's end an answer about it is taken as final."""
        return self._settle

    async def __aenter__(self) -> UsageCache:
        try:
            await self._run(self._file.open)
        except BaseException:
            await self.aclose()  # `async with` will not: no thread is left behind
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the file and end the worker thread, once every store asked for is written.

        Idempotent. A client using the cache afterwards raises ``RuntimeError``.
        """
        executor, self._executor = self._executor, None
        if executor is None:
            return
        try:
            await asyncio.get_running_loop().run_in_executor(executor, self._file.close)
        finally:
            executor.shutdown(wait=True)  # the thread is idle by now: it only has to end

    async def clear(self) -> None:
        """Remove every entry, of every base URL, organization and API key."""
        await self._run(self._file.clear)

    async def _run(self, function: Callable[..., T], *args: Any) -> T:
        if self._executor is None:
            raise RuntimeError(_CLOSED)
        with _clock.io():  # real time on another thread: virtual time waits for it
            return await asyncio.get_running_loop().run_in_executor(self._executor, function, *args)

    async def _run_to_the_end(self, function: Callable[..., None], *args: Any) -> None:
        """Run ``function`` on the worker, and let it finish even if the caller is cancelled.

        For a store: an answer that has arrived is written even when its batch is cancelled
        (``aclose`` waits for it), so a re-run does not ask for it again.
        """
        if self._executor is None:
            raise RuntimeError(_CLOSED)
        future = asyncio.get_running_loop().run_in_executor(self._executor, function, *args)
        try:
            with _clock.io():
                await asyncio.shield(future)
        except asyncio.CancelledError:
            future.add_done_callback(_log_failure)
            raise

    def _scope(self, base_url: str, api_key: str) -> CacheScope:
        return CacheScope(self, base_url, api_key)


def _log_failure(future: asyncio.Future[None]) -> None:
    # The caller that asked for this store was cancelled: the log is all that is left to tell.
    if not future.cancelled() and future.exception() is not None:
        logger.warning("a cache store finished after its caller was cancelled failed: %s", future.exception())


class CacheScope:
    """One client's view of a :class:`UsageCache`: its base URL and API key, and its hit count."""

    __slots__ = ("_api_key", "_base_url", "_cache", "_fingerprint", "hits")

    def __init__(self, cache: UsageCache, base_url: str, api_key: str) -> None:
        self._cache = cache
        self._base_url = base_url
        self._api_key: str | None = api_key  # until the fingerprint is made from it
        self._fingerprint: str | None = None
        self.hits = 0

    def __repr__(self) -> str:
        return f"CacheScope({self._cache!r}, base_url={self._base_url!r})"

    async def answer(
        self,
        fetch: Callable[[], Awaitable[tuple[T, bytes]]],
        org_id: str,
        endpoint: str,
        read: Callable[[Any], T],
        key_id: str | None,
        month: int | None,
        year: int | None,
    ) -> T:
        """The answer about ``month`` of ``year``: from the file if final there, else fetched.

        ``fetch`` sends the request and returns the model and the body it was read from;
        ``read`` builds the model of a stored body as the client builds a fresh one. A
        request that leaves the month to the server (``month`` or ``year`` omitted) is never
        served nor stored: the server's "current month" is never final.
        """
        if month is None or year is None:
            return (await fetch())[0]
        cache = self._cache
        period = YearMonth(year, month)
        entry = _Entry(self._base_url, org_id, endpoint, key_id or "", str(period), await self._key())
        if not cache._refresh:
            hit = await self._load(entry, period, read)
            if hit is not None:
                self.hits += 1
                return hit
        started = cache._wall()  # the answer is about the data as the request found it
        model, body = await fetch()
        if is_final(period, started, cache._wall(), cache._settle.total_seconds()):
            await cache._run_to_the_end(cache._file.store, entry, started, body)
        return model

    async def _key(self) -> str:
        if self._fingerprint is None:
            api_key = self._api_key
            assert api_key is not None
            self._fingerprint = await self._cache._run(self._cache._file.fingerprint, api_key)
            self._api_key = None
        return self._fingerprint

    async def _load(self, entry: _Entry, period: YearMonth, read: Callable[[Any], T]) -> T | None:
        cache = self._cache
        found = await cache._run(cache._file.load, entry)
        if found is None:
            return None
        fetched_at, body = found
        if not is_final(period, fetched_at, cache._wall(), cache._settle.total_seconds()):
            return None
        try:
            # Read as a fresh answer is (the client's read, checks included): the same bytes
            # give the same model.
            return read(parse_json(body))
        except ResponseValidationError:
            return None  # stored by a version that read more loosely: fetched again and replaced
