"""A suspect behind a paid HTTP API: ask it the query images, read its answers, keep every paid answer.

* :mod:`.formats` - one response read as an :class:`Answer` (logits, probabilities, top-k, label), :class:`ApiError`;
* :mod:`.journal` - :class:`Journal`, the crash-safe JSON-lines record of paid answers that a resumed run reads;
* :mod:`.client` - :class:`Endpoint`, :class:`Budget`, :class:`ApiClient` (retries, rate limit, budget, bounds).

Names load on first use (``httpx`` only when the client is wanted).
"""
from __future__ import annotations

import importlib
from typing import Any

_WHERE = {"Answer": "formats", "ApiError": "formats", "parse_answer": "formats", "Journal": "journal",
          "ApiClient": "client", "Budget": "client", "BudgetSpent": "client", "Endpoint": "client",
          "png_bytes": "client"}
__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
