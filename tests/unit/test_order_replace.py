"""OrderCancelReplaceRequest (35=G) as a client sees it: a resting limit order takes a new price
and quantity (150=5), is checked like a new order, fills at once if the new price crosses, and
survives a restart as replaced; every refusal is an OrderCancelReject (434=2) with its reason,
and the order works on unchanged."""

import pytest

from engine.journal import Journal
from fixserver.message import FixMessage
from fixserver.orders import OrderDesk
from risk import PositionBook, PreTradeChecker
from tests.unit.test_orders import EURUSD, _d, _fail_once, _reports
from tests.unit.test_orders import desk as desk  # noqa: F401  (the fixture)


def _g(cl, orig, qty=b"2000000", price=b"1.08510", side=b"2", extra=()):
    fields = [(35, b"G"), (11, cl.encode()), (41, orig.encode()), (55, b"EUR/USD"), (54, side), (38, qty), (40, b"2")]
    return FixMessage([*fields, (44, price), *extra])


@pytest.fixture
def resting(desk):
    """DEMO sells 2M EUR/USD at 1.08510, DAY: it rests (the bid is 1.08500)."""
    desk.on_new_order(desk.client, _d("L1", side=b"2", qty=b"2000000", ord_type=b"2", tif=b"0", price=b"1.08510"), 1)
    (new,) = _reports(desk)
    assert new[150] == b"0"
    return new[37]


def test_a_replace_gives_the_resting_order_its_new_price_and_quantity(desk, resting):
    desk.on_replace(desk.client, _g("L2", "L1", qty=b"3000000", price=b"1.08520"), 2)
    (r,) = _reports(desk)
    assert (r[35], r[150], r[39], r[37], r[11], r[41]) == (b"8", b"5", b"0", resting, b"L2", b"L1")
    assert (r[38], r[44], r[151], r[14]) == (b"3000000", b"1.08520", b"3000000", b"0")
    desk.quotes[(0, EURUSD)] = (((108515, 5000),), ((108530, 5000),))  # the bid passes the old price, not the new
    desk.on_quotes(now_ns=3)
    assert _reports(desk) == []
    desk.quotes[(0, EURUSD)] = (((108521, 5000),), ((108530, 5000),))
    desk.on_quotes(now_ns=4)
    (fill,) = _reports(desk)
    assert (fill[11], fill[150], fill[39], fill[32], fill[31]) == (b"L2", b"F", b"2", b"3000000", b"1.08521")
    assert desk.positions.client("DEMO", EURUSD).qty == -3000


def test_a_replace_to_a_crossing_price_fills_at_once(desk, resting):
    desk.on_replace(desk.client, _g("L2", "L1", price=b"1.08500"), 2)  # at the bid
    replaced, fill = _reports(desk)
    assert (replaced[150], fill[150], fill[11], fill[31], fill[32]) == (b"5", b"F", b"L2", b"1.08500", b"1000000")
    assert fill[151] == b"1000000"  # the rest rests at 1.08500


def test_a_partly_filled_order_keeps_its_fills_and_may_not_go_below_them(desk, resting):
    desk.quotes[(0, EURUSD)] = (((108511, 1000),), ((108515, 1000),))
    desk.on_quotes(now_ns=2)
    (fill,) = _reports(desk)
    assert fill[14] == b"1000000"
    desk.on_replace(desk.client, _g("L2", "L1", qty=b"1000000"), 3)
    (refused,) = _reports(desk)
    assert (refused[35], refused[434], refused[102], refused[39]) == (b"9", b"2", b"99", b"1")
    assert refused[58] == b"quantity must be above the 1000000 already filled"
    desk.on_replace(desk.client, _g("L3", "L1", qty=b"4000000", price=b"1.08600"), 4)
    (r,) = _reports(desk)
    assert (r[150], r[39], r[11], r[41], r[14], r[151]) == (b"5", b"1", b"L3", b"L1", b"1000000", b"3000000")
    assert r[6] == b"1.085110000"  # the average price of what filled


@pytest.mark.parametrize(
    ("msg", "reason", "text"),
    [
        (_g("L2", "nope"), b"1", "unknown order"),
        (_g("L1", "L1"), b"6", "duplicate ClOrdID"),
        (_g("L2", "L1", side=b"1"), b"99", "Side (54) cannot be changed by a replace"),
        (_g("L2", "L1", extra=[(59, b"1")]), b"99", "TimeInForce (59) cannot be changed by a replace"),
        (_g("L2", "L1", qty=b"2000500"), b"99", "quantity must be a positive multiple of 1000"),
        (_g("L2", "L1", price=b"1.085105"), b"99", "a limit price (44) that is a multiple of the tick size 0.00001"),
        (_g("L2", "L1", qty=b"11000000"), b"99", "order size limit (max 10000 steps)"),
    ],
)
def test_each_refused_replace_says_why_and_the_order_works_on_unchanged(desk, resting, msg, reason, text):
    desk.on_replace(desk.client, msg, 2)
    (r,) = _reports(desk)
    assert (r[35], r[434], r[102], r[58].decode()) == (b"9", b"2", reason, text)
    row = desk.journal.order_by_cl_ord_id("DEMO", "L1")
    assert (row.cl_ord_id, row.qty, row.price, row.status) == ("L1", 2000, 108510, "0")


def test_no_replace_while_trading_is_halted(desk, resting):
    desk.checker.kill.all = True
    desk.on_replace(desk.client, _g("L2", "L1", price=b"1.08520"), 2)
    (r,) = _reports(desk)
    assert (r[35], r[434], r[58]) == (b"9", b"2", b"trading halted")


def test_a_finished_order_cannot_be_replaced(desk):
    desk.on_new_order(desk.client, _d("M1", qty=b"1000000"), now_ns=1)  # a market IOC: filled at once
    desk.flush()
    desk.on_replace(desk.client, _g("M2", "M1", side=b"1"), 2)
    (r,) = _reports(desk)
    assert (r[35], r[102], r[58]) == (b"9", b"0", b"order is no longer working")


def test_the_replaced_clordid_stays_taken_and_still_names_the_order(desk, resting):
    desk.on_replace(desk.client, _g("L2", "L1"), 2)
    desk.flush()
    desk.on_new_order(desk.client, _d("L1", qty=b"1000000"), now_ns=3)
    (dup,) = _reports(desk)
    assert (dup[150], dup[58]) == (b"8", b"duplicate ClOrdID")
    desk.on_cancel(desk.client, FixMessage([(35, b"F"), (11, b"X1"), (41, b"L2")]), 4)
    (cxl,) = _reports(desk)
    assert (cxl[150], cxl[37], cxl[41]) == (b"4", resting, b"L2")


def test_a_replace_that_cannot_be_journaled_is_refused_and_the_order_works_on(desk, resting):
    _fail_once(desk.journal, "replace_order")
    desk.on_replace(desk.client, _g("L2", "L1", price=b"1.08520"), 2)
    (r,) = _reports(desk)
    assert (r[35], r[434], r[102]) == (b"9", b"2", b"99")
    desk.quotes[(0, EURUSD)] = (((108511, 5000),), ((108530, 5000),))  # crosses the old price only
    desk.on_quotes(now_ns=3)
    (fill,) = _reports(desk)
    assert (fill[11], fill[31]) == (b"L1", b"1.08511")


def test_a_restart_recovers_the_order_as_replaced(desk, resting, tmp_path):
    desk.on_replace(desk.client, _g("L2", "L1", qty=b"3000000", price=b"1.08520"), 2)
    desk.flush()
    cfg = desk.cfg
    positions = PositionBook(len(cfg.instruments))
    again = OrderDesk(cfg, desk._quote_of, Journal(tmp_path / "journal.sqlite"), positions, PreTradeChecker(positions))
    assert again.recover({c.sender_comp_id: c for c in cfg.clients}) == 1
    desk.quotes[(0, EURUSD)] = (((108515, 5000),), ((108530, 5000),))
    again.on_quotes(now_ns=3)
    assert [dict(o.body) for o in again.flush()] == []  # not at the old price
    desk.quotes[(0, EURUSD)] = (((108520, 5000),), ((108530, 5000),))
    again.on_quotes(now_ns=4)
    (fill,) = [dict(o.body) for o in again.flush()]
    assert (fill[11], fill[32], fill[31]) == (b"L2", b"3000000", b"1.08520")


def test_the_position_limit_counts_the_replaced_order_once(desk):
    for n, qty in enumerate((b"9000000",) * 5 + (b"5000000",)):  # DEMO: max_position 50000 steps, all resting buys
        desk.on_new_order(desk.client, _d(f"P{n}", qty=qty, ord_type=b"2", tif=b"1", price=b"1.08400"), n)
    assert [r[150] for r in _reports(desk)] == [b"0"] * 6
    gtc_buy = {"side": b"1", "extra": [(59, b"1")]}
    desk.on_replace(desk.client, _g("P0b", "P0", qty=b"9000000", price=b"1.08410", **gtc_buy), 9)
    (moved,) = _reports(desk)
    assert moved[150] == b"5"  # the same size at a new price: still within the limit
    desk.on_replace(desk.client, _g("P1b", "P1", qty=b"9001000", price=b"1.08400", **gtc_buy), 10)
    (more,) = _reports(desk)
    assert (more[35], more[58]) == (b"9", b"order would exceed the position limit (max 50000 steps)")
