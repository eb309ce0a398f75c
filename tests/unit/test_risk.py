"""Risk as a dealer sees it: positions, skew, hedging, and every pre-trade rejection."""

from fractions import Fraction

from engine.config import ClientLimits
from risk import BUY, SELL, KillSwitches, Position, PositionBook, PreTradeChecker, RejectReason

SECOND = 1_000_000_000


def test_position_realises_pnl_on_reduce_and_flip():
    p = Position()
    p.apply(BUY, 10, 100)
    p.apply(SELL, 4, 110)
    assert (p.qty, p.realised) == (6, 40)
    p.apply(SELL, 10, 120)  # closes 6 at +20 each, opens short 4 at 120
    assert (p.qty, p.realised, p.open_cost) == (-4, 40 + 120, -480)
    assert p.unrealised(110) == 40  # short 4 from 120, marked at 110


def test_negative_prices_are_just_prices():
    p = Position()
    p.apply(BUY, 5, -3763)
    p.apply(SELL, 5, -3000)
    assert p.qty == 0 and p.realised == 5 * 763


def test_house_takes_the_other_side_of_internalised_flow_only():
    book = PositionBook(2, skew_step_qty=[100, 0])
    book.on_client_fill("A", 0, BUY, 250, 108500, internalised=True)
    book.on_client_fill("B", 0, BUY, 1000, 108500, internalised=False)
    assert book.client("A", 0).qty == 250
    assert book.exposure(0) == -250
    assert book.skew_ticks(0) == -2  # short house: prices move up
    assert book.skew_ticks(1) == 0  # no skew configured
    book.on_hedge_fill(0, BUY, 250, 108501)
    assert book.exposure(0) == 0 and book.skew_ticks(0) == 0


def test_hedge_brings_exposure_back_to_flat_past_the_threshold():
    book = PositionBook(1)
    book.on_client_fill("A", 0, SELL, 900, 100, internalised=True)
    assert book.hedge_needed(0, threshold=1000) == 0
    book.on_client_fill("A", 0, SELL, 200, 100, internalised=True)
    assert book.hedge_needed(0, threshold=1000) == -1100  # house long 1100: sell it
    assert book.hedge_needed(0, threshold=0) == 0  # 0 = auto-hedge off


def test_odd_lots_count_towards_the_hedge_in_whole_steps():
    book = PositionBook(1)
    book.on_client_fill("A", 0, SELL, 1000, 100, internalised=True)  # house long 1000: at the threshold
    assert book.hedge_needed(0, threshold=1000) == 0
    book.on_odd_lot(0, BUY, Fraction(1, 2))
    assert book.hedge_needed(0, threshold=1000) == 0  # 1000.5: not a whole step past it
    book.on_odd_lot(0, BUY, Fraction(3, 4))
    assert book.hedge_needed(0, threshold=1000) == -1001  # 1001.25: sell the whole steps
    book.on_hedge_fill(0, SELL, 1001, 100)
    assert book.hedge_needed(0, threshold=0) == 0 and book.hedge_needed(0, threshold=1) == 0  # 0.25 left
    book.on_odd_lot(0, SELL, Fraction(5, 2))  # short odd lots: -2.25 in all, cut towards zero
    assert book.hedge_needed(0, threshold=1) == 2


def _checker() -> PreTradeChecker:
    return PreTradeChecker(PositionBook(2), KillSwitches(), collar_ticks=[50, 0])  # no collar on instrument 1


LIMITS = ClientLimits(max_order_qty=1000, max_position=1500, max_orders_per_s=2)


def test_order_within_limits_is_accepted():
    assert _checker().check("A", LIMITS, 0, BUY, 1000, 0).ok


def test_order_too_large_is_rejected_with_the_limit():
    d = _checker().check("A", LIMITS, 0, BUY, 1001, 0)
    assert not d.ok and d.reason is RejectReason.ORDER_TOO_LARGE
    assert d.text == "order quantity exceeds the limit (max 1000 steps)"
    assert d.reason.ord_rej_reason == 13


def test_position_limit_counts_the_existing_position_in_the_order_direction():
    c = _checker()
    c.positions.on_client_fill("A", 0, BUY, 1000, 1, internalised=True)
    assert c.check("A", LIMITS, 0, BUY, 600, 0).reason is RejectReason.POSITION_LIMIT
    assert c.check("A", LIMITS, 0, SELL, 1000, 0).ok  # reducing is fine


def test_kill_switches_halt_by_client_instrument_or_globally():
    c = _checker()
    c.kill.clients.add("A")
    assert c.check("A", LIMITS, 0, BUY, 1, 0).reason is RejectReason.KILL_SWITCH
    assert c.check("B", LIMITS, 0, BUY, 1, 0).ok
    c.kill.instruments.add(1)
    assert c.check("B", LIMITS, 1, BUY, 1, 0).reason is RejectReason.KILL_SWITCH
    c.kill.all = True
    assert c.check("B", LIMITS, 0, BUY, 1, 0).reason is RejectReason.KILL_SWITCH


def test_rate_limit_is_a_token_bucket_over_injected_time():
    c = _checker()
    assert c.check("A", LIMITS, 0, BUY, 1, 0).ok
    assert c.check("A", LIMITS, 0, BUY, 1, 0).ok
    assert c.check("A", LIMITS, 0, BUY, 1, 1).reason is RejectReason.RATE_LIMIT
    assert c.check("B", LIMITS, 0, BUY, 1, 1).ok  # per client
    assert c.check("A", LIMITS, 0, BUY, 1, SECOND // 2 + 1).ok  # one token back after 0.5 s


def test_price_collar_rejects_limits_far_through_the_market_only():
    c = _checker()
    assert c.check("A", LIMITS, 0, BUY, 1, 0, limit_price=1051, market_price=1000).reason is RejectReason.PRICE_COLLAR
    assert c.check("A", LIMITS, 0, BUY, 1, 0, limit_price=1050, market_price=1000).ok
    assert c.check("A", LIMITS, 0, BUY, 1, SECOND, limit_price=500, market_price=1000).ok  # passive
    assert c.check("A", LIMITS, 0, SELL, 1, 2 * SECOND, limit_price=-1000, market_price=0).reason is (
        RejectReason.PRICE_COLLAR
    )


def test_the_price_collar_is_per_instrument_and_off_by_default():
    c = _checker()
    assert c.check("A", LIMITS, 1, BUY, 1, 0, limit_price=5000, market_price=1000).ok  # instrument 1: none
    assert PreTradeChecker(PositionBook(2)).check("A", LIMITS, 0, BUY, 1, 0, limit_price=5000, market_price=1000).ok
    d = c.check("A", LIMITS, 0, BUY, 1, SECOND, limit_price=1051, market_price=1000)
    assert d.text == "limit price too far from the market (max 50 ticks through the market)"


def test_position_limit_counts_working_orders_on_the_orders_side():
    c = _checker()
    c.positions.on_client_fill("A", 0, BUY, 500, 1, internalised=True)
    assert c.check("A", LIMITS, 0, BUY, 500, 0, working=(500, 0)).ok  # 1500: at the limit
    assert c.check("A", LIMITS, 0, BUY, 501, SECOND, working=(500, 0)).reason is RejectReason.POSITION_LIMIT
    assert c.check("A", LIMITS, 0, BUY, 500, 2 * SECOND, working=(0, 2000)).ok  # the sells may never fill
    assert c.check("A", LIMITS, 0, SELL, 1000, 3 * SECOND, working=(500, 900)).ok  # 500 - 900 - 1000 = -1400


def test_an_order_that_reduces_a_position_past_the_limit_is_allowed():
    c = _checker()
    c.positions.on_client_fill("A", 0, BUY, 2000, 1, internalised=True)  # over 1500 (the limit moved, say)
    assert c.check("A", LIMITS, 0, SELL, 100, 0).ok  # still past the limit after it, but less
    assert c.check("A", LIMITS, 0, BUY, 1, SECOND).reason is RejectReason.POSITION_LIMIT
    c.positions.on_client_fill("B", 0, SELL, 2000, 1, internalised=True)
    assert c.check("B", LIMITS, 0, BUY, 100, 0).ok
    assert c.check("B", LIMITS, 0, SELL, 1, SECOND).reason is RejectReason.POSITION_LIMIT


def test_a_working_orders_fill_is_stopped_by_a_halt_or_the_position_limit():
    c = _checker()
    assert c.check_fill("A", LIMITS, 0, BUY, 1000).ok
    c.positions.on_client_fill("A", 0, BUY, 1000, 1, internalised=True)
    assert c.check_fill("A", LIMITS, 0, BUY, 1000).reason is RejectReason.POSITION_LIMIT
    assert c.check_fill("A", LIMITS, 0, SELL, 1000).ok
    c.kill.instruments.add(0)
    assert c.check_fill("A", LIMITS, 0, SELL, 1000).reason is RejectReason.KILL_SWITCH


def test_the_fills_of_a_failed_event_can_be_taken_back_exactly():
    book = PositionBook(1)
    book.on_client_fill("A", 0, BUY, 10, 100, internalised=True)
    outer = book.mark()
    book.on_client_fill("A", 0, SELL, 4, 110, internalised=True)
    inner = book.mark()
    book.on_hedge_fill(0, BUY, 6, 105)
    book.undo(inner)  # the inner event failed
    book.release(inner)
    assert book.exposure(0) == -6
    book.undo(outer)  # and then the whole of the outer one
    book.release(outer)
    assert (book.client("A", 0).qty, book.client("A", 0).realised, book.exposure(0)) == (10, 0, -10)
    assert book.house[0] == Position(-10, -1000, 0)


def test_an_inner_event_that_stands_is_still_taken_back_when_its_outer_event_fails():
    # Both spans start before any fill, so both marks are 0: the inner release must not end the
    # outer span's record.
    book = PositionBook(1)
    outer = book.mark()
    inner = book.mark()
    assert outer == inner == 0
    book.on_hedge_fill(0, SELL, 3, 100)
    book.release(inner)  # the inner event stands
    book.on_client_fill("A", 0, BUY, 100, 120, internalised=True)  # the outer event goes on
    book.undo(outer)  # and fails
    book.release(outer)
    assert book.house[0] == Position() and book.client("A", 0) == Position()
    book.on_hedge_fill(0, BUY, 1, 100)  # no span open: nothing is recorded any more
    assert book._undo is None
