"""FreddyClient: the session owner, and the one private path every request takes."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ipaddress
import logging
import os
import re
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Iterable
from types import TracebackType
from typing import Any, TypeVar

import aiohttp
import attrs
from yarl import URL

from . import _batch, _clock, _config, _transport
from ._answers import RateLimitInfo
from ._config import API_KEY_ENV, BASE_URL_ENV, DEFAULT_BASE_URL, MAX_PAGE_BYTES, MAX_USAGE_BYTES, MAX_WAIT
from ._convert import parse_json, structure, structure_key_page
from ._errors import (
    APIStatusError,
    AuthenticationError,
    FreddyError,
    PermissionDeniedError,
    RateLimitError,
    Redactor,
    ResponseValidationError,
    error_from_response,
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
from ._retry import RetryPolicy, call_with_retries, first_timeout
from ._version import __version__

__all__ = ["API_KEY_ENV", "DEFAULT_BASE_URL", "ClientStats", "FreddyClient"]

# cli.py still imports _check_id and API_KEY_ENV from here; they live in _ids and _config.
_check_id = check_id

T = TypeVar("T")

USER_AGENT = f"freddy-async/{__version__}"

_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f-\x9f]")

logger = logging.getLogger("freddy_async")

_CLOSED = "this FreddyClient is closed"
_LENT_CLOSED = (
    "the aiohttp.ClientSession lent to this FreddyClient is closed: close it only after the client"
)
_OTHER_LOOP = (
    "this FreddyClient is bound to another event loop (used in one asyncio.run, then in another): "
    "create one client per event loop"
)


def _closing_with_loop(session: aiohttp.ClientSession) -> AsyncGenerator[None, None]:
    """Return an async generator, already started, that closes ``session`` when closed.

    Started inside the running loop, it is one of the loop's async generators, which
    ``asyncio.run`` (and every loop runner) closes before closing the loop: a client never
    closed, or reused in another ``asyncio.run``, leaves no socket open behind its first loop.
    Unlike a task, it costs nothing while it waits.
    """

    async def guard() -> AsyncGenerator[None, None]:
        try:
            yield
        finally:
            await session.close()

    generator = guard()
    # Run it to its `yield` without an await (the caller is synchronous): the first asend()
    # registers it with the running loop; reaching the yield ends the step with StopIteration.
    step = generator.asend(None)
    try:
        step.send(None)
    except StopIteration:
        return generator
    raise AssertionError("the session guard stopped before its yield")  # pragma: no cover


def _usage_prefix(org_id: str) -> str:
    return f"/v1/analytics/api-keys/usage/{segment(org_id)}/"


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


class _Slots:
    """At most ``size`` holders at once, served first come, first served.

    asyncio.Semaphore spends about a microsecond on every acquire, contended or not (its
    ``locked()`` scans the waiters); here an uncontended acquire is an integer decrement, and
    only a contended one awaits.
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
    session: aiohttp.ClientSession
    url: URL
    path: str
    into: type[Any] | None
    key_id: str | None
    started: float | None = None  # the first send; the call's deadline counts from here
    sends: int = 0
    throttled: RateLimitError | None = None  # the last 429 waited out


@attrs.frozen
class ClientStats:
    """What a client has sent so far: a snapshot, for progress displays and monitoring.

    ``requests`` counts every attempt put on the wire (first tries and retries alike);
    ``retries`` the attempts that repeated an earlier one (after a failure or a 429);
    ``throttled`` the 429 answers that were waited out as flow control.
    """

    requests: int
    retries: int
    throttled: int = 0


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
        session: aiohttp.ClientSession | None = None,
        allow_insecure_http: bool = False,
    ) -> None:
        if api_key is None:
            api_key = os.environ.get(API_KEY_ENV)
        if not api_key:
            raise FreddyError(
                f"no API key: pass api_key=... or set the {API_KEY_ENV} environment variable"
            )
        if not isinstance(api_key, str) or _CONTROL_CHARS.search(api_key):
            # A newline in a header value would let the key smuggle in headers of its own.
            raise ValueError("api_key must be a string without control characters")
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

        if base_url is None:
            base_url = os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL
        self._base_url = _check_base_url(base_url, allow_insecure_http)
        self._headers = {
            "X-API-Key": api_key,
            "User-Agent": USER_AGENT,
            "Accept": "application/json",
        }
        self._redactor = Redactor(api_key)
        self._timeout = float(timeout)
        self._policy = RetryPolicy(max_retries=max_retries, deadline=float(retry_deadline))
        self._first_timeout = first_timeout(self._policy, self._timeout)
        # Shared by every first attempt (nearly all attempts), instead of one per request.
        self._client_timeout = aiohttp.ClientTimeout(total=self._first_timeout)
        self._max_concurrency = max_concurrency
        self._slots = _Slots(max_concurrency)
        self._pacers = Pacers(requests_per_minute)
        self._session = session
        self._owns_session = session is None
        # A borrowed session gets the headers with each request; see _ensure_session.
        self._request_headers: dict[str, str] | None = self._headers
        self._closed = False
        self._loop: asyncio.AbstractEventLoop | None = None  # the loop of the first use
        self._guard: AsyncGenerator[None, None] | None = None  # closes our session with that loop
        self._sent = 0
        self._retries = 0
        self._throttled = 0

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
        return ClientStats(self._sent, self._retries, self._throttled)

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
        self._ensure_session()
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
        if self._closed:
            return
        self._closed = True
        self._session = None
        guard, self._guard = self._guard, None
        if guard is not None:
            await guard.aclose()  # closes the session we created

    def _ensure_session(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            if self._loop is not None:
                raise RuntimeError(_OTHER_LOOP)
            self._loop = loop
        session = self._session
        if session is None:
            if self._closed:
                raise RuntimeError(_CLOSED)
            # Made on first use, inside the running loop: no await between check and set,
            # so concurrent first calls still share one session. Our own session carries the
            # headers itself, sparing every request a merge of its headers into the defaults.
            session = self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._max_concurrency),
                headers=self._headers,
            )
            self._request_headers = None
            self._guard = _closing_with_loop(session)
        elif session.closed:
            raise RuntimeError(_LENT_CLOSED if not self._owns_session else _CLOSED)
        return session

    def _closed_error(self, session: aiohttp.ClientSession) -> RuntimeError | None:
        """Why a request on ``session`` cannot be sent (now), if it cannot."""
        if self._closed:
            return RuntimeError(_CLOSED)
        if session.closed:
            return RuntimeError(_LENT_CLOSED if not self._owns_session else _CLOSED)
        return None

    # -- the request path ----------------------------------------------------------------------

    async def _get(
        self,
        org_id: str,
        path: str,
        query: str = "",
        *,
        into: type[Any] | None = None,
        key_id: str | None = None,
    ) -> Any:
        """GET ``path`` (already quoted) for ``org_id``: admitted, sent, read, retried.

        Returns the decoded JSON, structured into ``into`` when given. ``key_id`` names the key
        the request is about, so a 429 that names the key holds back that key only.
        """
        session = self._ensure_session()
        url = URL(f"{self._base_url}{path}{'?' + query if query else ''}", encoded=True)
        call = _Call(self._pacers.get(org_id), session, url, path, into, key_id)
        try:
            try:
                return await self._attempt(call, self._first_timeout)
            except FreddyError as exc:
                failed = exc
            # Only after a failed first attempt: the retry loop decides what comes next.
            assert call.started is not None
            return await call_with_retries(
                functools.partial(self._attempt, call),
                self._policy,
                failed=failed,
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
        """One attempt: admitted, sent and read; a 429 that fits the deadline is waited out."""
        while True:
            deadline = None if call.started is None else call.started + self._policy.deadline
            try:
                if not call.pacer.try_admit():
                    await call.pacer.admit(call.key_id, deadline)
            except WaitTooLong as exc:
                raise self._too_long(call, exc.wait) from None
            if call.started is None:
                call.started = _clock.now()
            answer = await self._send(call, timeout)
            info = call.pacer.answered(answer.status, answer.headers)
            if answer.status != 429:
                return self._read(call, answer, info)
            self._throttle(call, self._error(answer, info), info)

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

    async def _send(self, call: _Call, timeout: float) -> _transport.Answer:
        slots = self._slots
        if not slots.try_acquire():
            try:
                await slots.acquire()
            except BaseException:
                call.pacer.unanswered()
                raise
        try:
            closed = self._closed_error(call.session)
            if closed is not None:
                raise closed
            self._sent += 1
            if call.sends:
                self._retries += 1
            call.sends += 1
            return await _transport.get(
                call.session,
                call.url,
                headers=self._request_headers,
                timeout=(
                    self._client_timeout
                    if timeout == self._first_timeout
                    else aiohttp.ClientTimeout(total=timeout)
                ),
                path=call.path,
                redact=self._redactor,
                # A usage answer is under 2 KB; the daily and listing pages may be far larger.
                max_body=(
                    MAX_USAGE_BYTES if call.into is ApiKeyUsage else MAX_PAGE_BYTES
                ),
            )
        except FreddyError:
            call.pacer.unanswered()
            # A request cut off by aclose() (or by closing the lent session) fails as that, at once.
            closed = self._closed_error(call.session)
            if closed is not None:
                raise closed from None
            raise
        except BaseException:
            call.pacer.unanswered()
            raise
        finally:
            slots.release()

    def _throttle(self, call: _Call, error: APIStatusError, info: RateLimitInfo) -> None:
        """Hold the organization (or key) after a 429, or raise it when it is no throttling."""
        assert isinstance(error, RateLimitError)
        assert call.started is not None
        wait = error.retry_after
        if wait is not None and wait > MAX_WAIT:
            raise error  # a spending limit used up: hours or days, not flow control
        if wait is not None and _clock.now() + wait > call.started + self._policy.deadline:
            raise error
        self._throttled += 1
        call.throttled = error
        named = error.details.get("api_key_id") if isinstance(error.details, dict) else None
        key = call.key_id if named is not None and named == call.key_id else None
        call.pacer.throttled(info, key)

    def _read(self, call: _Call, answer: _transport.Answer, info: RateLimitInfo) -> Any:
        status, body = answer.status, answer.body
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("GET %s -> %d (%d bytes)", call.path, status, len(body))
        if status >= 300:
            raise self._error(answer, info)
        data = parse_json(body)
        if isinstance(data, dict) and data.get("success") is False and "error" in data:
            # An error envelope with a 2xx status: still an error, typed by what it says.
            env_status = data["error"].get("status") if isinstance(data["error"], dict) else None
            error_status = env_status if type(env_status) is int and env_status >= 400 else 500
            raise error_from_response(error_status, self._redact(body.decode("utf-8", "replace")))
        return data if call.into is None else structure(data, call.into)

    def _error(self, answer: _transport.Answer, info: RateLimitInfo) -> APIStatusError:
        text = self._redact(answer.body.decode("utf-8", "replace"))
        if answer.status < 400:
            location = self._redact(answer.headers.get("Location", ""))
            return APIStatusError(
                f"unexpected redirect to {location!r}; not followed", status=answer.status,
                body=text[:4096],
            )
        return error_from_response(answer.status, text, reason=answer.reason, retry_after=info.retry_after)

    def _redact(self, text: str) -> str:
        # A server may repeat the key in an error answer, and exceptions end up in logs.
        return self._redactor.text(text)

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
        return await self._fetch_usage(org_id, api_key_id, month, year)

    async def _fetch_usage(
        self, org_id: str, key_id: str, month: int | None, year: int | None
    ) -> ApiKeyUsage:
        """GET one key's usage, and make sure the answer is about the key and month asked.

        The one path of :meth:`get_api_key_usage` and of every job of a batch alike.
        """
        query = _month_query(month, year)
        path = _usage_prefix(org_id) + segment(key_id)
        usage: ApiKeyUsage = await self._get(org_id, path, query, into=ApiKeyUsage, key_id=key_id)
        _check_usage_answers(usage, key_id, month, year)
        return usage

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
        query = _month_query(month, year)
        path = f"/v1/analytics/api-keys/daily/{segment(org_id)}"
        daily: ApiKeyDailyUsage = await self._get(org_id, path, query, into=ApiKeyDailyUsage)
        return daily

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
        path = f"/v1/organizations/{segment(org_id)}/api-keys"
        page = 1
        seen: set[str] = set()
        while True:
            data = await self._get(org_id, path, f"page={page}&page_size={page_size}")
            result = structure_key_page(data)
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
        keys: Iterable[str] | AsyncIterator[str]
        if api_key_ids is None:
            keys = self._all_key_ids(org_id)
        else:
            if isinstance(api_key_ids, str):
                raise ValueError("api_key_ids must be a list of IDs, not a single string")
            if not isinstance(api_key_ids, Iterable):
                raise ValueError(f"api_key_ids must be a list of IDs, not {type(api_key_ids).__name__}")
            keys = [check_id(key, "api_key_id") for key in api_key_ids]

        # A plain function returning the request's coroutine: no frame of its own to resume.
        def fetch(key_id: str, month: YearMonth) -> Awaitable[ApiKeyUsage]:
            if api_key_ids is None:
                try:
                    check_id(key_id, "api_key_id")
                except ValueError as exc:
                    # Given IDs were checked up front; this one came from the key listing.
                    raise ResponseValidationError(
                        f"the key listing holds an unusable ID: {exc}", path="keys[].id"
                    ) from None
            return self._fetch_usage(org_id, key_id, month.month, month.year)

        return _batch.iter_usage(
            fetch, keys, month_list, concurrency=self._max_concurrency, ends_batch=_ends_batch
        )

    async def _all_key_ids(self, org_id: str) -> AsyncIterator[str]:
        async for key in self.list_api_keys(org_id):
            yield key.id

    def iter_daily_usage(
        self, org_id: str, *, months: Iterable[MonthLike]
    ) -> AsyncIterator[ApiKeyDailyUsage]:
        """Fetch the daily breakdown of several months concurrently, yielded oldest first.

        Raises:
            ValueError: a bad argument, before any request.
            FreddyError: the first month that failed after its retries.
        """
        check_id(org_id, "org_id")
        month_list = unique_months(months)

        async def fetch(month: YearMonth) -> ApiKeyDailyUsage:
            return await self.get_api_key_daily_usage(org_id, year=month.year, month=month.month)

        return _batch.iter_in_order(fetch, month_list, concurrency=self._max_concurrency)

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
        query = _month_query(month, year)
        path = f"/v1/analytics/usage/limits/{segment(org_id)}"
        limits: UsageLimits = await self._get(org_id, path, query, into=UsageLimits)
        return limits

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
        query = _month_query(month, year)
        path = f"/v1/analytics/api-keys/summary/{segment(org_id)}"
        summary: DailyUsageSummary = await self._get(org_id, path, query, into=DailyUsageSummary)
        return summary

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
        check_id(org_id, "org_id")
        month_list = unique_months(months)

        async def fetch(month: YearMonth) -> UsageLimits:
            return await self.get_usage_limits(org_id, month=month.month, year=month.year)

        return _batch.iter_in_order(fetch, month_list, concurrency=self._max_concurrency)


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


def _month_query(month: int | None, year: int | None) -> str:
    parts = []
    if month is not None:
        parts.append(f"month={check_month(month)}")
    if year is not None:
        parts.append(f"year={check_year(year)}")
    return "&".join(parts)
