"""The LP simulator's market: deterministic LP books from a seed and a scenario list.

Sans-I/O: :class:`SimMarket` knows nothing of sockets or clocks. It advances in fixed steps
(``step_ms``); each step yields every live LP's book for every instrument it quotes, as integer
ticks and quantity steps. The FIX side of the simulator turns books into 35=W / 35=X.

Every random stream is seeded from ``(seed, instrument, lp)`` so adding an LP or an instrument
does not change the prices of the others, and two runs with one seed are identical.

Scenarios (each over ``[at_ms, at_ms + duration_ms)``):

``spike``       the LP's prices jump by ``ticks`` (it is wrong, the others are not)
``stale``       the LP stays connected but sends nothing
``disconnect``  the LP drops its sessions and refuses reconnects
``crossed``     the LP's own book is crossed: its best bid is ``ticks`` above its best ask
``drift``       the instrument's mid moves linearly to ``target`` (e.g. through zero into negative)
``last_look``   the LP rejects this share of orders (``pct``) after its fill latency
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Annotated

import msgspec
import numpy as np
from msgspec import Meta, Struct

from engine.fixedpoint import Grid

__all__ = ["ScenarioKind", "Scenario", "SimInstrument", "SimLp", "SimConfig", "LpBook", "SimMarket", "LpState"]

NonNeg = Annotated[int, Meta(ge=0)]
Pos = Annotated[int, Meta(ge=1)]
Pct = Annotated[int, Meta(ge=0, le=100)]


class ScenarioKind(enum.Enum):
    SPIKE = "spike"
    STALE = "stale"
    DISCONNECT = "disconnect"
    CROSSED = "crossed"
    DRIFT = "drift"
    LAST_LOOK = "last_look"


class Scenario(Struct, frozen=True, forbid_unknown_fields=True):
    kind: ScenarioKind
    at_ms: NonNeg
    duration_ms: Pos
    lp: str | None = None  # None: every LP
    instrument: str | None = None  # None: every instrument
    ticks: int = 0  # spike offset, or how far a crossed book crosses
    target: str | None = None  # drift: the price to reach (decimal string)
    pct: Pct = 0  # last_look: share of orders rejected


class SimInstrument(Struct, frozen=True, forbid_unknown_fields=True):
    symbol: str
    start_mid: str  # decimal string, e.g. "1.08500" or "-2.50"
    vol_ticks: NonNeg = 2  # standard deviation of the mid's step, in ticks
    half_spread_ticks: NonNeg = 3
    level_step_ticks: Pos = 1
    level_qty: Pos = 1000  # quantity steps at the top level; deeper levels hold more
    size_jitter: Pos = 3  # each level's size is level_qty x (level+1) x a random 1..size_jitter


class SimLp(Struct, frozen=True, forbid_unknown_fields=True):
    name: str
    instruments: list[str] = []  # empty: every simulated instrument
    depth: Annotated[int, Meta(ge=1, le=20)] = 5
    noise_ticks: NonNeg = 1  # per-LP jitter around the common mid
    extra_spread_ticks: NonNeg = 0
    incremental: bool = True  # W then X (279 keyed by MDEntryID), or W snapshots only
    fill_latency_ms: NonNeg = 0
    partial_fill_pct: Pct = 0  # share of orders filled only in part (half, on the step grid)


class SimConfig(Struct, frozen=True, forbid_unknown_fields=True):
    seed: int = 1
    step_ms: Pos = 50
    instruments: list[SimInstrument] = []
    lps: list[SimLp] = []
    scenarios: list[Scenario] = []


class LpState(enum.Enum):
    LIVE = "live"
    STALE = "stale"
    DOWN = "down"


@dataclass(frozen=True, slots=True)
class LpBook:
    """One LP's book for one instrument: best first, prices in ticks, sizes in steps."""

    bid_px: tuple[int, ...]
    bid_qty: tuple[int, ...]
    ask_px: tuple[int, ...]
    ask_qty: tuple[int, ...]


def decode_sim_config(toml_text: str) -> SimConfig:
    return msgspec.toml.decode(toml_text, type=SimConfig)


class SimMarket:
    """Deterministic LP books, advanced one step at a time."""

    def __init__(self, cfg: SimConfig, grids: dict[str, Grid]) -> None:
        self.cfg = cfg
        self.step_index = 0
        self._instruments = cfg.instruments
        self._start = [grids[i.symbol].to_steps(i.start_mid) for i in cfg.instruments]
        self._mid = list(self._start)
        self._grids = grids
        self._mid_rng = [np.random.default_rng([cfg.seed, k]) for k in range(len(cfg.instruments))]
        self._lp_rng = {
            (j, k): np.random.default_rng([cfg.seed, k, j + 1])
            for j in range(len(cfg.lps))
            for k in range(len(cfg.instruments))
        }
        self._drift_begin: dict[tuple[int, int], int] = {}
        self._last: dict[tuple[str, str], LpBook] = {}
        self._fill_rng = [np.random.default_rng([cfg.seed, 1_000_003, j]) for j in range(len(cfg.lps))]
        self._quotes = {
            lp.name: [k for k, i in enumerate(cfg.instruments) if not lp.instruments or i.symbol in lp.instruments]
            for lp in cfg.lps
        }

    @property
    def now_ms(self) -> int:
        return self.step_index * self.cfg.step_ms

    def _active(self, kind: ScenarioKind, lp: str | None, symbol: str | None, t_ms: int) -> list[Scenario]:
        return [
            s
            for s in self.cfg.scenarios
            if s.kind is kind
            and s.at_ms <= t_ms < s.at_ms + s.duration_ms
            and (s.lp is None or lp is None or s.lp == lp)
            and (s.instrument is None or symbol is None or s.instrument == symbol)
        ]

    def lp_state(self, lp: str, t_ms: int | None = None) -> LpState:
        t = self.now_ms if t_ms is None else t_ms
        if self._active(ScenarioKind.DISCONNECT, lp, None, t):
            return LpState.DOWN
        if self._active(ScenarioKind.STALE, lp, None, t):
            return LpState.STALE
        return LpState.LIVE

    def step(self) -> dict[tuple[str, str], LpBook]:
        """Advance one step; return the books of every LIVE LP, keyed by (lp, symbol)."""
        self.step_index += 1
        t = self.now_ms
        for k, inst in enumerate(self._instruments):
            # A drift's window is (at, at + duration] so that the step ending at at + duration
            # lands exactly on the target: for whole milliseconds that is [at, at + duration) at t-1.
            drift = self._active(ScenarioKind.DRIFT, None, inst.symbol, t - 1)
            if drift:
                s = drift[0]
                target = self._grids[inst.symbol].to_steps(s.target or inst.start_mid)
                begin = self._mid_at_drift_start(k, s)
                self._mid[k] = begin + round((target - begin) * (t - s.at_ms) / s.duration_ms)
            else:
                self._mid[k] += int(round(self._mid_rng[k].normal(0.0, inst.vol_ticks))) if inst.vol_ticks else 0
        books: dict[tuple[str, str], LpBook] = {}
        for j, lp in enumerate(self.cfg.lps):
            if self.lp_state(lp.name, t) is not LpState.LIVE:
                continue
            for k in self._quotes[lp.name]:
                books[(lp.name, self._instruments[k].symbol)] = self._book(j, k, lp, t)
        self._last.update(books)
        return books

    def current(self, lp: str, symbol: str) -> LpBook | None:
        """The LP's latest book for ``symbol`` (what it would fill against), if any."""
        return self._last.get((lp, symbol))

    def _mid_at_drift_start(self, k: int, s: Scenario) -> int:
        # Remember where the drift began so the path is a straight line from there.
        return self._drift_begin.setdefault((k, s.at_ms), self._mid[k])

    def _book(self, j: int, k: int, lp: SimLp, t: int) -> LpBook:
        inst = self._instruments[k]
        rng = self._lp_rng[(j, k)]
        mid = self._mid[k]
        if lp.noise_ticks:
            mid += int(rng.integers(-lp.noise_ticks, lp.noise_ticks + 1))
        for s in self._active(ScenarioKind.SPIKE, lp.name, inst.symbol, t):
            mid += s.ticks
        half = inst.half_spread_ticks + lp.extra_spread_ticks
        step = inst.level_step_ticks
        depth = lp.depth
        best_bid, best_ask = mid - half, mid + half
        crossed = self._active(ScenarioKind.CROSSED, lp.name, inst.symbol, t)
        if crossed:
            cross = max(crossed[0].ticks, 1)
            best_bid, best_ask = mid + cross, mid  # bid above ask by `cross` ticks
        sizes = rng.integers(1, inst.size_jitter + 1, size=2 * depth)
        bid_px = tuple(best_bid - i * step for i in range(depth))
        ask_px = tuple(best_ask + i * step for i in range(depth))
        bid_qty = tuple(int(inst.level_qty * (i + 1) * sizes[i]) for i in range(depth))
        ask_qty = tuple(int(inst.level_qty * (i + 1) * sizes[depth + i]) for i in range(depth))
        return LpBook(bid_px, bid_qty, ask_px, ask_qty)

    def fill_decision(self, lp: str, qty: int, t_ms: int | None = None) -> tuple[int, bool]:
        """Last look for an order of ``qty`` steps: (filled steps, rejected?)."""
        t = self.now_ms if t_ms is None else t_ms
        j = next(i for i, x in enumerate(self.cfg.lps) if x.name == lp)
        rng = self._fill_rng[j]
        for s in self._active(ScenarioKind.LAST_LOOK, lp, None, t):
            if rng.integers(0, 100) < s.pct:
                return 0, True
        if self.cfg.lps[j].partial_fill_pct and rng.integers(0, 100) < self.cfg.lps[j].partial_fill_pct:
            return max(qty // 2, 1) if qty > 1 else qty, False
        return qty, False
