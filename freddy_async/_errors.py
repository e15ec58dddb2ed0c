"""Exceptions raised by freddy_async, and the mapping of an error answer to one of them.

The tree::

    FreddyError
    ├── APIStatusError                 a non-2xx answer; carries the error envelope
    │   ├── BadRequestError            400
    │   ├── AuthenticationError        401
    │   ├── PermissionDeniedError      403
    │   ├── NotFoundError              404
    │   ├── UnprocessableEntityError   422
    │   ├── RateLimitError             429 (``retry_after``)
    │   └── InternalServerError        >= 500
    ├── APIConnectionError             no answer: refused, reset, dropped, TLS, truncated body
    │   └── APITimeoutError            no answer within ``timeout``
    └── ResponseValidationError        a 2xx body that is not JSON or does not fit the model

Every exception carries ``attempts``: how many times the request was sent before it was raised.
None of them ever holds the API key: requests are described by method and URL only, and what a
server sends back (body, reason phrase, a broken status line or header quoted by aiohttp) goes
through a :class:`Redactor` before any exception is built from it, so an answer that repeats the
key cannot smuggle it into a message, an attribute or a chained exception.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

__all__ = [
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "FreddyError",
    "InternalServerError",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitError",
    "Redactor",
    "ResponseValidationError",
    "UnprocessableEntityError",
    "error_from_response",
]

# Error pages from proxies can be large HTML documents; a message needs only their start.
_MAX_TEXT = 200
REDACTED = "[redacted]"
# A shorter "secret" (a test's "k") would be found inside ordinary words.
_MIN_SECRET = 6
# A piece of the secret this long is redacted from an excerpt, which may cut the secret anywhere.
_MIN_FRAGMENT = 8


class FreddyError(Exception):
    """Root of every exception raised by freddy_async."""

    def __init__(self, message: str, *, attempts: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.attempts = attempts

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only constructors break the default pickling of exceptions; rebuild from state.
        return (_rebuild, (type(self), self.__dict__.copy()))


def _rebuild(cls: type[FreddyError], state: dict[str, Any]) -> FreddyError:
    error = cls.__new__(cls)
    Exception.__init__(error, state.get("message", ""))
    error.__dict__.update(state)
    return error


class APIStatusError(FreddyError):
    """The server answered with a status >= 400.

    Attributes mirror the documented error envelope; those the answer did not carry are ``None``.
    ``body`` is the raw answer text (cut to a sane length) for anything the envelope does not cover.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int,
        code: str | None = None,
        system_message: str | None = None,
        type: str | None = None,
        details: Mapping[str, Any] | None = None,
        trace_id: str | None = None,
        timestamp: str | None = None,
        body: str = "",
        retry_after: float | None = None,
        attempts: int = 1,
    ) -> None:
        super().__init__(message, attempts=attempts)
        self.status = status
        self.code = code
        self.system_message = system_message
        self.type = type
        self.details = details
        self.trace_id = trace_id
        self.timestamp = timestamp
        self.body = body
        self.retry_after = retry_after

    def __str__(self) -> str:
        parts = [f"{self.status}"]
        if self.code:
            parts.append(self.code)
        text = f"{' '.join(parts)}: {self.message}"
        if self.trace_id:
            text += f" (trace_id={self.trace_id})"
        if self.attempts > 1:
            text += f" after {self.attempts} attempts"
        return text


class BadRequestError(APIStatusError):
    """400: the request's parameters were refused."""


class AuthenticationError(APIStatusError):
    """401: the API key is missing, wrong, expired, deactivated or paused."""


class PermissionDeniedError(APIStatusError):
    """403: the API key may not read this organization or key."""


class NotFoundError(APIStatusError):
    """404: no such API key (or organization)."""


class UnprocessableEntityError(APIStatusError):
    """422: the request failed validation."""


class RateLimitError(APIStatusError):
    """429: too many requests, or a spending limit used up; ``retry_after`` is the server's wait."""


class InternalServerError(APIStatusError):
    """A status >= 500, from the API or a proxy in front of it."""


class APIConnectionError(FreddyError):
    """No (complete) answer was received: connection refused, reset, dropped, or cut short.

    ``retryable`` is False for what another attempt cannot cure, such as a TLS certificate
    that does not verify.
    """

    def __init__(self, message: str, *, retryable: bool = True, attempts: int = 1) -> None:
        super().__init__(message, attempts=attempts)
        self.retryable = retryable


class APITimeoutError(APIConnectionError):
    """No answer arrived within the client's ``timeout`` for one attempt."""


class ResponseValidationError(FreddyError):
    """A 2xx answer whose body is not JSON or does not fit the expected model.

    ``path`` names the offending field as it is spelled in the body (``usage.totalCost``,
    ``dailyUsage[3].date``); it is empty when the body as a whole is wrong.
    """

    def __init__(self, message: str, *, path: str = "", body: str = "", attempts: int = 1) -> None:
        super().__init__(message, attempts=attempts)
        self.path = path
        self.body = body

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class Redactor:
    """Cuts one secret (the API key) out of what a server sent back, before an error holds it.

    :meth:`text` and :meth:`data` replace every whole copy of the secret; :meth:`excerpt` also
    every piece of it of 8 characters or more, for text that may cut the secret anywhere (aiohttp
    quotes at most 100 bytes of a line it cannot parse, or the part of a line in one read).
    """

    __slots__ = ("_data", "_text")

    def __init__(self, secret: str) -> None:
        self._text = secret if len(secret) >= _MIN_SECRET else ""
        self._data = self._text.encode()

    def text(self, text: str) -> str:
        """``text`` with every copy of the secret replaced by ``[redacted]``."""
        secret = self._text
        return text.replace(secret, REDACTED) if secret and secret in text else text

    def data(self, data: bytes) -> bytes:
        """``data`` (a body as it came) with every copy of the secret replaced."""
        secret = self._data
        return data.replace(secret, REDACTED.encode()) if secret and secret in data else data

    def excerpt(self, text: str, limit: int = _MAX_TEXT) -> str:
        """``text`` quoted from a broken answer: on one line, clipped, and no piece of the secret."""
        text = " ".join(text[: 10 * limit].split())  # bounds the search below
        secret = self._text
        size = min(_MIN_FRAGMENT, len(secret))
        if not secret:
            return clip(text, limit)
        parts = []
        start = i = 0
        while i + size <= len(text):
            if text[i : i + size] not in secret:
                i += 1
                continue
            end = i + size
            while end < len(text) and text[i : end + 1] in secret:
                end += 1
            parts += [text[start:i], REDACTED]
            start = i = end
        parts.append(text[start:])
        return clip("".join(parts), limit)


_STATUS_CLASSES: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    422: UnprocessableEntityError,
    429: RateLimitError,
}


def _class_for(status: int) -> type[APIStatusError]:
    if status >= 500:
        return InternalServerError
    return _STATUS_CLASSES.get(status, APIStatusError)


def clip(text: str, limit: int = _MAX_TEXT) -> str:
    """Cut ``text`` to ``limit`` characters on one line, marking the cut."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


def error_from_response(
    status: int, text: str, *, reason: str | None = None, retry_after: float | None = None
) -> APIStatusError:
    """Build the exception for an error answer.

    The body is read as the documented envelope when it is one, as FastAPI's ``{"detail": ...}``
    when it is that, and kept as (clipped) text otherwise: an HTML page from a proxy or an empty
    body still gives the right class and a readable message.
    """
    cls = _class_for(status)
    body = text[:4096]
    try:
        data: Any = json.loads(text) if text.strip() else None
    except (ValueError, RecursionError):  # a deeply nested body must not escape as RecursionError
        data = None

    if isinstance(data, dict) and isinstance(data.get("error"), dict):
        err = data["error"]
        details = err.get("details")
        message = err.get("message") or err.get("system_message") or reason or "error"
        return cls(
            clip(str(message)),
            status=status,
            code=_opt_str(err.get("code")),
            system_message=_opt_str(err.get("system_message")),
            type=_opt_str(err.get("type")),
            details=details if isinstance(details, dict) else None,
            trace_id=_opt_str(err.get("trace_id")),
            timestamp=_opt_str(err.get("timestamp")),
            body=body,
            retry_after=retry_after,
        )

    if isinstance(data, dict) and "detail" in data:
        detail = data["detail"]
        if isinstance(detail, list):
            message = "; ".join(_describe_fastapi_item(item) for item in detail) or "invalid request"
        else:
            message = str(detail)
        return cls(
            clip(message),
            status=status,
            code="VALIDATION_ERROR" if status == 422 else None,
            type="validation_error" if status == 422 else None,
            details={"detail": detail},
            body=body,
            retry_after=retry_after,
        )

    snippet = clip(text) if text.strip() else ""
    message = reason or f"HTTP {status}"
    if snippet:
        message = f"{message}: {snippet}"
    return cls(message, status=status, body=body, retry_after=retry_after)


def _describe_fastapi_item(item: Any) -> str:
    if not isinstance(item, dict):
        return str(item)
    loc = item.get("loc")
    where = ".".join(str(part) for part in loc) if isinstance(loc, list) else ""
    msg = str(item.get("msg", "invalid"))
    return f"{where}: {msg}" if where else msg
