"""The freddy-usage command line, run as a subprocess against a FakeFreddyServer on loopback."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import signal
import sys
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs
import pytest

from freddy_async import ApiKeyUsage, DailyUsage, LimitStatus
from freddy_async._cli._console import Redacting
from freddy_async._cli._records import worst_status
from freddy_async._cli._writers import json_text
from freddy_async.testing import FakeFreddyServer

ORG = "org_cli"
EMPTY_ORG = "org_empty"
MONTHS = ["2025-01", "2025-02", "2025-03"]
MONTH_ARGS = ["--from", MONTHS[0], "--to", MONTHS[-1]]
TIMEOUT = 30.0
# `python -m freddy_async` for a test that sends it SIGINT. A process started with SIGINT ignored
# (a background job of a shell without job control, as some CI runners start theirs) passes that
# on, and Python then leaves Ctrl-C ignored: the command would run on to its end. This restores
# Python's own handler first, so the test sees what a user's Ctrl-C does.
INTERRUPTIBLE = [
    sys.executable, "-c",
    "import runpy, signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "runpy.run_module('freddy_async', run_name='__main__', alter_sys=True)",
]


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
async def server() -> AsyncIterator[FakeFreddyServer]:
    async with FakeFreddyServer(keys=6, org_id=ORG, seed=7, extra_orgs={EMPTY_ORG: 0}) as fake:
        yield fake


def _env(server: FakeFreddyServer | None, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FREDDY_")}
    if server is not None:
        env["FREDDY_API_KEY"] = server.api_key
        env["FREDDY_BASE_URL"] = server.base_url
    env.update(extra or {})
    return env


async def run_cli(
    *args: str, server: FakeFreddyServer | None = None, env: Mapping[str, str] | None = None,
    stdin: str | None = None,
) -> Result:
    """Run ``python -m freddy_async ARGS`` (``stdin`` on its stdin) and check that no output holds
    the API key."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "freddy_async", *args,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env=env if env is not None else _env(server),
    )
    data = stdin.encode() if stdin is not None else None
    out, err = await asyncio.wait_for(process.communicate(data), TIMEOUT)
    assert process.returncode is not None
    result = Result(process.returncode, out.decode(), err.decode())
    if server is not None:
        assert server.api_key not in result.stdout
        assert server.api_key not in result.stderr
    assert "Traceback" not in result.stderr
    return result


@dataclass
class Terminal:
    returncode: int
    shown: str  # what the terminal received, escape sequences included
    piped: str  # the other stream, a pipe


async def on_terminal(
    argv: Sequence[str], *, env: Mapping[str, str], columns: int, stream: str
) -> Terminal:
    """Run ``argv`` with ``stream`` ("stdout" or "stderr") on a terminal ``columns`` wide."""
    import fcntl
    import pty
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    received = bytearray()
    loop = asyncio.get_running_loop()

    def read() -> None:
        try:
            received.extend(os.read(master, 65536))
        except OSError:  # the other end closed
            loop.remove_reader(master)

    loop.add_reader(master, read)
    pipe = asyncio.subprocess.PIPE
    try:
        process = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.DEVNULL, env=env,
            stdout=slave if stream == "stdout" else pipe, stderr=slave if stream == "stderr" else pipe,
        )
        os.close(slave)
        out, err = await asyncio.wait_for(process.communicate(), TIMEOUT)
        loop.remove_reader(master)
        while True:  # what is still buffered; EIO once it is all read
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            if not chunk:
                break
            received.extend(chunk)
    finally:
        loop.remove_reader(master)
        os.close(master)
    assert process.returncode is not None
    piped = (err if stream == "stdout" else out).decode()
    return Terminal(process.returncode, received.decode(errors="replace"), piped)


def _flat_columns(cls: type[Any], prefix: str = "") -> list[str]:
    names = []
    for field in attrs.fields(attrs.resolve_types(cls)):
        if attrs.has(field.type):
            names.extend(_flat_columns(field.type, f"{prefix}{field.name}_"))
        else:
            names.append(prefix + field.name)
    return names


def _month(record: Mapping[str, Any]) -> str:
    return f"{int(record['year']):04d}-{int(record['month']):02d}"


# -- report ----------------------------------------------------------------------------------


async def test_csv_report_gives_the_exact_totals_of_the_seed(server: FakeFreddyServer) -> None:
    result = await run_cli("report", "--org", ORG, *MONTH_ARGS, "--format", "csv", server=server)

    assert result.returncode == 0, result.stderr
    reader = csv.DictReader(io.StringIO(result.stdout))
    rows = list(reader)
    assert reader.fieldnames is not None
    assert set(_flat_columns(ApiKeyUsage)) <= set(reader.fieldnames)
    assert {"usage_total_cost", "limit_status", "error_class", "error_code"} <= set(reader.fieldnames)
    assert len(rows) == len(server.key_ids) * len(MONTHS)
    assert {(r["api_key_id"], _month(r)) for r in rows} == {
        (k, m) for k in server.key_ids for m in MONTHS
    }
    assert all(r["error_class"] == "" for r in rows)
    assert sum(Decimal(r["usage_total_cost"]) for r in rows) == server.expected_total_cost(months=MONTHS)
    assert sum(int(r["usage_total_requests"]) for r in rows) == server.expected_total_requests(months=MONTHS)
    for key in server.key_ids:
        cost = sum(Decimal(r["usage_total_cost"]) for r in rows if r["api_key_id"] == key)
        assert cost == server.expected_total_cost([key], months=MONTHS)
    for row in rows:
        expected = server.expected_usage(row["api_key_id"], int(row["year"]), int(row["month"]))
        # The text is the server's: "12.50" stays "12.50", never a float's "12.5".
        assert row["usage_total_cost"] == str(expected["usage"]["total_cost"])
        assert row["limit_status"] == expected["limit"]["status"]
    assert "6 keys x 3 months" in result.stderr


async def test_jsonl_report_is_nested_and_exact(server: FakeFreddyServer) -> None:
    result = await run_cli("report", "--org", ORG, *MONTH_ARGS, "--format", "jsonl", server=server)

    assert result.returncode == 0, result.stderr
    records = [json.loads(line, parse_float=Decimal) for line in result.stdout.splitlines()]
    assert len(records) == len(server.key_ids) * len(MONTHS)
    for record in records:
        assert record["error"] is None
        expected = server.expected_usage(record["api_key_id"], record["year"], record["month"])
        assert record["api_key_name"] == expected["api_key_name"]
        assert record["usage"]["total_cost"] == expected["usage"]["total_cost"]
        assert record["usage"]["total_requests"] == expected["usage"]["total_requests"]
        assert record["usage"]["average_cost_per_request"] == expected["usage"]["average_cost_per_request"]
        assert record["limit"]["monthly_limit"] == expected["limit"]["monthly_limit"]
        assert record["limit"]["remaining_budget"] == expected["limit"]["remaining_budget"]
        assert record["limit"]["status"] == expected["limit"]["status"]
    total = sum(r["usage"]["total_cost"] for r in records)
    assert isinstance(total, Decimal)
    assert total == server.expected_total_cost(months=MONTHS)


async def test_json_report_to_a_file(server: FakeFreddyServer, tmp_path: Path) -> None:
    target = tmp_path / "usage.json"
    keys = server.key_ids[:2]
    result = await run_cli(
        "report", "--org", ORG, "--keys", ",".join(keys), "--from", "2025-11", "--to", "2025-11",
        "--format", "json", "--output", str(target), server=server,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    records = json.loads(target.read_text(encoding="utf-8"), parse_float=Decimal)
    assert sorted(r["api_key_id"] for r in records) == sorted(keys)
    assert sum(r["usage"]["total_cost"] for r in records) == server.expected_total_cost(
        keys, months=["2025-11"]
    )


async def test_table_report_has_a_row_per_key_and_exact_totals(server: FakeFreddyServer) -> None:
    result = await run_cli("report", "--org", ORG, *MONTH_ARGS, server=server)

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    key_rows = [line for line in lines if line.split(" ")[0] in server.key_ids]
    # Costliest first, ties by key ID: the same order every run.
    by_cost = sorted(server.key_ids, key=lambda k: (-server.expected_total_cost([k], months=MONTHS), k))
    assert [row.split()[0] for row in key_rows] == by_cost
    total_line = next(line for line in lines if line.startswith("TOTAL (6 keys)"))
    expected = server.expected_totals(months=MONTHS)
    assert f"{expected.cost:,.2f}" in total_line
    assert f"{expected.requests:,}" in total_line
    assert "18/18" in total_line
    statuses = {"ok", "warning", "exceeded", "no_limit"}
    assert all(row.split()[-1] in statuses for row in key_rows)


async def test_a_failing_key_is_recorded_and_exits_1(server: FakeFreddyServer) -> None:
    good = server.key_ids[0]
    keys = f"{good},apikey_doesnotexist"
    result = await run_cli(
        "report", "--org", ORG, "--keys", keys, *MONTH_ARGS, "--format", "jsonl", server=server
    )

    assert result.returncode == 1
    records = [json.loads(line, parse_float=Decimal) for line in result.stdout.splitlines()]
    failed = [r for r in records if r["error"] is not None]
    assert sorted(_month(r) for r in failed) == MONTHS
    for record in failed:
        assert record["api_key_id"] == "apikey_doesnotexist"
        assert record["error"]["code"] == "API_KEY_NOT_FOUND"
        assert record["error"]["status"] == 404
        assert record["error"]["class"] == "NotFoundError"
        assert record["error"]["message"]
        assert record["usage"] is None
    ok = [r for r in records if r["error"] is None]
    assert sum(r["usage"]["total_cost"] for r in ok) == server.expected_total_cost([good], months=MONTHS)
    assert "3 months of 1 key failed" in result.stderr

    table = await run_cli("report", "--org", ORG, "--keys", keys, *MONTH_ARGS, server=server)
    assert table.returncode == 1
    assert "apikey_doesnotexist" in table.stdout
    error_line = next(line for line in table.stdout.splitlines() if "API_KEY_NOT_FOUND" in line)
    assert "2025-01..2025-03" in error_line
    assert "404" in error_line


async def test_a_wrong_api_key_ends_the_batch_with_one_line(server: FakeFreddyServer) -> None:
    wrong = "fk_wrong_key_0123456789"
    result = await run_cli(
        "report", "--org", ORG, *MONTH_ARGS, env=_env(server, {"FREDDY_API_KEY": wrong})
    )

    assert result.returncode == 1
    assert len(result.stderr.splitlines()) == 1
    assert "AuthenticationError" in result.stderr
    assert wrong not in result.stderr + result.stdout
    assert result.stdout == ""


async def test_an_unknown_organization_ends_with_one_line(server: FakeFreddyServer) -> None:
    result = await run_cli("report", "--org", "org_someone_else", *MONTH_ARGS, server=server)

    assert result.returncode == 1
    assert len(result.stderr.splitlines()) == 1
    assert "ORGANIZATION_ACCESS_DENIED" in result.stderr
    assert result.stdout == ""


async def test_an_empty_organization_gives_an_empty_report(server: FakeFreddyServer) -> None:
    table = await run_cli("report", "--org", EMPTY_ORG, *MONTH_ARGS, server=server)
    assert table.returncode == 0, table.stderr
    assert "TOTAL (0 keys)" in table.stdout

    as_json = await run_cli("report", "--org", EMPTY_ORG, *MONTH_ARGS, "--format", "json", server=server)
    assert as_json.returncode == 0, as_json.stderr
    assert json.loads(as_json.stdout) == []


async def test_a_closed_stdout_ends_quietly(server: FakeFreddyServer) -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the first line (like `| head -0`)
    try:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "freddy_async", "report", "--org", ORG, *MONTH_ARGS,
            "--format", "jsonl", stdout=write_end, stderr=asyncio.subprocess.PIPE, env=_env(server),
        )
    finally:
        os.close(write_end)
    _, err = await asyncio.wait_for(process.communicate(), TIMEOUT)

    assert process.returncode == 1
    assert err.decode() == ""


async def test_api_key_env_names_another_variable(server: FakeFreddyServer) -> None:
    env = _env(server)
    env["TEAM_FREDDY_KEY"] = env.pop("FREDDY_API_KEY")
    result = await run_cli(
        "report", "--org", ORG, "--from", "2025-02", "--to", "2025-02", "--format", "csv",
        "--api-key-env", "TEAM_FREDDY_KEY", env=env,
    )

    assert result.returncode == 0, result.stderr
    assert server.api_key not in result.stdout + result.stderr
    assert len(result.stdout.splitlines()) == 1 + len(server.key_ids)


# -- usage errors ----------------------------------------------------------------------------


# Usage errors: (arguments, text the one line of stderr must hold). They are run concurrently,
# since each costs little more than an interpreter start.
WITH_SERVER = [
    (["--from", "2025-13"], "--from"),
    (["--from", "2025-05", "--to", "2025-02"], "--to"),
    (["--from", "2025-01", "--to", "2025-02", "--max-concurrency", "0"], "--max-concurrency"),
    (["--from", "2025-01", "--keys", " , "], "--keys"),
    (["--from", "2025-01", "--keys", "ak_1,bad/id"], "--keys"),
    (["--from", "2025-01", "--base-url", "http://example.com"], "http"),
    (["--from", "2025-01", "--output", "/nonexistent-dir/usage.txt"], "/nonexistent-dir/usage.txt"),
]
WITHOUT_SERVER = [
    (["report", "--org", ORG, *MONTH_ARGS], "FREDDY_API_KEY"),
    (["daily", "--org", ORG, "--month", "2025-11"], "FREDDY_API_KEY"),
    (["report", "--org", ORG, *MONTH_ARGS, "--api-key-env", "TEAM_KEY"], "TEAM_KEY"),
    (["demo", "--months", "100"], "--months"),
    ([], "COMMAND"),
]


async def test_usage_errors_exit_2_with_one_line(server: FakeFreddyServer) -> None:
    runs = [run_cli("report", "--org", ORG, *args, server=server) for args, _ in WITH_SERVER]
    runs += [run_cli(*args, env=_env(None)) for args, _ in WITHOUT_SERVER]
    results = await asyncio.gather(*runs)

    for (args, needle), result in zip(WITH_SERVER + WITHOUT_SERVER, results, strict=True):
        assert result.returncode == 2, (args, result)
        assert result.stdout == "", (args, result)
        assert len(result.stderr.splitlines()) == 1, (args, result)
        assert needle in result.stderr, (args, result)
    assert server.request_count == 0


async def test_a_missing_api_key_names_the_variable() -> None:
    result = await run_cli("report", "--org", ORG, *MONTH_ARGS, env=_env(None))

    assert result.returncode == 2
    assert result.stderr.startswith("freddy-usage: error: no API key")
    assert "FREDDY_API_KEY" in result.stderr
    assert len(result.stderr.splitlines()) == 1


async def test_a_value_given_as_api_key_env_is_not_echoed() -> None:
    secret = "fk_looks_like_a_real_key_abc123"
    result = await run_cli(
        "report", "--org", ORG, *MONTH_ARGS, "--api-key-env", secret, env=_env(None)
    )

    assert result.returncode == 2
    assert secret not in result.stderr
    assert "--api-key-env" in result.stderr


# -- daily -----------------------------------------------------------------------------------


async def test_daily_records_sum_to_the_month(server: FakeFreddyServer) -> None:
    result = await run_cli("daily", "--org", ORG, "--month", "2025-11", "--format", "jsonl", server=server)

    assert result.returncode == 0, result.stderr
    records = [json.loads(line, parse_float=Decimal) for line in result.stdout.splitlines()]
    expected = server.expected_daily(2025, 11)
    assert [r["date"] for r in records] == sorted(d["date"] for d in expected["daily_usage"])
    assert sum(r["cost"] for r in records) == expected["summary"]["total_api_key_cost"]
    assert set(records[0]) == {"organization_id", "year", "month"} | {
        f.name for f in attrs.fields(DailyUsage)
    }


async def test_daily_csv_and_json(server: FakeFreddyServer) -> None:
    expected = server.expected_daily(2025, 11)
    as_csv = await run_cli("daily", "--org", ORG, "--month", "2025-11", "--format", "csv", server=server)
    assert as_csv.returncode == 0, as_csv.stderr
    rows = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert len(rows) == len(expected["daily_usage"])
    assert sum(Decimal(r["cost"]) for r in rows) == expected["summary"]["total_api_key_cost"]
    assert sum(int(r["requests"]) for r in rows) == expected["summary"]["total_api_key_requests"]

    as_json = await run_cli("daily", "--org", ORG, "--month", "2025-11", "--format", "json", server=server)
    assert as_json.returncode == 0, as_json.stderr
    whole = json.loads(as_json.stdout, parse_float=Decimal)
    assert whole["summary"]["total_api_key_cost"] == expected["summary"]["total_api_key_cost"]
    assert whole["period"]["days_with_api_usage"] == expected["period"]["days_with_api_usage"]
    assert [d["date"] for d in whole["daily_usage"]] == sorted(d["date"] for d in expected["daily_usage"])


async def test_daily_outside_the_served_years_fails_with_one_line(server: FakeFreddyServer) -> None:
    result = await run_cli("daily", "--org", ORG, "--month", "2019-12", server=server)

    assert result.returncode == 1
    assert len(result.stderr.splitlines()) == 1
    assert "UnprocessableEntityError" in result.stderr


async def test_daily_table_draws_a_bar_per_day(server: FakeFreddyServer) -> None:
    result = await run_cli("daily", "--org", ORG, "--month", "2025-02", server=server)

    assert result.returncode == 0, result.stderr
    expected = server.expected_daily(2025, 2)
    day_lines = [line for line in result.stdout.splitlines() if line.startswith("2025-02-")]
    assert len(day_lines) == 28
    busiest = max(expected["daily_usage"], key=lambda d: d["cost"])
    busiest_line = next(line for line in day_lines if line.startswith(busiest["date"]))
    assert busiest_line.rstrip().endswith(("\u2588", "#"))
    total_line = next(line for line in result.stdout.splitlines() if line.startswith("TOTAL"))
    assert f"{expected['summary']['total_api_key_cost']:,.2f}" in total_line


# -- demo, interruption, progress ------------------------------------------------------------


async def test_demo_runs_end_to_end() -> None:
    result = await run_cli("demo", "--keys", "5", "--months", "2", "--verbose", env=_env(None))

    assert result.returncode == 0, result.stderr
    assert "TOTAL (5 keys)" in result.stdout
    assert "10/10" in result.stdout
    last = result.stderr.splitlines()[-1]
    assert "the total is equal to what the server's seed says" in last
    assert "retries" in last
    assert "HTTP requests" in last


async def test_ctrl_c_exits_130_without_a_traceback() -> None:
    # Every answer is held back, so the CLI is surely waiting when the signal comes.
    async with FakeFreddyServer(keys=3, org_id=ORG, latency=30.0) as slow:
        process = await asyncio.create_subprocess_exec(
            *INTERRUPTIBLE, "report", "--org", ORG, *MONTH_ARGS,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=_env(slow),
        )

        async def first_request() -> None:
            while slow.request_count == 0:
                await asyncio.sleep(0.02)

        await asyncio.wait_for(first_request(), TIMEOUT)
        process.send_signal(signal.SIGINT)
        out, err = await asyncio.wait_for(process.communicate(), TIMEOUT)

    assert process.returncode == 130
    stderr = err.decode()
    assert "Traceback" not in stderr
    assert stderr.strip().splitlines()[-1] == "freddy-usage: interrupted"
    assert slow.api_key not in stderr + out.decode()


@pytest.mark.skipif(sys.platform == "win32", reason="needs a pseudo-terminal")
async def test_progress_is_drawn_on_a_terminal_only(server: FakeFreddyServer) -> None:
    argv = [sys.executable, "-m", "freddy_async", "report", "--org", ORG, *MONTH_ARGS, "--format", "csv"]
    result = await on_terminal(argv, env=_env(server), columns=120, stream="stderr")

    assert result.returncode == 0
    assert "/6 keys" in result.shown
    assert "req/s" in result.shown
    assert server.api_key not in result.shown
    # stdout got the data only.
    assert result.piped.startswith("api_key_id,")
    assert "req/s" not in result.piped


# -- the pieces behind the output, in-process ------------------------------------------------


@pytest.mark.parametrize(
    ("statuses", "worst"),
    [
        (["ok", "no_limit"], "ok"),
        (["ok", "warning", "no_limit"], "warning"),
        (["warning", "exceeded", "ok"], "exceeded"),
        (["ok", "suspended"], "suspended"),  # unknown: shown as is, above warning
        (["suspended", "exceeded"], "exceeded"),
        ([LimitStatus.NO_LIMIT], "no_limit"),
        ([], "-"),
    ],
)
def test_worst_limit_status(statuses: list[Any], worst: str) -> None:
    assert worst_status(statuses) == worst


def test_json_keeps_decimal_digits_exactly() -> None:
    value = {"cost": Decimal("350.250"), "big": Decimal("12345678901234567.89"), "n": [1, 2.5, None, True]}
    text = json_text(value)
    assert text == '{"cost": 350.250, "big": 12345678901234567.89, "n": [1, 2.5, null, true]}'
    assert json.loads(text, parse_float=Decimal)["big"] == Decimal("12345678901234567.89")


def test_redaction_covers_every_stream_of_a_run() -> None:
    secrets: list[str] = []
    out, err = io.StringIO(), io.StringIO()
    stdout, stderr = Redacting(out, secrets), Redacting(err, secrets)
    secrets.append("fk_secret_value")
    stdout.write("key=fk_secret_value\n")
    stderr.write("fk_secret_value fk_secret_value")
    assert "fk_secret_value" not in out.getvalue() + err.getvalue()
    assert out.getvalue() == "key=[redacted]\n"
