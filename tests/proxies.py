"""Loopback servers that stand in front of a FakeFreddyServer and change what it answers."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web
from yarl import URL

from freddy_async.testing import FakeFreddyServer


@contextlib.asynccontextmanager
async def refusing_2031(real: FakeFreddyServer) -> AsyncIterator[str]:
    """A loopback proxy to ``real`` that answers any request for 2031 with FastAPI's 422 (the
    fake server refuses no month of the usage and limits endpoints: the API documents no range
    there), so that one month of a range fails while the others are answered."""

    async def handle(request: web.Request) -> web.StreamResponse:
        if request.query.get("year") == "2031":
            item = {"loc": ["query", "year"], "msg": "Input should be less than or equal to 2030",
                    "type": "less_than_equal", "input": "2031"}
            return web.json_response({"detail": [item]}, status=422)
        url = URL(real.base_url + request.raw_path, encoded=True)
        async with aiohttp.ClientSession() as http, http.get(url, headers=request.headers) as answer:
            return web.Response(status=answer.status, body=await answer.read(),
                                content_type=answer.content_type)

    app = web.Application()
    app.router.add_get("/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()
