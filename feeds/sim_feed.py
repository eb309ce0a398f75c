"""Simulated LPs fed straight into the engine, in process: the demo's and tests' market source.

This is the LP simulator's market (:mod:`feeds.sim_market`) without the FIX hop: each step's
books become :class:`~engine.batch.UpdateBatch` rows. LP lifecycle follows the engine's rule
that an LP re-enters pricing only with a fresh book: a disconnected LP gets ``LP_DOWN``; when it
returns, its full book rows come first and ``LP_UP`` after them. A stale LP simply sends nothing,
and the engine's staleness limit excludes it.
"""

from __future__ import annotations

from collections.abc import Mapping

from engine.batch import ASK, BID, UpdateBatch
from engine.config import Config, LpConfig
from feeds.sim_market import LpState, SimConfig, SimMarket

__all__ = ["SimFeed", "SimLpStatus"]


class SimLpStatus:
    """One configured LP as the simulator runs it: what an :class:`~feeds.lp_feed.LpFeed` reports
    for a real LP (``lp``, ``up``, the counters the metrics exporter reads), so the gateway and
    the exporter treat both markets alike. An LP of the config the simulator does not run stays
    down."""

    __slots__ = ("lp", "up", "entries_received", "reconnect_attempts", "_ever_up")

    entries_dropped: Mapping[str, int] = {}  # the simulator sends no invalid entry
    books_withdrawn = 0  # nor loses sync

    def __init__(self, lp: LpConfig) -> None:
        self.lp = lp
        self.up = False
        self.entries_received = 0  # levels sent to the engine
        self.reconnect_attempts = 0  # returns after a disconnect (a simulated LP never fails one)
        self._ever_up = False


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
        self.lps = [SimLpStatus(lp) for lp in cfg.lps if lp.enabled]
        self._status = {status.lp.name: status for status in self.lps}

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
                self._set_up(lp.name, False)
        returning = set()
        max_levels = self._max_levels
        for (lp_name, symbol), book in books.items():
            j, k = self._lp_index[lp_name], self._instr_index[symbol]
            if lp_name in self._down:
                returning.add(lp_name)
                batch.clear_book(j, k, now_ns)
            for side, prices, sizes in ((BID, book.bid_px, book.bid_qty), (ASK, book.ask_px, book.ask_qty)):
                for level, (px, qty) in enumerate(zip(prices[:max_levels], sizes, strict=False)):
                    batch.set_level(j, k, side, level, px, qty, now_ns)
            status = self._status.get(lp_name)
            if status is not None:
                status.entries_received += min(len(book.bid_px), max_levels) + min(len(book.ask_px), max_levels)
        for lp_name in returning:
            self._down.discard(lp_name)
            batch.lp_up(self._lp_index[lp_name], now_ns)
            self._set_up(lp_name, True)

    def _set_up(self, lp_name: str, up: bool) -> None:
        status = self._status.get(lp_name)
        if status is None:
            return
        if up and status._ever_up and not status.up:
            status.reconnect_attempts += 1  # back after a drop (the first LP_UP is no reconnect)
        status.up = up
        status._ever_up |= up
