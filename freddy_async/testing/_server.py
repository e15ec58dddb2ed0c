"""FakeFreddyServer: the thin aiohttp glue that serves the oracle's answers, with faults and limits.

Every decision is made elsewhere, without I/O: the data and every expected body in
:mod:`._oracle`, the endpoints' answers in :mod:`._endpoints`, the rate limits in :mod:`._limits`,
the fault plan in :mod:`._faults`. Here a request is recorded, counted, and taken through them in
order; the server then waits, answers, cuts an answer short or hangs up, as they said.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import secrets
from collections import Counter
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import date
from types import TracebackType
from typing import Any, cast, get_args

from aiohttp import web

from freddy_async import _clock

from ._endpoints import (
    Casing,
    Kind,
    ListShape,
    Reply,
    Route,
    Style,
    answer,
    counted_period,
    gate,
    route_of,
)
from ._faults import FaultCounts, Limiter, Plan, fault_reply, plan_attempt
from ._limits import (
    Algorithm,
    LimitOption,
    RateLimitHeaders,
    RateLimits,
    ResetFormat,
    RetryAfterFormat,
    check_choice,
    http_date,
    new_limiter,
    spending_refusal,
    take,
)
from ._oracle import ExpectedTotals, MonthLike, Oracle
from ._query import InvalidParams
from ._wire import dumps, now_iso

__all__ = [
    "Algorithm",
    "Casing",
    "ExpectedTotals",
    "FakeFreddyServer",
    "InvalidParams",
    "ListShape",
    "MonthLike",
    "RateLimitHeaders",
    "RecordedRequest",
    "ResetFormat",
    "RetryAfterFormat",
]

_HOST = "127.0.0.1"
# stop() wakes every held-back answer, so handlers end at once; the drain timeout only matters
# on a badly loaded machine, and aiohttp's shutdown timeout only for a handler stuck anyway.
_DRAIN_TIMEOUT = 5.0
_SHUTDOWN_TIMEOUT = 0.25
_NO_FAULT = Plan()


@dataclass
class RecordedRequest:
    """One request as the server received it, and how it was answered."""

    method: str
    path: str
    """The path exactly as sent, still percent-encoded, without the query string."""
    query_string: str
    """The raw query string, without the ``?``."""
    status: int | None = None
    """Status answered; None when the connection was dropped without an answer."""
    fault: str | None = None
    """Name of the injected fault (a :class:`FaultCounts` field), if any."""


def _check_rate(name: str, value: float) -> float:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be between 0 and 1, not {value!r}")
    return float(value)


def _check_seconds(name: str, value: float) -> float:
    if not value >= 0.0:
        raise ValueError(f"{name} must be zero or more seconds, not {value!r}")
    return float(value)


def _response(reply: Reply) -> web.Response:
    if reply.text is None:
        body, content_type = dumps(reply.body), reply.content_type
        return web.Response(status=reply.status, body=body, content_type=content_type, headers=reply.headers)
    if not reply.text:
        return web.Response(status=reply.status, headers=reply.headers)
    text, content_type = reply.text, reply.content_type
    return web.Response(status=reply.status, text=text, content_type=content_type, headers=reply.headers)


def _hang_up(request: web.Request) -> web.StreamResponse:
    """Close the connection without an answer."""
    if request.transport is not None:
        request.transport.close()
    # aiohttp wants a response from every handler; with the transport closed, none is sent.
    return web.Response()


class FakeFreddyServer(Oracle):
    """A real HTTP server on 127.0.0.1 that speaks the Freddy analytics API, deterministically.

    It serves the usage (API.md §1), daily (§2), key listing (§3), usage-limits and summary
    (§4) endpoints for one organization, ``org_id``, with ``keys`` API keys, plus any
    ``extra_orgs``. Every number
    depends only on ``seed``, so the ``expected_*`` methods tell a test what the server will
    answer without any HTTP. Faults (rate limits, 5xx, dropped or truncated answers, delays)
    are all off by default and seeded when on.

    Use it as an async context manager::

        async with FakeFreddyServer(keys=5) as server:
            client = FreddyClient(server.api_key, base_url=server.base_url)

    Args:
        keys: Number of API keys of ``org_id``.
        org_id: The organization the server knows; any other (not in ``extra_orgs``) is
            answered 403 ``ORGANIZATION_ACCESS_DENIED``.
        api_key: The value the ``X-API-Key`` header must carry; random when None.
        seed: Seed of all data and of the fault draws.
        casing: Body key casing. ``"snake"`` (default) is what the API most likely sends: the
            API's own SDKs are generated from the OpenAPI document that its FastAPI server
            derives from the models it serialises, and they are snake_case. ``"camel"`` is how
            the usage docs page prints it; ``"docs"`` is the daily page's mixed casing (camel
            for usage; snake for the usage-limits and summary answers, as API.md §4 prints
            them). Use the others to check that code reads every spelling.
        list_shape: Key listing shape: ``"keys"`` (default; ``keys``/``total``/``page``/
            ``page_size``, the only shape the generated SDKs know) or ``"api_keys"``
            (``api_keys``/``pagination``, the other shape the docs print).
        invalid_params: The answer to an invalid query parameter: ``"fastapi"`` (default: 422
            with FastAPI's ``{"detail": [{"loc", "msg", "type", ...}]}``, every problem listed,
            the only error the OpenAPI spec declares) or ``"docs"`` (the docs pages' 400
            ``INVALID_REQUEST`` envelope). ``month`` must be 1-12 everywhere; ``year`` must be
            2020-2030 on the daily endpoint only, the one page that documents a range.
        today: The server's date (see :attr:`today`); None follows its clock.
        extra_orgs: More organizations, ID to key count, reachable with the same ``api_key``.
        port: Port to listen on; 0 picks a free one.
        requests_per_minute: The rate of the per-organization limit of the analytics
            endpoints; None for no limit. The key listing is not limited.
        rate_limit_burst: The token bucket's capacity; default one second's worth, at least 1.
        rate_limit_algorithm: How the limit counts (see below): ``"token_bucket"`` (default),
            ``"fixed_window"`` or ``"sliding_window"``.
        rate_limit_window: The window W in seconds (default 60). The quota per window is
            Q = ``requests_per_minute * rate_limit_window / 60``, at least 1; the windowed
            algorithms admit Q rounded down a window.
        shared_quota: The share, from 0 to below 1, of the quota that another consumer of the
            same organization uses: it spends ``shared_quota * requests_per_minute / 60``
            requests a second whenever the quota has room, so about ``1 - shared_quota`` of
            the limit is left to the caller. Simulated, lazily, at each request.
        rate_limit_headers: The budget headers sent with every limited answer, 200 and 429:
            ``"x-ratelimit"`` (``X-RateLimit-Limit``/``-Remaining``/``-Reset``), ``"ietf"``
            (``RateLimit-Limit``/``-Remaining``/``-Reset`` in delta seconds and
            ``RateLimit-Policy: Q;w=W``), ``"ietf-structured"`` (``RateLimit: "default";r=R;t=T``
            and ``RateLimit-Policy: "default";q=Q;w=W``) or ``"none"``.
        rate_limit_reset: ``X-RateLimit-Reset`` as ``"epoch"`` seconds (default),
            ``"epoch-ms"`` or ``"delta"`` seconds from now.
        retry_after_format: The wait of a 429: ``"seconds"`` (default: integer
            ``Retry-After``), ``"fraction"`` (decimal seconds to the millisecond),
            ``"ms"`` (``retry-after-ms`` in integer milliseconds instead), ``"http-date"``
            (``Retry-After`` as a date) or ``"none"``. Every format rounds up, so waiting what
            it says finds room; the envelope's ``details.retry_after`` gives the same wait in
            seconds when a header does.
        clock_skew: Seconds the server's clock runs ahead of the caller's (may be negative):
            moves epoch resets, HTTP dates and the fixed windows' alignment.
        exhausted_keys: Keys whose spending limit is used up: their usage requests answer 429
            ``USAGE_LIMIT_EXCEEDED`` naming the key, with a one-day ``Retry-After`` (in
            ``retry_after_format``), without touching the rate limit.
        error_rate: Share of 500/502/503 answers (502 with an HTML body; 503 JSON or empty).
        drop_rate: Share of requests whose connection is closed without an answer.
        truncate_rate: Share of 200 answers cut short of their declared Content-Length.
        latency: Seconds added to every answer.
        slow_rate: Share of answers held back by ``slow_delay`` seconds.
        slow_delay: The hold-back of a slow answer, in seconds.
        fail_first: The first N attempts of each distinct request (path and query) answer 503.
        log_requests: Keep every request in :attr:`requests`; a long-running server (the
            standalone command) turns this off to keep its memory flat.

    Faults apply to the analytics and listing endpoints, after the authentication and
    organization checks, and before the query is validated. The fault options
    (``error_rate``, ``drop_rate``, ``truncate_rate``, ``latency``, ``slow_rate``,
    ``slow_delay``, ``fail_first``) are attributes that may be changed on a running server.
    So are the rate-limit options, checked when set; changing ``requests_per_minute``,
    ``rate_limit_burst``, ``rate_limit_algorithm``, ``rate_limit_window`` or
    ``shared_quota`` starts every organization's quota afresh.

    Rate limits, per organization, all read on the clock of ``freddy_async._clock`` (virtual
    inside :func:`~freddy_async.testing.instant_retries`):

    - ``token_bucket``: ``requests_per_minute / 60`` tokens a second refill a bucket of
      ``rate_limit_burst`` tokens; a request takes one. Reset: with no whole token left, when
      the bucket next holds one; else when it is full again.
    - ``fixed_window``: windows of W seconds aligned to multiples of W on the server's epoch
      clock (``clock_skew`` included); the count restarts at each. Reset: the window's end.
    - ``sliding_window``: a log of accepted requests (429s are not logged); a request is
      accepted while fewer than Q were accepted in the last W seconds. Reset: when the oldest
      logged request leaves the window (W from now when none is logged).

    Remaining (R) is the whole number of requests that would be accepted right now, after
    this one. ``Retry-After`` is the time until a request would be accepted: one token, the
    window's end, or the oldest logged request leaving (later if the other consumer of
    ``shared_quota``, which waits its turn first, takes that room). Q and W are written as
    integers when whole, else as decimals; times are rounded up to whole seconds (or
    milliseconds). Every answer carries the server's own ``Date`` (``clock_skew`` included).

    Raises:
        ValueError: an option is out of range.
    """

    def __init__(
        self,
        *,
        keys: int = 20,
        org_id: str = "org_demo",
        api_key: str | None = None,
        seed: int = 0,
        casing: Casing = "snake",
        list_shape: ListShape = "keys",
        invalid_params: InvalidParams = "fastapi",
        today: date | None = None,
        extra_orgs: Mapping[str, int] | None = None,
        port: int = 0,
        requests_per_minute: float | None = None,
        rate_limit_burst: float | None = None,
        rate_limit_algorithm: Algorithm = "token_bucket",
        rate_limit_window: float = 60.0,
        shared_quota: float = 0.0,
        rate_limit_headers: RateLimitHeaders = "x-ratelimit",
        rate_limit_reset: ResetFormat = "epoch",
        retry_after_format: RetryAfterFormat = "seconds",
        clock_skew: float = 0.0,
        exhausted_keys: Collection[str] = (),
        error_rate: float = 0.0,
        drop_rate: float = 0.0,
        truncate_rate: float = 0.0,
        latency: float = 0.0,
        slow_rate: float = 0.0,
        slow_delay: float = 30.0,
        fail_first: int = 0,
        log_requests: bool = True,
    ) -> None:
        check_choice("casing", casing, get_args(Casing))
        check_choice("list_shape", list_shape, get_args(ListShape))
        check_choice("invalid_params", invalid_params, get_args(InvalidParams))
        if not 0 <= port <= 65535:
            raise ValueError(f"port must be from 0 to 65535, not {port}")
        if fail_first < 0:
            raise ValueError(f"fail_first must be zero or more, not {fail_first}")
        if api_key is not None and not api_key:
            raise ValueError("api_key must not be empty")
        # Before the oracle: its clock, the server's, reads clock_skew.
        self._limits = RateLimits(
            requests_per_minute=requests_per_minute,
            rate_limit_burst=rate_limit_burst,
            rate_limit_algorithm=rate_limit_algorithm,
            rate_limit_window=rate_limit_window,
            shared_quota=shared_quota,
            rate_limit_headers=rate_limit_headers,
            rate_limit_reset=rate_limit_reset,
            retry_after_format=retry_after_format,
            clock_skew=clock_skew,
            exhausted_keys=cast("frozenset[str]", exhausted_keys),  # made one when checked
        )
        super().__init__(
            seed=seed,
            org_id=org_id,
            keys=keys,
            extra_orgs=extra_orgs or {},
            today=today,
            clock=self._server_now,
        )
        self.api_key: str = api_key if api_key is not None else f"fk_{secrets.token_urlsafe(24)}"
        """The value every request must send in ``X-API-Key``."""
        self.casing: Casing = casing
        self.list_shape: ListShape = list_shape
        self.invalid_params: InvalidParams = invalid_params
        self.error_rate = _check_rate("error_rate", error_rate)
        self.drop_rate = _check_rate("drop_rate", drop_rate)
        self.truncate_rate = _check_rate("truncate_rate", truncate_rate)
        self.slow_rate = _check_rate("slow_rate", slow_rate)
        self.latency = _check_seconds("latency", latency)
        self.slow_delay = _check_seconds("slow_delay", slow_delay)
        self.fail_first = fail_first
        self.log_requests = log_requests
        self._port = port
        self._init_state()

    def _init_state(self) -> None:
        """Counters, limiters and the serving state, all empty."""
        self.requests: list[RecordedRequest] = []
        """Every request received, in arrival order (cleared by :meth:`reset_counters`)."""
        self.faults = FaultCounts()
        """Answers of each injected fault."""
        # Hits per endpoint, keyed (key ID, year, month) for usage, else (org ID, year, month).
        self._fetches: dict[Kind, Counter[tuple[str, int, int]]] = {
            kind: Counter() for kind in ("usage", "daily", "limits", "summary")
        }
        self._attempts: Counter[str] = Counter()
        self.reset_counters()
        self._limiters: dict[str, Limiter] = {}
        self._decided_at: float | None = None
        self._runner: web.AppRunner | None = None
        self._closing: asyncio.Event | None = None
        self._idle: asyncio.Event | None = None
        self._inflight = 0
        self._arrived = asyncio.Event()

    requests_per_minute = LimitOption[float | None]()
    rate_limit_algorithm = LimitOption[Algorithm]()
    rate_limit_window = LimitOption[float]()
    shared_quota = LimitOption[float]()
    rate_limit_headers = LimitOption[RateLimitHeaders]()
    rate_limit_reset = LimitOption[ResetFormat]()
    retry_after_format = LimitOption[RetryAfterFormat]()
    clock_skew = LimitOption[float]()
    exhausted_keys = LimitOption[Collection[str]]()

    @property
    def rate_limit_burst(self) -> float | None:
        """The token bucket's capacity (the default filled in); None without a limit."""
        return self._limits.burst

    @rate_limit_burst.setter
    def rate_limit_burst(self, value: float | None) -> None:
        self._set_limits(rate_limit_burst=value)

    def _set_limits(self, **changes: Any) -> None:
        limits = dataclasses.replace(self._limits, **changes)  # checks, or raises ValueError
        if any(getattr(limits, n) != getattr(self._limits, n) for n in RateLimits.SHAPING):
            self._limiters.clear()
        self._limits = limits

    def __repr__(self) -> str:
        # The API key stays out on purpose: reprs end up in logs.
        where = self.base_url if self._runner is not None else "stopped"
        return f"<FakeFreddyServer {where} org_id={self.org_id!r} keys={len(self.key_ids)}>"

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Start listening on 127.0.0.1.

        Raises:
            RuntimeError: the server is already running.
            OSError: the port cannot be bound.
        """
        if self._runner is not None:
            raise RuntimeError("the server is already running")
        # Events bind to the loop that first uses them: fresh ones let a stopped server be
        # started again on another loop (one per test, with pytest-asyncio).
        self._closing = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._arrived = asyncio.Event()
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        app.on_response_prepare.append(self._stamp_date)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=_SHUTDOWN_TIMEOUT)
        await runner.setup()
        try:
            site = web.TCPSite(runner, _HOST, self._port)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._port = runner.addresses[0][1]
        self._runner = runner

    async def stop(self) -> None:
        """Stop the server; answers still held back are cut off. Does nothing when stopped."""
        runner, self._runner = self._runner, None
        if runner is None:
            return
        assert self._closing is not None
        assert self._idle is not None
        # Wake the handlers sleeping on latency or slow_delay so that none outlives the loop;
        # runner.cleanup() cancels whatever is still left after the wait.
        self._closing.set()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._idle.wait(), _DRAIN_TIMEOUT)
        await runner.cleanup()

    async def __aenter__(self) -> FakeFreddyServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # -- what tests read -------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The port listened on (the chosen one once started with ``port=0``)."""
        return self._port

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``, to pass as the client's base URL.

        Raises:
            RuntimeError: the server has not been started.
        """
        if self._runner is None:
            raise RuntimeError("the server is not running; use 'async with' or start()")
        return f"http://{_HOST}:{self._port}"

    @property
    def request_count(self) -> int:
        """Requests received on any path (since the last :meth:`reset_counters`)."""
        return self._request_count

    async def wait_for_requests(self, count: int = 1) -> None:
        """Return once at least ``count`` requests have arrived (since the last reset).

        Handy to act while a request is in flight, e.g. held back by ``latency``.
        """
        while self.request_count < count:
            self._arrived.clear()
            await self._arrived.wait()

    def fetch_count(self, key_id: str, year: int, month: int) -> int:
        """How many times the usage endpoint was hit for this key and month.

        Every hit counts, including those answered with an error or a fault.
        """
        return self._fetches["usage"][(key_id, year, month)]

    def daily_fetch_count(self, year: int, month: int, *, org_id: str | None = None) -> int:
        """How many times the daily endpoint was hit for this organization and month."""
        return self._fetches["daily"][(org_id or self.org_id, year, month)]

    def limits_fetch_count(self, year: int, month: int, *, org_id: str | None = None) -> int:
        """How many times the usage-limits endpoint was hit for this organization and month."""
        return self._fetches["limits"][(org_id or self.org_id, year, month)]

    def summary_fetch_count(self, year: int, month: int, *, org_id: str | None = None) -> int:
        """How many times the summary endpoint was hit for this organization and month."""
        return self._fetches["summary"][(org_id or self.org_id, year, month)]

    def reset_counters(self) -> None:
        """Forget every request, count and ``fail_first`` attempt (rate limits stay as they are)."""
        self.requests.clear()
        self._request_count = 0
        self.rate_limited_count = 0
        """429 answers given by the rate limiter."""
        self.spending_limited_count = 0
        """429 answers given for ``exhausted_keys``."""
        self.faults.reset()
        for counter in self._fetches.values():
            counter.clear()
        self._attempts.clear()

    # -- serving ---------------------------------------------------------------------------

    def _server_now(self) -> float:
        """The server's epoch clock: the one clock of the library, plus ``clock_skew``."""
        return _clock.wall() + self._limits.clock_skew

    def _decision_time(self) -> float:
        return self._decided_at if self._decided_at is not None else self._server_now()

    async def _stamp_date(self, request: web.Request, response: web.StreamResponse) -> None:
        # aiohttp keeps a Date it is given: this one follows the virtual clock and the skew.
        response.headers["Date"] = http_date(self._server_now())

    async def _pause(self, seconds: float) -> bool:
        """Sleep; False, at once, when the server stops first (the answer is then cut off)."""
        assert self._closing is not None
        if self._closing.is_set():
            return False
        try:
            await asyncio.wait_for(self._closing.wait(), seconds)
        except asyncio.TimeoutError:
            return True
        return False

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        assert self._idle is not None
        path, _, query = request.raw_path.partition("?")
        record = RecordedRequest(request.method, path, query)
        self._request_count += 1
        if self.log_requests:
            self.requests.append(record)
        self._arrived.set()
        self._inflight += 1
        self._idle.clear()
        try:
            response = await self._serve(request, record, path)
        finally:
            self._inflight -= 1
            if not self._inflight:
                self._idle.set()
        if response is None:
            record.status = None
            return _hang_up(request)
        if record.status is None:
            record.status = response.status
        return response

    async def _serve(
        self, request: web.Request, record: RecordedRequest, path: str
    ) -> web.StreamResponse | None:
        """Answer one request, in order: latency, the gate, the spending and rate limits, the
        planned fault, the endpoint, a slow or truncated answer. None means hang up."""
        if self.latency and not await self._pause(self.latency):
            return None
        route = route_of(path)
        if route is not None:
            self._count(route, request.query)
        refused = gate(request.method, path, route, request.headers.get("X-API-Key"), self.api_key, self)
        if refused is not None:
            return _response(refused)
        assert route is not None  # the gate refuses a path that names no endpoint
        rate_headers, refused = self._admit(route)
        if refused is not None:
            return _response(refused)
        plan = self._plan(path, record.query_string)
        fault = fault_reply(plan)
        if fault is not None:
            name, reply = fault
            self._count_fault(record, name)
            return None if reply is None else _response(reply)
        reply = answer(route, request.query, self, self._style(), now_iso())
        if reply.status != 200:
            return _response(reply)
        if plan.slow:
            self._count_fault(record, "slow")
            if not await self._pause(self.slow_delay):
                return None
        reply = dataclasses.replace(reply, headers=rate_headers)
        if plan.truncate:
            return await self._truncated(request, record, reply, plan)
        return _response(reply)

    def _style(self) -> Style:
        return Style(self.casing, self.list_shape, self.invalid_params)

    def _count(self, route: Route, query: Mapping[str, str]) -> None:
        period = counted_period(route, query, self.today)
        if period is not None:
            who = route.key_id if route.kind == "usage" else route.org_id
            self._fetches[route.kind][(who, period[0], period[1])] += 1

    def _count_fault(self, record: RecordedRequest, name: str) -> None:
        setattr(self.faults, name, getattr(self.faults, name) + 1)
        record.fault = name

    def _admit(self, route: Route) -> tuple[dict[str, str], Reply | None]:
        """The budget headers for the answer, or the 429 of a spent key or a full quota. The key
        listing is not limited; a spent key's 429 leaves the rate limit untouched."""
        if route.kind == "list":
            return {}, None
        if route.kind == "usage" and route.key_id in self._limits.exhausted_keys:
            self.spending_limited_count += 1
            return {}, spending_refusal(self._limits, route.org_id, route.key_id, self._server_now())
        if self._limits.quota is None:
            return {}, None
        # One reading of the clock for the decision and its headers: read twice, a window's end
        # (a whole second) could be written a microsecond late, and rounded up a second late.
        server_now = self._decided_at = self._server_now()
        try:
            headers, refused = take(self._limits, self._limiter(route.org_id), route.org_id, server_now)
        finally:
            self._decided_at = None
        if refused is not None:
            self.rate_limited_count += 1
        return headers, refused

    def _limiter(self, org_id: str) -> Limiter:
        limiter = self._limiters.get(org_id)
        if limiter is None:
            limiter = self._limiters[org_id] = new_limiter(self._limits, _clock.now, self._decision_time)
        return limiter

    def _plan(self, path: str, query: str) -> Plan:
        rates = (self.error_rate, self.drop_rate, self.truncate_rate, self.slow_rate)
        if not self.fail_first and not any(rates):
            return _NO_FAULT  # and no attempt bookkeeping for a well-behaved server
        request_key = f"{path}?{query}"
        attempt = self._attempts[request_key]
        self._attempts[request_key] = attempt + 1
        return plan_attempt(
            seed=self.seed,
            request_key=request_key,
            attempt=attempt,
            fail_first=self.fail_first,
            error_rate=self.error_rate,
            drop_rate=self.drop_rate,
            truncate_rate=self.truncate_rate,
            slow_rate=self.slow_rate,
        )

    async def _truncated(
        self, request: web.Request, record: RecordedRequest, reply: Reply, plan: Plan
    ) -> web.StreamResponse:
        """Declare the whole body's length, send part of it, then close the connection."""
        data = dumps(reply.body)
        response = web.StreamResponse(status=200, headers=reply.headers)
        response.content_type = "application/json"
        response.content_length = len(data)
        await response.prepare(request)
        await response.write(data[: max(1, int(len(data) * plan.truncate_share))])
        self._count_fault(record, "truncated")
        record.status = 200
        # close() still flushes what was written; the client then misses the rest.
        if request.transport is not None:
            request.transport.close()
        return response
