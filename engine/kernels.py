"""Numba kernels of the engine: apply LP updates, aggregate, price every tier, publish.

Every kernel takes arrays and integer scalars only and allocates nothing. All state lives in one
``int64`` buffer (the *arena*) because Numba's call cost grows with each array argument it unboxes
(~170 ns each): a public kernel takes the batch rows and the arena, and :func:`_views` rebuilds the
named arrays from the arena's header (a few reshapes, no allocation). The column/row constants below name what lives
where. :class:`engine.book.Engine` owns the arena.

The aggregated book is materialised only as deep as some tier needs (:func:`_merge_needs`), and
haircut/weight are applied once per update, not per reprice.

Array layout (all ``int64``, views of the arena, see :func:`build_arena`)::

    book        [n_instr, n_lp, side, field, level]   field: B_PX, B_QTY (as sent), B_TS (level update
                                                      time), B_EFF_PX, B_EFF_QTY (after haircut and
                                                      weight, computed once per update, not per reprice)
    lp_state    [n_instr, n_lp, LPS_NF]                per (instrument, LP): params and status
    instr_state [n_instr + 1, I_NF]                   per instrument: params, dynamic state, counters;
                                                      row n_instr holds engine-wide counters
    tiers       [n_tier, T_NF + max_bands]            tier pricing parameters
    quotes      [n_tier, n_instr, side, Q_PX|Q_QTY, max_depth]   published tier ladders
    quote_state [n_tier, n_instr, QS_NF]              QS_N_BID, QS_N_ASK (valid levels), QS_VERSION
    scratch     [S_ROWS, width]                       work space of one reprice

The semantics (the same as :mod:`engine.reference`, which is the readable specification):

* Eligible LP for an instrument at ``now``: configured for it, up, and
  ``now - last_update_ns <= staleness_ns`` (SET_LEVEL, CLEAR_BOOK and TOUCH rows update it; a
  TOUCH reprices the instrument only if the LP had gone past its limit). Its levels (slots with
  qty > 0) are worsened by the haircut (bid - h, ask + h) and scaled ``qty * weight_pct // 100``
  per level; a level that floors to 0 drops out. Level slots need not be sorted; equal prices
  are summed.
* Spike filter (K > 0): LPs with both sides are candidates; ``mid2 = best_bid + best_ask`` (twice
  the mid, so it stays an integer). With at least 2 *other* candidates, an LP is ignored when
  ``|mid2 - median2(others)| > 2K``, where the median of an even count is the **lower middle**.
  Every candidate is judged against all other candidates (not iteratively).
* Aggregated input crossed or locked (best bid >= best ask): no quote in every tier, counted once
  as C_CROSSED_INPUT and once per tier as C_NQ_CROSSED. A side with no levels: that side is not
  quoted (C_NQ_EMPTY_SIDE per tier side); the other side is still priced.
* Volatility: integer fixed point (Q16 ticks) so the kernel and the reference agree bit for bit.
  When the aggregated mid moved: ``vol = decay(vol, now - t_vol)``, ``vol += (|Δmid| - vol) >> 2``;
  at pricing each side widens by ``min(ceil(decay(vol, now - t_vol) * pct / 100), max)``; see
  :func:`_decay` for the half-life.
* Tier pricing order: levels by mode → markup (ticks, or ceil(|mid| * bps / 10000)) → volatility
  widening → skew → min spread → max spread → rounding to ``round_ticks`` (merging levels that
  collide) → depth → invariant check → publish (version bump only when the quote changed).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from engine.batch import (
    CLEAR_BOOK,
    F_INSTR,
    F_KIND,
    F_LEVEL,
    F_LP,
    F_PRICE,
    F_QTY,
    F_SIDE,
    F_TS,
    LP_DOWN,
    LP_UP,
    SET_LEVEL,
    TOUCH,
)

# --- book fields ---------------------------------------------------------------------------------
B_PX, B_QTY, B_TS, B_EFF_PX, B_EFF_QTY = 0, 1, 2, 3, 4
B_NF = 5

# --- lp_state columns ----------------------------------------------------------------------------
LPS_ALLOWED = 0  # 1 if the LP is configured (and enabled) for the instrument
LPS_UP = 1  # 1 while the LP is up (LP_UP seen, no LP_DOWN since)
LPS_HAIRCUT = 2  # ticks
LPS_WEIGHT = 3  # percent of sizes counted
LPS_STALE_NS = 4  # staleness limit
LPS_LAST_NS = 5  # ts of the last SET_LEVEL / CLEAR_BOOK / TOUCH for (lp, instr)
LPS_FRESH = 6  # 1 from an update until expire() sees the staleness limit crossed
LPS_NF = 7

NEVER = -(2**62)  # "no update yet": older than any staleness limit

# --- instr_state columns -------------------------------------------------------------------------
I_SPIKE_K = 0
I_HALFLIFE_NS = 1
I_SKEW = 2  # risk skew input, ticks (positive: we are long, prices move down)
I_DIRTY = 3
I_HAS_MID = 4
I_MID2 = 5  # last aggregated mid, times two
I_VOL_Q = 6  # EWMA of |mid change| in ticks, Q16 fixed point
I_VOL_NS = 7  # time I_VOL_Q was last updated
I_NSTATE = 8
# counters (the same columns in the engine-wide row n_instr)
C_REPRICES = 8
C_SPIKES = 9  # LPs ignored by the spike filter (one per LP per reprice)
C_CROSSED_INPUT = 10  # reprices whose aggregated input was crossed or locked
C_NQ_EMPTY_SIDE = 11  # tier sides not quoted: no liquidity (or not enough for the first band)
C_NQ_CROSSED = 12  # tiers not quoted because the input was crossed
C_NQ_MIN_SPREAD = 13  # tiers not quoted: spread below minimum with rule no_quote
C_NQ_MAX_SPREAD = 14  # tiers not quoted: spread above maximum with rule no_quote
C_NQ_INVARIANT = 15  # tiers not quoted: a priced ladder failed the run-time invariant check
C_REJECTED_ROWS = 16  # batch rows with an unknown kind / index or an LP not set up for the instrument
I_NF = 17
COUNTER_NAMES = (
    "reprices",
    "spikes_filtered",
    "crossed_input",
    "no_quote_empty_side",
    "no_quote_crossed",
    "no_quote_min_spread",
    "no_quote_max_spread",
    "no_quote_invariant",
    "rejected_rows",
)
FIRST_COUNTER = C_REPRICES

Q16 = 65536
MAX_MID_STEP2 = 2**31  # |mid2 change| is clamped here so Q16 vol arithmetic stays inside int64

# --- tiers columns -------------------------------------------------------------------------------
MODE_FULL_DEPTH, MODE_TOP_OF_BOOK, MODE_VWAP_BANDS, MODE_FULL_AMOUNT = 0, 1, 2, 3
T_MODE = 0
T_DEPTH = 1
T_MARKUP_BPS = 2  # 1: markups are bps of |mid|, 0: ticks
T_BID_MARKUP = 3
T_ASK_MARKUP = 4
T_MIN_SPREAD = 5
T_MIN_NO_QUOTE = 6  # 1: no_quote, 0: widen
T_MAX_SPREAD = 7  # 0: off
T_MAX_CAP = 8  # 1: cap, 0: no_quote
T_SKEW_PCT = 9
T_MAX_SKEW = 10
T_VOL_PCT = 11
T_MAX_VOL = 12
T_ROUND = 13
T_NBANDS = 14
T_BANDS = 15  # first band column
T_NF = 15

# --- quotes ----------------------------------------------------------------------------------------
Q_PX, Q_QTY = 0, 1
QS_N_BID, QS_N_ASK, QS_VERSION = 0, 1, 2
QS_NF = 3

# --- scratch rows ----------------------------------------------------------------------------------
S_MERGED = 0  # + 2*side: price row, + 2*side + 1: qty row (aggregated book, best first)
S_TIER = 4  # tier levels before pricing (band modes)
S_SEG = 8  # per-LP effective ladders, sorted best first, concatenated
S_OUT = 12  # the priced ladder about to be published
S_LP_START = 16  # + side
S_LP_LEN = 18  # + side
S_LP_USE = 20  # 1: LP contributes to this reprice
S_LP_MID2 = 21
S_LP_CAND = 22
S_LP_SPIKED = 23
S_HEAD = 24
S_SORT = 25
S_ACTIVE = 26
S_END = 27
S_ROWS = 28


@njit(cache=True, nogil=True, inline="always")
def _better(px: int, other: int, side: int) -> bool:
    """True if ``px`` is strictly better than ``other`` for ``side`` (higher bid, lower ask)."""
    if side == 0:
        return px > other
    return px < other


@njit(cache=True, nogil=True)
def _decay(vol_q: int, dt: int, halflife: int) -> int:
    """Decay a Q16 value by ``dt`` ns with the given half-life, in integers only.

    Whole half-lives are exact right shifts; the remainder ``r`` is linear between 1 and 1/2
    (``1 - r / (2h)``, within 6% of ``2**(-r/h)``). Integers keep the kernel and the reference
    bit-identical without relying on two libm ``pow`` calls agreeing.
    """
    if dt <= 0 or vol_q == 0:
        return vol_q
    n = dt // halflife
    if n >= 62:
        return 0
    r = dt - n * halflife
    keep = (Q16 * (2 * halflife - r)) // (2 * halflife)
    return ((vol_q >> n) * keep) >> 16


@njit(cache=True, nogil=True)
def _sweep(px_row: np.ndarray, qty_row: np.ndarray, start: int, n: int, size: int, side: int) -> tuple:
    """VWAP of taking ``size`` from levels [start, start+n), rounded against the client.

    Returns (ok, price); ok is False when the levels hold less than ``size``.
    """
    taken = 0
    notional = 0
    for k in range(start, start + n):
        take = qty_row[k]
        if take > size - taken:
            take = size - taken
        notional += px_row[k] * take
        taken += take
        if taken == size:
            break
    if taken < size:
        return False, 0
    if side == 0:
        return True, notional // size  # bid: round down
    return True, -((-notional) // size)  # ask: round up


@njit(cache=True, nogil=True)
def _apply_rows(rows: np.ndarray, n: int, book: np.ndarray, lp_state: np.ndarray, instr_state: np.ndarray) -> None:
    n_instr = book.shape[0]
    n_lp = book.shape[1]
    n_lvl = book.shape[4]
    for r in range(n):
        kind = rows[F_KIND, r]
        lp = rows[F_LP, r]
        ts = rows[F_TS, r]
        if kind == SET_LEVEL or kind == CLEAR_BOOK or kind == TOUCH:
            i = rows[F_INSTR, r]
            if i < 0 or i >= n_instr or lp < 0 or lp >= n_lp:
                instr_state[n_instr, C_REJECTED_ROWS] += 1
                continue
            if lp_state[i, lp, LPS_ALLOWED] == 0:
                instr_state[i, C_REJECTED_ROWS] += 1
                continue
            if kind == SET_LEVEL:
                side = rows[F_SIDE, r]
                lvl = rows[F_LEVEL, r]
                if side < 0 or side > 1 or lvl < 0 or lvl >= n_lvl:
                    instr_state[i, C_REJECTED_ROWS] += 1
                    continue
                qty = rows[F_QTY, r]
                if qty < 0:
                    qty = 0
                px = rows[F_PRICE, r]
                h = lp_state[i, lp, LPS_HAIRCUT]
                book[i, lp, side, B_PX, lvl] = px
                book[i, lp, side, B_QTY, lvl] = qty
                book[i, lp, side, B_TS, lvl] = ts
                # Haircut and weight once here rather than for every level at every reprice (an
                # integer division costs tens of cycles).
                book[i, lp, side, B_EFF_PX, lvl] = px - h if side == 0 else px + h
                book[i, lp, side, B_EFF_QTY, lvl] = qty * lp_state[i, lp, LPS_WEIGHT] // 100
            elif kind == CLEAR_BOOK:
                for s in range(2):
                    for k in range(n_lvl):
                        book[i, lp, s, B_QTY, k] = 0
                        book[i, lp, s, B_EFF_QTY, k] = 0
                        book[i, lp, s, B_TS, k] = ts
            elif lp_state[i, lp, LPS_FRESH] == 1 and ts - lp_state[i, lp, LPS_LAST_NS] <= lp_state[i, lp, LPS_STALE_NS]:
                # A TOUCH of an LP that never went past its staleness limit: every reprice so far
                # counted it, so the quotes stand; it only stays fresh.
                lp_state[i, lp, LPS_LAST_NS] = ts
                continue
            lp_state[i, lp, LPS_LAST_NS] = ts
            lp_state[i, lp, LPS_FRESH] = 1
            instr_state[i, I_DIRTY] = 1
        elif kind == LP_DOWN or kind == LP_UP:
            if lp < 0 or lp >= n_lp:
                instr_state[n_instr, C_REJECTED_ROWS] += 1
                continue
            for i in range(n_instr):
                if lp_state[i, lp, LPS_ALLOWED] == 0:
                    continue
                if kind == LP_DOWN:
                    lp_state[i, lp, LPS_UP] = 0
                    # A down LP re-enters only with a fresh snapshot: forget its book now.
                    for s in range(2):
                        for k in range(n_lvl):
                            book[i, lp, s, B_QTY, k] = 0
                            book[i, lp, s, B_EFF_QTY, k] = 0
                            book[i, lp, s, B_TS, k] = ts
                else:
                    lp_state[i, lp, LPS_UP] = 1
                instr_state[i, I_DIRTY] = 1
        else:
            instr_state[n_instr, C_REJECTED_ROWS] += 1


@njit(cache=True, nogil=True)
def _aggregate(
    i: int,
    now: int,
    book: np.ndarray,
    lp_state: np.ndarray,
    instr_state: np.ndarray,
    scratch: np.ndarray,
    need_levels: int,
    need_qty: int,
) -> tuple:
    """Build eligible LPs' sorted ladders, run the spike filter, merge. Returns (n_bid, n_ask)."""
    n_lp = book.shape[1]
    n_lvl = book.shape[4]
    for lp in range(n_lp):
        eligible = (
            lp_state[i, lp, LPS_ALLOWED] == 1
            and lp_state[i, lp, LPS_UP] == 1
            and now - lp_state[i, lp, LPS_LAST_NS] <= lp_state[i, lp, LPS_STALE_NS]
        )
        scratch[S_LP_USE, lp] = 1 if eligible else 0
    # Effective per-LP ladders, each sorted best first by insertion (LP ladders arrive nearly
    # sorted, so this is close to linear).
    for s in range(2):
        prow = S_SEG + 2 * s
        qrow = prow + 1
        pos = 0
        for lp in range(n_lp):
            scratch[S_LP_START + s, lp] = pos
            cnt = 0
            if scratch[S_LP_USE, lp] == 1:
                eff_px = book[i, lp, s, B_EFF_PX]
                eff_qty = book[i, lp, s, B_EFF_QTY]
                for k in range(n_lvl):
                    qe = eff_qty[k]
                    if qe <= 0:
                        continue  # empty slot, or a size the weight floored to 0
                    px = eff_px[k]
                    j = pos + cnt
                    while j > pos and _better(px, scratch[prow, j - 1], s):
                        scratch[prow, j] = scratch[prow, j - 1]
                        scratch[qrow, j] = scratch[qrow, j - 1]
                        j -= 1
                    scratch[prow, j] = px
                    scratch[qrow, j] = qe
                    cnt += 1
            scratch[S_LP_LEN + s, lp] = cnt
            pos += cnt
    # Spike filter.
    k_spike = instr_state[i, I_SPIKE_K]
    if k_spike > 0:
        n_cand = 0
        for lp in range(n_lp):
            cand = scratch[S_LP_USE, lp] == 1 and scratch[S_LP_LEN, lp] > 0 and scratch[S_LP_LEN + 1, lp] > 0
            scratch[S_LP_CAND, lp] = 1 if cand else 0
            scratch[S_LP_SPIKED, lp] = 0
            if cand:
                scratch[S_LP_MID2, lp] = (
                    scratch[S_SEG, scratch[S_LP_START, lp]] + scratch[S_SEG + 2, scratch[S_LP_START + 1, lp]]
                )
                n_cand += 1
        if n_cand >= 3:
            # Sort all candidates' mids once. The others' lower middle is element (m-2)//2 of the
            # list without (one copy of) v: that is sorted[(m-2)//2] if it is below v (every copy
            # of v sits after it), else the element after it.
            m = 0
            for lp in range(n_lp):
                if scratch[S_LP_CAND, lp] == 0:
                    continue
                v = scratch[S_LP_MID2, lp]
                j = m
                while j > 0 and scratch[S_SORT, j - 1] > v:
                    scratch[S_SORT, j] = scratch[S_SORT, j - 1]
                    j -= 1
                scratch[S_SORT, j] = v
                m += 1
            mid_others = (m - 2) // 2
            for lp in range(n_lp):
                if scratch[S_LP_CAND, lp] == 0:
                    continue
                v = scratch[S_LP_MID2, lp]
                median2 = scratch[S_SORT, mid_others]
                if median2 >= v:
                    median2 = scratch[S_SORT, mid_others + 1]
                if abs(v - median2) > 2 * k_spike:
                    scratch[S_LP_SPIKED, lp] = 1
            for lp in range(n_lp):
                if scratch[S_LP_SPIKED, lp] == 1:
                    scratch[S_LP_USE, lp] = 0
                    instr_state[i, C_SPIKES] += 1
    # k-way merge of the sorted per-LP ladders, one distinct price per step (sizes at that price
    # summed over LPs). It stops once it holds ``need_levels`` levels and ``need_qty`` size:
    # deeper levels cannot change any tier's quote (see _merge_needs).
    n_active = 0
    active = scratch[S_ACTIVE]
    for lp in range(n_lp):
        if scratch[S_LP_USE, lp] == 1:
            active[n_active] = lp
            n_active += 1
    head = scratch[S_HEAD]
    end = scratch[S_END]
    n_side0 = 0
    n_side1 = 0
    for s in range(2):
        seg_px = scratch[S_SEG + 2 * s]
        seg_qty = scratch[S_SEG + 2 * s + 1]
        out_px = scratch[S_MERGED + 2 * s]
        out_qty = scratch[S_MERGED + 2 * s + 1]
        for a in range(n_active):
            lp = active[a]
            head[a] = scratch[S_LP_START + s, lp]
            end[a] = head[a] + scratch[S_LP_LEN + s, lp]
        m = 0
        cum = 0
        while True:
            found = False
            best_px = 0
            for a in range(n_active):
                if head[a] < end[a]:
                    px = seg_px[head[a]]
                    if not found or _better(px, best_px, s):
                        found = True
                        best_px = px
            if not found or (m >= need_levels and cum >= need_qty):
                break
            q = 0
            for a in range(n_active):
                h = head[a]
                while h < end[a] and seg_px[h] == best_px:
                    q += seg_qty[h]
                    h += 1
                head[a] = h
            out_px[m] = best_px
            out_qty[m] = q
            cum += q
            m += 1
        if s == 0:
            n_side0 = m
        else:
            n_side1 = m
    return n_side0, n_side1


@njit(cache=True, nogil=True)
def _merge_needs(tiers: np.ndarray) -> tuple:
    """How deep the aggregated book must be for every tier to price exactly as on the full book.

    full_depth: ``depth * round + 1`` levels (``depth`` rounded buckets span at most
    ``depth * round`` distinct prices, plus one to see the next bucket start); top_of_book: 1;
    vwap_bands: enough levels to hold the largest band. full_amount reads per-LP ladders.
    """
    need_levels = 1  # the top of both sides decides crossed input and the mid
    need_qty = 0
    for t in range(tiers.shape[0]):
        mode = tiers[t, T_MODE]
        if mode == MODE_FULL_DEPTH:
            need = tiers[t, T_DEPTH] * tiers[t, T_ROUND] + 1
            if need > need_levels:
                need_levels = need
        elif mode == MODE_VWAP_BANDS:
            n_bands = tiers[t, T_NBANDS]
            if n_bands > 0 and tiers[t, T_BANDS + n_bands - 1] > need_qty:
                need_qty = tiers[t, T_BANDS + n_bands - 1]
    return need_levels, need_qty


@njit(cache=True, nogil=True)
def _update_vol(i: int, now: int, n_bid: int, n_ask: int, instr_state: np.ndarray, scratch: np.ndarray) -> None:
    """Fold the aggregated mid into the instrument's volatility EWMA (only when the mid moved)."""
    if n_bid == 0 or n_ask == 0:
        return
    mid2 = scratch[S_MERGED, 0] + scratch[S_MERGED + 2, 0]
    if instr_state[i, I_HAS_MID] == 1:
        step2 = abs(mid2 - instr_state[i, I_MID2])
        if step2 > 0:
            if step2 > MAX_MID_STEP2:
                step2 = MAX_MID_STEP2
            vol = _decay(instr_state[i, I_VOL_Q], now - instr_state[i, I_VOL_NS], instr_state[i, I_HALFLIFE_NS])
            # |mid change| in Q16 ticks is step2 * Q16 / 2; each move pulls the EWMA 1/4 of the way.
            vol += ((step2 << 15) - vol) >> 2
            instr_state[i, I_VOL_Q] = vol
            instr_state[i, I_VOL_NS] = now
    instr_state[i, I_HAS_MID] = 1
    instr_state[i, I_MID2] = mid2


@njit(cache=True, nogil=True)
def _tier_levels(t: int, s: int, n_merged: int, tiers: np.ndarray, scratch: np.ndarray, n_lp: int) -> tuple:
    """Levels the tier offers on side ``s`` before pricing: (price row, n levels)."""
    mode = tiers[t, T_MODE]
    mrow = S_MERGED + 2 * s
    if mode == MODE_FULL_DEPTH:
        return mrow, n_merged
    if mode == MODE_TOP_OF_BOOK:
        return mrow, min(n_merged, 1)
    trow = S_TIER + 2 * s
    n = 0
    for b in range(tiers[t, T_NBANDS]):
        size = tiers[t, T_BANDS + b]
        if mode == MODE_VWAP_BANDS:
            ok, px = _sweep(scratch[mrow], scratch[mrow + 1], 0, n_merged, size, s)
        else:
            ok = False
            px = 0
            prow = S_SEG + 2 * s
            for lp in range(n_lp):
                if scratch[S_LP_USE, lp] == 0:
                    continue
                ok_lp, px_lp = _sweep(
                    scratch[prow], scratch[prow + 1], scratch[S_LP_START + s, lp], scratch[S_LP_LEN + s, lp], size, s
                )
                if ok_lp and (not ok or _better(px_lp, px, s)):
                    ok = True
                    px = px_lp
        if not ok:
            break  # larger bands need more liquidity still
        scratch[trow, n] = px
        scratch[trow + 1, n] = size
        n += 1
    return trow, n


@njit(cache=True, nogil=True)
def _publish(
    t: int, i: int, nb: int, na: int, quotes: np.ndarray, quote_state: np.ndarray, scratch: np.ndarray
) -> None:
    """Copy the priced ladder in S_OUT to the quote arrays; bump the version only on change."""
    changed = quote_state[t, i, QS_N_BID] != nb or quote_state[t, i, QS_N_ASK] != na
    if not changed:
        for s in range(2):
            n = nb if s == 0 else na
            orow = S_OUT + 2 * s
            for k in range(n):
                if quotes[t, i, s, Q_PX, k] != scratch[orow, k] or quotes[t, i, s, Q_QTY, k] != scratch[orow + 1, k]:
                    changed = True
    if not changed:
        return
    for s in range(2):
        n = nb if s == 0 else na
        orow = S_OUT + 2 * s
        for k in range(n):
            quotes[t, i, s, Q_PX, k] = scratch[orow, k]
            quotes[t, i, s, Q_QTY, k] = scratch[orow + 1, k]
    quote_state[t, i, QS_N_BID] = nb
    quote_state[t, i, QS_N_ASK] = na
    quote_state[t, i, QS_VERSION] += 1


@njit(cache=True, nogil=True)
def _price_tier(
    t: int,
    i: int,
    n_bid: int,
    n_ask: int,
    instr_state: np.ndarray,
    tiers: np.ndarray,
    quotes: np.ndarray,
    quote_state: np.ndarray,
    scratch: np.ndarray,
    n_lp: int,
    vol_q: int,
) -> None:
    mode = tiers[t, T_MODE]
    depth = tiers[t, T_DEPTH]
    bid_row, nb = _tier_levels(t, 0, n_bid, tiers, scratch, n_lp)
    ask_row, na = _tier_levels(t, 1, n_ask, tiers, scratch, n_lp)
    if nb == 0:
        instr_state[i, C_NQ_EMPTY_SIDE] += 1
    if na == 0:
        instr_state[i, C_NQ_EMPTY_SIDE] += 1
    if nb == 0 and na == 0:
        _publish(t, i, 0, 0, quotes, quote_state, scratch)
        return
    # The reference mid for bps markups is the aggregated market's (twice the mid); one-sided,
    # the side that exists.
    if n_bid > 0 and n_ask > 0:
        mid2 = scratch[S_MERGED, 0] + scratch[S_MERGED + 2, 0]
    elif n_bid > 0:
        mid2 = 2 * scratch[S_MERGED, 0]
    else:
        mid2 = 2 * scratch[S_MERGED + 2, 0]
    bid_mk = tiers[t, T_BID_MARKUP]
    ask_mk = tiers[t, T_ASK_MARKUP]
    if tiers[t, T_MARKUP_BPS] == 1:
        # ceil(|mid| * bps / 10000) with |mid| = |mid2| / 2
        bid_mk = (abs(mid2) * bid_mk + 19999) // 20000
        ask_mk = (abs(mid2) * ask_mk + 19999) // 20000
    vol_w = (vol_q * tiers[t, T_VOL_PCT] + 100 * Q16 - 1) // (100 * Q16)
    if vol_w > tiers[t, T_MAX_VOL]:
        vol_w = tiers[t, T_MAX_VOL]
    skew = instr_state[i, I_SKEW] * tiers[t, T_SKEW_PCT] // 100
    max_skew = tiers[t, T_MAX_SKEW]
    if skew > max_skew:
        skew = max_skew
    elif skew < -max_skew:
        skew = -max_skew
    bid_shift = -bid_mk - vol_w - skew
    ask_shift = ask_mk + vol_w - skew
    if nb > 0 and na > 0:
        spread = (scratch[ask_row, 0] + ask_shift) - (scratch[bid_row, 0] + bid_shift)
        min_spread = tiers[t, T_MIN_SPREAD]
        max_spread = tiers[t, T_MAX_SPREAD]
        if spread < min_spread:
            if tiers[t, T_MIN_NO_QUOTE] == 1:
                instr_state[i, C_NQ_MIN_SPREAD] += 1
                _publish(t, i, 0, 0, quotes, quote_state, scratch)
                return
            extra = min_spread - spread
            bid_shift -= extra // 2
            ask_shift += extra - extra // 2  # the odd tick goes to the ask
        elif max_spread > 0 and spread > max_spread:
            if tiers[t, T_MAX_CAP] == 0:
                instr_state[i, C_NQ_MAX_SPREAD] += 1
                _publish(t, i, 0, 0, quotes, quote_state, scratch)
                return
            excess = spread - max_spread
            bid_shift += excess // 2
            ask_shift -= excess - excess // 2  # the odd tick comes off the ask
    # Shift, round to the client's grid against the client, merge collisions, cut to depth.
    # Depth modes sum collided sizes (distinct liquidity); band modes keep the larger band
    # (band sizes are cumulative: the 3M band already contains the 1M).
    round_ticks = tiers[t, T_ROUND]
    sum_sizes = mode == MODE_FULL_DEPTH or mode == MODE_TOP_OF_BOOK
    n_out0 = 0
    n_out1 = 0
    for s in range(2):
        src = bid_row if s == 0 else ask_row
        n_src = nb if s == 0 else na
        shift = bid_shift if s == 0 else ask_shift
        orow = S_OUT + 2 * s
        m = 0
        for k in range(n_src):
            px = scratch[src, k] + shift
            if round_ticks > 1:  # skip the (slow) floor division on the common 1-tick grid
                if s == 0:
                    px = (px // round_ticks) * round_ticks
                else:
                    px = -((-px) // round_ticks) * round_ticks
            q = scratch[src + 1, k]
            if m > 0 and scratch[orow, m - 1] == px:
                if sum_sizes:
                    scratch[orow + 1, m - 1] += q
                elif q > scratch[orow + 1, m - 1]:
                    scratch[orow + 1, m - 1] = q
                continue
            if m == depth:
                break
            scratch[orow, m] = px
            scratch[orow + 1, m] = q
            m += 1
        if s == 0:
            n_out0 = m
        else:
            n_out1 = m
    # Run-time invariants: strictly ordered ladders, positive sizes, never crossed or locked.
    ok = True
    for s in range(2):
        orow = S_OUT + 2 * s
        n = n_out0 if s == 0 else n_out1
        for k in range(n):
            if scratch[orow + 1, k] <= 0:
                ok = False
            if k > 0 and not _better(scratch[orow, k - 1], scratch[orow, k], s):
                ok = False
    if n_out0 > 0 and n_out1 > 0 and scratch[S_OUT, 0] >= scratch[S_OUT + 2, 0]:
        ok = False
    if not ok:
        instr_state[i, C_NQ_INVARIANT] += 1
        _publish(t, i, 0, 0, quotes, quote_state, scratch)
        return
    _publish(t, i, n_out0, n_out1, quotes, quote_state, scratch)


@njit(cache=True, nogil=True)
def _reprice(
    i: int,
    now: int,
    book: np.ndarray,
    lp_state: np.ndarray,
    instr_state: np.ndarray,
    tiers: np.ndarray,
    quotes: np.ndarray,
    quote_state: np.ndarray,
    scratch: np.ndarray,
) -> None:
    """Rebuild instrument ``i``'s aggregated book and reprice every tier."""
    instr_state[i, C_REPRICES] += 1
    n_lp = book.shape[1]
    need_levels, need_qty = _merge_needs(tiers)
    n_bid, n_ask = _aggregate(i, now, book, lp_state, instr_state, scratch, need_levels, need_qty)
    n_tier = tiers.shape[0]
    if n_bid > 0 and n_ask > 0 and scratch[S_MERGED, 0] >= scratch[S_MERGED + 2, 0]:
        # LPs disagree across the book (or one LP's own book is crossed): there is no honest
        # price, so nothing is quoted anywhere until the input uncrosses.
        instr_state[i, C_CROSSED_INPUT] += 1
        for t in range(n_tier):
            instr_state[i, C_NQ_CROSSED] += 1
            _publish(t, i, 0, 0, quotes, quote_state, scratch)
        return
    _update_vol(i, now, n_bid, n_ask, instr_state, scratch)
    vol_q = _decay(instr_state[i, I_VOL_Q], now - instr_state[i, I_VOL_NS], instr_state[i, I_HALFLIFE_NS])
    for t in range(n_tier):
        _price_tier(t, i, n_bid, n_ask, instr_state, tiers, quotes, quote_state, scratch, n_lp, vol_q)


@njit(cache=True, nogil=True)
def _reprice_dirty(
    now: int,
    book: np.ndarray,
    lp_state: np.ndarray,
    instr_state: np.ndarray,
    tiers: np.ndarray,
    quotes: np.ndarray,
    quote_state: np.ndarray,
    scratch: np.ndarray,
) -> int:
    count = 0
    for i in range(book.shape[0]):
        if instr_state[i, I_DIRTY] == 1:
            instr_state[i, I_DIRTY] = 0
            _reprice(i, now, book, lp_state, instr_state, tiers, quotes, quote_state, scratch)
            count += 1
    return count


# --- the arena: every state array is a view of one int64 buffer ---------------------------------
# A kernel call then unboxes two arrays (batch rows, arena) instead of nine: each array argument
# costs ~170 ns of Numba dispatch on this class of machine, most of a batch-of-1 budget.
# Header slots hold the dimensions and the offset of each array in the buffer.
H_N_INSTR, H_N_LP, H_N_LVL, H_N_TIER, H_TIER_W, H_DEPTH, H_SCRATCH_W = 0, 1, 2, 3, 4, 5, 6
H_OFF = 7  # + index in ARENA_ARRAYS
ARENA_ARRAYS = ("book", "lp_state", "instr_state", "tiers", "quotes", "quote_state", "scratch")
H_SIZE = H_OFF + len(ARENA_ARRAYS) + 1  # the last offset is the end of the buffer


def arena_shapes(
    n_instr: int, n_lp: int, n_lvl: int, n_tier: int, tier_w: int, depth: int, scratch_w: int
) -> list[tuple[int, ...]]:
    """Shapes of the arena's arrays, in ARENA_ARRAYS order."""
    return [
        (n_instr, n_lp, 2, B_NF, n_lvl),
        (n_instr, n_lp, LPS_NF),
        (n_instr + 1, I_NF),
        (n_tier, tier_w),
        (n_tier, n_instr, 2, 2, depth),
        (n_tier, n_instr, QS_NF),
        (S_ROWS, scratch_w),
    ]


def build_arena(
    n_instr: int, n_lp: int, n_lvl: int, n_tier: int, tier_w: int, depth: int, scratch_w: int
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Allocate the zeroed arena and return it with named numpy views of its arrays."""
    shapes = arena_shapes(n_instr, n_lp, n_lvl, n_tier, tier_w, depth, scratch_w)
    sizes = [int(np.prod(shape)) for shape in shapes]
    arena = np.zeros(H_SIZE + sum(sizes), np.int64)
    arena[:H_OFF] = (n_instr, n_lp, n_lvl, n_tier, tier_w, depth, scratch_w)
    views = {}
    off = H_SIZE
    for a, (name, shape, size) in enumerate(zip(ARENA_ARRAYS, shapes, sizes, strict=True)):
        arena[H_OFF + a] = off
        views[name] = arena[off : off + size].reshape(shape)
        off += size
    arena[H_OFF + len(ARENA_ARRAYS)] = off
    return arena, views


@njit(cache=True, nogil=True)
def _views(arena: np.ndarray) -> tuple:
    n_instr, n_lp, n_lvl = arena[H_N_INSTR], arena[H_N_LP], arena[H_N_LVL]
    n_tier, tier_w, depth, scratch_w = arena[H_N_TIER], arena[H_TIER_W], arena[H_DEPTH], arena[H_SCRATCH_W]
    book = arena[arena[H_OFF] : arena[H_OFF + 1]].reshape((n_instr, n_lp, 2, B_NF, n_lvl))
    lp_state = arena[arena[H_OFF + 1] : arena[H_OFF + 2]].reshape((n_instr, n_lp, LPS_NF))
    instr_state = arena[arena[H_OFF + 2] : arena[H_OFF + 3]].reshape((n_instr + 1, I_NF))
    tiers = arena[arena[H_OFF + 3] : arena[H_OFF + 4]].reshape((n_tier, tier_w))
    quotes = arena[arena[H_OFF + 4] : arena[H_OFF + 5]].reshape((n_tier, n_instr, 2, 2, depth))
    quote_state = arena[arena[H_OFF + 5] : arena[H_OFF + 6]].reshape((n_tier, n_instr, QS_NF))
    scratch = arena[arena[H_OFF + 6] : arena[H_OFF + 7]].reshape((S_ROWS, scratch_w))
    return book, lp_state, instr_state, tiers, quotes, quote_state, scratch


@njit(cache=True, nogil=True)
def apply_batch(rows: np.ndarray, n: int, now: int, arena: np.ndarray) -> int:
    """Apply ``n`` batch rows in order, then reprice each dirty instrument once (all tiers).

    Returns the number of instruments repriced. Instruments already marked dirty (e.g. by a skew
    change) are repriced too.
    """
    book, lp_state, instr_state, tiers, quotes, quote_state, scratch = _views(arena)
    _apply_rows(rows, n, book, lp_state, instr_state)
    return _reprice_dirty(now, book, lp_state, instr_state, tiers, quotes, quote_state, scratch)


@njit(cache=True, nogil=True)
def expire(now: int, arena: np.ndarray) -> int:
    """Reprice instruments where an LP crossed its staleness limit since its last update was seen.

    A silent LP sends nothing, so without this its last prices would stay in the quotes. Returns
    the number of instruments repriced (dirty ones included).
    """
    book, lp_state, instr_state, tiers, quotes, quote_state, scratch = _views(arena)
    for i in range(book.shape[0]):
        for lp in range(book.shape[1]):
            if lp_state[i, lp, LPS_FRESH] == 1 and now - lp_state[i, lp, LPS_LAST_NS] > lp_state[i, lp, LPS_STALE_NS]:
                lp_state[i, lp, LPS_FRESH] = 0
                instr_state[i, I_DIRTY] = 1
    return _reprice_dirty(now, book, lp_state, instr_state, tiers, quotes, quote_state, scratch)
