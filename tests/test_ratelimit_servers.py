"""A batch against every limiter the fake server has, on one virtual clock: exact and repeatable.

Client and server read the same virtual time inside ``instant_retries()``, so what is asserted
is not a timing but a count: how many 429s the server gave, how many months failed, and how much
virtual time the batch took against the ideal (the requests divided by the rate the server
grants this client).
"""

from __future__ import annotations

import pytest

from freddy_async import FreddyClient, YearMonth, _clock
from freddy_async.testing import FakeFreddyServer, instant_retries

ALGORITHMS = ["token_bucket", "fixed_window", "sliding_window"]
DIALECTS = ["x-ratelimit", "ietf", "ietf-structured", "none"]
KEYS = 100
MONTHS = YearMonth.range("2025-01", "2025-04")


async def run_batch(server: FakeFreddyServer) -> tuple[float, int, int]:
    """Fetch KEYS x MONTHS; return (virtual seconds taken, failed months, months fetched)."""
    return await run_batch_of(server, server.key_ids[:KEYS], MONTHS)


async def run_batch_of(
    server: FakeFreddyServer, keys: list[str], months: list[YearMonth]
) -> tuple[float, int, int]:
    async with FreddyClient(server.api_key, base_url=server.base_url) as client:
        started = _clock.now()
        failed = fetched = 0
        async for report in client.iter_api_key_usage(server.org_id, keys, months=months):
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
    elif not shared:
        assert share_429 <= 0.01
        assert taken <= 1.05 * ideal
    else:
        # Another consumer can take the room our pace counted on between an answer and our next
        # request: a quota renewed a request at a time (a bucket, a sliding window) shows that
        # only by a 429, after which the client leaves the other consumer more.
        assert share_429 <= 0.02
        assert taken <= 1.15 * ideal


@pytest.mark.parametrize(
    ("reset", "skew"),
    [("epoch", 0.0), ("delta", 0.0), ("epoch-ms", 0.0), ("epoch", 30.0), ("epoch-ms", -30.0)],
)
async def test_one_second_windows_are_read_as_such_whatever_the_reset_form(reset: str, skew: float) -> None:
    # "X-RateLimit-Limit: 25" with 1-second windows is 25 a second, not 25 a minute; a server
    # whose clock runs 30 s ahead (or behind) is read by its own Date header.
    server = FakeFreddyServer(
        keys=KEYS, requests_per_minute=25 * 60, rate_limit_window=1.0, rate_limit_algorithm="fixed_window",
        rate_limit_reset=reset, clock_skew=skew,  # type: ignore[arg-type]
    )
    with instant_retries():
        async with server:
            taken, failed, fetched = await run_batch(server)
    ideal = KEYS * len(MONTHS) / 25
    assert (failed, fetched) == (0, KEYS * len(MONTHS))
    assert server.rate_limited_count / server.request_count <= 0.01
    assert taken <= 1.05 * ideal


async def test_without_headers_a_fast_bucket_is_found_at_its_rate() -> None:
    # 25 a second and nothing said but a Retry-After in whole seconds: each 429 costs a second
    # (25 requests), so the limit must be found with few of them and then kept.
    server = FakeFreddyServer(
        keys=50, requests_per_minute=25 * 60, rate_limit_burst=1.67, rate_limit_headers="none"
    )
    months = YearMonth.range("2025-01", "2025-10")
    with instant_retries():
        async with server:
            taken, failed, fetched = await run_batch_of(server, server.key_ids, months)
    assert (failed, fetched) == (0, 500)
    assert server.rate_limited_count <= 8
    assert taken <= 1.3 * 500 / 25


async def test_the_documented_limit_100_a_minute() -> None:
    server = FakeFreddyServer(keys=15, requests_per_minute=100)  # the fake's default bucket
    with instant_retries():
        async with server, FreddyClient(server.api_key, base_url=server.base_url) as client:
            started = _clock.now()
            reports = [r async for r in client.iter_api_key_usage(server.org_id, months=MONTHS)]
            taken = _clock.now() - started
    assert sum(len(r.usage) for r in reports) == 60
    # At most the second request of the first wave, sent before the first budget came back.
    assert server.rate_limited_count <= 1
    assert taken <= 36 * 1.05  # 60 months at 100 a minute


async def test_the_documented_limit_shared_with_another_consumer() -> None:
    # 100 a minute in a bucket of 1.67, a quarter of it used by another service of the
    # organization: its tokens come every 0.8 s and the whole-second resets cannot say when.
    server = FakeFreddyServer(keys=15, requests_per_minute=100, rate_limit_burst=1.67, shared_quota=0.25)
    with instant_retries():
        async with server:
            taken, failed, fetched = await run_batch_of(server, server.key_ids, MONTHS)
    assert (failed, fetched) == (0, 60)
    assert server.rate_limited_count <= 3
    assert taken <= 1.1 * 60 / (100 / 60 * 0.75)


async def test_a_spent_key_costs_only_its_own_months() -> None:
    server = FakeFreddyServer(keys=20, requests_per_minute=6000)
    spent = server.key_ids[3]
    server.exhausted_keys = {spent}
    with instant_retries():
        async with server:
            year = YearMonth.range("2025-01", "2025-12")
            taken, failed, fetched = await run_batch_of(server, server.key_ids, year)
    assert (failed, fetched) == (12, 19 * 12)
    assert taken < 5  # 228 months at 100 a second; nothing waits for the spent key's day
