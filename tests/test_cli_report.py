"""freddy-usage report for the people who read the numbers (issue 17), run as a subprocess.

Stable files (sorted, ``period``, whole counts, names on every row), ``--keys @FILE`` and
``--keys -``, ``--last``, the table's ``--top`` and ``--status``, the demo's options, and error
messages that name flags.
"""

from __future__ import annotations

import csv
import io
import json
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest
from proxies import refusing_2031
from test_cli import MONTH_ARGS, MONTHS, ORG, _env, run_cli

from freddy_async import YearMonth
from freddy_async._cli._args import parse_key_lines
from freddy_async._cli._flags import with_flags
from freddy_async.testing import FakeFreddyServer

COUNT_COLUMNS = ("usage_total_requests", "usage_total_synapses", "usage_total_neurons")


@pytest.fixture
async def server() -> AsyncIterator[FakeFreddyServer]:
    async with FakeFreddyServer(keys=6, org_id=ORG, seed=7) as fake:
        yield fake


def _rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def _by_cost(server: FakeFreddyServer, months: list[str]) -> list[str]:
    return sorted(server.key_ids, key=lambda k: (-server.expected_total_cost([k], months=months), k))


# -- deterministic files ---------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "json", "html"])
async def test_two_runs_are_byte_identical(server: FakeFreddyServer, tmp_path: Path, fmt: str) -> None:
    files = [tmp_path / f"first.{fmt}", tmp_path / f"second.{fmt}"]
    for target in files:
        # Many keys at once, so that they finish in a different order each run.
        result = await run_cli("report", "--org", ORG, *MONTH_ARGS, "--format", fmt, "--max-concurrency", "8",
                               "-o", str(target), server=server)
        assert result.returncode == 0, result.stderr
    assert files[0].read_bytes() == files[1].read_bytes()
    assert len(files[0].read_bytes()) > 1000


async def test_csv_rows_are_sorted_with_a_period_and_whole_counts(server: FakeFreddyServer) -> None:
    result = await run_cli("report", "--org", ORG, *MONTH_ARGS, "--format", "csv", server=server)

    assert result.returncode == 0, result.stderr
    header = result.stdout.splitlines()[0].split(",")
    assert header[:4] == ["api_key_id", "api_key_name", "organization_id", "period"]
    rows = _rows(result.stdout)
    assert [(r["api_key_id"], r["period"]) for r in rows] == sorted(
        (key, month) for key in server.key_ids for month in MONTHS
    )
    for row in rows:
        assert row["period"] == f"{row['year']}-{int(row['month']):02d}"
        for column in COUNT_COLUMNS:
            assert row[column].isdigit(), (column, row[column])  # "68705", never "68705.0"
        expected = server.expected_usage(row["api_key_id"], int(row["year"]), int(row["month"]))
        assert int(row["usage_total_synapses"]) == expected["usage"]["total_synapses"]
        assert int(row["usage_total_neurons"]) == expected["usage"]["total_neurons"]


async def test_jsonl_records_are_sorted_with_whole_counts(server: FakeFreddyServer) -> None:
    result = await run_cli("report", "--org", ORG, *MONTH_ARGS, "--format", "jsonl", server=server)

    records = [json.loads(line, parse_float=Decimal) for line in result.stdout.splitlines()]
    assert [(r["api_key_id"], r["period"]) for r in records] == sorted(
        (key, month) for key in server.key_ids for month in MONTHS
    )
    for record in records:
        assert isinstance(record["usage"]["total_synapses"], int)
        assert isinstance(record["usage"]["total_neurons"], int)
    assert len(re.findall(r'"total_neurons": \d+,', result.stdout)) == len(records)


async def test_failed_months_carry_the_name_the_listing_or_another_month_gives(
    server: FakeFreddyServer,
) -> None:
    # In front of the fake, a proxy refuses 2031 (a 422): every key's 2031-01 fails, its 2030-12
    # is answered.
    async with refusing_2031(server) as url:
        env = _env(server, {"FREDDY_BASE_URL": url})
        other_month = await run_cli("report", "--org", ORG, "--keys", ",".join(server.key_ids[:2]),
                                    "--from", "2030-12", "--to", "2031-01", "--format", "csv",
                                    server=server, env=env)
        listed = await run_cli("report", "--org", ORG, "--from", "2031-01", "--to", "2031-01",
                               "--format", "csv", server=server, env=env)
        as_jsonl = await run_cli("report", "--org", ORG, "--keys", server.key_ids[0], "--from", "2030-12",
                                 "--to", "2031-01", "--format", "jsonl", server=server, env=env)
    good, bad = (json.loads(line) for line in as_jsonl.stdout.splitlines())
    assert list(good) == list(bad)  # one shape for every line, in one order
    assert bad["api_key_name"] == good["api_key_name"] and bad["error"]["status"] == 422

    for result, n_failed in ((other_month, 2), (listed, len(server.key_ids))):
        assert result.returncode == 1
        failed = [row for row in _rows(result.stdout) if row["error_class"]]
        assert len(failed) == n_failed
        for row in failed:
            assert row["period"] == "2031-01"
            assert row["api_key_name"] == server.expected_usage(row["api_key_id"], 2030, 12)["api_key_name"]


# -- which keys, which months ----------------------------------------------------------------


async def test_keys_from_a_file_and_from_stdin(server: FakeFreddyServer, tmp_path: Path) -> None:
    chosen = server.key_ids[1:4]
    listing = tmp_path / "keys.txt"
    text = f"# finance keys\n{chosen[0]}\n\n  {chosen[1]}   # the old one\n{chosen[2]}\n{chosen[0]}\n"
    listing.write_text(text, encoding="utf-8")
    from_file = await run_cli("report", "--org", ORG, "--keys", f"@{listing}", "--from", "2025-02", "--to",
                              "2025-02", "--format", "jsonl", "--no-cache", server=server)
    from_stdin = await run_cli("report", "--org", ORG, "--keys", "-", "--keys", server.key_ids[0], "--from",
                               "2025-02", "--to", "2025-02", "--format", "jsonl", "--no-cache", server=server,
                               stdin="\n".join(chosen) + "\n")

    assert from_file.returncode == 0, from_file.stderr
    assert [json.loads(line)["api_key_id"] for line in from_file.stdout.splitlines()] == sorted(chosen)
    assert from_stdin.returncode == 0, from_stdin.stderr
    assert [json.loads(line)["api_key_id"] for line in from_stdin.stdout.splitlines()] == sorted(
        [*chosen, server.key_ids[0]]
    )
    # Only the keys asked: no listing, one request per key and month.
    assert all(r.path.startswith("/v1/analytics/") for r in server.requests)
    assert server.request_count == 3 + 4


async def test_last_is_the_months_up_to_the_last_closed_one(server: FakeFreddyServer) -> None:
    result = await run_cli("report", "--org", ORG, "--keys", server.key_ids[0], "--last", "3", "--format",
                           "jsonl", server=server)

    assert result.returncode == 0, result.stderr
    current = YearMonth.current()
    last_closed = current.year * 12 + current.month - 2  # months since year 0, the month before this one
    expected = [f"{(last_closed - i) // 12:04d}-{(last_closed - i) % 12 + 1:02d}" for i in (2, 1, 0)]
    assert [json.loads(line)["period"] for line in result.stdout.splitlines()] == expected


async def test_top_and_status_filter_the_table_not_the_totals(server: FakeFreddyServer) -> None:
    top = await run_cli("report", "--org", ORG, *MONTH_ARGS, "--top", "2", server=server)
    worst = await run_cli("report", "--org", ORG, *MONTH_ARGS, "--status", "exceeded,warning",
                          "--format", "jsonl", server=server)
    status = await run_cli("report", "--org", ORG, *MONTH_ARGS, "--status", "exceeded,warning", server=server)

    assert top.returncode == 0, top.stderr
    lines = top.stdout.splitlines()
    ranked = _by_cost(server, MONTHS)
    assert [line.split()[0] for line in lines if line.split(" ")[0] in server.key_ids] == ranked[:2]
    rest = next(line for line in lines if line.startswith("(4 more keys)"))
    assert f"{server.expected_total_cost(ranked[2:], months=MONTHS):,.2f}" in rest
    total = next(line for line in lines if line.startswith("TOTAL (6 keys)"))
    assert f"{server.expected_total_cost(months=MONTHS):,.2f}" in total

    # Only the table filters: csv, jsonl and json hold every key, so a filter there is a mistake.
    assert worst.returncode == 2
    assert "--status" in worst.stderr and worst.stdout == ""
    assert status.returncode == 0, status.stderr
    shown = [line.split() for line in status.stdout.splitlines() if line.split(" ")[0] in server.key_ids]
    assert shown and all(row[-1] in {"exceeded", "warning"} for row in shown)
    expected = {k for k in server.key_ids
                if {server.expected_usage(k, 2025, m)["limit"]["status"] for m in (1, 2, 3)} & {"exceeded",
                                                                                                 "warning"}}
    assert {row[0] for row in shown} == expected
    assert "TOTAL (6 keys)" in status.stdout


# -- the demo --------------------------------------------------------------------------------


async def test_demo_takes_a_rate_limit_and_quiet_silences_it() -> None:
    loud = await run_cli("demo", "--keys", "3", "--months", "1", "--requests-per-minute", "6000",
                         "--format", "csv", env=_env(None))
    quiet = await run_cli("demo", "--keys", "3", "--months", "1", "--quiet", "--format", "csv",
                          env=_env(None))

    assert loud.returncode == 0, loud.stderr
    assert "limited to 6,000 requests/min" in loud.stderr
    assert "the total is equal to what the server's seed says" in loud.stderr
    assert quiet.returncode == 0
    assert quiet.stderr == ""
    assert quiet.stdout == loud.stdout  # the same seed: the same data, byte for byte


# -- mistakes name their flags ---------------------------------------------------------------


MISTAKES = [
    (["--from", "2025-01", "--base-url", "http://example.com"], ["--base-url", "--allow-insecure-http"]),
    (["--from", "2025-01", "--base-url", "https://user:pw@example.com"], ["--base-url", "--api-key-env"]),
    (["--last", "2", "--from", "2025-01"], ["--last", "--from"]),
    ([], ["--from", "--last"]),
    (["--last", "0"], ["--last"]),
    (["--from", "2025-01", "--status", "fine"], ["--status"]),
    (["--from", "2025-01", "--top", "3", "--format", "csv"], ["--top"]),
    (["--from", "2025-01", "--keys", "@/nonexistent/keys.txt"], ["--keys @/nonexistent/keys.txt"]),
    (["--from", "2025-01", "--keys", "-"], ["--keys"]),  # stdin holds no key
]


async def test_mistakes_name_the_flag_not_the_parameter(server: FakeFreddyServer) -> None:
    for args, flags in MISTAKES:
        result = await run_cli("report", "--org", ORG, *args, server=server, stdin="# nothing\n")
        assert result.returncode == 2, (args, result)
        assert len(result.stderr.splitlines()) == 1, (args, result.stderr)
        for flag in flags:
            assert flag in result.stderr, (args, flag, result.stderr)
        for parameter in ("base_url", "allow_insecure_http", "api_key "):
            assert parameter not in result.stderr, (args, result.stderr)
    assert server.request_count == 0


@pytest.mark.parametrize(
    ("message", "told"),
    [
        ("base_url 'http://x' is plain http; use https, or pass allow_insecure_http=True if you must",
         "--base-url 'http://x' is plain http; use https, or pass --allow-insecure-http if you must"),
        ("gave up, past the call's retry_deadline", "gave up, past the call's --retry-deadline"),
        ("max_concurrency must be an int >= 1", "--max-concurrency must be an int >= 1"),
        ("api_key_id 'x' is unknown", "api_key_id 'x' is unknown"),  # not a parameter of the client
    ],
)
def test_with_flags(message: str, told: str) -> None:
    assert with_flags(message) == told


def test_key_lines_skip_comments_and_blanks() -> None:
    assert parse_key_lines("# header\nak_1\n\n  ak_2  # note\n#ak_3\r\nak_4\r\n") == ["ak_1", "ak_2", "ak_4"]


# -- rich belongs to the command line --------------------------------------------------------


def test_the_library_does_not_import_rich() -> None:
    code = (
        "import sys, asyncio\n"
        "import freddy_async, freddy_async.testing\n"
        "from freddy_async import FreddyClient\n"
        "assert 'rich' not in sys.modules, sorted(m for m in sys.modules if m.startswith('rich'))\n"
        "import freddy_async.cli\n"
        "assert 'rich' in sys.modules\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                            check=False)
    assert result.returncode == 0, result.stderr
    package = Path(__file__).resolve().parent.parent / "freddy_async"
    outside = [path for path in package.rglob("*.py") if "_cli" not in path.parts]
    importers = [path.name for path in outside if re.search(r"^\s*(import|from) rich\b",
                                                            path.read_text(encoding="utf-8"), re.MULTILINE)]
    assert outside and importers == []
