"""A batch against every limiter the fake server has, on one virtual clock: exact and repeatable.

Client and server read the same virtual time inside ``instant_retries()``, so what is asserted
is not a timing but a count: how many 429s the server gave, how many months failed, and how much
virtual time the batch took against the ideal (the requests divided by the rate the server
grants this client).
"""

from __future__ import annotations

from typing import Any

import pytest

from freddy_async import FreddyClient, YearMonth, _clock
from freddy_async.testing import FakeFreddyServer, instant_retries

ALGORITHMS = ["token_bucket", "fixed_window", "sliding_window"]
DIALECTS = ["x-ratelimit", "ietf", "ietf-structured", "none"]
KEYS = 100
MONTHS = YearMonth.range("2025-01", "2025-04")


async def run_batch(server: FakeFreddyServer, **client_options: Any) -> tuple[float, int, int]:
    """Fetch KEYS x MONTHS; return (virtual seconds taken, failed months, months fetched)."""
    async with FreddyClient(server.api_key, base_url=server.base_url, **client_options) as client:
        started = _clock.now()
        failed = fetched = 0
        keys = server.key_ids[:KEYS]
        async for report in client.iter_api_key_usage(server.org_id, keys, months=MONTHS):
            failed += len(report.errors)
            fetched += len(report.usage)
        return _clock.now() - started, failed, fetched


@pytest.mark.parametrize("shared", [0.0, 0.25])
@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize("algorithm", ALGORITHMS)
async def test_a_batch_meets_the_limit_at_its_rate(algorithm: str, dialect: str, shared: float) -> None:
    per_second = 6.0  # 60 per 10-second window
    server = FakeFreddyServer(
        keys=KEYS,
        requests_per_minute=per_second * 60,
        rate_limit_window=10.0,
        rate_limit_algorithm=algorithm,  # type: ignore[arg-type]
        rate_limit_headers=dialect,  # type: ignore[arg-type]
        shared_quota=shared,
    )
    with instant_retries():
        async with server:
            taken, failed, fetched = await run_batch(server)
    jobs = KEYS * len(MONTHS)
    ideal = jobs / (per_second * (1 - shared))
    share_429 = server.rate_limited_count / server.request_count
    assert (failed, fetched) == (0, jobs)
    if dialect == "none":
        assert share_429 <= 0.10
        assert taken <= 1.3 * ideal
    else:
        assert share_429 <= 0.01
        assert taken <= 1.05 * ideal
