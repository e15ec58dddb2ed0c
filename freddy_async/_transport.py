"""Send one GET and bring back what came: the library's only use of aiohttp's request API.

Every failure to get an answer becomes an :class:`APIConnectionError` (or :class:`APITimeoutError`)
raised outside aiohttp's ``except`` block, so it has no ``__context__``: aiohttp's exceptions keep
the request, and with it the ``X-API-Key`` header.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import aiohttp
import attrs
from yarl import URL

from . import _clock
from ._errors import APIConnectionError, APITimeoutError, FreddyError, ResponseValidationError

__all__ = ["MAX_PAGE_BYTES", "MAX_USAGE_BYTES", "Answer", "get"]

# The largest decoded body each kind of answer may have: far above any honest one, and small
# enough that parsing a hostile one at the cap blocks the event loop for milliseconds, not the
# quarter of a second 8 MiB took. A usage answer is under 2 KB (64 KiB of JSON: under 2 ms); a
# daily page (31 days) or a page of 100 keys is tens of KB (1 MiB of JSON: 15 to 40 ms).
MAX_USAGE_BYTES = 64 * 1024
MAX_PAGE_BYTES = 1024 * 1024
# An error page only feeds a clipped message and the first 4 KB of ``body``.
_MAX_ERROR_PAGE_BYTES = 64 * 1024


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
    max_body: int = MAX_PAGE_BYTES,
) -> Answer:
    """GET ``url``; ``path`` names the request in errors (never the URL's query or the key).

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
                body = await _read_body(response, max_body)
                return Answer(response.status, response.headers, body, response.reason)
        except asyncio.TimeoutError:
            failure = APITimeoutError(f"GET {path}: no answer within {timeout.total:.3g} s")
        except aiohttp.ClientConnectorCertificateError as exc:
            # Another attempt would meet the same certificate: fail at once.
            failure = APIConnectionError(
                f"GET {path}: TLS certificate does not verify: {exc.certificate_error}",
                retryable=False,
            )
        except aiohttp.ClientError as exc:
            failure = APIConnectionError(f"GET {path}: {type(exc).__name__}: {exc}")
    raise failure


async def _read_body(response: aiohttp.ClientResponse, limit: int) -> bytes:
    """Read the decoded body, refusing a 2xx (or cutting an error page) past ``limit`` bytes.

    Never ``response.read()``: it inflates a compressed body whole, whatever its size, and
    Content-Length counts the compressed bytes. ``content`` hands over what aiohttp has
    decompressed so far, a buffer's worth at a time, so a gzip bomb is stopped after ``limit``.
    """
    if response.status >= 300:
        limit = min(limit, _MAX_ERROR_PAGE_BYTES)
    content = response.content
    chunks = []
    size = 0
    while chunk := await content.readany():
        size += len(chunk)
        if size > limit:
            if response.status < 300:
                raise ResponseValidationError(f"the answer is larger than {limit} bytes; refused")
            chunks.append(chunk[: len(chunk) - (size - limit)])
            break
        chunks.append(chunk)
    return b"".join(chunks)
