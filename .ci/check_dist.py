"""Check what the built sdist and wheel in DIST carry: LICENSE in both, and in the sdist all it tests.

Usage: python .ci/check_dist.py DIST  (run from the project root, after `python -m build --outdir DIST`)
"""

from __future__ import annotations

import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# What the sdist's own tests read, besides the package and the tests themselves.
SDIST_DIRS = ("freddy_async", "tests", "benchmarks", ".ci")
SDIST_FILES = ("LICENSE", "README.md", "CHANGELOG.md", "pyproject.toml")


def source_files() -> set[str]:
    """Files of the source tree the sdist must hold: tracked by git, or on disk outside a checkout."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", "--", *SDIST_DIRS], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.split()
    except (OSError, subprocess.CalledProcessError):
        listed = [
            str(path.relative_to(ROOT))
            for top in SDIST_DIRS
            for path in (ROOT / top).rglob("*")
            if path.is_file() and "__pycache__" not in path.parts
        ]
    return {*listed, *SDIST_FILES}


def problems(dist: Path) -> list[str]:
    found: list[str] = []
    [sdist] = dist.glob("*.tar.gz")
    [wheel] = dist.glob("*.whl")
    license_text = (ROOT / "LICENSE").read_text(encoding="utf-8")

    with tarfile.open(sdist) as tar:
        names = {name.partition("/")[2]: name for name in tar.getnames()}
        missing = sorted(source_files() - set(names))
        found += [f"{sdist.name} lacks {name}" for name in missing]
        if "LICENSE" in names:
            member = tar.extractfile(names["LICENSE"])
            assert member is not None
            if member.read().decode() != license_text:
                found.append(f"{sdist.name}: LICENSE differs from the source tree's")

    with zipfile.ZipFile(wheel) as whl:
        licenses = [name for name in whl.namelist() if name.endswith(".dist-info/licenses/LICENSE")]
        if not licenses:
            found.append(f"{wheel.name} lacks *.dist-info/licenses/LICENSE")
        elif whl.read(licenses[0]).decode() != license_text:
            found.append(f"{wheel.name}: LICENSE differs from the source tree's")
        [metadata] = [name for name in whl.namelist() if name.endswith(".dist-info/METADATA")]
        headers = whl.read(metadata).decode().partition("\n\n")[0].splitlines()
        for header in ("License-Expression: MIT", "License-File: LICENSE"):
            if header not in headers:
                found.append(f"{wheel.name}: METADATA lacks {header!r}")
    return found


if __name__ == "__main__":
    dist = Path(sys.argv[1])
    print("checked:", ", ".join(sorted(p.name for p in dist.iterdir())))
    errors = problems(dist)
    print("\n".join(errors) or "sdist and wheel carry LICENSE; the sdist holds everything its tests read")
    sys.exit(1 if errors else 0)
