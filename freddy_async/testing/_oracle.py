"""The oracle: what the fake server answers, computed from its seed without any HTTP.

:class:`Oracle` holds the organizations and their keys, and gives every answer body (snake_case,
money as ``Decimal``) and every sum of them; the server answers with the same bodies, so a test
can ask what the server *will* say. Only its clock (for "today") comes from outside.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timezone
from decimal import Decimal
from typing import Any, Protocol

from ._data import (
    DayRow,
    KeyProfile,
    MonthTotals,
    daily_body,
    days_passed,
    key_days,
    key_object,
    limits_body,
    make_keys,
    month_totals,
    org_days,
    org_limit_centimes,
    summary_body,
    usage_body,
)

__all__ = ["ExpectedTotals", "MonthLike", "Oracle", "key_page", "key_profile", "serves"]


class _YearMonthAttrs(Protocol):
    @property
    def year(self) -> int: ...

    @property
    def month(self) -> int: ...


MonthLike = tuple[int, int] | str | _YearMonthAttrs
"""A month for the expected-value helpers: ``(2025, 11)``, ``"2025-11"`` or a ``YearMonth``."""


def _month_of(value: MonthLike) -> tuple[int, int]:
    if isinstance(value, tuple):
        year, month = value
    elif isinstance(value, str):
        match = re.fullmatch(r"(\d{4})-(\d{1,2})", value.strip())
        if match is None:
            raise ValueError(f"expected a month as 'YYYY-MM', not {value!r}")
        year, month = int(match[1]), int(match[2])
    else:
        year, month = value.year, value.month
    if not 1 <= month <= 12:
        raise ValueError(f"month must be from 1 to 12, not {month}")
    return int(year), int(month)


@dataclass(frozen=True)
class ExpectedTotals:
    """Totals the server will report for a set of (key, month) pairs."""

    requests: int
    cost: Decimal
    synapses: int
    neurons: int


def _check_org_id(org_id: str) -> str:
    if not isinstance(org_id, str) or not org_id or "/" in org_id:
        raise ValueError(f"an organization ID must be a non-empty string without '/': {org_id!r}")
    return org_id


def _make_orgs(
    seed: int, org_id: str, keys: int, extra_orgs: Mapping[str, int]
) -> dict[str, list[KeyProfile]]:
    """Every organization's keys, ``org_id`` first; key IDs are unique over all of them."""
    counts = {_check_org_id(org_id): keys, **extra_orgs}
    if len(counts) != 1 + len(extra_orgs):
        raise ValueError(f"extra_orgs must not repeat org_id {org_id!r}")
    taken: set[str] = set()
    orgs: dict[str, list[KeyProfile]] = {}
    for org, count in counts.items():
        if count < 0:
            raise ValueError(f"key count of {org!r} must be zero or more, not {count}")
        orgs[_check_org_id(org)] = make_keys(seed, org, count, taken)
    return orgs


class Oracle:
    """The seeded data of one server: its organizations, keys and every answer body.

    Args:
        seed: Seed of all data.
        org_id: The main organization, with ``keys`` keys; ``extra_orgs`` maps more to counts.
        today: The date days after which have no traffic; None reads it from ``clock``.
        clock: Epoch seconds of the server.
    """

    def __init__(
        self,
        *,
        seed: int,
        org_id: str,
        keys: int,
        extra_orgs: Mapping[str, int],
        today: date | None,
        clock: Callable[[], float],
    ) -> None:
        if today is not None and not isinstance(today, date):
            raise ValueError(f"today must be a datetime.date, not {today!r}")
        self._orgs = _make_orgs(seed, org_id, keys, extra_orgs)
        self._keys = {k.key_id: k for profiles in self._orgs.values() for k in profiles}
        self.org_id: str = org_id
        """The main organization."""
        self.seed: int = seed
        self._fixed_today = today
        self._clock = clock
        # Keyed by the last day counted too: the current month grows as the days pass.
        self._totals: dict[tuple[str, int, int, int], MonthTotals] = {}
        self._daily: dict[tuple[str, int, int, int], tuple[list[DayRow], MonthTotals]] = {}

    @property
    def today(self) -> date:
        """The server's date: ``today`` as given, else the UTC date of its clock (skew included).

        Days after it have no traffic yet: a future month is all zeros, and the current month
        has its days up to and including today, the same in every answer and ``expected_*``.
        """
        if self._fixed_today is not None:
            return self._fixed_today
        return datetime.fromtimestamp(self._clock(), timezone.utc).date()

    @property
    def key_ids(self) -> list[str]:
        """IDs of the main organization's keys, in listing order (stable for a seed)."""
        return self.key_ids_for(self.org_id)

    @property
    def org_ids(self) -> list[str]:
        """Every organization the server knows, ``org_id`` first."""
        return list(self._orgs)

    def key_ids_for(self, org_id: str) -> list[str]:
        """IDs of one organization's keys, in listing order.

        Raises:
            KeyError: the server does not know that organization.
        """
        return [k.key_id for k in self._orgs[org_id]]

    def _key(self, key_id: str) -> KeyProfile:
        try:
            return self._keys[key_id]
        except KeyError:
            raise KeyError(f"the server has no API key {key_id!r}") from None

    def _through(self, year: int, month: int) -> int:
        return days_passed(year, month, self.today)

    def _month_totals(self, key: KeyProfile, year: int, month: int) -> MonthTotals:
        cache_key = (key.key_id, year, month, self._through(year, month))
        totals = self._totals.get(cache_key)
        if totals is None:
            totals = month_totals(key_days(self.seed, key, year, month, cache_key[3]))
            self._totals[cache_key] = totals
        return totals

    def _org_month(self, org_id: str, year: int, month: int) -> tuple[list[DayRow], MonthTotals]:
        cache_key = (org_id, year, month, self._through(year, month))
        cached = self._daily.get(cache_key)
        if cached is None:
            keys = self._orgs[org_id]
            totals = MonthTotals()
            for key in keys:
                totals += self._month_totals(key, year, month)
            cached = (org_days(self.seed, keys, year, month, cache_key[3]), totals)
            self._daily[cache_key] = cached
        return cached

    def expected_usage(self, key_id: str, year: int, month: int) -> dict[str, Any]:
        """Return the usage body the server answers for this key and month.

        Keys are snake_case whatever ``casing`` is; money is ``Decimal`` (totals and limits
        with 2 decimals, ``average_cost_per_request`` with 4, zero without traffic); a key
        without a limit has ``monthly_limit`` and ``remaining_budget`` None, status
        ``"no_limit"`` and ``utilization_percentage`` 0.

        Raises:
            KeyError: the server has no such key.
        """
        key = self._key(key_id)
        return usage_body(key, self._month_totals(key, year, month), year, month)

    def expected_daily(self, year: int, month: int, *, org_id: str | None = None) -> dict[str, Any]:
        """Return the daily body the server answers, snake_case, without ``generated_at``.

        ``daily_usage`` runs newest first and leaves out days without traffic.

        Raises:
            KeyError: the server does not know that organization.
        """
        org = org_id or self.org_id
        rows, totals = self._org_month(org, year, month)
        return daily_body(org, rows, totals, year, month)

    def expected_limits(self, year: int, month: int, *, org_id: str | None = None) -> dict[str, Any]:
        """Return the usage-limits body the server answers, snake_case, money as ``Decimal``.

        ``api_key_limits`` holds every key in listing order, each ``current_usage`` equal to
        the key's ``usage.total_cost`` that month (:meth:`expected_usage`), and
        ``organization_limits.current_usage`` their sum. The organization's limit depends on
        the seed; ``api_limits`` has none. ``summary.overall_status`` is the worst status of
        the organization and its keys (exceeded, warning, ok, no_limit).

        Raises:
            KeyError: the server does not know that organization.
        """
        org = org_id or self.org_id
        keys = self._orgs[org]
        return limits_body(
            org_limit_centimes(self.seed, org, len(keys)),
            [(key, self._month_totals(key, year, month)) for key in keys],
        )

    def expected_summary(self, year: int, month: int, *, org_id: str | None = None) -> dict[str, Any]:
        """Return the summary body the server answers, snake_case, without ``generated_at``:
        the ``summary`` of :meth:`expected_daily`.

        Raises:
            KeyError: the server does not know that organization.
        """
        org = org_id or self.org_id
        _, totals = self._org_month(org, year, month)
        return summary_body(org, totals, year, month)

    def expected_keys(self, *, org_id: str | None = None) -> list[dict[str, Any]]:
        """Return every key object of the listing, in order (``usage_limit_chf`` as Decimal).

        Raises:
            KeyError: the server does not know that organization.
        """
        return [key_object(k) for k in self._orgs[org_id or self.org_id]]

    def expected_totals(
        self,
        key_ids: Iterable[str] | None = None,
        *,
        months: Iterable[MonthLike],
        org_id: str | None = None,
    ) -> ExpectedTotals:
        """Sum the usage of ``key_ids`` (default: every key of ``org_id``) over ``months``.

        Raises:
            KeyError: an unknown key or organization.
            ValueError: a month is not valid.
        """
        profiles = self._orgs[org_id or self.org_id] if key_ids is None else [self._key(k) for k in key_ids]
        total = MonthTotals()
        for year, month in (_month_of(m) for m in months):
            for key in profiles:
                total += self._month_totals(key, year, month)
        return ExpectedTotals(total.requests, total.cost, total.synapses, total.neurons)

    def expected_total_cost(
        self,
        key_ids: Iterable[str] | None = None,
        *,
        months: Iterable[MonthLike],
        org_id: str | None = None,
    ) -> Decimal:
        """Sum of ``total_cost`` over ``key_ids`` x ``months``, exact (see :meth:`expected_totals`)."""
        return self.expected_totals(key_ids, months=months, org_id=org_id).cost

    def expected_total_requests(
        self,
        key_ids: Iterable[str] | None = None,
        *,
        months: Iterable[MonthLike],
        org_id: str | None = None,
    ) -> int:
        """Sum of ``total_requests`` over ``key_ids`` x ``months`` (see :meth:`expected_totals`)."""
        return self.expected_totals(key_ids, months=months, org_id=org_id).requests

    def keys_with_status(self, status: str, year: int, month: int, *, org_id: str | None = None) -> list[str]:
        """IDs of the keys whose limit status that month is ``status`` (e.g. ``"exceeded"``)."""
        return [
            k.key_id
            for k in self._orgs[org_id or self.org_id]
            if self.expected_usage(k.key_id, year, month)["limit"]["status"] == status
        ]

    def keys_without_traffic(self, year: int, month: int, *, org_id: str | None = None) -> list[str]:
        """IDs of the keys with zero requests that month."""
        return [
            k.key_id
            for k in self._orgs[org_id or self.org_id]
            if self._month_totals(k, year, month).requests == 0
        ]


# What the endpoints look up, kept off the Oracle's methods: FakeFreddyServer is an Oracle, and
# its public methods are the expected_* helpers alone.


def serves(oracle: Oracle, org_id: str) -> bool:
    """Whether ``org_id`` is one of the server's organizations."""
    return org_id in oracle._orgs


def key_profile(oracle: Oracle, key_id: str) -> KeyProfile | None:
    """The key of that ID, of any organization; None when there is none."""
    return oracle._keys.get(key_id)


def key_page(oracle: Oracle, org_id: str, page: int, size: int) -> tuple[list[dict[str, Any]], int]:
    """One page of the organization's key listing, and how many keys it has in all."""
    keys = oracle._orgs[org_id]
    return [key_object(k) for k in keys[(page - 1) * size : page * size]], len(keys)
