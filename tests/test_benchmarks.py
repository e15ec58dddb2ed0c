"""Every benchmark script still runs: ``--quick`` in a subprocess, exit 0, a table and verdicts.

No timing is asserted here (a MISS line is a result, not a failure); see benchmarks/RESULTS.md.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
SCRIPTS = ["overhead", "ratelimit", "memory", "first_result", "convert", "costs_vs_report", "cache"]
# --quick keeps each script to a few seconds; this only stops a hung one from hanging the suite.
TIMEOUT = 120


@pytest.mark.slow
@pytest.mark.parametrize("name", SCRIPTS)
def test_script_runs_quick_and_prints_its_table(name: str) -> None:
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / f"{name}.py"), "--quick"],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        cwd=BENCHMARKS.parent,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    lines = result.stdout.splitlines()
    assert any(line.startswith("machine: ") for line in lines), result.stdout
    header = next((i for i, line in enumerate(lines) if line.startswith("| ")), None)
    assert header is not None, result.stdout
    assert re.fullmatch(r"\|[-|]+\|", lines[header + 1]), result.stdout
    assert lines[header + 2].startswith("| "), "the table has no rows"
    assert [line for line in lines if re.match(r"(PASS|MISS) ", line)], result.stdout


def test_every_script_is_covered() -> None:
    found = {p.stem for p in BENCHMARKS.glob("*.py") if not p.stem.startswith("_")}
    assert found == set(SCRIPTS)
