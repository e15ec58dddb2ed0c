"""freddy-usage against a server whose text is hostile: terminal escapes, bidi overrides, formulas.

The text a server sends (key IDs and names, statuses, error codes and messages, trace IDs) must
never drive the terminal it is shown on, nor run as a formula in the spreadsheet a csv is opened
in; the numbers must stay the numbers the API sent. The server here is a few aiohttp routes on
127.0.0.1 (API.md §1-3), because FakeFreddyServer chooses its own key names.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import re
import sys
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
from aiohttp import web
from rich.cells import cell_len
from test_cli import on_terminal

from freddy_async._cli._safe import for_spreadsheet, for_terminal

ORG = "org_edges"
DENIED_ORG = "org_denied"
MONTH = "2025-11"
TIMEOUT = 30.0
API_KEY = "fk_edges_test_key_0123456789"

CLEAR = "\x1b[2J"  # clears the screen
TITLE = "\x1b]0;pwned\x07"  # sets the window title
BIDI = "\u202e"  # right-to-left override: "invoice\u202efdp.exe" reads as "invoiceexe.pdf"
LINK = '=HYPERLINK("http://evil.example","x")'

# What must never reach a terminal raw: ESC, BEL, the C1 CSI, the bidi overrides.
RAW = ("\x1b", "\x07", "\x9b", BIDI, "\u2066")


@dataclass(frozen=True)
class Key:
    id: str
    name: str
    status: str = "ok"
    cost: str = "60.00"
    monthly_limit: str | None = "100.00"
    remaining: str | None = "40.00"


KEYS = [
    Key("ak_clear", f"clear{CLEAR}screen"),
    Key("ak_title", f"{TITLE}title"),
    Key("ak_link", LINK),
    Key("+1+1", "+1+1"),
    Key("@SUM(A1)", "@SUM(A1)"),
    Key("-2+3", "-2+3"),
    Key("ak_bidi", f"invoice{BIDI}fdp.exe", status=f"{CLEAR}ok\x9b31m"),
    Key("ak_tab", "\tcmd", status=LINK),
    Key("ak_over", "Over budget", status="exceeded", cost="112.50", remaining="-12.50"),
    Key("ak_long", "a" * 21 + CLEAR),  # too long for its column: cut before the escape
    Key("ak_cafe", "caf\u00e9 \u65e5\u672c"),  # printable, but not in every encoding
    Key("ak_nolimit", "-7", status="no_limit", cost="1e3", monthly_limit=None, remaining=None),
]
GONE = "ak_gone"  # listed, but its usage answers 404 with a hostile envelope
FLAKY = "ak_flaky"  # answers 503 with a hostile envelope once, then its usage
GONE_CODE = f"{CLEAR}NOT_FOUND"
GONE_MESSAGE = f"{LINK} {TITLE}gone\u2066"
GONE_TRACE = "@SUM(A1)"
DAILY_ORG = f"{LINK}{CLEAR}"
BAD_ID_ORG = "org_bad_id"  # its listing holds IDs that cannot be put in a URL
BAD_IDS = [f"ak_{TITLE}", "ak/../x"]


def _number(text: str) -> str:
    return f"__number:{text}__"


def _json(body: Any) -> str:
    """JSON with the numbers written exactly as given (``_number``), as the API writes them."""
    return re.sub(r'"__number:([^"]*)__"', r"\1", json.dumps(body))


def _envelope(status: int, code: str, message: str, trace_id: str) -> web.Response:
    error = {"code": code, "message": message, "type": "client_error", "status": status, "trace_id": trace_id}
    return web.Response(
        status=status, text=_json({"success": False, "error": error}), content_type="application/json",
        headers={"Retry-After": "0"},
    )


def _usage(key: Key, year: int, month: int) -> dict[str, Any]:
    limit = None if key.monthly_limit is None else _number(key.monthly_limit)
    remaining = None if key.remaining is None else _number(key.remaining)
    return {
        "apiKeyId": key.id, "apiKeyName": key.name, "organizationId": ORG, "month": month, "year": year,
        "usage": {"totalRequests": 250, "totalCost": _number(key.cost), "totalSynapses": 1000,
                  "totalNeurons": 2000, "averageCostPerRequest": _number("0.24")},
        "limit": {"monthlyLimit": limit, "utilizationPercentage": _number("112.5"),
                  "remainingBudget": remaining, "status": key.status},
    }


class HostileServer:
    """The listing, usage and daily endpoints of one organization with hostile text."""

    def __init__(self) -> None:
        self.keys = {key.id: key for key in [*KEYS, Key(FLAKY, f"flaky{TITLE}")]}
        self.flaky_failed = False
        self.base_url = ""
        self._runner: web.AppRunner | None = None

    async def listing(self, request: web.Request) -> web.Response:
        org = request.match_info["org"]
        if org == ORG:
            ids = [*self.keys, GONE]
        elif org == BAD_ID_ORG:
            ids = ["ak_clear", *BAD_IDS]
        else:
            return _envelope(403, "ACCESS_DENIED", f"{TITLE}no{CLEAR} access to {BIDI}{org}", TITLE)
        keys: list[dict[str, Any]] = [
            {"id": key_id, "organization_id": ORG, "key_name": key_id, "key_prefix": None,
             "is_active": True, "is_paused": False, "created_by": None, "created_at": None,
             "usage_limit_chf": None, "scopes": [], "last_used_at": None, "expires_at": None}
            for key_id in ids
        ]
        body = {"keys": keys, "total": len(keys), "page": 1, "page_size": 100}
        return web.Response(text=_json(body), content_type="application/json")

    async def usage(self, request: web.Request) -> web.Response:
        key_id = request.match_info["key"]
        if key_id == FLAKY and not self.flaky_failed:
            self.flaky_failed = True
            return _envelope(503, f"{CLEAR}BUSY", f"busy{TITLE}", f"trace{TITLE}")
        key = self.keys.get(key_id)
        if key is None:
            return _envelope(404, GONE_CODE, GONE_MESSAGE, GONE_TRACE)
        body = _usage(key, int(request.query["year"]), int(request.query["month"]))
        return web.Response(text=_json(body), content_type="application/json")

    async def daily(self, request: web.Request) -> web.Response:
        year, month = int(request.query["year"]), int(request.query["month"])
        day = {"date": f"{year:04d}-{month:02d}-03", "requests": 5, "cost": _number("1.50"),
               "synapses": 10.0, "neurons": 20.0}
        body = {
            "organization_id": DAILY_ORG,
            "period": {"year": year, "month": month, "startDate": f"{year:04d}-{month:02d}-01",
                       "endDate": f"{year:04d}-{month:02d}-30", "daysInMonth": 30, "daysWithApiUsage": 1},
            "dailyUsage": [day],
            "summary": {"organization_id": DAILY_ORG, "month": month, "year": year,
                        "totalApiKeyRequests": 5, "totalApiKeyCost": _number("1.50"),
                        "averageCostPerRequest": _number("0.30"), "totalSynapses": 10.0,
                        "totalNeurons": 20.0},
        }
        return web.Response(text=_json(body), content_type="application/json")

    async def __aenter__(self) -> HostileServer:
        app = web.Application()
        app.router.add_get("/v1/organizations/{org}/api-keys", self.listing)
        app.router.add_get("/v1/analytics/api-keys/usage/{org}/{key}", self.usage)
        app.router.add_get("/v1/analytics/api-keys/daily/{org}", self.daily)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.base_url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()


@pytest.fixture
async def server() -> AsyncIterator[HostileServer]:
    async with HostileServer() as hostile:
        yield hostile


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


def _env(server: HostileServer, encoding: str = "utf-8") -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FREDDY_")}
    env.update(FREDDY_API_KEY=API_KEY, FREDDY_BASE_URL=server.base_url, PYTHONIOENCODING=encoding)
    return env


async def run_cli(server: HostileServer, *args: str, encoding: str = "utf-8") -> Result:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "freddy_async", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=_env(server, encoding),
    )
    out, err = await asyncio.wait_for(process.communicate(), TIMEOUT)
    assert process.returncode is not None
    result = Result(process.returncode, out.decode(encoding), err.decode(encoding))
    assert "Traceback" not in result.stderr
    return result


def assert_nothing_raw(text: str) -> None:
    for raw in RAW:
        assert raw not in text, (raw, text)
    # Of the control characters, only the line ends the CLI writes itself.
    assert not re.search(r"[\x00-\x09\x0b-\x1f\x7f-\x9f]", text), text


def _report(*extra: str) -> list[str]:
    return ["report", "--org", ORG, "--from", MONTH, "--to", MONTH, *extra]


# -- the terminal ----------------------------------------------------------------------------


async def test_table_shows_server_text_escaped(server: HostileServer) -> None:
    result = await run_cli(server, *_report())

    assert result.returncode == 1  # GONE failed
    assert_nothing_raw(result.stdout)
    assert_nothing_raw(result.stderr)
    assert "clear\\x1b[2Jscreen" in result.stdout
    assert "\\x1b]0;pwned\\x07title" in result.stdout
    assert "invoice\\u202efdp.exe" in result.stdout
    assert "\\x1b[2Jok\\x9b31m" in result.stdout  # an unknown status, as the server spelled it
    assert "\\tcmd" in result.stdout
    long_row = next(line for line in result.stdout.splitlines() if line.startswith("ak_long"))
    assert long_row.split()[1] == "a" * 21 + "~"
    error_line = [line for line in result.stdout.splitlines() if line.startswith(GONE)][-1]
    assert "404 \\x1b[2JNOT_FOUND" in error_line
    assert "\\x1b]0;pwned\\x07gone\\u2066" in error_line


async def test_table_columns_stay_aligned_with_escaped_text(server: HostileServer) -> None:
    result = await run_cli(server, *_report())

    lines = result.stdout.splitlines()
    header = next(line for line in lines if line.startswith("KEY ID"))
    end = header.index("MONTHS OK") + len("MONTHS OK")  # a right-aligned column
    rows = [line for line in lines if line.split(" ")[0] in {*server.keys, GONE}][: len(server.keys) + 1]
    assert len(rows) == len(server.keys) + 1
    for row in rows:
        # rich aligns display columns, in which a CJK character takes two.
        assert _shown_in(row, end - 3, end) in {"1/1", "0/1"}, (row, end)
        assert _shown_in(row, end, end + 1) == " "


def _shown_in(line: str, start: int, stop: int) -> str:
    """The characters of ``line`` shown in display columns ``start`` to ``stop - 1``."""
    shown, column = [], 0
    for char in line:
        if start <= column < stop:
            shown.append(char)
        column += cell_len(char)
    return "".join(shown)


async def test_stderr_shows_server_text_escaped(server: HostileServer) -> None:
    retried = await run_cli(server, *_report("--keys", FLAKY, "--verbose"))

    assert retried.returncode == 0, retried.stderr
    assert_nothing_raw(retried.stderr)
    assert_nothing_raw(retried.stdout)
    retry_line = next(line for line in retried.stderr.splitlines() if "retrying" in line)
    assert "503 \\x1b[2JBUSY" in retry_line
    assert "trace\\x1b]0;pwned\\x07" in retry_line

    denied = await run_cli(server, "report", "--org", DENIED_ORG, "--from", MONTH, "--to", MONTH)

    assert denied.returncode == 1
    assert denied.stdout == ""
    assert_nothing_raw(denied.stderr)
    assert len(denied.stderr.splitlines()) == 1
    assert "\\x1b]0;pwned\\x07no\\x1b[2J access to \\u202eorg_denied" in denied.stderr


@pytest.mark.parametrize("fmt", ["table", "csv"])
async def test_text_the_output_cannot_encode_is_shown_escaped(server: HostileServer, fmt: str) -> None:
    result = await run_cli(server, *_report("--keys", "ak_cafe", "--format", fmt), encoding="ascii")

    assert result.returncode == 0, result.stderr
    assert "caf\\xe9 \\u65e5\\u672c" in result.stdout


async def test_daily_table_shows_the_organization_escaped(server: HostileServer) -> None:
    result = await run_cli(server, "daily", "--org", ORG, "--month", MONTH)

    assert result.returncode == 0, result.stderr
    assert_nothing_raw(result.stdout)
    assert_nothing_raw(result.stderr)
    assert f"{LINK}\\x1b[2J" in result.stdout.splitlines()[0]


async def test_a_listed_id_that_cannot_be_used_is_reported_not_fatal(server: HostileServer) -> None:
    args = ["report", "--org", BAD_ID_ORG, "--from", MONTH, "--to", MONTH]
    table = await run_cli(server, *args)

    assert table.returncode == 1, table.stderr
    assert_nothing_raw(table.stdout)
    assert_nothing_raw(table.stderr)
    assert "TOTAL (3 keys)" in table.stdout
    assert "1/3" in table.stdout  # ak_clear's one month
    error_lines = [line for line in table.stdout.splitlines() if "ResponseValidationError" in line]
    # In the table's order: by cost (none fetched), then by key ID.
    assert [line.split()[0] for line in error_lines] == ["ak/../x", "ak_\\x1b]0;pwned\\x07"]
    assert "2 months of 2 keys failed" in table.stderr

    jsonl = await run_cli(server, *args, "--format", "jsonl")
    records = {r["api_key_id"]: r for r in map(json.loads, jsonl.stdout.splitlines())}
    assert set(records) == {"ak_clear", *BAD_IDS}
    assert records["ak_clear"]["error"] is None
    for key_id in BAD_IDS:
        assert records[key_id]["error"]["class"] == "ResponseValidationError"
        assert records[key_id]["usage"] is None


# -- the spreadsheet -------------------------------------------------------------------------

# The columns that hold numbers: written as the API sent them, never touched.
NUMBER_COLUMNS = (
    "month", "year", "usage_total_requests", "usage_total_cost", "usage_total_synapses",
    "usage_total_neurons", "usage_average_cost_per_request", "limit_monthly_limit",
    "limit_utilization_percentage", "limit_remaining_budget", "error_status", "error_attempts",
)


async def test_csv_neutralises_formulas_and_keeps_numbers(server: HostileServer) -> None:
    result = await run_cli(server, *_report("--format", "csv"))

    assert result.returncode == 1
    rows = {row["api_key_id"]: row for row in csv.DictReader(io.StringIO(result.stdout, newline=""))}
    assert set(rows) == {"ak_clear", "ak_title", "ak_link", "'+1+1", "'@SUM(A1)", "'-2+3", "ak_bidi",
                         "ak_tab", "ak_over", "ak_long", "ak_cafe", "ak_nolimit", FLAKY, GONE}
    assert rows["ak_link"]["api_key_name"] == "'" + LINK
    assert rows["'+1+1"]["api_key_name"] == "'+1+1"
    assert rows["'@SUM(A1)"]["api_key_name"] == "'@SUM(A1)"
    assert rows["'-2+3"]["api_key_name"] == "'-2+3"
    assert rows["ak_tab"]["api_key_name"] == "'\tcmd"
    assert rows["ak_tab"]["limit_status"] == "'" + LINK
    assert rows["ak_nolimit"]["api_key_name"] == "-7"  # a number in a text cell is no formula
    assert rows[GONE]["error_trace_id"] == "'" + GONE_TRACE
    # Not a formula: the rest of the text is kept as the server sent it (csv is data).
    assert rows["ak_clear"]["api_key_name"] == f"clear{CLEAR}screen"
    assert rows[GONE]["error_code"] == GONE_CODE
    assert rows[GONE]["error_message"] == "'" + GONE_MESSAGE

    # The numbers, negative ones included, exactly as the API wrote them.
    over, nolimit = rows["ak_over"], rows["ak_nolimit"]
    assert over["limit_remaining_budget"] == "-12.50"
    assert over["usage_total_cost"] == "112.50"
    assert over["limit_monthly_limit"] == "100.00"
    assert nolimit["usage_total_cost"] == "1E+3"  # Decimal("1e3"): the same number
    assert nolimit["limit_remaining_budget"] == nolimit["limit_monthly_limit"] == ""
    assert rows[GONE]["error_status"] == "404"
    for row in rows.values():
        for column in NUMBER_COLUMNS:
            assert not row[column].startswith("'"), (column, row)
            if row[column]:
                Decimal(row[column])


async def test_csv_loses_nothing(server: HostileServer) -> None:
    result = await run_cli(server, *_report("--format", "csv"))

    def original(cell: str) -> str:
        return cell[1:] if cell.startswith("'") else cell

    names = {original(row["api_key_id"]): original(row["api_key_name"])
             for row in csv.DictReader(io.StringIO(result.stdout, newline=""))}
    assert {key_id: names[key_id] for key_id in server.keys} == {
        key.id: key.name for key in server.keys.values()
    }


async def test_daily_csv_neutralises_the_organization(server: HostileServer) -> None:
    result = await run_cli(server, "daily", "--org", ORG, "--month", MONTH, "--format", "csv")

    assert result.returncode == 0, result.stderr
    (row,) = csv.DictReader(io.StringIO(result.stdout, newline=""))
    assert row["organization_id"] == "'" + DAILY_ORG
    assert row["cost"] == "1.50"


@pytest.mark.skipif(sys.platform == "win32", reason="needs a pseudo-terminal")
async def test_csv_on_a_terminal_shows_control_characters_escaped(server: HostileServer) -> None:
    argv = [sys.executable, "-m", "freddy_async", *_report("--format", "csv")]
    result = await on_terminal(argv, env=_env(server), columns=200, stream="stdout")

    assert result.returncode == 1, result.piped
    terminal = result.shown.replace("\r\n", "\n")  # the terminal's own line ends
    assert_nothing_raw(terminal)
    rows = {row["api_key_id"]: row for row in csv.DictReader(io.StringIO(terminal, newline=""))}
    assert rows["ak_clear"]["api_key_name"] == "clear\\x1b[2Jscreen"
    assert rows["ak_tab"]["api_key_name"] == "'\\tcmd"
    assert rows["ak_link"]["api_key_name"] == "'" + LINK
    assert rows["ak_over"]["limit_remaining_budget"] == "-12.50"


# -- JSON ------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["jsonl", "json"])
async def test_json_escapes_control_characters_and_keeps_text_exact(
    server: HostileServer, fmt: str
) -> None:
    result = await run_cli(server, *_report("--format", fmt))

    assert result.returncode == 1
    assert_nothing_raw(result.stdout)
    if fmt == "jsonl":
        records = [json.loads(line, parse_float=Decimal) for line in result.stdout.splitlines()]
    else:
        records = json.loads(result.stdout, parse_float=Decimal)
    by_id: Mapping[str, dict[str, Any]] = {r["api_key_id"]: r for r in records}
    assert {key.id: by_id[key.id]["api_key_name"] for key in server.keys.values()} == {
        key.id: key.name for key in server.keys.values()
    }
    assert by_id["ak_tab"]["limit"]["status"] == LINK
    assert by_id["ak_over"]["limit"]["remaining_budget"] == Decimal("-12.50")
    assert str(by_id["ak_over"]["limit"]["remaining_budget"]) == "-12.50"
    assert by_id[GONE]["error"]["code"] == GONE_CODE
    assert by_id[GONE]["error"]["message"] == GONE_MESSAGE


# -- the helpers -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("plain text, 12.50 CHF", "plain text, 12.50 CHF"),
        ("caf\u00e9 \u65e5\u672c \u2588", "caf\u00e9 \u65e5\u672c \u2588"),  # printable: as is
        (CLEAR, "\\x1b[2J"),
        (TITLE, "\\x1b]0;pwned\\x07"),
        ("a\x00b\tc\nd\re\x7ff", "a\\x00b\\tc\\nd\\re\\x7ff"),
        ("\x9b31m\x85", "\\x9b31m\\x85"),  # C1: CSI and NEL
        ("\u202ax\u202by\u202cz\u202d\u202e", "\\u202ax\\u202by\\u202cz\\u202d\\u202e"),
        ("\u2066\u2067\u2068\u2069", "\\u2066\\u2067\\u2068\\u2069"),
        ("\u200e\u200f\u061c", "\\u200e\\u200f\\u061c"),  # the invisible direction marks
        ("\u2028\u2029", "\\u2028\\u2029"),  # line and paragraph separators
        ("", ""),
    ],
)
def test_for_terminal_escapes_control_and_bidi_characters(text: str, shown: str) -> None:
    assert for_terminal(text) == shown
    assert_nothing_raw(for_terminal(text))


@pytest.mark.parametrize(
    ("text", "cell"),
    [
        (LINK, "'" + LINK),
        ("+1+1", "'+1+1"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tcmd", "'\tcmd"),
        ("\rcmd", "'\rcmd"),
        ("  =1+1", "'  =1+1"),  # leading blanks are skipped by some spreadsheets
        ("-", "'-"),
        ("-12.50", "-12.50"),  # numbers stay numbers, negative ones included
        ("+3", "+3"),
        ("1e3", "1e3"),
        ("-1.5E-3", "-1.5E-3"),
        ("-.5", "-.5"),
        ("Production Key", "Production Key"),
        ("a=b", "a=b"),
        ("'quoted", "'quoted"),
        ("", ""),
    ],
)
def test_for_spreadsheet_neutralises_formulas_only(text: str, cell: str) -> None:
    assert for_spreadsheet(text) == cell
