"""The public namespace: exactly these names, sorted, each one importable."""

from __future__ import annotations

import importlib

import pytest

import freddy_async

EXPECTED_ALL = [
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


def test_all_is_pinned() -> None:
    assert freddy_async.__all__ == EXPECTED_ALL


def test_all_is_sorted_and_unique() -> None:
    assert freddy_async.__all__ == sorted(freddy_async.__all__)
    assert len(set(freddy_async.__all__)) == len(freddy_async.__all__)


@pytest.mark.parametrize("name", EXPECTED_ALL)
def test_every_name_resolves(name: str) -> None:
    value = getattr(freddy_async, name)

    assert value is not None
    if name != "__version__":
        assert value.__name__ == name
        assert value.__module__.startswith("freddy_async._")


def test_star_import_gives_exactly_all() -> None:
    namespace: dict[str, object] = {}
    exec("from freddy_async import *", namespace)

    assert sorted(k for k in namespace if k != "__builtins__") == EXPECTED_ALL


def test_module_reimports_cleanly() -> None:
    module = importlib.import_module("freddy_async")

    assert module is freddy_async
    assert isinstance(freddy_async.__version__, str)
    assert freddy_async.__version__


@pytest.mark.parametrize(
    "name",
    [n for n in EXPECTED_ALL if n.endswith("Error")],
)
def test_every_exported_exception_is_a_freddy_error(name: str) -> None:
    assert issubclass(getattr(freddy_async, name), freddy_async.FreddyError)
