"""Server text made harmless where it is shown: on a terminal, and in a spreadsheet.

Key names, statuses, error codes and messages come from the server, and a server (or whoever
named a key) can put anything in them: escape sequences that clear the screen or set the
window title, bidi overrides that make ``exe.pdf`` read ``fdp.exe``, formulas a spreadsheet
runs. These pure functions are applied where the text is written; the values themselves, and
the json/jsonl output, keep it exactly as it came.
"""

from __future__ import annotations

import re

__all__ = ["for_spreadsheet", "for_terminal"]

# C0 and C1 controls (ESC starts every escape sequence; the C1 CSI \x9b is one by itself) and
# DEL; the invisible characters that reorder or break what follows them: the bidi marks,
# embeddings, overrides and isolates (U+061C, U+200E-U+200F, U+202A-U+202E, U+2066-U+2069)
# and the line and paragraph separators.
_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]")

# What a spreadsheet reads as the start of a formula (OWASP "CSV Injection"), after the
# blanks that some of them skip.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
# A plain number, which a spreadsheet reads as that number whatever its sign.
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")

_SHORT = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    if char in _SHORT:
        return _SHORT[char]
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def for_terminal(text: str) -> str:
    """Show the control, bidi and line-breaking characters of ``text`` escaped, as ``\\x1b``.

    Tab, line feed and carriage return are shown as ``\\t``, ``\\n``, ``\\r``; characters past
    U+00FF as ``\\u202e``. The result has no character that moves the cursor, changes the
    terminal or reorders the line, so it takes exactly its length in columns (wide characters
    aside).
    """
    return _UNSAFE.sub(_escape, text)


def for_spreadsheet(text: str) -> str:
    """Keep a spreadsheet from running ``text`` as a formula: prefix it with ``'`` if it would.

    A text that starts (after blanks) with ``=``, ``+``, ``-``, ``@``, tab or carriage return is
    a formula to a spreadsheet, unless it is a plain number such as ``-12.50``, which is left
    as it is. Numbers the API sends as numbers never come here.
    """
    head = text.lstrip(" ")
    if head.startswith(_FORMULA_START) and not _NUMBER.fullmatch(text):
        return "'" + text
    return text
