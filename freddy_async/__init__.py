"""freddy_async: an asyncio-native client for the Freddy analytics API (Aitronos).

Everything public is importable from here; the modules behind it are private.
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
