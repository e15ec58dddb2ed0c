"""FakeFreddyServer misbehaving on purpose, its life cycle, the standalone command and the plugin.

Driven with plain aiohttp. Nothing here waits for real beyond a few milliseconds, and no
assertion depends on how long something took.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from freddy_async.testing import FakeFreddyServer, FaultCounts
from freddy_async.testing.__main__ import main

# Only safety nets against hanging, generous for loaded CI machines; never what a test asserts.
GUARD = 30.0
SUBPROCESS_GUARD = 120.0


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def usage_url(server: FakeFreddyServer, key_id: str, month: int = 1, org: str = "") -> str:
    org_id = org or server.org_id
    return f"{server.base_url}/v1/analytics/api-keys/usage/{org_id}/{key_id}?year=2025&month={month}"


def headers(server: FakeFreddyServer) -> dict[str, str]:
    return {"X-API-Key": server.api_key}


async def status_of(http: aiohttp.ClientSession, server: FakeFreddyServer, url: str) -> int:
    async with http.get(url, headers=headers(server)) as response:
        await response.read()
        return response.status


# -- rate limits ---------------------------------------------------------------------------


async def test_rate_limit_answers_429_after_the_burst(http: aiohttp.ClientSession) -> None:
    # One request a minute: nothing refills while the test runs, so the counts are exact.
    async with FakeFreddyServer(keys=2, requests_per_minute=1, rate_limit_burst=3) as server:
        answers = []
        for _ in range(8):
            async with http.get(usage_url(server, server.key_ids[0]), headers=headers(server)) as r:
                answers.append((r.status, dict(r.headers), json.loads(await r.text())))
        assert [status for status, _, _ in answers] == [200] * 3 + [429] * 5
        assert server.rate_limited_count == 5
        assert [h["X-RateLimit-Remaining"] for _, h, _ in answers[:3]] == ["2", "1", "0"]
        now = time.time()
        for status, head, body in answers:
            assert head["X-RateLimit-Limit"] == "1"
            assert int(head["X-RateLimit-Reset"]) >= now - 1
            if status == 429:
                assert head["X-RateLimit-Remaining"] == "0"
                assert 0 < float(head["Retry-After"]) <= 60
                assert body["error"]["code"] == "RATE_LIMIT_EXCEEDED"
                assert body["error"]["status"] == 429
            else:
                assert "Retry-After" not in head
        # Rate-limited attempts are still hits of that key and month.
        assert server.fetch_count(server.key_ids[0], 2025, 1) == 8


async def test_rate_limit_is_per_organization(http: aiohttp.ClientSession) -> None:
    async with FakeFreddyServer(
        keys=1, extra_orgs={"org_two": 1}, requests_per_minute=1, rate_limit_burst=1
    ) as server:
        first, second = server.key_ids[0], server.key_ids_for("org_two")[0]
        assert await status_of(http, server, usage_url(server, first)) == 200
        assert await status_of(http, server, usage_url(server, first)) == 429
        assert await status_of(http, server, usage_url(server, second, org="org_two")) == 200
        assert await status_of(http, server, usage_url(server, second, org="org_two")) == 429
        daily = f"{server.base_url}/v1/analytics/api-keys/daily/{server.org_id}"
        assert await status_of(http, server, daily) == 429
        # The key listing is not an analytics endpoint: it is not limited.
        listing = f"{server.base_url}/v1/organizations/{server.org_id}/api-keys"
        assert await status_of(http, server, listing) == 200
        assert server.rate_limited_count == 3


@pytest.mark.parametrize(("retry_after_format", "most"), [("seconds", 1.0), ("fraction", 0.5)])
async def test_retry_after_rounds_up_and_default_burst_is_one_second(
    http: aiohttp.ClientSession, retry_after_format: str, most: float
) -> None:
    async with FakeFreddyServer(
        keys=1, requests_per_minute=120, retry_after_format=retry_after_format  # type: ignore[arg-type]
    ) as server:
        assert server.rate_limit_burst == 2
        statuses = []
        for _ in range(3):
            async with http.get(usage_url(server, server.key_ids[0]), headers=headers(server)) as r:
                statuses.append(r.status)
                retry_after = r.headers.get("Retry-After")
        if statuses[-1] == 429:  # a very slow machine may have refilled a token meanwhile
            assert retry_after is not None
            # Whole seconds by default (what the API's own SDKs parse); the fraction on request.
            assert 0 < float(retry_after) <= most
            assert retry_after_format != "seconds" or retry_after == "1"
        assert statuses[:2] == [200, 200]


# -- faults --------------------------------------------------------------------------------


async def test_error_rate_gives_500_502_and_503(http: aiohttp.ClientSession) -> None:
    async with FakeFreddyServer(keys=3, error_rate=1.0) as server:
        seen: dict[int, list[tuple[str, bytes]]] = {}
        for month in range(1, 13):
            for key_id in server.key_ids:
                async with http.get(usage_url(server, key_id, month), headers=headers(server)) as r:
                    body = await r.read()
                    seen.setdefault(r.status, []).append((r.content_type, body))
        assert set(seen) == {500, 502, 503}
        for content_type, body in seen[500]:
            assert content_type == "application/json"
            assert json.loads(body)["error"]["code"] == "INTERNAL_ERROR"
        for content_type, body in seen[502]:
            assert content_type == "text/html"
            assert b"502 Bad Gateway" in body
        assert {body == b"" for _, body in seen[503]} == {True, False}
        for _, body in seen[503]:
            if body:
                assert json.loads(body)["error"]["type"] == "server_error"
        faults = server.faults
        assert (faults.error_500, faults.error_502, faults.error_503) == (
            len(seen[500]),
            len(seen[502]),
            len(seen[503]),
        )
        assert faults.total == 36
        assert {r.fault for r in server.requests} == {"error_500", "error_502", "error_503"}


async def test_faults_come_after_authentication(http: aiohttp.ClientSession) -> None:
    async with FakeFreddyServer(keys=1, error_rate=1.0, drop_rate=1.0) as server:
        async with http.get(usage_url(server, server.key_ids[0])) as response:
            assert response.status == 401
        assert server.faults.total == 0


async def test_drop_closes_the_connection_unanswered(http: aiohttp.ClientSession) -> None:
    async with FakeFreddyServer(keys=1, drop_rate=1.0) as server:
        with pytest.raises(aiohttp.ServerDisconnectedError):
            await status_of(http, server, usage_url(server, server.key_ids[0]))
        # aiohttp itself may resend an idempotent request once after a disconnect.
        assert server.faults.dropped == server.request_count >= 1
        assert server.requests[-1].status is None
        assert server.requests[-1].fault == "dropped"


async def test_truncate_declares_the_full_length_and_cuts_the_body(
    http: aiohttp.ClientSession,
) -> None:
    async with FakeFreddyServer(keys=1, truncate_rate=1.0) as server:
        async with http.get(usage_url(server, server.key_ids[0]), headers=headers(server)) as r:
            assert r.status == 200
            assert int(r.headers["Content-Length"]) > 0
            with pytest.raises(aiohttp.ClientPayloadError):
                await r.read()
        assert server.faults.truncated == 1
        assert server.requests[-1].fault == "truncated"


async def test_fail_first_is_exact_per_distinct_request(http: aiohttp.ClientSession) -> None:
    async with FakeFreddyServer(keys=2, fail_first=2) as server:
        one, two = (usage_url(server, key_id) for key_id in server.key_ids)
        assert [await status_of(http, server, one) for _ in range(3)] == [503, 503, 200]
        assert [await status_of(http, server, two) for _ in range(3)] == [503, 503, 200]
        assert await status_of(http, server, one) == 200
        assert server.fetch_count(server.key_ids[0], 2025, 1) == 4
        assert server.faults.fail_first == 4
        server.reset_counters()
        assert await status_of(http, server, one) == 503


async def test_fault_draws_repeat_for_the_same_seed(http: aiohttp.ClientSession) -> None:
    runs = []
    for _ in range(2):
        async with FakeFreddyServer(keys=4, seed=9, error_rate=0.5) as server:
            urls = [usage_url(server, k, m) for k in server.key_ids for m in (1, 2, 3)]
            runs.append(await asyncio.gather(*(status_of(http, server, u) for u in urls)))
    assert runs[0] == runs[1]
    assert set(runs[0]) > {200}


async def test_latency_delays_every_answer_past_a_client_timeout(
    http: aiohttp.ClientSession,
) -> None:
    async with FakeFreddyServer(keys=1, latency=5.0) as server:
        with pytest.raises(asyncio.TimeoutError):
            async with http.get(
                f"{server.base_url}/nowhere", timeout=aiohttp.ClientTimeout(total=0.05)
            ):
                pass  # pragma: no cover - the timeout fires first


async def test_small_latency_still_answers(http: aiohttp.ClientSession) -> None:
    async with FakeFreddyServer(keys=1, latency=0.001) as server:
        assert await status_of(http, server, usage_url(server, server.key_ids[0])) == 200


async def test_slow_answer_goes_past_a_client_timeout(http: aiohttp.ClientSession) -> None:
    async with FakeFreddyServer(keys=1, slow_rate=1.0, slow_delay=60.0) as server:
        with pytest.raises(asyncio.TimeoutError):
            async with http.get(
                usage_url(server, server.key_ids[0]),
                headers=headers(server),
                timeout=aiohttp.ClientTimeout(total=0.05),
            ):
                pass  # pragma: no cover - the timeout fires first


async def test_stop_cuts_off_a_slow_answer(http: aiohttp.ClientSession) -> None:
    # The client sees the connection go away, and the server leaves no task or warning behind.
    server = FakeFreddyServer(keys=1, slow_rate=1.0, slow_delay=60.0)
    await server.start()
    pending = asyncio.ensure_future(status_of(http, server, usage_url(server, server.key_ids[0])))
    await asyncio.wait_for(server.wait_for_requests(), GUARD)
    assert server.faults.slow == 1
    assert server.requests[0].fault == "slow"
    await server.stop()
    with pytest.raises(aiohttp.ClientConnectionError):
        await asyncio.wait_for(pending, GUARD)
    assert server.requests[0].status is None


async def test_stop_during_latency_leaves_nothing_behind(http: aiohttp.ClientSession) -> None:
    server = FakeFreddyServer(keys=1, latency=60.0)
    await server.start()
    pending = asyncio.ensure_future(status_of(http, server, f"{server.base_url}/"))
    await asyncio.wait_for(server.wait_for_requests(), GUARD)
    await server.stop()
    with pytest.raises(aiohttp.ClientConnectionError):
        await asyncio.wait_for(pending, GUARD)
    assert server.requests[0].status is None
    assert server.requests[0].fault is None  # cut off by the stop, not an injected fault
    assert server.faults.total == 0


def test_fault_counts_total_and_reset() -> None:
    counts = FaultCounts(error_500=2, dropped=1, slow=4)
    assert counts.total == 7
    counts.reset()
    assert counts == FaultCounts()


# -- life cycle and options ----------------------------------------------------------------


async def test_start_stop_and_explicit_port(http: aiohttp.ClientSession) -> None:
    server = FakeFreddyServer(keys=1)
    with pytest.raises(RuntimeError, match="not running"):
        _ = server.base_url
    assert "stopped" in repr(server)
    await server.start()
    try:
        with pytest.raises(RuntimeError, match="already running"):
            await server.start()
        assert server.port > 0
        assert server.base_url == f"http://127.0.0.1:{server.port}"
        assert server.api_key not in repr(server)
        port = server.port
    finally:
        await server.stop()
    await server.stop()  # stopping twice is harmless
    async with FakeFreddyServer(keys=1, port=port, api_key="k") as again:
        assert again.base_url == f"http://127.0.0.1:{port}"
        assert again.api_key == "k"
        assert await status_of(http, again, usage_url(again, again.key_ids[0])) == 200


@pytest.mark.parametrize(
    "options",
    [
        {"casing": "kebab"},
        {"list_shape": "items"},
        {"error_rate": 1.5},
        {"drop_rate": -0.1},
        {"latency": -1.0},
        {"fail_first": -1},
        {"requests_per_minute": 0},
        {"rate_limit_burst": 0.5},
        {"port": 70000},
        {"keys": -1},
        {"org_id": "org/x"},
        {"org_id": ""},
        {"api_key": ""},
        {"extra_orgs": {"org_demo": 2}},
    ],
)
def test_bad_options_raise_value_error(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - each case has its own message
        FakeFreddyServer(**options)


def test_generated_api_keys_differ() -> None:
    assert FakeFreddyServer().api_key != FakeFreddyServer().api_key


# -- the standalone command ----------------------------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
async def test_standalone_server_prints_its_address_and_stops_on_signal(
    sig: signal.Signals, http: aiohttp.ClientSession
) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "freddy_async.testing",
        "--port",
        "0",
        "--keys",
        "3",
        "--seed",
        "4",
        "--casing",
        "snake",
        "--invalid-params",
        "docs",
        "--error-rate",
        "0",
        # The rate-limit flags reach the server: a sliding window of 100 a second, IETF headers.
        *("--requests-per-minute", "6000", "--rate-limit-window", "1"),
        *("--rate-limit-algorithm", "sliding_window", "--rate-limit-headers", "ietf"),
        *("--rate-limit-reset", "delta", "--retry-after-format", "http-date"),
        *("--shared-quota", "0.1", "--clock-skew", "5", "--exhausted-key", "ak_spent"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        lines: dict[str, str] = {}
        while len(lines) < 3:
            line = await asyncio.wait_for(process.stdout.readline(), SUBPROCESS_GUARD)
            assert line, "the server exited before printing its address"
            name, _, value = line.decode().strip().partition("=")
            lines[name] = value
        base_url, api_key = lines["FREDDY_BASE_URL"], lines["FREDDY_API_KEY"]
        assert base_url.startswith("http://127.0.0.1:")
        assert not base_url.endswith(":0")
        assert lines["FREDDY_ORG_ID"] == "org_demo"
        expected = FakeFreddyServer(keys=3, seed=4)
        url = f"{base_url}/v1/analytics/api-keys/usage/org_demo/{expected.key_ids[2]}?year=2025"
        async with http.get(url + "&month=7", headers={"X-API-Key": api_key}) as response:
            body = json.loads(await response.text(), parse_float=Decimal)
            assert response.headers["RateLimit-Policy"] == "100;w=1"
        assert body == expected.expected_usage(expected.key_ids[2], 2025, 7)
        async with http.get(url + "&month=13", headers={"X-API-Key": api_key}) as response:
            assert response.status == 400  # the docs pages' envelope, as asked, not FastAPI's 422
            assert json.loads(await response.text())["error"]["code"] == "INVALID_REQUEST"
        spent = f"{base_url}/v1/analytics/api-keys/usage/org_demo/ak_spent"
        async with http.get(spent, headers={"X-API-Key": api_key}) as response:
            assert response.status == 429
            assert response.headers["Retry-After"].endswith(" GMT")
    finally:
        if process.returncode is None:
            process.send_signal(sig)
        _, stderr = await asyncio.wait_for(process.communicate(), SUBPROCESS_GUARD)
    assert process.returncode == 0, stderr.decode()
    assert b"Traceback" not in stderr


def test_standalone_command_rejects_bad_options(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--error-rate", "2"])
    assert exit_info.value.code == 2
    assert "error_rate" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--extra-org", "nokeys"])


# -- the plugin without pytest-asyncio -----------------------------------------------------


def test_plugin_skips_cleanly_without_pytest_asyncio(tmp_path: Path) -> None:
    # A package that fails to import stands in for a missing pytest-asyncio.
    (tmp_path / "hide" / "pytest_asyncio").mkdir(parents=True)
    (tmp_path / "hide" / "pytest_asyncio" / "__init__.py").write_text(
        "raise ImportError('pytest-asyncio is hidden for this test')\n"
    )
    (tmp_path / "test_user.py").write_text("def test_user(freddy_server):\n    pass\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "hide")}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-W", "error", "-p", "no:asyncio", "-p", "no:cacheprovider",
         "-rs", "-q", "test_user.py"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=SUBPROCESS_GUARD, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 skipped" in result.stdout
    assert "needs pytest-asyncio" in result.stdout


async def test_faults_can_be_switched_on_a_running_server(http: aiohttp.ClientSession) -> None:
    async with FakeFreddyServer(keys=1) as server:
        url = usage_url(server, server.key_ids[0])
        assert await status_of(http, server, url) == 200
        server.fail_first = 5  # the earlier, healthy attempt was not counted
        assert await status_of(http, server, url) == 503
        server.fail_first = 0
        assert await status_of(http, server, url) == 200


async def test_request_log_can_be_off(http: aiohttp.ClientSession) -> None:
    async with FakeFreddyServer(keys=1, log_requests=False) as server:
        for _ in range(3):
            await status_of(http, server, usage_url(server, server.key_ids[0]))
        assert server.request_count == 3
        assert server.requests == []
        assert server.fetch_count(server.key_ids[0], 2025, 1) == 3


def test_a_stopped_server_starts_again_on_another_loop() -> None:
    server = FakeFreddyServer(keys=1)

    async def once() -> int:
        async with server, aiohttp.ClientSession() as http:
            await status_of(http, server, usage_url(server, server.key_ids[0]))
            await asyncio.wait_for(server.wait_for_requests(server.request_count), GUARD)
            return server.request_count

    assert asyncio.run(once()) == 1
    assert asyncio.run(once()) == 2
