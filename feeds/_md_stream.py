"""LP market-data traffic as FIX bytes, built with simplefix: for tests and the feeds benchmark.

:func:`encode_md` builds one 35=W / 35=X. :func:`sim_traffic` turns a :class:`SimMarket` run into
the byte stream each LP would send: a snapshot-only LP sends a full 35=W per step; an incremental
LP sends one 35=W first and then 35=X with new / change / delete keyed by MDEntryID (one id per
price level, so a moving price is a delete plus a new, as most ECN feeds do it).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import simplefix

from engine.fixedpoint import Grid
from feeds.sim_market import LpBook, SimMarket

__all__ = ["encode_md", "encode_other", "sim_traffic", "Entry"]

FieldValue = str | bytes | int
Entry = Sequence[tuple[int, FieldValue]]


def encode_md(
    msg_type: str,
    seq: int,
    entries: Sequence[Entry],
    header: Sequence[tuple[int, str | bytes | int]] = (),
    sender: str = "LP",
    target: str = "LAGG",
) -> bytes:
    """One market-data message: standard header, ``header`` fields, 268 and the entries' fields."""
    msg = simplefix.FixMessage()
    msg.append_pair(8, "FIX.4.4")
    msg.append_pair(35, msg_type)
    msg.append_pair(49, sender)
    msg.append_pair(56, target)
    msg.append_pair(34, seq)
    msg.append_pair(52, "20261123-09:00:00.000")
    for tag, value in header:
        msg.append_pair(tag, value)
    msg.append_pair(268, len(entries))
    for entry in entries:
        for tag, value in entry:
            msg.append_pair(tag, value)
    return bytes(msg.encode())


def encode_other(msg_type: str, seq: int, fields: Sequence[tuple[int, str | bytes | int]] = ()) -> bytes:
    """A non-market-data message (heartbeat, reject, ...)."""
    msg = simplefix.FixMessage()
    msg.append_pair(8, "FIX.4.4")
    msg.append_pair(35, msg_type)
    msg.append_pair(49, "LP")
    msg.append_pair(56, "LAGG")
    msg.append_pair(34, seq)
    for tag, value in fields:
        msg.append_pair(tag, value)
    return bytes(msg.encode())


def _levels(book: LpBook) -> dict[str, tuple[int, int, int]]:
    out = {}
    for side, pxs, qtys in ((0, book.bid_px, book.bid_qty), (1, book.ask_px, book.ask_qty)):
        for px, qty in zip(pxs, qtys, strict=True):
            out[f"{'BA'[side]}{px}"] = (side, px, qty)
    return out


def sim_traffic(
    market: SimMarket,
    steps: int,
    lps: Sequence[str],
    incremental: Sequence[bool],
    symbols: Sequence[str],
    grids: dict[str, tuple[Grid, Grid]],
) -> Iterator[tuple[int, bytes]]:
    """Yield ``(lp index, message bytes)`` for ``steps`` market steps, LPs interleaved per step.

    ``grids[symbol]`` is (price grid, quantity grid); every instrument's ``262`` is its index in
    ``symbols`` (our MDReqID convention).
    """
    seq = dict.fromkeys(range(len(lps)), 0)
    last: dict[tuple[int, str], dict[str, tuple[int, int, int]]] = {}
    for _ in range(steps):
        books = market.step()
        for j, lp in enumerate(lps):
            for k, sym in enumerate(symbols):
                book = books.get((lp, sym))
                if book is None:
                    continue
                px_grid, qty_grid = grids[sym]
                levels = _levels(book)
                prev = last.get((j, sym))
                seq[j] += 1
                header: list[tuple[int, FieldValue]] = [(262, k), (55, sym)]
                entries: list[list[tuple[int, FieldValue]]]
                if prev is None or not incremental[j]:
                    entries = []
                    for key, (side, px, qty) in levels.items():
                        fields: list[tuple[int, FieldValue]] = [
                            (269, side), (270, px_grid.to_text(px)), (271, qty_grid.to_text(qty))
                        ]
                        if incremental[j]:
                            fields.append((278, key))
                        entries.append(fields)
                    yield j, encode_md("W", seq[j], entries, header)
                else:
                    entries = []
                    for key, (side, _px, _qty) in prev.items():
                        if key not in levels:
                            entries.append([(279, 2), (269, side), (278, key)])
                    for key, (side, px, qty) in levels.items():
                        old = prev.get(key)
                        if old is None:
                            entries.append(
                                [(279, 0), (269, side), (278, key), (270, px_grid.to_text(px)),
                                 (271, qty_grid.to_text(qty))]
                            )
                        elif old[2] != qty:
                            entries.append([(279, 1), (269, side), (278, key), (271, qty_grid.to_text(qty))])
                    if entries:
                        yield j, encode_md("X", seq[j], entries, [(262, k)])
                    else:
                        seq[j] -= 1
                last[(j, sym)] = levels
