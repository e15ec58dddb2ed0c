"""ID checks and path segments (_ids): what can be an ID, and how it travels in a URL."""

from __future__ import annotations

from typing import Any

import pytest

from freddy_async._config import MAX_ID_LENGTH
from freddy_async._ids import check_id, segment


@pytest.mark.parametrize(
    "value", ["apikey_abc123", "ak_1", "apk_X-1.2~3", "org:colon@", "é", "a" * MAX_ID_LENGTH]
)
def test_an_id_is_given_back_unchanged(value: str) -> None:
    assert check_id(value, "api_key_id") == value


@pytest.mark.parametrize(
    ("value", "says"),
    [
        (None, "must be a string, not NoneType"),
        (7, "must be a string, not int"),
        ("", "must not be empty"),
        ("a" * (MAX_ID_LENGTH + 1), f"at most {MAX_ID_LENGTH}"),
        ("a/b", "cannot be in an ID"),
        ("a?b", "cannot be in an ID"),
        ("a#b", "cannot be in an ID"),
        ("a\\b", "cannot be in an ID"),
        ("a b", "cannot be in an ID"),
        ("a\nb", "cannot be in an ID"),
        ("a\x7fb", "cannot be in an ID"),
        ("\ud800", "cannot be in an ID"),
        (".", "cannot be in an ID"),
        ("..", "cannot be in an ID"),
    ],
)
def test_what_cannot_be_an_id_is_a_value_error_naming_the_argument(value: Any, says: str) -> None:
    with pytest.raises(ValueError, match=r"^api_key_id") as info:
        check_id(value, "api_key_id")
    assert says in str(info.value)


@pytest.mark.parametrize(
    ("value", "quoted"),
    [
        ("apikey_abc-1.2~3", "apikey_abc-1.2~3"),  # unreserved: as it is
        ("org with:colon@", "org%20with%3Acolon%40"),
        ("é", "%C3%A9"),
        ("a%2Fb", "a%252Fb"),  # a percent sign is itself quoted: no double decoding
    ],
)
def test_a_segment_is_one_quoted_path_segment(value: str, quoted: str) -> None:
    assert segment(value) == quoted
