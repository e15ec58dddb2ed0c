"""freddy-usage and hostile server text: terminal escapes, bidi overrides, formulas."""

from __future__ import annotations

import re

import pytest

from freddy_async._cli._safe import for_spreadsheet, for_terminal

CLEAR = "\x1b[2J"  # clears the screen
TITLE = "\x1b]0;pwned\x07"  # sets the window title
BIDI = "\u202e"  # right-to-left override: "invoice\u202efdp.exe" reads as "invoiceexe.pdf"
LINK = '=HYPERLINK("http://evil.example","x")'

# What must never reach a terminal raw: ESC, BEL, the C1 CSI, the bidi overrides.
RAW = ("\x1b", "\x07", "\x9b", BIDI, "\u2066")


def assert_nothing_raw(text: str) -> None:
    for raw in RAW:
        assert raw not in text, (raw, text)
    # Of the control characters, only the line ends the CLI writes itself.
    assert not re.search(r"[\x00-\x09\x0b-\x1f\x7f-\x9f]", text), text


# -- the helpers -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("plain text, 12.50 CHF", "plain text, 12.50 CHF"),
        ("caf\u00e9 \u65e5\u672c \u2588", "caf\u00e9 \u65e5\u672c \u2588"),  # printable: as is
        (CLEAR, "\\x1b[2J"),
        (TITLE, "\\x1b]0;pwned\\x07"),
        ("a\x00b\tc\nd\re\x7ff", "a\\x00b\\tc\\nd\\re\\x7ff"),
        ("\x9b31m\x85", "\\x9b31m\\x85"),  # C1: CSI and NEL
        ("\u202ax\u202by\u202cz\u202d\u202e", "\\u202ax\\u202by\\u202cz\\u202d\\u202e"),
        ("\u2066\u2067\u2068\u2069", "\\u2066\\u2067\\u2068\\u2069"),
        ("\u200e\u200f\u061c", "\\u200e\\u200f\\u061c"),  # the invisible direction marks
        ("\u2028\u2029", "\\u2028\\u2029"),  # line and paragraph separators
        ("", ""),
    ],
)
def test_for_terminal_escapes_control_and_bidi_characters(text: str, shown: str) -> None:
    assert for_terminal(text) == shown
    assert_nothing_raw(for_terminal(text))


@pytest.mark.parametrize(
    ("text", "cell"),
    [
        (LINK, "'" + LINK),
        ("+1+1", "'+1+1"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tcmd", "'\tcmd"),
        ("\rcmd", "'\rcmd"),
        ("  =1+1", "'  =1+1"),  # leading blanks are skipped by some spreadsheets
        ("-", "'-"),
        ("-12.50", "-12.50"),  # numbers stay numbers, negative ones included
        ("+3", "+3"),
        ("1e3", "1e3"),
        ("-1.5E-3", "-1.5E-3"),
        ("-.5", "-.5"),
        ("Production Key", "Production Key"),
        ("a=b", "a=b"),
        ("'quoted", "'quoted"),
        ("", ""),
    ],
)
def test_for_spreadsheet_neutralises_formulas_only(text: str, cell: str) -> None:
    assert for_spreadsheet(text) == cell
