"""What CI runs, what pyproject.toml declares and what the sdist ships agree with each other."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
CI_RUN = (ROOT / ".ci" / "run").read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def pyproject() -> dict[str, Any]:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    data: dict[str, Any] = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    return data


def ci_versions() -> list[str]:
    found = re.search(r"^VERSIONS=\(([^)]*)\)$", CI_RUN, flags=re.MULTILINE)
    assert found is not None
    return found.group(1).split()


def test_ci_runs_exactly_the_pythons_the_classifiers_name(pyproject: dict[str, Any]) -> None:
    prefix = "Programming Language :: Python :: "
    named = [c[len(prefix):] for c in pyproject["project"]["classifiers"] if re.fullmatch(r".*:: 3\.\d+", c)]
    assert named == ci_versions()
    assert pyproject["project"]["requires-python"] == f">={ci_versions()[0]}"


def test_every_dependency_has_a_lowest_version_that_ci_pins(pyproject: dict[str, Any]) -> None:
    spec = importlib.util.spec_from_file_location("lowest", ROOT / ".ci" / "lowest.py")
    assert spec is not None and spec.loader is not None
    lowest = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(lowest)

    pins = lowest.lowest_pins(pyproject)

    project = pyproject["project"]
    for requirement in project["dependencies"] + project["optional-dependencies"]["test"]:
        name, _, version = requirement.partition(">=")
        name = re.sub(r"\[.*\]", "", name)  # coverage[toml]
        assert f"{name.strip().lower()}=={version.strip()}" in pins, requirement
    assert all(">=" in requirement for requirement in project["dependencies"])


def test_the_sdist_ships_what_the_tests_read_and_the_license(pyproject: dict[str, Any]) -> None:
    include = pyproject["tool"]["hatch"]["build"]["targets"]["sdist"]["include"]
    needed = {"freddy_async", "tests", "benchmarks", ".ci", "README.md", "CHANGELOG.md", "LICENSE"}
    assert needed <= set(include)
    assert pyproject["project"]["license"] == "MIT"
    assert pyproject["project"]["license-files"] == ["LICENSE"]
    license_text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert license_text.startswith("MIT License\n\nCopyright (c) 2026 the freddy_async authors\n")
