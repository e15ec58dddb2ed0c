"""Messages of the library, told in the command line's words: its flags, not its parameters.

``FreddyClient`` names its keyword arguments in what it raises (``base_url``,
``allow_insecure_http=True``); a person at the command line set them with flags.
"""

from __future__ import annotations

import re

__all__ = ["with_flags"]

# Whole words only: "api_key_id" is not "api_key".
_FLAGS = {
    "allow_insecure_http=True": "--allow-insecure-http",
    "base_url": "--base-url",
    "max_concurrency": "--max-concurrency",
    "max_retries": "--max-retries",
    "requests_per_minute": "--requests-per-minute",
    "retry_deadline": "--retry-deadline",
    "timeout": "--timeout",
    "as api_key": "in the environment (--api-key-env)",
    "api_key": "the API key",
}
_PATTERN = re.compile("|".join(rf"(?<![\w-]){re.escape(name)}(?![\w-])" for name in _FLAGS))


def with_flags(message: str) -> str:
    """``message`` with each library parameter it names replaced by its flag."""
    return _PATTERN.sub(lambda match: _FLAGS[match.group()], message)
