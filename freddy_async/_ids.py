"""Organization and key IDs: checked before any request, and quoted as one URL path segment."""

from __future__ import annotations

import functools
import re
from typing import Any
from urllib.parse import quote

from ._config import MAX_ID_LENGTH

__all__ = ["check_id", "segment"]

# Path-unsafe or invisible characters: '/', '?', '#', '\', any whitespace or control character,
# and lone surrogates (a JSON body may hold "\ud800"), which no URL can encode.
_BAD_ID_CHARS = re.compile(r"[/?#\\\s\x00-\x1f\x7f-\x9f\ud800-\udfff]")
# What quote(..., safe="") leaves as it is: an ID made of these alone needs no quoting.
_UNRESERVED = re.compile(r"[A-Za-z0-9_.~-]+")


def check_id(value: Any, name: str) -> str:
    """Return ``value`` if it can be an ID; raise ``ValueError`` naming ``name`` otherwise."""
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a string, not {type(value).__name__}")
    if not value:
        raise ValueError(f"{name} must not be empty")
    if len(value) > MAX_ID_LENGTH:
        raise ValueError(f"{name} is {len(value)} characters long; at most {MAX_ID_LENGTH}")
    if _BAD_ID_CHARS.search(value) or value.strip(".") == "":
        # "." and ".." would be collapsed by URL normalisation into another endpoint's path.
        raise ValueError(f"{name} {value!r} contains characters that cannot be in an ID")
    return value


# Every request quotes its organization's ID, and a batch's every job its key's.
@functools.lru_cache(maxsize=4096)
def segment(value: str) -> str:
    """``value`` quoted as one path segment (most IDs need no quoting, and skip it)."""
    return value if _UNRESERVED.fullmatch(value) else quote(value, safe="")
