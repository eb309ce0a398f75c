"""Shared builders for the engine unit tests (no tests here).

Every engine test runs twice, against the Numba :class:`Engine` and the plain-Python
:class:`ReferenceEngine`, through the same :class:`Desk` that plays the LP feeds.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from engine.batch import UpdateBatch
from engine.book import Engine, TierQuote
from engine.config import Config, EngineConfig, InstrumentConfig, LpConfig, TierConfig
from engine.reference import ReferenceEngine

MS = 1_000_000
Ladder = Sequence[tuple[int, int]]


def engine_fixture() -> Any:
    """A fixture ``engine_cls`` that runs a test once per implementation.

    Test modules bind it to a module attribute (``both_engines = engine_fixture()``) so that
    pytest finds it without the test parameter shadowing an imported name.
    """

    @pytest.fixture(name="engine_cls", params=[Engine, ReferenceEngine], ids=["numba", "reference"])
    def _engine_cls(request: pytest.FixtureRequest) -> type:
        return request.param  # type: ignore[no-any-return]

    return _engine_cls


def config(
    *tiers: TierConfig,
    lps: Sequence[LpConfig] | int = 3,
    symbols: Sequence[str] = ("X",),
    spike_filter_ticks: int = 0,
    vol_halflife_ms: int = 1000,
) -> Config:
    """Instruments ``symbols`` (tick 0.01), LPs pricing all of them, the given tiers."""
    if isinstance(lps, int):
        lps = [LpConfig(name=f"LP{j}", instruments=list(symbols)) for j in range(lps)]
    return Config(
        instruments=[
            InstrumentConfig(
                symbol=s,
                tick_size="0.01",
                qty_step="1",
                spike_filter_ticks=spike_filter_ticks,
                vol_halflife_ms=vol_halflife_ms,
            )
            for s in symbols
        ],
        lps=list(lps),
        tiers=list(tiers) or [TierConfig(name="t")],
        engine=EngineConfig(max_levels=5),
    )


class Desk:
    """Plays LP feeds into an engine: each call is one batch applied at the desk's clock."""

    def __init__(self, engine: Engine | ReferenceEngine) -> None:
        self.engine = engine
        self.now = 1_000 * MS
        self.batch = UpdateBatch(16)

    def _send(self) -> int:
        n = self.engine.apply(self.batch, self.now)
        self.batch.clear()
        return n

    def up(self, *lps: int) -> int:
        for lp in lps:
            self.batch.lp_up(lp, self.now)
        return self._send()

    def down(self, lp: int) -> int:
        self.batch.lp_down(lp, self.now)
        return self._send()

    def book(self, lp: int, bids: Ladder, asks: Ladder, instr: int = 0) -> int:
        """A full snapshot of one LP's book: CLEAR_BOOK then one SET_LEVEL per level."""
        self.batch.clear_book(lp, instr, self.now)
        for side, ladder in ((0, bids), (1, asks)):
            for level, (px, qty) in enumerate(ladder):
                self.batch.set_level(lp, instr, side, level, px, qty, self.now)
        return self._send()

    def advance(self, ms: float) -> None:
        self.now += int(ms * MS)

    def expire(self) -> int:
        return self.engine.expire(self.now)

    def quote(self, tier: str = "t", symbol: str = "X") -> TierQuote:
        return self.engine.quote(tier, symbol)

    def sides(self, tier: str = "t", symbol: str = "X") -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        q = self.quote(tier, symbol)
        return list(q.bids), list(q.asks)

    def counters(self, symbol: str = "X") -> dict[str, int]:
        return self.engine.counters(symbol)


def desk(engine_cls: type, cfg: Config, up: int | None = None) -> Desk:
    """A desk over a fresh engine with LPs 0..up-1 (default: all) already up."""
    d = Desk(engine_cls(cfg))
    d.up(*range(len(cfg.lps) if up is None else up))
    return d
