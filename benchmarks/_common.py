"""Shared by the benchmark scripts: the fake server in its own process, medians, tables, verdicts.

The server runs as ``python -m freddy_async.testing`` in a child process, so the CPU time read
in the benchmark's own process (``time.process_time``) is the client's alone.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import IO, Any

import aiohttp

__all__ = [
    "Server",
    "Verdicts",
    "cpu_seconds",
    "current_rss_bytes",
    "list_key_ids",
    "machine_line",
    "max_rss_bytes",
    "median",
    "parse_args",
    "print_table",
    "server_cpu_seconds",
]

_STARTUP_TIMEOUT = 60.0
_STOP_TIMEOUT = 10.0
_PAGE_SIZE = 100


def median(values: Sequence[float]) -> float:
    """The median of a non-empty sequence."""
    return float(statistics.median(values))


def cpu_seconds() -> float:
    """CPU time (user + system) of this process so far."""
    return time.process_time()


_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def current_rss_bytes() -> int:
    """Resident set size of this process now (Linux: /proc/self/statm; else the high-water mark)."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * _PAGE
    except OSError:
        return max_rss_bytes()


def max_rss_bytes() -> int:
    """The process's RSS high-water mark (``ru_maxrss``: KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak) if sys.platform == "darwin" else int(peak) * 1024


def machine_line() -> str:
    """Cores, Python and aiohttp versions, as written into RESULTS.md."""
    return (
        f"machine: {os.cpu_count()} cores, {platform.system()} {platform.machine()}, "
        f"Python {platform.python_version()} ({platform.python_implementation()}), "
        f"aiohttp {aiohttp.__version__}"
    )


def parse_args(
    description: str, argv: Sequence[str] | None = None, *, profile: bool = False
) -> argparse.Namespace:
    """The options every script takes: ``--quick`` and ``--rounds`` (and ``--profile`` if asked)."""
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small sizes and one round (for tests)")
    parser.add_argument("--rounds", type=int, default=None, help="rounds to take the median of")
    if profile:
        parser.add_argument(
            "--profile",
            metavar="PATH",
            default=None,
            help="after the measured rounds, run one more client round under cProfile (CPU time), "
            "save the stats to PATH and print the library's hottest functions",
        )
    args = parser.parse_args(argv)
    if args.rounds is not None and args.rounds < 1:
        parser.error("--rounds must be 1 or more")
    return args


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Print a Markdown table (so it can be pasted into RESULTS.md as is)."""
    cells = [[str(h) for h in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row: Sequence[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |"

    print(line(cells[0]))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in cells[1:]:
        print(line(row))
    sys.stdout.flush()


@dataclass
class Verdicts:
    """One ``PASS``/``MISS`` line per target; a miss is reported, never raised."""

    lines: list[str] = field(default_factory=list)

    def check(self, name: str, ok: bool, detail: str) -> bool:
        line = f"{'PASS' if ok else 'MISS'} {name}: {detail}"
        self.lines.append(line)
        return ok

    def print(self) -> None:
        for line in self.lines:
            print(line)
        sys.stdout.flush()


def server_cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of another process, from /proc (0.0 where unavailable)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            text = stat.read().decode()
    except OSError:
        return 0.0
    # Field 2 (the command) may contain spaces; the rest follows its closing parenthesis.
    fields = text[text.rindex(")") + 2 :].split()
    ticks = int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


class Server:
    """``python -m freddy_async.testing`` in a child process, for a ``with`` block.

    Args:
        keys: API keys of the organization.
        extra: more command-line options, e.g. ``["--requests-per-minute", "6000"]``.
    """

    def __init__(self, keys: int, extra: Sequence[str] = ()) -> None:
        self.args = [
            sys.executable, "-m", "freddy_async.testing", "--port", "0", "--keys", str(keys), *extra,
        ]
        self.base_url = ""
        self.api_key = ""
        self.org_id = ""
        self._process: subprocess.Popen[str] | None = None
        self._stderr: IO[str] | None = None

    @property
    def pid(self) -> int:
        assert self._process is not None
        return self._process.pid

    def __enter__(self) -> Server:
        self._stderr = tempfile.TemporaryFile("w+")
        self._process = subprocess.Popen(
            self.args, stdout=subprocess.PIPE, stderr=self._stderr, text=True, bufsize=1
        )
        try:
            self._read_banner(self._process)
        except BaseException:
            self._stop()
            raise
        return self

    def _read_banner(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        stdout = process.stdout
        found: dict[str, str] = {}
        done = threading.Event()

        def read() -> None:
            for line in stdout:
                match = re.fullmatch(r"(FREDDY_[A-Z_]+)=(.*)", line.strip())
                if match:
                    found[match[1]] = match[2]
                if {"FREDDY_BASE_URL", "FREDDY_API_KEY", "FREDDY_ORG_ID"} <= found.keys():
                    done.set()
            done.set()  # end of output: the server exited

        # A daemon thread keeps reading, so a chatty server never blocks on a full pipe.
        threading.Thread(target=read, daemon=True).start()
        if not done.wait(_STARTUP_TIMEOUT) or "FREDDY_ORG_ID" not in found:
            raise RuntimeError(f"the fake server did not start: {' '.join(self.args)}\n{self._errors()}")
        self.base_url = found["FREDDY_BASE_URL"]
        self.api_key = found["FREDDY_API_KEY"]
        self.org_id = found["FREDDY_ORG_ID"]

    def _errors(self) -> str:
        if self._stderr is None:
            return ""
        self._stderr.seek(0)
        return self._stderr.read()[-4000:]

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop()

    def _stop(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None


async def list_key_ids(srv: Server) -> list[str]:
    """Every key ID of the server's organization, read with plain aiohttp (not the client)."""
    ids: list[str] = []
    headers = {"X-API-Key": srv.api_key}
    async with aiohttp.ClientSession() as session:
        page = 1
        while True:
            url = f"{srv.base_url}/v1/organizations/{srv.org_id}/api-keys?page={page}&page_size={_PAGE_SIZE}"
            async with session.get(url, headers=headers) as response:
                response.raise_for_status()
                data = await response.json()
            ids.extend(key["id"] for key in data["keys"])
            if not data["keys"] or page * _PAGE_SIZE >= data["total"]:
                return ids
            page += 1
