"""Run a FakeFreddyServer standalone: ``python -m freddy_async.testing --port 8080 --keys 200``.

Prints ``FREDDY_BASE_URL=...``, ``FREDDY_API_KEY=...`` and ``FREDDY_ORG_ID=...`` on stdout
(one line each, flushed at once, so a launching process can read them), then serves until
SIGINT or SIGTERM and exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from collections.abc import Callable, Sequence
from typing import get_args

from ._server import (
    Algorithm,
    Casing,
    FakeFreddyServer,
    InvalidParams,
    ListShape,
    RateLimitHeaders,
    ResetFormat,
    RetryAfterFormat,
)

__all__ = ["main"]


def _extra_org(text: str) -> tuple[str, int]:
    org, sep, count = text.partition("=")
    if not sep or not org or not count.isdigit():
        raise argparse.ArgumentTypeError(f"expected ORG_ID=KEYS, not {text!r}")
    return org, int(count)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m freddy_async.testing",
        description="Serve the fake Freddy analytics API on 127.0.0.1 until SIGINT/SIGTERM.",
    )
    _add_data_options(parser.add_argument)
    _add_wire_options(parser.add_argument)
    _add_limit_options(parser.add_argument)
    _add_fault_options(parser.add_argument)
    return parser


def _add_data_options(add: Callable[..., object]) -> None:
    add("--port", type=int, default=0, help="port to listen on; 0 picks a free one (default)")
    add("--keys", type=int, default=20, help="API keys of the organization (default 20)")
    add("--org-id", default="org_demo", help="the organization's ID (default org_demo)")
    add(
        "--extra-org",
        type=_extra_org,
        action="append",
        default=[],
        metavar="ORG_ID=KEYS",
        help="another organization and its key count (repeatable)",
    )
    add("--seed", type=int, default=0, help="seed of the data and fault draws (default 0)")
    add("--api-key", default=None, help="the API key to accept (default: a random one)")


def _add_wire_options(add: Callable[..., object]) -> None:
    add(
        "--casing",
        choices=get_args(Casing),
        default="snake",
        help="body key casing: snake (default) as the API's generated SDKs read it, which are "
        "derived from the server's own models; camel as the usage docs page prints it; docs as "
        "the daily page mixes them",
    )
    add(
        "--list-shape",
        choices=get_args(ListShape),
        default="keys",
        help="key listing shape: keys (default; keys/total/page/page_size, the only one the "
        "generated SDKs know) or api_keys (api_keys/pagination, also in the docs)",
    )
    add(
        "--invalid-params",
        choices=get_args(InvalidParams),
        default="fastapi",
        help="answer to a bad query parameter: fastapi (default; 422 with a detail list, as the "
        "OpenAPI spec declares) or docs (the docs pages' 400 INVALID_REQUEST envelope)",
    )


def _add_limit_options(add: Callable[..., object]) -> None:
    add("--requests-per-minute", type=float, default=None, help="per-organization rate limit")
    add("--rate-limit-burst", type=float, default=None, help="rate limit bucket capacity")
    add(
        "--rate-limit-algorithm",
        choices=get_args(Algorithm),
        default="token_bucket",
        help="how the limit counts (default token_bucket)",
    )
    add("--rate-limit-window", type=float, default=60.0, help="window in seconds (default 60)")
    add(
        "--rate-limit-headers",
        choices=get_args(RateLimitHeaders),
        default="x-ratelimit",
        help="budget header dialect (default x-ratelimit)",
    )
    add(
        "--rate-limit-reset",
        choices=get_args(ResetFormat),
        default="epoch",
        help="X-RateLimit-Reset as epoch seconds, epoch-ms or delta (default epoch)",
    )
    add(
        "--retry-after-format",
        choices=get_args(RetryAfterFormat),
        default="seconds",
        help="how a 429 says how long to wait (default seconds)",
    )
    add("--shared-quota", type=float, default=0.0, help="share of the quota another consumer uses")
    add("--clock-skew", type=float, default=0.0, help="seconds the server's clock runs ahead")
    add(
        "--exhausted-key",
        action="append",
        default=[],
        metavar="KEY_ID",
        help="a key whose spending limit is used up: 429 USAGE_LIMIT_EXCEEDED (repeatable)",
    )


def _add_fault_options(add: Callable[..., object]) -> None:
    add("--error-rate", type=float, default=0.0, help="share of 500/502/503 answers")
    add("--drop-rate", type=float, default=0.0, help="share of connections dropped unanswered")
    add("--truncate-rate", type=float, default=0.0, help="share of 200 bodies cut short")
    add("--latency", type=float, default=0.0, help="seconds added to every answer")
    add("--slow-rate", type=float, default=0.0, help="share of answers held back")
    add("--slow-delay", type=float, default=30.0, help="seconds a slow answer is held back")
    add("--fail-first", type=int, default=0, help="first N attempts of each request answer 503")


async def _serve(args: argparse.Namespace) -> None:
    server = FakeFreddyServer(
        keys=args.keys,
        org_id=args.org_id,
        api_key=args.api_key,
        seed=args.seed,
        casing=args.casing,
        list_shape=args.list_shape,
        invalid_params=args.invalid_params,
        extra_orgs=dict(args.extra_org),
        port=args.port,
        requests_per_minute=args.requests_per_minute,
        rate_limit_burst=args.rate_limit_burst,
        rate_limit_algorithm=args.rate_limit_algorithm,
        rate_limit_window=args.rate_limit_window,
        rate_limit_headers=args.rate_limit_headers,
        rate_limit_reset=args.rate_limit_reset,
        retry_after_format=args.retry_after_format,
        shared_quota=args.shared_quota,
        clock_skew=args.clock_skew,
        exhausted_keys=args.exhausted_key,
        error_rate=args.error_rate,
        drop_rate=args.drop_rate,
        truncate_rate=args.truncate_rate,
        latency=args.latency,
        slow_rate=args.slow_rate,
        slow_delay=args.slow_delay,
        fail_first=args.fail_first,
        # A standalone server may answer millions of requests: keep counts, not a log.
        log_requests=False,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        # Windows has no add_signal_handler; Ctrl+C still arrives there as KeyboardInterrupt.
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    async with server:
        print(f"FREDDY_BASE_URL={server.base_url}", flush=True)
        print(f"FREDDY_API_KEY={server.api_key}", flush=True)
        print(f"FREDDY_ORG_ID={server.org_id}", flush=True)
        print(
            f"Serving {len(server.key_ids)} keys of {server.org_id} on {server.base_url} "
            f"({server.casing} casing, {server.list_shape!r} listing, {server.invalid_params} answers "
            "to bad parameters: see --help); stop with Ctrl+C",
            file=sys.stderr,
            flush=True,
        )
        await stop.wait()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the server until SIGINT/SIGTERM; return the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        asyncio.run(_serve(args))
    except ValueError as exc:
        parser.error(str(exc))
    except KeyboardInterrupt:  # pragma: no cover - only where signal handlers are missing
        pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
