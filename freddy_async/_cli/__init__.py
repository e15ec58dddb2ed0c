"""The parts of the ``freddy-usage`` command line behind its entry module, ``freddy_async.cli``.

Standard library only (beyond freddy_async); nothing in the library imports this package.
"""
