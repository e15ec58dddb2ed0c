"""pytest plugin (entry point ``pytest11``): the ``freddy_server`` fixture.

pytest loads this module in every run where freddy_async is installed, so it must not require
pytest-asyncio: without it, the fixture skips the test that asks for it, saying what to install.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from ._server import FakeFreddyServer

__all__ = ["freddy_server"]

try:
    import pytest_asyncio
except ImportError:  # pragma: no cover - exercised in a subprocess without pytest-asyncio
    pytest_asyncio = None  # type: ignore[assignment]


if pytest_asyncio is not None:

    @pytest_asyncio.fixture
    async def freddy_server() -> AsyncIterator[FakeFreddyServer]:
        """A started ``FakeFreddyServer()`` with default options, stopped after the test."""
        async with FakeFreddyServer() as server:
            yield server

else:  # pragma: no cover - exercised in a subprocess without pytest-asyncio

    @pytest.fixture(name="freddy_server")
    def _freddy_server_needs_pytest_asyncio() -> None:
        """Skip the test: the async fixture needs pytest-asyncio."""
        pytest.skip("the freddy_server fixture needs pytest-asyncio: pip install pytest-asyncio")
