"""LP update batches: the one input format of the engine.

A batch is a preallocated structure of arrays that the feeds fill (one row per event) and the
engine applies in a single kernel call, in row order. Rows are:

``SET_LEVEL``  (lp, instr, side, level, price, qty, ts_ns)
    Set level ``level`` of the LP's ladder on ``side`` to (price, qty). ``qty == 0`` empties the
    level. Validity is carried by the quantity, never by the price: 0 and negative prices are
    ordinary prices.
``CLEAR_BOOK`` (lp, instr, ts_ns)
    Empty both sides of the LP's book for the instrument (sent before a fresh full snapshot, or
    when the LP rejects or drops a symbol).
``LP_DOWN``    (lp, ts_ns)
    The LP is gone (disconnect, logout, staleness decided by the feed): its books are cleared for
    every instrument and it is excluded from pricing until ``LP_UP``.
``LP_UP``      (lp, ts_ns)
    The LP may be priced again. Feeds send it only after the fresh snapshot rows, so an LP never
    re-enters pricing with an old book.
``TOUCH``      (lp, instr, ts_ns)
    The LP's book for the instrument was confirmed unchanged at ``ts_ns`` (a snapshot or an
    incremental that moved no level): it is as fresh as if a level had been set. A snapshot-only
    LP resending the same book must not go stale for lack of changed levels.

Prices are int64 ticks of the instrument's tick size; quantities are int64 quantity steps.

Storage: all fields live in one ``int64`` array ``rows`` of shape ``[N_FIELDS, capacity]`` and the
named attributes (``kind``, ``lp``, ...) are contiguous row views of it. The engine kernel takes
``rows`` as a single argument because Numba's per-call cost grows with every array argument it
must unbox (8 separate arrays cost ~1 µs per call, which is most of a batch-of-1 budget).
"""

from __future__ import annotations

import numpy as np

__all__ = ["BID", "ASK", "SET_LEVEL", "CLEAR_BOOK", "LP_DOWN", "LP_UP", "TOUCH", "UpdateBatch"]

BID = 0
ASK = 1

SET_LEVEL = 0
CLEAR_BOOK = 1
LP_DOWN = 2
LP_UP = 3
TOUCH = 4

# Row indices of UpdateBatch.rows (one field per row, one update per column).
F_KIND, F_LP, F_INSTR, F_SIDE, F_LEVEL, F_PRICE, F_QTY, F_TS = range(8)
N_FIELDS = 8


class UpdateBatch:
    """A reusable batch of LP updates; ``n`` rows are valid. Grows by doubling if it must."""

    __slots__ = ("n", "rows", "kind", "lp", "instr", "side", "level", "price", "qty", "ts_ns")

    def __init__(self, capacity: int = 1024) -> None:
        self.n = 0
        self._allocate(max(int(capacity), 1))

    def _allocate(self, capacity: int) -> None:
        self.rows = np.zeros((N_FIELDS, capacity), np.int64)
        self.kind = self.rows[F_KIND]
        self.lp = self.rows[F_LP]
        self.instr = self.rows[F_INSTR]
        self.side = self.rows[F_SIDE]
        self.level = self.rows[F_LEVEL]
        self.price = self.rows[F_PRICE]
        self.qty = self.rows[F_QTY]
        self.ts_ns = self.rows[F_TS]

    @property
    def capacity(self) -> int:
        return len(self.kind)

    def clear(self) -> None:
        self.n = 0

    def _grow(self) -> None:
        old = self.rows
        self._allocate(2 * self.capacity)
        self.rows[:, : old.shape[1]] = old

    def _row(self, kind: int, lp: int, instr: int, ts_ns: int) -> int:
        i = self.n
        if i == self.capacity:
            self._grow()
        self.kind[i] = kind
        self.lp[i] = lp
        self.instr[i] = instr
        self.ts_ns[i] = ts_ns
        self.side[i] = 0
        self.level[i] = 0
        self.price[i] = 0
        self.qty[i] = 0
        self.n = i + 1
        return i

    def set_level(self, lp: int, instr: int, side: int, level: int, price: int, qty: int, ts_ns: int) -> None:
        i = self._row(SET_LEVEL, lp, instr, ts_ns)
        self.side[i] = side
        self.level[i] = level
        self.price[i] = price
        self.qty[i] = qty

    def clear_book(self, lp: int, instr: int, ts_ns: int) -> None:
        self._row(CLEAR_BOOK, lp, instr, ts_ns)

    def lp_down(self, lp: int, ts_ns: int) -> None:
        self._row(LP_DOWN, lp, -1, ts_ns)

    def lp_up(self, lp: int, ts_ns: int) -> None:
        self._row(LP_UP, lp, -1, ts_ns)

    def touch(self, lp: int, instr: int, ts_ns: int) -> None:
        self._row(TOUCH, lp, instr, ts_ns)
