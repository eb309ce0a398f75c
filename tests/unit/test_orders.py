"""The order desk as a client sees it: every D/F/H gets the right execution report, every reject
its reason, and nothing is handed out before the journal has it."""

import sqlite3

import pytest

from engine.config import parse_config
from engine.journal import BatchLost, Journal
from fixserver.message import FixMessage
from fixserver.orders import OrderDesk
from risk import KillSwitches, PositionBook, PreTradeChecker
from tests.conftest import EXAMPLE_CONFIG

EURUSD, WTI = 0, 4


@pytest.fixture
def desk(tmp_path):
    cfg = parse_config(EXAMPLE_CONFIG.read_text())
    quotes = {
        (0, EURUSD): (((108500, 1000), (108499, 2000)), ((108502, 1000), (108503, 3000))),
        (0, WTI): (((-3765, 10),), ((-3763, 10),)),
    }
    positions = PositionBook(len(cfg.instruments), skew_step_qty=[i.skew_step_qty for i in cfg.instruments])
    skews = []
    d = OrderDesk(
        cfg,
        quote_of=lambda t, i: quotes.get((t, i), ((), ())),
        journal=Journal(tmp_path / "journal.sqlite"),
        positions=positions,
        checker=PreTradeChecker(positions, KillSwitches()),
        on_exposure=lambda instr, skew: skews.append((instr, skew)),
    )
    d.quotes, d.skews, d.client = quotes, skews, cfg.clients[0]  # DEMO, institutional, internalise
    return d


def _d(cl="c1", sym=b"EUR/USD", side=b"1", qty=b"1500000", ord_type=b"1", tif=b"3", price=None, **extra):
    fields = [(35, b"D"), (11, cl.encode()), (55, sym), (54, side), (38, qty), (40, ord_type), (59, tif)]
    if price is not None:
        fields.append((44, price))
    fields += [(t, v) for t, v in extra.items()]
    return FixMessage(fields)


def _reports(desk):
    return [dict(o.body) | {35: o.msg_type} for o in desk.flush()]


def test_market_ioc_buy_sweeps_two_levels_with_correct_report_fields(desk):
    desk.on_new_order(desk.client, _d(qty=b"1500000"), now_ns=1)
    first, second = _reports(desk)
    assert (first[150], first[39], first[32], first[31], first[14], first[151]) == (
        b"F", b"1", b"1000000", b"1.08502", b"1000000", b"500000",
    )
    assert (second[150], second[39], second[32], second[31], second[14], second[151]) == (
        b"F", b"2", b"500000", b"1.08503", b"1500000", b"0",
    )
    assert second[6] == b"1.085023333"  # exact VWAP with four extra decimals
    assert first[37] == second[37] and first[17] != second[17]
    assert desk.positions.client("DEMO", EURUSD).qty == 1500
    assert desk.skews == [(EURUSD, -1)]  # house short 1500 steps / 1000 per tick


def test_ioc_remainder_is_cancelled_explicitly(desk):
    desk.on_new_order(desk.client, _d(qty=b"5000000"), now_ns=1)
    reports = _reports(desk)
    assert [r[150] for r in reports] == [b"F", b"F", b"4"]
    assert (reports[-1][39], reports[-1][14], reports[-1][151]) == (b"4", b"4000000", b"0")


def test_fok_that_cannot_fill_is_rejected_whole(desk):
    desk.on_new_order(desk.client, _d(qty=b"5000000", tif=b"4"), now_ns=1)
    (r,) = _reports(desk)
    assert (r[150], r[39], r[58]) == (b"8", b"8", b"fill-or-kill: not enough liquidity at the limit")


def test_day_limit_rests_then_fills_when_the_price_comes_and_can_be_cancelled(desk):
    desk.on_new_order(desk.client, _d("L1", side=b"2", qty=b"2000000", ord_type=b"2", tif=b"0", price=b"1.08510"), 1)
    (new,) = _reports(desk)
    assert (new[150], new[39], new[151]) == (b"0", b"0", b"2000000")
    desk.quotes[(0, EURUSD)] = (((108511, 1000),), ((108515, 1000),))
    desk.on_quotes(now_ns=2)
    (fill,) = _reports(desk)
    assert (fill[150], fill[39], fill[31], fill[151]) == (b"F", b"1", b"1.08511", b"1000000")
    desk.on_cancel(desk.client, FixMessage([(35, b"F"), (11, b"X1"), (41, b"L1"), (55, b"EUR/USD"), (54, b"2")]), 3)
    (cxl,) = _reports(desk)
    assert (cxl[35], cxl[150], cxl[39], cxl[41], cxl[11], cxl[14]) == (b"8", b"4", b"4", b"L1", b"X1", b"1000000")
    desk.on_cancel(desk.client, FixMessage([(35, b"F"), (11, b"X2"), (41, b"L1")]), 4)
    (too_late,) = _reports(desk)
    assert (too_late[35], too_late[102], too_late[58]) == (b"9", b"0", b"order is no longer working")


def test_cancel_of_unknown_order_gets_order_cancel_reject(desk):
    desk.on_cancel(desk.client, FixMessage([(35, b"F"), (11, b"X1"), (41, b"nope")]), 1)
    (r,) = _reports(desk)
    assert (r[35], r[102], r[434], r[58]) == (b"9", b"1", b"1", b"unknown order")


def test_order_status_request_reports_the_current_state(desk):
    desk.on_new_order(desk.client, _d("s1", qty=b"1000000"), now_ns=1)
    desk.flush()
    desk.on_status(desk.client, FixMessage([(35, b"H"), (11, b"s1"), (55, b"EUR/USD"), (54, b"1")]), 2)
    (r,) = _reports(desk)
    assert (r[150], r[39], r[14], r[151]) == (b"I", b"2", b"1000000", b"0")


@pytest.mark.parametrize(
    ("message", "code", "text"),
    [
        (_d(sym=b"XBT/USD"), b"1", "unknown symbol XBT/USD"),
        (FixMessage([(35, b"D"), (11, b"c1"), (54, b"1"), (38, b"1000"), (40, b"1")]), b"1", "Symbol (55) is required"),
        (_d(qty=b"1500"), b"13", "quantity must be a positive multiple of 1000"),
        (_d(qty=b"0"), b"13", "quantity must be positive"),
        (_d(ord_type=b"2", price=b"1.085025"), b"99", "price must be a multiple of the tick size 0.00001"),
        (_d(ord_type=b"2", price=None), b"99", "a limit order needs a price (44)"),
        (_d(ord_type=b"P"), b"99", "order type (40) must be 1 (market), 2 (limit) or D (previously quoted)"),
        (_d(qty=b"20000000"), b"13", "order quantity exceeds the limit (max 10000 steps)"),
        (_d(ord_type=b"D"), b"99", "QuoteID (117) is required for previously-quoted orders"),
        (_d(ord_type=b"2", price=b"-99999999999999999999"), b"99", "price (44) is out of range"),
        (_d(ord_type=b"2", price=b"92233720368547.75808"), b"99", "price (44) is out of range"),  # 2**63 ticks
        (_d(qty=b"9223372036854775808000"), b"13", "quantity (38) is out of range"),
    ],
)
def test_each_reject_path_returns_its_reason(desk, message, code, text):
    desk.on_new_order(desk.client, message, now_ns=1)
    (r,) = _reports(desk)
    assert (r[150], r[39], r[103], r[58]) == (b"8", b"8", code, text.encode())


def test_duplicate_cl_ord_id_is_rejected(desk):
    desk.on_new_order(desk.client, _d("dup", qty=b"1000000"), now_ns=1)
    desk.flush()
    desk.on_new_order(desk.client, _d("dup", qty=b"1000000"), now_ns=2)
    (r,) = _reports(desk)
    assert (r[39], r[103], r[58]) == (b"8", b"6", b"duplicate ClOrdID")


@pytest.mark.parametrize("resend_flag", [(43, b"Y"), (97, b"Y")])  # PossDupFlag, PossResend
def test_a_resent_order_gets_its_state_not_a_duplicate_reject(desk, resend_flag):
    desk.on_new_order(desk.client, _d("r1", qty=b"1000000", ord_type=b"2", tif=b"1", price=b"1.08000"), now_ns=1)
    (new,) = _reports(desk)
    assert (new[150], new[39]) == (b"0", b"0")  # it rests
    again = FixMessage(_d("r1", qty=b"1000000", ord_type=b"2", tif=b"1", price=b"1.08000").fields + [resend_flag])
    desk.on_new_order(desk.client, again, now_ns=2)
    (r,) = _reports(desk)
    assert (r[150], r[39], r[37], r[151]) == (b"I", b"0", new[37], b"1000000")  # its status, still working


def test_negative_price_market_fills_on_wti(desk):
    desk.on_new_order(desk.client, _d(sym=b"WTI", side=b"2", qty=b"5"), now_ns=1)
    (r,) = _reports(desk)
    assert (r[39], r[31], r[6]) == (b"2", b"-37.65", b"-37.650000")


def test_reports_are_handed_out_only_after_the_journal_commit(desk, tmp_path):
    desk.on_new_order(desk.client, _d("j1", qty=b"1000000"), now_ns=1)
    other = Journal(tmp_path / "journal.sqlite")  # a second reader sees committed data only
    assert not other.has_cl_ord_id("DEMO", "j1")
    reports = desk.flush()
    assert reports and other.has_cl_ord_id("DEMO", "j1")


def test_restart_recovers_positions_and_resting_orders(desk, tmp_path):
    desk.on_new_order(desk.client, _d("f1", qty=b"1000000"), now_ns=1)
    desk.on_new_order(desk.client, _d("r1", side=b"2", qty=b"1000000", ord_type=b"2", tif=b"1", price=b"1.09"), 2)
    desk.flush()
    cfg = desk.cfg
    positions = PositionBook(len(cfg.instruments))
    again = OrderDesk(
        cfg, desk._quote_of, Journal(tmp_path / "journal.sqlite"), positions, PreTradeChecker(positions)
    )
    assert again.recover({c.sender_comp_id: c for c in cfg.clients}) == 1
    assert positions.client("DEMO", EURUSD).qty == 1000
    desk.quotes[(0, EURUSD)] = (((109000, 5000),), ((109005, 5000),))
    again.on_quotes(now_ns=3)
    (fill,) = [dict(o.body) for o in again.flush()]
    assert (fill[11], fill[39], fill[31]) == (b"r1", b"2", b"1.09000")


def _fail_once(journal, method, on_call=1):
    """The journal's ``method`` raises a disk error on its ``on_call``-th call."""
    real, calls = getattr(journal, method), [0]

    def failing(*args, **kwargs):
        calls[0] += 1
        if calls[0] == on_call:
            raise sqlite3.OperationalError("disk I/O error")
        return real(*args, **kwargs)

    setattr(journal, method, failing)


def test_a_sweep_whose_second_fill_cannot_be_journaled_is_rejected_whole(desk):
    _fail_once(desk.journal, "fill", on_call=2)
    desk.on_new_order(desk.client, _d("S1", qty=b"1500000"), now_ns=1)  # 1000 @ 1.08502 + 500 @ 1.08503
    (rej,) = _reports(desk)  # not the first fill without the second, and not nothing
    assert (rej[150], rej[39], rej[14]) == (b"8", b"8", b"0")
    assert rej[58] == b"order not accepted: it could not be recorded, nothing was executed; please retry"
    assert list(desk.journal.fills()) == []
    assert desk.positions.client("DEMO", EURUSD).qty == 0 and desk.positions.exposure(EURUSD) == 0
    assert desk.journal.order_by_cl_ord_id("DEMO", "S1").status == "8"
    desk.on_new_order(desk.client, _d("S2", qty=b"1500000"), now_ns=2)  # the journal is back
    assert [r[150] for r in _reports(desk)] == [b"F", b"F"]


def test_a_resting_order_whose_fill_cannot_be_journaled_keeps_resting(desk):
    desk.on_new_order(desk.client, _d("L1", side=b"2", qty=b"1000000", ord_type=b"2", tif=b"1", price=b"1.08510"), 1)
    desk.flush()
    _fail_once(desk.journal, "fill")
    desk.quotes[(0, EURUSD)] = (((108511, 1000),), ((108515, 1000),))
    desk.on_quotes(now_ns=2)
    assert _reports(desk) == [] and desk.positions.client("DEMO", EURUSD).qty == 0
    desk.on_quotes(now_ns=3)
    (fill,) = _reports(desk)
    assert (fill[11], fill[150], fill[39]) == (b"L1", b"F", b"2")


def test_a_cancel_that_cannot_be_journaled_is_refused_and_the_order_keeps_working(desk):
    desk.on_new_order(desk.client, _d("L1", side=b"2", qty=b"1000000", ord_type=b"2", tif=b"1", price=b"1.08510"), 1)
    (new,) = _reports(desk)
    _fail_once(desk.journal, "set_status")
    desk.on_cancel(desk.client, FixMessage([(35, b"F"), (11, b"X1"), (41, b"L1")]), 2)
    (refused,) = _reports(desk)
    assert (refused[35], refused[37], refused[39], refused[102]) == (b"9", new[37], b"0", b"99")
    assert desk.journal.order_by_cl_ord_id("DEMO", "L1").status == "0"
    desk.on_cancel(desk.client, FixMessage([(35, b"F"), (11, b"X2"), (41, b"L1")]), 3)
    (cancelled,) = _reports(desk)
    assert (cancelled[35], cancelled[150]) == (b"8", b"4")


def test_when_the_group_commit_fails_no_report_goes_out_and_trading_halts(desk):
    desk.on_new_order(desk.client, _d("c1", qty=b"1000000"), now_ns=1)

    def commit():
        raise BatchLost("the journal commit failed: disk I/O error")

    desk.journal.commit = commit
    assert desk.flush() == []  # a fill we have no record of is never reported
    assert desk.checker.kill.fault


def test_order_status_of_an_order_rejected_for_its_symbol_is_answered_with_the_reject(desk):
    desk.on_new_order(desk.client, _d("u1", sym=b"XBT/USD"), now_ns=1)
    missing = FixMessage([(35, b"D"), (11, b"u2"), (54, b"1"), (38, b"1000"), (40, b"1"), (59, b"3")])
    desk.on_new_order(desk.client, missing, now_ns=2)
    rej1, rej2 = _reports(desk)
    desk.on_status(desk.client, FixMessage([(35, b"H"), (11, b"u1"), (55, b"XBT/USD"), (54, b"1")]), 3)
    desk.on_status(desk.client, FixMessage([(35, b"H"), (11, b"u2")]), 4)
    st1, st2 = _reports(desk)
    assert (st1[37], st1[150], st1[39], st1[55], st1[14], st1[58]) == (
        rej1[37], b"I", b"8", b"XBT/USD", b"0", b"unknown symbol XBT/USD",
    )  # fmt: skip
    assert (st2[37], st2[150], st2[39], st2[55]) == (rej2[37], b"I", b"8", b"[N/A]")


def _resting_buy(cl, qty=b"10000000", price=b"1.08400"):
    return _d(cl, qty=qty, ord_type=b"2", tif=b"1", price=price)


def test_the_position_limit_counts_resting_orders(desk):
    for n in range(6):  # DEMO: max_position 50000 steps
        desk.on_new_order(desk.client, _resting_buy(f"P{n}"), now_ns=n)
    reports = _reports(desk)
    assert [r[150] for r in reports] == [b"0"] * 5 + [b"8"]
    assert (reports[-1][103], reports[-1][58]) == (b"3", b"order would exceed the position limit (max 50000 steps)")
    desk.quotes[(0, EURUSD)] = (((108300, 100_000),), ((108390, 100_000),))
    desk.on_quotes(now_ns=10)
    assert len(_reports(desk)) == 5
    assert desk.positions.client("DEMO", EURUSD).qty == 50000


def test_a_client_past_its_position_limit_may_still_reduce_it(desk):
    desk.positions.on_client_fill("DEMO", EURUSD, 1, 60000, 108500, internalised=True)  # the limit was lowered, say
    desk.on_new_order(desk.client, _d("more", qty=b"1000000"), now_ns=1)
    desk.on_new_order(desk.client, _d("less", side=b"2", qty=b"1000000"), now_ns=2)
    more, less = _reports(desk)
    assert (more[150], more[103]) == (b"8", b"3")
    assert (less[150], less[39]) == (b"F", b"2")


def test_a_resting_order_does_not_fill_while_trading_is_halted(desk):
    desk.on_new_order(desk.client, _d("K1", side=b"2", qty=b"1000000", ord_type=b"2", tif=b"1", price=b"1.08510"), 1)
    desk.flush()
    desk.checker.kill.all = True
    desk.quotes[(0, EURUSD)] = (((108600, 100_000),), ((108610, 100_000),))
    desk.on_quotes(now_ns=2)
    assert _reports(desk) == []
    desk.checker.kill.all = False
    desk.on_quotes(now_ns=3)
    (fill,) = _reports(desk)
    assert (fill[11], fill[150], fill[31]) == (b"K1", b"F", b"1.08600")


def test_a_resting_order_whose_fill_would_pass_the_position_limit_is_cancelled_with_the_reason(desk):
    desk.on_new_order(desk.client, _resting_buy("R1"), now_ns=1)
    desk.flush()
    desk.positions.on_client_fill("DEMO", EURUSD, 1, 45000, 108500, internalised=True)  # e.g. after a restart
    desk.quotes[(0, EURUSD)] = (((108300, 100_000),), ((108390, 100_000),))
    desk.on_quotes(now_ns=2)
    (cxl,) = _reports(desk)
    assert (cxl[11], cxl[150], cxl[39], cxl[151]) == (b"R1", b"4", b"4", b"0")
    assert cxl[58] == b"cancelled: order would exceed the position limit (max 50000 steps)"
    assert desk.positions.client("DEMO", EURUSD).qty == 45000


def test_a_price_on_a_market_order_is_ignored(desk):
    desk.on_new_order(desk.client, _d("m44", qty=b"1000000", price=b"1.08000"), now_ns=1)  # 1.08000: below the ask
    (fill,) = _reports(desk)
    assert (fill[150], fill[39], fill[31]) == (b"F", b"2", b"1.08502")
    assert 44 not in fill


@pytest.mark.parametrize(
    ("msg", "reason", "text"),
    [
        (FixMessage([(35, b"D"), (34, b"7"), (11, b"n1"), (55, b"EUR/USD"), (38, b"1000000"), (40, b"1")]),
         b"5", b"Side (54) is required"),
        (FixMessage([(35, b"D"), (34, b"7"), (11, b"n1"), (55, b"EUR/USD"), (54, b"Z"), (38, b"1"), (40, b"1")]),
         b"0", b"Side (54) 'Z' is not a FIX 4.4 side"),
        (FixMessage([(35, b"F"), (34, b"7"), (11, b"n1"), (55, b"EUR/USD"), (54, b"1")]),
         b"5", b"OrigClOrdID (41) required"),
        (FixMessage([(35, b"G"), (34, b"7"), (41, b"n0"), (55, b"EUR/USD"), (54, b"1"), (38, b"1"), (44, b"1")]),
         b"5", b"ClOrdID (11) required"),
        (FixMessage([(35, b"H"), (34, b"7"), (11, b"nope")]), b"0", b"unknown order; Side (54) is required"),
    ],
)
def test_a_message_whose_answer_could_not_carry_a_required_field_gets_a_business_reject(desk, msg, reason, text):
    handler = {b"D": desk.on_new_order, b"F": desk.on_cancel, b"G": desk.on_replace, b"H": desk.on_status}
    handler[msg.msg_type](desk.client, msg, 1)
    (r,) = _reports(desk)
    assert (r[35], r[45], r[372], r[380], r[58]) == (b"j", b"7", msg.msg_type, reason, text)
    assert r.get(379) == msg.get(11)
    assert list(desk.journal.fills()) == [] and desk.journal.order_by_cl_ord_id("DEMO", "n1") is None


def test_a_reject_echoes_only_what_is_a_fix_value_and_leaves_out_what_is_missing(desk):
    odd = FixMessage([(35, b"D"), (54, b"1"), (55, b"EUR/USD"), (38, b"lots"), (40, b"5"), (59, b"Z"), (44, b"x")])
    desk.on_new_order(desk.client, odd, 1)  # no ClOrdID; quantity, type, TIF and price not FIX values
    (r,) = _reports(desk)
    assert (r[35], r[150], r[54], r[55], r[58]) == (b"8", b"8", b"1", b"EUR/USD", b"ClOrdID (11) is required")
    assert not {11, 38, 40, 44, 59} & set(r)
    assert all(value for value in r.values())  # nothing empty: every report can be sent
