"""FreddyClient: configuration, session, endpoints, and the one request loop every call takes.

One request, top to bottom (:meth:`FreddyClient._get`): **admit** (its organization's pacer,
``_ratelimit``) -> **send** (one of ``max_concurrency`` slots, ``_transport``) -> **read the
answer** (``_answers.read_answer``: the data or the error it means) -> a 429 that is flow control
is waited out and sent again; a failure is **retried** by ``_retry`` (tenacity, entered only
after a failed first attempt) or raised; data is **returned**. Every endpoint fetches through
:meth:`FreddyClient._fetch_month` (the key listing aside), the batches by composing ``_batch``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ipaddress
import logging
import os
import re
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable
from types import TracebackType
from typing import Any, Generic, TypeVar

import attrs
from yarl import URL

from . import _batch, _clock, _config, _retry
from ._answers import RateLimitInfo, read_answer
from ._cache import CacheScope, UsageCache
from ._config import API_KEY_ENV, BASE_URL_ENV, DEFAULT_BASE_URL, MAX_PAGE_BYTES, MAX_USAGE_BYTES
from ._convert import KeyPage, Structurer, structure_key_page
from ._errors import (
    AuthenticationError,
    FreddyError,
    PermissionDeniedError,
    RateLimitError,
    Redactor,
    ResponseValidationError,
)
from ._ids import check_id, segment
from ._models import (
    ApiKey,
    ApiKeyDailyUsage,
    ApiKeyUsage,
    DailyUsageSummary,
    KeyUsageReport,
    UsageLimits,
)
from ._periods import MonthLike, YearMonth, check_month, check_year, unique_months
from ._ratelimit import OrgPacer, Pacers, WaitTooLong
from ._retry import RetryPolicy, first_timeout
from ._transport import Answer, Session, Transport
from ._version import __version__

__all__ = ["ClientStats", "FreddyClient"]

T = TypeVar("T")

USER_AGENT = f"freddy-async/{__version__}"

_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f-\x9f]")

logger = logging.getLogger("freddy_async")


@attrs.frozen
class _Endpoint(Generic[T]):
    """One GET of the API: where it goes, what its answer is built into, how large it may be."""

    name: str  # in logs and in the cache's rows
    path: str  # "{org}" and "{key}" stand for the quoted IDs
    read: Callable[[Any], T]
    max_body: int = MAX_PAGE_BYTES


_USAGE = _Endpoint(
    "usage",
    "/v1/analytics/api-keys/usage/{org}/{key}",
    Structurer(ApiKeyUsage),
    # A usage answer is under 2 KB; the daily and listing pages may be far larger.
    max_body=MAX_USAGE_BYTES,
)
_DAILY = _Endpoint("daily", "/v1/analytics/api-keys/daily/{org}", Structurer(ApiKeyDailyUsage))
_LIMITS = _Endpoint("limits", "/v1/analytics/usage/limits/{org}", Structurer(UsageLimits))
_SUMMARY = _Endpoint("summary", "/v1/analytics/api-keys/summary/{org}", Structurer(DailyUsageSummary))
_KEY_PAGE = _Endpoint("keys", "/v1/organizations/{org}/api-keys", structure_key_page)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _check_base_url(base_url: str, allow_insecure_http: bool) -> str:
    if not isinstance(base_url, str):
        raise ValueError(f"base_url must be a string, not {type(base_url).__name__}")
    url = URL(base_url)
    if url.scheme not in ("http", "https") or not url.host:
        raise ValueError(f"base_url must be an http(s) URL with a host, not {base_url!r}")
    if url.query_string or url.fragment:
        raise ValueError(f"base_url must not carry a query or fragment: {base_url!r}")
    if url.user or url.password:
        raise ValueError("base_url must not carry credentials; pass the API key as api_key")
    if url.scheme == "http" and not allow_insecure_http and not _is_loopback(url.host):
        raise ValueError(
            f"base_url {base_url!r} is plain http to a non-loopback host, which would send the "
            "API key in clear text; use https, or pass allow_insecure_http=True if you must"
        )
    return str(url).rstrip("/")


def _check_options(
    timeout: Any, max_retries: Any, max_concurrency: Any, requests_per_minute: Any, retry_deadline: Any
) -> None:
    if not (isinstance(timeout, (int, float)) and timeout > 0):
        raise ValueError(f"timeout must be a positive number of seconds, not {timeout!r}")
    if type(max_retries) is not int or max_retries < 0:
        raise ValueError(f"max_retries must be an int >= 0, not {max_retries!r}")
    if type(max_concurrency) is not int or max_concurrency < 1:
        raise ValueError(f"max_concurrency must be an int >= 1, not {max_concurrency!r}")
    if requests_per_minute is not None and not (
        isinstance(requests_per_minute, (int, float)) and requests_per_minute > 0
    ):
        raise ValueError(f"requests_per_minute must be > 0, not {requests_per_minute!r}")
    if not (isinstance(retry_deadline, (int, float)) and retry_deadline > 0):
        raise ValueError(f"retry_deadline must be > 0 seconds, not {retry_deadline!r}")


def _api_key(api_key: str | None) -> str:
    if api_key is None:
        api_key = os.environ.get(API_KEY_ENV)
    if not api_key:
        raise FreddyError(f"no API key: pass api_key=... or set the {API_KEY_ENV} environment variable")
    if not isinstance(api_key, str) or _CONTROL_CHARS.search(api_key):
        # A newline in a header value would let the key smuggle in headers of its own.
        raise ValueError("api_key must be a string without control characters")
    return api_key


class _Slots:
    """At most ``size`` holders at once, served first come, first served.

    Kept instead of ``asyncio.Semaphore`` because a benchmark shows it matters: the semaphore's
    acquire and release (two coroutines, ``locked()`` scanning the waiters, waking the next)
    cost 10,000 of a request's 560,000 client instructions, 1.8 % (callgrind, see
    benchmarks/RESULTS.md); here an uncontended acquire is an integer decrement, and only a
    contended one awaits.
    """

    __slots__ = ("_free", "_waiters")

    def __init__(self, size: int) -> None:
        self._free = size
        self._waiters: deque[asyncio.Future[None]] = deque()

    def try_acquire(self) -> bool:
        """Take a slot if one is free and nobody queues for it; never waits."""
        if self._free and not self._waiters:
            self._free -= 1
            return True
        return False

    async def acquire(self) -> None:
        """Wait for a slot."""
        if self.try_acquire():
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()  # handed a slot just as we were cancelled: pass it on
            else:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
            raise

    def release(self) -> None:
        """Give a slot back, straight to the longest waiter if there is one."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self._free += 1


@attrs.define
class _Call:
    """One call's state across its sends: 429s waited out and retries after failures alike."""

    pacer: OrgPacer
    url: URL
    path: str
    endpoint: _Endpoint[Any]
    key_id: str | None
    started: float | None = None  # the first send ...
    deadline: float | None = None  # ... and the deadline, which counts from it
    sends: int = 0
    throttled: RateLimitError | None = None  # the last 429 waited out
    keep_body: bool = False  # give back the body with the model, for the cache


@attrs.frozen
class ClientStats:
    """What a client has sent so far: a snapshot, for progress displays and monitoring.

    ``requests`` counts every attempt put on the wire (first tries and retries alike);
    ``retries`` the attempts that repeated an earlier one (after a failure or a 429);
    ``throttled`` the 429 answers that were waited out as flow control;
    ``cache_hits`` the answers served from the client's ``cache``, which sent nothing.
    """

    requests: int
    retries: int
    throttled: int = 0
    cache_hits: int = 0


class FreddyClient:
    """An asyncio client for the Freddy analytics API.

    One client holds one ``aiohttp.ClientSession`` and may be shared by any number of tasks of
    one event loop: the loop it is first used in (one ``asyncio.run``); used in another, it raises
    ``RuntimeError``. Use it as ``async with FreddyClient() as client:`` or call :meth:`aclose`
    when done; a session it made is closed with its loop at the latest.

    Args:
        api_key: the API key; read from the ``FREDDY_API_KEY`` environment variable when omitted.
        base_url: the API's root URL; read from the ``FREDDY_BASE_URL`` environment variable when
            omitted, else the production API. Plain ``http`` is accepted for loopback hosts only, unless
            ``allow_insecure_http`` is set.
        timeout: seconds one attempt may take, from connecting to the last byte.
        max_retries: retries after the first attempt for retryable failures (0 disables).
        retry_deadline: seconds after which a call stops retrying, whatever ``max_retries`` says.
        max_concurrency: requests in flight at once, over all tasks using this client.
        requests_per_minute: client-side cap per organization; when omitted, the client paces
            itself by the server's ``X-RateLimit-*`` headers.
        session: an ``aiohttp.ClientSession`` to borrow; the client never closes it.
        allow_insecure_http: permit ``http://`` to a non-loopback host.
        cache: a :class:`UsageCache` that serves closed months without a request and stores
            what is fetched; the client never closes it.

    Raises:
        FreddyError: no API key was given and ``FREDDY_API_KEY`` is not set.
        ValueError: an option is out of range.
    """

    def __init__(
        self,
        api_key: str | None = None,
        *,
        base_url: str | None = None,
        timeout: float = _config.TIMEOUT,
        max_retries: int = _config.MAX_RETRIES,
        max_concurrency: int = _config.MAX_CONCURRENCY,
        requests_per_minute: float | None = None,
        retry_deadline: float = _config.RETRY_DEADLINE,
        session: Session | None = None,
        allow_insecure_http: bool = False,
        cache: UsageCache | None = None,
    ) -> None:
        api_key = _api_key(api_key)
        if cache is not None and not isinstance(cache, UsageCache):
            raise ValueError(f"cache must be a UsageCache or None, not {type(cache).__name__}")
        _check_options(timeout, max_retries, max_concurrency, requests_per_minute, retry_deadline)
        if base_url is None:
            base_url = os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL
        self._base_url = _check_base_url(base_url, allow_insecure_http)
        base = URL(self._base_url)
        # Each request's URL is built from its parts: parsing a new URL string (yarl caches the
        # last 128) costs three times as much, over a microsecond a request.
        self._scheme, self._authority = base.scheme, base.raw_authority
        self._base_path = base.raw_path.rstrip("/")
        headers = {"X-API-Key": api_key, "User-Agent": USER_AGENT, "Accept": "application/json"}
        self._redactor = Redactor(api_key)
        self._timeout = float(timeout)
        self._policy = RetryPolicy(max_retries=max_retries, deadline=float(retry_deadline))
        self._first_timeout = first_timeout(self._policy, self._timeout)
        self._transport = Transport(
            headers, connections=max_concurrency, first_timeout=self._first_timeout, session=session
        )
        self._max_concurrency = max_concurrency
        self._slots = _Slots(max_concurrency)
        self._pacers = Pacers(requests_per_minute)
        self._sent = 0
        self._retries = 0
        self._throttled = 0
        self._cache: CacheScope | None = None if cache is None else cache._scope(self._base_url, api_key)

    def __repr__(self) -> str:
        return (
            f"FreddyClient(base_url={self._base_url!r}, max_concurrency={self._max_concurrency}, "
            f"max_retries={self._policy.max_retries})"
        )

    @property
    def base_url(self) -> str:
        """The API root every request goes to."""
        return self._base_url

    @property
    def stats(self) -> ClientStats:
        """How many requests and retries this client has sent."""
        hits = 0 if self._cache is None else self._cache.hits
        return ClientStats(self._sent, self._retries, self._throttled, hits)

    def paced_rate(self, org_id: str) -> float | None:
        """Requests per second this client currently paces ``org_id`` to: the rate learned
        from the server's rate-limit headers (or 429s), or ``requests_per_minute``; ``None``
        while nothing limits the organization. For progress displays and ETAs."""
        return self._pacers.rate(org_id)

    @property
    def max_concurrency(self) -> int:
        """How many requests this client keeps in flight at most."""
        return self._max_concurrency

    # -- lifecycle -----------------------------------------------------------------------------

    async def __aenter__(self) -> FreddyClient:
        self._transport.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the session this client created (a borrowed one is left open). Idempotent.

        Requests still in flight, and any later call, fail with ``RuntimeError``.
        """
        await self._transport.aclose()

    # -- the request path: admit -> send -> read the answer -> retry or return --------------------

    async def _fetch_month(
        self,
        endpoint: _Endpoint[T],
        org_id: str,
        month: int | None,
        year: int | None,
        key_id: str | None = None,
    ) -> T:
        """GET one month's answer of ``endpoint``: the one place every month's answer is fetched.

        A key's usage comes this way for :meth:`get_api_key_usage` and a batch's jobs alike, and
        is checked to be about the key and month asked. With a cache, a closed month it holds is
        served from it, and what is fetched (and checked) is stored.
        """
        path = _path(endpoint.path, org_id, key_id)
        query = _month_query(month, year)
        if self._cache is None:
            fetched: T = await self._get(org_id, path, query, endpoint, key_id)
            return _about(fetched, key_id, month, year)

        # Checked once on either path: before a fresh answer is stored, or as a stored one is read.
        async def fetch() -> tuple[T, bytes]:
            answer, body = await self._get(org_id, path, query, endpoint, key_id, keep_body=True)
            return _about(answer, key_id, month, year), body

        def read(data: Any) -> T:
            return _about(endpoint.read(data), key_id, month, year)

        return await self._cache.answer(fetch, org_id, endpoint.name, read, key_id, month, year)

    async def _get(
        self,
        org_id: str,
        path: str,
        query: str,
        endpoint: _Endpoint[T],
        key_id: str | None = None,
        *,
        keep_body: bool = False,
    ) -> Any:
        """GET ``path`` (already quoted) for ``org_id``: the one request loop.

        ``key_id`` names the key the request is about, so a 429 that names the key holds back
        that key only. Gives the answer read by ``endpoint``; with ``keep_body``, a tuple of
        that and the body it was read from.
        """
        self._transport.open()
        url = URL.build(
            scheme=self._scheme,
            authority=self._authority,
            path=self._base_path + path,
            query_string=query,
            encoded=True,
        )
        call = _Call(self._pacers.get(org_id), url, path, endpoint, key_id, keep_body=keep_body)
        try:
            try:
                answer: T = await self._attempt(call, self._first_timeout)
                return answer
            except FreddyError as exc:
                failure = exc
            # Only after a failed first attempt: the common call never builds tenacity's loop.
            assert call.started is not None
            return await _retry.retry(
                failure,
                functools.partial(self._attempt, call),
                self._policy,
                started=call.started,
                timeout=self._timeout,
                what=f"GET {path}",
            )
        except FreddyError as exc:
            exc.attempts = call.sends
            # Raised outside any except block, ours have no context of their own; but a task
            # resumed while aiohttp handles a broken answer can inherit aiohttp's exception as
            # context (seen on Python 3.10 and 3.11 under load), and that quotes the server's
            # bytes, the API key among them.
            exc.__context__ = exc.__cause__ = None
            raise

    async def _attempt(self, call: _Call, timeout: float) -> Any:
        """One attempt: admitted, sent, its answer read; a 429 that is flow control is waited out."""
        while True:
            if not call.pacer.try_admit():  # nearly always admitted at once, without an await
                await self._admit(call)
            if call.started is None:
                call.started = _clock.now()
                call.deadline = call.started + self._policy.deadline
            answer = await self._send(call, timeout)
            info = call.pacer.answered(answer.status, answer.headers)
            if logger.isEnabledFor(logging.DEBUG):
                logger.debug("GET %s -> %d (%d bytes)", call.path, answer.status, len(answer.body))
            outcome = read_answer(
                answer.status,
                answer.headers,
                answer.body,
                read=call.endpoint.read,
                redact=self._redactor,
                reason=answer.reason,
                retry_after=info.retry_after,
            )
            if not isinstance(outcome, FreddyError):
                return (outcome, answer.body) if call.keep_body else outcome
            if not isinstance(outcome, RateLimitError) or answer.status != 429:
                raise outcome
            self._hold(call, outcome, info)

    async def _admit(self, call: _Call) -> None:
        """Wait for the organization (and key) to admit the call, within the call's deadline."""
        try:
            await call.pacer.admit(call.key_id, call.deadline)
        except WaitTooLong as exc:
            raise self._too_long(call, exc.wait) from None

    @staticmethod
    def _too_long(call: _Call, wait: float) -> RateLimitError:
        """The error of a call whose next send would come after its deadline."""
        if call.throttled is not None:  # the 429 this call is waiting out
            call.throttled.retry_after = wait
            return call.throttled
        return RateLimitError(
            f"GET {call.path}: the organization's rate limit holds requests {wait:.3g} s, "
            "past the call's retry_deadline",
            status=429,
            retry_after=wait,
        )

    async def _send(self, call: _Call, timeout: float) -> Answer:
        """Put the admitted request on the wire, holding one of the client's slots meanwhile."""
        try:
            if not self._slots.try_acquire():
                await self._slots.acquire()
            try:
                closed = self._transport.closed_error()
                if closed is not None:
                    raise closed
                self._sent += 1
                if call.sends:
                    self._retries += 1
                call.sends += 1
                return await self._transport.get(
                    call.url,
                    timeout=timeout,
                    path=call.path,
                    redact=self._redactor,
                    max_body=call.endpoint.max_body,
                )
            finally:
                self._slots.release()
        except BaseException as exc:
            call.pacer.unanswered()
            # A request cut off by aclose() (or by closing the lent session) fails as that, at once.
            closed = self._transport.closed_error() if isinstance(exc, FreddyError) else None
            if closed is not None:
                raise closed from None
            raise

    def _hold(self, call: _Call, error: RateLimitError, info: RateLimitInfo) -> None:
        """Hold the organization (or the key the 429 names) for its wait; raise it if no throttling."""
        assert call.deadline is not None
        if not _retry.waits_out(error.retry_after, _clock.now(), call.deadline):
            raise error
        self._throttled += 1
        call.throttled = error
        named = error.details.get("api_key_id") if isinstance(error.details, dict) else None
        key = call.key_id if named is not None and named == call.key_id else None
        call.pacer.throttled(info, key)

    # -- endpoints -----------------------------------------------------------------------------

    async def get_api_key_usage(
        self, org_id: str, api_key_id: str, *, month: int | None = None, year: int | None = None
    ) -> ApiKeyUsage:
        """Fetch one API key's usage in one month.

        Args:
            org_id: the organization, e.g. ``"org_abc123"``.
            api_key_id: the key, e.g. ``"apikey_def456"`` (any prefix).
            month: 1-12; omitted, the server uses the current month.
            year: omitted, the server uses the current year.

        Raises:
            ValueError: a bad argument, before any request.
            APIStatusError: the server refused (a subclass per status).
            APIConnectionError: no answer after the retries.
            ResponseValidationError: the answer does not fit :class:`ApiKeyUsage`.
        """
        check_id(org_id, "org_id")
        check_id(api_key_id, "api_key_id")
        return await self._fetch_month(_USAGE, org_id, month, year, api_key_id)

    async def get_api_key_daily_usage(
        self, org_id: str, *, year: int | None = None, month: int | None = None
    ) -> ApiKeyDailyUsage:
        """Fetch an organization's API-key usage of one month, day by day.

        Args:
            org_id: the organization.
            year: omitted, the server uses the current year (it accepts 2020-2030).
            month: 1-12; omitted, the server uses the current month.

        Raises:
            ValueError: a bad argument, before any request.
            APIStatusError, APIConnectionError, ResponseValidationError: as for
                :meth:`get_api_key_usage`.
        """
        check_id(org_id, "org_id")
        return await self._fetch_month(_DAILY, org_id, month, year)

    def list_api_keys(self, org_id: str, *, page_size: int = 100) -> AsyncIterator[ApiKey]:
        """Yield every API key of an organization, walking the pages as they are needed.

        Raises:
            ValueError: a bad argument (``page_size`` must be 1-100), before any request.
            APIStatusError, APIConnectionError, ResponseValidationError: as for
                :meth:`get_api_key_usage`.
        """
        check_id(org_id, "org_id")
        if type(page_size) is not int or not 1 <= page_size <= 100:
            raise ValueError(f"page_size must be an int from 1 to 100, not {page_size!r}")
        return self._walk_keys(org_id, page_size)

    async def _walk_keys(self, org_id: str, page_size: int) -> AsyncIterator[ApiKey]:
        path = _path(_KEY_PAGE.path, org_id, None)
        page = 1
        seen: set[str] = set()
        while True:
            result: KeyPage = await self._get(org_id, path, f"page={page}&page_size={page_size}", _KEY_PAGE)
            new = [key for key in result.keys if key.id not in seen]
            for key in new:
                seen.add(key.id)
                yield key
            # The counts come from what was served and from the totals, never from page_size:
            # a server may serve fewer keys a page than asked, or ignore the size altogether.
            total, pages = result.total, result.total_pages
            if total is not None and len(seen) >= total:
                return
            if total is None and pages is not None and page >= pages:
                return
            # An empty page, or one with nothing new (a server that ignores `page`), ends the walk.
            if not new:
                break
            page += 1
        if total is not None:
            raise ResponseValidationError(
                f"the key listing ended at {len(seen)} of {total} keys: page {page} brought no new key",
                path="total",
            )
        if pages is not None:
            raise ResponseValidationError(
                f"the key listing ended at page {page} of {pages} ({len(seen)} keys): "
                "it brought no new key",
                path="pagination.total_pages",
            )

    def iter_api_key_usage(
        self,
        org_id: str,
        api_key_ids: Iterable[str] | None = None,
        *,
        months: Iterable[MonthLike],
    ) -> AsyncIterator[KeyUsageReport]:
        """Fetch the usage of many keys over many months, concurrently, one report per key.

        Reports come in completion order, each as soon as all of its key's months are done.
        A month that still fails after the retries is recorded in the report's ``errors``, a
        403 that refuses one key (naming it in ``details.api_key_id``) included. A 401, or a 403
        that refuses the organization (``ORGANIZATION_ACCESS_DENIED``, or naming no key or
        another key), would fail every request alike: it ends the iteration instead.
        Leaving the loop early cancels what is still in flight.

        Args:
            org_id: the organization.
            api_key_ids: the keys; ``None`` fetches every key of the organization. A key given
                twice is fetched once.
            months: ``YearMonth`` values, ``"YYYY-MM"`` strings or ``(year, month)`` tuples.

        Raises:
            ValueError: a bad argument, before any request.
            AuthenticationError, PermissionDeniedError: the API key may not read the
                organization: the batch cannot go on.
        """
        check_id(org_id, "org_id")
        month_list = unique_months(months)
        listed = api_key_ids is None
        keys = self._all_key_ids(org_id) if api_key_ids is None else _given_key_ids(api_key_ids)
        return _batch.iter_usage(
            functools.partial(self._usage_job, org_id, listed),
            keys,
            month_list,
            concurrency=self._max_concurrency,
            ends_batch=_ends_batch,
        )

    async def _all_key_ids(self, org_id: str) -> AsyncIterator[str]:
        async for key in self.list_api_keys(org_id):
            yield key.id

    def _usage_job(self, org_id: str, listed: bool, key_id: str, month: YearMonth) -> Awaitable[ApiKeyUsage]:
        """One (key, month) of a batch: fetched as :meth:`get_api_key_usage` fetches it.

        Hands back the fetch itself to await, which saves every request of a batch a frame.
        """
        if listed:  # given IDs were checked up front; this one came from the key listing
            _check_listed_id(key_id)
        return self._fetch_month(_USAGE, org_id, month.month, month.year, key_id)

    def iter_daily_usage(
        self, org_id: str, *, months: Iterable[MonthLike]
    ) -> AsyncIterator[ApiKeyDailyUsage]:
        """Fetch the daily breakdown of several months concurrently, yielded oldest first.

        Raises:
            ValueError: a bad argument, before any request.
            FreddyError: the first month that failed after its retries.
        """
        return self._iter_months(_DAILY, org_id, months)

    async def get_usage_limits(
        self, org_id: str, *, month: int | None = None, year: int | None = None
    ) -> UsageLimits:
        """Fetch an organization's limits and usage of one month, every key's cost included.

        One request answers for all the organization's keys: each key's ``current_usage`` is
        its cost in the month, the same amount as :meth:`get_api_key_usage`'s ``total_cost``.

        Args:
            org_id: the organization.
            month: 1-12; omitted, the server uses the current month.
            year: omitted, the server uses the current year.

        Raises:
            ValueError: a bad argument, before any request.
            APIStatusError, APIConnectionError, ResponseValidationError: as for
                :meth:`get_api_key_usage`.
        """
        check_id(org_id, "org_id")
        return await self._fetch_month(_LIMITS, org_id, month, year)

    async def get_api_key_usage_summary(
        self, org_id: str, *, year: int | None = None, month: int | None = None
    ) -> DailyUsageSummary:
        """Fetch the month's totals over all API keys of an organization.

        The same totals as the ``summary`` of :meth:`get_api_key_daily_usage`, without the days.

        Args:
            org_id: the organization.
            year: omitted, the server uses the current year.
            month: 1-12; omitted, the server uses the current month.

        Raises:
            ValueError: a bad argument, before any request.
            APIStatusError, APIConnectionError, ResponseValidationError: as for
                :meth:`get_api_key_usage`.
        """
        check_id(org_id, "org_id")
        return await self._fetch_month(_SUMMARY, org_id, month, year)

    def iter_usage_limits(
        self, org_id: str, *, months: Iterable[MonthLike]
    ) -> AsyncIterator[UsageLimits]:
        """Fetch the limits and usage of several months concurrently, yielded oldest first.

        One request a month, whatever the number of keys. The answers do not name their month:
        the n-th one yielded is for the n-th of the months sorted and de-duplicated, so
        ``zip(sorted(set(months)), ...)`` (with ``YearMonth`` values, e.g. from
        ``YearMonth.range``) pairs each with its month.

        Raises:
            ValueError: a bad argument, before any request.
            FreddyError: the first month that failed after its retries.
        """
        return self._iter_months(_LIMITS, org_id, months)

    def _iter_months(
        self, endpoint: _Endpoint[T], org_id: str, months: Iterable[MonthLike]
    ) -> AsyncIterator[T]:
        """One organization-wide answer a month, fetched concurrently, yielded oldest first."""
        check_id(org_id, "org_id")
        month_list = unique_months(months)

        def fetch(month: YearMonth) -> Coroutine[Any, Any, T]:
            return self._fetch_month(endpoint, org_id, month.month, month.year)

        return _batch.iter_in_order(fetch, month_list, concurrency=self._max_concurrency)


def _about(answer: T, key_id: str | None, month: int | None, year: int | None) -> T:
    """``answer``, checked to be about the key and month asked when it is a key's usage."""
    if isinstance(answer, ApiKeyUsage):
        assert key_id is not None
        _check_usage_answers(answer, key_id, month, year)
    return answer


def _check_usage_answers(usage: ApiKeyUsage, key_id: str, month: int | None, year: int | None) -> None:
    """Raise ``ResponseValidationError`` unless ``usage`` is about ``key_id`` in the month asked."""
    if (month is not None and usage.month != month) or (year is not None and usage.year != year):
        if month is not None and year is not None:
            asked = str(YearMonth(year, month))
        else:
            asked = f"month {month}" if month is not None else f"year {year}"
        raise ResponseValidationError(
            f"asked for {asked} of {key_id}, the server answered {usage.period}", path="month"
        )
    if usage.api_key_id != key_id:
        raise ResponseValidationError(
            f"asked for {key_id}, the server answered about {usage.api_key_id}", path="apiKeyId"
        )


def _given_key_ids(api_key_ids: Iterable[str]) -> list[str]:
    """The IDs a caller gave, each checked; raise ``ValueError`` on a bad one."""
    if isinstance(api_key_ids, str):
        raise ValueError("api_key_ids must be a list of IDs, not a single string")
    if not isinstance(api_key_ids, Iterable):
        raise ValueError(f"api_key_ids must be a list of IDs, not {type(api_key_ids).__name__}")
    return [check_id(key, "api_key_id") for key in api_key_ids]


def _check_listed_id(key_id: str) -> None:
    """Raise ``ResponseValidationError`` if the key listing gave an ID no request can carry."""
    try:
        check_id(key_id, "api_key_id")
    except ValueError as exc:
        raise ResponseValidationError(
            f"the key listing holds an unusable ID: {exc}", path="keys[].id"
        ) from None


def _ends_batch(error: FreddyError, key_id: str) -> bool:
    """Whether ``error``, met fetching ``key_id``, would fail every other request of a batch too."""
    if isinstance(error, AuthenticationError):
        return True
    if not isinstance(error, PermissionDeniedError):
        return False
    if error.code == "ORGANIZATION_ACCESS_DENIED":
        return True
    named = error.details.get("api_key_id") if isinstance(error.details, dict) else None
    # A refusal that names the key asked about refuses that key only; any other refuses us.
    return named != key_id


# A batch asks for each key's path once per month: made once (the IDs are checked by then).
@functools.lru_cache(maxsize=4096)
def _path(template: str, org_id: str, key_id: str | None) -> str:
    """``template`` with the quoted organization and key IDs in."""
    return template.format(org=segment(org_id), key=segment(key_id) if key_id else "")


def _month_query(month: int | None, year: int | None) -> str:
    """The query of a month's GET, each part checked (``ValueError`` before any request)."""
    if month is not None and year is not None:
        return f"month={check_month(month)}&year={check_year(year)}"
    if month is not None:
        return f"month={check_month(month)}"
    return "" if year is None else f"year={check_year(year)}"
