"""A-book routing and auto-hedging over real FIX sessions to the LP simulator: the best LP's
last look rejects, the next fills half, the third fills the rest; the client sees fills at the LP
prices plus its tier's markup, and the house position ends flat after a hedge."""

import asyncio
import hashlib

from engine.config import parse_config
from feeds.lp_simulator import LpSimulatorFleet
from feeds.sim_market import Scenario, ScenarioKind, SimConfig, SimInstrument, SimLp
from fixserver.client import ClientApp, OrderSpec, order_fields
from fixserver.gateway import GatewayOptions, serve
from fixserver.orders import HOUSE
from fixserver.session import Credentials, Role, SessionConfig, SessionID
from fixserver.store import MemoryStoreFactory
from fixserver.transport import Initiator
from tests.conftest import EXAMPLE_CONFIG

PASSWORD = "s3cret"
EURUSD = 0

# A still market; LP1 quotes tightest, LP2 one tick wider, LP3 two. LP1's last look rejects
# every order, LP2 fills half of each, LP3 fills everything.
SIM = SimConfig(
    seed=5,
    step_ms=50,
    instruments=[SimInstrument("EUR/USD", "1.08500", vol_ticks=0, half_spread_ticks=3, level_qty=5000, size_jitter=1)],
    lps=[
        SimLp("LP1", noise_ticks=0),
        SimLp("LP2", noise_ticks=0, extra_spread_ticks=1, partial_fill_pct=100),
        SimLp("LP3", noise_ticks=0, extra_spread_ticks=2),
    ],
    scenarios=[Scenario(ScenarioKind.LAST_LOOK, at_ms=0, duration_ms=600_000, lp="LP1", pct=100)],
)


def _config():
    digest = hashlib.sha256(PASSWORD.encode()).hexdigest()
    text = EXAMPLE_CONFIG.read_text().split("# --- clients")[0]
    for comp_id, routing in (("AB", "a_book"), ("BB", "internalise")):
        text += (
            f'\n[[clients]]\nname = "{comp_id}"\nsender_comp_id = "{comp_id}"\ntier = "institutional"\n'
            f'password_sha256 = "{digest}"\nrouting = "{routing}"\n'
        )
    return parse_config(text)


async def _client(comp_id, port):
    app = ClientApp(["EUR/USD"])
    config = SessionConfig(
        SessionID("FIX.4.4", comp_id, "LAGG"), Role.INITIATOR, heartbeat_s=5, reset_on_logon=True,
        credentials=Credentials(comp_id, PASSWORD),
    )  # fmt: skip
    initiator = Initiator(app, config, MemoryStoreFactory(), "127.0.0.1", port, max_attempts=3)
    await initiator.start()
    await asyncio.wait_for(app.logged_on.wait(), 20)
    return app, initiator


async def _reports(app, n, timeout_s=10.0):
    for _ in range(int(timeout_s / 0.05)):
        if len(app.reports) >= n:
            break
        await asyncio.sleep(0.05)
    return list(app.reports)


async def test_a_book_retries_past_last_look_and_partial_fill_and_the_house_hedges(tmp_path):
    cfg = _config()
    fleet = LpSimulatorFleet(cfg, SIM, ports={"LP1": 0, "LP2": 0, "LP3": 0})
    fleet_stop, stop = asyncio.Event(), asyncio.Event()
    fleet_task = asyncio.create_task(fleet.run(fleet_stop, seconds=60))
    while not all(fleet.ports.values()):
        await asyncio.sleep(0.01)
    options = GatewayOptions(port=0, metrics_port=-1, state_dir=tmp_path, market="fix", lp_ports=fleet.ports)
    task = asyncio.create_task(serve(cfg, SIM, options, stop))
    initiators = []
    try:
        await asyncio.wait_for(options.ready.wait(), 60)
        gateway = options.gateway
        assert gateway is not None
        for _ in range(200):
            if all(f.up for f in gateway.lp_feeds.values()) and gateway.engine.lp_tops(EURUSD, 1, 0):
                break
            await asyncio.sleep(0.05)
        tops = gateway.engine.lp_tops(EURUSD, 1, gateway.clock.now_ns())
        asks = {gateway.engine.lp_names[lp]: px for lp, px, _ in tops}
        assert asks["LP1"] < asks["LP2"] < asks["LP3"], asks

        # A-book: 2M to buy. LP1 rejects, LP2 fills 1M and cancels 1M, LP3 fills 1M.
        ab, ab_init = await _client("AB", options.bound["fix"])
        initiators.append(ab_init)
        ab_init.handle.send(b"D", order_fields(OrderSpec("EUR/USD", "buy", "2000000"), ab))
        fills = [r for r in await _reports(ab, 2) if r.get(150) == b"F"]
        assert [(f.get(32), f.get(39)) for f in fills] == [(b"1000000", b"1"), (b"1000000", b"2")], ab.reports
        markup = cfg.tier("institutional").ask_markup
        grid = cfg.instruments[EURUSD].price_grid()
        assert [grid.to_steps(f.get(31)) for f in fills] == [asks["LP2"] + markup, asks["LP3"] + markup]
        routes = [(f.client, f.route, f.qty) for f in gateway.desk.journal.fills()]
        assert routes == [("AB", "LP2", 1000), ("AB", "LP3", 1000)]
        assert gateway.positions.exposure(EURUSD) == 0  # A-book: the LPs hold the other side

        # B-book past the hedge threshold (10M): the house sells 11M to the client, then buys it back.
        bb, bb_init = await _client("BB", options.bound["fix"])
        initiators.append(bb_init)
        bb_init.handle.send(b"D", order_fields(OrderSpec("EUR/USD", "buy", "11000000"), bb))
        await _reports(bb, 1)
        for _ in range(100):
            if gateway.positions.exposure(EURUSD) == 0:
                break
            await asyncio.sleep(0.05)
        assert gateway.positions.exposure(EURUSD) == 0
        hedges = [(f.route, f.qty) for f in gateway.desk.journal.fills() if f.client == HOUSE]
        assert hedges == [("LP2", 5500), ("LP3", 5500)]
        assert fleet.lps["LP1"].orders == 2  # both routes asked the best LP first
    finally:
        for initiator in initiators:
            await initiator.stop()
        stop.set()
        await asyncio.wait_for(task, 30)
        fleet_stop.set()
        await asyncio.wait_for(fleet_task, 10)
