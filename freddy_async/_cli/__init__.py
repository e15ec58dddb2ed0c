"""The ``freddy-usage`` command line behind its entry module, ``freddy_async.cli``.

``_args`` (the parser, what flags mean) -> ``_run`` (one invocation: streams, client, output)
-> ``_report`` and ``_commands`` (fetch, then write) -> ``_records`` (pure: records, rows,
totals) -> ``_writers`` (csv/jsonl/json), ``_tables`` (rich tables), ``_html`` (the page and
its SVG chart); ``_console`` (rich progress and status lines on stderr), ``_summary`` (closing
lines), ``_flags`` (library parameters told as flags), ``_safe`` (server text made harmless).
rich is imported here only; nothing in the library imports this package.
"""
