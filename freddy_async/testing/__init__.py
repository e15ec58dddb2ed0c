"""Test helpers for code that uses freddy_async.

:class:`FakeFreddyServer` is a real HTTP server on 127.0.0.1 that speaks the documented Freddy
analytics API with deterministic data and optional, seeded misbehaviour; the pytest plugin of
this package gives every test suite a ``freddy_server`` fixture. Run
``python -m freddy_async.testing --port 8080`` for a standalone server.

:func:`instant_retries` makes every wait of the client (retry backoff, ``Retry-After``, the
shared pause after a 429, pacing) return at once inside a ``with`` block, and yields the list of
:class:`RecordedWait` it skipped, so tests neither sleep nor monkeypatch.
"""

from freddy_async._clock import RecordedWait
from freddy_async._clock import instant_waits as instant_retries

from ._faults import FaultCounts
from ._oracle import ExpectedTotals, MonthLike
from ._server import FakeFreddyServer, RecordedRequest

__all__ = [
    "ExpectedTotals",
    "FakeFreddyServer",
    "FaultCounts",
    "MonthLike",
    "RecordedRequest",
    "RecordedWait",
    "instant_retries",
]
