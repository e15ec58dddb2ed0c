"""A raw HTTP/1.1 server on 127.0.0.1 that writes whatever bytes a test gives it, broken or not."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

Answer = Callable[[int, bytes], bytes]
"""The answer's bytes, given the request's number (from 0) and head (request line and headers)."""


def http(
    status: str | int = 200,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    *,
    reason: str = "OK",
    content_type: str | None = "application/json",
    length: int | None = None,
    chunked: bool = False,
    raw_header: str = "",
) -> bytes:
    """One HTTP/1.1 answer as bytes. ``status``, ``reason`` and ``raw_header`` (a header line,
    well-formed or not) are written as given; ``length`` lies about the body's size when given."""
    lines = [f"HTTP/1.1 {status} {reason}"]
    lines += [f"Content-Type: {content_type}"] if content_type else []
    lines += ["Connection: close", *(f"{name}: {value}" for name, value in (headers or {}).items())]
    lines += [raw_header] if raw_header else []
    if chunked:
        step = 64 * 1024
        payload = b"".join(
            b"%x\r\n%s\r\n" % (len(body[i : i + step]), body[i : i + step]) for i in range(0, len(body), step)
        ) + b"0\r\n\r\n"
        lines.append("Transfer-Encoding: chunked")
    else:
        payload = body
        lines.append(f"Content-Length: {len(body) if length is None else length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + payload


def always(data: bytes) -> Answer:
    return lambda _n, _head: data


@dataclass
class RawServer:
    answer: Answer
    requests: list[str] = field(default_factory=list)  # the request lines, in order
    port: int = 0
    handlers: set[asyncio.Task[Any]] = field(default_factory=set)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.handlers.add(task)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            self.requests.append(head.split(b"\r\n", 1)[0].decode("latin-1"))
            writer.write(self.answer(len(self.requests) - 1, head))
            await writer.drain()
            writer.close()
            await writer.wait_closed()
        except (ConnectionError, asyncio.IncompleteReadError):
            writer.close()  # the client hung up first (a refused body, a timeout)
        except asyncio.CancelledError:
            # Only raw_server() cancels, on its way out; a handler that ends cancelled would
            # make asyncio's stream protocol log an "exception" for it.
            writer.close()
        finally:
            self.handlers.discard(task)


@contextlib.asynccontextmanager
async def raw_server(answer: Answer, port: int = 0) -> AsyncIterator[RawServer]:
    """Serve ``answer`` on 127.0.0.1 (on ``port`` when given), one request per connection."""
    server = RawServer(answer)
    listener = await asyncio.start_server(server._serve, "127.0.0.1", port)
    server.port = listener.sockets[0].getsockname()[1]
    try:
        yield server
    finally:
        listener.close()
        for handler in list(server.handlers):
            handler.cancel()
        await asyncio.gather(*server.handlers, return_exceptions=True)
        await listener.wait_closed()
