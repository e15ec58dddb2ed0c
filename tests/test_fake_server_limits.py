"""FakeFreddyServer limits like real servers do: three algorithms, four header dialects.

The limiter classes are tested alone on a hand-moved clock; the server over loopback with
plain aiohttp inside ``instant_retries()``, where time is virtual: it stands still while a
test sends requests, and moves only when the test sleeps through ``_clock.sleep``. So every
count here is exact, and nothing waits for real.
"""

from __future__ import annotations

import email.utils
import json
import math
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from multidict import CIMultiDictProxy

from freddy_async import _clock
from freddy_async.testing import FakeFreddyServer, instant_retries
from freddy_async.testing.__main__ import main
from freddy_async.testing._faults import FixedWindow, Limiter, SlidingWindow, TokenBucket


class HandClock:
    """A clock that moves only when the test moves it."""

    def __init__(self, start: float = 0.0) -> None:
        self.time = start

    def __call__(self) -> float:
        return self.time


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def virtual() -> Iterator[None]:
    with instant_retries():
        yield


@dataclass
class Answer:
    status: int
    headers: CIMultiDictProxy[str]
    body: Any


async def get(
    http: aiohttp.ClientSession, server: FakeFreddyServer, key: int = 0, path: str = ""
) -> Answer:
    key_id = server.key_ids[key]
    url = path or f"/v1/analytics/api-keys/usage/{server.org_id}/{key_id}?year=2025&month=1"
    async with http.get(server.base_url + url, headers={"X-API-Key": server.api_key}) as r:
        text = await r.text()
        return Answer(r.status, r.headers, json.loads(text) if text else None)


async def statuses(http: aiohttp.ClientSession, server: FakeFreddyServer, count: int) -> list[int]:
    return [(await get(http, server)).status for _ in range(count)]


async def advance(seconds: float) -> None:
    """Move virtual time on: the only way time passes in these tests."""
    await _clock.sleep(seconds, "pace")


def aligned_skew(phase: float, window: float = 1.0) -> float:
    """A clock_skew that puts the server's clock ``phase`` seconds into a window, now."""
    wall = _clock.wall()
    return (math.floor(wall / window) + 10) * window + phase - wall


def server_now(server: FakeFreddyServer) -> float:
    return _clock.wall() + server.clock_skew


# -- the limiters alone, on a hand-moved clock --------------------------------------------


def test_token_bucket_takes_its_capacity_then_refills_at_the_rate() -> None:
    clock = HandClock()
    bucket = TokenBucket(60, 60.0, clock, capacity=3)  # a token a second
    verdicts = [bucket.take() for _ in range(4)]
    assert [v.accepted for v in verdicts] == [True, True, True, False]
    assert [v.remaining for v in verdicts] == [2, 1, 0, 0]
    # Full again while tokens are left; the next whole token once none is.
    assert [v.reset_after for v in verdicts] == [1.0, 2.0, 1.0, 1.0]
    assert verdicts[-1].retry_after == 1.0
    clock.time = 0.5
    assert bucket.take().retry_after == 0.5
    clock.time = 1.0
    assert bucket.take().accepted
    clock.time = 100.0
    assert [bucket.take().remaining for _ in range(3)] == [2, 1, 0]


def test_fixed_window_counts_per_aligned_window() -> None:
    clock = HandClock(1000.25)
    window = FixedWindow(5, 1.0, clock)
    verdicts = [window.take() for _ in range(6)]
    assert [v.accepted for v in verdicts] == [True] * 5 + [False]
    assert [v.remaining for v in verdicts] == [4, 3, 2, 1, 0, 0]
    assert {v.reset_after for v in verdicts} == {0.75}  # the window's end, 1001
    assert verdicts[-1].retry_after == 0.75
    clock.time = 1001.0  # the count restarts at the boundary, not a second after the first
    assert sum(window.take().accepted for _ in range(6)) == 5


def test_sliding_window_admits_while_fewer_than_quota_in_the_last_window() -> None:
    clock = HandClock()
    log = SlidingWindow(3, 10.0, clock)
    assert log.take().reset_after == 10.0  # only this request logged: it leaves in 10 s
    clock.time = 2.0
    assert log.take().reset_after == 8.0
    clock.time = 4.0
    third = log.take()
    assert (third.accepted, third.remaining, third.reset_after) == (True, 0, 6.0)
    refused = log.take()
    assert (refused.accepted, refused.retry_after) == (False, 6.0)
    clock.time = 10.0  # the first request leaves; refused ones were never logged
    again = log.take()
    assert (again.accepted, again.remaining, again.reset_after) == (True, 0, 2.0)
    assert not log.take().accepted
    clock.time = 100.0
    assert log.take().reset_after == 10.0


def greedy_rate(limiter: Limiter, clock: HandClock, seconds: float, step: float) -> float:
    """Requests a second accepted by a caller that asks until refused, every ``step``."""
    start, accepted = clock.time, 0
    for tick in range(1, round(seconds / step) + 1):
        clock.time = start + tick * step
        while limiter.take().accepted:
            accepted += 1
    return accepted / seconds


Factory = Callable[[HandClock, float], Limiter]
FACTORIES: dict[str, Factory] = {
    # 25 requests per 1-second window, i.e. 1500 a minute; the other consumer at share * 25/s.
    "token_bucket": lambda clock, shared: TokenBucket(
        25, 1.0, clock, capacity=25, shared_rate=shared
    ),
    "fixed_window": lambda clock, shared: FixedWindow(25, 1.0, clock, shared_rate=shared),
    "sliding_window": lambda clock, shared: SlidingWindow(25, 1.0, clock, shared_rate=shared),
}


@pytest.mark.parametrize("algorithm", FACTORIES)
@pytest.mark.parametrize("share", [0.0, 0.2, 0.6])
def test_shared_quota_leaves_the_rest_of_the_limit(algorithm: str, share: float) -> None:
    clock = HandClock(5000.1)
    limiter = FACTORIES[algorithm](clock, share * 25)
    rate = greedy_rate(limiter, clock, seconds=400.0, step=0.05)
    # Over many seconds, the start-up burst hardly counts.
    assert rate == pytest.approx((1 - share) * 25, rel=0.01)


@pytest.mark.parametrize("algorithm", FACTORIES)
def test_waiting_the_retry_after_always_finds_room(algorithm: str) -> None:
    clock = HandClock(7000.3)
    limiter = FACTORIES[algorithm](clock, 0.3 * 25)
    refusals = 0
    for step, burst in [(0.0, 3), (0.01, 30), (0.3, 10), (1.7, 40), (0.0, 1), (0.5, 20)] * 30:
        clock.time += step
        for _ in range(burst):
            verdict = limiter.take()
            if not verdict.accepted:
                refusals += 1
                assert verdict.remaining == 0
                assert verdict.retry_after > 0
                clock.time += verdict.retry_after
                assert limiter.take().accepted
                break
    assert refusals > 30


def test_the_shared_quota_is_accounted_lazily_even_after_a_long_idle_stretch() -> None:
    clock = HandClock()
    # The other consumer sends every 2 s (from t=2); after a long quiet, 5 of its requests are
    # in the last 10 s: ours makes 6 of 10.
    log = SlidingWindow(10, 10.0, clock, shared_rate=0.5)
    clock.time = 1_000_000.5
    assert log.take().remaining == 4
    window = FixedWindow(10, 10.0, clock, shared_rate=0.5)  # its requests at ...002.5, 004.5, ...
    clock.time = 2_000_009.0  # in the window from 2_000_000: 5, at ...000.5 to ...008.5
    assert window.take().remaining == 4


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda c: TokenBucket(0.5, 1.0, c, capacity=1), "quota"),
        (lambda c: TokenBucket(5, 1.0, c, capacity=0.5), "capacity"),
        (lambda c: TokenBucket(5, 0.0, c, capacity=1), "window"),
        (lambda c: TokenBucket(5, 1.0, c, capacity=1, shared_rate=5), "shared_rate"),
        (lambda c: FixedWindow(2, 1.0, c, shared_rate=2.5), "shared_rate"),
        (lambda c: SlidingWindow(2.5, 1.0, c, shared_rate=2), "room"),
    ],
)
def test_limiters_refuse_impossible_limits(
    make: Callable[[HandClock], Limiter], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        make(HandClock())


# -- the server, on virtual time ----------------------------------------------------------


@pytest.mark.usefixtures("virtual")
async def test_token_bucket_counts_exactly_and_refills_on_virtual_time(
    http: aiohttp.ClientSession,
) -> None:
    # A token a second: in real time a test could never count this exactly.
    async with FakeFreddyServer(
        keys=1, requests_per_minute=60, rate_limit_burst=3, clock_skew=aligned_skew(0.25)
    ) as server:
        now = server_now(server)
        answers = [await get(http, server) for _ in range(4)]
        assert [a.status for a in answers] == [200, 200, 200, 429]
        assert [a.headers["X-RateLimit-Limit"] for a in answers] == ["60"] * 4
        assert [a.headers["X-RateLimit-Remaining"] for a in answers] == ["2", "1", "0", "0"]
        resets = [int(a.headers["X-RateLimit-Reset"]) for a in answers]
        assert resets == [math.ceil(now + d) for d in (1, 2, 1, 1)]
        assert answers[-1].headers["Retry-After"] == "1"
        assert answers[-1].body["error"]["details"] == {
            "organization_id": server.org_id,
            "retry_after": 1,
        }
        await advance(1.0)
        assert await statuses(http, server, 2) == [200, 429]
        await advance(3600.0)  # an hour of virtual time, no real wait: full, not overflowing
        assert await statuses(http, server, 4) == [200, 200, 200, 429]
        assert server.rate_limited_count == 3


@pytest.mark.usefixtures("virtual")
async def test_fixed_window_admits_the_quota_per_window(http: aiohttp.ClientSession) -> None:
    async with FakeFreddyServer(
        keys=1,
        requests_per_minute=1500,
        rate_limit_window=1,
        rate_limit_algorithm="fixed_window",
        rate_limit_headers="ietf",
        clock_skew=aligned_skew(0.25),
    ) as server:
        answers = [await get(http, server) for _ in range(26)]
        assert [a.status for a in answers] == [200] * 25 + [429]
        assert [a.headers["RateLimit-Remaining"] for a in answers] == [
            str(n) for n in range(24, -1, -1)
        ] + ["0"]
        for answer in answers:
            assert answer.headers["RateLimit-Limit"] == "25"
            assert answer.headers["RateLimit-Policy"] == "25;w=1"
            assert answer.headers["RateLimit-Reset"] == "1"  # 0.75 s to the window's end
            assert "X-RateLimit-Limit" not in answer.headers
        assert answers[-1].headers["Retry-After"] == "1"
        await advance(1.0)
        assert await statuses(http, server, 26) == [200] * 25 + [429]


@pytest.mark.usefixtures("virtual")
async def test_fixed_windows_follow_the_servers_skewed_clock(http: aiohttp.ClientSession) -> None:
    async with FakeFreddyServer(
        keys=1,
        requests_per_minute=2,
        rate_limit_algorithm="fixed_window",
        clock_skew=aligned_skew(59.5, 60.0),  # half a second before a minute turns
    ) as server:
        end = math.ceil(server_now(server))
        answers = [await get(http, server) for _ in range(3)]
        assert [a.status for a in answers] == [200, 200, 429]
        assert {a.headers["X-RateLimit-Reset"] for a in answers} == {str(end)}
        assert answers[-1].headers["Retry-After"] == "1"  # 0.5 s, rounded up
        await advance(0.5)
        assert await statuses(http, server, 3) == [200, 200, 429]


@pytest.mark.usefixtures("virtual")
async def test_sliding_window_frees_room_as_requests_leave(http: aiohttp.ClientSession) -> None:
    async with FakeFreddyServer(
        keys=1,
        requests_per_minute=18,
        rate_limit_window=10,
        rate_limit_algorithm="sliding_window",
        rate_limit_headers="ietf-structured",
    ) as server:
        seen = [(await get(http, server)).headers["RateLimit"]]
        for _ in range(2):
            await advance(2.0)
            seen.append((await get(http, server)).headers["RateLimit"])
        refused = await get(http, server)
        assert seen == ['"default";r=2;t=10', '"default";r=1;t=8', '"default";r=0;t=6']
        assert refused.status == 429
        assert refused.headers["RateLimit"] == '"default";r=0;t=6'
        assert refused.headers["RateLimit-Policy"] == '"default";q=3;w=10'
        assert refused.headers["Retry-After"] == "6"
        await advance(6.0)  # exactly the Retry-After: the first request has left
        again = await get(http, server)
        assert (again.status, again.headers["RateLimit"]) == (200, '"default";r=0;t=2')
        refused = await get(http, server)
        assert (refused.status, refused.headers["Retry-After"]) == (429, "2")


@pytest.mark.usefixtures("virtual")
@pytest.mark.parametrize(
    ("reset", "scale"), [("epoch", 1), ("epoch-ms", 1000), ("delta", None)]
)
async def test_x_ratelimit_reset_formats(
    http: aiohttp.ClientSession, reset: str, scale: int | None
) -> None:
    async with FakeFreddyServer(
        keys=1,
        requests_per_minute=60,
        rate_limit_burst=3,
        rate_limit_reset=reset,  # type: ignore[arg-type]
        clock_skew=aligned_skew(0.25),
    ) as server:
        now = server_now(server)
        # A token a second: full again 1 s, then 2 s from now; then a whole token in 1 s.
        answers = [await get(http, server) for _ in range(3)]
        texts = [a.headers["X-RateLimit-Reset"] for a in answers]
        if scale is None:
            assert texts == ["1", "2", "1"]
        else:  # rounded up: the second, or the millisecond
            assert texts == [str(math.ceil((now + d) * scale)) for d in (1, 2, 1)]


@pytest.mark.usefixtures("virtual")
@pytest.mark.parametrize(
    ("options", "limit", "policy"),
    [
        ({"requests_per_minute": 90, "rate_limit_window": 1}, "1.5", "1.5;w=1"),
        ({"requests_per_minute": 240, "rate_limit_window": 0.5}, "2", "2;w=0.5"),
        ({"requests_per_minute": 100}, "100", "100;w=60"),
    ],
)
async def test_quota_and_window_are_integers_when_whole(
    http: aiohttp.ClientSession, options: dict[str, Any], limit: str, policy: str
) -> None:
    async with FakeFreddyServer(keys=1, rate_limit_headers="ietf", **options) as server:
        answer = await get(http, server)
        assert answer.headers["RateLimit-Limit"] == limit
        assert answer.headers["RateLimit-Policy"] == policy


@pytest.mark.usefixtures("virtual")
async def test_no_budget_headers_but_still_retry_after(http: aiohttp.ClientSession) -> None:
    async with FakeFreddyServer(
        keys=1, requests_per_minute=1, rate_limit_burst=1, rate_limit_headers="none"
    ) as server:
        ok, refused = await get(http, server), await get(http, server)
        assert (ok.status, refused.status) == (200, 429)
        for answer in (ok, refused):
            assert not [h for h in answer.headers if "ratelimit" in h.lower()]
        assert refused.headers["Retry-After"] == "60"


def retry_after_of(answer: Answer, server: FakeFreddyServer) -> float | None:
    """The wait the answer asks for, in seconds, from whichever header carries it."""
    if "retry-after-ms" in answer.headers:
        return int(answer.headers["retry-after-ms"]) / 1000
    text = answer.headers.get("Retry-After")
    if text is None:
        return None
    if text.replace(".", "").isdigit():
        return float(text)
    return email.utils.parsedate_to_datetime(text).timestamp() - server_now(server)


@pytest.mark.usefixtures("virtual")
@pytest.mark.parametrize(
    ("fmt", "header", "value", "detail"),
    [
        ("seconds", "Retry-After", "1", "1"),
        ("fraction", "Retry-After", "0.5", "0.5"),
        ("ms", "retry-after-ms", "500", "0.5"),
        ("http-date", "Retry-After", None, "1"),
        ("none", None, None, None),
    ],
)
async def test_retry_after_formats_round_up_and_waiting_them_finds_room(
    http: aiohttp.ClientSession, fmt: str, header: str | None, value: str | None, detail: str | None
) -> None:
    async with FakeFreddyServer(
        keys=1,
        requests_per_minute=120,
        rate_limit_burst=1,
        retry_after_format=fmt,  # type: ignore[arg-type]
        clock_skew=aligned_skew(0.25),
    ) as server:
        now = server_now(server)
        assert await statuses(http, server, 1) == [200]
        refused = await get(http, server)
        assert refused.status == 429
        waits = {h for h in ("Retry-After", "retry-after-ms") if h in refused.headers}
        assert waits == ({header} if header else set())
        if fmt == "http-date":  # the server's clock, 0.5 s on, rounded up to the second
            value = email.utils.formatdate(math.ceil(now + 0.5), usegmt=True)
        if header:
            assert refused.headers[header] == value
        details = refused.body["error"]["details"]
        assert details.get("retry_after") == (None if detail is None else json.loads(detail))
        wait = retry_after_of(refused, server)
        if wait is not None:
            await advance(wait)
            assert await statuses(http, server, 1) == [200]


@pytest.mark.usefixtures("virtual")
async def test_every_answer_carries_the_servers_own_date(http: aiohttp.ClientSession) -> None:
    async with FakeFreddyServer(keys=1, clock_skew=3600.0) as server:
        expected = email.utils.formatdate(_clock.wall() + 3600.0, usegmt=True)
        ok = await get(http, server)
        missing = await get(http, server, path="/v1/nowhere")
        listing = await get(http, server, path=f"/v1/organizations/{server.org_id}/api-keys")
        assert [a.status for a in (ok, missing, listing)] == [200, 404, 200]
        assert {a.headers["Date"] for a in (ok, missing, listing)} == {expected}
        await advance(86400.0)  # a virtual day later, the Date says so
        expected = email.utils.formatdate(_clock.wall() + 3600.0, usegmt=True)
        assert (await get(http, server)).headers["Date"] == expected


@pytest.mark.usefixtures("virtual")
async def test_clock_skew_moves_epoch_resets(http: aiohttp.ClientSession) -> None:
    resets = []
    aligned = aligned_skew(0.25)
    for skew in (aligned, aligned + 3600.0):
        async with FakeFreddyServer(
            keys=1, requests_per_minute=60, rate_limit_burst=2, clock_skew=skew
        ) as server:
            resets.append(int((await get(http, server)).headers["X-RateLimit-Reset"]))
    assert resets[1] - resets[0] == 3600


@pytest.mark.usefixtures("virtual")
async def test_shared_quota_through_the_server(http: aiohttp.ClientSession) -> None:
    async with FakeFreddyServer(
        keys=1, requests_per_minute=600, rate_limit_burst=10, shared_quota=0.5
    ) as server:
        accepted = 0
        for _ in range(50):
            while (await get(http, server)).status == 200:
                accepted += 1
            await advance(1.0)
        # The burst, then 5 of the 10 a second: the other consumer has the rest.
        assert accepted == 10 + 49 * 5


@pytest.mark.usefixtures("virtual")
async def test_exhausted_keys_answer_a_spending_limit_not_throttling(
    http: aiohttp.ClientSession,
) -> None:
    async with FakeFreddyServer(keys=2, requests_per_minute=60, rate_limit_burst=2) as server:
        spent = server.key_ids[0]
        server.exhausted_keys = {spent}
        answers = [await get(http, server, key=0) for _ in range(3)]
        for answer in answers:
            assert answer.status == 429
            assert answer.headers["Retry-After"] == "86400"
            assert "X-RateLimit-Remaining" not in answer.headers
            error = answer.body["error"]
            assert error["code"] == "USAGE_LIMIT_EXCEEDED"
            assert error["details"] == {"api_key_id": spent, "organization_id": server.org_id}
        # The rate limit was never touched: the other key still has the whole burst.
        other = [await get(http, server, key=1) for _ in range(3)]
        assert [a.status for a in other] == [200, 200, 429]
        assert other[0].headers["X-RateLimit-Remaining"] == "1"
        assert (server.spending_limited_count, server.rate_limited_count) == (3, 1)
        server.retry_after_format = "ms"
        answer = await get(http, server, key=0)
        assert answer.headers["retry-after-ms"] == "86400000"
        server.reset_counters()
        assert server.spending_limited_count == 0


@pytest.mark.usefixtures("virtual")
async def test_limit_options_can_be_changed_on_a_running_server(
    http: aiohttp.ClientSession,
) -> None:
    async with FakeFreddyServer(keys=1, requests_per_minute=60, rate_limit_burst=1) as server:
        assert await statuses(http, server, 2) == [200, 429]
        server.rate_limit_headers = "ietf-structured"
        assert "RateLimit" in (await get(http, server)).headers
        # A new shape of limit starts the quota afresh.
        server.rate_limit_algorithm = "sliding_window"
        server.rate_limit_window = 2
        assert await statuses(http, server, 3) == [200, 200, 429]
        with pytest.raises(ValueError, match="rate_limit_window"):
            server.rate_limit_window = 0
        assert server.rate_limit_window == 2
        with pytest.raises(ValueError, match="quota"):
            server.requests_per_minute = 20  # less than one request per 2-second window
        assert server.requests_per_minute == 60
        server.requests_per_minute = None
        answer = await get(http, server)
        assert answer.status == 200
        assert "RateLimit" not in answer.headers


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"rate_limit_algorithm": "leaky_bucket"}, "rate_limit_algorithm"),
        ({"rate_limit_window": 0}, "rate_limit_window"),
        ({"rate_limit_window": -1.0}, "rate_limit_window"),
        ({"rate_limit_window": math.inf}, "rate_limit_window"),
        ({"rate_limit_headers": "draft-7"}, "rate_limit_headers"),
        ({"rate_limit_reset": "iso"}, "rate_limit_reset"),
        ({"retry_after_format": "float"}, "retry_after_format"),
        ({"shared_quota": 1.0}, "shared_quota"),
        ({"shared_quota": -0.1}, "shared_quota"),
        ({"clock_skew": math.nan}, "clock_skew"),
        ({"exhausted_keys": "ak_1"}, "exhausted_keys"),
        ({"exhausted_keys": [""]}, "exhausted_keys"),
        ({"requests_per_minute": 30, "rate_limit_window": 1}, "at least 1"),
        (
            {
                "requests_per_minute": 120,
                "rate_limit_window": 1,
                "rate_limit_algorithm": "fixed_window",
                "shared_quota": 0.6,
            },
            "shared_quota",
        ),
    ],
)
def test_bad_limit_options_raise_value_error(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        FakeFreddyServer(**options)


def test_a_token_bucket_may_share_most_of_a_small_quota() -> None:
    server = FakeFreddyServer(requests_per_minute=60, rate_limit_window=1, shared_quota=0.9)
    assert server.shared_quota == 0.9


def test_standalone_command_checks_the_limit_flags(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--requests-per-minute", "30", "--rate-limit-window", "1"])
    assert exit_info.value.code == 2
    assert "at least 1" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--rate-limit-algorithm", "leaky_bucket"])
    assert "invalid choice" in capsys.readouterr().err


async def test_a_fixed_windows_epoch_reset_is_its_end_even_as_the_clock_moves(
    http: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    # In real time the clock moves between reading it for the decision and for the header; a
    # window ending on a whole second must still be sent as that second, not the next one.
    ticks = iter(1_800_000_000.99 + i * 0.003 for i in range(1_000_000))
    monkeypatch.setattr(_clock, "wall", lambda: next(ticks))
    server = FakeFreddyServer(
        keys=1, requests_per_minute=1500, rate_limit_window=1.0, rate_limit_algorithm="fixed_window"
    )
    async with server:
        url = f"{server.base_url}/v1/analytics/api-keys/usage/{server.org_id}/{server.key_ids[0]}"
        resets = []
        for _ in range(3):
            async with http.get(url, headers={"X-API-Key": server.api_key}) as response:
                resets.append(response.headers["X-RateLimit-Reset"])
    assert resets[0] == "1800000001"
