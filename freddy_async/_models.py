"""The values the API returns, as frozen attrs classes.

No I/O and no (de)serialisation here: how JSON becomes these classes lives in ``_convert``
(which also reads an absent optional field as ``None``, whatever the default here).
Money is ``Decimal`` throughout; counts of synapses and neurons are ``float`` as the API sends them.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal

import attrs

from ._errors import FreddyError
from ._periods import YearMonth

__all__ = [
    "ApiKey",
    "ApiKeyDailyUsage",
    "ApiKeyLimit",
    "ApiKeyUsage",
    "DailyUsage",
    "DailyUsageSummary",
    "KeyUsageReport",
    "LimitStatus",
    "LimitUsage",
    "LimitsSummary",
    "UsageLimit",
    "UsageLimits",
    "UsagePeriod",
    "UsageTotals",
]


class LimitStatus(str, enum.Enum):
    """Where a key stands against its monthly limit."""

    OK = "ok"
    """Below 80 % of the limit."""
    WARNING = "warning"
    """From 80 % to below 100 %."""
    EXCEEDED = "exceeded"
    """100 % or more."""
    NO_LIMIT = "no_limit"
    """The key has no monthly limit."""

    def __str__(self) -> str:
        return self.value


@attrs.frozen
class UsageTotals:
    """One key's totals for one month."""

    total_requests: int
    total_cost: Decimal
    total_synapses: float
    total_neurons: float
    average_cost_per_request: Decimal | None = None


@attrs.frozen
class UsageLimit:
    """One key's monthly limit and how much of it is used.

    ``status`` is a :class:`LimitStatus`, or the plain string for a value this version does not
    know yet. ``remaining_budget`` is negative once the limit is passed.
    """

    monthly_limit: Decimal | None
    utilization_percentage: float | None
    remaining_budget: Decimal | None
    status: LimitStatus | str


@attrs.frozen
class ApiKeyUsage:
    """Usage of one API key in one month (``GET /v1/analytics/api-keys/usage/...``)."""

    api_key_id: str
    api_key_name: str
    organization_id: str
    month: int
    year: int
    usage: UsageTotals
    limit: UsageLimit

    @property
    def period(self) -> YearMonth:
        """The month this usage covers."""
        return YearMonth(self.year, self.month)


@attrs.frozen
class UsagePeriod:
    """The month a daily breakdown covers."""

    year: int
    month: int
    start_date: date
    end_date: date
    days_in_month: int
    days_with_api_usage: int


@attrs.frozen
class DailyUsage:
    """API-key traffic of an organization on one day."""

    date: date
    requests: int
    cost: Decimal
    synapses: float
    neurons: float


@attrs.frozen
class DailyUsageSummary:
    """The month's totals over all API keys of an organization."""

    organization_id: str
    month: int
    year: int
    total_api_key_requests: int
    total_api_key_cost: Decimal
    average_cost_per_request: Decimal | None
    total_synapses: float
    total_neurons: float
    generated_at: datetime | None = None


@attrs.frozen
class ApiKeyDailyUsage:
    """An organization's API-key usage in one month, day by day
    (``GET /v1/analytics/api-keys/daily/...``). ``daily_usage`` keeps the server's order."""

    organization_id: str
    period: UsagePeriod
    daily_usage: tuple[DailyUsage, ...]
    summary: DailyUsageSummary


@attrs.frozen
class LimitUsage:
    """A monthly limit (of the organization, or of its API usage) and how much of it is used.

    ``monthly_limit`` is None without a limit; ``remaining_budget`` may be None then too, and is
    negative once the limit is passed. ``status`` is a :class:`LimitStatus`, or the plain string
    for a value this version does not know yet.
    """

    monthly_limit: Decimal | None
    current_usage: Decimal
    utilization_percentage: float | None
    remaining_budget: Decimal | None
    status: LimitStatus | str


@attrs.frozen
class ApiKeyLimit:
    """One key's cost in the month against its monthly limit.

    ``current_usage`` is the key's cost (CHF) in the month: the same amount as
    ``ApiKeyUsage.usage.total_cost`` of that key and month.
    """

    api_key_id: str
    api_key_name: str
    monthly_limit: Decimal | None
    current_usage: Decimal
    utilization_percentage: float | None
    status: LimitStatus | str


@attrs.frozen
class LimitsSummary:
    """How many of the organization's keys have a limit, and how many passed it."""

    total_keys: int
    keys_with_limits: int
    keys_exceeded: int
    overall_status: LimitStatus | str


@attrs.frozen
class UsageLimits:
    """An organization's limits and usage in one month, every key's cost included
    (``GET /v1/analytics/usage/limits/...``).

    The answer does not say which month it covers: that is the month asked for.
    ``api_key_limits`` keeps the server's order.
    """

    organization_limits: LimitUsage
    api_limits: LimitUsage
    api_key_limits: tuple[ApiKeyLimit, ...]
    summary: LimitsSummary


@attrs.frozen
class ApiKey:
    """One API key of an organization (``GET /v1/organizations/{org_id}/api-keys``)."""

    id: str
    organization_id: str
    key_name: str
    key_prefix: str | None
    is_active: bool
    is_paused: bool
    usage_limit_chf: Decimal | None
    scopes: tuple[str, ...]
    created_by: str | None
    created_at: datetime | None
    last_used_at: datetime | None = None
    expires_at: datetime | None = None


@attrs.frozen
class KeyUsageReport:
    """Everything a batch learned about one key: the months it got, and why it missed the others.

    Every requested month is in exactly one of ``usage`` (sorted by month) and ``errors``.
    """

    api_key_id: str
    usage: tuple[ApiKeyUsage, ...]
    errors: Mapping[YearMonth, FreddyError] = attrs.field(factory=dict)

    @property
    def ok(self) -> bool:
        """True when every requested month was fetched."""
        return not self.errors

    @property
    def total_cost(self) -> Decimal:
        """Cost over the fetched months (exact)."""
        return sum((u.usage.total_cost for u in self.usage), Decimal(0))

    @property
    def total_requests(self) -> int:
        """Requests over the fetched months."""
        return sum(u.usage.total_requests for u in self.usage)
