"""What one invocation shares: its arguments, streams, counters, progress display and client."""

from __future__ import annotations

import argparse
import contextlib
import os
import re
from collections.abc import AsyncIterator, Iterator, Sequence

from .._cache import UsageCache
from .._client import FreddyClient
from .._config import API_KEY_ENV, BASE_URL_ENV, DEFAULT_BASE_URL
from .._errors import FreddyError
from .._ids import check_id
from ._args import PROG, UsageError
from ._console import Console, Progress, Redacting, Stats
from ._flags import with_flags

__all__ = ["EXIT_FAILED", "EXIT_INTERRUPTED", "EXIT_OK", "EXIT_USAGE", "Run", "check_ids"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

# A "secret" shorter than this would be found inside ordinary words; no real key is that short.
_MIN_SECRET = 6
# Only a conventional variable name is echoed back: anything else might be the key itself.
_ENV_NAME = re.compile(r"[A-Z_][A-Z0-9_]{0,63}")


class Run:
    """One invocation: its arguments, redacted streams, counters and progress display."""

    def __init__(self, args: argparse.Namespace, stdout: Redacting, console: Console) -> None:
        self.args = args
        self.stdout = stdout
        self.console = console
        self.stats = Stats()
        show = not args.quiet and not args.no_progress and console.err.isatty()
        self.progress = Progress(console, self.stats, enabled=show)
        self.cache: UsageCache | None = None

    def protect(self, secret: str) -> None:
        """Redact ``secret`` from everything written from now on, on every stream."""
        secrets = self.stdout.secrets  # shared by every stream of the run
        if len(secret) >= _MIN_SECRET and secret not in secrets:
            secrets.append(secret)

    def make_client(self) -> FreddyClient:
        """The client the connection flags describe, with the key from the environment."""
        args = self.args
        api_key = _read_api_key(args.api_key_env)
        self.protect(api_key)
        base_url = args.base_url or os.environ.get(BASE_URL_ENV, "").strip() or DEFAULT_BASE_URL
        try:
            client = FreddyClient(
                api_key, base_url=base_url, max_concurrency=args.max_concurrency,
                requests_per_minute=args.requests_per_minute, timeout=args.timeout,
                max_retries=args.max_retries, retry_deadline=args.retry_deadline,
                allow_insecure_http=args.allow_insecure_http, cache=self.cache,
            )
        except ValueError as exc:  # a base URL the client refuses (plain http to a remote host...)
            raise UsageError(f"{PROG} {args.command}: error: {with_flags(str(exc))}") from None
        self.stats.client = client
        return client

    @contextlib.asynccontextmanager
    async def open_cache(self) -> AsyncIterator[None]:
        """Open the cache the flags ask for as ``self.cache`` (none with --no-cache, or for demo,
        whose server is new each run); a bad cache file is a usage error."""
        args = self.args
        if getattr(args, "refresh", False) and args.no_cache:
            raise UsageError(f"{PROG}: error: --refresh stores in the cache: it cannot go with --no-cache")
        if getattr(args, "no_cache", True):
            yield
            return
        cache = UsageCache(args.cache or default_cache_path(), refresh=args.refresh)
        try:
            await cache.__aenter__()
        except FreddyError as exc:
            text = " ".join(str(exc).split())
            raise UsageError(f"{text} (--cache PATH names another file, --no-cache uses none)") from None
        self.cache = self.stats.cache = cache
        try:
            yield
        finally:
            await cache.aclose()

    @contextlib.contextmanager
    def output(self) -> Iterator[Redacting]:
        """stdout, or the ``--output`` file (opened before any request, so a bad path costs none)."""
        path: str | None = self.args.output
        if path is None or path == "-":
            yield self.stdout
            return
        newline = "" if self.args.format == "csv" else None
        try:
            stream = open(path, "w", encoding="utf-8", newline=newline)  # noqa: SIM115
        except OSError as exc:
            raise UsageError(f"{PROG}: error: --output: cannot write {path}: {exc.strerror or exc}") from None
        with stream:
            yield Redacting(stream, self.stdout.secrets)


def default_cache_path() -> str:
    """``$XDG_CACHE_HOME/freddy-usage/cache.sqlite3``, else under ``~/.cache``."""
    base = os.environ.get("XDG_CACHE_HOME", "")
    if not os.path.isabs(base):  # the XDG spec: a relative (or empty) value is ignored
        base = os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, PROG, "cache.sqlite3")


def _read_api_key(env_name: str) -> str:
    value = os.environ.get(env_name, "").strip()
    if value:
        return value
    if env_name == API_KEY_ENV:
        raise UsageError(
            f"no API key: set the {API_KEY_ENV} environment variable "
            "(or name another variable with --api-key-env)"
        )
    if _ENV_NAME.fullmatch(env_name):
        raise UsageError(f"no API key: the environment variable {env_name} (--api-key-env) is not set")
    raise UsageError("--api-key-env takes the NAME of an environment variable, not a key")


def check_ids(command: str, option: str, ids: Sequence[str]) -> None:
    """Refuse an ID the library would refuse, before any request and before --output is opened."""
    for value in ids:
        try:
            check_id(value, "ID")
        except ValueError as exc:
            raise UsageError(f"{PROG} {command}: error: {option}: {exc}") from None
