"""A-book, hybrid and auto-hedge at the order desk, as a client and the risk desk see them: who
fills, at what price, what is journaled, and what the house ends up holding."""

import sqlite3
from fractions import Fraction

import msgspec
import pytest

from engine.config import parse_config
from engine.journal import Journal
from engine.metrics import Metrics
from fixserver.message import FixMessage
from fixserver.orders import HOUSE, OrderDesk
from risk import KillSwitches, PositionBook, PreTradeChecker
from risk.routing import LpPrice, Router
from tests.conftest import EXAMPLE_CONFIG

EURUSD = 0
MS = 1_000_000
BUDGET = 250 * MS  # the example config's routing.budget_ms default


class FakeLps:
    """The LPs' best prices and the orders sent to them (lp, cl_ord_id, side, qty, limit)."""

    def __init__(self) -> None:
        self.asks = {0: (108510, 10_000), 1: (108511, 10_000), 2: (108512, 10_000)}
        self.bids = {0: (108490, 10_000), 1: (108489, 10_000), 2: (108488, 10_000)}
        self.sent: list[tuple[int, str, int, int, int | None]] = []

    def send(self, lp, cl_ord_id, instr, side, qty, limit):
        self.sent.append((lp, cl_ord_id, side, qty, limit))
        return True

    def prices(self, instr, side):
        book = self.asks if side == 1 else self.bids
        return [LpPrice(lp, px, qty) for lp, (px, qty) in book.items()]


def _make_desk(path, lps, with_router=True):
    cfg = parse_config(EXAMPLE_CONFIG.read_text())
    quotes = {
        (0, EURUSD): (((108500, 20_000),), ((108502, 20_000),)),  # institutional (DEMO)
        (1, EURUSD): (((108480, 1000),), ((108520, 1000),)),  # retail (RETAIL1)
        (2, EURUSD): (((108488, 5000),), ((108512, 5000),)),  # bands (FUNDA): the best LP and the markup
    }
    positions = PositionBook(len(cfg.instruments), skew_step_qty=[i.skew_step_qty for i in cfg.instruments])
    router = Router(lps.send, lps.prices, [lp.name for lp in cfg.lps]) if with_router else None
    d = OrderDesk(
        cfg,
        quote_of=lambda t, i: quotes.get((t, i), ((), ())),
        journal=Journal(path),
        positions=positions,
        checker=PreTradeChecker(positions, KillSwitches()),
        router=router,
    )
    d.quotes = quotes
    d.clients = {c.sender_comp_id: c for c in cfg.clients}
    return d


@pytest.fixture
def lps():
    return FakeLps()


@pytest.fixture
def desk(tmp_path, lps):
    return _make_desk(tmp_path / "journal.sqlite", lps)


def _d(cl="c1", side=b"1", qty=b"1000000", ord_type=b"1", tif=b"3", price=None):
    fields = [(35, b"D"), (11, cl.encode()), (55, b"EUR/USD"), (54, side), (38, qty), (40, ord_type), (59, tif)]
    if price is not None:
        fields.append((44, price))
    return FixMessage(fields)


def _lp_report(cl_ord_id, status, qty=None, px=None, text=None):
    fields = [(35, b"8"), (11, cl_ord_id.encode()), (150, b"F" if qty else status), (39, status)]
    if qty:
        fields += [(32, qty), (31, px)]
    if text:
        fields.append((58, text))
    return FixMessage(fields)


def _reports(desk):
    return [dict(o.body) | {35: o.msg_type, "route": o.route} for o in desk.flush()]


def test_a_book_order_fills_at_the_best_lp_plus_the_tier_markup(desk, lps):
    funda = desk.clients["FUNDA"]  # tier "bands": 2 ticks of markup each side
    desk.on_new_order(funda, _d(), now_ns=0)
    assert _reports(desk) == []  # nothing to tell the client until the LP answers
    ((lp, child, side, qty, limit),) = lps.sent
    # LP1 has the lowest ask. The client saw 1.08512; EUR/USD's collar is 500 ticks, so it pays at
    # most 1.09012, and the LP, before the 2-tick markup, may fill at 1.09010 at worst.
    assert (lp, side, qty, limit) == (0, 1, 1000, 109010)
    desk.on_lp_execution(0, _lp_report(child, b"2", b"1000000", b"1.08510"), 5 * MS)
    (fill,) = _reports(desk)
    assert (fill[150], fill[39], fill[31], fill[32], fill[14], fill[151]) == (
        b"F", b"2", b"1.08512", b"1000000", b"1000000", b"0",
    )
    assert fill["route"] == "LP1"
    (journaled,) = list(desk.journal.fills())
    assert (journaled.route, journaled.price, journaled.client) == ("LP1", 108512, "FUNDA")
    assert desk.positions.client("FUNDA", EURUSD).qty == 1000
    assert desk.positions.exposure(EURUSD) == 0  # the LP took the other side, not the house


def test_a_last_look_reject_is_retried_at_the_next_lp(desk, lps):
    desk.on_new_order(desk.clients["FUNDA"], _d(), now_ns=0)
    desk.on_lp_execution(0, _lp_report(lps.sent[0][1], b"8", text=b"last look: rejected"), 3 * MS)
    assert _reports(desk) == []
    assert lps.sent[1][0] == 1
    desk.on_lp_execution(1, _lp_report(lps.sent[1][1], b"2", b"1000000", b"1.08511"), 6 * MS)
    (fill,) = _reports(desk)
    assert (fill[150], fill[31], fill["route"]) == (b"F", b"1.08513", "LP2")


def test_a_partial_fill_sends_the_remainder_on_and_the_client_sees_both_fills(desk, lps):
    desk.on_new_order(desk.clients["FUNDA"], _d(qty=b"3000000"), now_ns=0)
    first = lps.sent[0][1]
    desk.on_lp_execution(0, _lp_report(first, b"1", b"1000000", b"1.08510"), 1 * MS)
    desk.on_lp_execution(0, _lp_report(first, b"4", text=b"partial fill: remainder cancelled"), 1 * MS)
    assert lps.sent[1][3] == 2000
    desk.on_lp_execution(1, _lp_report(lps.sent[1][1], b"2", b"2000000", b"1.08511"), 2 * MS)
    a, b = _reports(desk)
    assert (a[39], a[14], a[151], b[39], b[14], b[151]) == (b"1", b"1000000", b"2000000", b"2", b"3000000", b"0")
    assert b[6] == b"1.085126667"  # VWAP of 1M at 1.08512 and 2M at 1.08513


def test_when_every_lp_refuses_the_client_gets_a_reject_naming_the_reasons(desk, lps):
    desk.on_new_order(desk.clients["FUNDA"], _d(), now_ns=0)
    for n in range(3):
        desk.on_lp_execution(n, _lp_report(lps.sent[n][1], b"8", text=b"last look: rejected"), (n + 1) * MS)
    (rej,) = _reports(desk)
    assert (rej[150], rej[39], rej[103]) == (b"8", b"8", b"99")
    assert rej[58].startswith(b"unfilled remainder cancelled: no LP left that can fill within the limit; LP1: last")
    assert desk.journal.order(rej[37].decode()).status == "8"


def test_the_budget_cancels_the_rest_and_a_late_lp_fill_becomes_the_houses(desk, lps):
    desk.on_new_order(desk.clients["FUNDA"], _d(qty=b"2000000"), now_ns=0)
    child = lps.sent[0][1]
    desk.on_lp_execution(0, _lp_report(child, b"1", b"1000000", b"1.08510"), 1 * MS)
    desk.poll(BUDGET)
    fill, cxl = _reports(desk)
    assert (cxl[150], cxl[39], cxl[14], cxl[151]) == (b"4", b"4", b"1000000", b"0")
    assert b"time budget spent" in cxl[58]
    desk.on_lp_execution(0, _lp_report(child, b"2", b"1000000", b"1.08510"), BUDGET + MS)
    assert _reports(desk) == []  # nobody is waiting for it
    assert desk.positions.exposure(EURUSD) == 1000  # we bought it from the LP: the house is long
    house = [f for f in desk.journal.fills() if f.client == HOUSE]
    assert [(f.qty, f.price, f.route) for f in house] == [(1000, 108510, "LP1")]


def test_fok_partly_filled_at_the_lps_is_rejected_and_the_house_keeps_the_part(desk, lps):
    desk.on_new_order(desk.clients["FUNDA"], _d(qty=b"2000000", tif=b"4"), now_ns=0)
    desk.on_lp_execution(0, _lp_report(lps.sent[0][1], b"1", b"1000000", b"1.08510"), 1 * MS)
    desk.on_lp_execution(0, _lp_report(lps.sent[0][1], b"4"), 1 * MS)
    for n in (1, 2):
        desk.on_lp_execution(n, _lp_report(lps.sent[n][1], b"8", text=b"no"), 2 * MS)
    (rej,) = _reports(desk)
    assert (rej[150], rej[39], rej[14]) == (b"8", b"8", b"0")
    assert rej[58].startswith(b"fill-or-kill: the LPs could not fill all of it")
    assert desk.positions.client("FUNDA", EURUSD).qty == 0
    assert desk.positions.exposure(EURUSD) == 1000


def test_fok_filled_in_full_across_lps_is_reported(desk, lps):
    desk.on_new_order(desk.clients["FUNDA"], _d(qty=b"2000000", tif=b"4"), now_ns=0)
    desk.on_lp_execution(0, _lp_report(lps.sent[0][1], b"1", b"1000000", b"1.08510"), 1 * MS)
    assert _reports(desk) == []
    desk.on_lp_execution(0, _lp_report(lps.sent[0][1], b"4"), 1 * MS)
    desk.on_lp_execution(1, _lp_report(lps.sent[1][1], b"2", b"1000000", b"1.08511"), 2 * MS)
    a, b = _reports(desk)
    assert (a[39], b[39], b[14]) == (b"1", b"2", b"2000000")


def test_hybrid_internalises_up_to_its_threshold_and_routes_the_rest(desk, lps):
    retail = desk.clients["RETAIL1"]  # hybrid_threshold = 1000 steps, retail tier: 1 bps markup
    desk.on_new_order(retail, _d(qty=b"3000000"), now_ns=0)
    (internal,) = _reports(desk)
    assert (internal[150], internal[39], internal[32], internal[31], internal["route"]) == (
        b"F", b"1", b"1000000", b"1.08520", "internal",
    )
    ((lp, child, _, qty, _),) = lps.sent
    assert (lp, qty) == (0, 2000)
    desk.on_lp_execution(0, _lp_report(child, b"2", b"2000000", b"1.08510"), 1 * MS)
    (routed,) = _reports(desk)
    # 1 bps of 1.08510 is 10.851 ticks, rounded up (in the client's disfavour) to 11.
    assert (routed[39], routed[31], routed[14], routed["route"]) == (b"2", b"1.08521", b"3000000", "LP1")
    assert desk.positions.exposure(EURUSD) == -1000  # only the internalised part is the house's


def test_hybrid_small_orders_stay_internal(desk, lps):
    desk.on_new_order(desk.clients["RETAIL1"], _d(qty=b"1000000"), now_ns=0)
    (fill,) = _reports(desk)
    assert (fill[39], fill["route"]) == (b"2", "internal") and lps.sent == []


def test_house_position_past_the_threshold_is_hedged_at_an_lp(desk, lps):
    demo = desk.clients["DEMO"]  # internalised; EUR/USD hedge_threshold = 10000 steps
    desk.on_new_order(demo, _d("a", qty=b"6000000"), now_ns=0)
    assert lps.sent == []  # house short 6000: inside the threshold
    desk.on_new_order(demo, _d("b", qty=b"6000000"), now_ns=1)
    ((lp, hedge_id, side, qty, limit),) = lps.sent
    assert (lp, side, qty, limit) == (0, 1, 12000, None)  # buy it all back at the best ask
    desk.on_lp_execution(0, _lp_report(hedge_id, b"2", b"12000000", b"1.08510"), 2 * MS)
    assert desk.positions.exposure(EURUSD) == 0
    assert [r["route"] for r in _reports(desk)] == ["internal", "internal"]  # the client sees only its fills
    hedge = desk.journal.order(hedge_id.split(".")[0])
    assert (hedge.client, hedge.status, hedge.cum_qty, hedge.text) == (HOUSE, "2", 12000, "auto-hedge")


def test_one_hedge_at_a_time_per_instrument(desk, lps):
    demo = desk.clients["DEMO"]
    for n in range(3):
        desk.on_new_order(demo, _d(f"o{n}", qty=b"6000000"), now_ns=n)
    assert len(lps.sent) == 1
    desk.on_lp_execution(0, _lp_report(lps.sent[0][1], b"8", text=b"rejected"), MS)
    desk.on_lp_execution(1, _lp_report(lps.sent[1][1], b"8", text=b"rejected"), MS)
    desk.on_lp_execution(2, _lp_report(lps.sent[2][1], b"8", text=b"rejected"), MS)
    assert desk.journal.order(lps.sent[0][1].split(".")[0]).status == "8"
    desk.on_new_order(demo, _d("o9", side=b"2", qty=b"1000000"), now_ns=2 * MS)
    assert lps.sent[-1][3] == 17000  # the next fill retries the hedge for the whole position


def test_an_a_book_limit_order_rests_and_is_routed_again_when_the_tier_price_reaches_it(desk, lps):
    funda = desk.clients["FUNDA"]
    desk.quotes[(2, EURUSD)] = (((108490, 1000),), ((108520, 1000),))
    lps.asks[0] = (108502, 10_000)  # only LP1 is inside the limit
    desk.on_new_order(funda, _d("L1", qty=b"1000000", ord_type=b"2", tif=b"1", price=b"1.08505"), now_ns=0)
    assert [(lp, limit) for lp, *_, limit in lps.sent] == [(0, 108503)]  # the limit less the 2-tick markup
    desk.on_lp_execution(0, _lp_report(lps.sent[0][1], b"8", text=b"off market"), MS)
    (new,) = _reports(desk)
    assert (new[150], new[39], new[151]) == (b"0", b"0", b"1000000")
    desk.on_quotes(2 * MS)  # not crossed yet
    desk.quotes[(2, EURUSD)] = (((108490, 1000),), ((108504, 1000),))
    desk.on_quotes(BUDGET)  # crossed, but the last attempt is too recent
    assert len(lps.sent) == 1
    desk.on_quotes(BUDGET + 2 * MS)
    assert len(lps.sent) == 2
    desk.on_lp_execution(0, _lp_report(lps.sent[1][1], b"2", b"1000000", b"1.08502"), BUDGET + 3 * MS)
    (fill,) = _reports(desk)
    assert (fill[150], fill[39], fill[31]) == (b"F", b"2", b"1.08504")
    desk.on_quotes(BUDGET + 4 * MS)
    assert len(lps.sent) == 2  # filled: no longer working


def test_a_cancel_while_the_order_is_at_an_lp_is_refused_for_now(desk, lps):
    funda = desk.clients["FUNDA"]
    lps.asks = {0: (108510, 10_000)}
    desk.on_new_order(funda, _d("L1", ord_type=b"2", tif=b"1", price=b"1.08515"), now_ns=0)
    desk.on_lp_execution(0, _lp_report(lps.sent[0][1], b"8"), MS)
    desk.flush()
    desk.quotes[(2, EURUSD)] = (((108490, 1000),), ((108510, 1000),))
    desk.on_quotes(BUDGET + 2 * MS)  # routed again: in flight
    desk.on_cancel(funda, FixMessage([(35, b"F"), (11, b"X1"), (41, b"L1")]), BUDGET + 3 * MS)
    (refused,) = _reports(desk)
    assert (refused[35], refused[102]) == (b"9", b"0")


def test_without_lp_order_sessions_a_book_orders_are_refused_with_the_reason(tmp_path, lps):
    desk = _make_desk(tmp_path / "j.sqlite", lps, with_router=False)
    desk.on_new_order(desk.clients["FUNDA"], _d(), now_ns=0)
    (rej,) = _reports(desk)
    assert (rej[150], rej[58]) == (b"8", b"orders for LPs cannot be routed: no LP order sessions")


def test_restart_recovers_the_house_position_and_closes_routes_that_were_in_flight(tmp_path, lps):
    path = tmp_path / "journal.sqlite"
    desk = _make_desk(path, lps)
    demo, funda = desk.clients["DEMO"], desk.clients["FUNDA"]
    desk.on_new_order(demo, _d("a", qty=b"6000000"), now_ns=0)
    desk.on_new_order(demo, _d("b", qty=b"6000000"), now_ns=1)  # hedge out
    desk.on_lp_execution(0, _lp_report(lps.sent[0][1], b"1", b"5000000", b"1.08510"), MS)  # partly hedged
    desk.on_new_order(funda, _d("f1"), now_ns=2 * MS)  # at an LP when we "crash"
    desk.flush()
    desk.journal.close()

    again = _make_desk(path, lps)
    again.recover(again.clients, now_ns=10 * MS)
    assert again.positions.exposure(EURUSD) == -12000 + 5000
    assert again.journal.order_by_cl_ord_id("FUNDA", "f1").status == "4"
    assert again.journal.open_orders() == []
    (closed,) = _reports(again)  # the client is told; the house's hedge has nobody to tell
    assert (closed[35], closed[11], closed[150], closed[39], closed[14], closed[151]) == (
        b"8", b"f1", b"4", b"4", b"0", b"0",
    )  # fmt: skip
    assert closed[58] == b"gateway restarted while at an LP"


def test_an_lp_fill_off_the_tick_grid_is_kept_and_the_client_is_charged_it_rounded_in_its_favour(desk, lps, caplog):
    funda = desk.clients["FUNDA"]  # tier "bands": 2 ticks of markup each side
    desk.on_new_order(funda, _d("B1"), now_ns=0)
    desk.on_lp_execution(0, _lp_report(lps.sent[0][1], b"2", b"1000000", b"1.085105"), MS)  # sub-pip
    desk.on_new_order(funda, _d("S1", side=b"2"), now_ns=2 * MS)
    desk.on_lp_execution(0, _lp_report(lps.sent[1][1], b"2", b"1000000", b"1.084895"), 3 * MS)
    buy, sell = _reports(desk)
    assert (buy[150], buy[39], buy[31], buy[14]) == (b"F", b"2", b"1.08512", b"1000000")  # 1.08510 + markup
    assert (sell[150], sell[39], sell[31], sell[14]) == (b"F", b"2", b"1.08488", b"1000000")  # 1.08490 - markup
    assert len(lps.sent) == 2  # nothing sent on to another LP: each LP fill counted once
    assert [(f.client, f.route, f.qty, f.price) for f in desk.journal.fills()] == [
        ("FUNDA", "LP1", 1000, 108512), ("FUNDA", "LP1", 1000, 108488),
    ]  # fmt: skip
    assert "1.085105 is off the grids" in caplog.text and "in the client's favour" in caplog.text


def _hedge_a_short_house(desk, lps) -> str:
    """DEMO buys 6000 steps twice, internalised: the house is short 12000, past its threshold,
    and hedges. Returns the hedge's ClOrdID at the LP."""
    demo = desk.clients["DEMO"]
    desk.on_new_order(demo, _d("a", qty=b"6000000"), now_ns=0)
    desk.on_new_order(demo, _d("b", qty=b"6000000"), now_ns=1)
    return lps.sent[0][1]


def test_an_off_grid_lp_fill_of_the_houses_own_is_recorded_against_the_house(desk, lps):
    hedge_id = _hedge_a_short_house(desk, lps)
    desk.on_lp_execution(0, _lp_report(hedge_id, b"2", b"12000000", b"1.085101"), 2 * MS)
    assert desk.positions.exposure(EURUSD) == 0
    hedge = desk.journal.order(hedge_id.split(".")[0])
    assert (hedge.status, hedge.cum_qty, hedge.cost) == ("2", 12000, 12000 * 108511)  # paid up, not down


def test_an_unreadable_lp_fill_stops_the_route_rather_than_sending_the_rest_elsewhere(desk, lps):
    desk.on_new_order(desk.clients["FUNDA"], _d(qty=b"3000000"), now_ns=0)
    desk.on_lp_execution(0, _lp_report(lps.sent[0][1], b"2", b"3000000", b"1.08.51"), MS)
    (rej,) = _reports(desk)
    assert (rej[150], rej[39]) == (b"8", b"8")
    assert b"LP1: unreadable fill" in rej[58]
    assert len(lps.sent) == 1


def test_lp_fills_of_a_fok_order_are_journaled_as_they_come_so_a_crash_before_the_end_keeps_them(tmp_path, lps):
    path = tmp_path / "journal.sqlite"
    desk = _make_desk(path, lps)
    desk.on_new_order(desk.clients["FUNDA"], _d("K1", qty=b"3000000", tif=b"4"), now_ns=0)
    desk.on_lp_execution(0, _lp_report(lps.sent[0][1], b"1", b"1000000", b"1.08510"), 1 * MS)
    assert _reports(desk) == []  # the client still waits for all or nothing
    desk.journal.close()  # the gateway stops before the route ends

    again = _make_desk(path, lps)
    again.recover(again.clients)
    assert again.positions.exposure(EURUSD) == 1000  # LP1 sold us 1000 steps: the house holds them
    assert again.positions.client("FUNDA", EURUSD).qty == 0
    ((house_fill),) = [f for f in again.journal.fills() if f.client == HOUSE]
    assert (house_fill.qty, house_fill.price, house_fill.route) == (1000, 108510, "LP1")


def test_a_completed_fok_passes_the_held_lp_fills_to_the_client_and_a_restart_agrees(tmp_path, lps):
    path = tmp_path / "journal.sqlite"
    desk = _make_desk(path, lps)
    desk.on_new_order(desk.clients["FUNDA"], _d("K1", qty=b"2000000", tif=b"4"), now_ns=0)
    desk.on_lp_execution(0, _lp_report(lps.sent[0][1], b"1", b"1000000", b"1.08510"), 1 * MS)
    desk.on_lp_execution(0, _lp_report(lps.sent[0][1], b"4"), 1 * MS)
    desk.on_lp_execution(1, _lp_report(lps.sent[1][1], b"2", b"1000000", b"1.08511"), 2 * MS)
    a, b = _reports(desk)
    assert (a[31], a["route"], b[31], b[39], b[14]) == (b"1.08512", "LP1", b"1.08513", b"2", b"2000000")
    assert desk.positions.exposure(EURUSD) == 0 and desk.positions.client("FUNDA", EURUSD).qty == 2000
    desk.journal.close()

    again = _make_desk(path, lps)
    again.recover(again.clients)
    assert again.positions.exposure(EURUSD) == 0 and again.positions.client("FUNDA", EURUSD).qty == 2000
    assert again.journal.open_orders() == []


def _fail_once(journal, method):
    real, armed = getattr(journal, method), [True]

    def failing(*args, **kwargs):
        if armed[0]:
            armed[0] = False
            raise sqlite3.OperationalError("disk I/O error")
        return real(*args, **kwargs)

    setattr(journal, method, failing)


def test_an_lp_fill_that_cannot_be_journaled_for_its_client_is_the_houses_and_the_order_is_closed(desk, lps):
    funda = desk.clients["FUNDA"]
    desk.on_new_order(funda, _d("F1", qty=b"3000000", ord_type=b"2", tif=b"1", price=b"1.08600"), now_ns=0)
    _fail_once(desk.journal, "fill")
    desk.on_lp_execution(0, _lp_report(lps.sent[0][1], b"1", b"1000000", b"1.08510"), 5 * MS)
    (closed,) = _reports(desk)  # the client knows where it stands: nothing of the order is working
    assert (closed[11], closed[150], closed[39], closed[14]) == (b"F1", b"8", b"8", b"0")
    assert closed[58] == b"order closed: an LP fill for it could not be recorded (LP1)"
    assert len(lps.sent) == 1  # the remainder went to no other LP
    assert [(f.client, f.qty, f.price, f.route) for f in desk.journal.fills()] == [(HOUSE, 1000, 108510, "LP1")]
    assert desk.positions.exposure(EURUSD) == 1000 and desk.positions.client("FUNDA", EURUSD).qty == 0
    assert desk.journal.open_orders() == []
    desk.on_lp_execution(0, _lp_report(lps.sent[0][1], b"2", b"2000000", b"1.08510"), 6 * MS)
    assert desk.positions.exposure(EURUSD) == 3000  # the LP's later fills of that order: the house's too


def test_when_the_end_of_a_route_cannot_be_journaled_the_client_still_gets_its_outcome(desk, lps):
    desk.on_new_order(desk.clients["FUNDA"], _d("I1", qty=b"2000000"), now_ns=0)
    desk.on_lp_execution(0, _lp_report(lps.sent[0][1], b"1", b"1000000", b"1.08510"), 1 * MS)
    _fail_once(desk.journal, "set_status")
    desk.poll(BUDGET)
    fill, cxl = _reports(desk)
    assert (fill[150], cxl[150], cxl[39], cxl[14], cxl[151]) == (b"F", b"4", b"4", b"1000000", b"0")
    assert desk.journal.order_by_cl_ord_id("FUNDA", "I1").status == "4"
    assert len(desk.router) == 0


@pytest.mark.parametrize("with_router", [True, False])
def test_a_hybrid_clients_small_resting_order_is_internalised_when_the_price_comes(tmp_path, lps, with_router):
    desk = _make_desk(tmp_path / "journal.sqlite", lps, with_router=with_router)
    retail = desk.clients["RETAIL1"]  # hybrid, threshold 1000 steps
    desk.on_new_order(retail, _d("R1", qty=b"500000", ord_type=b"2", tif=b"1", price=b"1.08510"), now_ns=0)
    (new,) = _reports(desk)
    assert (new[150], new[39]) == (b"0", b"0")
    desk.quotes[(1, EURUSD)] = (((108490, 1000),), ((108500, 1000),))  # the retail ask reaches the limit
    desk.on_quotes(BUDGET + MS)
    (fill,) = _reports(desk)
    assert (fill[150], fill[39], fill[31], fill["route"]) == (b"F", b"2", b"1.08500", "internal")
    assert lps.sent == []
    assert desk.positions.exposure(EURUSD) == -500  # the house took the other side


def test_an_a_book_market_order_pays_at_most_the_price_it_saw_plus_the_collar(desk, lps):
    funda = desk.clients["FUNDA"]  # the bands tier shows an ask of 1.08512; EUR/USD's collar: 500 ticks
    desk.on_new_order(funda, _d("M1"), now_ns=0)
    desk.on_new_order(funda, _d("M2", side=b"2"), now_ns=1)
    assert [limit for *_, limit in lps.sent] == [108512 + 500 - 2, 108488 - 500 + 2]  # before the markup
    desk.on_lp_execution(0, _lp_report(lps.sent[0][1], b"2", b"1000000", b"1.10510"), MS)  # 200 pips off
    (fill,) = _reports(desk)
    assert (fill[11], fill[31]) == (b"M1", b"1.09012")  # the house, not the client, pays past the bound


def test_an_a_book_market_order_without_a_tier_price_is_rejected(desk, lps):
    del desk.quotes[(2, EURUSD)]
    desk.on_new_order(desk.clients["FUNDA"], _d("M1"), now_ns=0)
    (rej,) = _reports(desk)
    assert (rej[150], rej[58]) == (b"8", b"no price available: a market order needs a tier price")
    assert lps.sent == []


def test_without_a_collar_an_a_book_market_order_goes_to_the_lps_without_a_limit(tmp_path, lps):
    desk = _make_desk(tmp_path / "j.sqlite", lps)
    instruments = list(desk.cfg.instruments)
    instruments[EURUSD] = msgspec.structs.replace(instruments[EURUSD], price_collar_ticks=0)
    desk.cfg = msgspec.structs.replace(desk.cfg, instruments=instruments)
    desk.on_new_order(desk.clients["FUNDA"], _d("M1"), now_ns=0)
    assert lps.sent[0][4] is None


def test_order_status_while_the_order_is_at_an_lp_shows_what_is_still_to_fill(desk, lps):
    desk.on_new_order(desk.clients["FUNDA"], _d("H1", qty=b"2000000"), now_ns=0)
    desk.on_lp_execution(0, _lp_report(lps.sent[0][1], b"1", b"1000000", b"1.08510"), MS)
    desk.on_status(desk.clients["FUNDA"], FixMessage([(35, b"H"), (11, b"H1")]), 2 * MS)
    _, status = _reports(desk)
    assert (status[150], status[39], status[14], status[151]) == (b"I", b"1", b"1000000", b"1000000")


def test_a_batch_lost_while_a_new_order_ends_its_route_leaves_only_the_orders_reject(desk, lps):
    # No LP can take the order, so its route ends inside the new-order event, as an event of its
    # own; closing it fails in a way that makes SQLite roll back the whole batch. The order's
    # journal row is gone with it, so the client must hear nothing of that order's id.
    lps.asks, lps.bids = {}, {}
    real = desk.journal.set_status

    def lost(*args, **kwargs):
        desk.journal.set_status = real
        desk.journal._db.execute("ROLLBACK")  # what SQLite itself does on some disk-full and I/O errors
        raise sqlite3.OperationalError("disk I/O error")

    desk.journal.set_status = lost
    desk.on_new_order(desk.clients["FUNDA"], _d("N1"), now_ns=0)
    (rej,) = _reports(desk)
    assert (rej[11], rej[150], rej[39]) == (b"N1", b"8", b"8")
    assert rej[58] == b"order not accepted: it could not be recorded, nothing was executed; please retry"
    assert desk.journal.order(rej[37].decode()).status == "8"
    assert desk.checker.kill.fault  # a lost batch halts trading for an operator
    assert desk.positions.exposure(EURUSD) == 0 and desk.positions.client("FUNDA", EURUSD).qty == 0


# --- LP fills that are not a whole number of steps (EUR/USD's quantity step is 1000) -------------


def _odd_lots(desk):
    return [(o.side, o.qty, o.price, o.route, o.lp_fill) for o in desk.journal.odd_lots()]


def test_an_lp_fill_below_one_step_is_the_houses_and_that_step_is_not_sent_again(desk, lps, caplog):
    desk.on_new_order(desk.clients["FUNDA"], _d("B1", qty=b"3000"), now_ns=0)
    child = lps.sent[0][1]
    desk.on_lp_execution(0, _lp_report(child, b"1", b"500", b"1.08510"), MS)
    assert _reports(desk) == []  # nothing of it is the client's
    desk.on_lp_execution(0, _lp_report(child, b"4", text=b"IOC rest cancelled"), 2 * MS)
    assert [(lp, qty) for lp, _, _, qty, _ in lps.sent] == [(0, 3), (1, 2)]  # 2500 left, so 2 steps
    desk.on_lp_execution(1, _lp_report(lps.sent[1][1], b"2", b"2000", b"1.08511"), 3 * MS)
    fill, cxl = _reports(desk)
    assert (fill[150], fill[32], fill[31], fill["route"]) == (b"F", b"2000", b"1.08513", "LP2")
    assert (cxl[150], cxl[39], cxl[14], cxl[151]) == (b"4", b"4", b"2000", b"0")
    assert b"LP1: filled a part smaller than the quantity step" in cxl[58]
    # LP1 sold us 500: the house holds them, journaled with the LP's own words for it.
    assert _odd_lots(desk) == [(1, Fraction(1, 2), 108510, "LP1", "32=500 31=1.08510")]
    assert desk.positions.odd_lots[EURUSD] == Fraction(1, 2)
    assert desk.positions.client("FUNDA", EURUSD).qty == 2 and desk.positions.exposure(EURUSD) == 0
    assert desk.odd_lot_fills == 1
    metrics = Metrics()
    metrics.attach(desk=desk)
    assert metrics.registry.get_sample_value("lagg_lp_odd_lot_fills_total") == 1
    assert "LP LP1 filled O1.1: 32=500 31=1.08510 is not a whole number of quantity steps" in caplog.text


def test_a_partial_lp_fill_with_a_part_of_a_step_gives_the_client_the_whole_steps_only(desk, lps):
    desk.on_new_order(desk.clients["FUNDA"], _d("B1", qty=b"3000"), now_ns=0)
    child = lps.sent[0][1]
    desk.on_lp_execution(0, _lp_report(child, b"1", b"2500", b"1.08510"), MS)
    desk.on_lp_execution(0, _lp_report(child, b"4", text=b"IOC rest cancelled"), 2 * MS)
    fill, cxl = _reports(desk)
    assert (fill[32], fill[31], fill[14], fill[151]) == (b"2000", b"1.08512", b"2000", b"1000")
    assert (cxl[150], cxl[14], cxl[151]) == (b"4", b"2000", b"0")
    assert b"LP1: filled a part smaller than the quantity step" in cxl[58]
    assert len(lps.sent) == 1  # the LPs have filled 2500 of 3000: no whole step is left to send
    assert _odd_lots(desk) == [(1, Fraction(1, 2), 108510, "LP1", "32=2500 31=1.08510")]


def test_parts_of_a_step_that_add_up_to_one_take_one_step_off_the_route(desk, lps):
    desk.on_new_order(desk.clients["FUNDA"], _d("S1", side=b"2", qty=b"3000"), now_ns=0)
    child = lps.sent[0][1]
    desk.on_lp_execution(0, _lp_report(child, b"1", b"500", b"1.08490"), MS)
    desk.on_lp_execution(0, _lp_report(child, b"1", b"500", b"1.08491"), MS)
    desk.on_lp_execution(0, _lp_report(child, b"4"), 2 * MS)
    assert [qty for *_, qty, _ in lps.sent] == [3, 2]
    assert desk.positions.odd_lots[EURUSD] == -1  # we sold the LP 1000 in two halves
    assert [(side, qty) for side, qty, *_ in _odd_lots(desk)] == [(-1, Fraction(1, 2))] * 2


def test_a_restart_recovers_the_houses_odd_lots(tmp_path, lps):
    path = tmp_path / "journal.sqlite"
    desk = _make_desk(path, lps)
    desk.on_new_order(desk.clients["FUNDA"], _d("B1", qty=b"3000"), now_ns=0)
    desk.on_lp_execution(0, _lp_report(lps.sent[0][1], b"1", b"2250", b"1.08510"), MS)
    desk.flush()
    desk.journal.close()

    again = _make_desk(path, lps)
    again.recover(again.clients, now_ns=10 * MS)
    assert again.positions.odd_lots[EURUSD] == Fraction(1, 4)
    assert again.positions.client("FUNDA", EURUSD).qty == 2


def test_an_odd_lot_that_cannot_be_journaled_is_held_and_trading_halts(desk, lps):
    desk.on_new_order(desk.clients["FUNDA"], _d("B1", qty=b"3000"), now_ns=0)
    _fail_once(desk.journal, "odd_lot")
    desk.on_lp_execution(0, _lp_report(lps.sent[0][1], b"1", b"500", b"1.08510"), MS)
    assert desk.positions.odd_lots[EURUSD] == Fraction(1, 2)
    assert desk.checker.kill.fault
    assert desk.odd_lot_fills == 1


def test_a_hedge_filled_short_of_a_whole_step_is_not_sent_again(desk, lps):
    hedge_id = _hedge_a_short_house(desk, lps)
    desk.on_lp_execution(0, _lp_report(hedge_id, b"1", b"11999500", b"1.08510"), 2 * MS)
    desk.on_lp_execution(0, _lp_report(hedge_id, b"4"), 2 * MS)
    assert len(lps.sent) == 1
    assert desk.positions.exposure(EURUSD) == -1 and desk.positions.odd_lots[EURUSD] == Fraction(1, 2)
    assert desk.journal.order(hedge_id.split(".")[0]).status == "4"


def test_a_report_from_another_lp_about_our_order_is_no_fill_of_ours(desk, lps):
    desk.on_new_order(desk.clients["FUNDA"], _d("B1", qty=b"3000"), now_ns=0)
    desk.on_lp_execution(1, _lp_report(lps.sent[0][1], b"1", b"500", b"1.08510"), MS)  # it is at LP1
    assert list(desk.journal.odd_lots()) == []
    assert desk.positions.odd_lots[EURUSD] == 0 and desk.odd_lot_fills == 0


def test_a_fok_whose_lps_filled_a_part_of_a_step_is_rejected_and_the_house_keeps_all_they_filled(desk, lps):
    desk.on_new_order(desk.clients["FUNDA"], _d("K1", qty=b"2000", tif=b"4"), now_ns=0)
    desk.on_lp_execution(0, _lp_report(lps.sent[0][1], b"1", b"1500", b"1.08510"), MS)
    desk.on_lp_execution(0, _lp_report(lps.sent[0][1], b"4"), MS)
    (rej,) = _reports(desk)
    assert (rej[150], rej[39], rej[14]) == (b"8", b"8", b"0")
    assert len(lps.sent) == 1  # 1500 of 2000 filled: no whole step left for another LP
    assert desk.positions.exposure(EURUSD) == 1 and desk.positions.odd_lots[EURUSD] == Fraction(1, 2)
    assert desk.positions.client("FUNDA", EURUSD).qty == 0


@pytest.mark.parametrize("halt", ["all", "instrument", "fault"])
def test_a_halt_holds_the_auto_hedge(tmp_path, halt):
    lps = FakeLps()
    desk = _make_desk(tmp_path / "journal.sqlite", lps)
    desk.on_new_order(desk.clients["FUNDA"], _d("A1", qty=b"12000000"), now_ns=0)
    child = lps.sent[0][1]
    desk.poll(BUDGET + 1)  # the route's budget runs out: its late fill will be the house's
    desk.flush()
    kill = desk.checker.kill
    if halt == "all":
        kill.all = True
    elif halt == "instrument":
        kill.instruments = {EURUSD}
    else:
        kill.fault = "journal batch lost"
    sent = len(lps.sent)
    desk.on_lp_execution(0, _lp_report(child, b"2", b"12000000", b"1.08510"), BUDGET + 2 * MS)
    assert desk.positions.exposure(EURUSD) != 0  # past the hedge threshold ...
    assert lps.sent[sent:] == []  # ... and no hedge goes out while halted


@pytest.mark.parametrize("halt", ["all", "client", "instrument", "fault"])
def test_a_halt_set_while_a_route_is_out_stops_the_remainder_going_to_the_next_lp(desk, lps, halt):
    desk.on_new_order(desk.clients["FUNDA"], _d("A1", qty=b"3000000"), now_ns=0)
    first = lps.sent[0][1]
    kill = desk.checker.kill
    if halt == "all":
        kill.all = True
    elif halt == "client":
        kill.clients = {"FUNDA"}
    elif halt == "instrument":
        kill.instruments = {EURUSD}
    else:
        kill.fault = "journal batch lost"
    # The order already at LP1 fills in part: that fill is the client's, as usual ...
    desk.on_lp_execution(0, _lp_report(first, b"1", b"1000000", b"1.08510"), 1 * MS)
    desk.on_lp_execution(0, _lp_report(first, b"4", text=b"partial fill: remainder cancelled"), 1 * MS)
    assert len(lps.sent) == 1  # ... but the remainder goes to no other LP
    fill, done = _reports(desk)
    assert (fill[150], fill[32], fill[31]) == (b"F", b"1000000", b"1.08512")
    assert (done[150], done[39], done[14], done[151]) == (b"4", b"4", b"1000000", b"0")
    assert b"trading halted" in done[58]
    assert desk.positions.client("FUNDA", EURUSD).qty == 1000


def test_another_clients_halt_does_not_stop_a_route(desk, lps):
    desk.on_new_order(desk.clients["FUNDA"], _d("A1", qty=b"3000000"), now_ns=0)
    desk.checker.kill.clients = {"DEMO"}
    desk.on_lp_execution(0, _lp_report(lps.sent[0][1], b"8", text=b"last look: rejected"), 1 * MS)
    assert [lp for lp, *_ in lps.sent] == [0, 1]


def test_an_sre_reads_each_lps_fill_ratio_and_response_time_off_the_metrics(desk, lps):
    desk.on_new_order(desk.clients["FUNDA"], _d("A1"), now_ns=0)
    desk.on_lp_execution(0, _lp_report(lps.sent[0][1], b"8", text=b"last look: rejected"), 30 * MS)
    desk.on_lp_execution(1, _lp_report(lps.sent[1][1], b"2", b"1000000", b"1.08511"), 32 * MS)
    metrics = Metrics()
    metrics.attach(desk=desk)
    sample = metrics.registry.get_sample_value
    assert sample("lagg_lp_order_outcomes_total", {"lp": "LP1", "outcome": "rejected"}) == 1
    assert sample("lagg_lp_order_outcomes_total", {"lp": "LP1", "outcome": "filled"}) == 0
    assert sample("lagg_lp_order_outcomes_total", {"lp": "LP2", "outcome": "filled"}) == 1
    # LP1 took 30 ms to answer, LP2 2 ms (sent after LP1's reject).
    assert sample("lagg_lp_order_response_seconds_bucket", {"lp": "LP1", "le": "0.025"}) == 0
    assert sample("lagg_lp_order_response_seconds_bucket", {"lp": "LP1", "le": "0.05"}) == 1
    assert sample("lagg_lp_order_response_seconds_bucket", {"lp": "LP2", "le": "0.0025"}) == 1
    assert sample("lagg_lp_order_response_seconds_bucket", {"lp": "LP2", "le": "+Inf"}) == 1
    assert sample("lagg_lp_order_response_seconds_count", {"lp": "LP2"}) == 1
    assert sample("lagg_lp_order_response_seconds_sum", {"lp": "LP1"}) == pytest.approx(0.030)
    assert sample("lagg_lp_order_outcomes_total", {"lp": "LP3", "outcome": "filled"}) == 0


def test_odd_lots_that_add_up_to_a_step_past_the_threshold_are_hedged(desk, lps):
    desk.on_new_order(desk.clients["DEMO"], _d("a", qty=b"10000000"), now_ns=0)  # house short 10000: at the threshold
    assert lps.sent == []
    for n in range(2):  # FUNDA sells 2 steps at the LPs twice; each time LP1 fills 1500: half a step is the house's
        desk.on_new_order(desk.clients["FUNDA"], _d(f"s{n}", side=b"2", qty=b"2000"), now_ns=(n + 1) * MS)
        child = lps.sent[-1][1]
        desk.on_lp_execution(0, _lp_report(child, b"1", b"1500", b"1.08490"), (n + 1) * MS)
        desk.on_lp_execution(0, _lp_report(child, b"4", text=b"IOC rest cancelled"), (n + 1) * MS)
    assert desk.positions.odd_lots[EURUSD] == -1
    assert len(lps.sent) == 3  # the two client orders, then a hedge
    lp, hedge_id, side, qty, _ = lps.sent[-1]
    assert (side, qty) == (1, 10001)  # the house buys back its 10000 steps and the step the odd lots make
    desk.on_lp_execution(lp, _lp_report(hedge_id, b"2", b"10001000", b"1.08510"), 5 * MS)
    assert desk.positions.exposure(EURUSD) + desk.positions.odd_lots[EURUSD] == 0
