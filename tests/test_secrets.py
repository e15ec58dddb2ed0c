"""Secrets and transport security: the API key never leaves, and never in clear text.

The key must be absent from the client's repr and str, from every exception the client raises
(its str, repr, args and attributes, pickled or not, and every exception chained to it), from
every log record at DEBUG level during a retry storm, and from the command line's output.
And it only travels over TLS that is verified, or over plain http to loopback.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
import os
import pickle
import shutil
import ssl
import subprocess
import sys
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

import freddy_async
from freddy_async import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    FreddyClient,
    FreddyError,
    InternalServerError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ResponseValidationError,
    UnprocessableEntityError,
)
from freddy_async.testing import FakeFreddyServer, RecordedWait

SECRET = "fk_live_S3cr3t-K3y-0123456789abcdef"
WRONG = "fk_wrong_N0t-Th3-K3y-9876543210fedcba"
PACKAGE = Path(freddy_async.__file__).resolve().parent


def texts_of(exc: BaseException) -> list[str]:
    """Every text an exception shows or carries: str, repr, args, attributes, traceback text."""
    found = [str(exc), repr(exc), *map(repr, exc.args), *map(repr, vars(exc).values())]
    found.append("".join(traceback.format_exception(exc)))
    return found


def chain_of(exc: BaseException) -> list[BaseException]:
    """The exception and everything chained to it, shown or suppressed."""
    seen: list[BaseException] = []
    todo: list[BaseException | None] = [exc]
    while todo:
        item = todo.pop()
        if item is not None and all(item is not s for s in seen):
            seen.append(item)
            todo += [item.__cause__, item.__context__]
    return seen


def assert_no_secret(exc: BaseException, *secrets: str) -> None:
    copy = pickle.loads(pickle.dumps(exc))
    assert type(copy) is type(exc)
    blob = pickle.dumps(exc)
    for secret in secrets:
        assert secret.encode() not in blob
        for text in texts_of(exc) + texts_of(copy):
            assert secret not in text, text


# -- servers for each error ------------------------------------------------------------------------


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@contextlib.asynccontextmanager
async def tiny_server(handler: Handler, ssl_context: ssl.SSLContext | None = None) -> AsyncIterator[str]:
    """An aiohttp.web server on 127.0.0.1 answering every path with ``handler``; yields its URL."""
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"{'https' if ssl_context else 'http'}://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def answering(status: int, body: str = "", headers: dict[str, str] | None = None) -> Handler:
    async def handler(_request: web.Request) -> web.StreamResponse:
        return web.Response(status=status, text=body, content_type="application/json", headers=headers)

    return handler


def echoing(status: int) -> Handler:
    """A server that repeats the key it was sent in its answer (some APIs do, in error messages)."""

    async def handler(request: web.Request) -> web.StreamResponse:
        key = request.headers.get("X-API-Key", "")
        body = {"success": False, "error": {"code": "INVALID_API_KEY", "message": f"Invalid API key {key}",
                                            "details": {"api_key": key}, "status": status}}
        return web.Response(status=status, text=json.dumps(body), content_type="application/json",
                            headers={"Location": f"/login?key={key}"})

    return handler


async def usage(client: FreddyClient, org: str = "org_demo", key: str = "apikey_1", **kw: Any) -> Any:
    return await client.get_api_key_usage(org, key, **{"month": 1, "year": 2025, **kw})


async def raised(call: Awaitable[Any]) -> FreddyError:
    with pytest.raises(FreddyError) as info:
        await call
    return info.value


async def raise_each_error() -> list[BaseException]:
    """One exception of every class the client raises, each made the way it happens."""
    errors: list[BaseException] = []
    # The docs pages' 400 envelope for a bad parameter, rather than the default 422.
    async with FakeFreddyServer(keys=2, api_key=SECRET, invalid_params="docs") as server:
        base, org, key = server.base_url, server.org_id, server.key_ids[0]
        async with FreddyClient(SECRET, base_url=base, max_retries=0) as client:
            errors.append(await raised(client.get_api_key_daily_usage(org, year=2019, month=1)))  # 400
            errors.append(await raised(usage(client, "org_other", key)))  # 403
            errors.append(await raised(usage(client, org, "apikey_missing")))  # 404
        async with FreddyClient(WRONG, base_url=base, max_retries=0) as client:
            errors.append(await raised(usage(client, org, key)))  # 401, with the wrong key sent
    faulty: list[tuple[dict[str, Any], dict[str, Any]]] = [
        # 429 on the 2nd call (no budget headers to pace by), asking for 60 s: more than the
        # call's deadline, so raised at once
        ({"requests_per_minute": 1, "rate_limit_burst": 1, "rate_limit_headers": "none"},
         {"max_retries": 0, "retry_deadline": 30}),
        ({"fail_first": 9}, {"max_retries": 2}),  # 503 three times
        ({"drop_rate": 1.0}, {"max_retries": 1}),  # no answer
        ({"latency": 5.0}, {"timeout": 0.05, "max_retries": 0}),  # no answer in time
    ]
    for server_options, client_options in faulty:
        server = FakeFreddyServer(keys=1, api_key=SECRET, **server_options)
        async with server, FreddyClient(SECRET, base_url=server.base_url, **client_options) as client:
            if "requests_per_minute" in server_options:
                await usage(client, server.org_id, server.key_ids[0])
            errors.append(await raised(usage(client, server.org_id, server.key_ids[0])))
    answers = [
        answering(422, '{"detail": [{"loc": ["query", "month"], "msg": "bad", "type": "x"}]}'),
        answering(302, "", {"Location": "https://elsewhere.example/"}),
        answering(200, "<html>not json</html>"),
        answering(200, '{"apiKeyId": 5}'),
    ]
    for handler in answers:
        async with tiny_server(handler) as url, FreddyClient(SECRET, base_url=url, max_retries=0) as client:
            errors.append(await raised(usage(client)))
    async with tiny_server(answering(200, "{}")) as url:
        pass  # the port is closed now: connection refused
    async with FreddyClient(SECRET, base_url=url, max_retries=0) as client:
        errors.append(await raised(usage(client)))
    errors.append(await raised(_not_http()))
    with pytest.raises(RuntimeError) as closed:
        await usage(client)  # a closed client
    errors.append(closed.value)
    return errors


async def _not_http() -> Any:
    # Bytes that are not HTTP: aiohttp's parser error carries the request (headers and all).
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")
        await writer.drain()
        writer.close()

    listener = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    try:
        async with FreddyClient(SECRET, base_url=f"http://127.0.0.1:{port}", max_retries=0) as client:
            return await usage(client)
    finally:
        listener.close()
        await listener.wait_closed()


# -- the client and its exceptions ---------------------------------------------------------------


def test_the_key_is_not_in_the_clients_repr_or_str() -> None:
    client = FreddyClient(SECRET, base_url="https://api.aitronos.com/freddy", max_concurrency=3)
    for text in (repr(client), str(client), f"{client}", f"{client!r}"):
        assert SECRET not in text
    assert "api.aitronos.com" in repr(client)  # the repr is still useful


def test_the_key_is_not_in_the_error_for_a_missing_or_bad_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FREDDY_API_KEY", raising=False)
    with pytest.raises(FreddyError) as missing:
        FreddyClient()
    assert_no_secret(missing.value, SECRET)
    for bad in (SECRET + "\n", SECRET + "\r\nX-Injected: 1", "\x00" + SECRET):
        with pytest.raises(ValueError, match="api_key") as info:
            FreddyClient(bad)
        assert_no_secret(info.value, SECRET)


async def test_no_exception_the_client_raises_carries_the_key(waits: list[RecordedWait]) -> None:
    errors = await raise_each_error()
    kinds = {type(e) for e in errors}
    assert kinds >= {
        BadRequestError, AuthenticationError, PermissionDeniedError, NotFoundError, RateLimitError,
        InternalServerError, UnprocessableEntityError, APIStatusError, APIConnectionError,
        APITimeoutError, ResponseValidationError, RuntimeError,
    }
    for error in errors:
        assert_no_secret(error, SECRET, WRONG)


async def test_no_exception_chained_to_one_the_client_raises_carries_the_key(
    waits: list[RecordedWait],
) -> None:
    error = await raised(_not_http())
    for linked in chain_of(error):
        assert SECRET not in repr(linked) and SECRET not in repr(linked.args), type(linked)


async def test_errors_recorded_in_a_batch_do_not_carry_the_key(waits: list[RecordedWait]) -> None:
    server = FakeFreddyServer(keys=20, api_key=SECRET, error_rate=0.5, drop_rate=0.2, truncate_rate=0.2)
    async with server, FreddyClient(SECRET, base_url=server.base_url, max_retries=1) as client:
        keys = [*server.key_ids, "apikey_missing"]
        reports = [r async for r in client.iter_api_key_usage(server.org_id, keys, months=["2025-01"])]
    errors = [e for r in reports for e in r.errors.values()]
    assert {type(e) for e in errors} & {InternalServerError, APIConnectionError}
    for error in errors:
        assert_no_secret(error, SECRET)


@pytest.mark.parametrize("status", [401, 302, 500, 200])
async def test_a_server_echoing_the_key_does_not_put_it_in_the_exception(
    status: int, waits: list[RecordedWait]
) -> None:
    async with tiny_server(echoing(status)) as url:
        client = FreddyClient(SECRET, base_url=url, max_retries=0)
        async with client:
            error = await raised(usage(client))
    assert_no_secret(error, SECRET)


# -- logs ----------------------------------------------------------------------------------------


async def test_debug_logs_of_a_retry_storm_do_not_carry_the_key(
    caplog: pytest.LogCaptureFixture, waits: list[RecordedWait]
) -> None:
    caplog.set_level(logging.DEBUG)
    for name in ("freddy_async", "aiohttp", "asyncio"):
        caplog.set_level(logging.DEBUG, logger=name)
    server = FakeFreddyServer(keys=30, api_key=SECRET, error_rate=0.3, drop_rate=0.05, truncate_rate=0.05,
                              requests_per_minute=60_000, rate_limit_burst=2)
    async with server:
        async with FreddyClient(SECRET, base_url=server.base_url, max_retries=6) as client:
            batch = client.iter_api_key_usage(server.org_id, months=["2025-01", "2025-02"])
            reports = [r async for r in batch]
        async with FreddyClient(WRONG, base_url=server.base_url) as client:  # a 401 on the way
            with pytest.raises(AuthenticationError):
                async for _ in client.iter_api_key_usage(server.org_id, months=["2025-01"]):
                    pass
    assert len(reports) == 30
    ours = [r for r in caplog.records if r.name.startswith("freddy_async")]
    assert any(r.levelno == logging.DEBUG for r in ours), "the storm should have logged every answer"
    assert any("retrying" in r.getMessage() for r in ours), "and every retry"
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    for record in caplog.records:
        texts = [record.getMessage(), formatter.format(record), repr(record.args), repr(vars(record))]
        for secret in (SECRET, WRONG):
            assert all(secret not in text for text in texts), record
    assert SECRET not in caplog.text and WRONG not in caplog.text


# -- the command line ------------------------------------------------------------------------------


def _cli_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("freddy_async.cli") is not None


needs_cli = pytest.mark.skipif(
    not _cli_available(), reason="freddy_async/cli.py does not exist yet: nothing to run"
)


async def run_cli(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-W", "error", "-m", "freddy_async", *args,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def cli_env(key: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FREDDY_")}
    return {**env, "FREDDY_API_KEY": key, **extra}


@needs_cli
@pytest.mark.parametrize("fmt", ["table", "csv", "jsonl", "json"])
async def test_cli_output_never_shows_the_key(fmt: str) -> None:
    # A storm of 429s with millisecond Retry-After values: many retries, no real backoff to wait.
    server = FakeFreddyServer(keys=12, api_key=SECRET, requests_per_minute=600_000, rate_limit_burst=1,
                              extra_orgs={"org_empty": 0})
    async with server:
        common = ("--base-url", server.base_url, "--format", fmt, "-v")
        outputs = [
            await run_cli("report", "--org", server.org_id, "--from", "2025-01", "--to", "2025-02", *common,
                          env=cli_env(SECRET)),
            await run_cli("daily", "--org", server.org_id, "--month", "2025-01", *common,
                          env=cli_env(SECRET)),
        ]
        if fmt == "table":  # the failures once: their messages go to stderr whatever the format
            outputs += [
                await run_cli("report", "--org", server.org_id, "--from", "2025-01", "--to", "2025-01",
                              *common, env=cli_env(WRONG)),
                await run_cli("report", "--org", "org_other", "--keys", "apikey_1", "--from", "2025-01",
                              "--to", "2025-01", *common, env=cli_env(SECRET)),
                # The key given where the NAME of its variable belongs must not be echoed back.
                await run_cli("report", "--org", server.org_id, "--from", "2025-01",
                              "--api-key-env", SECRET, *common, env=cli_env(SECRET)),
            ]
    (ok_code, ok_out, _), *_ = outputs
    assert ok_code == 0 and ok_out.strip()  # the run worked, so there was output to leak into
    assert all(code != 0 for code, _, _ in outputs[2:])
    for code, out, err in outputs:
        for secret in (SECRET, WRONG):
            assert secret not in out and secret not in err, (code, out[-500:], err[-500:])


@needs_cli
async def test_cli_output_never_shows_a_key_the_server_echoes() -> None:
    async with tiny_server(echoing(401)) as url:
        code, out, err = await run_cli("report", "--org", "org_1", "--base-url", url, "--keys", "apikey_1",
                                       "--from", "2025-01", "--to", "2025-01", "-v", env=cli_env(SECRET))
    assert code != 0
    assert SECRET not in out and SECRET not in err


# -- transport security ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "base_url",
    ["http://api.aitronos.com", "http://10.0.0.1", "http://192.168.1.20:8080", "http://[2001:db8::1]",
     "http://localhost.evil.example", "http://127.0.0.1.nip.io", "http://0.0.0.0", "HTTP://API.AITRONOS.COM"],
)
def test_plain_http_to_a_remote_host_is_refused_unless_opted_in(base_url: str) -> None:
    with pytest.raises(ValueError, match="allow_insecure_http"):
        FreddyClient(SECRET, base_url=base_url)
    client = FreddyClient(SECRET, base_url=base_url, allow_insecure_http=True)
    assert client.base_url.lower().startswith("http://")


@pytest.mark.parametrize(
    "base_url",
    ["http://127.0.0.1", "http://127.0.0.1:8080/api", "http://127.8.9.10", "http://localhost:9000",
     "http://LOCALHOST", "http://[::1]:8080"],
)
def test_plain_http_to_loopback_is_fine(base_url: str) -> None:
    FreddyClient(SECRET, base_url=base_url)


def test_there_is_no_option_to_switch_tls_verification_off() -> None:
    # What was checked: the client's options are exactly the documented ones (none about TLS
    # verification or certificates), and no module of the library (the CLI included) builds an
    # SSL context, passes ssl=False or verify_ssl, or turns hostname or certificate checks off.
    # A caller who wants that must build and pass their own aiohttp.ClientSession: explicit, not
    # silent. The certificate test below shows verification is on by default.
    options = set(inspect.signature(FreddyClient.__init__).parameters) - {"self"}
    assert options == {
        "api_key", "base_url", "timeout", "max_retries", "max_concurrency", "requests_per_minute",
        "retry_deadline", "session", "allow_insecure_http", "cache",
    }
    forbidden = ("ssl=False", "verify_ssl", "CERT_NONE", "check_hostname", "ssl.create_default_context",
                 "_create_unverified_context", "trust_env=True", "PYTHONHTTPSVERIFY")
    for source in sorted(PACKAGE.rglob("*.py")):
        if "testing" in source.relative_to(PACKAGE).parts:
            continue  # the fake server speaks plain http on loopback only
        text = source.read_text(encoding="utf-8")
        for token in forbidden:
            assert token not in text, f"{source.name}: {token}"


@needs_cli
def test_the_cli_has_no_option_to_switch_tls_verification_off() -> None:
    for command in ("report", "daily"):
        result = subprocess.run(
            [sys.executable, "-m", "freddy_async", command, "--help"], capture_output=True, text=True,
            timeout=60, check=False,
        )
        assert result.returncode == 0
        options = {word.split("=")[0] for word in result.stdout.split() if word.startswith("--")}
        risky = {o for o in options if any(t in o for t in ("verify", "ssl", "tls", "cert", "insecure"))}
        assert risky <= {"--allow-insecure-http"}


@pytest.fixture(scope="module")
def self_signed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("the openssl command is needed to make a self-signed certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )
    return cert, key


async def test_a_certificate_that_does_not_verify_is_refused_before_the_key_is_sent(
    self_signed: tuple[Path, Path], waits: list[RecordedWait]
) -> None:
    cert, key = self_signed
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    seen: list[str] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        seen.append(request.headers.get("X-API-Key", ""))
        return web.Response(text="{}")

    async with tiny_server(handler, context) as url:
        client = FreddyClient(SECRET, base_url=url, max_retries=1)
        async with client:
            error = await raised(usage(client))
    assert type(error) is APIConnectionError
    assert "certificate" in str(error).lower()
    assert error.attempts == 1  # a certificate that does not verify is not retried
    assert not error.retryable
    assert seen == []  # the handshake failed: no request, no key, ever reached the server
    assert_no_secret(error, SECRET)
