"""YearMonth: parsing, text, ranges, ordering, hashing and coercion."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import attrs
import pytest

from freddy_async import YearMonth


@pytest.mark.parametrize(
    ("text", "year", "month"),
    [
        ("2025-11", 2025, 11),
        ("2025-01", 2025, 1),
        ("2025-1", 2025, 1),
        ("2025-12", 2025, 12),
        (" 2025-11 ", 2025, 11),
        ("0001-01", 1, 1),
        ("9999-12", 9999, 12),
    ],
)
def test_parse(text: str, year: int, month: int) -> None:
    parsed = YearMonth.parse(text)

    assert parsed == YearMonth(year, month)
    assert (parsed.year, parsed.month) == (year, month)


@pytest.mark.parametrize(
    "text",
    ["", " ", "2025", "2025-", "-11", "2025/11", "2025-13", "2025-00", "2025-0", "25-11", "2025-011",
     "2025-11-01", "11-2025", "abcd-ef", "0000-01", "+2025-11", "2025 -11", "2025-1 1",
     "\uff12\uff10\uff12\uff15-11", "\u0662\u0660\u0662\u0665-11"],
)
def test_parse_refuses_other_text(text: str) -> None:
    with pytest.raises(ValueError, match=r"month|year"):
        YearMonth.parse(text)


@pytest.mark.parametrize("value", [202511, None, (2025, 11), b"2025-11"])
def test_parse_refuses_non_strings(value: Any) -> None:
    with pytest.raises(ValueError, match="YYYY-MM"):
        YearMonth.parse(value)


@pytest.mark.parametrize(
    ("value", "text"),
    [((2025, 11), "2025-11"), ((2025, 1), "2025-01"), ((999, 3), "0999-03"), ((1, 1), "0001-01")],
)
def test_str_and_round_trip(value: tuple[int, int], text: str) -> None:
    month = YearMonth(*value)

    assert str(month) == text
    assert f"{month}" == text
    assert YearMonth.parse(str(month)) == month


@pytest.mark.parametrize("month", [0, 13, -1, True, "11", 11.0, None])
def test_invalid_month_is_refused(month: Any) -> None:
    with pytest.raises(ValueError, match="month"):
        YearMonth(2025, month)


@pytest.mark.parametrize("year", [0, 10_000, -2025, True, "2025", 2025.0, None])
def test_invalid_year_is_refused(year: Any) -> None:
    with pytest.raises(ValueError, match="year"):
        YearMonth(year, 11)


def test_is_frozen() -> None:
    month = YearMonth(2025, 11)

    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        month.month = 12  # type: ignore[misc]


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        ("2025-11", "2025-11", ["2025-11"]),
        ("2025-11", "2026-02", ["2025-11", "2025-12", "2026-01", "2026-02"]),
        ("2024-01", "2024-12", [f"2024-{m:02d}" for m in range(1, 13)]),
        ("9999-11", "9999-12", ["9999-11", "9999-12"]),
        ("0001-01", "0001-02", ["0001-01", "0001-02"]),
    ],
)
def test_range_includes_both_ends(start: str, end: str, expected: list[str]) -> None:
    months = YearMonth.range(start, end)

    assert [str(m) for m in months] == expected
    assert all(type(m) is YearMonth for m in months)
    assert YearMonth.range(YearMonth.parse(start), YearMonth.parse(end)) == months


def test_range_of_ten_years() -> None:
    months = YearMonth.range("2020-01", "2029-12")

    assert len(months) == 120
    assert months == sorted(months)
    assert len(set(months)) == 120


@pytest.mark.parametrize(("start", "end"), [("2025-11", "2025-10"), ("2026-01", "2025-12")])
def test_range_end_before_start_is_refused(start: str, end: str) -> None:
    with pytest.raises(ValueError, match="before"):
        YearMonth.range(start, end)


@pytest.mark.parametrize(("start", "end"), [("2025-13", "2026-01"), ("2025-11", "soon")])
def test_range_with_a_bad_bound_is_refused(start: str, end: str) -> None:
    with pytest.raises(ValueError, match="month"):
        YearMonth.range(start, end)


@pytest.mark.parametrize(
    ("month", "following"),
    [((2025, 11), (2025, 12)), ((2025, 12), (2026, 1)), ((1, 1), (1, 2))],
)
def test_next(month: tuple[int, int], following: tuple[int, int]) -> None:
    assert YearMonth(*month).next() == YearMonth(*following)


def test_current_is_this_utc_month() -> None:
    before = datetime.now(timezone.utc)
    current = YearMonth.current()
    after = datetime.now(timezone.utc)

    assert current in {YearMonth(before.year, before.month), YearMonth(after.year, after.month)}
    assert type(current) is YearMonth


def test_ordering() -> None:
    months = [YearMonth(2026, 1), YearMonth(2025, 2), YearMonth(2025, 11), YearMonth(2024, 12)]

    assert sorted(months) == [
        YearMonth(2024, 12), YearMonth(2025, 2), YearMonth(2025, 11), YearMonth(2026, 1)
    ]
    assert YearMonth(2025, 12) < YearMonth(2026, 1)
    assert YearMonth(2025, 2) < YearMonth(2025, 10)  # by number, not by text
    assert YearMonth(2025, 11) <= YearMonth(2025, 11)
    assert YearMonth(2026, 1) > YearMonth(2025, 12)
    assert max(months) == YearMonth(2026, 1)
    assert min(months) == YearMonth(2024, 12)


def test_equality_and_hash() -> None:
    a = YearMonth(2025, 11)
    b = YearMonth.parse("2025-11")

    assert a == b
    assert hash(a) == hash(b)
    assert a != YearMonth(2025, 12)
    others: list[object] = [(2025, 11), "2025-11", 202511]
    assert all(a != other for other in others)
    assert len({a, b, YearMonth.coerce((2025, 11)), YearMonth(2025, 12)}) == 2
    assert {a: "november"}[b] == "november"


@pytest.mark.parametrize(
    "value",
    [(2025, 11), "2025-11", "2025-11 ", YearMonth(2025, 11)],
)
def test_coerce(value: Any) -> None:
    assert YearMonth.coerce(value) == YearMonth(2025, 11)


def test_coerce_returns_a_year_month_as_is() -> None:
    month = YearMonth(2025, 11)

    assert YearMonth.coerce(month) is month


@pytest.mark.parametrize(
    "value",
    [[2025, 11], (2025,), (2025, 11, 1), 202511, None, ("2025", "11"), (2025, 13), (True, 1), "2025/11",
     {"year": 2025, "month": 11}],
)
def test_coerce_refuses_anything_else(value: Any) -> None:
    with pytest.raises(ValueError, match=r"month|year"):
        YearMonth.coerce(value)
