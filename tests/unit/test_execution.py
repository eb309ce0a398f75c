"""Order execution against a tier's prices, as a client would see it."""

from engine.config import AggregationMode as M
from engine.execution import (
    BUY,
    SELL,
    Execution,
    Fill,
    Order,
    OrdType,
    TimeInForce,
    execute,
    fill_at_quote,
    match_resting,
)

BIDS = ((100, 10), (99, 20), (97, 30))
ASKS = ((102, 10), (103, 20), (105, 30))
DAY, IOC, FOK, GTC = TimeInForce.DAY, TimeInForce.IOC, TimeInForce.FOK, TimeInForce.GTC
MKT, LMT = OrdType.MARKET, OrdType.LIMIT


def test_market_buy_sweeps_asks_best_first_one_fill_per_level():
    ex = execute(Order(BUY, 25, MKT, IOC), BIDS, ASKS, M.FULL_DEPTH)
    assert ex.fills == (Fill(10, 102), Fill(15, 103))
    assert ex.resting == 0 and ex.reject is None


def test_market_order_larger_than_the_book_fills_what_there_is():
    ex = execute(Order(SELL, 100, MKT, IOC), BIDS, ASKS, M.FULL_DEPTH)
    assert ex.filled == 60 and ex.fills[-1] == Fill(30, 97)


def test_ioc_limit_stops_at_the_limit_and_cancels_the_rest():
    ex = execute(Order(BUY, 50, LMT, IOC, price=103), BIDS, ASKS, M.FULL_DEPTH)
    assert ex.fills == (Fill(10, 102), Fill(20, 103)) and ex.resting == 0


def test_fok_is_all_or_nothing():
    assert execute(Order(BUY, 30, LMT, FOK, price=103), BIDS, ASKS, M.FULL_DEPTH).filled == 30
    ex = execute(Order(BUY, 31, LMT, FOK, price=103), BIDS, ASKS, M.FULL_DEPTH)
    assert ex.fills == () and ex.reject == "fill-or-kill: not enough liquidity at the limit"


def test_limit_that_does_not_cross_is_rejected_for_ioc_and_rests_for_day():
    assert execute(Order(SELL, 5, LMT, IOC, price=101), BIDS, ASKS, M.FULL_DEPTH).reject == (
        "no liquidity at or better than the limit"
    )
    day = execute(Order(SELL, 5, LMT, DAY, price=101), BIDS, ASKS, M.FULL_DEPTH)
    assert day == Execution(resting=5)


def test_day_limit_fills_what_crosses_and_rests_the_rest_then_fills_on_a_better_quote():
    order = Order(BUY, 40, LMT, GTC, price=103)
    ex = execute(order, BIDS, ASKS, M.FULL_DEPTH)
    assert ex.filled == 30 and ex.resting == 10
    later = match_resting(order, ex.resting, BIDS, ((101, 50),), M.FULL_DEPTH)
    assert later.fills == (Fill(10, 101),) and later.resting == 0


def test_negative_prices_sweep_like_any_other():
    asks = ((-3763, 5), (-3700, 5))
    ex = execute(Order(BUY, 7, LMT, IOC, price=-3700), (), asks, M.FULL_DEPTH)
    assert ex.fills == (Fill(5, -3763), Fill(2, -3700))


def test_band_modes_fill_the_whole_order_at_the_smallest_covering_band():
    band_asks = ((102, 1000), (103, 3000), (105, 5000))
    for mode in (M.VWAP_BANDS, M.FULL_AMOUNT):
        assert execute(Order(BUY, 1000, MKT, IOC), (), band_asks, mode).fills == (Fill(1000, 102),)
        assert execute(Order(BUY, 1001, MKT, IOC), (), band_asks, mode).fills == (Fill(1001, 103),)
        big = execute(Order(BUY, 5001, MKT, IOC), (), band_asks, mode)
        assert big.reject == "quantity exceeds the largest priced size (5000 steps)"
        limited = execute(Order(BUY, 2000, LMT, IOC, price=102), (), band_asks, mode)
        assert limited.reject == "no price at or better than the limit for this size"


def test_empty_side_is_no_price():
    assert execute(Order(BUY, 1, MKT, IOC), BIDS, (), M.FULL_DEPTH).reject == "no price available"


def test_bad_orders_are_refused_with_a_reason():
    assert execute(Order(BUY, 0, MKT, IOC), BIDS, ASKS, M.FULL_DEPTH).reject == "order quantity must be positive"
    assert execute(Order(BUY, 1, LMT, IOC), BIDS, ASKS, M.FULL_DEPTH).reject == "limit order without a price"


def test_previously_quoted_fills_at_the_quote_or_explains_why_not():
    pq = OrdType.PREVIOUSLY_QUOTED
    assert fill_at_quote(Order(BUY, 5, pq, FOK), 102, 10).fills == (Fill(5, 102),)
    assert fill_at_quote(Order(BUY, 11, pq, FOK), 102, 10).reject == "quantity exceeds the quoted size (10 steps)"
    assert fill_at_quote(Order(SELL, 5, pq, FOK, price=101), 100, 10).reject == "quoted price is worse than the limit"
