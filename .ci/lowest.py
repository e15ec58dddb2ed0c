"""Print a pip constraints file pinning every ``name>=X`` requirement of pyproject.toml to ``X``.

Covers the dependencies and every extra, so the run on them proves the declared minima true.
Usage: python .ci/lowest.py [pyproject.toml] > constraints.txt  (needs Python 3.11+ for tomllib)
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import tomllib

LOWER_BOUND = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*>=\s*([^\s,;]+)")


def lowest_pins(pyproject: dict[str, object]) -> list[str]:
    """Return ``name==X`` for each requirement with a ``>=X`` lower bound, sorted by name."""
    project = pyproject["project"]
    assert isinstance(project, dict)
    requirements = list(project.get("dependencies", []))
    for extra in project.get("optional-dependencies", {}).values():
        requirements += extra
    pins = {}
    for requirement in requirements:
        match = LOWER_BOUND.match(requirement)
        if match:
            name = re.sub(r"[-_.]+", "-", match[1]).lower()
            pins[name] = f"{name}=={match[2]}"
    return [pins[name] for name in sorted(pins)]


if __name__ == "__main__":
    path = Path(sys.argv[1] if len(sys.argv) > 1 else "pyproject.toml")
    print("\n".join(lowest_pins(tomllib.loads(path.read_text(encoding="utf-8")))))
