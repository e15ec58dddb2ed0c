"""Every default of freddy_async in one place: read by the client, the retry policy and the CLI.

Nothing here does anything; a default changes here and nowhere else.
"""

from __future__ import annotations

__all__ = [
    "API_KEY_ENV",
    "BASE_URL_ENV",
    "DEFAULT_BASE_URL",
    "INITIAL_BACKOFF",
    "MAX_BACKOFF",
    "MAX_CONCURRENCY",
    "MAX_ERROR_PAGE_BYTES",
    "MAX_ID_LENGTH",
    "MAX_PAGE_BYTES",
    "MAX_PAGE_SIZE",
    "MAX_RETRIES",
    "MAX_USAGE_BYTES",
    "MAX_WAIT",
    "RETRY_DEADLINE",
    "TIMEOUT",
]

# -- where, and as whom ------------------------------------------------------------------------
DEFAULT_BASE_URL = "https://api.aitronos.com"
API_KEY_ENV = "FREDDY_API_KEY"
BASE_URL_ENV = "FREDDY_BASE_URL"

# -- how hard one call tries -------------------------------------------------------------------
TIMEOUT = 30.0  # seconds one attempt may take, from connecting to the last byte
MAX_RETRIES = 3  # retries after the first attempt
RETRY_DEADLINE = 60.0  # seconds from a call's first send after which it stops retrying
INITIAL_BACKOFF = 0.5  # the first retry's backoff ceiling, doubled at each retry ...
MAX_BACKOFF = 8.0  # ... up to this
MAX_CONCURRENCY = 16  # requests in flight at once, over all tasks using one client

# -- pacing --------------------------------------------------------------------------------------
# The longest single wait taken on a server's word: a Retry-After or a Reset of hours (a spent
# budget) must not park every later call for hours. A 429 asking for longer is not throttling
# but a spending limit, and fails at once.
MAX_WAIT = 60.0

# -- caps on what comes back -----------------------------------------------------------------------
# The largest decoded body each kind of answer may have: far above any honest one, and small
# enough that parsing a hostile one at the cap blocks the event loop for milliseconds, not the
# quarter of a second 8 MiB took. A usage answer is under 2 KB (64 KiB of JSON: under 2 ms); a
# daily page (31 days) or a page of 100 keys is tens of KB (1 MiB of JSON: 15 to 40 ms).
MAX_USAGE_BYTES = 64 * 1024
MAX_PAGE_BYTES = 1024 * 1024
# An error page only feeds a clipped message and the first 4 KB of ``body``.
MAX_ERROR_PAGE_BYTES = 64 * 1024
MAX_PAGE_SIZE = 100  # keys per page of the listing, the API's maximum
MAX_ID_LENGTH = 256  # characters of an organization or key ID
