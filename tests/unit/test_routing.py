"""A-book routing as a spec: the best LP first, the remainder to the next LP after a last-look
reject or a partial fill, each LP once, and never past the time budget."""

import pytest

from engine.config import MarkupUnit, TierConfig
from risk.routing import ChildOrder, LateFill, LpPrice, RouteDone, RouteFill, Router, client_price, lp_limit

BUY, SELL = 1, -1
MS = 1_000_000
LPS = ["LP1", "LP2", "LP3"]


class Lps:
    """Three LPs whose best prices the test sets, and the orders the router sent them."""

    def __init__(self) -> None:
        self.asks = {0: (100, 50), 1: (101, 50), 2: (102, 50)}
        self.bids = {0: (98, 50), 1: (97, 50), 2: (99, 50)}
        self.sent: list[tuple[int, str, int, int, int | None]] = []
        self.refuse: set[int] = set()

    def send(self, lp, cl_ord_id, instr, side, qty, limit):
        if lp in self.refuse:
            return False
        self.sent.append((lp, cl_ord_id, side, qty, limit))
        return True

    def prices(self, instr, side):
        book = self.asks if side == BUY else self.bids
        return [LpPrice(lp, px, qty) for lp, (px, qty) in book.items()]


@pytest.fixture
def lps():
    return Lps()


@pytest.fixture
def router(lps):
    return Router(lps.send, lps.prices, LPS)


def test_a_buy_goes_to_the_lowest_ask_and_a_sell_to_the_highest_bid(router, lps):
    assert router.start("O1", 0, BUY, 10, None, 0, 250 * MS) == []
    assert router.start("O2", 0, SELL, 10, None, 0, 250 * MS) == []
    assert [(lp, side, qty) for lp, _, side, qty, _ in lps.sent] == [(0, BUY, 10), (2, SELL, 10)]
    assert "O1" in router and len(router) == 2


def test_equal_prices_go_to_the_lp_showing_more_size(router, lps):
    lps.asks = {0: (100, 10), 1: (100, 90), 2: (105, 500)}
    router.start("O1", 0, BUY, 10, None, 0, 250 * MS)
    assert lps.sent[0][0] == 1


def test_negative_prices_are_prices_a_buy_takes_the_most_negative_ask(router, lps):
    lps.asks = {0: (-3763, 10), 1: (-3770, 10), 2: (0, 10)}
    router.start("O1", 4, BUY, 5, None, 0, 250 * MS)
    assert lps.sent[0][0] == 1


def test_a_full_fill_ends_the_route_with_nothing_unfilled(router, lps):
    router.start("O1", 0, BUY, 10, None, 0, 250 * MS)
    events = router.on_execution(0, "O1.1", b"2", 10, 100, "", 5 * MS)
    assert events == [RouteFill("O1", 0, 10, 100), RouteDone("O1", 10, 0, "")]
    assert "O1" not in router


def test_a_last_look_reject_sends_everything_to_the_next_best_lp(router, lps):
    router.start("O1", 0, BUY, 10, None, 0, 250 * MS)
    assert router.on_execution(0, "O1.1", b"8", 0, None, "last look: rejected", 5 * MS) == []
    assert lps.sent[-1][:4] == (1, "O1.2", BUY, 10)
    events = router.on_execution(1, "O1.2", b"2", 10, 101, "", 9 * MS)
    assert events == [RouteFill("O1", 1, 10, 101), RouteDone("O1", 10, 0, "")]


def test_a_partial_fill_sends_only_the_remainder_on(router, lps):
    router.start("O1", 0, BUY, 10, None, 0, 250 * MS)
    assert router.on_execution(0, "O1.1", b"1", 4, 100, "", 5 * MS) == [RouteFill("O1", 0, 4, 100)]
    assert router.on_execution(0, "O1.1", b"4", 0, None, "remainder cancelled", 5 * MS) == []
    assert lps.sent[-1][:4] == (1, "O1.2", BUY, 6)


def test_each_lp_is_tried_once_and_the_reasons_reach_the_owner(router, lps):
    router.start("O1", 0, BUY, 10, None, 0, 250 * MS)
    router.on_execution(0, "O1.1", b"8", 0, None, "last look: rejected", 1 * MS)
    router.on_execution(1, "O1.2", b"1", 3, 101, "", 2 * MS)
    router.on_execution(1, "O1.2", b"4", 0, None, "", 2 * MS)
    events = router.on_execution(2, "O1.3", b"8", 0, None, "off market", 3 * MS)
    (done,) = events
    assert (done.filled, done.unfilled) == (3, 7)
    assert done.reason == (
        "no LP left that can fill within the limit; LP1: last look: rejected; LP2: not filled; LP3: off market"
    )
    assert [s[0] for s in lps.sent] == [0, 1, 2]


def test_lps_worse_than_the_limit_are_not_asked(router, lps):
    router.start("O1", 0, BUY, 10, 101, 0, 250 * MS)
    router.on_execution(0, "O1.1", b"8", 0, None, "", 1 * MS)
    router.on_execution(1, "O1.2", b"8", 0, None, "", 2 * MS)
    assert [s[0] for s in lps.sent] == [0, 1]  # LP3's 102 is through the limit
    assert lps.sent[0][4] == 101  # the limit travels with the order


def test_no_lp_at_all_ends_the_route_at_once(router, lps):
    lps.asks = {}
    (done,) = router.start("O1", 0, BUY, 10, None, 0, 250 * MS)
    assert done == RouteDone("O1", 0, 10, "no LP left that can fill within the limit")


def test_an_lp_that_cannot_take_orders_is_skipped(router, lps):
    lps.refuse = {0}
    router.start("O1", 0, BUY, 10, None, 0, 250 * MS)
    assert lps.sent[0][0] == 1


def test_a_lost_session_moves_the_remainder_on(router, lps):
    router.start("O1", 0, BUY, 10, None, 0, 250 * MS)
    assert router.on_lp_down(0, 1 * MS) == []
    assert lps.sent[-1][:2] == (1, "O1.2")
    assert router.on_execution(0, "O1.1", b"2", 10, 100, "", 2 * MS) == []  # forgotten with the session


def test_the_budget_ends_the_route_and_a_late_fill_goes_to_the_house(router, lps):
    router.start("O1", 0, BUY, 10, None, 0, 250 * MS)
    assert router.poll(249 * MS) == []
    (done,) = router.poll(250 * MS)
    assert (done.filled, done.unfilled) == (0, 10)
    assert done.reason == "time budget spent; LP1: no answer within the time budget"
    assert router.on_execution(0, "O1.1", b"2", 10, 100, "", 300 * MS) == [LateFill(0, 0, BUY, 10, 100)]
    assert router.on_execution(0, "O1.1", b"2", 10, 100, "", 301 * MS) == []  # terminal: forgotten


def test_no_new_lp_is_tried_after_the_budget(router, lps):
    router.start("O1", 0, BUY, 10, None, 0, 250 * MS)
    (done,) = router.on_execution(0, "O1.1", b"8", 0, None, "rejected", 260 * MS)
    assert done.unfilled == 10 and len(lps.sent) == 1


def test_reports_for_unknown_orders_or_from_another_lp_are_ignored(router, lps):
    router.start("O1", 0, BUY, 10, None, 0, 250 * MS)
    assert router.on_execution(0, "nope", b"2", 10, 100, "", 1) == []
    assert router.on_execution(1, "O1.1", b"2", 10, 100, "", 1) == []
    assert router.instrument_of("O1.1") == 0 and router.instrument_of("nope") is None


def test_a_key_cannot_be_routed_twice_at_once(router):
    router.start("O1", 0, BUY, 10, None, 0, 250 * MS)
    with pytest.raises(ValueError):
        router.start("O1", 0, BUY, 10, None, 0, 250 * MS)


# --- what the client pays ----------------------------------------------------------------------------

TICKS = TierConfig(name="t", bid_markup=2, ask_markup=3)
BPS = TierConfig(name="b", markup_unit=MarkupUnit.BPS, bid_markup=10, ask_markup=10)


def test_the_client_pays_the_lp_price_worsened_by_the_tier_markup():
    assert client_price(TICKS, BUY, 100, None) == 103
    assert client_price(TICKS, SELL, 100, None) == 98
    assert client_price(BPS, BUY, 100_000, None) == 100_100  # 10 bps of 100000 ticks
    assert client_price(BPS, BUY, -37_630, None) == -37_630 + 38  # of |price|, rounded up


def test_the_client_never_pays_worse_than_its_limit():
    limit = 102
    lp_px = lp_limit(TICKS, BUY, limit)
    assert lp_px == 99
    assert client_price(TICKS, BUY, lp_px, limit) == 102
    assert client_price(TICKS, BUY, 101, limit) == limit  # worse at the LP: the house gives the difference
    assert lp_limit(TICKS, SELL, 95) == 97
    assert client_price(TICKS, SELL, 96, 95) == 95
    assert lp_limit(TICKS, BUY, None) is None


def test_an_abandoned_child_ends_its_route_and_what_it_fills_later_is_the_houses(router, lps):
    router.start("O1", 0, BUY, 10, None, 0, 250 * MS)
    assert router.child_order("O1.1") == ChildOrder("O1", 0, BUY, orphan=False)
    (done,) = router.abandon(0, "O1.1", "unreadable fill")
    assert (done.filled, done.unfilled, done.reason) == (0, 10, "LP1: unreadable fill")
    assert len(lps.sent) == 1 and "O1" not in router  # the rest goes nowhere else
    assert router.on_execution(0, "O1.1", b"2", 10, 100, "", 5 * MS) == [LateFill(0, 0, BUY, 10, 100)]


def test_each_lp_keeps_how_our_orders_there_ended_and_how_long_it_took_to_answer(router, lps):
    router.start("O1", 0, BUY, 10, None, 0, 250 * MS)
    router.on_execution(0, "O1.1", b"1", 4, 100, "", 1 * MS)  # LP1 fills 4 of 10 ...
    router.on_execution(0, "O1.1", b"4", 0, None, "", 2 * MS)  # ... and cancels the rest after 2 ms
    router.on_execution(1, "O1.2", b"8", 0, None, "last look: rejected", 40 * MS)  # LP2 rejects after 38 ms
    router.on_execution(2, "O1.3", b"2", 6, 102, "", 43 * MS)  # LP3 fills the rest after 3 ms
    router.start("O2", 0, BUY, 10, None, 100 * MS, 250 * MS)
    router.poll(351 * MS)  # LP1 does not answer within the budget ...
    router.on_execution(0, "O2.1", b"8", 0, None, "", 900 * MS)  # ... and rejects 800 ms after the order
    router.start("O3", 0, BUY, 10, None, 1000 * MS, 250 * MS)
    router.on_lp_down(0, 1001 * MS)  # LP1's session goes while it has O3.1
    router.abandon(1, "O3.2", "report without LastQty")  # LP2's report of O3.2 cannot be read
    outcomes = [{k: v for k, v in s.outcomes.items() if v} for s in router.lp_stats]
    assert outcomes == [
        {"partial": 1, "no_answer": 1, "session_lost": 1},
        {"rejected": 1, "unreadable": 1},
        {"filled": 1},
    ]
    bounds = list(router.lp_stats[0].bucket_bounds_s)
    # Answered after 2 ms and 800 ms (late, but the LP did take that long); lost and unread: no answer.
    assert router.lp_stats[0].response_buckets[bounds.index(0.0025)] == 1
    assert router.lp_stats[0].response_buckets[bounds.index(1.0)] == 1
    assert sum(router.lp_stats[0].response_buckets) == 2
    assert router.lp_stats[1].response_buckets[bounds.index(0.05)] == 1
    assert router.lp_stats[2].response_sum_s == pytest.approx(0.003)
