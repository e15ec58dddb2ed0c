"""``freddy-usage costs``, run as a subprocess against a FakeFreddyServer on loopback."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest
from proxies import refusing_2031
from test_cli import Result, _env
from test_cli import run_cli as run_any_cli

from freddy_async import ApiKeyLimit, YearMonth
from freddy_async._cli._console import Redacting
from freddy_async._cli._costs import KeyCosts, costs_months, write_costs
from freddy_async.testing import FakeFreddyServer

ORG = "org_costs"
EMPTY_ORG = "org_empty"
MONTHS = ["2025-01", "2025-02", "2025-03"]
MONTH_ARGS = ["--from", MONTHS[0], "--to", MONTHS[-1]]


@pytest.fixture
async def server() -> AsyncIterator[FakeFreddyServer]:
    async with FakeFreddyServer(keys=6, org_id=ORG, seed=7, extra_orgs={EMPTY_ORG: 0}) as fake:
        yield fake


async def run_cli(*args: str, server: FakeFreddyServer, base_url: str | None = None) -> Result:
    """Run ``python -m freddy_async ARGS`` against ``server`` (or ``base_url``, in front of it);
    no output may hold the API key."""
    env = _env(server, {"FREDDY_BASE_URL": base_url} if base_url else None)
    return await run_any_cli(*args, server=server, env=env)


def cost(server: FakeFreddyServer, key_id: str, month: str) -> Decimal:
    year, number = YearMonth.parse(month).year, YearMonth.parse(month).month
    total: Decimal = server.expected_usage(key_id, year, number)["usage"]["total_cost"]
    return total


def assert_one_request_a_month(server: FakeFreddyServer, months: list[str]) -> None:
    for month in months:
        period = YearMonth.parse(month)
        assert server.limits_fetch_count(period.year, period.month) == 1
        for key in server.key_ids:
            assert server.fetch_count(key, period.year, period.month) == 0
    assert server.request_count == len(months)
    assert all(r.path == f"/v1/analytics/usage/limits/{ORG}" for r in server.requests)


# -- formats ---------------------------------------------------------------------------------


async def test_csv_is_wide_exact_and_one_request_a_month(server: FakeFreddyServer) -> None:
    result = await run_cli("costs", "--org", ORG, *MONTH_ARGS, "--format", "csv", server=server)

    assert result.returncode == 0, result.stderr
    assert_one_request_a_month(server, MONTHS)
    rows = list(csv.reader(io.StringIO(result.stdout)))
    assert rows[0] == ["api_key_id", "api_key_name", *MONTHS, "total"]
    body = rows[1:]
    assert [row[0] for row in body] == sorted(server.key_ids)
    for key_id, name, *cells, total in body:
        assert name == server.expected_usage(key_id, 2025, 1)["api_key_name"]
        # The digits the API sent: "12.50" stays "12.50", never a float's "12.5".
        assert cells == [str(cost(server, key_id, m)) for m in MONTHS]
        assert Decimal(total) == sum(Decimal(c) for c in cells)
        assert total == str(server.expected_total_cost([key_id], months=MONTHS))
    assert sum(Decimal(row[-1]) for row in body) == server.expected_total_cost(months=MONTHS)
    assert "6 keys x 3 months" in result.stderr
    assert "3 HTTP requests" in result.stderr


async def test_two_csv_runs_are_byte_identical(server: FakeFreddyServer, tmp_path: Path) -> None:
    first, second = tmp_path / "a.csv", tmp_path / "b.csv"
    for target in (first, second):
        result = await run_cli(
            "costs", "--org", ORG, *MONTH_ARGS, "--format", "csv", "-o", str(target), server=server
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout == ""

    assert first.read_bytes() == second.read_bytes()
    assert b"\r" not in first.read_bytes()


async def test_jsonl_has_a_record_per_key_and_month_with_exact_numbers(server: FakeFreddyServer) -> None:
    result = await run_cli("costs", "--org", ORG, *MONTH_ARGS, "--format", "jsonl", server=server)

    assert result.returncode == 0, result.stderr
    assert_one_request_a_month(server, MONTHS)
    records = [json.loads(line, parse_float=Decimal) for line in result.stdout.splitlines()]
    assert {(r["api_key_id"], r["month"]) for r in records} == {
        (k, m) for k in server.key_ids for m in MONTHS
    }
    assert len(records) == len(server.key_ids) * len(MONTHS)
    for record in records:
        assert set(record) == {"month", "api_key_id", "api_key_name", "cost", "monthly_limit",
                               "utilization_percentage", "status"}
        period = YearMonth.parse(record["month"])
        expected = server.expected_usage(record["api_key_id"], period.year, period.month)
        assert record["api_key_name"] == expected["api_key_name"]
        # JSON numbers, not strings, with the API's digits.
        assert isinstance(record["cost"], Decimal)
        assert record["cost"] == expected["usage"]["total_cost"]
        assert str(record["cost"]) == str(expected["usage"]["total_cost"])
        assert record["monthly_limit"] == expected["limit"]["monthly_limit"]
        assert record["utilization_percentage"] == expected["limit"]["utilization_percentage"]
        assert record["status"] == expected["limit"]["status"]
    assert sum(r["cost"] for r in records) == server.expected_total_cost(months=MONTHS)


async def test_json_is_an_array_of_the_same_records(server: FakeFreddyServer, tmp_path: Path) -> None:
    target = tmp_path / "costs.json"
    result = await run_cli(
        "costs", "--org", ORG, "--from", "2025-11", "--to", "2025-11", "--format", "json",
        "--output", str(target), server=server,
    )
    jsonl = await run_cli("costs", "--org", ORG, "--from", "2025-11", "--to", "2025-11",
                          "--format", "jsonl", server=server)

    assert result.returncode == 0, result.stderr
    records = json.loads(target.read_text(encoding="utf-8"), parse_float=Decimal)
    assert records == [json.loads(line, parse_float=Decimal) for line in jsonl.stdout.splitlines()]
    assert sum(r["cost"] for r in records) == server.expected_total_cost(months=["2025-11"])


async def test_table_ranks_keys_by_cost_with_exact_totals(server: FakeFreddyServer) -> None:
    result = await run_cli("costs", "--org", ORG, *MONTH_ARGS, server=server)

    assert result.returncode == 0, result.stderr
    assert_one_request_a_month(server, MONTHS)
    lines = result.stdout.splitlines()
    header = next(line for line in lines if line.startswith("KEY ID"))
    assert header.split() == ["KEY", "ID", "NAME", *MONTHS, "TOTAL", "LIMIT", MONTHS[-1]]
    key_rows = [line.split() for line in lines if line.split(" ")[0] in server.key_ids]
    by_cost = sorted(server.key_ids, key=lambda k: (-server.expected_total_cost([k], months=MONTHS), k))
    assert [row[0] for row in key_rows] == by_cost
    for row in key_rows:
        key_id = row[0]
        assert row[-2] == f"{server.expected_total_cost([key_id], months=MONTHS):,.2f}"
        assert row[-1] == server.expected_usage(key_id, 2025, 3)["limit"]["status"]
        assert row[-5:-2] == [f"{cost(server, key_id, m):,.2f}" for m in MONTHS]
    total_line = next(line for line in lines if line.startswith("TOTAL (6 keys)"))
    assert total_line.split()[-1] == f"{server.expected_total_cost(months=MONTHS):,.2f}"
    assert total_line.split()[-4:-1] == [
        f"{server.expected_total_cost(months=[m]):,.2f}" for m in MONTHS
    ]


async def test_top_keeps_the_costliest_keys(server: FakeFreddyServer) -> None:
    table = await run_cli("costs", "--org", ORG, *MONTH_ARGS, "--top", "2", server=server)
    jsonl = await run_cli("costs", "--org", ORG, *MONTH_ARGS, "--top", "2", "--format", "jsonl",
                          server=server)

    assert table.returncode == 0, table.stderr
    by_cost = sorted(server.key_ids, key=lambda k: (-server.expected_total_cost([k], months=MONTHS), k))
    lines = table.stdout.splitlines()
    assert [line.split()[0] for line in lines if line.split(" ")[0] in server.key_ids] == by_cost[:2]
    rest = next(line for line in lines if line.startswith("(4 more keys)"))
    assert rest.split()[-1] == f"{server.expected_total_cost(by_cost[2:], months=MONTHS):,.2f}"
    # The totals still cover the whole organization.
    total_line = next(line for line in lines if line.startswith("TOTAL (6 keys)"))
    assert total_line.split()[-1] == f"{server.expected_total_cost(months=MONTHS):,.2f}"
    assert {json.loads(line)["api_key_id"] for line in jsonl.stdout.splitlines()} == set(by_cost[:2])


async def test_costs_agree_with_report(server: FakeFreddyServer) -> None:
    costs = await run_cli("costs", "--org", ORG, *MONTH_ARGS, "--format", "jsonl", server=server)
    server.reset_counters()
    report = await run_cli("report", "--org", ORG, *MONTH_ARGS, "--format", "jsonl", server=server)

    from_costs = {
        (r["api_key_id"], r["month"]): r["cost"]
        for r in map(lambda line: json.loads(line, parse_float=Decimal), costs.stdout.splitlines())
    }
    from_report = {
        (r["api_key_id"], f"{r['year']:04d}-{r['month']:02d}"): r["usage"]["total_cost"]
        for r in map(lambda line: json.loads(line, parse_float=Decimal), report.stdout.splitlines())
    }
    assert from_costs == from_report
    # report: the listing, then one request per key and month.
    assert server.request_count == 1 + len(server.key_ids) * len(MONTHS)


# -- months, errors and the rest -------------------------------------------------------------


async def test_without_from_a_year_of_months_up_to_to(server: FakeFreddyServer) -> None:
    result = await run_cli("costs", "--org", ORG, "--to", "2025-06", "--format", "csv", server=server)

    assert result.returncode == 0, result.stderr
    months = [str(m) for m in YearMonth.range("2024-07", "2025-06")]
    assert result.stdout.splitlines()[0] == ",".join(["api_key_id", "api_key_name", *months, "total"])
    assert_one_request_a_month(server, months)


def test_default_months() -> None:
    assert costs_months(YearMonth(2025, 3), YearMonth(2025, 3)) == [YearMonth(2025, 3)]
    assert costs_months(None, YearMonth(2025, 12)) == YearMonth.range("2025-01", "2025-12")
    assert costs_months(None, YearMonth(1, 5)) == YearMonth.range("0001-01", "0001-05")
    assert costs_months(None, None)[-1] == YearMonth.current()
    assert len(costs_months(None, None)) == 12
    with pytest.raises(ValueError, match="--to 2025-01 comes before --from 2025-02"):
        costs_months(YearMonth(2025, 2), YearMonth(2025, 1))


async def test_an_empty_organization(server: FakeFreddyServer) -> None:
    csv_result = await run_cli("costs", "--org", EMPTY_ORG, *MONTH_ARGS, "--format", "csv", server=server)
    table = await run_cli("costs", "--org", EMPTY_ORG, *MONTH_ARGS, server=server)
    array = await run_cli("costs", "--org", EMPTY_ORG, *MONTH_ARGS, "--format", "json", server=server)

    assert csv_result.returncode == table.returncode == array.returncode == 0
    assert csv_result.stdout == "api_key_id,api_key_name,2025-01,2025-02,2025-03,total\n"
    assert "TOTAL (0 keys)" in table.stdout
    assert json.loads(array.stdout) == []


async def test_usage_errors_exit_2_before_any_request(server: FakeFreddyServer) -> None:
    for args in (
        ["--from", "2025-05", "--to", "2025-03"],
        ["--from", "2025-13"],
        ["--top", "0"],
        ["--format", "xml"],
    ):
        result = await run_cli("costs", "--org", ORG, *args, server=server)
        assert result.returncode == 2, (args, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    bad_org = await run_cli("costs", "--org", "org/x", *MONTH_ARGS, server=server)
    assert bad_org.returncode == 2
    assert server.request_count == 0


async def test_a_refused_month_ends_with_one_line_and_exit_1(server: FakeFreddyServer) -> None:
    async with refusing_2031(server) as url:
        result = await run_cli(
            "costs", "--org", ORG, "--from", "2030-12", "--to", "2031-01", server=server, base_url=url
        )

    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1
    assert "VALIDATION_ERROR" in result.stderr

    denied = await run_cli("costs", "--org", "org_unknown", *MONTH_ARGS, server=server)
    assert denied.returncode == 1
    assert "access denied" in denied.stderr


def test_the_table_shows_no_control_character_from_the_server() -> None:
    month = YearMonth(2025, 1)
    entry = ApiKeyLimit("ak_\x1b[2J", "Evil\x1b[31m\nName", None, Decimal("1.50"), None, "odd\rstatus")
    buffer = io.StringIO()

    write_costs([KeyCosts(entry.api_key_id, {month: entry})], [month], "table", Redacting(buffer, []),
                org_id="org_1")

    text = buffer.getvalue()
    assert "\x1b" not in text
    assert "\r" not in text
    assert "Evil\\x1b[31m\\nName" in text  # shown escaped, as in every table of freddy-usage
    assert "odd\\rstatus" in text
    assert len(text.splitlines()) == 7  # title, blank, header, rule, the key, rule, totals


def test_the_csv_neutralises_formulas_and_keeps_money_exact() -> None:
    month = YearMonth(2025, 1)
    entry = ApiKeyLimit("ak_1", '=HYPERLINK("http://evil.example","x")', None, Decimal("-1.50"), None, "ok")
    buffer = io.StringIO()
    write_costs([KeyCosts(entry.api_key_id, {month: entry})], [month], "csv", Redacting(buffer, []),
                org_id="org_1")
    row = buffer.getvalue().splitlines()[1]
    assert row == 'ak_1,"\'=HYPERLINK(""http://evil.example"",""x"")",-1.50,-1.50'
