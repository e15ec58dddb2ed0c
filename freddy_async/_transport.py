"""The library's only use of aiohttp: the client's session, and one GET on it.

A session the client makes is made on first use, inside the running loop, and closed with that
loop at the latest; a borrowed one is used as it is and never closed here.

Every failure to get an answer becomes an :class:`APIConnectionError` (or :class:`APITimeoutError`)
raised outside aiohttp's ``except`` block, so it has no ``__context__``: aiohttp's exceptions keep
the request, and with it the ``X-API-Key`` header.

Whatever the server sent that could end up in an exception is redacted here, the one place it is
read: the body, the reason phrase, and the excerpt of a broken answer that aiohttp's error quotes
(a server may send the key back in any of them). Headers are handed on as they came: only numbers
are read from them, and a redirect's ``Location``, which ``_answers`` redacts when it shows it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Mapping
from typing import NamedTuple

import aiohttp
from yarl import URL

from . import _clock
from ._config import MAX_ERROR_PAGE_BYTES, MAX_PAGE_BYTES
from ._errors import APIConnectionError, APITimeoutError, FreddyError, Redactor, ResponseValidationError

__all__ = ["Answer", "Session", "Transport"]


class Answer(NamedTuple):
    """What the server sent back: status, headers, the whole body and the reason phrase."""

    status: int
    headers: Mapping[str, str]
    body: bytes
    reason: str | None


Session = aiohttp.ClientSession
"""The type of a session a caller may lend the client."""

_CLOSED = "this FreddyClient is closed"
_LENT_CLOSED = (
    "the aiohttp.ClientSession lent to this FreddyClient is closed: close it only after the client"
)
_OTHER_LOOP = (
    "this FreddyClient is bound to another event loop (used in one asyncio.run, then in another): "
    "create one client per event loop"
)


class Transport:
    """The session of one client: its own, made on first use, or one lent to it.

    Args:
        headers: sent with every request (the API key among them).
        connections: the most connections the session it makes may hold.
        first_timeout: the timeout of most attempts, whose aiohttp object is made once.
        session: a session to borrow instead of making one.
    """

    def __init__(
        self,
        headers: Mapping[str, str],
        *,
        connections: int,
        first_timeout: float,
        session: Session | None = None,
    ) -> None:
        self._headers = headers
        self._connections = connections
        self._session = session
        self._owns_session = session is None
        # A borrowed session gets the headers with each request; ours carries them itself,
        # sparing every request a merge of its headers into the session's defaults.
        self._request_headers: Mapping[str, str] | None = headers
        self._first_timeout = first_timeout
        self._client_timeout = aiohttp.ClientTimeout(total=first_timeout)
        self._closed = False
        self._loop: asyncio.AbstractEventLoop | None = None  # the loop of the first use
        self._guard: AsyncGenerator[None, None] | None = None  # closes our session with that loop

    def open(self) -> None:
        """Get ready to send from the running loop: bind to it on first use, make our session.

        Raises:
            RuntimeError: closed, or used from another loop than the first.
        """
        loop = asyncio.get_running_loop()
        if self._loop is loop and self._session is not None:
            return  # every call after the first; a session closed since is found before sending
        if self._loop is not loop:
            if self._loop is not None:
                raise RuntimeError(_OTHER_LOOP)
            self._loop = loop
        if self._session is None:
            if self._closed:
                raise RuntimeError(_CLOSED)
            # Made inside the running loop, with no await between check and set: concurrent
            # first calls still share one session.
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._connections), headers=self._headers
            )
            self._request_headers = None
            self._guard = _closing_with_loop(self._session)
        elif self._session.closed:
            raise RuntimeError(_LENT_CLOSED if not self._owns_session else _CLOSED)

    def closed_error(self) -> RuntimeError | None:
        """Why no request can be sent (now), if none can."""
        if self._closed:
            return RuntimeError(_CLOSED)
        # Ours closes with aclose() (above) or with its loop, after which nothing runs to send;
        # only a lent one can be closed under us (asking aiohttp costs three calls a request).
        if not self._owns_session and self._session is not None and self._session.closed:
            return RuntimeError(_LENT_CLOSED)
        return None

    async def aclose(self) -> None:
        """Close the session this transport made (a borrowed one is left open); idempotent."""
        self._closed = True
        self._session = None
        guard, self._guard = self._guard, None
        if guard is not None:
            await guard.aclose()  # closes the session we made

    async def get(
        self, url: URL, *, timeout: float, path: str, redact: Redactor, max_body: int = MAX_PAGE_BYTES
    ) -> Answer:
        """GET ``url``; ``path`` names the request in errors (never the URL's query or the key), and
        ``redact`` cuts the key out of what comes back.

        The body is read decoded (gzip, deflate, ...) and counted as such: ``max_body`` bounds what
        a body may inflate to, not what it weighs on the wire. An error page past the cap is cut.

        The caller checks :meth:`closed_error` first.

        Raises:
            APIConnectionError: no answer (refused, reset, cut short, TLS); ``APITimeoutError``
                when none came within ``timeout``.
            ResponseValidationError: a 2xx body that decodes to more than ``max_body`` bytes.
        """
        assert self._session is not None, "not open"
        failure: FreddyError | None = None
        with _clock.io():
            try:
                async with self._session.get(
                    url,
                    headers=self._request_headers,
                    timeout=self._client_timeout if timeout == self._first_timeout else _timeout(timeout),
                    allow_redirects=False,  # a redirect would carry the API key elsewhere
                ) as response:
                    body = redact.data(await _read_body(response, max_body))
                    reason = response.reason and redact.text(response.reason)
                    return Answer(response.status, response.headers, body, reason)
            except asyncio.TimeoutError:
                failure = APITimeoutError(f"GET {path}: no answer within {timeout:.3g} s")
            except aiohttp.ClientConnectorCertificateError as exc:
                # Another attempt would meet the same certificate: fail at once.
                failure = APIConnectionError(
                    f"GET {path}: TLS certificate does not verify: "
                    f"{redact.excerpt(str(exc.certificate_error))}",
                    retryable=False,
                )
            except aiohttp.ClientError as exc:
                # A broken status line or header is quoted in the error: the server's bytes, the key's too.
                failure = APIConnectionError(
                    f"GET {path}: {type(exc).__name__}: {redact.excerpt(str(exc), 300)}"
                )
        raise failure


def _timeout(seconds: float) -> aiohttp.ClientTimeout:
    return aiohttp.ClientTimeout(total=seconds)


async def _read_body(response: aiohttp.ClientResponse, limit: int) -> bytes:
    """Read the decoded body, refusing a 2xx (or cutting an error page) past ``limit`` bytes.

    Never ``response.read()``: it inflates a compressed body whole, whatever its size, and
    Content-Length counts the compressed bytes. ``content`` hands over what aiohttp has
    decompressed so far, a buffer's worth at a time, so a gzip bomb is stopped after ``limit``.
    """
    if response.status >= 300:
        limit = min(limit, MAX_ERROR_PAGE_BYTES)
    content = response.content
    chunks = []
    size = 0
    while chunk := await content.readany():
        size += len(chunk)
        if size > limit:
            if response.status < 300:
                raise ResponseValidationError(f"the answer is larger than {limit} bytes decoded; refused")
            chunks.append(chunk[: len(chunk) - (size - limit)])
            break
        chunks.append(chunk)
        if content.at_eof():  # all read: spares the call that would only say so
            break
    return b"".join(chunks)


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
