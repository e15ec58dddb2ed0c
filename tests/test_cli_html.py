"""``report --format html`` opened in headless Chromium: the chart's bars are drawn and add up.

The page is written by the command line against a FakeFreddyServer, then Chromium renders it
twice: ``--dump-dom`` for the document as the browser built it, ``--screenshot`` for the pixels.
Without Chromium the test is skipped, except where ``FREDDY_REQUIRE_CHROMIUM`` is set (``.ci/run``
installs Chromium and sets it) or ``CI=true``: there a missing browser is a failure.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import struct
import subprocess
import zlib
from collections import defaultdict
from collections.abc import AsyncIterator, Sequence
from decimal import Decimal
from html.parser import HTMLParser
from pathlib import Path

import pytest
from test_cli import ORG, run_cli

from freddy_async.testing import FakeFreddyServer

MONTHS = ["2025-01", "2025-02", "2025-03", "2025-04"]
WINDOW = (760, 420)  # enough for the title and the chart
FIRST_COLOUR = (0x4E, 0x79, 0xA7)  # the costliest key's colour
OTHER_COLOUR = (0xBA, 0xB0, 0xAC)


def _chromium() -> str | None:
    names = ("chromium", "chromium-browser", "google-chrome")
    found = next((path for path in map(shutil.which, names) if path), None)
    if found is None and (os.environ.get("FREDDY_REQUIRE_CHROMIUM") or os.environ.get("CI") == "true"):
        pytest.fail("Chromium is required here (FREDDY_REQUIRE_CHROMIUM or CI=true) but is not installed")
    return found


@pytest.fixture
async def server() -> AsyncIterator[FakeFreddyServer]:
    async with FakeFreddyServer(keys=9, org_id=ORG, seed=3) as fake:
        yield fake


class _Page(HTMLParser):
    """The bars of the chart and the totals row, as the browser's DOM has them."""

    def __init__(self) -> None:
        super().__init__()
        self.bars: list[dict[str, str]] = []
        self.total: dict[str, str] = {}
        self.tags: set[str] = set()
        self.sources: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {name: value or "" for name, value in attrs}
        self.tags.add(tag)
        self.sources += [value for name, value in found.items() if name in ("src", "href")]
        if tag == "rect" and found.get("class") == "bar":
            self.bars.append(found)
        elif tag == "tr" and found.get("id") == "total":
            self.total = found


def _browser(chromium: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
               "--force-color-profile=srgb", "--hide-scrollbars", f"--user-data-dir={profile}", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=90, check=True)


def _pixels(png: bytes) -> tuple[int, int, int, bytes]:
    """Width, height, bytes per pixel and the unfiltered pixel rows of an 8-bit RGB(A) PNG."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    chunks: dict[bytes, bytes] = defaultdict(bytes)
    at = 8
    while at < len(png):
        length, kind = struct.unpack(">I4s", png[at : at + 8])
        chunks[kind] += png[at + 8 : at + 8 + length]
        at += 12 + length
    width, height, depth, colour_type, _, _, interlace = struct.unpack(">IIBBBBB", chunks[b"IHDR"])
    assert depth == 8 and colour_type in (2, 6) and interlace == 0
    size = 3 if colour_type == 2 else 4
    raw, stride = zlib.decompress(chunks[b"IDAT"]), width * size
    rows, previous = bytearray(), bytearray(stride)
    for y in range(height):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for i in range(stride):
            left = line[i - size] if i >= size else 0
            up, corner = previous[i], previous[i - size] if i >= size else 0
            if kind == 1:
                line[i] = (line[i] + left) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + up) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif kind == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                line[i] = (line[i] + (left if pa <= pb and pa <= pc else up if pb <= pc else corner)) & 0xFF
        rows += line
        previous = line
    return width, height, size, bytes(rows)


def _count_near(pixels: tuple[int, int, int, bytes], colour: Sequence[int], tolerance: int = 8) -> int:
    width, height, size, rows = pixels
    return sum(
        1 for at in range(0, width * height * size, size)
        if all(abs(rows[at + c] - colour[c]) <= tolerance for c in range(3))
    )


async def test_the_html_chart_is_drawn_and_sums_to_the_table(
    server: FakeFreddyServer, tmp_path: Path
) -> None:
    chromium = _chromium()
    if chromium is None:
        pytest.skip("Chromium is not installed (.ci/run installs it)")
    page = tmp_path / "usage.html"
    result = await run_cli("report", "--org", ORG, "--from", MONTHS[0], "--to", MONTHS[-1],
                           "--format", "html", "-o", str(page), server=server)
    assert result.returncode == 0, result.stderr
    text = page.read_text(encoding="utf-8")

    shot = tmp_path / "shot.png"
    url = page.as_uri()
    dom = await asyncio.to_thread(_browser, chromium, tmp_path / "profile", "--dump-dom", url)
    size = f"--window-size={WINDOW[0]},{WINDOW[1]}"
    await asyncio.to_thread(_browser, chromium, tmp_path / "profile", size, f"--screenshot={shot}", url)

    parsed = _Page()
    parsed.feed(dom.stdout)
    # Self-contained: nothing loaded from anywhere.
    assert "script" not in parsed.tags and "link" not in parsed.tags and parsed.sources == []
    assert "url(" not in text and "@import" not in text
    # The bars add up to the table's total, and each month's to that month's cost.
    expected = server.expected_total_cost(months=MONTHS)
    drawn_total = sum(Decimal(bar["data-cost"]) for bar in parsed.bars)
    assert drawn_total == Decimal(parsed.total["data-cost"]) == expected
    for month in MONTHS:
        drawn = sum(Decimal(bar["data-cost"]) for bar in parsed.bars if bar["data-month"] == month)
        assert drawn == server.expected_total_cost(months=[month])
    assert all(float(bar["height"]) > 0 for bar in parsed.bars)
    # The five costliest keys each have a colour, the other four are one grey segment a month.
    keys = {bar["data-key"] for bar in parsed.bars}
    ranked = sorted(server.key_ids, key=lambda k: (-server.expected_total_cost([k], months=MONTHS), k))
    assert keys <= {*ranked[:5], "other"} and "other" in keys
    assert f"{expected:,.2f}" in text

    pixels = _pixels(shot.read_bytes())
    assert pixels[:2] == WINDOW
    assert _count_near(pixels, FIRST_COLOUR) > 500  # a bar 40 px wide and many px tall, per month
    assert _count_near(pixels, OTHER_COLOUR) > 100
