"""Fuzzing the converter: any JSON-like value gives a model or a ResponseValidationError.

Three kinds of bodies per model: junk (any JSON value at all), mutations of valid bodies (a field
dropped, a value of the wrong type, a key in an unknown casing), and valid bodies whose every
field is spelled in camelCase or snake_case at random. Valid bodies must give exactly the model
they describe, and models must survive ``structure(unstructure(model))``.
"""

from __future__ import annotations

import contextlib
import functools
import json
import types
import typing
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from freddy_async import (
    ApiKey,
    ApiKeyDailyUsage,
    ApiKeyUsage,
    DailyUsage,
    DailyUsageSummary,
    LimitStatus,
    ResponseValidationError,
    UsageLimit,
    UsagePeriod,
    UsageTotals,
)
from freddy_async._convert import KeyPage, parse_json, structure, structure_key_page, unstructure

MODELS: list[type[Any]] = [
    ApiKeyUsage, UsageTotals, UsageLimit, ApiKeyDailyUsage, UsagePeriod, DailyUsage,
    DailyUsageSummary, ApiKey,
]

# Derandomized: the same examples every run, so CI never meets a new one by chance (a new
# example is found by changing the seed here on purpose, then kept as a regression test).
FUZZ = settings(max_examples=100, deadline=None, database=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
FUZZ_LIGHT = settings(FUZZ, max_examples=50)

MAX_COUNT = 2**63 - 1
MONEY_LIMIT = Decimal(10) ** 18 - 1


def model_id(cls: type[Any]) -> str:
    return cls.__name__


# -- JSON text ---------------------------------------------------------------------------------


def dumps(value: Any) -> str:
    """JSON text with Decimal written as its own digits (json.dumps would refuse it)."""
    if isinstance(value, Decimal):
        return str(value)  # "1.5", "1E+400", and the NaN/Infinity/-Infinity json.loads accepts
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)}: {dumps(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(dumps(v) for v in value) + "]"
    return json.dumps(value)


# -- junk --------------------------------------------------------------------------------------

# What parse_json can hand over: ints of at most 4,300 digits (json refuses longer ones) and
# Decimals for every number with a fraction or exponent, NaN and the infinities included.
# Exponents stay within +-400 here; larger ones have their own test below.
json_numbers = st.one_of(
    st.integers(min_value=-(10**40), max_value=10**40),
    st.decimals(min_value=Decimal("-1e400"), max_value=Decimal("1e400"), allow_nan=False,
                allow_infinity=False),
    st.sampled_from([Decimal("NaN"), Decimal("Infinity"), Decimal("-Infinity"), Decimal("1E+400"),
                     Decimal("-0"), Decimal("0E-400"), 2**63, 2**63 - 1, -1, 10**30]),
)
# Python floats too: structure() also meets already-decoded data (a round trip, a cache).
json_scalars = st.one_of(st.none(), st.booleans(), json_numbers, st.floats(), st.text(max_size=20))
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=12), children, max_size=6),
    max_leaves=12,
)
# The same, as JSON text: Python floats with NaN/Infinity and any exponent a double can hold.
json_text_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=12), children, max_size=6),
    max_leaves=12,
)


def structure_or_refuse(data: Any, cls: type[Any]) -> None:
    """The property: a model of ``cls`` comes back, or ResponseValidationError; nothing else."""
    try:
        result = structure(data, cls)
    except ResponseValidationError as exc:
        message = str(exc) + repr(exc)  # both work on whatever was refused
        assert message
    else:
        assert type(result) is cls


# -- valid bodies --------------------------------------------------------------------------------


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


Pair = tuple[Any, Any]
"""(what goes on the wire, what the model holds)."""


def counts() -> st.SearchStrategy[Pair]:
    number = st.integers(min_value=0, max_value=MAX_COUNT)
    # A whole count may come as 1250 or as 1250.0 (a Decimal once parsed).
    return number.flatmap(lambda n: st.sampled_from([(n, n), (Decimal(n).quantize(Decimal("0.0")), n)]))


def floats() -> st.SearchStrategy[Pair]:
    ints = st.integers(min_value=0, max_value=10**20).map(lambda n: (n, float(n)))
    decimals = st.decimals(min_value=0, max_value=Decimal("1e300"), allow_nan=False,
                           allow_infinity=False).map(lambda d: (d, float(d)))
    return ints | decimals


def money() -> st.SearchStrategy[Pair]:
    ints = st.integers(min_value=-(10**18) + 1, max_value=10**18 - 1).map(lambda n: (n, Decimal(n)))
    decimals = st.decimals(min_value=-MONEY_LIMIT, max_value=MONEY_LIMIT, allow_nan=False,
                           allow_infinity=False).map(lambda d: (d, d))
    return ints | decimals


def dates() -> st.SearchStrategy[Pair]:
    return st.dates().map(lambda d: (d.isoformat(), d))


ZONES = [timezone.utc, timezone(timedelta(hours=5, minutes=30)), timezone(-timedelta(hours=8))]


def datetimes() -> st.SearchStrategy[Pair]:
    aware = st.datetimes(timezones=st.sampled_from(ZONES)).map(lambda d: (d.isoformat(), d))
    # "Z" as the API writes it, and no offset at all, which this API means as UTC.
    zulu = st.datetimes(timezones=st.just(timezone.utc)).map(
        lambda d: (d.replace(tzinfo=None).isoformat() + "Z", d)
    )
    naive = st.datetimes().map(lambda d: (d.isoformat(), d.replace(tzinfo=timezone.utc)))
    return aware | zulu | naive


def statuses() -> st.SearchStrategy[Pair]:
    def value(text: str) -> LimitStatus | str:
        try:
            return LimitStatus(text)
        except ValueError:
            return text

    known = st.sampled_from([s.value for s in LimitStatus])
    return (known | st.text(max_size=12)).map(lambda t: (t, value(t)))


def _admits_none(tp: Any) -> bool:
    return typing.get_origin(tp) in (typing.Union, types.UnionType) and type(None) in typing.get_args(tp)


@functools.cache  # building strategies is slow; each field type needs one, once
def valid(tp: Any) -> st.SearchStrategy[Pair]:
    """Valid (wire, model value) pairs for a field type of the models."""
    if _admits_none(tp):
        rest = [a for a in typing.get_args(tp) if a is not type(None)]
        inner = valid(rest[0] if len(rest) == 1 else typing.Union[tuple(rest)])  # noqa: UP007
        return st.just((None, None)) | inner
    if tp == (LimitStatus | str):
        return statuses()
    if typing.get_origin(tp) is tuple:
        item = valid(typing.get_args(tp)[0])
        return st.lists(item, max_size=4).map(
            lambda pairs: ([w for w, _ in pairs], tuple(v for _, v in pairs))
        )
    if attrs.has(tp):
        return objects(tp)
    simple: dict[Any, st.SearchStrategy[Pair]] = {
        int: counts(), float: floats(), Decimal: money(), str: st.text().map(lambda s: (s, s)),
        bool: st.booleans().map(lambda b: (b, b)), date: dates(), datetime: datetimes(),
    }
    return simple[tp]


@st.composite
def _object(draw: st.DrawFn, cls: type[Any]) -> Pair:
    body: dict[str, Any] = {}
    values: dict[str, Any] = {}
    for f in attrs.fields(cls):
        wire, value = draw(valid(f.type))
        values[f.name] = value
        if value is None and draw(st.booleans()):
            continue  # an absent optional field reads as None
        body[draw(st.sampled_from([f.name, camel(f.name)]))] = wire
    if draw(st.booleans()):
        body["x_unknown_field"] = draw(json_values)  # unknown keys are ignored
    return body, cls(**values)


_OBJECTS: dict[type[Any], st.SearchStrategy[Pair]] = {}


def objects(cls: type[Any]) -> st.SearchStrategy[Pair]:
    if cls not in _OBJECTS:
        attrs.resolve_types(cls)  # the models use postponed annotations: strings until resolved
        _OBJECTS[cls] = _object(cls)
    return _OBJECTS[cls]


# -- mutations of valid bodies -------------------------------------------------------------------


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, (*prefix, index))
    return found


def _casings(key: str) -> list[str]:
    snake = "".join(f"_{c.lower()}" if c.isupper() else c for c in key)
    return [key.upper(), key.title(), snake, camel(snake), key.swapcase(), f" {key}"]


@st.composite
def mutated(draw: st.DrawFn, cls: type[Any]) -> Any:
    body, _ = draw(objects(cls))
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        paths = _paths(body)
        path = draw(st.sampled_from(paths))
        if not path:
            body = draw(json_values)  # replace the whole body
            continue
        parent: Any = body
        for step in path[:-1]:
            parent = parent[step]
        last = path[-1]
        kind = draw(st.sampled_from(["drop", "retype", "recase"]))
        if kind == "drop" and isinstance(parent, dict):
            del parent[last]
        elif kind == "recase" and isinstance(parent, dict):
            parent[draw(st.sampled_from(_casings(last)))] = parent.pop(last)
        else:
            parent[last] = draw(json_values)
    return body


# -- the properties ------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", MODELS, ids=model_id)
@FUZZ_LIGHT
@given(data=st.data())
def test_junk_gives_a_model_or_a_validation_error(cls: type[Any], data: st.DataObject) -> None:
    structure_or_refuse(data.draw(json_values), cls)


@pytest.mark.parametrize("cls", MODELS, ids=model_id)
@FUZZ_LIGHT
@given(data=st.data())
def test_junk_json_text_gives_a_model_or_a_validation_error(cls: type[Any], data: st.DataObject) -> None:
    text = json.dumps(data.draw(json_text_values))  # NaN and Infinity written as JS does
    structure_or_refuse(parse_json(text.encode()), cls)


@FUZZ
@given(raw=st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_any_bytes_parse_or_give_a_validation_error(raw: bytes) -> None:
    with contextlib.suppress(ResponseValidationError):
        parse_json(raw)


@pytest.mark.parametrize("cls", MODELS, ids=model_id)
@FUZZ
@given(data=st.data())
def test_mutated_bodies_give_a_model_or_a_validation_error(cls: type[Any], data: st.DataObject) -> None:
    body = data.draw(mutated(cls))
    structure_or_refuse(body, cls)
    structure_or_refuse(parse_json(dumps(body)), cls)


@pytest.mark.parametrize("cls", MODELS, ids=model_id)
@FUZZ
@given(data=st.data())
def test_valid_bodies_in_either_casing_give_their_model_and_round_trip(
    cls: type[Any], data: st.DataObject
) -> None:
    body, model = data.draw(objects(cls))
    assert structure(body, cls) == model
    # The same through JSON text, as bodies arrive: numbers come back as int or Decimal.
    assert structure(parse_json(dumps(body)), cls) == model
    # And back: unstructure gives plain values that structure reads as the same model, directly
    # and through JSON text, which is where unstructured values usually go.
    plain = unstructure(model)
    assert structure(plain, cls) == model
    assert structure(parse_json(dumps(plain)), cls) == model


def test_the_documented_usage_example_round_trips() -> None:
    body = {
        "apiKeyId": "apikey_abc123", "apiKeyName": "Production Key", "organizationId": "org_123",
        "month": 11, "year": 2025,
        "usage": {"totalRequests": 1250, "totalCost": 350.25, "totalSynapses": 125000,
                  "totalNeurons": 2500000, "averageCostPerRequest": 0.28},
        "limit": {"monthlyLimit": 500.00, "utilizationPercentage": 70.05,
                  "remainingBudget": 149.75, "status": "ok"},
    }
    model = structure(parse_json(json.dumps(body)), ApiKeyUsage)
    plain = unstructure(model)
    assert plain["limit"]["status"] == "ok" and type(plain["limit"]["status"]) is str
    assert structure(plain, ApiKeyUsage) == model
    assert structure(parse_json(dumps(plain)), ApiKeyUsage) == model


# -- key pages -----------------------------------------------------------------------------------


@FUZZ
@given(data=json_values)
def test_junk_key_pages_give_a_page_or_a_validation_error(data: Any) -> None:
    try:
        result = structure_key_page(data)
    except ResponseValidationError:
        pass
    else:
        assert isinstance(result, KeyPage)


@FUZZ
@given(data=st.data(), shape=st.sampled_from(["keys", "api_keys"]), total=st.integers(0, 500))
def test_valid_key_pages_in_both_shapes(data: st.DataObject, shape: str, total: int) -> None:
    pairs = data.draw(st.lists(objects(ApiKey), max_size=5))
    wire = [w for w, _ in pairs]
    body: dict[str, Any] = (
        {"keys": wire, "total": total, "page": 1, "page_size": 20}
        if shape == "keys"
        else {"api_keys": wire, "pagination": {"page": 1, "page_size": 20, "total_count": total,
                                               "total_pages": -(-total // 20)}}
    )
    result = structure_key_page(parse_json(dumps(body)))
    assert result.keys == tuple(m for _, m in pairs)
    assert result.total == total


@FUZZ
@given(data=st.data())
def test_mutated_key_pages_give_a_page_or_a_validation_error(data: st.DataObject) -> None:
    pairs = data.draw(st.lists(objects(ApiKey), max_size=3))
    body = {"api_keys": [w for w, _ in pairs], "pagination": {"total_count": len(pairs)}}
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from(_paths(body)[1:]))
        parent: Any = body
        for step in path[:-1]:
            parent = parent[step]
        parent[path[-1]] = data.draw(json_values)
    with contextlib.suppress(ResponseValidationError):
        structure_key_page(body)


# -- numbers of any size -------------------------------------------------------------------------


@FUZZ_LIGHT
@given(mantissa=st.integers(1, 9), exponent=st.integers(min_value=401, max_value=20_000))
def test_counts_with_any_exponent_are_refused_cleanly(mantissa: int, exponent: int) -> None:
    body = {"totalRequests": f"{mantissa}e{exponent}", "totalCost": 1, "totalSynapses": 1,
            "totalNeurons": 1}
    text = dumps(body).replace(f'"{mantissa}e{exponent}"', f"{mantissa}e{exponent}")
    with pytest.raises(ResponseValidationError):
        structure(parse_json(text), UsageTotals)


@FUZZ_LIGHT
@given(mantissa=st.integers(1, 9), exponent=st.integers(min_value=401, max_value=10**9),
       field=st.sampled_from(["totalCost", "totalSynapses", "averageCostPerRequest"]))
def test_money_and_floats_with_any_exponent_are_refused_cleanly(
    mantissa: int, exponent: int, field: str
) -> None:
    body: dict[str, Any] = {"totalRequests": 1, "totalCost": 1, "totalSynapses": 1, "totalNeurons": 1}
    body[field] = "__N__"
    text = dumps(body).replace('"__N__"', f"{mantissa}e{exponent}")
    with pytest.raises(ResponseValidationError) as info:
        structure(parse_json(text), UsageTotals)
    assert info.value.path == field
