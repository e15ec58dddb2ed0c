"""Calendar months, and the checks shared by every public method that takes one."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from datetime import datetime, timezone
from typing import Any

import attrs

__all__ = ["MonthLike", "YearMonth", "check_month", "check_year"]

_TEXT = re.compile(r"([0-9]{4})-([0-9]{1,2})")  # ASCII only: \d would admit other scripts' digits


def check_year(year: Any, name: str = "year") -> int:
    """Return ``year`` if it is a plain int in 1..9999, else raise ``ValueError``."""
    # bool is an int subclass; True as a year is always a caller's mistake.
    if type(year) is not int:
        raise ValueError(f"{name} must be an int, not {type(year).__name__} {year!r}")
    if not 1 <= year <= 9999:
        raise ValueError(f"{name} must be between 1 and 9999, not {year}")
    return year


def check_month(month: Any, name: str = "month") -> int:
    """Return ``month`` if it is a plain int in 1..12, else raise ``ValueError``."""
    if type(month) is not int:
        raise ValueError(f"{name} must be an int from 1 to 12, not {type(month).__name__} {month!r}")
    if not 1 <= month <= 12:
        raise ValueError(f"{name} must be from 1 to 12, not {month}")
    return month


def _year(value: Any) -> int:
    return check_year(value)


def _month(value: Any) -> int:
    return check_month(value)


@attrs.frozen(order=True)
class YearMonth:
    """One calendar month, ordered by time: ``YearMonth(2025, 11)``, shown as ``"2025-11"``."""

    year: int = attrs.field(converter=_year)
    month: int = attrs.field(converter=_month)

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"

    @classmethod
    def parse(cls, text: str) -> YearMonth:
        """Read ``"YYYY-MM"`` (``"2025-11"``; ``"2025-1"`` is accepted too).

        Raises:
            ValueError: the text is not a month of that form.
        """
        if not isinstance(text, str):
            raise ValueError(f"expected a 'YYYY-MM' string, not {type(text).__name__} {text!r}")
        match = _TEXT.fullmatch(text.strip())
        if match is None:
            raise ValueError(f"expected a month as 'YYYY-MM', not {text!r}")
        return cls(int(match[1]), int(match[2]))

    @classmethod
    def coerce(cls, value: MonthLike) -> YearMonth:
        """Accept a ``YearMonth``, a ``"YYYY-MM"`` string or a ``(year, month)`` tuple.

        Raises:
            ValueError: the value is none of those, or not a valid month.
        """
        if isinstance(value, YearMonth):
            return value
        if isinstance(value, str):
            return cls.parse(value)
        if isinstance(value, tuple) and len(value) == 2:
            return cls(value[0], value[1])
        raise ValueError(
            f"expected a YearMonth, 'YYYY-MM' or (year, month), not {type(value).__name__} {value!r}"
        )

    @classmethod
    def current(cls) -> YearMonth:
        """The current month in UTC."""
        now = datetime.now(timezone.utc)
        return cls(now.year, now.month)

    @classmethod
    def range(cls, start: YearMonth | str, end: YearMonth | str) -> list[YearMonth]:
        """Every month from ``start`` to ``end``, both included, oldest first.

        Raises:
            ValueError: a bound is not a month, or ``end`` comes before ``start``.
        """
        first, last = cls.coerce(start), cls.coerce(end)
        if last < first:
            raise ValueError(f"range end {last} comes before its start {first}")
        return list(first._through(last))

    def next(self) -> YearMonth:
        """The month after this one."""
        if self.month == 12:
            return YearMonth(self.year + 1, 1)
        return YearMonth(self.year, self.month + 1)

    def _through(self, last: YearMonth) -> Iterator[YearMonth]:
        month = self
        yield month
        while month < last:
            # Stop before calling next() on ``last``: the month after 9999-12 does not exist.
            month = month.next()
            yield month


MonthLike = YearMonth | str | tuple[int, int]


def unique_months(months: Iterable[MonthLike]) -> list[YearMonth]:
    """Coerce, de-duplicate and sort ``months``; raise ``ValueError`` on any bad one or none."""
    if isinstance(months, (str, YearMonth)):
        # A lone "2025-11" would otherwise be iterated character by character.
        months = [months]
    elif not isinstance(months, Iterable):
        raise ValueError(f"months must be an iterable of months, not {type(months).__name__} {months!r}")
    result = sorted({YearMonth.coerce(m) for m in months})
    if not result:
        raise ValueError("months is empty: give at least one month")
    return result
