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

__all__ = ["MAX_BODY_BYTES", "Answer", "get"]

# An answer larger than this is not one of this API's bodies; refuse it rather than buffer it.
MAX_BODY_BYTES = 8 * 1024 * 1024


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
) -> Answer:
    """GET ``url``; ``path`` names the request in errors (never the URL's query or the key).

    Raises:
        APIConnectionError: no answer (refused, reset, cut short, TLS); ``APITimeoutError``
            when none came within ``timeout``.
        ResponseValidationError: a 2xx body larger than :data:`MAX_BODY_BYTES`.
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
                length = response.content_length
                if length is not None and length <= MAX_BODY_BYTES:
                    body = await response.read()
                else:
                    body = await _read_body_bounded(response)
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


async def _read_body_bounded(response: aiohttp.ClientResponse) -> bytes:
    """Read a body of unknown or excessive length, refusing (or cutting) it past the limit."""
    chunks = []
    size = 0
    async for chunk in response.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            if response.status >= 300:
                break  # an error page only feeds a clipped message: its start is enough
            raise ResponseValidationError(f"the answer is larger than {MAX_BODY_BYTES} bytes; refused")
        chunks.append(chunk)
    return b"".join(chunks)
