"""The gateway as B2B clients use it, over real loopback sockets: each client rebuilds books
equal to its own tier's quotes from W and X, orders fill at the quoted price or better, and
bad requests come back with reasons."""

import asyncio
import hashlib

import pytest

from engine.config import parse_config
from feeds.sim_market import Scenario, ScenarioKind, SimConfig, SimInstrument, SimLp
from fixserver.client import ClientApp, OrderSpec, order_fields
from fixserver.gateway import GatewayOptions, serve
from fixserver.md_book import md_request
from fixserver.message import FixMessage
from fixserver.session import Credentials, Role, SessionConfig, SessionID
from fixserver.store import MemoryStoreFactory
from fixserver.transport import Initiator, SessionHandle
from tests.conftest import EXAMPLE_CONFIG

PASSWORD = "s3cret"
SYMBOLS = ["EUR/USD", "USD/JPY", "WTI"]
TIERS = ["institutional", "retail", "bands"]


def _config(n_clients: int):
    digest = hashlib.sha256(PASSWORD.encode()).hexdigest()
    text = EXAMPLE_CONFIG.read_text().split("# --- clients")[0]
    for n in range(n_clients):
        text += (
            f'\n[[clients]]\nname = "c{n}"\nsender_comp_id = "C{n}"\ntier = "{TIERS[n % 3]}"\n'
            f'password_sha256 = "{digest}"\n'
        )
    return parse_config(text)


# The market moves for its first second (a spike on one LP, WTI drifting through zero), then
# stands still (no volatility, no noise, fixed sizes), so that "equal to the engine" can be
# checked exactly after the X messages.
SIM = SimConfig(
    seed=3,
    step_ms=50,
    instruments=[
        SimInstrument("EUR/USD", "1.08500", vol_ticks=0, half_spread_ticks=3, level_qty=1000, size_jitter=1),
        SimInstrument("USD/JPY", "150.000", vol_ticks=0, half_spread_ticks=5, level_qty=1000, size_jitter=1),
        SimInstrument("WTI", "0.20", vol_ticks=0, half_spread_ticks=2, level_qty=100, size_jitter=1),
    ],
    lps=[SimLp("LP1", noise_ticks=0), SimLp("LP2", noise_ticks=0, extra_spread_ticks=1), SimLp("LP3", noise_ticks=0)],
    scenarios=[
        Scenario(ScenarioKind.SPIKE, at_ms=0, duration_ms=600, lp="LP1", instrument="EUR/USD", ticks=3),
        Scenario(ScenarioKind.DRIFT, at_ms=0, duration_ms=800, instrument="WTI", target="-0.50"),
    ],
)


class _Client:
    def __init__(self, comp_id: str, port: int, incremental: bool):
        self.app = ClientApp(SYMBOLS)
        self.incremental = incremental
        config = SessionConfig(
            SessionID("FIX.4.4", comp_id, "LAGG"), Role.INITIATOR, heartbeat_s=5, reset_on_logon=True,
            credentials=Credentials(comp_id, PASSWORD),
        )  # fmt: skip
        self.initiator = Initiator(self.app, config, MemoryStoreFactory(), "127.0.0.1", port, max_attempts=3)
        if not incremental:  # ask for full refresh (265=0) instead of the app's default 265=1
            self.app.on_logon = self._logon_full  # type: ignore[method-assign]

    def _logon_full(self, session):
        body = md_request(b"full", [s.encode() for s in SYMBOLS], incremental=False)
        session.send(b"V", body, resendable=False)
        self.app.logged_on.set()


async def _start(cfg, tmp_path, sim=SIM):
    stop = asyncio.Event()
    options = GatewayOptions(port=0, metrics_port=-1, state_dir=tmp_path)
    task = asyncio.create_task(serve(cfg, sim, options, stop))
    await asyncio.wait_for(options.ready.wait(), 60)
    return stop, task, options


async def _log_on(clients, timeout_s):
    for c in clients:
        await c.initiator.start()
    await asyncio.wait_for(asyncio.gather(*(c.app.logged_on.wait() for c in clients)), timeout_s)


async def _stop(stop, task, clients):
    await asyncio.gather(*(c.initiator.stop() for c in clients))
    stop.set()
    await asyncio.wait_for(task, 30)


def _engine_text(gateway, tier, symbol):
    q = gateway.engine.quote(tier, symbol)
    inst = gateway.cfg.instrument(symbol)
    pg, qg = inst.price_grid(), inst.qty_grid()
    return (
        [(pg.to_text(p).encode(), qg.to_text(s).encode()) for p, s in q.bids],
        [(pg.to_text(p).encode(), qg.to_text(s).encode()) for p, s in q.asks],
    )


def _client_text(app, symbol):
    bids, asks = app.book.ladder(symbol.encode())
    return [(p, s) for p, s, _ in bids], [(p, s) for p, s, _ in asks]


async def test_clients_on_three_tiers_rebuild_their_own_tiers_books_in_both_modes(tmp_path):
    cfg = _config(6)
    stop, task, options = await _start(cfg, tmp_path)
    clients = [_Client(f"C{n}", options.bound["fix"], incremental=n < 3) for n in range(6)]
    try:
        await _log_on(clients, 20)
        await asyncio.sleep(2.0)  # the market moves for 1 s, then stands still
        gateway = options.gateway
        assert gateway is not None
        for n, c in enumerate(clients):
            tier = TIERS[n % 3]
            for symbol in SYMBOLS:
                expected = _engine_text(gateway, tier, symbol)
                assert expected[0] and expected[1], (tier, symbol)
                assert _client_text(c.app, symbol) == expected, (n, tier, symbol)
        # Different tiers really see different prices.
        assert _client_text(clients[0].app, "EUR/USD") != _client_text(clients[1].app, "EUR/USD")
        # WTI went through zero, and the clients' books followed.
        assert _client_text(clients[0].app, "WTI")[0][0][0].startswith(b"-")
        # Incremental clients got X messages after their first W.
        assert clients[0].app.md_messages > len(SYMBOLS)
    finally:
        await _stop(stop, task, clients)


async def test_orders_fill_at_the_quote_or_better_and_rejects_carry_reasons(tmp_path):
    cfg = _config(1)  # C0: institutional, internalised
    stop, task, options = await _start(cfg, tmp_path)
    client = _Client("C0", options.bound["fix"], incremental=True)
    try:
        await _log_on([client], 20)
        await asyncio.sleep(1.5)
        app, handle = client.app, client.initiator.handle
        bids, asks = _client_text(app, "EUR/USD")
        best_ask, best_bid = asks[0][0], bids[0][0]
        handle.send(b"D", order_fields(OrderSpec("EUR/USD", "buy", "1000000"), app))
        handle.send(b"D", order_fields(OrderSpec("EUR/USD", "sell", "1000000", "limit", "ioc", best_bid.decode()), app))
        bad = [
            OrderSpec("XBT/USD", "buy", "1000000"),
            OrderSpec("EUR/USD", "buy", "1500"),
            OrderSpec("EUR/USD", "buy", "1000000", "limit", "ioc", "1.085005"),
        ]
        for spec in bad:
            handle.send(b"D", order_fields(spec, app))
        for _ in range(100):
            if len(app.reports) >= 5:
                break
            await asyncio.sleep(0.05)
        fills = [r for r in app.reports if r.get(150) == b"F"]
        rejects = [r for r in app.reports if r.get(150) == b"8"]
        assert len(fills) == 2 and len(rejects) == 3, app.reports
        buy = next(f for f in fills if f.get(54) == b"1")
        sell = next(f for f in fills if f.get(54) == b"2")
        assert float(buy.get(31)) <= float(best_ask) and float(sell.get(31)) >= float(best_bid)
        assert [r.get_str(58) for r in rejects] == [
            "unknown symbol XBT/USD",
            "quantity must be a positive multiple of 1000",
            "price must be a multiple of the tick size 0.00001",
        ]
        # An unknown symbol in a market-data request comes back as Y with 281=0.
        handle.send(b"V", md_request(b"bad", [b"XBT/USD"], depth=1, entry_types=[b"0"]), resendable=False)
        for _ in range(100):
            if any(m.msg_type == b"Y" for m in app.rejects):
                break
            await asyncio.sleep(0.05)
        (y,) = [m for m in app.rejects if m.msg_type == b"Y"]
        assert (y.get(262), y.get(281)) == (b"bad", b"0")
        # The security list gives tick size and quantity step.
        assert ("EUR/USD", "0.00001", "1000") in app.security_list
    finally:
        await _stop(stop, task, [client])
    # Support can read the whole conversation but the market data, without the password.
    lines = (tmp_path / "fix_messages.log").read_bytes().splitlines()
    ours = [line for line in lines if b" FIX.4.4:LAGG->C0 " in line]
    assert sum(b" IN  " in line and b"|35=D|" in line for line in ours) == 5
    assert sum(b" OUT " in line and b"|35=8|" in line for line in ours) >= 5
    assert any(b" IN  " in line and b"|35=A|" in line and b"|554=***|" in line for line in ours)
    assert not any(b"|35=X|" in line or b"|35=W|" in line for line in lines)
    assert PASSWORD.encode() not in b"\n".join(lines)


async def test_a_resting_order_is_replaced_then_cancelled_under_its_new_clordid(tmp_path):
    cfg = _config(1)
    stop, task, options = await _start(cfg, tmp_path)
    client = _Client("C0", options.bound["fix"], incremental=True)

    async def report(exec_type: bytes) -> FixMessage:
        for _ in range(100):
            found = [r for r in client.app.reports if r.get(150) == exec_type]
            if found:
                return found[-1]
            await asyncio.sleep(0.05)
        raise AssertionError(f"no 150={exec_type!r} in {client.app.reports} / {client.app.rejects}")

    try:
        await _log_on([client], 20)
        await asyncio.sleep(1.5)
        handle = client.initiator.handle
        handle.send(b"D", [(11, b"r1"), (55, b"EUR/USD"), (54, b"2"), (60, b"20261123-10:00:00.000"),
                           (38, b"1000000"), (40, b"2"), (59, b"0"), (44, b"1.10000")])  # fmt: skip
        new = await report(b"0")
        handle.send(b"G", [(11, b"r2"), (41, b"r1"), (55, b"EUR/USD"), (54, b"2"), (60, b"20261123-10:00:01.000"),
                           (38, b"2000000"), (40, b"2"), (44, b"1.10100")])  # fmt: skip
        replaced = await report(b"5")
        assert (replaced.get(37), replaced.get(11), replaced.get(41)) == (new.get(37), b"r2", b"r1")
        assert (replaced.get(38), replaced.get(44), replaced.get(151)) == (b"2000000", b"1.10100", b"2000000")
        handle.send(b"F", [(11, b"r3"), (41, b"r2"), (55, b"EUR/USD"), (54, b"2"), (60, b"20261123-10:00:02.000")])
        cancelled = await report(b"4")
        assert (cancelled.get(37), cancelled.get(41), cancelled.get(14)) == (new.get(37), b"r2", b"0")
    finally:
        await _stop(stop, task, [client])


@pytest.mark.slow
async def test_fifty_sessions_on_three_tiers_each_get_their_own_tiers_prices(tmp_path):
    cfg = _config(50)
    stop, task, options = await _start(cfg, tmp_path)
    clients = [_Client(f"C{n}", options.bound["fix"], incremental=True) for n in range(50)]
    try:
        await _log_on(clients, 30)
        await asyncio.sleep(2.0)
        gateway = options.gateway
        for n, c in enumerate(clients):
            assert _client_text(c.app, "EUR/USD") == _engine_text(gateway, TIERS[n % 3], "EUR/USD"), n
    finally:
        await _stop(stop, task, clients)


async def test_a_session_whose_market_data_cannot_be_sent_is_dropped_and_recovers_from_a_snapshot(
    tmp_path, monkeypatch, caplog
):
    # Its updates of that publish count as sent, so it must not apply later X to a book that
    # misses them: the gateway drops it, the client logs on again and starts from a W. The
    # other session never notices.
    cfg = _config(2)
    real = SessionHandle.send_market_data
    failed: list[str] = []

    def fails_once_for_c0(handle, bodies):
        if handle.session_id.target_comp_id == "C0" and not failed:
            failed.append("C0")
            raise RuntimeError("encoder bug")
        real(handle, bodies)

    monkeypatch.setattr(SessionHandle, "send_market_data", fails_once_for_c0)
    stop, task, options = await _start(cfg, tmp_path)
    clients = [_Client(f"C{n}", options.bound["fix"], incremental=True) for n in range(2)]
    try:
        await _log_on(clients, 20)
        await asyncio.sleep(2.5)  # the market moves for 1 s; the dropped client reconnects
        assert failed == ["C0"]
        assert "C0: market data could not be sent" in caplog.text
        gateway = options.gateway
        assert gateway is not None and gateway.handles["C0"].is_logged_on
        for n, c in enumerate(clients):
            for symbol in SYMBOLS:
                assert _client_text(c.app, symbol) == _engine_text(gateway, TIERS[n], symbol), (n, symbol)
        assert [c.initiator.handle.logon_count for c in clients] == [2, 1]
    finally:
        await _stop(stop, task, clients)


async def test_a_market_data_request_read_while_logging_the_client_out_is_ignored(tmp_path):
    cfg = _config(1)
    stop, task, options = await _start(cfg, tmp_path)
    client = _Client("C0", options.bound["fix"], incremental=True)
    try:
        await _log_on([client], 20)
        gateway = options.gateway
        assert gateway is not None
        handle = gateway.handles["C0"]
        handle.logout("test")  # our Logout is out; the client's V crossed it on the wire
        request = FixMessage([(35, b"V"), *md_request(b"late", [b"WTI"], incremental=True)])
        gateway.from_app(request, handle)  # neither raises nor subscribes
        assert b"late" not in gateway.hub.sessions.get("C0", {})
    finally:
        await _stop(stop, task, [client])
