"""Aggregation: which LP prices enter the book, and how each tier mode reads it."""

from __future__ import annotations

from engine.batch import UpdateBatch
from engine.config import AggregationMode, LpConfig, TierConfig
from tests.unit.test_engine_fixtures import config, desk, engine_fixture

both_engines = engine_fixture()

FULL = TierConfig(name="t", mode=AggregationMode.FULL_DEPTH, depth=5)


def test_full_depth_sums_sizes_per_price_across_lps(engine_cls):
    d = desk(engine_cls, config(FULL, lps=2))
    d.book(0, bids=[(100, 5), (99, 1)], asks=[(102, 5)])
    d.book(1, bids=[(100, 3), (98, 2)], asks=[(102, 1), (103, 4)])
    assert d.sides() == ([(100, 8), (99, 1), (98, 2)], [(102, 6), (103, 4)])


def test_level_slots_need_not_be_sorted_and_depth_is_capped(engine_cls):
    d = desk(engine_cls, config(TierConfig(name="t", depth=2), lps=1))
    d.book(0, bids=[(97, 1), (100, 2), (99, 3)], asks=[(103, 1), (101, 2)])
    assert d.sides() == ([(100, 2), (99, 3)], [(101, 2), (103, 1)])


def test_negative_and_zero_prices_are_ordinary_prices(engine_cls):
    d = desk(engine_cls, config(FULL, lps=2))
    d.book(0, bids=[(-3, 1), (-5, 2)], asks=[(0, 1)])
    d.book(1, bids=[(-4, 1)], asks=[(2, 1)])
    assert d.sides() == ([(-3, 1), (-4, 1), (-5, 2)], [(0, 1), (2, 1)])


def test_a_quantity_of_zero_deletes_a_level(engine_cls):
    d = desk(engine_cls, config(FULL, lps=1))
    d.book(0, bids=[(100, 1), (99, 1)], asks=[(101, 1)])
    batch = UpdateBatch()
    batch.set_level(0, 0, 0, 0, 100, 0, d.now)
    d.engine.apply(batch, d.now)
    assert d.sides() == ([(99, 1)], [(101, 1)])


def test_an_lp_going_down_disappears_and_needs_a_fresh_book_after_up(engine_cls):
    d = desk(engine_cls, config(FULL, lps=2))
    d.book(0, bids=[(100, 1)], asks=[(102, 1)])
    d.book(1, bids=[(99, 1)], asks=[(101, 1)])
    d.down(1)
    assert d.sides() == ([(100, 1)], [(102, 1)])
    d.up(1)  # its old book was forgotten when it went down
    assert d.sides() == ([(100, 1)], [(102, 1)])
    d.book(1, bids=[(99, 1)], asks=[(101, 1)])
    assert d.sides() == ([(100, 1), (99, 1)], [(101, 1), (102, 1)])


def test_an_lp_that_never_came_up_is_not_priced(engine_cls):
    d = desk(engine_cls, config(FULL, lps=2), up=1)
    d.book(1, bids=[(99, 1)], asks=[(101, 1)])
    assert d.sides() == ([], [])


def test_a_stale_lp_is_excluded_after_its_limit_and_returns_on_update(engine_cls):
    lps = [LpConfig(name="fast", instruments=["X"], staleness_ms=100), LpConfig(name="slow", instruments=["X"])]
    d = desk(engine_cls, config(FULL, lps=lps))
    d.book(0, bids=[(100, 1)], asks=[(101, 1)])
    d.book(1, bids=[(99, 1)], asks=[(102, 1)])
    d.advance(100)
    assert d.expire() == 0  # exactly at the limit is still fresh
    assert d.sides() == ([(100, 1), (99, 1)], [(101, 1), (102, 1)])
    d.advance(0.001)
    assert d.expire() == 1
    assert d.sides() == ([(99, 1)], [(102, 1)])
    assert d.expire() == 0  # the crossing is reported once
    d.book(0, bids=[(100, 2)], asks=[(101, 2)])
    assert d.sides() == ([(100, 2), (99, 1)], [(101, 2), (102, 1)])


def test_haircut_worsens_an_lps_prices(engine_cls):
    lps = [LpConfig(name="A", instruments=["X"], haircut_ticks=2)]
    d = desk(engine_cls, config(FULL, lps=lps))
    d.book(0, bids=[(100, 1)], asks=[(101, 1)])
    assert d.sides() == ([(98, 1)], [(103, 1)])


def test_size_weight_scales_sizes_down_and_drops_those_that_floor_to_zero(engine_cls):
    lps = [LpConfig(name="A", instruments=["X"], size_weight_pct=50)]
    d = desk(engine_cls, config(FULL, lps=lps))
    d.book(0, bids=[(100, 5), (99, 1)], asks=[(101, 4)])
    assert d.sides() == ([(100, 2)], [(101, 2)])


def test_an_lp_prices_only_its_own_instruments(engine_cls):
    lps = [LpConfig(name="A", instruments=["X"]), LpConfig(name="B", instruments=["Y"])]
    d = desk(engine_cls, config(FULL, lps=lps, symbols=("X", "Y")))
    d.book(1, bids=[(100, 1)], asks=[(101, 1)], instr=0)  # B does not price X: rejected
    assert d.sides() == ([], [])
    assert d.counters("X")["rejected_rows"] == 3


def test_spike_filter_ignores_and_counts_an_lp_far_from_the_others_median(engine_cls):
    d = desk(engine_cls, config(FULL, lps=4, spike_filter_ticks=10))
    for lp, mid in enumerate([100, 101, 102, 150]):
        d.book(lp, bids=[(mid - 1, 1)], asks=[(mid + 1, 1)])
    bids, asks = d.sides()
    assert all(px < 140 for px, _ in bids + asks)
    assert d.counters()["spikes_filtered"] == 1


def test_spike_filter_needs_two_other_lps_to_judge(engine_cls):
    d = desk(engine_cls, config(FULL, lps=2, spike_filter_ticks=10))
    d.book(0, bids=[(90, 1)], asks=[(110, 1)])  # mid 100
    d.book(1, bids=[(100, 1)], asks=[(200, 1)])  # mid 150: far, but which one spiked?
    assert d.sides() == ([(100, 1), (90, 1)], [(110, 1), (200, 1)])
    assert d.counters()["spikes_filtered"] == 0


def test_spike_filter_median_of_an_even_count_is_the_lower_middle(engine_cls):
    # Mids 100, 104, 106 and K = 4. LP2's others are {100, 104}: the lower middle is 100, so
    # LP2 is 6 ticks off and ignored (the upper middle would keep it and drop LP0 instead).
    # LP0's others {104, 106} → 104, 4 ticks: kept; LP1's others {100, 106} → 100: kept.
    d = desk(engine_cls, config(FULL, lps=3, spike_filter_ticks=4))
    for lp, mid in enumerate([100, 104, 106]):
        d.book(lp, bids=[(mid - 10, 1)], asks=[(mid + 10, 1)])
    assert d.sides() == ([(94, 1), (90, 1)], [(110, 1), (114, 1)])
    assert d.counters()["spikes_filtered"] == 1


def test_crossed_input_across_lps_means_no_quote_in_every_tier_and_is_counted(engine_cls):
    tiers = [FULL, TierConfig(name="top", mode=AggregationMode.TOP_OF_BOOK, depth=1)]
    d = desk(engine_cls, config(*tiers, lps=2))
    d.book(0, bids=[(100, 1)], asks=[(102, 1)])
    d.book(1, bids=[(103, 1)], asks=[(105, 1)])
    assert d.sides("t") == ([], []) and d.sides("top") == ([], [])
    counters = d.counters()
    assert counters["crossed_input"] == 1
    assert counters["no_quote_crossed"] == 2


def test_a_locked_lp_book_is_crossed_input(engine_cls):
    d = desk(engine_cls, config(FULL, lps=1))
    d.book(0, bids=[(100, 1)], asks=[(100, 1)])
    assert d.sides() == ([], [])
    assert d.counters()["crossed_input"] == 1


def test_an_empty_side_is_not_quoted_and_the_other_side_still_is(engine_cls):
    d = desk(engine_cls, config(FULL, lps=1))
    before = d.counters()["no_quote_empty_side"]
    d.book(0, bids=[(100, 1)], asks=[])
    assert d.sides() == ([(100, 1)], [])
    assert d.counters()["no_quote_empty_side"] == before + 1


def test_top_of_book_is_the_best_price_with_sizes_summed_at_it(engine_cls):
    d = desk(engine_cls, config(TierConfig(name="t", mode=AggregationMode.TOP_OF_BOOK, depth=3), lps=2))
    d.book(0, bids=[(100, 2), (99, 5)], asks=[(101, 1)])
    d.book(1, bids=[(100, 3)], asks=[(101, 4), (102, 1)])
    assert d.sides() == ([(100, 5)], [(101, 5)])


def test_vwap_bands_price_each_size_by_sweeping_rounded_against_the_client(engine_cls):
    tier = TierConfig(name="t", mode=AggregationMode.VWAP_BANDS, depth=3, size_bands=[1, 3, 10])
    d = desk(engine_cls, config(tier, lps=2))
    d.book(0, bids=[(100, 1), (99, 1)], asks=[(101, 2)])
    d.book(1, bids=[(98, 2)], asks=[(104, 2)])
    # bid 3: (100 + 99 + 98) / 3 = 99 exactly; ask 3: (2*101 + 104) / 3 = 102 → 102.
    # bid 10 and ask 10: not enough liquidity, not quoted.
    assert d.sides() == ([(100, 1), (99, 3)], [(101, 1), (102, 3)])
    d.book(1, bids=[(98, 2)], asks=[(105, 2)])
    # ask 3: (202 + 105) / 3 = 102.33 → rounded up to 103.
    assert d.sides()[1] == [(101, 1), (103, 3)]


def test_full_amount_takes_the_best_single_lp_that_can_fill_the_whole_band(engine_cls):
    tier = TierConfig(name="t", mode=AggregationMode.FULL_AMOUNT, depth=2, size_bands=[2, 4])
    d = desk(engine_cls, config(tier, lps=2))
    d.book(0, bids=[(100, 2)], asks=[(101, 1), (103, 1)])
    d.book(1, bids=[(99, 4)], asks=[(102, 4)])
    # Bid 2: LP0 at 100 beats LP1 at 99; bid 4: only LP1 can fill it.
    # Ask 2: LP0 sweeps to (101 + 103) / 2 = 102, LP1 is 102 too; ask 4: only LP1.
    # Both ask bands land on 102: one level, the larger band kept (band sizes are cumulative).
    assert d.sides() == ([(100, 2), (99, 4)], [(102, 4)])


def test_lp_tops_gives_each_priced_lps_best_level_as_sent_for_routing():
    from engine.book import Engine

    lps = [LpConfig(name="A", instruments=["X"], haircut_ticks=3), LpConfig(name="B", instruments=["X"]),
           LpConfig(name="C", instruments=["X"], staleness_ms=50)]  # fmt: skip
    d = desk(Engine, config(FULL, lps=lps), up=3)
    d.book(0, bids=[(-5, 2), (-3, 4), (-3, 1)], asks=[(0, 7)])  # negative and zero are prices
    d.book(1, bids=[(-4, 1)], asks=[])
    d.advance(40)
    d.book(2, bids=[(-2, 9)], asks=[(1, 1)])
    assert d.engine.lp_tops(0, 0, d.now) == [(0, -3, 5), (1, -4, 1), (2, -2, 9)]  # no haircut: the LP's price
    assert d.engine.lp_tops(0, 1, d.now) == [(0, 0, 7), (2, 1, 1)]  # B shows no asks
    d.down(1)
    d.advance(60)  # C is now past its 50 ms staleness limit; A (1000 ms) is not
    assert d.engine.lp_tops(0, 0, d.now) == [(0, -3, 5)]
