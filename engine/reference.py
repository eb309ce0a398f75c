"""Plain-Python reference engine: the readable specification of the kernels' semantics.

It has the public shape of :class:`engine.book.Engine` (``apply``, ``expire``, ``set_skew``,
``quote``, ``counters``) and is written for obviousness, not speed: dicts, lists and ``sorted``.
The property tests drive both with the same random streams and require identical quotes,
versions and counters after every step.

Semantics, step by step (a reprice of one instrument at ``now``):

1. **Eligible LPs**: configured and enabled for the instrument, up, and
   ``now - last_update_ns <= staleness_ms * 1e6`` (an LP never updated is not eligible). A
   SET_LEVEL, CLEAR_BOOK or TOUCH row updates ``last_update_ns``; a TOUCH marks the instrument
   for a reprice only if the LP had gone past its staleness limit (or was expired) before it.
2. **Effective levels** of an eligible LP: every level slot with qty > 0; price worsened by the
   haircut (bid - h, ask + h); size ``qty * size_weight_pct // 100`` per slot, and a slot whose
   size floors to 0 is dropped. Slots need not be sorted; equal prices add up.
3. **Spike filter** (``spike_filter_ticks`` K > 0): candidates are eligible LPs with both sides;
   ``mid2 = best_bid + best_ask`` (twice the mid). A candidate with at least 2 other candidates is
   ignored for this reprice (and counted) when ``|mid2 - median2| > 2K``, where ``median2`` is the
   median of the *other* candidates' ``mid2``; for an even count the **lower middle**.
4. **Aggregated book**: sizes summed per price over the remaining LPs, best first.
5. **Crossed or locked** aggregated input (best bid >= best ask): no quote in every tier; counted
   once as ``crossed_input`` and per tier as ``no_quote_crossed``. Volatility is not updated.
6. **Volatility** (integer Q16 fixed point, see :func:`decay`): when the aggregated mid moved
   since the last two-sided reprice, ``vol = decay(vol, now - t_vol)`` then
   ``vol += (|Δmid| - vol) >> 2`` (|Δmid| in Q16 ticks, |Δmid2| clamped at 2**31). At pricing,
   ``vol_now = decay(vol, now - t_vol)`` and each side widens by
   ``min(ceil(vol_now * vol_widen_pct / 100), max_vol_widen_ticks)``.
7. **Tier levels by mode**: full_depth = the aggregated book; top_of_book = its first level;
   vwap_bands = for each band the VWAP of sweeping the aggregated book for that size (bid rounded
   down, ask up; a band without enough liquidity ends the side); full_amount = for each band the
   best VWAP among single LPs that can fill the whole band on their own effective ladder.
   A tier side without levels is not quoted (``no_quote_empty_side``), the other side still is.
8. **Pricing**: markup (ticks, or ``ceil(|mid| * bps / 10000)`` of the aggregated mid; when the
   market is one-sided, of that side's best price), volatility widening, skew
   ``clamp(skew * skew_pct // 100, ±max_skew_ticks)`` subtracted from both sides. With both sides:
   spread below min → ``widen`` (bid down ``extra // 2``, ask up the rest) or ``no_quote``; else
   spread above max (if max > 0) → ``cap`` (bid up ``excess // 2``, ask down the rest) or
   ``no_quote``. Then bids round down and asks up to ``round_ticks``; levels that land on one
   price merge (sizes summed for depth modes, the larger band kept for band modes); at most
   ``depth`` levels per side.
9. **Invariants** before publishing: sizes > 0, bids strictly decreasing, asks strictly
   increasing, best bid < best ask. A failure publishes no quote (``no_quote_invariant``).
10. **Publish**: the version of (tier, instrument) increases by one when the ladder changed.

Batch rows with an unknown kind, an out-of-range index, or an LP not configured for the
instrument are ignored and counted as ``rejected_rows`` (engine-wide when the instrument or LP is
unknown). ``expire(now)`` reprices instruments where an LP that updated crossed its staleness
limit since; ``set_skew`` marks the instrument for repricing.
"""

from __future__ import annotations

from collections import defaultdict

from engine.batch import BID, CLEAR_BOOK, LP_DOWN, LP_UP, SET_LEVEL, TOUCH, UpdateBatch
from engine.book import MAX_HALFLIFE_MS, TierQuote
from engine.config import AggregationMode, Config, MarkupUnit, MaxSpreadRule, MinSpreadRule, TierConfig

__all__ = ["ReferenceEngine", "decay"]

Q16 = 65536
MAX_MID_STEP2 = 2**31
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

Levels = list[tuple[int, int]]  # (price, qty), best first


def decay(vol_q: int, dt: int, halflife_ns: int) -> int:
    """Decay a Q16 value over ``dt`` ns: exact halvings per whole half-life, linear in between."""
    if dt <= 0 or vol_q == 0:
        return vol_q
    halvings, rest = divmod(dt, halflife_ns)
    if halvings >= 62:
        return 0
    keep = Q16 * (2 * halflife_ns - rest) // (2 * halflife_ns)
    return ((vol_q >> halvings) * keep) >> 16


def is_better(px: int, other: int, side: int) -> bool:
    return px > other if side == BID else px < other


def best_first(levels: Levels, side: int) -> Levels:
    return sorted(levels, key=lambda lv: -lv[0] if side == BID else lv[0])


def sweep(levels: Levels, size: int, side: int) -> int | None:
    """VWAP of taking ``size`` from ``levels`` (best first), rounded against the client."""
    taken = notional = 0
    for px, qty in levels:
        take = min(qty, size - taken)
        notional += px * take
        taken += take
        if taken == size:
            break
    if taken < size:
        return None
    return notional // size if side == BID else -(-notional // size)


def merge_sum(levels: Levels, side: int) -> Levels:
    total: dict[int, int] = defaultdict(int)
    for px, qty in levels:
        total[px] += qty
    return best_first(list(total.items()), side)


class ReferenceEngine:
    """Same inputs and outputs as :class:`engine.book.Engine`, written to be obviously right."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.symbols = [i.symbol for i in cfg.instruments]
        self.tier_names = [t.name for t in cfg.tiers]
        self.max_levels = cfg.engine.max_levels
        self.allowed: set[tuple[int, int]] = set()  # (lp, instr)
        for j, lp in enumerate(cfg.lps):
            for sym in lp.instruments:
                i = self.symbols.index(sym)
                if lp.enabled and cfg.instruments[i].enabled:
                    self.allowed.add((j, i))
        # ladders[(lp, instr)][side] = {level slot: (price, qty)}
        self.ladders: dict[tuple[int, int], list[dict[int, tuple[int, int]]]] = {key: [{}, {}] for key in self.allowed}
        self.up = [False] * len(cfg.lps)
        self.last_update: dict[tuple[int, int], int] = {}
        self.fresh: set[tuple[int, int]] = set()
        self.dirty: set[int] = set()
        self.skew = [0] * len(self.symbols)
        self.mid2: list[int | None] = [None] * len(self.symbols)
        self.vol = [0] * len(self.symbols)
        self.vol_ns = [0] * len(self.symbols)
        self._counters = [dict.fromkeys(COUNTER_NAMES, 0) for _ in range(len(self.symbols) + 1)]
        self.published: dict[tuple[int, int], tuple[Levels, Levels]] = {}
        self.versions: dict[tuple[int, int], int] = defaultdict(int)

    # --- inputs ----------------------------------------------------------------------------

    def apply(self, batch: UpdateBatch, now_ns: int) -> int:
        """Apply the batch rows in order, then reprice each dirty instrument once."""
        for r in range(batch.n):
            self._apply_row(
                int(batch.kind[r]),
                int(batch.lp[r]),
                int(batch.instr[r]),
                int(batch.side[r]),
                int(batch.level[r]),
                int(batch.price[r]),
                int(batch.qty[r]),
                int(batch.ts_ns[r]),
            )
        return self._reprice_dirty(now_ns)

    def expire(self, now_ns: int) -> int:
        """Reprice instruments where an LP's last update went past its staleness limit."""
        for lp, i in sorted(self.fresh):
            if now_ns - self.last_update[(lp, i)] > self._staleness_ns(lp):
                self.fresh.discard((lp, i))
                self.dirty.add(i)
        return self._reprice_dirty(now_ns)

    def set_skew(self, instr_index: int, ticks: int, now_ns: int | None = None) -> int:
        """Set the skew input; reprice now with ``now_ns``, else on the next apply/expire."""
        self.skew[instr_index] = ticks
        self.dirty.add(instr_index)
        return 0 if now_ns is None else self.expire(now_ns)

    # --- reads -----------------------------------------------------------------------------

    def instrument_index(self, symbol: str) -> int:
        return self.symbols.index(symbol)

    def lp_index(self, name: str) -> int:
        return [lp.name for lp in self.cfg.lps].index(name)

    def tier_index(self, name: str) -> int:
        return self.tier_names.index(name)

    def quote(self, tier: str, symbol: str) -> TierQuote:
        key = (self.tier_names.index(tier), self.symbols.index(symbol))
        bids, asks = self.published.get(key, ([], []))
        return TierQuote(tier, symbol, tuple(bids), tuple(asks), self.versions[key])

    def counters(self, symbol: str | None = None) -> dict[str, int]:
        return dict(self._counters[len(self.symbols) if symbol is None else self.symbols.index(symbol)])

    # --- rows ------------------------------------------------------------------------------

    def _staleness_ns(self, lp: int) -> int:
        return self.cfg.lps[lp].staleness_ms * 1_000_000

    def _reject(self, instr: int | None) -> None:
        self._counters[len(self.symbols) if instr is None else instr]["rejected_rows"] += 1

    def _apply_row(self, kind: int, lp: int, i: int, side: int, level: int, px: int, qty: int, ts: int) -> None:
        n_lp, n_instr = len(self.cfg.lps), len(self.symbols)
        if kind in (SET_LEVEL, CLEAR_BOOK, TOUCH):
            if not (0 <= i < n_instr and 0 <= lp < n_lp):
                return self._reject(None)
            if (lp, i) not in self.allowed:
                return self._reject(i)
            book = self.ladders[(lp, i)]
            if kind == TOUCH:
                if (lp, i) in self.fresh and ts - self.last_update[(lp, i)] <= self._staleness_ns(lp):
                    # Fresh all along: every reprice counted this LP; it only stays fresh.
                    self.last_update[(lp, i)] = ts
                    return None
            elif kind == SET_LEVEL:
                if side not in (0, 1) or not 0 <= level < self.max_levels:
                    return self._reject(i)
                if qty > 0:
                    book[side][level] = (px, qty)
                else:
                    book[side].pop(level, None)
            elif kind == CLEAR_BOOK:
                book[0].clear()
                book[1].clear()
            self.last_update[(lp, i)] = ts
            self.fresh.add((lp, i))
            self.dirty.add(i)
        elif kind in (LP_DOWN, LP_UP):
            if not 0 <= lp < n_lp:
                return self._reject(None)
            self.up[lp] = kind == LP_UP
            for j, i2 in self.allowed:
                if j == lp:
                    if kind == LP_DOWN:
                        self.ladders[(j, i2)] = [{}, {}]
                    self.dirty.add(i2)
        else:
            self._reject(None)
        return None

    # --- pricing ---------------------------------------------------------------------------

    def _reprice_dirty(self, now: int) -> int:
        repriced = sorted(self.dirty)
        self.dirty.clear()
        for i in repriced:
            self._reprice(i, now)
        return len(repriced)

    def _effective_ladders(self, i: int, now: int) -> dict[int, tuple[Levels, Levels]]:
        """Eligible LPs' ladders after haircut and weight, each side best first."""
        out = {}
        for lp, lp_cfg in enumerate(self.cfg.lps):
            if (lp, i) not in self.allowed or not self.up[lp]:
                continue
            last = self.last_update.get((lp, i))
            if last is None or now - last > self._staleness_ns(lp):
                continue
            sides: list[Levels] = []
            for side in (0, 1):
                levels = []
                for px, qty in self.ladders[(lp, i)][side].values():
                    size = qty * lp_cfg.size_weight_pct // 100
                    if size > 0:
                        h = lp_cfg.haircut_ticks
                        levels.append((px - h if side == BID else px + h, size))
                sides.append(merge_sum(levels, side))
            out[lp] = (sides[0], sides[1])
        return out

    def _spike_filter(self, i: int, ladders: dict[int, tuple[Levels, Levels]]) -> None:
        k = self.cfg.instruments[i].spike_filter_ticks
        if k == 0:
            return
        mids = {lp: bids[0][0] + asks[0][0] for lp, (bids, asks) in ladders.items() if bids and asks}
        if len(mids) < 3:
            return
        spiked = []
        for lp, mid2 in mids.items():
            others = sorted(m for o, m in mids.items() if o != lp)
            median2 = others[(len(others) - 1) // 2]
            if abs(mid2 - median2) > 2 * k:
                spiked.append(lp)
        for lp in spiked:
            del ladders[lp]
            self._counters[i]["spikes_filtered"] += 1

    def _reprice(self, i: int, now: int) -> None:
        counters = self._counters[i]
        counters["reprices"] += 1
        ladders = self._effective_ladders(i, now)
        self._spike_filter(i, ladders)
        market = (
            merge_sum([lv for b, _ in ladders.values() for lv in b], 0),
            merge_sum([lv for _, a in ladders.values() for lv in a], 1),
        )
        bids, asks = market
        if bids and asks and bids[0][0] >= asks[0][0]:
            counters["crossed_input"] += 1
            for t in range(len(self.cfg.tiers)):
                counters["no_quote_crossed"] += 1
                self._publish(t, i, [], [])
            return
        if bids and asks:
            mid2 = bids[0][0] + asks[0][0]
            prev = self.mid2[i]
            if prev is not None and mid2 != prev:
                step2 = min(abs(mid2 - prev), MAX_MID_STEP2)
                vol = decay(self.vol[i], now - self.vol_ns[i], self._halflife_ns(i))
                vol += ((step2 * Q16 // 2) - vol) >> 2
                self.vol[i], self.vol_ns[i] = vol, now
            self.mid2[i] = mid2
        vol_now = decay(self.vol[i], now - self.vol_ns[i], self._halflife_ns(i))
        for t, tier in enumerate(self.cfg.tiers):
            self._price_tier(t, tier, i, market, ladders, vol_now)

    def _halflife_ns(self, i: int) -> int:
        return min(self.cfg.instruments[i].vol_halflife_ms, MAX_HALFLIFE_MS) * 1_000_000

    def _tier_side(
        self, tier: TierConfig, side: int, market: Levels, ladders: dict[int, tuple[Levels, Levels]]
    ) -> Levels:
        if tier.mode is AggregationMode.FULL_DEPTH:
            return list(market)
        if tier.mode is AggregationMode.TOP_OF_BOOK:
            return market[:1]
        out = []
        for size in tier.size_bands:
            if tier.mode is AggregationMode.VWAP_BANDS:
                px = sweep(market, size, side)
            else:
                fills = [sweep(lad[side], size, side) for _, lad in sorted(ladders.items())]
                prices = [p for p in fills if p is not None]
                px = (max(prices) if side == BID else min(prices)) if prices else None
            if px is None:
                break
            out.append((px, size))
        return out

    def _price_tier(
        self,
        t: int,
        tier: TierConfig,
        i: int,
        market: tuple[Levels, Levels],
        ladders: dict[int, tuple[Levels, Levels]],
        vol_now: int,
    ) -> None:
        counters = self._counters[i]
        sides = [self._tier_side(tier, s, market[s], ladders) for s in (0, 1)]
        counters["no_quote_empty_side"] += sum(1 for s in sides if not s)
        if not sides[0] and not sides[1]:
            return self._publish(t, i, [], [])
        mkt_bids, mkt_asks = market
        if mkt_bids and mkt_asks:
            abs_mid2 = abs(mkt_bids[0][0] + mkt_asks[0][0])
        else:
            abs_mid2 = abs(2 * (mkt_bids or mkt_asks)[0][0])
        bid_mk, ask_mk = tier.bid_markup, tier.ask_markup
        if tier.markup_unit is MarkupUnit.BPS:
            # ceil(|mid| * bps / 10000), |mid| = |mid2| / 2
            bid_mk = -(-abs_mid2 * bid_mk // 20000)
            ask_mk = -(-abs_mid2 * ask_mk // 20000)
        vol_w = min(-(-vol_now * tier.vol_widen_pct // (100 * Q16)), tier.max_vol_widen_ticks)
        skew = max(-tier.max_skew_ticks, min(tier.max_skew_ticks, self.skew[i] * tier.skew_pct // 100))
        bid_shift = -bid_mk - vol_w - skew
        ask_shift = ask_mk + vol_w - skew
        bids, asks = sides
        if bids and asks:
            spread = (asks[0][0] + ask_shift) - (bids[0][0] + bid_shift)
            if spread < tier.min_spread_ticks:
                if tier.min_spread_rule is MinSpreadRule.NO_QUOTE:
                    counters["no_quote_min_spread"] += 1
                    return self._publish(t, i, [], [])
                extra = tier.min_spread_ticks - spread
                bid_shift -= extra // 2
                ask_shift += extra - extra // 2
            elif tier.max_spread_ticks and spread > tier.max_spread_ticks:
                if tier.max_spread_rule is MaxSpreadRule.NO_QUOTE:
                    counters["no_quote_max_spread"] += 1
                    return self._publish(t, i, [], [])
                excess = spread - tier.max_spread_ticks
                bid_shift += excess // 2
                ask_shift -= excess - excess // 2
        r = tier.round_ticks
        out_bids = self._round_merge([(p + bid_shift) // r * r for p, _ in bids], bids, tier)
        out_asks = self._round_merge([-(-(p + ask_shift) // r) * r for p, _ in asks], asks, tier)
        if not self._honest(out_bids, out_asks):
            counters["no_quote_invariant"] += 1
            return self._publish(t, i, [], [])
        return self._publish(t, i, out_bids, out_asks)

    @staticmethod
    def _round_merge(prices: list[int], levels: Levels, tier: TierConfig) -> Levels:
        """Levels at their rounded prices; collisions merge (sum, or the larger band)."""
        out: Levels = []
        for px, (_, qty) in zip(prices, levels, strict=True):
            if out and out[-1][0] == px:
                prev = out[-1][1]
                band = tier.mode in (AggregationMode.VWAP_BANDS, AggregationMode.FULL_AMOUNT)
                out[-1] = (px, max(prev, qty) if band else prev + qty)
            else:
                out.append((px, qty))
        return out[: tier.depth]

    @staticmethod
    def _honest(bids: Levels, asks: Levels) -> bool:
        if any(q <= 0 for _, q in bids + asks):
            return False
        if any(bids[k][0] <= bids[k + 1][0] for k in range(len(bids) - 1)):
            return False
        if any(asks[k][0] >= asks[k + 1][0] for k in range(len(asks) - 1)):
            return False
        return not (bids and asks and bids[0][0] >= asks[0][0])

    def _publish(self, t: int, i: int, bids: Levels, asks: Levels) -> None:
        key = (t, i)
        if self.published.get(key, ([], [])) != (bids, asks):
            self.published[key] = (bids, asks)
            self.versions[key] += 1
