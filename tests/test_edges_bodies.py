"""Nothing lost at the edges: bodies, secrets and refused connections (issue 12).

Each misbehaving server here is a raw asyncio server on 127.0.0.1 that writes its answer byte for
byte: aiohttp's own server cannot send a gzip bomb with a small Content-Length, a status line
that is not one, or a header name that is not a token.

- Bodies: the size cap applies to the *decoded* body, per endpoint, so a gzip bomb costs no
  memory and whitespace padding is no way around the cap.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import tracemalloc
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from seeds import seed_usage

from freddy_async import (
    ApiKey,
    ApiKeyDailyUsage,
    ApiKeyUsage,
    FreddyClient,
    FreddyError,
    InternalServerError,
    ResponseValidationError,
)
from freddy_async.testing import RecordedWait

ORG = "org_1"
KEY = "apikey_1"
KiB = 1024
MiB = 1024 * KiB
# The documented caps: a usage answer is under 2 KB, a daily page or a page of 100 keys some KB.
USAGE_CAP = 64 * KiB
PAGE_CAP = 1 * MiB

USAGE = json.dumps(seed_usage(ORG, KEY)).encode()
DAILY = json.dumps({
    "organization_id": ORG,
    "period": {"year": 2025, "month": 11, "startDate": "2025-11-01", "endDate": "2025-11-30",
               "daysInMonth": 30, "daysWithApiUsage": 1},
    "dailyUsage": [{"date": "2025-11-15", "requests": 850, "cost": 212.5, "synapses": 425000.0,
                    "neurons": 8500.0}],
    "summary": {"organization_id": ORG, "month": 11, "year": 2025, "totalApiKeyRequests": 850,
                "totalApiKeyCost": 212.5, "averageCostPerRequest": 0.25, "total_synapses": 425000.0,
                "totalNeurons": 8500.0, "generatedAt": "2025-11-15T10:30:00Z"},
}).encode()
KEYS = json.dumps({
    "keys": [{"id": KEY, "organization_id": ORG, "key_name": "Production Key", "key_prefix": "fk_",
              "is_active": True, "is_paused": False, "created_by": None,
              "created_at": "2025-01-01T00:00:00Z", "usage_limit_chf": None, "scopes": []}],
    "total": 1, "page": 1, "page_size": 100,
}).encode()


# -- a raw HTTP server -------------------------------------------------------------------------


def http(
    status: str | int = 200,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    *,
    reason: str = "OK",
    chunked: bool = False,
) -> bytes:
    """One HTTP/1.1 answer as bytes, ``status`` and ``reason`` written as given."""
    lines = [f"HTTP/1.1 {status} {reason}", "Content-Type: application/json", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    if chunked:
        step = 64 * KiB
        payload = b"".join(
            b"%x\r\n%s\r\n" % (len(body[i : i + step]), body[i : i + step]) for i in range(0, len(body), step)
        ) + b"0\r\n\r\n"
        lines.append("Transfer-Encoding: chunked")
    else:
        payload = body
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + payload


Answer = Callable[[bytes], bytes]
"""The answer's bytes, given the request's head (request line and headers)."""


@dataclass
class RawServer:
    answer: Answer
    port: int = 0
    requests: int = 0
    handlers: set[asyncio.Task[Any]] = field(default_factory=set)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.handlers.add(task)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            self.requests += 1
            writer.write(self.answer(head))
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass  # the client hung up first (a refused body), or the server is shutting down
        finally:
            writer.close()
            self.handlers.discard(task)


@contextlib.asynccontextmanager
async def raw_server(answer: Answer, port: int = 0) -> AsyncIterator[RawServer]:
    """Serve ``answer`` on 127.0.0.1 (on ``port`` when given), one request per connection."""
    server = RawServer(answer)
    listener = await asyncio.start_server(server.serve, "127.0.0.1", port)
    server.port = listener.sockets[0].getsockname()[1]
    try:
        yield server
    finally:
        listener.close()
        for handler in list(server.handlers):
            handler.cancel()
        await asyncio.gather(*server.handlers, return_exceptions=True)
        await listener.wait_closed()


def always(data: bytes) -> Answer:
    return lambda _head: data


# -- the endpoints -----------------------------------------------------------------------------


async def get_usage(client: FreddyClient) -> ApiKeyUsage:
    return await client.get_api_key_usage(ORG, KEY, month=11, year=2025)


async def get_daily(client: FreddyClient) -> ApiKeyDailyUsage:
    return await client.get_api_key_daily_usage(ORG, month=11, year=2025)


async def list_keys(client: FreddyClient) -> list[ApiKey]:
    return [key async for key in client.list_api_keys(ORG)]


Endpoint = Callable[[FreddyClient], Awaitable[Any]]
# (name, call, a valid body, the endpoint's cap)
ENDPOINTS: list[tuple[str, Endpoint, bytes, int]] = [
    ("usage", get_usage, USAGE, USAGE_CAP),
    ("daily", get_daily, DAILY, PAGE_CAP),
    ("keys", list_keys, KEYS, PAGE_CAP),
]
EACH_ENDPOINT = pytest.mark.parametrize(
    ("endpoint", "valid", "cap"), [e[1:] for e in ENDPOINTS], ids=[e[0] for e in ENDPOINTS]
)


async def call(answer: Answer, endpoint: Endpoint, **options: Any) -> Any:
    """Call ``endpoint`` against a server giving ``answer``; return the result or the FreddyError."""
    async with raw_server(answer) as server, FreddyClient("k", base_url=server.base_url, **options) as client:
        try:
            return await endpoint(client)
        except FreddyError as exc:
            return exc


# -- bodies: the cap is on the decoded bytes ---------------------------------------------------


@functools.cache
def gzip_bomb(start: bytes, inflated: int = 128 * MiB) -> bytes:
    """``start`` then whitespace up to ``inflated`` bytes, gzipped (about 230:1), built as a stream."""
    packer = zlib.compressobj(1, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    parts = [packer.compress(start)]
    blocks, rest = divmod(inflated - len(start), MiB)
    block = b" " * MiB
    parts += [packer.compress(block) for _ in range(blocks)]
    parts += [packer.compress(block[:rest]), packer.flush()]
    return b"".join(parts)


async def peak_memory_of(work: Awaitable[Any]) -> tuple[Any, int]:
    """Await ``work`` under tracemalloc; return its result and the peak of traced memory (bytes)."""
    tracemalloc.start()
    try:
        result = await work
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@EACH_ENDPOINT
async def test_a_gzip_bomb_is_refused_in_flat_memory(
    endpoint: Endpoint, valid: bytes, cap: int, waits: list[RecordedWait]
) -> None:
    # 128 MiB of a valid body and whitespace in about 600 kB of gzip, with an honest Content-Length.
    bomb = gzip_bomb(valid)
    assert len(bomb) < 2 * MiB
    error, peak = await peak_memory_of(call(always(http(200, bomb, {"Content-Encoding": "gzip"})), endpoint))
    assert type(error) is ResponseValidationError, error
    assert "larger than" in error.message
    assert error.attempts == 1  # a body over the cap is no failure another attempt cures
    assert peak < 16 * MiB, f"peak {peak / MiB:.0f} MiB"


async def test_an_error_page_bomb_is_clipped_in_flat_memory(waits: list[RecordedWait]) -> None:
    bomb = gzip_bomb(b"<html><body>Service Unavailable")
    answer = always(http(503, bomb, {"Content-Encoding": "gzip"}, reason="Service Unavailable"))
    error, peak = await peak_memory_of(call(answer, get_usage, max_retries=2))
    assert type(error) is InternalServerError, error
    assert error.attempts == 3  # still the server error it is, retried as one
    assert error.message.startswith("Service Unavailable: <html><body>Service Unavailable")
    assert len(error.body) <= 4096
    assert peak < 16 * MiB, f"peak {peak / MiB:.0f} MiB"


@pytest.mark.parametrize("encoding", ["gzip", "identity, chunked", "identity, with length"])
@EACH_ENDPOINT
async def test_whitespace_padding_over_the_cap_is_refused(
    endpoint: Endpoint, valid: bytes, cap: int, encoding: str, waits: list[RecordedWait]
) -> None:
    padded = valid + b" " * (cap + 1 - len(valid))
    if encoding == "gzip":
        answer = http(200, gzip_bomb(valid, cap + 1), {"Content-Encoding": "gzip"})
    else:
        answer = http(200, padded, chunked="chunked" in encoding)
    error = await call(always(answer), endpoint)
    assert type(error) is ResponseValidationError, error
    assert error.attempts == 1


@pytest.mark.parametrize("gzip", [True, False], ids=["gzip", "identity"])
@EACH_ENDPOINT
async def test_a_padded_body_at_the_cap_is_read(
    endpoint: Endpoint, valid: bytes, cap: int, gzip: bool, waits: list[RecordedWait]
) -> None:
    if gzip:
        answer = http(200, gzip_bomb(valid, cap), {"Content-Encoding": "gzip"})
    else:
        answer = http(200, valid + b" " * (cap - len(valid)))
    result = await call(always(answer), endpoint)
    assert not isinstance(result, FreddyError), result


async def test_each_endpoint_has_its_own_cap(waits: list[RecordedWait]) -> None:
    # 100 KiB is far more than a usage answer ever is, and nothing for a daily page.
    padding = b" " * (100 * KiB)
    assert isinstance(await call(always(http(200, USAGE + padding)), get_usage), ResponseValidationError)
    assert isinstance(await call(always(http(200, DAILY + padding)), get_daily), ApiKeyDailyUsage)
    assert isinstance(await call(always(http(200, KEYS + padding)), list_keys), list)
