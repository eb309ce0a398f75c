"""Simulated LPs fed straight into the engine, in process: the demo's and tests' market source.

This is the LP simulator's market (:mod:`feeds.sim_market`) without the FIX hop: each step's
books become :class:`~engine.batch.UpdateBatch` rows. LP lifecycle follows the engine's rule
that an LP re-enters pricing only with a fresh book: a disconnected LP gets ``LP_DOWN``; when it
returns, its full book rows come first and ``LP_UP`` after them. A stale LP simply sends nothing,
and the engine's staleness limit excludes it.
"""

from __future__ import annotations

from engine.batch import ASK, BID, UpdateBatch
from engine.config import Config
from feeds.sim_market import LpState, SimConfig, SimMarket

__all__ = ["SimFeed"]


class SimFeed:
    def __init__(self, cfg: Config, sim: SimConfig) -> None:
        self._lp_index = {lp.name: j for j, lp in enumerate(cfg.lps)}
        self._instr_index = {i.symbol: k for k, i in enumerate(cfg.instruments)}
        unknown = [lp.name for lp in sim.lps if lp.name not in self._lp_index]
        unknown += [i.symbol for i in sim.instruments if i.symbol not in self._instr_index]
        if unknown:
            raise ValueError(f"simulator names not in the config: {', '.join(unknown)}")
        grids = {i.symbol: i.price_grid() for i in cfg.instruments}
        self.market = SimMarket(sim, grids)
        self._max_levels = cfg.engine.max_levels
        # Every LP starts down: the engine prices an LP only after LP_UP, which follows its
        # first full book (the same path as a reconnect).
        self._down: set[str] = {lp.name for lp in sim.lps}

    @property
    def step_ms(self) -> int:
        return self.market.cfg.step_ms

    def step(self, batch: UpdateBatch, now_ns: int) -> None:
        """Advance the market one step and append its rows to ``batch``."""
        books = self.market.step()
        for lp in self.market.cfg.lps:
            state = self.market.lp_state(lp.name)
            if state is LpState.DOWN and lp.name not in self._down:
                # Announce only a real drop; an LP that never came up has nothing to withdraw.
                self._down.add(lp.name)
                batch.lp_down(self._lp_index[lp.name], now_ns)
        returning = set()
        for (lp_name, symbol), book in books.items():
            j, k = self._lp_index[lp_name], self._instr_index[symbol]
            if lp_name in self._down:
                returning.add(lp_name)
                batch.clear_book(j, k, now_ns)
            for side, prices, sizes in ((BID, book.bid_px, book.bid_qty), (ASK, book.ask_px, book.ask_qty)):
                for level, (px, qty) in enumerate(zip(prices[: self._max_levels], sizes, strict=False)):
                    batch.set_level(j, k, side, level, px, qty, now_ns)
        for lp_name in returning:
            self._down.discard(lp_name)
            batch.lp_up(self._lp_index[lp_name], now_ns)
