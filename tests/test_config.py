"""Every default is written once (_config), and each reader takes it from there."""

from __future__ import annotations

import inspect

from freddy_async import FreddyClient, _config, _ratelimit
from freddy_async._retry import RetryPolicy


def test_the_client_signature_takes_its_defaults_from_config() -> None:
    parameters = inspect.signature(FreddyClient).parameters
    assert parameters["timeout"].default == _config.TIMEOUT
    assert parameters["max_retries"].default == _config.MAX_RETRIES
    assert parameters["max_concurrency"].default == _config.MAX_CONCURRENCY
    assert parameters["retry_deadline"].default == _config.RETRY_DEADLINE


def test_the_retry_policy_and_the_pacer_share_the_wait_cap() -> None:
    policy = RetryPolicy()
    assert policy.max_retry_after == _ratelimit.MAX_WAIT == _config.MAX_WAIT
    assert (policy.max_retries, policy.deadline) == (_config.MAX_RETRIES, _config.RETRY_DEADLINE)
    assert (policy.initial_backoff, policy.max_backoff) == (_config.INITIAL_BACKOFF, _config.MAX_BACKOFF)


def test_a_client_built_with_no_options_reports_the_defaults() -> None:
    client = FreddyClient("sk-test-0123456789")
    assert client.max_concurrency == _config.MAX_CONCURRENCY
    assert client.base_url == _config.DEFAULT_BASE_URL
    assert f"max_retries={_config.MAX_RETRIES}" in repr(client)
