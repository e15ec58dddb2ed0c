"""Nothing lost at the edges (issue 12): misbehaving servers on loopback, and lifecycle misuse.

Each test serves exactly the misbehaviour it names from a tiny aiohttp server on 127.0.0.1 (or,
where two event loops are involved, a threaded one), and pins what the caller must get: every
result, or an error that says what went wrong; never a silently shorter answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from seeds import seed_usage
from tasks import client_tasks, settle, turns_until

from freddy_async import (
    AuthenticationError,
    FreddyClient,
    KeyUsageReport,
    PermissionDeniedError,
    ResponseValidationError,
    YearMonth,
)
from freddy_async.testing import RecordedWait

ORG = "org_1"
API_KEY = "test-key-123456"
KEYS_PATH = f"/v1/organizations/{ORG}/api-keys"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class TinyServer:
    """An aiohttp server on 127.0.0.1 answering every GET with ``handler``; keeps each path+query."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[str] = []
        self.base_url = ""
        self._runner: web.AppRunner

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(request.path_qs)
        return await self.handler(request)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[TinyServer]:
        app = web.Application()
        app.router.add_get("/{tail:.*}", self._handle)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        self.base_url = f"http://127.0.0.1:{port}"
        self._runner = runner
        try:
            yield self
        finally:
            await runner.cleanup()

    @property
    def open_connections(self) -> int:
        """Connections a client holds open to this server right now."""
        server = self._runner.server
        return 0 if server is None else len(server.connections)


@contextlib.asynccontextmanager
async def serve(handler: Handler, **options: Any) -> AsyncIterator[tuple[TinyServer, FreddyClient]]:
    async with (
        TinyServer(handler).running() as server,
        FreddyClient(API_KEY, base_url=server.base_url, **options) as client,
    ):
        yield server, client


def key_json(key_id: str) -> dict[str, Any]:
    """One key of the listing (API.md §3)."""
    return {"id": key_id, "organization_id": ORG, "key_name": key_id, "key_prefix": "ak_",
            "is_active": True, "is_paused": False, "created_by": "u_1",
            "created_at": "2025-01-01T00:00:00Z", "usage_limit_chf": None, "scopes": ["read"]}


def key_ids(count: int) -> list[str]:
    return [f"apikey_{i:03d}" for i in range(count)]


def listing_body(shape: str, keys: list[str], *, total: int, page: int, size: int) -> dict[str, Any]:
    items = [key_json(k) for k in keys]
    if shape == "keys":
        return {"keys": items, "total": total, "page": page, "page_size": size}
    pages = -(-total // size) if size else 0
    return {"api_keys": items,
            "pagination": {"page": page, "page_size": size, "total_count": total, "total_pages": pages}}


def lister(
    shape: str, keys: list[str], *, cap: int | None = None, fixed_size: int | None = None,
    total: int | None = None, ignore_page: bool = False,
) -> Handler:
    """A key listing that serves ``keys`` in pages, misbehaving as told:

    ``cap``: at most this many keys a page, whatever was asked; ``fixed_size``: this many a page,
    ``page_size`` ignored; ``total``: the total it claims; ``ignore_page``: always the first page.
    """

    async def handle(request: web.Request) -> web.StreamResponse:
        assert request.path == KEYS_PATH
        page = 1 if ignore_page else int(request.query["page"])
        size = int(request.query["page_size"])
        if fixed_size is not None:
            size = fixed_size
        if cap is not None:
            size = min(size, cap)
        served = keys[(page - 1) * size : page * size]
        claimed = len(keys) if total is None else total
        return web.json_response(listing_body(shape, served, total=claimed, page=page, size=size))

    return handle


async def listed(client: FreddyClient, page_size: int = 100) -> list[str]:
    return [k.id async for k in client.list_api_keys(ORG, page_size=page_size)]


# -- 1. the key listing: every key, or an error naming how many are missing ----------------------


@pytest.mark.parametrize("shape", ["keys", "api_keys"])
async def test_listing_pages_capped_below_the_size_asked_yields_every_key(shape: str) -> None:
    keys = key_ids(120)
    async with serve(lister(shape, keys, cap=50)) as (server, client):
        assert await listed(client, page_size=100) == keys
    assert len(server.requests) == 3


@pytest.mark.parametrize("shape", ["keys", "api_keys"])
async def test_listing_that_ignores_page_size_yields_every_key(shape: str) -> None:
    keys = key_ids(57)
    async with serve(lister(shape, keys, fixed_size=20)) as (server, client):
        assert await listed(client, page_size=100) == keys
    assert len(server.requests) == 3


@pytest.mark.parametrize("shape", ["keys", "api_keys"])
async def test_listing_that_ends_short_of_its_total_is_an_error(shape: str) -> None:
    keys = key_ids(60)
    async with serve(lister(shape, keys, total=80)) as (_server, client):
        got: list[str] = []

        async def walk() -> None:
            async for key in client.list_api_keys(ORG, page_size=20):
                got.append(key.id)

        with pytest.raises(ResponseValidationError, match="ended at 60 of 80 keys"):
            await walk()
    assert got == keys  # what was served was handed over before the error


@pytest.mark.parametrize("shape", ["keys", "api_keys"])
async def test_listing_whose_pages_repeat_is_an_error_before_its_total(shape: str) -> None:
    keys = key_ids(57)
    async with serve(lister(shape, keys, ignore_page=True)) as (server, client):
        with pytest.raises(ResponseValidationError, match="ended at 20 of 57 keys"):
            await listed(client, page_size=20)
    assert len(server.requests) == 2  # the repeated page ends the walk: no endless loop


async def test_listing_that_repeats_a_page_after_its_total_stops_quietly() -> None:
    # A server without `page` support that holds every key on one page: nothing is missing.
    keys = key_ids(15)
    async with serve(lister("keys", keys, ignore_page=True)) as (server, client):
        assert await listed(client, page_size=20) == keys
    assert len(server.requests) == 1


def pages_only(keys: list[str], *, pages: int, size: int = 10) -> Handler:
    """The ``api_keys`` shape whose pagination gives ``total_pages`` and no ``total_count``."""

    async def handle(request: web.Request) -> web.StreamResponse:
        page = int(request.query["page"])
        served = keys[(page - 1) * size : page * size]
        return web.json_response({"api_keys": [key_json(k) for k in served],
                                  "pagination": {"page": page, "page_size": size, "total_pages": pages}})

    return handle


async def test_listing_with_total_pages_only_walks_that_many_pages() -> None:
    keys = key_ids(30)
    async with serve(pages_only(keys, pages=3)) as (server, client):
        assert await listed(client) == keys
    assert len(server.requests) == 3


async def test_listing_that_ends_short_of_its_total_pages_is_an_error() -> None:
    keys = key_ids(30)
    async with serve(pages_only(keys, pages=5)) as (_server, client):
        with pytest.raises(ResponseValidationError, match=r"ended at page 4 of 5 \(30 keys\)"):
            await listed(client)


async def test_batch_over_a_short_listing_fails_instead_of_skipping_keys() -> None:
    keys = key_ids(60)
    listing = lister("keys", keys, total=80)

    async def handle(request: web.Request) -> web.StreamResponse:
        if request.path == KEYS_PATH:
            return await listing(request)
        key = request.path.rsplit("/", 1)[1]
        return web.json_response({**seed_usage(ORG, key), "month": 1, "year": 2025})

    async with serve(handle) as (_server, client):
        with pytest.raises(ResponseValidationError, match="ended at 60 of 80 keys"):
            async for _ in client.iter_api_key_usage(ORG, months=["2025-01"]):
                pass


async def test_listing_without_any_total_walks_to_an_empty_page() -> None:
    keys = key_ids(30)

    async def handle(request: web.Request) -> web.StreamResponse:
        page, size = int(request.query["page"]), min(int(request.query["page_size"]), 10)
        served = keys[(page - 1) * size : page * size]
        return web.json_response({"keys": [key_json(k) for k in served]})

    async with serve(handle) as (server, client):
        assert await listed(client, page_size=100) == keys
    assert len(server.requests) == 4



# -- 2. a 403 about one key costs that key only ---------------------------------------------------


MONTHS = ["2025-01", "2025-02"]


def envelope(status: int, code: str, **details: str) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": code.replace("_", " ").lower(),
                             "type": "authorization_error", "status": status, "trace_id": "t-1"}
    if details:
        error["details"] = details
    return {"success": False, "error": error}


def usage_server(refuse: Callable[[str], web.StreamResponse | None] = lambda key: None) -> Handler:
    """Usage of any key in any month as asked, unless ``refuse(key)`` gives another answer."""

    async def handle(request: web.Request) -> web.StreamResponse:
        key = request.path.rsplit("/", 1)[1]
        refused = refuse(key)
        if refused is not None:
            return refused
        month, year = int(request.query["month"]), int(request.query["year"])
        return web.json_response({**seed_usage(ORG, key), "month": month, "year": year})

    return handle


async def reports_of(client: FreddyClient, keys: list[str] | None) -> dict[str, KeyUsageReport]:
    return {r.api_key_id: r async for r in client.iter_api_key_usage(ORG, keys, months=MONTHS)}


@pytest.mark.parametrize("code", ["ACCESS_DENIED", "INSUFFICIENT_PERMISSIONS"])
async def test_a_403_naming_one_key_costs_that_key_only(code: str, waits: list[RecordedWait]) -> None:
    keys = key_ids(6)
    denied = keys[2]

    def refuse(key: str) -> web.StreamResponse | None:
        if key == denied:
            return web.json_response(envelope(403, code, api_key_id=key), status=403)
        return None

    async with serve(usage_server(refuse), max_concurrency=2) as (_server, client):
        reports = await reports_of(client, keys)
    assert sorted(reports) == keys
    refused = reports.pop(denied)
    assert refused.usage == () and sorted(map(str, refused.errors)) == MONTHS
    assert all(isinstance(e, PermissionDeniedError) and e.code == code for e in refused.errors.values())
    assert all(r.ok and len(r.usage) == 2 for r in reports.values())


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param(envelope(403, "ORGANIZATION_ACCESS_DENIED", api_key_id="apikey_002"), id="org-denied"),
        pytest.param(envelope(403, "ACCESS_DENIED"), id="403-naming-no-key"),
        pytest.param(envelope(403, "ACCESS_DENIED", api_key_id="apikey_other"), id="403-naming-another-key"),
        pytest.param(envelope(401, "INVALID_API_KEY"), id="401"),
    ],
)
async def test_a_refusal_of_the_whole_organization_ends_the_batch(
    answer: dict[str, Any], waits: list[RecordedWait]
) -> None:
    keys = key_ids(6)
    status = answer["error"]["status"]

    def refuse(key: str) -> web.StreamResponse | None:
        return web.json_response(answer, status=status) if key == keys[2] else None

    async with serve(usage_server(refuse), max_concurrency=2) as (_server, client):
        with pytest.raises(AuthenticationError if status == 401 else PermissionDeniedError):
            await reports_of(client, keys)
        await settle()
        assert client_tasks() == []


# -- 3. a lone surrogate in an ID --------------------------------------------------------------


SURROGATE_KEY = "apikey_\ud800"


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(lambda c: c.get_api_key_usage(ORG, SURROGATE_KEY, month=1, year=2025), id="usage-key"),
        pytest.param(lambda c: c.get_api_key_usage("org_\udfff", "apikey_1"), id="usage-org"),
        pytest.param(lambda c: c.get_api_key_daily_usage("org_\ud800"), id="daily-org"),
        pytest.param(lambda c: anext(c.list_api_keys("org_\ud800")), id="list-org"),
        pytest.param(lambda c: anext(c.iter_api_key_usage(ORG, ["apikey_1", SURROGATE_KEY], months=MONTHS)),
                     id="batch-key"),
        pytest.param(lambda c: anext(c.iter_daily_usage("org_\ud800", months=MONTHS)), id="daily-batch-org"),
    ],
)
async def test_a_given_id_with_a_lone_surrogate_is_refused_before_any_request(
    call: Callable[[FreddyClient], Awaitable[Any]],
) -> None:
    async with serve(usage_server()) as (server, client):
        with pytest.raises(ValueError, match="cannot be in an ID"):
            await call(client)
    assert server.requests == []


async def test_a_listed_id_with_a_lone_surrogate_costs_that_key_only(waits: list[RecordedWait]) -> None:
    keys = [*key_ids(2), SURROGATE_KEY, *key_ids(5)[2:]]
    listing = lister("keys", keys)
    usage = usage_server()

    async def handle(request: web.Request) -> web.StreamResponse:
        return await (listing if request.path == KEYS_PATH else usage)(request)

    async with serve(handle) as (server, client):
        reports = await reports_of(client, None)
    assert sorted(reports) == sorted(keys)
    bad = reports.pop(SURROGATE_KEY)
    assert bad.usage == () and sorted(map(str, bad.errors)) == MONTHS
    assert all(isinstance(e, ResponseValidationError) for e in bad.errors.values())
    assert "unusable ID" in str(next(iter(bad.errors.values())))
    assert all(r.ok and len(r.usage) == 2 for r in reports.values())
    assert len(server.requests) == 1 + 5 * 2  # the listing, and the usable keys' months only


# -- 5. an answer about another month or key is refused on every path -------------------------------


def answering(**override: Any) -> Handler:
    """Usage for any request, with ``override`` put over what was asked (a month, a key...)."""

    async def handle(request: web.Request) -> web.StreamResponse:
        key = request.path.rsplit("/", 1)[1]
        asked = {"month": int(request.query["month"]), "year": int(request.query["year"])}
        return web.json_response({**seed_usage(ORG, key), **asked, **override})

    return handle


WRONG_ANSWERS = [
    pytest.param({"month": 11}, "month", "asked for 2025-10 of apikey_1, the server answered 2025-11",
                 id="another-month"),
    pytest.param({"year": 2024}, "month", "asked for 2025-10 of apikey_1, the server answered 2024-10",
                 id="another-year"),
    pytest.param({"apiKeyId": "apikey_9"}, "apiKeyId",
                 "asked for apikey_1, the server answered about apikey_9", id="another-key"),
]


@pytest.mark.parametrize(("override", "path", "message"), WRONG_ANSWERS)
async def test_get_api_key_usage_refuses_an_answer_about_something_else(
    override: dict[str, Any], path: str, message: str
) -> None:
    async with serve(answering(**override)) as (_server, client):
        with pytest.raises(ResponseValidationError) as caught:
            await client.get_api_key_usage(ORG, "apikey_1", month=10, year=2025)
    assert caught.value.path == path and message in str(caught.value)


@pytest.mark.parametrize(("override", "path", "message"), WRONG_ANSWERS)
async def test_the_batch_refuses_an_answer_about_something_else_alike(
    override: dict[str, Any], path: str, message: str, waits: list[RecordedWait]
) -> None:
    async with serve(answering(**override)) as (_server, client):
        [report] = [r async for r in client.iter_api_key_usage(ORG, ["apikey_1"], months=["2025-10"])]
    [error] = report.errors.values()
    assert isinstance(error, ResponseValidationError)
    assert error.path == path and message in str(error)


async def test_get_api_key_usage_with_a_month_only_refuses_another_month() -> None:
    async def november_2025(request: web.Request) -> web.StreamResponse:
        return web.json_response(seed_usage(ORG, request.path.rsplit("/", 1)[1]))

    async with serve(november_2025) as (_server, client):
        with pytest.raises(ResponseValidationError, match=r"asked for month 10 of apikey_1, .* 2025-11"):
            await client.get_api_key_usage(ORG, "apikey_1", month=10)
        with pytest.raises(ResponseValidationError, match="asked for year 2024 of apikey_1"):
            await client.get_api_key_usage(ORG, "apikey_1", year=2024)


async def test_get_api_key_usage_checks_only_what_was_asked() -> None:
    # Without month or year the server picks the current one: any answer fits what was not asked.
    async def november_2025(request: web.Request) -> web.StreamResponse:
        return web.json_response(seed_usage(ORG, request.path.rsplit("/", 1)[1]))

    async with serve(november_2025) as (_server, client):
        usages = [
            await client.get_api_key_usage(ORG, "apikey_1"),
            await client.get_api_key_usage(ORG, "apikey_1", month=11),
            await client.get_api_key_usage(ORG, "apikey_1", year=2025),
        ]
    assert {u.period for u in usages} == {YearMonth(2025, 11)}


# -- 4. lifecycle misuse: a clear error, and no socket left open ----------------------------------


CLOSED = "this FreddyClient is closed"
LENT_CLOSED = "the aiohttp.ClientSession lent to this FreddyClient is closed"
OTHER_LOOP = "this FreddyClient is bound to another event loop"


@pytest.mark.parametrize("closing", ["client.aclose", "lent-session.close"])
async def test_closing_under_a_running_batch_says_what_happened(
    closing: str, waits: list[RecordedWait]
) -> None:
    keys = key_ids(8)
    release = asyncio.Event()
    answer = usage_server()

    async def handle(request: web.Request) -> web.StreamResponse:
        if not request.path.endswith(keys[0]):
            await release.wait()  # every other key's requests are in flight when the close comes
        return await answer(request)

    lent = closing == "lent-session.close"
    async with TinyServer(handle).running() as server, aiohttp.ClientSession() as session:
        client = FreddyClient(API_KEY, base_url=server.base_url, max_concurrency=4,
                              session=session if lent else None)
        batch = client.iter_api_key_usage(ORG, keys, months=MONTHS)
        try:
            first = await anext(batch)
            assert first.api_key_id == keys[0] and first.ok
            await turns_until(lambda: len(server.requests) >= 4)
            await (session.close() if lent else client.aclose())
            with pytest.raises(RuntimeError, match=LENT_CLOSED if lent else CLOSED):
                await anext(batch)
        finally:
            release.set()
            await batch.aclose()  # type: ignore[attr-defined]
            await client.aclose()
        await settle()
        assert client_tasks() == []
        await turns_until(lambda: server.open_connections == 0, what="every socket closed")


async def test_a_lent_session_closed_before_a_call_says_so() -> None:
    async with TinyServer(usage_server()).running() as server:
        session = aiohttp.ClientSession()
        client = FreddyClient(API_KEY, base_url=server.base_url, session=session)
        await client.get_api_key_usage(ORG, "apikey_1", month=1, year=2025)
        await session.close()
        with pytest.raises(RuntimeError, match=LENT_CLOSED):
            await client.get_api_key_usage(ORG, "apikey_1", month=1, year=2025)
        with pytest.raises(RuntimeError, match=LENT_CLOSED):
            await anext(client.iter_api_key_usage(ORG, ["apikey_1"], months=MONTHS))
        await client.aclose()
        await turns_until(lambda: server.open_connections == 0, what="every socket closed")


async def test_a_closed_client_says_so_on_every_path() -> None:
    async with TinyServer(usage_server()).running() as server:
        client = FreddyClient(API_KEY, base_url=server.base_url)
        await client.get_api_key_usage(ORG, "apikey_1", month=1, year=2025)
        await client.aclose()
        with pytest.raises(RuntimeError, match=CLOSED):
            await client.get_api_key_usage(ORG, "apikey_1", month=1, year=2025)
        with pytest.raises(RuntimeError, match=CLOSED):
            await anext(client.iter_api_key_usage(ORG, ["apikey_1"], months=MONTHS))
        await turns_until(lambda: server.open_connections == 0, what="every socket closed")


class ThreadedServer:
    """A stdlib HTTP/1.1 server in a thread, which outlives event loops; counts open connections."""

    def __init__(self) -> None:
        self.open = 0
        self.opened = 0
        self.changed = threading.Condition()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                with outer.changed:
                    outer.open += 1
                    outer.opened += 1
                    outer.changed.notify_all()

            def finish(self) -> None:
                try:
                    super().finish()
                finally:
                    with outer.changed:
                        outer.open -= 1
                        outer.changed.notify_all()

            def do_GET(self) -> None:
                key = self.path.split("?")[0].rsplit("/", 1)[1]
                body = json.dumps({**seed_usage(ORG, key), "month": 1, "year": 2025}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> ThreadedServer:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()

    def until_all_closed(self) -> bool:
        """Block until no connection is open (a guard against a hang, not a timing check)."""
        with self.changed:
            return self.changed.wait_for(lambda: self.open == 0, timeout=30)


def test_a_client_reused_in_another_asyncio_run_says_so_and_leaks_no_socket() -> None:
    with ThreadedServer() as server:
        client = FreddyClient(API_KEY, base_url=server.base_url)

        async def two_at_once() -> list[Any]:
            return await asyncio.gather(
                *(client.get_api_key_usage(ORG, key, month=1, year=2025) for key in key_ids(2))
            )

        assert len(asyncio.run(two_at_once())) == 2
        opened = server.opened
        # The loop of the first asyncio.run is gone: its connections went with it.
        assert server.until_all_closed()
        with pytest.raises(RuntimeError, match=OTHER_LOOP):
            asyncio.run(two_at_once())
        assert server.opened == opened  # the second run sent nothing
        asyncio.run(client.aclose())  # closing it is still fine, from any loop
        gc.collect()  # an unclosed transport would warn now (ResourceWarning: an error here)
        assert server.until_all_closed()
