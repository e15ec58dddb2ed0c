"""Deterministic fake data: keys, their daily traffic and every total derived from it.

Everything here is pure and computed from the seed, so a test can ask what the server *will*
answer without any HTTP. Money is kept in integer centimes until the very end, so that a key's
month is exactly the sum of its days and an organization's month exactly the sum of its keys.
"""

from __future__ import annotations

import calendar
import hashlib
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal
from typing import Any, NamedTuple

__all__ = [
    "DayRow",
    "KeyProfile",
    "MonthTotals",
    "daily_body",
    "days_passed",
    "key_days",
    "key_object",
    "limits_body",
    "make_keys",
    "month_totals",
    "org_days",
    "org_limit_centimes",
    "summary_body",
    "usage_body",
]

_CENT = Decimal("0.01")
_AVERAGE = Decimal("0.0001")
_PREFIXES = ("apikey_", "ak_", "apk_")
_KINDS = ("ok", "no_limit", "warning", "exceeded", "sparse")
_LIMITS_CENTIMES = (5_000, 10_000, 20_000, 25_000, 50_000, 100_000, 200_000, 500_000)
_SCALES_CENTIMES = (2_000, 15_000, 40_000, 120_000, 300_000)
# Share of the monthly limit a key of each kind spends, in percent: the bands sit well inside
# the status thresholds (80 and 100), so a kind always yields the same status.
_BANDS = {"ok": (10, 75), "warning": (82, 97), "exceeded": (105, 160)}
_NAMES = ("Production", "Staging", "Analytics", "Billing", "Mobile", "Backend", "Partner", "CI")
_SCOPES = ("analytics:read", "chat:write", "files:read", "models:read", "usage:read")
# An organization's monthly limit per key it has, in centimes: spread so that the seeds give
# organizations under, near and over their limit.
_ORG_LIMITS_PER_KEY_CENTIMES = (50_000, 100_000, 150_000, 300_000)
_EPOCH = datetime(2019, 1, 1, tzinfo=timezone.utc)
_USED_SINCE = datetime(2025, 1, 1, tzinfo=timezone.utc)
_EXPIRING_FROM = datetime(2031, 1, 1, tzinfo=timezone.utc)
# Worst last: the summary's overall status is the worst of the organization's and its keys'.
_STATUS_ORDER = ("no_limit", "ok", "warning", "exceeded")


def _rng(*parts: object) -> random.Random:
    """Return a Random seeded by a stable digest of ``parts``.

    ``hash()`` is salted per process, so it would make the data change between runs.
    """
    text = "\x1f".join(str(part) for part in parts)
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return random.Random(int.from_bytes(digest[:16], "big"))


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _money(centimes: int) -> Decimal:
    return (Decimal(centimes) / 100).quantize(_CENT)


def _average(centimes: int, requests: int) -> Decimal:
    if requests == 0:
        return Decimal("0.0000")
    return (Decimal(centimes) / 100 / requests).quantize(_AVERAGE, rounding=ROUND_HALF_UP)


@dataclass(frozen=True)
class KeyProfile:
    """One fake API key: its identity, limit and the shape of its traffic."""

    key_id: str
    organization_id: str
    index: int
    name: str
    kind: str
    limit_centimes: int | None
    scale_centimes: int
    rate: int  # cost of one request in 1/10000 CHF
    active_percent: int
    key_prefix: str
    created_by: str
    created_at: datetime
    is_active: bool
    is_paused: bool
    scopes: tuple[str, ...]
    last_used_at: datetime | None
    expires_at: datetime | None

    @property
    def monthly_limit(self) -> Decimal | None:
        """The monthly limit in CHF, or None when the key has none."""
        return None if self.limit_centimes is None else _money(self.limit_centimes)


class DayRow(NamedTuple):
    """One day of traffic (of a key, or summed over an organization)."""

    # A NamedTuple, not a frozen dataclass: millions are built for big batch tests.

    day: int
    requests: int
    cost_centimes: int
    synapses: int
    neurons: int


@dataclass(frozen=True)
class MonthTotals:
    """The sum of a month's day rows."""

    requests: int = 0
    cost_centimes: int = 0
    synapses: int = 0
    neurons: int = 0

    def __add__(self, other: MonthTotals) -> MonthTotals:
        return MonthTotals(
            self.requests + other.requests,
            self.cost_centimes + other.cost_centimes,
            self.synapses + other.synapses,
            self.neurons + other.neurons,
        )

    @property
    def cost(self) -> Decimal:
        """Total cost in CHF, two decimals."""
        return _money(self.cost_centimes)

    @property
    def average_cost_per_request(self) -> Decimal:
        """Cost divided by requests, four decimals; zero without traffic."""
        return _average(self.cost_centimes, self.requests)


def make_keys(seed: int, org_id: str, count: int, taken: set[str]) -> list[KeyProfile]:
    """Return ``count`` keys for ``org_id``; new IDs are added to ``taken`` to stay unique.

    Key number i is the same whatever ``count`` is, so a bigger server only adds keys.
    """
    return [_make_key(seed, org_id, index, taken) for index in range(count)]


def _make_key(seed: int, org_id: str, index: int, taken: set[str]) -> KeyProfile:
    # Kinds are dealt in shuffled blocks: any aligned 5 keys cover every limit status,
    # while their order still looks random.
    block = list(_KINDS)
    _rng("kinds", seed, org_id, index // len(_KINDS)).shuffle(block)
    kind = block[index % len(_KINDS)]
    # Every draw below comes in a fixed order: reordering them would change every seed's data.
    rng = _rng("key", seed, org_id, index)
    key_id = ""
    while not key_id or key_id in taken:
        key_id = f"{_PREFIXES[index % len(_PREFIXES)]}{rng.getrandbits(48):012x}"
    taken.add(key_id)
    limited = kind in _BANDS or (kind == "sparse" and rng.random() < 0.5)
    created_at = _EPOCH + timedelta(seconds=rng.randrange(300 * 86_400))
    last_used = rng.random() < 0.8
    expires = rng.random() < 0.25
    return KeyProfile(
        key_id=key_id,
        organization_id=org_id,
        index=index,
        name=f"{rng.choice(_NAMES)} Key {index + 1}",
        kind=kind,
        limit_centimes=rng.choice(_LIMITS_CENTIMES) if limited else None,
        scale_centimes=rng.choice(_SCALES_CENTIMES),
        rate=rng.randint(500, 5_000),
        active_percent=rng.randint(40, 100),
        key_prefix=f"fr_{rng.getrandbits(24):06x}",
        created_by=f"usr_{rng.getrandbits(32):08x}",
        created_at=created_at,
        is_active=rng.random() < 0.9,
        is_paused=rng.random() < 0.1,
        scopes=tuple(s for s in _SCOPES if s == "analytics:read" or rng.random() < 0.4),
        last_used_at=_USED_SINCE + timedelta(seconds=rng.randrange(300 * 86_400)) if last_used else None,
        expires_at=_EXPIRING_FROM + timedelta(days=rng.randrange(365)) if expires else None,
    )


def days_passed(year: int, month: int, today: date) -> int:
    """How many days of the month have begun by ``today``: all of a past one, none of a future one."""
    if (year, month) < (today.year, today.month):
        return calendar.monthrange(year, month)[1]
    if (year, month) > (today.year, today.month):
        return 0
    return today.day


def key_days(seed: int, key: KeyProfile, year: int, month: int, through: int = 31) -> list[DayRow]:
    """Return the key's days with traffic in that month up to day ``through``, oldest first.

    The whole month's cost is fixed first (from the key's limit band or scale) and then split
    over the active days, so a limited key lands in its status band once the month is over;
    ``through`` only cuts days off, so a day's numbers never change as the month goes on.
    """
    return [row for row in _month_days(seed, key, year, month) if row.day <= through]


def _month_days(seed: int, key: KeyProfile, year: int, month: int) -> list[DayRow]:
    rng = _rng("usage", seed, key.key_id, year, month)
    if key.kind == "sparse" and rng.random() < 0.5:
        return []
    # Shares are drawn in basis points so that costs carry centimes, not round francs.
    if key.limit_centimes is not None and key.kind in _BANDS:
        low, high = _BANDS[key.kind]
        target = key.limit_centimes * rng.randint(low * 100, high * 100) // 10_000
    elif key.limit_centimes is not None:
        target = key.limit_centimes * rng.randint(1_000, 6_000) // 10_000
    else:
        target = key.scale_centimes * rng.randint(7_000, 13_000) // 10_000
    days_in_month = calendar.monthrange(year, month)[1]
    active = [d for d in range(1, days_in_month + 1) if rng.randrange(100) < key.active_percent]
    if not active:
        active = [rng.randint(1, days_in_month)]
    active = active[: max(1, min(len(active), target))]
    weights = [rng.randint(50, 150) for _ in active]
    spare, weight_sum = target - len(active), sum(weights)
    costs = [1 + spare * w // weight_sum for w in weights]
    for i in range(target - sum(costs)):
        costs[i] += 1
    rows = []
    for day, cost in zip(active, costs, strict=True):
        day_rate = key.rate * rng.randint(90, 110) // 100
        requests = max(1, cost * 100 // day_rate)
        rows.append(
            DayRow(
                day=day,
                requests=requests,
                cost_centimes=cost,
                synapses=requests * rng.randint(80, 120),
                neurons=requests * rng.randint(1_500, 2_500),
            )
        )
    return rows


def month_totals(rows: Sequence[DayRow]) -> MonthTotals:
    """Sum day rows into a month."""
    return MonthTotals(
        sum(row.requests for row in rows),
        sum(row.cost_centimes for row in rows),
        sum(row.synapses for row in rows),
        sum(row.neurons for row in rows),
    )


def org_days(seed: int, keys: Iterable[KeyProfile], year: int, month: int, through: int = 31) -> list[DayRow]:
    """Sum the keys' day rows per day up to ``through``; days without traffic are left out;
    newest first."""
    per_day: dict[int, MonthTotals] = {}
    for key in keys:
        for row in key_days(seed, key, year, month, through):
            per_day[row.day] = per_day.get(row.day, MonthTotals()) + MonthTotals(
                row.requests, row.cost_centimes, row.synapses, row.neurons
            )
    return [
        DayRow(day, t.requests, t.cost_centimes, t.synapses, t.neurons)
        for day, t in sorted(per_day.items(), reverse=True)
        if t.requests
    ]


def _limit_part(limit: Decimal | None, cost: Decimal) -> dict[str, Any]:
    """A limit and how much of it ``cost`` uses (API.md §1's ``limit``), snake_case."""
    if limit is None:
        return {
            "monthly_limit": None,
            "utilization_percentage": Decimal("0.00"),
            "remaining_budget": None,
            "status": "no_limit",
        }
    # Truncating keeps the printed percentage on the same side of 80 and 100 as the
    # exact ratio, so status and percentage never disagree.
    utilization = (cost * 100 / limit).quantize(_CENT, rounding=ROUND_DOWN)
    if cost >= limit:
        status = "exceeded"
    elif cost * 100 >= limit * 80:
        status = "warning"
    else:
        status = "ok"
    return {
        "monthly_limit": limit,
        "utilization_percentage": utilization,
        "remaining_budget": limit - cost,
        "status": status,
    }


def usage_body(key: KeyProfile, totals: MonthTotals, year: int, month: int) -> dict[str, Any]:
    """Build the usage answer (API.md §1) in snake_case, money as Decimal."""
    return {
        "api_key_id": key.key_id,
        "api_key_name": key.name,
        "organization_id": key.organization_id,
        "month": month,
        "year": year,
        "usage": {
            "total_requests": totals.requests,
            "total_cost": totals.cost,
            "total_synapses": totals.synapses,
            "total_neurons": totals.neurons,
            "average_cost_per_request": totals.average_cost_per_request,
        },
        "limit": _limit_part(key.monthly_limit, totals.cost),
    }


def org_limit_centimes(seed: int, org_id: str, key_count: int) -> int | None:
    """The organization's monthly limit in centimes; None for an organization without keys."""
    if key_count == 0:
        return None
    return key_count * _rng("org-limit", seed, org_id).choice(_ORG_LIMITS_PER_KEY_CENTIMES)


def limits_body(org_limit: int | None, keys: Sequence[tuple[KeyProfile, MonthTotals]]) -> dict[str, Any]:
    """Build the usage-limits answer (API.md §4) in snake_case, money as Decimal.

    ``keys`` are the organization's keys in listing order with their month's totals; each
    key's ``current_usage`` is its ``total_cost``, the organization's is their sum.
    """
    cost = sum((totals.cost for _, totals in keys), Decimal("0.00"))
    key_limits = []
    for key, totals in keys:
        part = _limit_part(key.monthly_limit, totals.cost)
        key_limits.append(
            {
                "api_key_id": key.key_id,
                "api_key_name": key.name,
                "monthly_limit": part["monthly_limit"],
                "current_usage": totals.cost,
                "utilization_percentage": part["utilization_percentage"],
                "status": part["status"],
            }
        )
    organization = _limit_part(None if org_limit is None else _money(org_limit), cost)
    statuses = [organization["status"], *(k["status"] for k in key_limits)]
    return {
        "organization_limits": {
            "monthly_limit": organization["monthly_limit"],
            "current_usage": cost,
            "utilization_percentage": organization["utilization_percentage"],
            "remaining_budget": organization["remaining_budget"],
            "status": organization["status"],
        },
        # As API.md §4 prints it: no limit of its own, and a zero (not null) budget.
        "api_limits": {
            "monthly_limit": None,
            "current_usage": cost,
            "utilization_percentage": Decimal("0.0"),
            "remaining_budget": Decimal("0.0"),
            "status": "no_limit",
        },
        "api_key_limits": key_limits,
        "summary": {
            "total_keys": len(key_limits),
            "keys_with_limits": sum(k["monthly_limit"] is not None for k in key_limits),
            "keys_exceeded": sum(k["status"] == "exceeded" for k in key_limits),
            "overall_status": max(statuses, key=_STATUS_ORDER.index),
        },
    }


def summary_body(org_id: str, totals: MonthTotals, year: int, month: int) -> dict[str, Any]:
    """Build the month's summary over all API keys (API.md §2's ``summary``, §4's summary
    answer) in snake_case, without ``generated_at``."""
    return {
        "organization_id": org_id,
        "month": month,
        "year": year,
        "total_api_key_requests": totals.requests,
        "total_api_key_cost": totals.cost,
        "average_cost_per_request": totals.average_cost_per_request,
        "total_synapses": totals.synapses,
        "total_neurons": totals.neurons,
    }


def daily_body(
    org_id: str, rows: Sequence[DayRow], totals: MonthTotals, year: int, month: int
) -> dict[str, Any]:
    """Build the daily answer (API.md §2) in snake_case, without ``generated_at``."""
    days_in_month = calendar.monthrange(year, month)[1]
    return {
        "organization_id": org_id,
        "period": {
            "year": year,
            "month": month,
            "start_date": f"{year:04d}-{month:02d}-01",
            "end_date": f"{year:04d}-{month:02d}-{days_in_month:02d}",
            "days_in_month": days_in_month,
            "days_with_api_usage": len(rows),
        },
        "daily_usage": [
            {
                "date": f"{year:04d}-{month:02d}-{row.day:02d}",
                "requests": row.requests,
                "cost": _money(row.cost_centimes),
                "synapses": row.synapses,
                "neurons": row.neurons,
            }
            for row in rows
        ],
        "summary": summary_body(org_id, totals, year, month),
    }


def key_object(key: KeyProfile) -> dict[str, Any]:
    """Build one entry of the key listing (API.md §3), always snake_case."""
    return {
        "id": key.key_id,
        "organization_id": key.organization_id,
        "key_name": key.name,
        "key_prefix": key.key_prefix,
        "is_active": key.is_active,
        "is_paused": key.is_paused,
        "created_by": key.created_by,
        "created_at": _iso(key.created_at),
        "usage_limit_chf": key.monthly_limit,
        "scopes": list(key.scopes),
        "last_used_at": None if key.last_used_at is None else _iso(key.last_used_at),
        "expires_at": None if key.expires_at is None else _iso(key.expires_at),
    }
