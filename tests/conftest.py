"""Shared fixtures, and a compatibility shim for aioresponses on aiohttp >= 3.14."""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import aiohttp
import aioresponses.core
import pytest
from aioresponses import aioresponses as Aioresponses

from freddy_async.testing import RecordedWait, instant_retries

# aioresponses 0.7.9 (the latest release) builds ClientResponse without the ``stream_writer``
# argument that aiohttp 3.14 made required (pnuckowski/aioresponses#289). Supplying a stand-in
# writer keeps us on the aiohttp release with the security fix instead of pinning an older one.
if "stream_writer" in inspect.signature(aiohttp.ClientResponse.__init__).parameters:

    class _CompatResponse(aiohttp.ClientResponse):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs.setdefault("stream_writer", SimpleNamespace(output_size=0))
            super().__init__(*args, **kwargs)

    aioresponses.core.ClientResponse = _CompatResponse  # type: ignore[attr-defined]


@pytest.fixture(autouse=True)
def _no_base_url_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests that mean the production URL get it, whatever the shell running them exports."""
    monkeypatch.delenv("FREDDY_BASE_URL", raising=False)


@pytest.fixture(autouse=True)
def _cache_in_a_temporary_directory(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """freddy-usage keeps a cache by default: under a test's own XDG_CACHE_HOME, never the user's."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("xdg-cache")))


@pytest.fixture
def mock() -> Iterator[Aioresponses]:
    """HTTP mocked with aioresponses: no request leaves the process."""
    with Aioresponses() as m:
        yield m


@pytest.fixture
def waits() -> Iterator[list[RecordedWait]]:
    """Every wait of the client made instant for the test, and recorded."""
    with instant_retries() as recorded:
        yield recorded
