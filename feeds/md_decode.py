"""Fast LP market-data path: raw FIX bytes of one LP → engine :class:`~engine.batch.UpdateBatch` rows.

One Numba kernel call per socket read does everything: framing and validation (8=, 9=
BodyLength, 35=, 10= CheckSum, with the garbled-message rules of
:class:`fixserver.codec.FrameDecoder`, which the tests hold it to; the framing is
:func:`fixserver._framing.next_frame`, shared with :mod:`fixserver.batchdecode`), parsing of 35=W / 35=X,
exact decimal → tick / quantity-step conversion, the LP book update (:mod:`feeds.lpbook`) and the
emission of ``SET_LEVEL`` rows for the levels that changed. No Python object is made per message
or per entry.

Per LP the caller builds one :class:`MdDecoder` (``MdDecoder.from_config(cfg, lp_name)``) and per
read calls :meth:`MdDecoder.feed` (it keeps a partial trailing message itself) or, when the caller
manages the buffer, :meth:`MdDecoder.decode` (returns how many bytes it consumed; the caller keeps
``buf[consumed:]`` for the next read).

What comes back (:class:`DecodeResult`):

* rows appended to the caller's batch (timestamped ``now_ns``): ``SET_LEVEL`` for changed levels
  and, for a ``supervised`` decoder, ``TOUCH`` for an instrument heard from with none changed;
* ``messages``: one row per valid message in wire order, ``(start, end, seq, kind, possdup)``:
  offsets into ``result.buffer``, MsgSeqNum 34 (-1 if absent or not a number), kind
  :data:`KIND_W` / :data:`KIND_X` (applied here) or :data:`KIND_OTHER` (the caller hands
  ``buffer[start:end]`` to the session / generic codec, in order), and PossDupFlag 43=Y. Every
  message is listed, so the session can check sequence numbers without decoding market data;
* ``too_large``: a BodyLength above the maximum message size (the caller disconnects, as it does
  for :class:`fixserver.codec.FrameTooLarge`); decoding stopped before that frame.

Instrument of an entry: MDReqID 262 through the LP's ``reqid → instrument`` table (we pick the
MDReqIDs when we subscribe; by default ``262=<instrument index>``); when 262 is absent or not in
the table, the entry's own Symbol 55 (35=X carries it per entry), else the message-level 55,
matched against the LP's symbol table (``LpConfig.symbol_map``).

Entries are checked in a fixed order and a rejected entry is dropped and counted once under the
first reason that applies (see :data:`feeds.lpbook.C_NAMES`): instrument, action (279), entry
type (269; types other than bid/offer are ignored), price (270) and size (271) — exact, off-grid
dropped, never rounded, negative prices legal, negative sizes refused — then the key (278 or
290). A 35=W / 35=X with 43=Y before its group is a resend of old state and is not applied.

Development note: Numba's on-disk cache (``cache=True``) keys :func:`decode_kernel` on this file
only. After editing :mod:`feeds.lpbook` or :mod:`fixserver._framing`, whose functions the kernel
calls, delete ``feeds/__pycache__/*.nb[ic]`` or the cached kernel keeps the old code.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numba import njit

from engine.batch import UpdateBatch
from engine.config import Config
from engine.fixedpoint import Grid
from feeds import lpbook as lb
from feeds.lpbook import KEYED_BY_ID, KEYED_BY_POSITION, LpBooks
from fixserver._framing import FS_GARBLED, FS_IN_JUNK, N_FS, next_frame, parse_uint
from fixserver.codec import DEFAULT_MAX_MESSAGE_SIZE

__all__ = [
    "KIND_W",
    "KIND_X",
    "KIND_OTHER",
    "M_START",
    "M_END",
    "M_SEQ",
    "M_KIND",
    "M_POSSDUP",
    "KEYED_BY_ID",
    "KEYED_BY_POSITION",
    "DecodeResult",
    "MdDecoder",
    "warm_up",
]

KIND_W, KIND_X, KIND_OTHER = 0, 1, 2
M_START, M_END, M_SEQ, M_KIND, M_POSSDUP = range(5)

_SOH = 1
_EQ = 61
_MAXI = 9223372036854775807
_POW10 = np.array([10**i for i in range(19)], np.int64)

# Number parse status.
_OK, _BAD, _OFF = 0, 1, 2

# Instrument table columns: price step (mantissa, scale), quantity step (mantissa, scale), and the
# book's state: AWAIT_LIVE, or AWAIT_SNAPSHOT until a 35=W rebuilds it (see MdDecoder).
G_PX_M, G_PX_S, G_QTY_M, G_QTY_S, G_AWAIT = range(5)
# AWAIT_WITHDRAWN: was live, withdrawn by this decoder; the caller has not asked for a snapshot yet.
AWAIT_LIVE, AWAIT_SNAPSHOT, AWAIT_WITHDRAWN = 0, 1, 2

# Per-entry field slots in the kernel's scratch: (start, end) of the value, start -1 = absent.
_F279, _F269, _F278, _F270, _F271, _F290, _F55 = range(7)


@njit(cache=True, nogil=True, inline="always")
def _entry_slot(tag: int) -> int:
    if tag == 270:
        return _F270
    if tag == 271:
        return _F271
    if tag == 269:
        return _F269
    if tag == 279:
        return _F279
    if tag == 278:
        return _F278
    if tag == 290:
        return _F290
    if tag == 55:
        return _F55
    return -1


@njit(cache=True, nogil=True)
def _to_steps(buf: np.ndarray, s: int, e: int, step_m: int, step_s: int) -> tuple[int, int]:
    """Exact FIX decimal ``buf[s:e]`` → whole steps of ``step_m * 10**-step_s``: (status, value).

    Grammar of :func:`engine.fixedpoint.parse_decimal` (``[+-]digits[.digits]``, at least one
    digit); at most 18 significant digits and 18 decimals, so the mantissa fits int64; a scaled
    value beyond int64 is _BAD; a remainder is _OFF.
    """
    i = s
    neg = False
    if i < e and (buf[i] == 45 or buf[i] == 43):  # '-' / '+'
        neg = buf[i] == 45
        i += 1
    m = 0
    sig = 0
    ndig = 0
    scale = 0
    dot = False
    while i < e:
        c = buf[i]
        if c == 46:  # '.'
            if dot:
                return _BAD, 0
            dot = True
        elif 48 <= c <= 57:
            ndig += 1
            if dot:
                scale += 1
            if sig > 0 or c != 48:
                sig += 1
                if sig > 18:
                    return _BAD, 0
            m = m * 10 + (c - 48)
        else:
            return _BAD, 0
        i += 1
    if ndig == 0 or scale > 18:
        return _BAD, 0
    if neg:
        m = -m
    shift = step_s - scale
    if shift >= 0:
        if m == 0:
            return _OK, 0
        if shift > 18:
            return _BAD, 0
        p = _POW10[shift]
        if abs(m) > _MAXI // p:
            return _BAD, 0
        num = m * p
        den = step_m
    else:
        p = _POW10[-shift]
        if step_m > _MAXI // p:
            # The step is beyond int64 at this scale: only 0 is a whole multiple of it.
            return (_OK, 0) if m == 0 else (_OFF, 0)
        num = m
        den = step_m * p
    q = num // den
    if num - q * den != 0:
        return _OFF, 0
    return _OK, q


@njit(cache=True, nogil=True)
def _symbol(buf: np.ndarray, s: int, e: int, sym_bytes: np.ndarray, sym_off: np.ndarray, sym_instr: np.ndarray) -> int:
    n = e - s
    for k in range(len(sym_instr)):
        a = sym_off[k]
        if sym_off[k + 1] - a != n:
            continue
        same = True
        for j in range(n):
            if sym_bytes[a + j] != buf[s + j]:
                same = False
                break
        if same:
            return sym_instr[k]
    return -1


@njit(cache=True, nogil=True)
def _apply_entry(
    buf: np.ndarray, ef: np.ndarray, is_w: bool, msg_instr: int, msg_sym_instr: int, snap_count: np.ndarray,
    keyed_by: int, lp_levels: int,
    itab: np.ndarray, sym_bytes: np.ndarray, sym_off: np.ndarray, sym_instr: np.ndarray,
    ent: np.ndarray, ent_id: np.ndarray, n_ent: np.ndarray, pos: np.ndarray,
    dirty: np.ndarray, dirty_list: np.ndarray, counters: np.ndarray,
) -> None:
    """Check one MD entry in the documented order and apply it to its book, or count why not."""
    counters[lb.C_ENTRIES] += 1
    instr = msg_instr
    if instr < 0:
        if ef[2 * _F55] >= 0:
            instr = _symbol(buf, ef[2 * _F55], ef[2 * _F55 + 1], sym_bytes, sym_off, sym_instr)
        else:
            instr = msg_sym_instr
    if instr < 0 or instr >= len(n_ent):
        counters[lb.C_UNKNOWN_INSTRUMENT] += 1
        return
    if not is_w and itab[instr, G_AWAIT] != AWAIT_LIVE:
        # An increment to a book we do not have (before its first snapshot, or withdrawn):
        # applying it would price a partial book. The coming 35=W replaces the book anyway.
        counters[lb.C_AWAITING] += 1
        return
    supervised = counters[lb.C_SUPERVISED] != 0
    if supervised:
        lb.mark_dirty(instr, dirty, dirty_list)  # heard from: a TOUCH row at least (lpbook.emit_dirty)
    outcome = _entry(buf, ef, is_w, instr, snap_count, keyed_by, lp_levels, itab, ent, ent_id, n_ent, pos)
    counters[outcome] += 1
    if outcome == lb.C_APPLIED:
        lb.mark_dirty(instr, dirty, dirty_list)
    elif supervised and not is_w and (
        outcome == lb.C_MISSING_FIELD or outcome == lb.C_BAD_ACTION
        or outcome == lb.C_BAD_NUMBER or outcome == lb.C_OFF_GRID
    ):
        # An increment we cannot apply: the LP's book moved and ours did not, so a level it no
        # longer quotes may still be priced. Withdraw the book until a fresh snapshot. (Entries
        # about ids or positions we do not hold, or beyond our depth, leave no wrong level.)
        _withdraw(instr, itab, n_ent, pos, dirty, dirty_list, counters)


@njit(cache=True, nogil=True)
def _entry(
    buf: np.ndarray, ef: np.ndarray, is_w: bool, instr: int, snap_count: np.ndarray, keyed_by: int,
    lp_levels: int, itab: np.ndarray, ent: np.ndarray, ent_id: np.ndarray, n_ent: np.ndarray, pos: np.ndarray,
) -> int:
    """One entry of a known instrument: C_APPLIED, or the counter of why it was not applied."""
    if is_w:
        action = lb.A_SNAPSHOT
    else:
        a = ef[2 * _F279]
        if a < 0:
            return lb.C_MISSING_FIELD
        if ef[2 * _F279 + 1] - a != 1 or buf[a] < 48 or buf[a] > 50:
            return lb.C_BAD_ACTION
        action = buf[a] - 48
    side = -1
    t = ef[2 * _F269]
    if t >= 0:
        if ef[2 * _F269 + 1] - t == 1 and (buf[t] == 48 or buf[t] == 49):
            side = buf[t] - 48
        else:
            return lb.C_IGNORED
    if side < 0 and (action == lb.A_SNAPSHOT or action == lb.A_NEW or keyed_by == KEYED_BY_POSITION):
        return lb.C_MISSING_FIELD
    has_px = False
    has_qty = False
    px = 0
    qty = 0
    if action != lb.A_DELETE:
        s = ef[2 * _F270]
        if s >= 0:
            st, px = _to_steps(buf, s, ef[2 * _F270 + 1], itab[instr, G_PX_M], itab[instr, G_PX_S])
            if st == _BAD:
                return lb.C_BAD_NUMBER
            if st == _OFF:
                return lb.C_OFF_GRID
            has_px = True
        s = ef[2 * _F271]
        if s >= 0:
            st, qty = _to_steps(buf, s, ef[2 * _F271 + 1], itab[instr, G_QTY_M], itab[instr, G_QTY_S])
            if st == _BAD or (st == _OK and qty < 0):
                return lb.C_BAD_NUMBER
            if st == _OFF:
                return lb.C_OFF_GRID
            has_qty = True
        if (action == lb.A_SNAPSHOT or action == lb.A_NEW) and not (has_px and has_qty):
            return lb.C_MISSING_FIELD
    if keyed_by == KEYED_BY_POSITION:
        s = ef[2 * _F290]
        if s >= 0:
            p = parse_uint(buf, s, ef[2 * _F290 + 1])
            if p < 1:
                return lb.C_BAD_NUMBER
        elif action == lb.A_SNAPSHOT:
            p = snap_count[side] + 1  # a snapshot without 290 lists each side best first
        else:
            return lb.C_MISSING_FIELD
        if action == lb.A_SNAPSHOT:
            snap_count[side] += 1
        if p > lp_levels:
            return lb.C_IGNORED
        return lb.apply_by_position(instr, action, side, p - 1, has_px, px, has_qty, qty, pos)
    s = ef[2 * _F278]
    id_len = ef[2 * _F278 + 1] - s if s >= 0 else -1
    return lb.apply_by_id(instr, action, side, has_px, px, has_qty, qty, buf, s, id_len, ent, ent_id, n_ent)


@njit(cache=True, nogil=True)
def _withdraw(
    instr: int, itab: np.ndarray, n_ent: np.ndarray, pos: np.ndarray,
    dirty: np.ndarray, dirty_list: np.ndarray, counters: np.ndarray,
) -> None:
    """Our copy of a live book is no longer known to be the LP's: empty it (CLEAR_BOOK) until a
    fresh snapshot. A book already awaiting one holds nothing and stays as it is."""
    if itab[instr, G_AWAIT] != AWAIT_LIVE:
        return
    lb.reset_book(instr, n_ent, pos)
    lb.mark_cleared(instr, dirty, dirty_list)
    itab[instr, G_AWAIT] = AWAIT_WITHDRAWN
    counters[lb.C_WITHDRAWN] += 1


@njit(cache=True, nogil=True)
def _sequence(
    seq: int, itab: np.ndarray, n_ent: np.ndarray, pos: np.ndarray,
    dirty: np.ndarray, dirty_list: np.ndarray, counters: np.ndarray,
) -> None:
    """Supervised: follow MsgSeqNum on the wire; a number skipped means a message lost, perhaps
    market data, so every book of the LP is withdrawn (in every state of the LP, and once: the
    messages after the gap are in sequence again, whatever the session still waits for). A book
    still awaiting its snapshot is asked for again: the lost message may have been that snapshot,
    and an LP fills a gap with a GapFill, not with its market data."""
    expected = counters[lb.C_EXPECTED_SEQ]
    if seq < 0 or seq < expected:
        return
    if 0 < expected < seq:
        counters[lb.C_GAPS] += 1
        for i in range(len(n_ent)):
            if itab[i, G_PX_M] == 0:
                continue
            if itab[i, G_AWAIT] == AWAIT_SNAPSHOT:
                itab[i, G_AWAIT] = AWAIT_WITHDRAWN  # holds nothing: no CLEAR_BOOK, not counted
            else:
                _withdraw(i, itab, n_ent, pos, dirty, dirty_list, counters)
    counters[lb.C_EXPECTED_SEQ] = seq + 1


@njit(cache=True, nogil=True)
def _admit(
    possdup: bool, seq: int, itab: np.ndarray, n_ent: np.ndarray, pos: np.ndarray,
    dirty: np.ndarray, dirty_list: np.ndarray, counters: np.ndarray,
) -> bool:
    """Whether a 35=W / 35=X's entries are applied (its header read up to 268)."""
    expected = counters[lb.C_EXPECTED_SEQ]
    if counters[lb.C_SUPERVISED]:
        _sequence(seq, itab, n_ent, pos, dirty, dirty_list, counters)
    if possdup:
        counters[lb.C_POSSDUP_SKIPPED] += 1
        return False
    if counters[lb.C_SUPERVISED] and (seq < 0 or seq < expected):
        # Without PossDup a number we are past (or none) is a session error: the session logs
        # the LP out for it, after this read. Its prices are not applied in the meantime.
        counters[lb.C_STALE_SEQ] += 1
        return False
    return True


@njit(cache=True, nogil=True)
def _md_message(
    buf: np.ndarray, body_start: int, body_end: int, is_w: bool, msgs: np.ndarray, m: int,
    keyed_by: int, lp_levels: int, itab: np.ndarray, reqid_instr: np.ndarray,
    sym_bytes: np.ndarray, sym_off: np.ndarray, sym_instr: np.ndarray,
    ent: np.ndarray, ent_id: np.ndarray, n_ent: np.ndarray, pos: np.ndarray,
    dirty: np.ndarray, dirty_list: np.ndarray, counters: np.ndarray, ef: np.ndarray, snap_count: np.ndarray,
) -> None:
    """Walk one 35=W / 35=X body: header fields up to 268, then the entries of its group."""
    msg_instr = -1
    msg_sym_instr = -1
    possdup = False
    in_group = False
    skip = False
    delim = -1
    have_entry = False
    snap_count[0] = 0
    snap_count[1] = 0
    p = body_start
    while p < body_end:
        # tag
        tag = 0
        good = True
        q = p
        while q < body_end and buf[q] != _EQ and buf[q] != _SOH:
            c = buf[q]
            if 48 <= c <= 57 and tag < 100_000_000:
                tag = tag * 10 + (c - 48)
            else:
                good = False
            q += 1
        if q >= body_end or buf[q] != _EQ or q == p or not good:
            tag = 0  # not digits=value: skip the field
            while q < body_end and buf[q] != _SOH:
                q += 1
            vs = q
            ve = q
        else:
            vs = q + 1
            ve = vs
            while buf[ve] != _SOH:  # the frame ends in SOH: always found
                ve += 1
        p = ve + 1
        if not in_group:
            if tag == 34:
                msgs[m, M_SEQ] = parse_uint(buf, vs, ve)
            elif tag == 43:
                possdup = ve - vs == 1 and buf[vs] == 89  # 'Y'
                msgs[m, M_POSSDUP] = 1 if possdup else 0
            elif tag == 262:
                r = parse_uint(buf, vs, ve)
                msg_instr = reqid_instr[r] if 0 <= r < len(reqid_instr) else -1
            elif tag == 55:
                msg_sym_instr = _symbol(buf, vs, ve, sym_bytes, sym_off, sym_instr)
            elif tag == 268:
                in_group = True
                if not _admit(possdup, msgs[m, M_SEQ], itab, n_ent, pos, dirty, dirty_list, counters):
                    skip = True
                    break
                _group_start(is_w, msg_instr, msg_sym_instr, itab, n_ent, pos, dirty, dirty_list, counters)
            continue
        if delim < 0:
            delim = tag
        if tag == delim:
            if have_entry:
                _apply_entry(
                    buf, ef, is_w, msg_instr, msg_sym_instr, snap_count, keyed_by, lp_levels, itab,
                    sym_bytes, sym_off, sym_instr, ent, ent_id, n_ent, pos, dirty, dirty_list, counters,
                )
            for k in range(14):
                ef[k] = -1
            have_entry = True
        k = _entry_slot(tag)
        if k >= 0:
            ef[2 * k] = vs
            ef[2 * k + 1] = ve
    if not in_group:
        if _admit(possdup, msgs[m, M_SEQ], itab, n_ent, pos, dirty, dirty_list, counters):
            _group_start(is_w, msg_instr, msg_sym_instr, itab, n_ent, pos, dirty, dirty_list, counters)
        else:
            skip = True
    if skip:
        return
    if have_entry:
        _apply_entry(
            buf, ef, is_w, msg_instr, msg_sym_instr, snap_count, keyed_by, lp_levels, itab,
            sym_bytes, sym_off, sym_instr, ent, ent_id, n_ent, pos, dirty, dirty_list, counters,
        )


@njit(cache=True, nogil=True)
def _group_start(
    is_w: bool, msg_instr: int, msg_sym_instr: int, itab: np.ndarray, n_ent: np.ndarray, pos: np.ndarray,
    dirty: np.ndarray, dirty_list: np.ndarray, counters: np.ndarray,
) -> None:
    counters[lb.C_MD_MESSAGES] += 1
    if is_w:
        # The snapshot's instrument: by our MDReqID, or by its Symbol when the LP echoes only 55.
        instr = msg_instr if msg_instr >= 0 else msg_sym_instr
        if 0 <= instr < len(n_ent):
            lb.reset_book(instr, n_ent, pos)
            lb.mark_dirty(instr, dirty, dirty_list)
            itab[instr, G_AWAIT] = AWAIT_LIVE


@njit(cache=True, nogil=True)
def _other_message(buf: np.ndarray, body_start: int, body_end: int, msgs: np.ndarray, m: int) -> tuple[int, bool]:
    """Only the fields sequence checks need: 34 and 43, and of a SequenceReset (35=4) NewSeqNo 36
    and GapFillFlag 123. Returns (NewSeqNo, GapFill): (-1, False) for other messages or no 36."""
    reset = buf[body_start + 3] == 52 and buf[body_start + 4] == _SOH  # "35=4"
    new_seq = -1
    gap_fill = False
    p = body_start
    while p < body_end:
        q = p
        tag = 0
        while q < body_end and 48 <= buf[q] <= 57 and tag < 100_000_000:
            tag = tag * 10 + (buf[q] - 48)
            q += 1
        ok = q > p and q < body_end and buf[q] == _EQ
        e = q
        while buf[e] != _SOH:
            e += 1
        if ok and tag == 34:
            msgs[m, M_SEQ] = parse_uint(buf, q + 1, e)
        elif ok and tag == 43:
            msgs[m, M_POSSDUP] = 1 if (e - q - 1 == 1 and buf[q + 1] == 89) else 0
        elif ok and reset and tag == 36:
            new_seq = parse_uint(buf, q + 1, e)
        elif ok and reset and tag == 123:
            gap_fill = e - q - 1 == 1 and buf[q + 1] == 89
        p = e + 1
    return new_seq, gap_fill


@njit(cache=True, nogil=True)
def _sequence_reset(
    seq: int, new_seq: int, gap_fill: bool, itab: np.ndarray, n_ent: np.ndarray, pos: np.ndarray,
    dirty: np.ndarray, dirty_list: np.ndarray, counters: np.ndarray,
) -> None:
    """Supervised: a SequenceReset moves the expected MsgSeqNum to NewSeqNo.

    GapFill (123=Y) stands for messages that carry nothing to resend, in sequence like any
    message (a gap before it is a gap): over one ordered connection no message we never received
    can hide behind it. Reset mode ignores its own MsgSeqNum and is FIX's disaster recovery: the
    counterparty may have lost messages it had already counted as sent, so a Reset that moves the
    expected number forward is a gap in market data, whatever the reads it came in.
    """
    if gap_fill:
        _sequence(seq, itab, n_ent, pos, dirty, dirty_list, counters)
        if new_seq > counters[lb.C_EXPECTED_SEQ]:
            counters[lb.C_EXPECTED_SEQ] = new_seq
    elif new_seq > counters[lb.C_EXPECTED_SEQ] > 0:
        _sequence(new_seq, itab, n_ent, pos, dirty, dirty_list, counters)  # as if new_seq came
        counters[lb.C_EXPECTED_SEQ] = new_seq
    elif new_seq > 0:
        counters[lb.C_EXPECTED_SEQ] = max(counters[lb.C_EXPECTED_SEQ], new_seq)


@njit(cache=True, nogil=True)
def decode_kernel(
    buf: np.ndarray, now_ns: int, lp: int, keyed_by: int, max_size: int,
    itab: np.ndarray, reqid_instr: np.ndarray, sym_bytes: np.ndarray, sym_off: np.ndarray, sym_instr: np.ndarray,
    ent: np.ndarray, ent_id: np.ndarray, n_ent: np.ndarray, pos: np.ndarray, emitted: np.ndarray,
    dirty: np.ndarray, dirty_list: np.ndarray, scratch: np.ndarray, counters: np.ndarray, msgs: np.ndarray,
    kind: np.ndarray, r_lp: np.ndarray, r_instr: np.ndarray, r_side: np.ndarray, r_level: np.ndarray,
    r_px: np.ndarray, r_qty: np.ndarray, r_ts: np.ndarray, n_rows: int, expected_seq: int,
) -> tuple[int, int, int, int, int]:
    """Frame, decode and apply every complete message of ``buf``; emit changed levels.

    ``expected_seq``: the session's next expected MsgSeqNum (supervised; 0 if unknown).
    Returns (bytes consumed, messages listed in ``msgs``, new row count, too-large BodyLength or 0,
    books withdrawn).
    """
    if expected_seq > counters[lb.C_EXPECTED_SEQ]:
        counters[lb.C_EXPECTED_SEQ] = expected_seq
    withdrawn = counters[lb.C_WITHDRAWN]
    n = len(buf)
    lp_levels = pos.shape[3]
    ef = np.empty(14, np.int64)
    snap_count = np.zeros(2, np.int64)
    # Framing state (fixserver._framing): the garbled-run flag lives in the LP's counters between reads.
    fs = np.zeros(N_FS, np.int64)
    fs[FS_IN_JUNK] = counters[lb.C_IN_JUNK]
    p = 0
    m = 0
    too_large = 0
    # the stop offset is read after the loop (see next_frame on the loop's shape)
    while True:
        start, end, body_start, length = next_frame(buf, n, p, max_size, fs)
        if end <= 0:
            break
        body_end = body_start + length
        msgs[m, M_START] = start
        msgs[m, M_END] = end
        msgs[m, M_SEQ] = -1
        msgs[m, M_POSSDUP] = 0
        # MsgType is the first body field (checked by the framing): "35=W\x01" / "35=X\x01".
        t = buf[body_start + 3]
        if buf[body_start + 4] == _SOH and (t == 87 or t == 88):
            msgs[m, M_KIND] = KIND_W if t == 87 else KIND_X
            _md_message(
                buf, body_start, body_end, t == 87, msgs, m, keyed_by, lp_levels, itab, reqid_instr,
                sym_bytes, sym_off, sym_instr, ent, ent_id, n_ent, pos, dirty, dirty_list, counters, ef, snap_count,
            )
        else:
            msgs[m, M_KIND] = KIND_OTHER
            counters[lb.C_OTHER_MESSAGES] += 1
            new_seq, gap_fill = _other_message(buf, body_start, body_end, msgs, m)
            if not counters[lb.C_SUPERVISED]:
                pass
            elif new_seq >= 0:
                _sequence_reset(msgs[m, M_SEQ], new_seq, gap_fill, itab, n_ent, pos, dirty, dirty_list, counters)
            else:
                _sequence(msgs[m, M_SEQ], itab, n_ent, pos, dirty, dirty_list, counters)
        m += 1
        p = end
    if end == -2:
        too_large = length
    counters[lb.C_GARBLED] += fs[FS_GARBLED]
    counters[lb.C_IN_JUNK] = fs[FS_IN_JUNK]
    n_rows = lb.emit_dirty(
        lp, now_ns, keyed_by, ent, n_ent, pos, emitted, dirty, dirty_list, scratch,
        kind, r_lp, r_instr, r_side, r_level, r_px, r_qty, r_ts, n_rows, counters[lb.C_SUPERVISED] != 0,
    )
    # start: where the bytes kept for the next read begin
    return start, m, n_rows, too_large, counters[lb.C_WITHDRAWN] - withdrawn


@dataclass(frozen=True, slots=True)
class DecodeResult:
    """What one read produced besides the rows appended to the batch.

    ``messages`` rows are ``(start, end, seq, kind, possdup)`` (columns ``M_*``), offsets into
    ``buffer``. ``consumed`` bytes of ``buffer`` were used; the rest is a partial message.
    """

    buffer: bytes
    consumed: int
    messages: np.ndarray
    rows: int
    too_large: int
    withdrawn: int = 0  # live books withdrawn in this read (supervised): ask for fresh snapshots

    def other_messages(self) -> list[bytes]:
        """The non-market-data messages (whole frames), in wire order, for the session/codec."""
        m = self.messages
        sel = m[m[:, M_KIND] == KIND_OTHER]
        return [self.buffer[int(s) : int(e)] for s, e in zip(sel[:, M_START], sel[:, M_END], strict=True)]

    @property
    def seq_nums(self) -> np.ndarray:
        """MsgSeqNum (34) of every valid message in wire order (-1 where absent/unparseable)."""
        return self.messages[:, M_SEQ]


def _grid_pair(grid: Grid) -> tuple[int, int]:
    return grid.step_mantissa, grid.step_scale


class MdDecoder:
    """Fast market-data decoder and book normaliser of one LP.

    ``price_grids`` / ``qty_grids`` are indexed by the engine's instrument index (``None`` for
    instruments the LP does not quote); ``symbols`` maps the LP's symbol to our instrument index;
    ``reqids`` maps an MDReqID we sent (an integer) to an instrument index (default: the instrument
    index itself, i.e. we subscribe with ``262=<instrument index>``). ``levels`` is how many levels
    per side the engine keeps for this LP.

    Each instrument's book is live or *awaiting a snapshot* (:meth:`await_snapshot`, e.g. until
    the first 35=W of a subscription, or after a sequence gap): 35=X entries for it are not
    applied (counted as ``awaiting_snapshot``) until a 35=W for it, matched by MDReqID or by
    Symbol, makes it live again (:meth:`awaiting_snapshot`).

    ``supervised``: the rules of a live LP feed (:class:`feeds.lp_feed.LpFeed`) on top of plain
    decoding:

    * an instrument that a 35=W / 35=X was about but whose levels did not change gets a ``TOUCH``
      row, so an LP resending an unchanged book stays fresh in the engine;
    * MsgSeqNum is followed on the wire, every message in order, from the ``expected_seq`` the
      caller passes (the session's next expected number; the larger of it and ours counts). A
      number skipped is a gap: the increments of the lost message are missing from our books,
      so every live book is *withdrawn* (a CLEAR_BOOK row, awaiting a snapshot) in the same
      read, before the messages after the gap are applied. The caller asks for fresh snapshots
      of :meth:`take_withdrawn` (``result.withdrawn`` says when). The messages after the gap
      are in sequence again for us, so one gap withdraws each book once, however long the
      session then waits for its resend;
    * a 35=W / 35=X whose MsgSeqNum is absent or below the expected one (and not a PossDup
      resend, which is skipped anyway) is not applied (``stale_seq``): the session rejects it,
      but only after this read has gone into the engine;
    * a 35=X entry dropped as invalid (missing field, bad 279, bad number, off the grid; not
      an id or position we do not hold, nor one past our depth) withdraws that instrument's
      book like a gap: the LP's book moved and ours did not;
    * SequenceReset: a GapFill moves the expected number on like the messages it stands for; a
      Reset (disaster recovery: messages may be lost) that moves it forward is a gap, the same
      whether it arrives in one read with the messages after it or alone (``_sequence_reset``).
    """

    def __init__(
        self,
        lp: int,
        price_grids: Sequence[Grid | None],
        qty_grids: Sequence[Grid | None],
        symbols: Mapping[str, int] | Mapping[bytes, int],
        levels: int,
        reqids: Mapping[int, int] | None = None,
        keyed_by: int = KEYED_BY_ID,
        max_entries: int = 256,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        supervised: bool = False,
    ) -> None:
        n_instr = len(price_grids)
        if len(qty_grids) != n_instr:
            raise ValueError("price_grids and qty_grids must have one entry per instrument")
        if keyed_by not in (KEYED_BY_ID, KEYED_BY_POSITION):
            raise ValueError(f"keyed_by must be KEYED_BY_ID or KEYED_BY_POSITION, got {keyed_by!r}")
        self.lp = lp
        self.keyed_by = keyed_by
        self.max_message_size = max_message_size
        self.books = LpBooks(n_instr, levels, max_entries)
        quoted = [i for i in range(n_instr) if price_grids[i] is not None and qty_grids[i] is not None]
        self.itab = np.zeros((n_instr, 5), np.int64)
        for i in quoted:
            self.itab[i, G_PX_M], self.itab[i, G_PX_S] = _grid_pair(price_grids[i])  # type: ignore[arg-type]
            self.itab[i, G_QTY_M], self.itab[i, G_QTY_S] = _grid_pair(qty_grids[i])  # type: ignore[arg-type]
        if reqids is None:
            reqids = {i: i for i in quoted}
        size = max([r + 1 for r in reqids] + [1])
        if size > 1_000_000:
            raise ValueError("MDReqIDs must be small integers (they index a table)")
        self.reqid_instr = np.full(size, -1, np.int64)
        for r, i in reqids.items():
            if i not in quoted:
                raise ValueError(f"MDReqID {r} maps to instrument {i}, which this LP does not quote")
            self.reqid_instr[r] = i
        raw = [(s.encode("ascii") if isinstance(s, str) else bytes(s), i) for s, i in symbols.items()]
        for s, i in raw:
            if i not in quoted:
                raise ValueError(f"symbol {s!r} maps to instrument {i}, which this LP does not quote")
        self.sym_bytes = np.frombuffer(b"".join(s for s, _ in raw) or b"\0", np.uint8).copy()
        self.sym_off = np.zeros(len(raw) + 1, np.int64)
        self.sym_off[1:] = np.cumsum([len(s) for s, _ in raw]) if raw else []
        self.sym_instr = np.array([i for _, i in raw], np.int64)
        self.counter_array = np.zeros(lb.N_COUNTERS, np.int64)
        self.counter_array[lb.C_SUPERVISED] = 1 if supervised else 0
        self._msgs = np.zeros((64, 5), np.int64)
        self._pending = b""

    @classmethod
    def from_config(
        cls,
        cfg: Config,
        lp_name: str,
        keyed_by: int = KEYED_BY_ID,
        max_entries: int = 256,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        supervised: bool = False,
    ) -> MdDecoder:
        """The decoder of LP ``lp_name``: its instruments, symbol map and depth from the config."""
        j = next(j for j, lp in enumerate(cfg.lps) if lp.name == lp_name)
        lp = cfg.lps[j]
        index = {inst.symbol: i for i, inst in enumerate(cfg.instruments)}
        price: list[Grid | None] = [None] * len(cfg.instruments)
        qty: list[Grid | None] = [None] * len(cfg.instruments)
        symbols: dict[str, int] = {}
        for sym in lp.instruments:
            i = index[sym]
            price[i] = cfg.instruments[i].price_grid()
            qty[i] = cfg.instruments[i].qty_grid()
            symbols[lp.symbol_map.get(sym, sym)] = i
        max_levels = cfg.engine.max_levels
        levels = min(lp.depth, max_levels) if lp.depth else max_levels
        return cls(
            j, price, qty, symbols, levels,
            keyed_by=keyed_by, max_entries=max_entries, max_message_size=max_message_size, supervised=supervised,
        )  # fmt: skip

    @property
    def counters(self) -> dict[str, int]:
        """Cumulative counters of this LP (names in :data:`feeds.lpbook.C_NAMES`)."""
        return {name: int(self.counter_array[k]) for k, name in enumerate(lb.C_NAMES)}

    def decode(self, buf: bytes, now_ns: int, batch: UpdateBatch, expected_seq: int = 0) -> DecodeResult:
        """Decode every complete message of ``buf``; append rows to ``batch``.

        The caller keeps ``buf[result.consumed:]`` (a partial message, or the start of one) and
        prepends it to the next read. ``expected_seq``: see the class notes (supervised only).
        """
        books = self.books
        need = batch.n + books.n_instruments * (2 * books.levels + 1)
        while batch.capacity < need:
            batch._grow()
        max_msgs = len(buf) // 22 + 1  # no valid frame is shorter than 22 bytes
        if len(self._msgs) < max_msgs:
            self._msgs = np.zeros((max(max_msgs, 2 * len(self._msgs)), 5), np.int64)
        data = np.frombuffer(buf, np.uint8)
        consumed, m, n_rows, too_large, withdrawn = decode_kernel(
            data, now_ns, self.lp, self.keyed_by, self.max_message_size,
            self.itab, self.reqid_instr, self.sym_bytes, self.sym_off, self.sym_instr,
            books.ent, books.ent_id, books.n_ent, books.pos, books.emitted,
            books.dirty, books.dirty_list, books.scratch, self.counter_array, self._msgs,
            batch.kind, batch.lp, batch.instr, batch.side, batch.level,
            batch.price, batch.qty, batch.ts_ns, batch.n, expected_seq,
        )  # fmt: skip
        rows = n_rows - batch.n
        batch.n = n_rows
        return DecodeResult(buf, int(consumed), self._msgs[:m].copy(), rows, int(too_large), int(withdrawn))

    def feed(self, data: bytes, now_ns: int, batch: UpdateBatch, expected_seq: int = 0) -> DecodeResult:
        """Like :meth:`decode`, keeping the partial trailing message for the next call itself.

        Offsets in the result refer to ``result.buffer`` (the kept bytes followed by ``data``).
        """
        buf = self._pending + data if self._pending else bytes(data)
        result = self.decode(buf, now_ns, batch, expected_seq)
        self._pending = buf[result.consumed :]
        return result

    @property
    def pending(self) -> int:
        """Bytes held back by :meth:`feed` waiting for the rest of a message."""
        return len(self._pending)

    @property
    def quoted(self) -> list[int]:
        """The instruments this LP quotes (engine indices)."""
        return [int(i) for i in np.nonzero(self.itab[:, G_PX_M])[0]]

    def await_snapshot(self, instr: int | None = None) -> None:
        """Mark one instrument's book (or every one) as waiting for a fresh 35=W."""
        self.itab[slice(None) if instr is None else instr, G_AWAIT] = AWAIT_SNAPSHOT

    def awaiting_snapshot(self, instr: int) -> bool:
        """True until a 35=W for ``instr`` arrives after :meth:`await_snapshot`."""
        return bool(self.itab[instr, G_AWAIT] != AWAIT_LIVE)

    def take_withdrawn(self) -> list[int]:
        """The books withdrawn since the last call; they now await the snapshots the caller asks for."""
        state = self.itab[:, G_AWAIT]
        out = [int(i) for i in np.nonzero(state == AWAIT_WITHDRAWN)[0]]
        state[out] = AWAIT_SNAPSHOT
        return out

    @property
    def gaps(self) -> int:
        """MsgSeqNum gaps seen (supervised)."""
        return int(self.counter_array[lb.C_GAPS])

    def discard_pending(self) -> None:
        """A new stream (connection): forget the partial message kept for the next read and the
        MsgSeqNum expected."""
        self._pending = b""
        self.counter_array[lb.C_IN_JUNK] = 0
        self.counter_array[lb.C_EXPECTED_SEQ] = 0

    def clear_book(self, batch: UpdateBatch, now_ns: int, instr: int | None = None) -> None:
        """Empty our book of one instrument (or all the LP quotes) and append CLEAR_BOOK rows.

        For a rejected or dropped subscription, or a sequence gap that makes incremental state
        untrustworthy; the next snapshot rebuilds the book.
        """
        instrs = [instr] if instr is not None else self.quoted
        for i in instrs:
            self.books.forget(i)
            batch.clear_book(self.lp, i, now_ns)

    def lp_down(self, batch: UpdateBatch, now_ns: int) -> None:
        """The LP is gone: forget every book and the partial message; append LP_DOWN."""
        self.books.forget()
        self.discard_pending()
        batch.lp_down(self.lp, now_ns)


def warm_up() -> float:
    """Compile (or load from Numba's cache) the decode kernel before the clock starts.

    Returns the seconds it took: the JIT compile on a cold cache, the cache load otherwise.
    """
    start = time.perf_counter()
    one = Grid.parse("1")
    dec = MdDecoder(0, [one], [one], {"S": 0}, levels=1)
    # A complete 35=W with one entry exercises every specialisation the caller will use.
    body = b"35=W\x0134=1\x01262=0\x01268=1\x01269=0\x01270=1\x01271=1\x01278=a\x01"
    head = b"8=FIX.4.4\x019=%d\x01" % len(body)
    frame = head + body + b"10=%03d\x01" % (sum(head + body) % 256)
    dec.decode(frame, 0, UpdateBatch(4))
    return time.perf_counter() - start
