"""The gateway's answers to a client's requests, between loop turns: what an order or a snapshot
sees after an LP went stale but before the loop's next turn takes its prices out; which
instruments a security list and a market-data request show; what a reload takes away."""

import types

import pytest

from engine.batch import ASK, BID, UpdateBatch
from engine.book import Engine
from engine.config import parse_config
from engine.journal import Journal
from engine.metrics import Metrics
from fixserver.clock import ManualClock
from fixserver.gateway import Gateway
from fixserver.md_book import md_request
from fixserver.message import FixMessage
from fixserver.session import SessionID, SessionState
from tests.conftest import EXAMPLE_CONFIG, lp_quotes

T0 = 1_700_000_000_000_000_000
MS = 1_000_000


class _Handle:
    """What the gateway uses of a client's session handle: its id, its state, and send."""

    def __init__(self, comp_id: str) -> None:
        self.session_id = SessionID("FIX.4.4", "LAGG", comp_id)
        self.session = self
        self.state = SessionState.ACTIVE
        self.sent: list[tuple[bytes, dict]] = []

    def send(self, msg_type, body, **_):
        self.sent.append((msg_type, dict(body)))

    def send_shared(self, body, **_):
        self.sent.append((body.prepared.msg_type, body.prepared.body))

    def business_reject(self, ref, reason, text, **_):
        self.sent.append((b"j", {45: ref.get(34), 372: ref.msg_type, 380: reason, 58: text}))


def _gateway(tmp_path, text: str = EXAMPLE_CONFIG.read_text()) -> Gateway:
    cfg = parse_config(text)
    return Gateway(cfg, Engine(cfg), Journal(tmp_path / "journal.sqlite"), Metrics(), ManualClock(T0))


def _lp1_quotes_eur_usd(gw: Gateway) -> None:
    """LP1 quotes EUR/USD 1.08500 / 1.08510 at T0; the loop's turn at T0 publishes it."""
    lp_quotes(gw.engine, "LP1", "EUR/USD", 108500, 108510, 1000, T0)
    gw.engine.expire(T0)
    gw.on_batch(T0)


def _order(*fields):
    return FixMessage([(35, b"D"), (55, b"EUR/USD"), (38, b"1000000"), *fields])


@pytest.fixture
def gateway(tmp_path):
    """LP1 quotes EUR/USD at T0 and is silent after; its staleness limit is 1000 ms. The loop's
    last turn ran at 990 ms, while LP1 was still fresh."""
    gw = _gateway(tmp_path)
    assert next(lp for lp in gw.cfg.lps if lp.name == "LP1").staleness_ms == 1000
    _lp1_quotes_eur_usd(gw)
    gw.engine.expire(T0 + 990 * MS)
    gw.on_batch(T0 + 990 * MS)
    assert gw.engine.quote("institutional", "EUR/USD").asks  # LP1's price is live at 990 ms
    gw.clock.set(T0 + 1030 * MS)  # 30 ms past LP1's limit; the next turn is due at 1040 ms
    return gw


def test_an_order_read_after_the_lp_went_stale_does_not_fill_at_its_price(gateway):
    handle = _Handle("DEMO")
    gateway.handles["DEMO"] = handle
    gateway.from_app(_order((11, b"c1"), (54, b"1"), (40, b"1"), (59, b"3")), handle)
    ((msg_type, report),) = handle.sent
    assert msg_type == b"8"
    assert (report[150], report[39]) == (b"8", b"8"), report  # rejected: no liquidity, not a fill
    assert 31 not in report


def test_a_snapshot_requested_after_the_lp_went_stale_shows_no_price(gateway):
    handle = _Handle("DEMO")
    gateway.handles["DEMO"] = handle
    request = FixMessage([(35, b"V"), *md_request(b"r1", [b"EUR/USD"], incremental=False)])
    gateway.from_app(request, handle)
    ((msg_type, snapshot),) = handle.sent
    assert msg_type == b"W"
    assert b"55=EUR/USD\x01" in snapshot and b"270=" not in snapshot, snapshot  # both sides withdrawn


def _security_list(gateway, *fields):
    handle = _Handle("DEMO")
    gateway.from_app(FixMessage([(35, b"x"), (320, b"q1"), *fields]), handle)
    ((msg_type, body),) = handle.sent
    assert msg_type == b"y" and body[320] == b"q1"
    return body[560], body[146], [v for t, v in body.items() if t == 55]


def test_the_security_list_lists_every_instrument_or_the_one_asked_for(tmp_path):
    gateway = _gateway(tmp_path)
    result, count, _ = _security_list(gateway, (559, b"4"))
    assert (result, count) == (b"0", b"5")
    assert _security_list(gateway, (559, b"0"), (55, b"WTI")) == (b"0", b"1", [b"WTI"])
    assert _security_list(gateway, (559, b"0"), (55, b"XBT/USD")) == (b"2", b"0", [])  # none found
    assert _security_list(gateway, (559, b"1"), (167, b"FXSPOT")) == (b"1", b"0", [])  # unsupported


def test_the_security_list_gives_the_quantity_step_as_round_lot_and_the_tick_size_as_text(tmp_path):
    gateway = _gateway(tmp_path)
    handle = _Handle("DEMO")
    gateway.from_app(FixMessage([(35, b"x"), (320, b"q1"), (559, b"0"), (55, b"EUR/USD")]), handle)
    ((_, body),) = handle.sent
    assert (body[55], body[561], body[58]) == (b"EUR/USD", b"1000", b"tick size 0.00001")
    assert 969 not in body  # FIX 5.0's MinPriceIncrement: a FIX 4.4 client refuses it


@pytest.mark.parametrize(
    ("request_fields", "text"),
    [([(35, b"x"), (34, b"4"), (559, b"4")], "SecurityReqID (320) is required"),
     ([(35, b"V"), (34, b"4"), (263, b"1"), (264, b"1"), (146, b"1"), (55, b"EUR/USD")], "MDReqID (262) is required")],
)  # fmt: skip
def test_a_request_without_the_id_its_answer_must_name_gets_a_business_reject(tmp_path, request_fields, text):
    gateway = _gateway(tmp_path)
    handle = _Handle("DEMO")
    gateway.handles["DEMO"] = handle
    gateway.from_app(FixMessage(request_fields), handle)
    assert handle.sent == [(b"j", {45: b"4", 372: request_fields[0][1], 380: 5, 58: text})]


def test_a_disabled_instrument_is_neither_listed_nor_subscribable(tmp_path):
    text = EXAMPLE_CONFIG.read_text().replace('symbol = "GBP/USD"\n', 'symbol = "GBP/USD"\nenabled = false\n')
    gateway = _gateway(tmp_path, text)
    assert _security_list(gateway, (559, b"0"), (55, b"GBP/USD")) == (b"2", b"0", [])
    assert _security_list(gateway)[:2] == (b"0", b"4")  # no 559: all, as 559=4
    handle = _Handle("DEMO")
    gateway.handles["DEMO"] = handle
    gateway.from_app(FixMessage([(35, b"V"), *md_request(b"r1", [b"EUR/USD", b"GBP/USD"])]), handle)
    ((msg_type, reject),) = handle.sent
    assert (msg_type, reject[262], reject[281]) == (b"Y", b"r1", b"0")
    assert reject[58] == b"unknown symbol GBP/USD"


def test_a_reload_that_takes_market_data_away_ends_the_clients_subscriptions(tmp_path):
    gateway = _gateway(tmp_path)
    handle = _Handle("DEMO")
    gateway.handles["DEMO"] = handle
    gateway.from_app(FixMessage([(35, b"V"), *md_request(b"r1", [b"EUR/USD"])]), handle)
    assert "DEMO" in gateway.hub.sessions
    text = EXAMPLE_CONFIG.read_text()
    gateway.reconfigure(parse_config(text.replace('"DEMO"\n', '"DEMO"\nmarket_data = false\n')))
    assert "DEMO" not in gateway.hub.sessions


def test_a_limit_through_the_market_past_the_instruments_collar_is_rejected_and_a_reload_moves_it(tmp_path):
    gateway = _gateway(tmp_path)
    assert gateway.cfg.instrument("EUR/USD").price_collar_ticks == 500
    _lp1_quotes_eur_usd(gateway)
    handle = _Handle("DEMO")
    gateway.handles["DEMO"] = handle
    # A buy limit 1.09500: about 990 ticks through the ask, a fat finger.
    gateway.from_app(_order((11, b"c1"), (54, b"1"), (40, b"2"), (44, b"1.09500"), (59, b"3")), handle)
    ((_, report),) = handle.sent
    assert report[150] == b"8", report
    assert report[58] == b"limit price too far from the market (max 500 ticks through the market)"

    text = EXAMPLE_CONFIG.read_text()
    gateway.reconfigure(parse_config(text.replace("price_collar_ticks = 500", "price_collar_ticks = 0")))
    gateway.from_app(_order((11, b"c2"), (54, b"1"), (40, b"2"), (44, b"1.09500"), (59, b"3")), handle)
    assert handle.sent[-1][1][150] == b"F"  # no collar now: it fills, at the ask or better


def test_a_reload_reaches_working_orders_a_resting_fill_past_the_new_position_limit_is_cancelled(tmp_path):
    gateway = _gateway(tmp_path)
    _lp1_quotes_eur_usd(gateway)
    handle = _Handle("DEMO")
    gateway.handles["DEMO"] = handle
    # A GTC buy of 1000 steps under the market: it rests (DEMO's max_position is 50000).
    gateway.from_app(_order((11, b"r1"), (54, b"1"), (40, b"2"), (44, b"1.08400"), (59, b"1")), handle)
    assert handle.sent[-1][1][150] == b"0"
    text = EXAMPLE_CONFIG.read_text()
    gateway.reconfigure(parse_config(text.replace("max_position = 50000", "max_position = 500", 1)))

    # The market falls through the order's limit: the fill would pass the new limit.
    engine = gateway.engine
    lp, eur = engine.lp_index("LP1"), engine.instrument_index("EUR/USD")
    batch = UpdateBatch(16)
    batch.set_level(lp, eur, BID, 0, 108300, 100000, T0 + MS)
    batch.set_level(lp, eur, ASK, 0, 108310, 100000, T0 + MS)
    engine.apply(batch, T0 + MS)
    gateway.on_batch(T0 + MS)
    report = handle.sent[-1][1]
    assert (report[11], report[150], report[39]) == (b"r1", b"4", b"4"), report  # cancelled, not filled
    assert report[58].startswith(b"cancelled: ") and report[58].endswith(b"(max 500 steps)"), report[58]


def _halted(gateway):
    samples = next(m for m in gateway.metrics.registry.collect() if m.name == "lagg_trading_halted").samples
    return {(s.labels["scope"], s.labels["name"]) for s in samples if s.value == 1}


def test_kill_switches_from_the_config_refuse_orders_until_a_reload_lifts_them(tmp_path):
    text = EXAMPLE_CONFIG.read_text()
    halted_demo = text.replace('clients = []                  # e.g. ["RETAIL1"]', 'clients = ["DEMO"]')
    gateway = _gateway(tmp_path, halted_demo)
    gateway.metrics.attach(engine=gateway.engine, kill=gateway.kill)
    assert _halted(gateway) == {("client", "DEMO")}
    _lp1_quotes_eur_usd(gateway)
    handle = _Handle("DEMO")
    gateway.handles["DEMO"] = handle
    gateway.from_app(_order((11, b"k1"), (54, b"1"), (40, b"1"), (59, b"3")), handle)
    assert (handle.sent[-1][1][150], handle.sent[-1][1][58]) == (b"8", b"trading halted")

    gateway.reconfigure(parse_config(text))
    assert _halted(gateway) == set()
    gateway.from_app(_order((11, b"k2"), (54, b"1"), (40, b"1"), (59, b"3")), handle)
    assert handle.sent[-1][1][150] == b"F"


def test_a_fault_halt_of_the_desk_outlives_a_reload(tmp_path):
    gateway = _gateway(tmp_path)
    gateway.metrics.attach(engine=gateway.engine, kill=gateway.kill, desk=gateway.desk)
    assert gateway.metrics.registry.get_sample_value("lagg_lp_odd_lot_fills_total") == 0
    gateway.desk._halt("journal commit failed")
    gateway.reconfigure(parse_config(EXAMPLE_CONFIG.read_text()))  # [halt] all = false
    assert gateway.kill.halted("DEMO", 0)
    assert _halted(gateway) == {("fault", "")}


def test_a_halted_lp_gets_no_routes(tmp_path):
    text = EXAMPLE_CONFIG.read_text().replace('lps = []                      # no A-book', 'lps = ["LP1"] # no A-book')
    gateway = _gateway(tmp_path, text)
    _lp1_quotes_eur_usd(gateway)
    gateway.add_lp_feed(types.SimpleNamespace(lp=gateway.cfg.lps[0]))
    eur = gateway.engine.instrument_index("EUR/USD")
    assert gateway._lp_prices(eur, 1) == []
    gateway.reconfigure(parse_config(EXAMPLE_CONFIG.read_text()))
    assert [p.lp for p in gateway._lp_prices(eur, 1)] == [0]


def test_a_kill_switch_applies_even_when_the_rest_of_the_file_waits_for_a_restart(tmp_path):
    gateway = _gateway(tmp_path)
    text = EXAMPLE_CONFIG.read_text()
    staged = text.replace("depth = 5", "depth = 4", 1).replace("all = false", "all = true", 1)
    assert gateway.reload_check(gateway.cfg, parse_config(staged)) == ["tiers[0].depth"]
    assert gateway.kill.all  # halted now; the depth waits for the restart
    assert gateway.cfg.tier("institutional").depth == 5
