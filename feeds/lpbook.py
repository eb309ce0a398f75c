"""LP book normalisation: one LP's market-data entries → the engine's level-indexed ladders.

The engine keeps each LP's book as ladders ``[lp, side, level]``; LPs speak in entries. This module
holds, per (LP, instrument), what the LP has told us, and turns it into ``SET_LEVEL`` rows for
only the levels that changed since the rows we last emitted.

Two ways an LP keys its entries (chosen per LP, :data:`KEYED_BY_ID` or :data:`KEYED_BY_POSITION`):

* **by MDEntryID (278)** (the default; also what a snapshot-only LP uses): an entry table per
  (LP, instrument) of ``id → (side, price, qty)``. A snapshot (35=W) replaces the table; an
  incremental (35=X) entry inserts (279=0), changes (279=1) or deletes (279=2) one id. The ladder
  of a side is the table's distinct prices with qty > 0, best first, sizes summed per price, cut
  to ``levels``. Entries of a snapshot need no id (a snapshot-only LP sends none).
* **by MDEntryPositionNo (290)**: a ladder per side as the LP numbers it (1-based). 279=0 inserts
  at the position and shifts deeper levels down (the last falls off), 279=2 deletes it and shifts
  deeper levels up (the last becomes empty until the LP fills it), 279=1 changes it in place (a
  change of a position we do not hold must carry both 270 and 271, else it is refused and counted
  as ``unknown_id``: a size alone there would be a level without a price). A snapshot places
  entries at their 290 (or, without one, in the order sent per side).

Entry ids: arbitrary byte strings of at most :data:`MAX_ID_LEN` bytes, stored **verbatim** beside a
64-bit FNV-1a hash. A lookup is a linear scan comparing hashes and, on a hash match, the bytes: it
is exact (a hash collision can never merge two entries), allocation-free, and for the few dozen
live entries an LP keeps per instrument a scan of one int64 array is as fast as a hash table
would be. An id longer than the limit is dropped and counted, never truncated (truncation could
merge ids).

Conflation: entries are applied to the table as they arrive, but the ladders are recomputed and
diffed once per read buffer (:func:`emit_dirty`), not once per message. The engine applies a
whole batch and reprices once, so intermediate ladders inside one buffer are never observable;
emitting only the end state gives the engine the same book with fewer rows.

Everything here is ``@njit`` over arrays owned by :class:`LpBooks`, so the decode kernel in
:mod:`feeds.md_decode` calls it inline: one kernel call per read buffer does framing, parsing,
book updates and row emission.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from engine.batch import CLEAR_BOOK, SET_LEVEL, TOUCH

__all__ = [
    "KEYED_BY_ID",
    "KEYED_BY_POSITION",
    "MAX_ID_LEN",
    "LpBooks",
    "C_NAMES",
]

KEYED_BY_ID = 0
KEYED_BY_POSITION = 1

MAX_ID_LEN = 64  # bytes of an MDEntryID we keep verbatim

# Actions of one entry (279), plus the implicit "snapshot insert" of a 35=W entry.
A_NEW, A_CHANGE, A_DELETE, A_SNAPSHOT = 0, 1, 2, 3

# Columns of the entry table ``ent[instr, slot, :]``.
E_HASH, E_SIDE, E_PX, E_QTY, E_IDLEN = range(5)
E_NF = 5

# Counters (cumulative, per LP). C_NAMES gives their public names, in this order.
C_GARBLED = 0  # garbled frames and runs of bytes outside any frame (as FrameDecoder counts them)
C_MD_MESSAGES = 1  # 35=W / 35=X applied
C_OTHER_MESSAGES = 2  # valid non-market-data messages handed back to the caller
C_POSSDUP_SKIPPED = 3  # 35=W / 35=X with PossDupFlag 43=Y: a resend of old state, not applied
C_ENTRIES = 4  # MD entries seen in applied messages (every repeating-group instance)
C_APPLIED = 5  # entries applied to a book
C_UNKNOWN_INSTRUMENT = 6  # neither 262 nor 55 resolves to an instrument of this LP
C_MISSING_FIELD = 7  # a required field of the entry is absent (279, 269, 270, 271, 278/290)
C_BAD_ACTION = 8  # 279 not 0/1/2
C_BAD_NUMBER = 9  # 270/271/290 not a plain decimal, out of int64 range, negative size, position < 1
C_OFF_GRID = 10  # 270/271 not a whole number of ticks / quantity steps: dropped, never rounded
C_UNKNOWN_ID = 11  # change/delete of an MDEntryID the book does not hold; a partial change of an empty position
C_ID_TOO_LONG = 12  # MDEntryID longer than MAX_ID_LEN
C_BOOK_FULL = 13  # the entry table of the (LP, instrument) is full
C_IGNORED = 14  # not an error: 269 other than bid/offer, position beyond the kept depth
C_AWAITING = 15  # incremental entries not applied: their book awaits a fresh snapshot
C_GAPS = 16  # MsgSeqNum gaps seen (supervised): every book of the LP was withdrawn
C_WITHDRAWN = 17  # live books withdrawn until a fresh snapshot (gaps; supervised)
C_STALE_SEQ = 18  # 35=W / 35=X not applied: MsgSeqNum absent or below the expected one (supervised)
# State kept in the same array (not counters, not in C_NAMES):
C_IN_JUNK = 19  # inside a garbled run (so a run counts once across reads)
C_SUPERVISED = 20  # 1: the LP feed's rules (feeds.md_decode.MdDecoder's ``supervised``)
C_EXPECTED_SEQ = 21  # supervised: the next MsgSeqNum expected on the wire (0: not known yet)
N_COUNTERS = 22

C_NAMES = (
    "garbled",
    "md_messages",
    "other_messages",
    "possdup_skipped",
    "entries",
    "applied",
    "unknown_instrument",
    "missing_field",
    "bad_action",
    "bad_number",
    "off_grid",
    "unknown_id",
    "id_too_long",
    "book_full",
    "ignored",
    "awaiting_snapshot",
    "gaps",
    "withdrawn",
    "stale_seq",
)


class LpBooks:
    """The normalisation state of one LP over every instrument (preallocated arrays).

    ``levels`` is how many levels per side the engine keeps for this LP; ``max_entries`` bounds
    the entry table of one (LP, instrument) in the by-id dialect.
    """

    def __init__(self, n_instruments: int, levels: int, max_entries: int = 256) -> None:
        if levels < 1 or n_instruments < 1 or max_entries < 1:
            raise ValueError("n_instruments, levels and max_entries must be >= 1")
        self.n_instruments = n_instruments
        self.levels = levels
        self.max_entries = max_entries
        self.ent = np.zeros((n_instruments, max_entries, E_NF), np.int64)
        self.ent_id = np.zeros((n_instruments, max_entries, MAX_ID_LEN), np.uint8)
        self.n_ent = np.zeros(n_instruments, np.int64)
        # Positional ladders and the ladders last emitted: [instr, side, 0 px | 1 qty, level].
        self.pos = np.zeros((n_instruments, 2, 2, levels), np.int64)
        self.emitted = np.zeros((n_instruments, 2, 2, levels), np.int64)
        # dirty[i] = 1 (2: clear first) while instrument i waits in dirty_list[:n_dirty] for emit_dirty.
        self.dirty = np.zeros(n_instruments + 1, np.int64)  # last slot: n_dirty
        self.dirty_list = np.zeros(n_instruments, np.int64)
        self.scratch = np.zeros((2, max(max_entries, 1)), np.int64)

    def forget(self, instr: int | None = None) -> None:
        """Drop what we hold for one instrument (or all): no rows are emitted for it.

        Use with a CLEAR_BOOK / LP_DOWN row the caller sends, so that our record of what the
        engine holds matches the engine.
        """
        sl = slice(None) if instr is None else slice(instr, instr + 1)
        self.n_ent[sl] = 0
        self.pos[sl] = 0
        self.emitted[sl] = 0
        n_dirty = int(self.dirty[-1])
        keep = [int(i) for i in self.dirty_list[:n_dirty] if instr is not None and int(i) != instr]
        self.dirty[:] = 0
        for j, i in enumerate(keep):
            self.dirty_list[j] = i
            self.dirty[i] = 1
        self.dirty[-1] = len(keep)


@njit(cache=True, nogil=True)
def fnv1a(buf: np.ndarray, start: int, end: int) -> np.int64:
    """64-bit FNV-1a of ``buf[start:end]`` (as int64)."""
    h = np.uint64(0xCBF29CE484222325)
    prime = np.uint64(0x100000001B3)
    for i in range(start, end):
        h = (h ^ np.uint64(buf[i])) * prime
    return np.int64(h)


@njit(cache=True, nogil=True)
def mark_dirty(instr: int, dirty: np.ndarray, dirty_list: np.ndarray) -> None:
    if dirty[instr] == 0:
        n = len(dirty) - 1
        dirty_list[dirty[n]] = instr
        dirty[n] += 1
        dirty[instr] = 1


@njit(cache=True, nogil=True)
def mark_cleared(instr: int, dirty: np.ndarray, dirty_list: np.ndarray) -> None:
    """Dirty, and the engine's copy must be cleared first: :func:`emit_dirty` sends CLEAR_BOOK."""
    mark_dirty(instr, dirty, dirty_list)
    dirty[instr] = 2


@njit(cache=True, nogil=True)
def reset_book(instr: int, n_ent: np.ndarray, pos: np.ndarray) -> None:
    """A snapshot replaces the book: forget its entries (the emitted ladder stays for the diff)."""
    n_ent[instr] = 0
    for s in range(2):
        for k in range(pos.shape[3]):
            pos[instr, s, 0, k] = 0
            pos[instr, s, 1, k] = 0


@njit(cache=True, nogil=True)
def _find_id(
    instr: int, h: np.int64, buf: np.ndarray, id_start: int, id_len: int,
    ent: np.ndarray, ent_id: np.ndarray, n: int,
) -> int:
    for slot in range(n):
        if ent[instr, slot, E_HASH] == h and ent[instr, slot, E_IDLEN] == id_len:
            same = True
            for b in range(id_len):
                if ent_id[instr, slot, b] != buf[id_start + b]:
                    same = False
                    break
            if same:
                return slot
    return -1


@njit(cache=True, nogil=True)
def apply_by_id(
    instr: int, action: int, side: int, has_px: bool, px: int, has_qty: bool, qty: int,
    buf: np.ndarray, id_start: int, id_len: int,
    ent: np.ndarray, ent_id: np.ndarray, n_ent: np.ndarray,
) -> int:
    """Apply one entry to the by-id table. ``id_len <= 0``: no 278 (allowed in snapshots only).

    Returns C_APPLIED, or the counter of the reason it was not applied (the caller counts).
    """
    n = n_ent[instr]
    if id_len <= 0:
        if action != A_SNAPSHOT:  # an incremental entry must name its id
            return C_MISSING_FIELD
        slot = -1  # a snapshot entry without an id can only be replaced by the next snapshot
    else:
        if id_len > MAX_ID_LEN:
            return C_ID_TOO_LONG
        h = fnv1a(buf, id_start, id_start + id_len)
        slot = _find_id(instr, h, buf, id_start, id_len, ent, ent_id, n)
        if action == A_DELETE:
            if slot < 0:
                return C_UNKNOWN_ID
            last = n - 1
            if slot != last:  # swap-remove: table order carries no meaning
                for f in range(E_NF):
                    ent[instr, slot, f] = ent[instr, last, f]
                for b in range(ent[instr, last, E_IDLEN]):
                    ent_id[instr, slot, b] = ent_id[instr, last, b]
            n_ent[instr] = last
            return C_APPLIED
        if action == A_CHANGE:
            if slot < 0:
                return C_UNKNOWN_ID
            if side >= 0:
                ent[instr, slot, E_SIDE] = side
            if has_px:
                ent[instr, slot, E_PX] = px
            if has_qty:
                ent[instr, slot, E_QTY] = qty
            return C_APPLIED
        if slot >= 0:  # a "new" (or a repeated snapshot id) for an id we hold replaces it
            ent[instr, slot, E_SIDE] = side
            ent[instr, slot, E_PX] = px
            ent[instr, slot, E_QTY] = qty
            return C_APPLIED
    if n >= ent.shape[1]:
        return C_BOOK_FULL
    length = id_len if id_len > 0 else 0
    ent[instr, n, E_HASH] = fnv1a(buf, id_start, id_start + length) if length > 0 else 0
    ent[instr, n, E_SIDE] = side
    ent[instr, n, E_PX] = px
    ent[instr, n, E_QTY] = qty
    ent[instr, n, E_IDLEN] = length
    for b in range(length):
        ent_id[instr, n, b] = buf[id_start + b]
    n_ent[instr] = n + 1
    return C_APPLIED


@njit(cache=True, nogil=True)
def apply_by_position(
    instr: int, action: int, side: int, position: int, has_px: bool, px: int, has_qty: bool, qty: int,
    pos: np.ndarray,
) -> int:
    """Apply one entry to the positional ladder; ``position`` is 0-based and < levels.

    Returns C_APPLIED, or C_UNKNOWN_ID for a change of a position the book does not hold that
    does not carry both price and size: applying a size alone there would make a level of price 0.
    """
    levels = pos.shape[3]
    if action == A_CHANGE and pos[instr, side, 1, position] <= 0 and not (has_px and has_qty):
        return C_UNKNOWN_ID
    if action == A_NEW:
        for k in range(levels - 1, position, -1):
            pos[instr, side, 0, k] = pos[instr, side, 0, k - 1]
            pos[instr, side, 1, k] = pos[instr, side, 1, k - 1]
    if action == A_DELETE:
        for k in range(position, levels - 1):
            pos[instr, side, 0, k] = pos[instr, side, 0, k + 1]
            pos[instr, side, 1, k] = pos[instr, side, 1, k + 1]
        pos[instr, side, 0, levels - 1] = 0
        pos[instr, side, 1, levels - 1] = 0
        return C_APPLIED
    if has_px:
        pos[instr, side, 0, position] = px
    if has_qty:
        pos[instr, side, 1, position] = qty
    return C_APPLIED


@njit(cache=True, nogil=True)
def _ladder_by_id(instr: int, side: int, ent: np.ndarray, n: int, scratch: np.ndarray) -> int:
    """Distinct prices of ``side`` with qty > 0, best first, sizes summed, into scratch[0|1, :m]."""
    m = 0
    for slot in range(n):
        if ent[instr, slot, E_SIDE] != side or ent[instr, slot, E_QTY] <= 0:
            continue
        px = ent[instr, slot, E_PX]
        qty = ent[instr, slot, E_QTY]
        # Insertion into the sorted run; a book holds a few dozen entries.
        k = 0
        while k < m and (scratch[0, k] > px if side == 0 else scratch[0, k] < px):
            k += 1
        if k < m and scratch[0, k] == px:
            scratch[1, k] += qty
            continue
        for j in range(m, k, -1):
            scratch[0, j] = scratch[0, j - 1]
            scratch[1, j] = scratch[1, j - 1]
        scratch[0, k] = px
        scratch[1, k] = qty
        m += 1
    return m


@njit(cache=True, nogil=True)
def _put_row(
    kind: np.ndarray, r_lp: np.ndarray, r_instr: np.ndarray, r_side: np.ndarray, r_level: np.ndarray,
    r_px: np.ndarray, r_qty: np.ndarray, r_ts: np.ndarray, n: int,
    row_kind: int, lp: int, instr: int, side: int, level: int, px: int, qty: int, ts: int,
) -> int:
    """Write batch row ``n``; returns ``n + 1``."""
    kind[n] = row_kind
    r_lp[n] = lp
    r_instr[n] = instr
    r_side[n] = side
    r_level[n] = level
    r_px[n] = px
    r_qty[n] = qty
    r_ts[n] = ts
    return n + 1


@njit(cache=True, nogil=True)
def emit_dirty(
    lp: int, now_ns: int, keyed_by: int,
    ent: np.ndarray, n_ent: np.ndarray, pos: np.ndarray, emitted: np.ndarray,
    dirty: np.ndarray, dirty_list: np.ndarray, scratch: np.ndarray,
    kind: np.ndarray, r_lp: np.ndarray, r_instr: np.ndarray, r_side: np.ndarray, r_level: np.ndarray,
    r_px: np.ndarray, r_qty: np.ndarray, r_ts: np.ndarray, n_rows: int, touch: bool,
) -> int:
    """Recompute the ladders of every dirty instrument; append SET_LEVEL rows for changed levels.

    Rows go out in the order the instruments first became dirty, bids then asks, level by level.
    An emptied level is sent as qty 0 with price 0. An instrument marked by :func:`mark_cleared`
    gets a CLEAR_BOOK row first, then its levels as if nothing had been emitted. With ``touch``, a
    dirty instrument with no row gets one TOUCH row (the LP confirmed its book: it stays fresh).
    The caller guarantees room for ``n_dirty * (2 * levels + 1)`` rows. Returns the new row count.
    """
    levels = emitted.shape[3]
    n_slot = len(dirty) - 1
    for d in range(dirty[n_slot]):
        instr = dirty_list[d]
        cleared = dirty[instr] == 2
        dirty[instr] = 0
        first = n_rows
        if cleared:
            for side in range(2):
                for k in range(levels):
                    emitted[instr, side, 0, k] = 0
                    emitted[instr, side, 1, k] = 0
            n_rows = _put_row(
                kind, r_lp, r_instr, r_side, r_level, r_px, r_qty, r_ts,
                n_rows, CLEAR_BOOK, lp, instr, 0, 0, 0, 0, now_ns,
            )
        for side in range(2):
            m = 0
            if keyed_by == KEYED_BY_ID:
                m = _ladder_by_id(instr, side, ent, n_ent[instr], scratch)
            for k in range(levels):
                if keyed_by == KEYED_BY_ID:
                    if k < m:
                        px = scratch[0, k]
                        qty = scratch[1, k]
                    else:
                        px = 0
                        qty = 0
                else:
                    qty = pos[instr, side, 1, k]
                    px = pos[instr, side, 0, k] if qty > 0 else 0
                old_qty = emitted[instr, side, 1, k]
                if qty == old_qty and (qty == 0 or px == emitted[instr, side, 0, k]):
                    continue
                emitted[instr, side, 0, k] = px
                emitted[instr, side, 1, k] = qty
                n_rows = _put_row(
                    kind, r_lp, r_instr, r_side, r_level, r_px, r_qty, r_ts,
                    n_rows, SET_LEVEL, lp, instr, side, k, px, qty, now_ns,
                )
        if touch and n_rows == first:
            n_rows = _put_row(
                kind, r_lp, r_instr, r_side, r_level, r_px, r_qty, r_ts,
                n_rows, TOUCH, lp, instr, 0, 0, 0, 0, now_ns,
            )
    dirty[n_slot] = 0
    return n_rows
