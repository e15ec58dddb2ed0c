"""Send one GET and bring back what came: the library's only use of aiohttp's request API.

Every failure to get an answer becomes an :class:`APIConnectionError` (or :class:`APITimeoutError`)
raised outside aiohttp's ``except`` block, so it has no ``__context__``: aiohttp's exceptions keep
the request, and with it the ``X-API-Key`` header.

Whatever the server sent that could end up in an exception is redacted here, the one place it is
read: the body, the reason phrase, and the excerpt of a broken answer that aiohttp's error quotes
(a server may send the key back in any of them). Headers are handed on as they came: only numbers
are read from them, and a redirect's ``Location``, which the client redacts when it shows it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import aiohttp
import attrs
from yarl import URL

from . import _clock
from ._config import MAX_ERROR_PAGE_BYTES, MAX_PAGE_BYTES
from ._errors import APIConnectionError, APITimeoutError, FreddyError, Redactor, ResponseValidationError

__all__ = ["Answer", "get"]


@attrs.frozen
class Answer:
    """What the server sent back: status, headers, the whole body and the reason phrase."""

    status: int
    headers: Mapping[str, str]
    body: bytes
    reason: str | None


async def get(
    session: aiohttp.ClientSession,
    url: URL,
    *,
    headers: Mapping[str, str] | None,
    timeout: aiohttp.ClientTimeout,
    path: str,
    redact: Redactor,
    max_body: int = MAX_PAGE_BYTES,
) -> Answer:
    """GET ``url``; ``path`` names the request in errors (never the URL's query or the key), and
    ``redact`` cuts the key out of what comes back.

    The body is read decoded (gzip, deflate, ...) and counted as such: ``max_body`` bounds what
    a body may inflate to, not what it weighs on the wire. An error page past the cap is cut.

    Raises:
        APIConnectionError: no answer (refused, reset, cut short, TLS); ``APITimeoutError``
            when none came within ``timeout``.
        ResponseValidationError: a 2xx body that decodes to more than ``max_body`` bytes.
    """
    failure: FreddyError | None = None
    with _clock.io():
        try:
            async with session.get(
                url,
                headers=headers,
                timeout=timeout,
                allow_redirects=False,  # a redirect would carry the API key elsewhere
            ) as response:
                body = redact.data(await _read_body(response, max_body))
                reason = response.reason and redact.text(response.reason)
                return Answer(response.status, response.headers, body, reason)
        except asyncio.TimeoutError:
            failure = APITimeoutError(f"GET {path}: no answer within {timeout.total:.3g} s")
        except aiohttp.ClientConnectorCertificateError as exc:
            # Another attempt would meet the same certificate: fail at once.
            failure = APIConnectionError(
                f"GET {path}: TLS certificate does not verify: {redact.excerpt(str(exc.certificate_error))}",
                retryable=False,
            )
        except aiohttp.ClientError as exc:
            # A broken status line or header is quoted in the error: the server's bytes, the key's too.
            failure = APIConnectionError(f"GET {path}: {type(exc).__name__}: {redact.excerpt(str(exc), 300)}")
    raise failure


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
    return b"".join(chunks)
