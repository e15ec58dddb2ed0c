"""JSON to models (and back) through the one cattrs ``Converter`` of the library.

The rules every endpoint needs:

- every field is read from its snake_case or its camelCase key (the API mixes both, even inside
  one body): the snake_case one unless it is absent or null; unknown keys are ignored; an absent
  or null optional field is ``None``;
- money is ``Decimal`` made from the JSON number's own text (``parse_float=Decimal``), never
  through a binary float;
- types are strict: a string where a number belongs, a bool where a count belongs, NaN or an
  infinity, a negative count, all raise :class:`ResponseValidationError` naming the field path
  as spelled in the body (``usage.totalCost``, ``dailyUsage[2].date``).
"""

from __future__ import annotations

import json
import types
import typing
from collections.abc import Callable
from datetime import date, datetime, timezone
from decimal import Decimal
from typing import Any, Generic, TypeVar

import attrs
import cattrs

from ._errors import ResponseValidationError, clip
from ._models import ApiKey, LimitStatus

__all__ = ["KeyPage", "parse_json", "structure", "structure_key_page", "unstructure"]

T = TypeVar("T")

# Counts beyond a signed 64-bit integer, or money beyond 10**18 CHF, are corrupt data, not usage.
_MAX_COUNT = 2**63 - 1
_MAX_MONEY_DIGITS = 18


class _Invalid(Exception):
    """A value that does not fit; ``path`` grows as the error climbs out of nested objects."""

    def __init__(self, message: str, path: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.path = path

    def under(self, key: str) -> _Invalid:
        if not self.path:
            self.path = key
        elif self.path.startswith("["):
            self.path = key + self.path
        else:
            self.path = f"{key}.{self.path}"
        return self


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _keep_constant(name: str) -> Decimal:
    # NaN and the infinities are not JSON, but rejecting them here would lose the field's name:
    # kept as non-finite Decimals, every number hook refuses them with the path.
    return Decimal(name)


# Made once: json.loads(..., parse_float=...) builds a new decoder and scanner on every call.
_DECODER = json.JSONDecoder(parse_float=Decimal, parse_constant=_keep_constant)


def parse_json(raw: bytes | str) -> Any:
    """Decode a body, floats as exact ``Decimal``; raise ``ResponseValidationError`` if not JSON."""
    try:
        if isinstance(raw, str):
            if raw.startswith("\ufeff"):
                raise ValueError("Unexpected UTF-8 BOM (decode using utf-8-sig)")
            text = raw
        else:
            # As json.loads reads bytes: UTF-8, -16 or -32, told apart by the first bytes
            # (a body starting with "{" is UTF-8: the others would start with a NUL or a BOM).
            encoding = "utf-8" if raw[:1] == b"{" else json.detect_encoding(raw)
            text = raw.decode(encoding, "surrogatepass")
        return _DECODER.decode(text)
    except (ValueError, RecursionError) as exc:
        problem = exc.__class__.__name__
    # Raised out here, not in the except block: the decoder's error would be chained to it as
    # ``__context__``, holding the whole body (its ``doc``) for as long as the error lives.
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    shown = clip(text, 80) if text.strip() else "an empty body"
    raise ResponseValidationError(f"the answer is not valid JSON ({problem}): {shown}", body=text[:4096])


# -- scalar hooks ------------------------------------------------------------------------------


def _to_int(value: Any, _: Any) -> int:
    if type(value) is int:
        number = value
    elif type(value) is Decimal and value.is_finite() and value == value.to_integral_value():
        if value.adjusted() >= 19:
            # Past 2**63 already: int() of 1e1000000 would cost seconds of CPU for nothing.
            raise _Invalid(f"expected a count from 0 to {_MAX_COUNT}, got {clip(str(value), 40)}")
        number = int(value)  # 1250.0 is still a whole count
    else:
        raise _Invalid(f"expected a whole number, got {_kind(value)} {clip(repr(value), 40)}")
    if not 0 <= number <= _MAX_COUNT:
        raise _Invalid(f"expected a count from 0 to {_MAX_COUNT}, got {number}")
    return number


_INF = float("inf")


def _to_float(value: Any, _: Any) -> float:
    # parse_json gives int or Decimal; a float comes only from already-decoded data (a round trip).
    if type(value) in (int, float) or (type(value) is Decimal and value.is_finite()):
        try:
            number = float(value)
        except OverflowError:  # an int of hundreds of digits: no float holds it
            number = _INF
        if 0 <= number < _INF:
            return number
        raise _Invalid(f"expected a finite number >= 0, got {clip(str(value), 40)}")
    raise _Invalid(f"expected a number, got {_kind(value)} {clip(repr(value), 40)}")


def _to_decimal(value: Any, _: Any) -> Decimal:
    if type(value) is Decimal:
        if value.is_finite() and value.adjusted() < _MAX_MONEY_DIGITS:
            return value
        raise _Invalid(f"expected an amount below 10**{_MAX_MONEY_DIGITS}, got {clip(str(value), 40)}")
    if type(value) is int:
        if abs(value) < 10**_MAX_MONEY_DIGITS:
            return Decimal(value)
        raise _Invalid(f"expected an amount below 10**{_MAX_MONEY_DIGITS}, got {clip(str(value), 40)}")
    raise _Invalid(f"expected an amount, got {_kind(value)} {clip(repr(value), 40)}")


def _to_str(value: Any, _: Any) -> str:
    if isinstance(value, str):
        return value
    raise _Invalid(f"expected a string, got {_kind(value)}")


def _to_bool(value: Any, _: Any) -> bool:
    if isinstance(value, bool):
        return value
    raise _Invalid(f"expected true or false, got {_kind(value)}")


def _to_date(value: Any, _: Any) -> date:
    if isinstance(value, str) and len(value) == 10:
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise _Invalid(f"expected a date as 'YYYY-MM-DD', got {clip(repr(value), 40)}")


def _to_datetime(value: Any, _: Any) -> datetime:
    if isinstance(value, str):
        text = value[:-1] + "+00:00" if value.endswith(("Z", "z")) else value
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            pass
        else:
            # A timestamp without offset from this API is UTC; callers get aware datetimes only.
            return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
    raise _Invalid(f"expected an ISO 8601 timestamp, got {clip(repr(value), 40)}")


_STATUSES: dict[str, LimitStatus] = {status.value: status for status in LimitStatus}


def _to_status(value: Any, _: Any) -> LimitStatus | str:
    if not isinstance(value, str):
        raise _Invalid(f"expected a status string, got {_kind(value)}")
    # A dict lookup rather than LimitStatus(value), whose Enum machinery costs a microsecond.
    # A status this version does not know yet is kept as the string, not refused.
    return _STATUSES.get(value, value)


# -- containers and attrs classes --------------------------------------------------------------


def _is_homogeneous_tuple(tp: Any) -> bool:
    args = typing.get_args(tp)
    return typing.get_origin(tp) is tuple and len(args) == 2 and args[1] is Ellipsis


def _admits_none(tp: Any) -> bool:
    return typing.get_origin(tp) in (typing.Union, types.UnionType) and type(None) in typing.get_args(tp)


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def _make_tuple_hook(tp: Any) -> Callable[[Any, Any], tuple[Any, ...]]:
    item_type = typing.get_args(tp)[0]
    item_hook = _converter.get_structure_hook(item_type)

    def structure_tuple(value: Any, _: Any) -> tuple[Any, ...]:
        if not isinstance(value, list):
            raise _Invalid(f"expected a list, got {_kind(value)}")
        items = []
        for index, item in enumerate(value):
            try:
                items.append(item_hook(item, item_type))
            except _Invalid as exc:
                raise exc.under(f"[{index}]") from None
        return tuple(items)

    return structure_tuple


# A valid value of each type, taken inline: the condition it meets, and what the field gets.
_FAST_PATHS: dict[Any, tuple[str, str]] = {
    str: ("type(v) is str", "v"),
    bool: ("type(v) is bool", "v"),
    int: (f"type(v) is int and 0 <= v <= {_MAX_COUNT}", "v"),
    float: (  # an integer, or a Decimal whose float is finite
        f"type(v) is int and 0 <= v <= {_MAX_COUNT}"
        " or type(v) is Decimal and v.is_finite() and v >= 0 and v.adjusted() < 300",
        "float(v)",
    ),
    LimitStatus | str: ("type(v) is str", "_STATUSES.get(v, v)"),
    Decimal: (f"type(v) is Decimal and v.is_finite() and v.adjusted() < {_MAX_MONEY_DIGITS}", "v"),
}


def _make_attrs_hook(cls: type[Any]) -> Callable[[Any, Any], Any]:
    """Generate the structuring function of one attrs class, as cattrs itself does.

    Straight-line code, one block per field, every key, hook and type bound once: a batch
    structures 120,000 of these, and a generic loop over a field plan costs twice as much.
    A valid value is taken in a few bytecodes; anything else (absent, null, to be converted,
    wrong) goes to :func:`_field`, which decides it as the rules say.
    """
    attrs.resolve_types(cls)
    names: dict[str, Any] = {
        "_Invalid": _Invalid, "_kind": _kind, "_cls": cls, "Decimal": Decimal, "_field": _field,
        "_STATUSES": _STATUSES,
    }
    lines = [
        "def structure_attrs(data, _):",
        "    if not isinstance(data, dict):",
        "        raise _Invalid(f'expected an object, got {_kind(data)}')",
        "    get = data.get",
    ]
    fields = attrs.fields(cls)
    # Positional arguments are cheapest, and possible when every field takes one by its name.
    positional = all(f.init and not f.kw_only and f.alias == f.name for f in fields)
    args = []
    for i, field in enumerate(fields):
        lines += _field_lines(i, field, names)
        args.append(f"a{i}" if positional else f"{field.alias}=a{i}")
    lines.append(f"    return _cls({', '.join(args)})")
    code = compile("\n".join(lines), f"<freddy_async structure {cls.__qualname__}>", "exec")
    exec(code, names)
    hook: Callable[[Any, Any], Any] = names["structure_attrs"]
    return hook


def _field_lines(i: int, field: attrs.Attribute[Any], names: dict[str, Any]) -> list[str]:
    """The block that reads field number ``i`` into ``a{i}``; binds what it calls in ``names``."""
    snake, camel = field.name, _camel(field.name)
    tp: Any = field.type
    optional = _admits_none(tp)
    rest = [arg for arg in typing.get_args(tp) if arg is not type(None)] if optional else []
    # "X | None": None is answered here and X's own hook is called directly, rather than
    # going through cattrs' generic Optional hook and its dispatch on every value.
    inner = rest[0] if len(rest) == 1 else tp
    names[f"_h{i}"] = _converter.get_structure_hook(inner)
    names[f"_t{i}"] = inner
    # snake_case first: the API's own spelling (its OpenAPI spec, its SDKs, its answers).
    lines = [f"    v = get({snake!r})"]
    if snake != camel:
        lines += ["    if v is None:", f"        v = get({camel!r})"]
    rare = f"_field(data, {snake!r}, {camel!r}, _h{i}, _t{i}, {optional}, {optional and inner is not tp})"
    if inner in _FAST_PATHS:
        # The common, valid value is taken inline; anything else goes to _field, which
        # converts it or says what is wrong with it.
        valid, value = _FAST_PATHS[inner]
        return [*lines, f"    if {valid}:", f"        a{i} = {value}", "    else:", f"        a{i} = {rare}"]
    where = f"{snake!r} if get({snake!r}) is not None else {camel!r}"
    return [
        *lines,
        "    if v is None:",
        f"        a{i} = {rare}",
        "    else:",
        "        try:",
        f"            a{i} = _h{i}(v, _t{i})",
        "        except _Invalid as exc:",
        f"            raise exc.under({where}) from None",
    ]


def _field(
    data: dict[str, Any], snake: str, camel: str, hook: Any, tp: Any, optional: bool, nullable: bool
) -> Any:
    """A field's value that is not plainly valid: absent, null, to be converted, or wrong.

    The snake_case key is read unless it is absent or null and the camelCase one is there.
    """
    key = snake if data.get(snake) is not None or camel not in data else camel
    if key not in data:
        if optional:
            return None
        also = f" (nor '{snake}')" if snake != camel else ""
        raise _Invalid(f"required field is missing{also}", camel)
    value = data[key]
    if value is None and nullable:
        return None
    try:
        return hook(value, tp)
    except _Invalid as exc:
        raise exc.under(key) from None


_converter = cattrs.Converter()
for _tp, _hook in (
    (int, _to_int),
    (float, _to_float),
    (Decimal, _to_decimal),
    (str, _to_str),
    (bool, _to_bool),
    (date, _to_date),
    (datetime, _to_datetime),
):
    _converter.register_structure_hook(_tp, _hook)
_converter.register_structure_hook_func(lambda tp: tp == (LimitStatus | str), _to_status)
_converter.register_structure_hook_factory(_is_homogeneous_tuple, _make_tuple_hook)
_converter.register_structure_hook_factory(attrs.has, _make_attrs_hook)

# Unstructuring gives plain snake_case JSON values; Decimal stays Decimal so nothing is rounded.
_converter.register_unstructure_hook_func(
    lambda tp: tp == (LimitStatus | str),
    lambda value: value.value if isinstance(value, LimitStatus) else value,
)
_converter.register_unstructure_hook(Decimal, lambda value: value)
_converter.register_unstructure_hook(date, lambda value: value.isoformat())
_converter.register_unstructure_hook(datetime, lambda value: value.isoformat())


def structure(data: Any, cls: type[T]) -> T:
    """Build ``cls`` from decoded JSON, or raise ``ResponseValidationError`` naming the field."""
    return Structurer(cls)(data)


class Structurer(Generic[T]):
    """:func:`structure` for one class, its hook looked up once: how an endpoint reads its answers.

    Calling the hook directly spares every answer three calls (``Converter.structure``, its
    dispatch, and a ``functools.partial``).
    """

    __slots__ = ("_cls", "_hook")

    def __init__(self, cls: type[T]) -> None:
        self._cls = cls
        self._hook: Callable[[Any, Any], T] | None = None  # built on first use, as cattrs would

    def __call__(self, data: Any) -> T:
        hook = self._hook
        if hook is None:
            hook = self._hook = _converter.get_structure_hook(self._cls)
        try:
            return hook(data, self._cls)
        except _Invalid as exc:
            raise ResponseValidationError(
                f"{exc.message} (for {self._cls.__name__})", path=exc.path, body=clip(repr(data), 4096)
            ) from None


def unstructure(model: Any) -> Any:
    """Turn a model into plain JSON-ready values (snake_case keys, Decimal kept exact)."""
    return _converter.unstructure(model)


@attrs.frozen
class KeyPage:
    """One page of an organization's key list, whichever of the two documented shapes it came in.

    ``total`` (keys) and ``total_pages`` are what the page claims, ``None`` when it does not say
    (or says something that is no count).
    """

    keys: tuple[ApiKey, ...]
    total: int | None = None
    total_pages: int | None = None


def _count(value: Any) -> int | None:
    return value if type(value) is int and value >= 0 else None


def structure_key_page(data: Any) -> KeyPage:
    """Read a key-list page: ``{"keys", "total"}`` or ``{"api_keys", "pagination"}``.

    Whether more pages follow is for the caller to decide, from the keys served so far and the
    totals: never from the page size asked, which a server may cap or ignore.
    """
    if not isinstance(data, dict):
        raise ResponseValidationError(f"expected an object, got {_kind(data)}")
    field = "keys" if "keys" in data else "api_keys"
    if field not in data:
        raise ResponseValidationError("expected a 'keys' or 'api_keys' list", path="keys")
    keys = structure({field: data[field]}, _KeyList).items(field)

    total: Any = data.get("total")
    total_pages: Any = None
    pagination = data.get("pagination")
    if isinstance(pagination, dict):
        total = pagination.get("total_count", pagination.get("totalCount", total))
        total_pages = pagination.get("total_pages", pagination.get("totalPages"))
    return KeyPage(keys, _count(total), _count(total_pages))


@attrs.frozen
class _KeyList:
    keys: tuple[ApiKey, ...] | None
    api_keys: tuple[ApiKey, ...] | None

    def items(self, field: str) -> tuple[ApiKey, ...]:
        found = self.keys if field == "keys" else self.api_keys
        return found or ()
