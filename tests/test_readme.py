"""The README's runnable examples run, and its set-up commands match what CI runs."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
BLOCKS = re.findall(r"```python\n(.*?)```", README, flags=re.DOTALL)
# Examples that bring their own fake server need no account and no network: run them all.
RUNNABLE = [block for block in BLOCKS if "FakeFreddyServer(" in block]


def test_there_are_runnable_examples() -> None:
    assert RUNNABLE


@pytest.mark.parametrize("code", RUNNABLE, ids=[f"example{i}" for i in range(len(RUNNABLE))])
def test_readme_example_runs(code: str) -> None:
    result = subprocess.run(
        [sys.executable, "-W", "error", "-c", code], capture_output=True, text=True, timeout=120,
        cwd=ROOT, check=False,
    )
    assert result.returncode == 0, result.stderr


def test_the_two_setup_commands_come_first() -> None:
    first_block = re.search(r"```bash\n(.*?)```", README, flags=re.DOTALL)
    assert first_block is not None
    lines = first_block.group(1).strip().splitlines()
    assert len(lines) == 2
    assert lines[0].endswith("freddy-usage demo")
    assert lines[1].endswith("pytest")
    # CI installs and tests the way the README's second command says.
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    install = re.search(r'pip install -e "(\.\[[^\]]*\])"', lines[1])
    assert install is not None
    assert f'pip install -q -e "{install.group(1)}"' in ci
