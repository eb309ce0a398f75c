"""The LP simulator speaks FIX 4.4 like an LP: W then X keyed by MDEntryID (or W only), fills
with last look, goes silent when stale, drops and refuses sessions when disconnected."""

import asyncio

from engine.config import parse_config
from feeds.lp_simulator import LpSimulatorFleet
from feeds.sim_market import Scenario, ScenarioKind, SimConfig, SimInstrument, SimLp
from fixserver.md_book import MdBook, md_request
from fixserver.message import FixMessage
from fixserver.session import Role, SessionConfig, SessionID
from fixserver.store import MemoryStoreFactory
from fixserver.transport import Application, Initiator, SessionHandle
from tests.conftest import EXAMPLE_CONFIG


class Feed(Application):
    """A minimal LP-facing client: subscribes on logon, keeps every message."""

    def __init__(self, symbols):
        self.symbols = symbols
        self.messages: list[FixMessage] = []
        self.book = MdBook()
        self.logged_on = asyncio.Event()

    def on_logon(self, session: SessionHandle) -> None:
        session.send(b"V", md_request(b"1", self.symbols, depth=5), resendable=False)
        self.logged_on.set()

    def from_app(self, message: FixMessage, session: SessionHandle) -> None:
        self.messages.append(message)
        if message.msg_type in (b"W", b"X"):
            self.book.apply(message)


def _sim(*scenarios):
    return SimConfig(
        seed=5, step_ms=20,
        instruments=[SimInstrument("EUR/USD", "1.08500"), SimInstrument("WTI", "0.05", vol_ticks=0)],
        lps=[SimLp("LP1", depth=3), SimLp("LP2", depth=3), SimLp("LP3", instruments=["EUR/USD"], depth=2)],
        scenarios=list(scenarios),
    )  # fmt: skip


async def _connect(fleet, lp_cfg, symbols):
    feed = Feed(symbols)
    session = SessionConfig(SessionID("FIX.4.4", lp_cfg.sender_comp_id, lp_cfg.target_comp_id), Role.INITIATOR,
                            heartbeat_s=5, reset_on_logon=True)  # fmt: skip
    initiator = Initiator(feed, session, MemoryStoreFactory(), "127.0.0.1", fleet.ports[lp_cfg.name], max_attempts=30,
                          backoff_initial_s=0.05, backoff_max_s=0.2)  # fmt: skip
    await initiator.start()
    return feed, initiator


async def _run(sim, body):
    cfg = parse_config(EXAMPLE_CONFIG.read_text())
    fleet = LpSimulatorFleet(cfg, sim, ports={"LP1": 0, "LP2": 0, "LP3": 0})
    stop = asyncio.Event()
    task = asyncio.create_task(fleet.run(stop, seconds=30))
    for _ in range(100):
        if all(fleet.ports.values()):
            break
        await asyncio.sleep(0.02)
    try:
        await body(cfg, fleet)
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


async def test_incremental_lp_sends_w_then_x_and_the_book_tracks_the_lp():
    async def body(cfg, fleet):
        lp2 = cfg.lps[1]  # LP2: incremental, its own symbol names (EURUSD)
        feed, initiator = await _connect(fleet, lp2, [b"EURUSD"])
        await asyncio.wait_for(feed.logged_on.wait(), 10)
        await asyncio.sleep(0.5)
        kinds = [m.msg_type for m in feed.messages]
        assert kinds[0] == b"W" and b"X" in kinds
        assert all(m.get(55) == b"EURUSD" for m in feed.messages if m.msg_type == b"W")
        book = fleet.market.current("LP2", "EUR/USD")
        bids, asks = feed.book.ladder(b"EURUSD")
        grid = cfg.instrument("EUR/USD").price_grid()
        assert [p for p, _, _ in bids] == [grid.to_text(p).encode() for p in book.bid_px]
        assert [p for p, _, _ in asks] == [grid.to_text(p).encode() for p in book.ask_px]
        await initiator.stop()

    await _run(_sim(), body)


async def test_snapshot_only_lp_sends_only_w_and_unknown_symbol_gets_y():
    async def body(cfg, fleet):
        lp3 = cfg.lps[2]  # LP3: incremental = false
        feed, initiator = await _connect(fleet, lp3, [b"EUR/USD"])
        await asyncio.wait_for(feed.logged_on.wait(), 10)
        await asyncio.sleep(0.3)
        assert {m.msg_type for m in feed.messages} == {b"W"}
        body = md_request(b"2", [b"XAU/USD"], depth=1, incremental=False, entry_types=[b"0"])
        initiator.handle.send(b"V", body, resendable=False)
        await asyncio.sleep(0.2)
        (y,) = [m for m in feed.messages if m.msg_type == b"Y"]
        assert (y.get(262), y.get(281)) == (b"2", b"0")
        await initiator.stop()

    await _run(_sim(), body)


async def test_orders_fill_at_the_lp_price_or_are_rejected_by_last_look():
    sim = _sim(Scenario(ScenarioKind.LAST_LOOK, at_ms=0, duration_ms=60_000, lp="LP1", pct=50))

    async def body(cfg, fleet):
        feed, initiator = await _connect(fleet, cfg.lps[0], [b"EUR/USD"])
        await asyncio.wait_for(feed.logged_on.wait(), 10)
        await asyncio.sleep(0.2)
        for n in range(20):
            initiator.handle.send(b"D", [(11, b"o%d" % n), (55, b"EUR/USD"), (54, b"1"), (60, b"20260101-00:00:00"),
                                         (38, b"1000000"), (40, b"1")])  # fmt: skip
        await asyncio.sleep(0.5)
        reports = [m for m in feed.messages if m.msg_type == b"8"]
        assert len(reports) == 20
        fills = [r for r in reports if r.get(150) == b"F"]
        rejects = [r for r in reports if r.get(150) == b"8"]
        assert fills and rejects and len(fills) + len(rejects) == 20
        assert all(r.get(58) == b"last look: rejected" for r in rejects)
        assert all(r.get(32) == b"1000000" for r in fills)
        await initiator.stop()

    await _run(sim, body)


async def test_stale_lp_goes_silent_and_disconnected_lp_drops_then_comes_back():
    sim = _sim(
        Scenario(ScenarioKind.STALE, at_ms=300, duration_ms=400, lp="LP1"),
        Scenario(ScenarioKind.DISCONNECT, at_ms=300, duration_ms=400, lp="LP2"),
    )

    async def body(cfg, fleet):
        lp1, _ = await _connect(fleet, cfg.lps[0], [b"EUR/USD"])
        lp2, lp2_init = await _connect(fleet, cfg.lps[1], [b"EURUSD"])
        await asyncio.wait_for(asyncio.gather(lp1.logged_on.wait(), lp2.logged_on.wait()), 10)
        while fleet.market.now_ms < 400:
            await asyncio.sleep(0.02)
        quiet_from = len(lp1.messages)
        await asyncio.sleep(0.15)
        assert len(lp1.messages) == quiet_from  # stale: connected but silent
        assert not lp2_init.handle.connected  # disconnected by the LP
        while fleet.market.now_ms < 900:
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)
        assert len(lp1.messages) > quiet_from  # back to streaming
        assert lp2_init.handle.is_logged_on  # reconnected after the scenario ended

    await _run(sim, body)
