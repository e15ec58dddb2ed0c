"""freddy_async: an asyncio-native client for the Freddy analytics API (Aitronos).

Everything public is importable from here; the modules behind it are private. Where each
behaviour lives (a module may import only those above it in this list):

- ``_errors``      the FreddyError tree, and an error answer mapped to its class
- ``_periods``     YearMonth and month ranges
- ``_config``      every default: timeouts, retries, caps, the 60 s wait cap
- ``_ids``         ID checks, and IDs quoted as URL path segments
- ``_clock``       the one clock and its sleeps, virtual inside ``testing.instant_retries()``
- ``_models``      the frozen attrs value types
- ``_convert``     the one cattrs converter: both casings, Decimal money, dates, statuses
- ``_answers``     what an answer means (``read_answer``) and what its rate-limit headers say
- ``_retry``       which failures are retried, how long to wait, when to stop; tenacity runs it
- ``_ratelimit``   per-organization admission: pace, pauses after a 429, slow start
- ``_transport``   the aiohttp session and one GET (the library's only aiohttp import)
- ``_cache``       UsageCache: closed months' answers in one SQLite file, on a worker thread
- ``_batch``       bounded per-key fan-out and cancellation, no HTTP
- ``_client``      FreddyClient: configuration, session, endpoints, the request loop
- ``testing``      FakeFreddyServer and the pytest plugin; ``_cli`` and ``cli`` the command line

One request, e.g. ``await client.get_api_key_usage(org, key, month=11, year=2025)``:

1. the endpoint method checks its arguments (``_ids.check_id``, ``_periods``): a ``ValueError``
   before any I/O;
2. ``FreddyClient._fetch_month`` (every endpoint's one way in) builds the path and query; with
   a ``cache``, a closed month it holds is served from it (``_cache.CacheScope.answer``), and
   what is fetched below is stored there. ``FreddyClient._get`` runs the one request loop:
3. **admit**: the organization's ``_ratelimit.OrgPacer`` lets it go now, or after its pace or a
   pause (before it takes one of ``max_concurrency`` slots, so a waiting organization blocks none);
4. **send**: ``_transport.Transport.get`` puts the GET on the wire and reads the body within its cap;
5. **read the answer**: the pacer learns from the headers (``_answers.read_rate_limit``), and
   ``_answers.read_answer`` gives the model (``_convert``) or the ``FreddyError`` the answer is;
6. a 429 that is flow control (``_retry.waits_out``) pauses the organization, and the request goes
   back to 3; another failure goes to ``_retry.retry`` (tenacity, entered only after a failed
   first attempt), which repeats 3-5 while ``is_retryable`` / ``backoff`` / ``gives_up`` allow;
7. **return** the model, checked to be about the key and month asked; or raise the last error.

One batch, ``async for report in client.iter_api_key_usage(org, months=...)``:
keys come from the caller or from ``list_api_keys`` (page by page) -> ``_batch._Jobs`` makes each
distinct key's (key, month) jobs as workers take them -> at most ``max_concurrency`` workers
(a slow start) each fetch a job exactly as ``get_api_key_usage`` would -> its outcome is filed
under its key, a failure included unless the client's ``_ends_batch`` says it refuses every key
(then the batch stops and raises it) -> a key whose months are all in is yielded as a
``KeyUsageReport`` at once. Leaving the loop early cancels every job still running.
"""

from ._cache import UsageCache
from ._client import ClientStats, FreddyClient
from ._errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    FreddyError,
    InternalServerError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ResponseValidationError,
    UnprocessableEntityError,
)
from ._models import (
    ApiKey,
    ApiKeyDailyUsage,
    ApiKeyLimit,
    ApiKeyUsage,
    DailyUsage,
    DailyUsageSummary,
    KeyUsageReport,
    LimitsSummary,
    LimitStatus,
    LimitUsage,
    UsageLimit,
    UsageLimits,
    UsagePeriod,
    UsageTotals,
)
from ._periods import YearMonth
from ._version import __version__

__all__ = [
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "ApiKey",
    "ApiKeyDailyUsage",
    "ApiKeyLimit",
    "ApiKeyUsage",
    "AuthenticationError",
    "BadRequestError",
    "ClientStats",
    "DailyUsage",
    "DailyUsageSummary",
    "FreddyClient",
    "FreddyError",
    "InternalServerError",
    "KeyUsageReport",
    "LimitStatus",
    "LimitUsage",
    "LimitsSummary",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitError",
    "ResponseValidationError",
    "UnprocessableEntityError",
    "UsageCache",
    "UsageLimit",
    "UsageLimits",
    "UsagePeriod",
    "UsageTotals",
    "YearMonth",
    "__version__",
]
