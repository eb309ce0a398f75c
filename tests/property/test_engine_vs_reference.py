"""The Numba engine and the plain-Python reference agree exactly on random streams.

Hypothesis draws a tier setup (every aggregation mode, spread rule, markup unit, rounding, skew
and volatility knob) and a stream of steps: batches of LP updates (negative prices, prices
crossing zero, empty sides, crossed LP books, duplicate prices across LPs, CLEAR_BOOK, TOUCH, LP
down/up, bad rows), time advancing past staleness limits, expire calls and skew changes. After
every step both engines must publish identical quotes (versions included) and counters, and
every published quote must satisfy the engine's invariants.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.batch import CLEAR_BOOK, LP_DOWN, LP_UP, SET_LEVEL, TOUCH, UpdateBatch
from engine.book import Engine, TierQuote
from engine.config import (
    AggregationMode,
    Config,
    EngineConfig,
    InstrumentConfig,
    LpConfig,
    MarkupUnit,
    MaxSpreadRule,
    MinSpreadRule,
    TierConfig,
)
from engine.reference import ReferenceEngine

MAX_LEVELS = 4
SYMBOLS = ["NEAR0", "SPIKY"]
LPS = [
    LpConfig(name="A", instruments=SYMBOLS, staleness_ms=3),
    LpConfig(name="B", instruments=SYMBOLS, haircut_ticks=1, staleness_ms=2),
    LpConfig(name="C", instruments=SYMBOLS, size_weight_pct=50, staleness_ms=4),
    LpConfig(name="D", instruments=["SPIKY"], haircut_ticks=2, size_weight_pct=70, staleness_ms=3),
]
INSTRUMENTS = [
    InstrumentConfig(symbol="NEAR0", tick_size="0.01", qty_step="1", vol_halflife_ms=2),
    InstrumentConfig(symbol="SPIKY", tick_size="0.01", qty_step="1", spike_filter_ticks=6, vol_halflife_ms=1),
]
MS = 1_000_000


@st.composite
def tiers(draw: st.DrawFn, index: int) -> TierConfig:
    mode = draw(st.sampled_from(list(AggregationMode)))
    depth = draw(st.integers(1, 5))
    bands: list[int] = []
    if mode in (AggregationMode.VWAP_BANDS, AggregationMode.FULL_AMOUNT):
        bands = sorted(draw(st.sets(st.integers(1, 12), min_size=1, max_size=depth)))
    min_spread = draw(st.integers(0, 8))
    max_spread = draw(st.sampled_from([0, 0, min_spread, min_spread + 3, 20]))
    if max_spread and max_spread < min_spread:
        max_spread = min_spread
    return TierConfig(
        name=f"t{index}",
        mode=mode,
        depth=depth,
        size_bands=bands,
        markup_unit=draw(st.sampled_from(list(MarkupUnit))),
        bid_markup=draw(st.integers(0, 3)) if draw(st.booleans()) else draw(st.integers(0, 5000)),
        ask_markup=draw(st.integers(0, 3)),
        min_spread_ticks=min_spread,
        min_spread_rule=draw(st.sampled_from(list(MinSpreadRule))),
        max_spread_ticks=max_spread,
        max_spread_rule=draw(st.sampled_from(list(MaxSpreadRule))),
        skew_pct=draw(st.sampled_from([0, 50, 100])),
        max_skew_ticks=draw(st.integers(0, 4)),
        vol_widen_pct=draw(st.sampled_from([0, 50, 100, 300])),
        max_vol_widen_ticks=draw(st.integers(0, 6)),
        round_ticks=draw(st.sampled_from([1, 1, 2, 5])),
    )


@st.composite
def configs(draw: st.DrawFn) -> Config:
    n = draw(st.integers(1, 3))
    return Config(
        instruments=INSTRUMENTS,
        lps=LPS,
        tiers=[draw(tiers(t)) for t in range(n)],
        engine=EngineConfig(max_levels=MAX_LEVELS),
    )


# A row is (kind, lp, instr, side, level, offset, qty). A SET_LEVEL price is the batch's centre
# minus (bid) or plus (ask) the offset, so books are mostly two-sided and sane; offsets below zero
# cross them. Centres wander around zero, so negative prices and books crossing zero are common.
# sampled_from shrinks towards its first element: SET_LEVEL, the common row.
rows = st.tuples(
    st.sampled_from([SET_LEVEL] * 6 + [CLEAR_BOOK, LP_UP, LP_DOWN, TOUCH, TOUCH]),
    st.integers(0, 4),  # LP 4 does not exist: rejected
    st.integers(0, 1) | st.just(2),  # instrument 2 does not exist: rejected
    st.integers(0, 1),
    st.integers(0, MAX_LEVELS - 1) | st.just(MAX_LEVELS),  # an occasional out-of-range level
    st.integers(-1, 8),
    st.integers(1, 40) | st.just(0),  # qty 0 deletes a level
)
# A snapshot (lp, instr, width, qty) sets every level of both sides: bid centre-width-k, ask
# centre+width+k, so LPs often share prices (sizes must sum) and sometimes cross (width < 0).
snapshots = st.tuples(st.integers(0, 3), st.integers(0, 1), st.integers(-1, 3), st.integers(1, 9))
time_steps = st.sampled_from([0, 1_000, 100_000, MS // 2, MS, 2 * MS, 5 * MS])
batches = st.tuples(
    st.just("batch"),
    time_steps,
    st.tuples(
        st.integers(-20, 20),  # centre
        st.tuples(st.integers(-1, 3), st.sampled_from([0, 0, 0, 5, -9, 20])),  # (lp, jump) a spike
        st.lists(snapshots, min_size=0, max_size=4),
        st.lists(rows, min_size=0, max_size=10),
    ),
)
steps = st.one_of(
    batches,
    batches,
    batches,
    st.tuples(st.just("expire"), time_steps, st.just(None)),
    st.tuples(st.just("skew"), time_steps, st.tuples(st.integers(0, 1), st.integers(-9, 9), st.booleans())),
)


def check_invariants(q: TierQuote, tier: TierConfig) -> None:
    assert len(q.bids) <= tier.depth and len(q.asks) <= tier.depth
    assert all(qty > 0 for _, qty in q.bids + q.asks)
    assert all(a[0] > b[0] for a, b in zip(q.bids, q.bids[1:], strict=False)), q
    assert all(a[0] < b[0] for a, b in zip(q.asks, q.asks[1:], strict=False)), q
    if q.bids and q.asks:
        assert q.bids[0][0] < q.asks[0][0], q
    for px, _ in q.bids + q.asks:
        assert px % tier.round_ticks == 0


def no_lp_eligible(ref: ReferenceEngine, i: int, now: int) -> bool:
    for lp, lp_cfg in enumerate(ref.cfg.lps):
        last = ref.last_update.get((lp, i))
        if (lp, i) in ref.allowed and ref.up[lp] and last is not None and now - last <= lp_cfg.staleness_ms * MS:
            return False
    return True


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cfg=configs(), stream=st.lists(steps, min_size=1, max_size=25))
def test_engine_matches_reference_and_quotes_are_honest(cfg: Config, stream: list) -> None:
    fast, ref = Engine(cfg), ReferenceEngine(cfg)
    batch = UpdateBatch(4)
    now = 0
    for lp in range(len(LPS)):  # streams start with every LP up; rows take them down and up
        batch.lp_up(lp, now)
    fast.apply(batch, now)
    ref.apply(batch, now)
    for kind, dt, payload in stream:
        now += dt
        if kind == "batch":
            batch.clear()
            centre, (jump_lp, jump), snaps, rows_ = payload
            for lp, instr, width, qty in snaps:
                shift = jump if lp == jump_lp else 0
                for level in range(MAX_LEVELS):
                    batch.set_level(lp, instr, 0, level, centre + shift - width - level, qty + level, now)
                    batch.set_level(lp, instr, 1, level, centre + shift + width + level, qty + level, now)
            for row_kind, lp, instr, side, level, offset, qty in rows_:
                if row_kind == SET_LEVEL:
                    px = centre - offset if side == 0 else centre + offset
                    batch.set_level(lp, instr, side, level, px + (jump if lp == jump_lp else 0), qty, now)
                elif row_kind == CLEAR_BOOK:
                    batch.clear_book(lp, instr, now)
                elif row_kind == TOUCH:
                    batch.touch(lp, instr, now)
                elif row_kind == LP_DOWN:
                    batch.lp_down(lp, now)
                else:
                    batch.lp_up(lp, now)
            assert fast.apply(batch, now) == ref.apply(batch, now)
        elif kind == "expire":
            assert fast.expire(now) == ref.expire(now)
        else:
            instr, ticks, at_once = payload
            at = now if at_once else None
            assert fast.set_skew(instr, ticks, at) == ref.set_skew(instr, ticks, at)
        expired = kind == "expire" or (kind == "skew" and payload[2])
        for i, symbol in enumerate(SYMBOLS):
            assert fast.counters(symbol) == ref.counters(symbol)
            for tier in cfg.tiers:
                q = fast.quote(tier.name, symbol)
                assert q == ref.quote(tier.name, symbol)
                check_invariants(q, tier)
                if expired and no_lp_eligible(ref, i, now):
                    # After expire() no quote is built from a stale or down LP: with none fresh
                    # and up, nothing may be quoted.
                    assert not q.bids and not q.asks, (q, now)
        assert fast.counters() == ref.counters()
