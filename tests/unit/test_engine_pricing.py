"""Tier pricing: markups, spread rules, skew, volatility widening, rounding, publishing."""

from __future__ import annotations

from engine.book import Engine
from engine.config import AggregationMode, MarkupUnit, MaxSpreadRule, MinSpreadRule, TierConfig
from tests.unit.test_engine_fixtures import Desk, config, desk, engine_fixture

both_engines = engine_fixture()


def one_lp(engine_cls: type, tier: TierConfig, **kw: int) -> Desk:
    """A desk with one LP (up) and one tier ``t`` over instrument ``X``."""
    return desk(engine_cls, config(tier, lps=1, **kw))


def test_markup_in_ticks_moves_each_side_out(engine_cls):
    d = one_lp(engine_cls, TierConfig(name="t", bid_markup=2, ask_markup=3))
    d.book(0, bids=[(100, 1), (99, 1)], asks=[(101, 1)])
    assert d.sides() == ([(98, 1), (97, 1)], [(104, 1)])


def test_markup_in_bps_is_of_the_absolute_mid_rounded_up(engine_cls):
    tier = TierConfig(name="t", markup_unit=MarkupUnit.BPS, bid_markup=10, ask_markup=1)
    d = one_lp(engine_cls, tier)
    d.book(0, bids=[(-10001, 1)], asks=[(-9999, 1)])
    # |mid| = 10000: 10 bps = 10 ticks; 1 bp = 1 tick. A negative mid still widens the quote.
    assert d.sides() == ([(-10011, 1)], [(-9998, 1)])
    d.book(0, bids=[(10000, 1)], asks=[(10001, 1)])
    # |mid| = 10000.5: 1 bp = 1.00005 ticks → 2.
    assert d.sides()[1] == [(10003, 1)]


def test_min_spread_widen_is_symmetric_with_the_odd_tick_on_the_ask(engine_cls):
    d = one_lp(engine_cls, TierConfig(name="t", min_spread_ticks=6))
    d.book(0, bids=[(100, 1), (99, 2)], asks=[(101, 1)])
    # spread 1 → 6: 5 extra ticks, 2 off the bid side and 3 onto the ask side (whole ladders).
    assert d.sides() == ([(98, 1), (97, 2)], [(104, 1)])


def test_min_spread_no_quote_publishes_nothing_and_counts(engine_cls):
    tier = TierConfig(name="t", min_spread_ticks=6, min_spread_rule=MinSpreadRule.NO_QUOTE)
    d = one_lp(engine_cls, tier)
    d.book(0, bids=[(100, 1)], asks=[(101, 1)])
    assert d.sides() == ([], [])
    assert d.counters()["no_quote_min_spread"] == 1
    d.book(0, bids=[(100, 1)], asks=[(106, 1)])
    assert d.sides() == ([(100, 1)], [(106, 1)])


def test_max_spread_no_quote_publishes_nothing_and_counts(engine_cls):
    d = one_lp(engine_cls, TierConfig(name="t", max_spread_ticks=10))
    d.book(0, bids=[(100, 1)], asks=[(111, 1)])
    assert d.sides() == ([], [])
    assert d.counters()["no_quote_max_spread"] == 1


def test_max_spread_cap_narrows_symmetrically_to_the_maximum(engine_cls):
    tier = TierConfig(name="t", max_spread_ticks=10, max_spread_rule=MaxSpreadRule.CAP)
    d = one_lp(engine_cls, tier)
    d.book(0, bids=[(100, 1), (95, 1)], asks=[(115, 1)])
    # spread 15 → 10: bid up 2, ask down 3 (the odd tick comes off the ask).
    assert d.sides() == ([(102, 1), (97, 1)], [(112, 1)])


def test_positive_skew_moves_both_prices_down_by_its_share_clamped(engine_cls):
    tier = TierConfig(name="t", skew_pct=50, max_skew_ticks=3)
    d = one_lp(engine_cls, tier)
    d.book(0, bids=[(100, 1)], asks=[(102, 1)])
    assert d.engine.set_skew(0, 4, d.now) == 1  # 50% of 4 = 2
    assert d.sides() == ([(98, 1)], [(100, 1)])
    d.engine.set_skew(0, -100, d.now)  # short: prices up, clamped to 3
    assert d.sides() == ([(103, 1)], [(105, 1)])


def test_skew_without_a_time_is_applied_on_the_next_reprice(engine_cls):
    d = one_lp(engine_cls, TierConfig(name="t", skew_pct=100, max_skew_ticks=5))
    d.book(0, bids=[(100, 1)], asks=[(102, 1)])
    assert d.engine.set_skew(0, 1) == 0
    assert d.sides() == ([(100, 1)], [(102, 1)])
    assert d.expire() == 1
    assert d.sides() == ([(99, 1)], [(101, 1)])


def test_rounding_moves_bids_down_asks_up_and_merges_collided_levels(engine_cls):
    d = one_lp(engine_cls, TierConfig(name="t", round_ticks=5, depth=2))
    d.book(0, bids=[(104, 1), (101, 2), (99, 4), (95, 8)], asks=[(106, 1), (109, 2), (111, 3)])
    # bids 104, 101 → 100 (sizes 1 + 2), 99, 95 → 95 (4 + 8); asks 106, 109 → 110, 111 → 115.
    assert d.sides() == ([(100, 3), (95, 12)], [(110, 3), (115, 3)])


def test_rounding_works_below_zero(engine_cls):
    d = one_lp(engine_cls, TierConfig(name="t", round_ticks=10))
    d.book(0, bids=[(-1, 1)], asks=[(1, 1)])
    assert d.sides() == ([(-10, 1)], [(10, 1)])


def test_volatility_widens_after_the_mid_moves_and_fades_with_time(engine_cls):
    tier = TierConfig(name="t", vol_widen_pct=100, max_vol_widen_ticks=50)
    d = one_lp(engine_cls, tier, vol_halflife_ms=100)
    d.book(0, bids=[(100, 1)], asks=[(102, 1)])
    assert d.sides() == ([(100, 1)], [(102, 1)])  # no history: no widening
    d.book(0, bids=[(140, 1)], asks=[(142, 1)])
    # |Δmid| = 40 ticks; the EWMA moves a quarter of the way: 10 ticks each side.
    assert d.sides() == ([(130, 1)], [(152, 1)])
    d.advance(100)  # one half-life later: 5 ticks
    d.book(0, bids=[(140, 2)], asks=[(142, 2)])
    assert d.sides() == ([(135, 2)], [(147, 2)])


def test_volatility_widening_is_capped(engine_cls):
    tier = TierConfig(name="t", vol_widen_pct=100, max_vol_widen_ticks=3)
    d = one_lp(engine_cls, tier)
    d.book(0, bids=[(100, 1)], asks=[(102, 1)])
    d.book(0, bids=[(140, 1)], asks=[(142, 1)])
    assert d.sides() == ([(137, 1)], [(145, 1)])


def test_version_moves_only_when_the_published_quote_changes(engine_cls):
    tier = TierConfig(name="t", mode=AggregationMode.TOP_OF_BOOK, depth=1)
    d = one_lp(engine_cls, tier)
    d.book(0, bids=[(100, 1), (99, 1)], asks=[(101, 1)])
    v = d.quote().version
    d.book(0, bids=[(100, 1), (98, 7)], asks=[(101, 1)])  # below the top: nothing published moves
    assert d.quote().version == v
    d.book(0, bids=[(100, 2)], asks=[(101, 1)])
    assert d.quote().version == v + 1


def test_a_one_sided_market_in_band_mode_quotes_the_side_it_can_fill(engine_cls):
    tier = TierConfig(name="t", mode=AggregationMode.VWAP_BANDS, depth=2, size_bands=[2, 5])
    d = one_lp(engine_cls, tier)
    before = d.counters()["no_quote_empty_side"]
    d.book(0, bids=[(100, 3)], asks=[(101, 1)])  # the ask cannot fill the first band
    assert d.sides() == ([(100, 2)], [])
    assert d.counters()["no_quote_empty_side"] == before + 1


def test_quote_arrays_expose_counts_and_versions_for_the_fan_out():
    d = one_lp(Engine, TierConfig(name="t", depth=3))  # the raw arrays are the Numba engine's
    d.book(0, bids=[(0, 1), (-1, 2)], asks=[(1, 3)])
    e = d.engine
    assert list(e.quote_state[0, 0]) == [2, 1, d.quote().version]
    assert list(e.quotes[0, 0, 0, 0, :2]) == [0, -1]  # bid prices
    assert list(e.quotes[0, 0, 0, 1, :2]) == [1, 2]  # bid sizes
    assert list(e.quotes[0, 0, 1, :, 0]) == [1, 3]  # ask price, size
