"""freddy-usage: the command line of freddy_async (also ``python -m freddy_async``).

::

    freddy-usage report --org ORG [--keys ID,ID...|@FILE|-] (--from 2025-01 [--to 2025-11] | --last N)
                        [--format table|csv|jsonl|json|html] [--top N] [--status exceeded,warning]
    freddy-usage daily  --org ORG --month 2025-11 [--format FMT]
    freddy-usage costs  --org ORG [--from 2025-01] [--to 2025-11] [--format FMT] [--top N]
    freddy-usage demo   [--keys 200] [--months 12] [--requests-per-minute N]

Data goes to stdout (or ``--output``); progress and status go to stderr, the progress display
(rich) only when stderr is a terminal, so ``freddy-usage report ... --format csv | ...`` stays
clean. csv, jsonl and json are sorted by key ID and month: two runs over the same data give the
same bytes.

Text from the server (key names, statuses, error messages) never drives the terminal: its
control and bidi characters are shown escaped (``\x1b``, ``\u202e``) in tables, on stderr, and
in csv written to a terminal. A csv text cell that a spreadsheet would run as a formula
(``=``, ``+``, ``-``, ``@``, tab, CR) starts with ``'``; numbers are written as the API sent them.
json and jsonl keep the text exactly (JSON escapes control characters itself).

Exit status: 0 everything was fetched; 1 some (key, month) pairs failed (the rest is still
written) or the API refused the whole batch; 2 a usage error (bad month, missing API key);
130 interrupted. The API key is read from the environment only, never from the command line,
and never appears in any output.

This module is the console-script entry point only: the arguments, commands, records and
writers live in ``freddy_async._cli``, which alone imports rich (the ``cli`` extra); the library
never imports either.
"""

from __future__ import annotations

from ._cli._main import main

__all__ = ["main"]
