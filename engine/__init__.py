"""Pricing core: typed config, fixed-point numbers, the aggregated book and tier pricing.

Public surface of the engine: :class:`Engine` (Numba kernels over preallocated arrays),
:class:`ReferenceEngine` (the plain-Python specification it is tested against), :class:`TierQuote`
(one tier's published ladder) and :class:`UpdateBatch` (the one input format, with its row kinds).

Names are resolved lazily so that ``engine.config`` (and ``lagg check-config``) never pays for
importing Numba.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ASK": "engine.batch",
    "BID": "engine.batch",
    "CLEAR_BOOK": "engine.batch",
    "LP_DOWN": "engine.batch",
    "LP_UP": "engine.batch",
    "SET_LEVEL": "engine.batch",
    "UpdateBatch": "engine.batch",
    "Engine": "engine.book",
    "TierQuote": "engine.book",
    "ReferenceEngine": "engine.reference",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'engine' has no attribute {name!r}")
