"""The command line ``holmes-forensics`` (or ``python -m forensics``): one module per group of commands.

* :mod:`.main` - the parser and :func:`main` (a :class:`~forensics.errors.ForensicsError` becomes one line, exit 2);
* :mod:`.common` - progress on the console, the audit options, a spec from them or from a record;
* :mod:`.audit` - ``demo``, ``audit``, ``export-queries``, ``verify``, ``reverify``;
* :mod:`.scan` - ``scan`` (many suspects, a JSON line each, in process or on Ray);
* :mod:`.bench` - ``bench`` and ``stress`` (the attack zoo).
"""
from .main import build_parser, main

__all__ = ["build_parser", "main"]
