"""freddy-usage on a terminal: the progress display (ETA under a rate limit), width and colour.

The command runs in a subprocess whose stdout or stderr is a pseudo-terminal of a known size;
what it draws there is read back from the terminal's other end.
"""

from __future__ import annotations

import re
import sys
from collections.abc import AsyncIterator, Mapping

import pytest
from rich.cells import cell_len
from test_cli import MONTH_ARGS, ORG, _env, on_terminal

from freddy_async.testing import FakeFreddyServer

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="needs a pseudo-terminal")

# Runs the command line with every wait on the library's virtual clock (the demo's fake server
# included), so a rate-limited run is instant and the same every time.
VIRTUAL_TIME = (
    "import sys\n"
    "from freddy_async.cli import main\n"
    "from freddy_async.testing import instant_retries\n"
    "with instant_retries():\n"
    "    status = main(sys.argv[1:])\n"
    "sys.exit(status)\n"
)
ESCAPE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
COLOUR = re.compile(r"\x1b\[(?:[0-9]+;)*(?:3[0-9]|9[0-7])[;m]")  # a foreground colour


@pytest.fixture
async def server() -> AsyncIterator[FakeFreddyServer]:
    async with FakeFreddyServer(keys=6, org_id=ORG, seed=7) as fake:
        yield fake


def _terminal_env(base: Mapping[str, str], **extra: str) -> dict[str, str]:
    env = {k: v for k, v in base.items() if k not in ("COLUMNS", "LINES", "NO_COLOR", "FORCE_COLOR")}
    return {**env, "TERM": "xterm-256color", **extra}


async def test_the_progress_line_shows_an_eta_under_a_rate_limit() -> None:
    # 10 keys x 2 months at 100 requests/min: about 12 s of (virtual) waiting for the limit.
    argv = [sys.executable, "-c", VIRTUAL_TIME, "demo", "--keys", "10", "--months", "2",
            "--requests-per-minute", "100", "--format", "csv"]
    result = await on_terminal(argv, env=_terminal_env(_env(None)), columns=120, stream="stderr")

    assert result.returncode == 0, result.shown
    lines = [ESCAPE.sub("", part) for part in re.split(r"[\r\n]", result.shown)]
    etas = [line for line in lines if re.search(r"\d+/10 keys  ETA \d+:\d\d  limit [\d,]+/min  ", line)]
    assert etas, lines
    # The ETA counts down to nothing as the keys finish.
    assert re.search(r"ETA 0:00", etas[-1]) and any(not re.search(r"ETA 0:00", line) for line in etas)
    assert all(cell_len(line) <= 120 for line in lines if "/10 keys" in line)
    # stdout got the data only.
    assert result.piped.startswith("api_key_id,")
    assert "ETA" not in result.piped and "\x1b" not in result.piped


@pytest.mark.parametrize("no_color", [False, True])
async def test_a_table_on_a_terminal_fits_its_width_and_colours_unless_no_color(
    server: FakeFreddyServer, no_color: bool
) -> None:
    extra = {"NO_COLOR": "1"} if no_color else {}
    argv = [sys.executable, "-m", "freddy_async", "report", "--org", ORG, *MONTH_ARGS]
    result = await on_terminal(argv, env=_terminal_env(_env(server), **extra), columns=72, stream="stdout")

    assert result.returncode == 0, result.piped
    assert server.api_key not in result.shown + result.piped
    assert bool(COLOUR.search(result.shown)) is not no_color
    lines = ESCAPE.sub("", result.shown).replace("\r\n", "\n").splitlines()
    assert any(line.startswith("TOTAL") for line in lines)
    assert all(cell_len(line) <= 72 for line in lines), lines
    assert f"{server.expected_total_cost(months=['2025-01', '2025-02', '2025-03']):,.2f}" in "\n".join(lines)
