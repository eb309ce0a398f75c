"""The engine's owner class: builds the preallocated state from the config and calls the kernels.

:class:`Engine` is thin on purpose: per batch it does one kernel call; everything per update or
per level happens inside :mod:`engine.kernels`. Its semantics are specified by
:class:`engine.reference.ReferenceEngine`, which the property tests hold it to.

Quote arrays for the market-data fan-out (read-only outside the engine)::

    engine.quotes       int64 [n_tier, n_instr, side (0 bid, 1 ask), 0 price | 1 qty, max_depth]
    engine.quote_state  int64 [n_tier, n_instr, 3]: n valid bid levels, n valid ask levels, version

Level ``k < n`` of a side is valid; slots past ``n`` hold leftovers and must be ignored (a price
of 0 is a price, never a marker). ``version`` increases by one every time the published ladder
of (tier, instrument) changes, so a fan-out can diff cheaply against the version it last sent.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from engine import kernels as k
from engine.batch import UpdateBatch
from engine.config import AggregationMode, Config, MarkupUnit, MaxSpreadRule, MinSpreadRule, TierConfig

__all__ = ["Engine", "TierQuote"]

_MODE_CODE = {
    AggregationMode.FULL_DEPTH: k.MODE_FULL_DEPTH,
    AggregationMode.TOP_OF_BOOK: k.MODE_TOP_OF_BOOK,
    AggregationMode.VWAP_BANDS: k.MODE_VWAP_BANDS,
    AggregationMode.FULL_AMOUNT: k.MODE_FULL_AMOUNT,
}
# A half-life is clamped so that Q16 * 2 * halflife_ns stays far inside int64.
MAX_HALFLIFE_MS = 1_000_000

_compile_seconds: float | None = None


@dataclass(frozen=True, slots=True)
class TierQuote:
    """One tier's published ladder for one instrument: ``(price_ticks, qty_steps)`` best first.

    An empty side means "no quote" on that side.
    """

    tier: str
    symbol: str
    bids: tuple[tuple[int, int], ...]
    asks: tuple[tuple[int, int], ...]
    version: int


def tier_params(tiers: list[TierConfig]) -> np.ndarray:
    """Pack tier configs into the kernels' ``tiers`` array."""
    max_bands = max([len(t.size_bands) for t in tiers] + [1])
    out = np.zeros((len(tiers), k.T_NF + max_bands), np.int64)
    for ti, t in enumerate(tiers):
        row = out[ti]
        row[k.T_MODE] = _MODE_CODE[t.mode]
        row[k.T_DEPTH] = t.depth
        row[k.T_MARKUP_BPS] = 1 if t.markup_unit is MarkupUnit.BPS else 0
        row[k.T_BID_MARKUP] = t.bid_markup
        row[k.T_ASK_MARKUP] = t.ask_markup
        row[k.T_MIN_SPREAD] = t.min_spread_ticks
        row[k.T_MIN_NO_QUOTE] = 1 if t.min_spread_rule is MinSpreadRule.NO_QUOTE else 0
        row[k.T_MAX_SPREAD] = t.max_spread_ticks
        row[k.T_MAX_CAP] = 1 if t.max_spread_rule is MaxSpreadRule.CAP else 0
        row[k.T_SKEW_PCT] = t.skew_pct
        row[k.T_MAX_SKEW] = t.max_skew_ticks
        row[k.T_VOL_PCT] = t.vol_widen_pct
        row[k.T_MAX_VOL] = t.max_vol_widen_ticks
        row[k.T_ROUND] = t.round_ticks
        # Only the band modes use bands; other modes ignore them.
        bands = t.size_bands if t.mode in (AggregationMode.VWAP_BANDS, AggregationMode.FULL_AMOUNT) else []
        row[k.T_NBANDS] = len(bands)
        for b, size in enumerate(bands):
            row[k.T_BANDS + b] = size
    return out


class Engine:
    """Aggregates LP ladders into per-tier quotes; Numba kernels over preallocated arrays.

    Indices follow the config order: instrument ``i`` is ``cfg.instruments[i]``, LP ``j`` is
    ``cfg.lps[j]``, tier ``t`` is ``cfg.tiers[t]``. An LP prices only the instruments in its
    ``instruments`` list (rows for other instruments are rejected and counted); a disabled LP or
    instrument takes no rows at all.
    """

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.symbols: tuple[str, ...] = tuple(i.symbol for i in cfg.instruments)
        self.lp_names: tuple[str, ...] = tuple(lp.name for lp in cfg.lps)
        self.tier_names: tuple[str, ...] = tuple(t.name for t in cfg.tiers)
        self._instr_index = {s: i for i, s in enumerate(self.symbols)}
        self._tier_index = {s: i for i, s in enumerate(self.tier_names)}
        n_instr, n_lp, n_tier = len(self.symbols), max(len(cfg.lps), 1), len(cfg.tiers)
        n_lvl = cfg.engine.max_levels
        max_depth = max(t.depth for t in cfg.tiers)

        # One buffer holds every state array (see kernels.build_arena); the attributes below are
        # numpy views of it, for tools, tests and the fan-out.
        tiers = tier_params(list(cfg.tiers))
        width = max(n_lp * n_lvl, n_lp, max_depth, 1)
        self.arena, views = k.build_arena(n_instr, n_lp, n_lvl, n_tier, tiers.shape[1], max_depth, width)
        self.book = views["book"]
        self.lp_state = views["lp_state"]
        self.instr_state = views["instr_state"]
        self.tiers = views["tiers"]
        self.quotes = views["quotes"]
        self.quote_state = views["quote_state"]
        self.scratch = views["scratch"]
        self.lp_state[:, :, k.LPS_LAST_NS] = k.NEVER
        for j, lp in enumerate(cfg.lps):
            for sym in lp.instruments:
                i = self._instr_index[sym]
                if lp.enabled and cfg.instruments[i].enabled:
                    self.lp_state[i, j, k.LPS_ALLOWED] = 1
        self._write_params(cfg)
        self.instr_state[n_instr, k.I_HALFLIFE_NS] = 1
        # stale_exclusions[i, j]: times LP j, up, went past its staleness limit on instrument i
        # (read by the metrics exporter). Counted in expire(), the only place an LP goes stale;
        # _stale_seen holds the last update time of the silence already counted, so one silence
        # counts once however many expire() calls see it.
        self.stale_exclusions = np.zeros((n_instr, n_lp), np.int64)
        self._stale_seen = np.full((n_instr, n_lp), k.NEVER, np.int64)
        # Seconds this process spent compiling (or loading from Numba's cache) the kernels; 0.0
        # for every Engine after the first.
        self.compile_seconds = _warm_up(self)

    def reconfigure(self, cfg: Config) -> None:
        """Take a new config's pricing parameters (a hot reload): the tiers' (markups, spreads,
        skew, widening, rounding, mode, bands), the LPs' haircut, size weight and staleness, the
        instruments' spike filter and volatility half-life. Every instrument is repriced by the
        next :meth:`apply` or :meth:`expire`.

        The shape must stay: the same instruments, LPs and tiers in the same order, no tier
        deeper and no more size bands than this engine was built for (:mod:`engine.reload`
        refuses other changes; here they raise ValueError)."""
        shape = (self.symbols, self.lp_names, self.tier_names)
        if shape != (tuple(i.symbol for i in cfg.instruments), tuple(lp.name for lp in cfg.lps),
                     tuple(t.name for t in cfg.tiers)):  # fmt: skip
            raise ValueError("instruments, LPs or tiers changed: a new engine is needed")
        if max(t.depth for t in cfg.tiers) > self.quotes.shape[-1]:
            raise ValueError("a tier is deeper than the engine's quote arrays")
        self._write_params(cfg)
        # The book holds each level's price and size after its LP's haircut and weight, worked
        # out when the level was set (engine.kernels): redo them for the levels held now.
        book, lps = self.book, self.lp_state
        haircut = lps[:, :, k.LPS_HAIRCUT][:, :, None]
        book[:, :, 0, k.B_EFF_PX, :] = book[:, :, 0, k.B_PX, :] - haircut
        book[:, :, 1, k.B_EFF_PX, :] = book[:, :, 1, k.B_PX, :] + haircut
        book[:, :, :, k.B_EFF_QTY, :] = book[:, :, :, k.B_QTY, :] * lps[:, :, k.LPS_WEIGHT][:, :, None, None] // 100
        self.cfg = cfg
        self.instr_state[: len(self.symbols), k.I_DIRTY] = 1

    def _write_params(self, cfg: Config) -> None:
        """The config's parameters into the state arrays (at build and at a reload)."""
        tiers = tier_params(list(cfg.tiers))
        if tiers.shape[1] > self.tiers.shape[1]:
            raise ValueError(f"more size bands than the engine was built for ({self.tiers.shape[1] - k.T_NF})")
        self.tiers[:] = 0
        self.tiers[:, : tiers.shape[1]] = tiers
        for j, lp in enumerate(cfg.lps):
            self.lp_state[:, j, k.LPS_HAIRCUT] = lp.haircut_ticks
            self.lp_state[:, j, k.LPS_WEIGHT] = lp.size_weight_pct
            self.lp_state[:, j, k.LPS_STALE_NS] = lp.staleness_ms * 1_000_000
        for i, inst in enumerate(cfg.instruments):
            self.instr_state[i, k.I_SPIKE_K] = inst.spike_filter_ticks
            self.instr_state[i, k.I_HALFLIFE_NS] = min(inst.vol_halflife_ms, MAX_HALFLIFE_MS) * 1_000_000

    # --- inputs ------------------------------------------------------------------------------

    def apply(self, batch: UpdateBatch, now_ns: int) -> int:
        """Apply every row of ``batch`` in order, then reprice each dirty instrument once.

        Returns the number of instruments repriced.
        """
        return k.apply_batch(batch.rows, batch.n, now_ns, self.arena)  # type: ignore[no-any-return]

    def expire(self, now_ns: int) -> int:
        """Reprice instruments where an LP went past its staleness limit (and any dirty ones).

        A silent LP sends nothing, so only this takes its prices out of the quotes: the loop calls
        it on a timer, and a stale LP's prices are gone within its limit plus that period.
        Returns the number of instruments repriced.
        """
        repriced: int = k.expire(now_ns, self.arena)
        if repriced:  # nothing went stale on a turn that repriced nothing: no extra work then
            self._count_stale()
        return repriced

    def _count_stale(self) -> None:
        state = self.lp_state
        last = state[:, :, k.LPS_LAST_NS]
        silent = (state[:, :, k.LPS_FRESH] == 0) & (last != self._stale_seen)
        if silent.any():
            # An LP that is down or not set up for the instrument was not priced anyway: its
            # silence is remembered but not counted as an exclusion.
            priced = (state[:, :, k.LPS_UP] == 1) & (state[:, :, k.LPS_ALLOWED] == 1)
            self.stale_exclusions += silent & priced
            self._stale_seen[silent] = last[silent]

    def set_skew(self, instr_index: int, ticks: int, now_ns: int | None = None) -> int:
        """Set the risk skew input of an instrument (ticks; positive = long, prices move down).

        The instrument is marked dirty: with ``now_ns`` it is repriced at once, otherwise by the
        next :meth:`apply` or :meth:`expire`. Returns the number of instruments repriced.
        """
        self.instr_state[instr_index, k.I_SKEW] = ticks
        self.instr_state[instr_index, k.I_DIRTY] = 1
        return 0 if now_ns is None else self.expire(now_ns)

    # --- reads -------------------------------------------------------------------------------

    def instrument_index(self, symbol: str) -> int:
        """Row of ``symbol`` in the state arrays (its position in ``cfg.instruments``)."""
        return self._instr_index[symbol]

    def lp_index(self, name: str) -> int:
        """Index of the LP called ``name`` (its position in ``cfg.lps``), as batch rows use it."""
        return self.lp_names.index(name)

    def tier_index(self, name: str) -> int:
        """Index of tier ``name`` in ``quotes`` / ``quote_state`` (its position in ``cfg.tiers``)."""
        return self._tier_index[name]

    def quote(self, tier: str, symbol: str) -> TierQuote:
        """The published ladder of ``tier`` for ``symbol`` (a copy)."""
        (bids, asks), version = self.ladder(self._tier_index[tier], self._instr_index[symbol])
        return TierQuote(tier, symbol, bids, asks, version)

    def ladder(
        self, tier: int, instr: int
    ) -> tuple[tuple[tuple[tuple[int, int], ...], tuple[tuple[int, int], ...]], int]:
        """:meth:`quote` by index, as ``((bids, asks), version)``: what the publisher reads per
        changed quote, without the name lookups and the record."""
        nb, na, version = self.quote_state[tier, instr, :3].tolist()
        # One tolist() of the whole (side, price/qty, level) block: Python ints at once (per
        # element, or per slice, costs several times more).
        (bid_px, bid_qty), (ask_px, ask_qty) = self.quotes[tier, instr].tolist()
        bids = tuple(zip(bid_px[:nb], bid_qty[:nb], strict=True))
        return (bids, tuple(zip(ask_px[:na], ask_qty[:na], strict=True))), version

    def lp_tops(self, instr_index: int, side: int, now_ns: int) -> list[tuple[int, int, int]]:
        """``(lp, price, qty)``: the best level on ``side`` (0 bid, 1 ask) of every LP that is
        priced from now (configured, up, not stale), as the LP sent it (no haircut or weight).

        For routing an order (per order, not per tick), so plain numpy is fine here.
        """
        i = instr_index
        out: list[tuple[int, int, int]] = []
        for lp in range(len(self.lp_names)):
            state = self.lp_state[i, lp]
            if state[k.LPS_ALLOWED] != 1 or state[k.LPS_UP] != 1:
                continue
            if now_ns - state[k.LPS_LAST_NS] > state[k.LPS_STALE_NS]:
                continue
            qty = self.book[i, lp, side, k.B_QTY]
            live = np.flatnonzero(qty > 0)  # a price of 0 or below is a price; size says "empty"
            if live.size == 0:
                continue
            px = self.book[i, lp, side, k.B_PX][live]
            best = int(px.max()) if side == 0 else int(px.min())
            out.append((lp, best, int(qty[live][px == best].sum())))
        return out

    def counters(self, symbol: str | None = None) -> dict[str, int]:
        """Counters of one instrument, or the engine-wide ones (rejected rows of unknown
        instruments/LPs) with ``symbol=None``."""
        row = self.instr_state[len(self.symbols) if symbol is None else self._instr_index[symbol]]
        return {name: int(row[k.FIRST_COUNTER + n]) for n, name in enumerate(k.COUNTER_NAMES)}


def _warm_up(engine: Engine) -> float:
    """Compile every kernel before first use by running them on copies of the state.

    Returns the seconds the first compile (or cache load) took in this process; 0.0 afterwards.
    """
    global _compile_seconds
    if _compile_seconds is not None:
        return 0.0
    start = time.perf_counter()
    arena = engine.arena.copy()
    batch = UpdateBatch(1)
    batch.set_level(0, 0, 0, 0, 0, 0, 0)
    k.apply_batch(batch.rows, batch.n, 0, arena)
    k.expire(0, arena)
    _compile_seconds = time.perf_counter() - start
    return _compile_seconds
