"""Three simulated LPs over FIX 4.4 into the engine: the aggregated book is the LPs' books; an
LP that drops is excluded at once and returns only with a fresh snapshot; a stale LP is
excluded by its staleness limit; prices go through zero into negative values."""

import asyncio

from engine.batch import UpdateBatch
from engine.book import Engine
from engine.config import parse_config
from feeds.lp_feed import LpFeed
from feeds.lp_simulator import LpSimulatorFleet
from feeds.sim_market import Scenario, ScenarioKind, SimConfig, SimInstrument, SimLp
from tests.conftest import EXAMPLE_CONFIG

# A "raw" tier: full merged depth, no markup, no spread rules, so a tier quote *is* the
# aggregated book (after LP2's 1-tick haircut and LP3's 50% size weight from the config).
RAW_TIER = """
[[tiers]]
name = "raw"
mode = "full_depth"
depth = 20
"""


def _config(ports):
    text = EXAMPLE_CONFIG.read_text()
    for name, port in ports.items():
        text = text.replace(f'name = "{name}"\nport = {9100 + int(name[-1])}', f'name = "{name}"\nport = {port}')
    text = text.replace("staleness_ms = 2000", "staleness_ms = 500").replace(
        "# --- clients", RAW_TIER + "\n# --- clients"
    )
    cfg = parse_config(text)
    assert [lp.port for lp in cfg.lps] == [ports["LP1"], ports["LP2"], ports["LP3"]]
    return cfg


def _sim(*scenarios):
    return SimConfig(
        seed=9, step_ms=20,
        instruments=[
            SimInstrument("EUR/USD", "1.08500", vol_ticks=0, half_spread_ticks=3, level_qty=1000, size_jitter=3),
            SimInstrument("WTI", "0.30", vol_ticks=0, half_spread_ticks=2, level_qty=100, size_jitter=3),
        ],
        lps=[SimLp("LP1", depth=3, noise_ticks=0), SimLp("LP2", depth=3, noise_ticks=0, extra_spread_ticks=1),
             SimLp("LP3", instruments=["EUR/USD", "WTI"], depth=2, noise_ticks=0)],
        scenarios=list(scenarios),
    )  # fmt: skip


def expected_book(cfg, market, symbol, lps):
    """Merged book of the given LPs' current books, with each LP's haircut and size weight."""
    bids, asks = {}, {}
    for lp in cfg.lps:
        if lp.name not in lps:
            continue
        book = market.current(lp.name, symbol)
        for px, qty in zip(book.bid_px, book.bid_qty, strict=True):
            q = qty * lp.size_weight_pct // 100
            if q:
                bids[px - lp.haircut_ticks] = bids.get(px - lp.haircut_ticks, 0) + q
        for px, qty in zip(book.ask_px, book.ask_qty, strict=True):
            q = qty * lp.size_weight_pct // 100
            if q:
                asks[px + lp.haircut_ticks] = asks.get(px + lp.haircut_ticks, 0) + q
    return tuple(sorted(bids.items(), reverse=True)), tuple(sorted(asks.items()))


class Loop:
    """The gateway's batch loop in miniature: apply what the feeds appended, expire, repeat."""

    def __init__(self, cfg):
        self.engine = Engine(cfg)
        self.batch = UpdateBatch(4096)
        self.feeds = [LpFeed(cfg, lp, self.batch) for lp in cfg.lps]
        self.initiators = [f.initiator(heartbeat_s=5, backoff_initial_s=0.05, backoff_max_s=0.2) for f in self.feeds]

    async def run(self, stop):
        while not stop.is_set():
            now = self.feeds[0].clock.now_ns()
            self.engine.apply(self.batch, now)
            self.batch.clear()
            self.engine.expire(now)
            await asyncio.sleep(0.005)


async def _with_system(sim, body):
    fleet = LpSimulatorFleet(parse_config(EXAMPLE_CONFIG.read_text()), sim, ports={"LP1": 0, "LP2": 0, "LP3": 0})
    stop = asyncio.Event()
    fleet_task = asyncio.create_task(fleet.run(stop, seconds=60))
    while not all(fleet.ports.values()):
        await asyncio.sleep(0.01)
    cfg = _config(fleet.ports)
    loop = Loop(cfg)
    loop_task = asyncio.create_task(loop.run(stop))
    for i in loop.initiators:
        await i.start()
    try:
        await body(cfg, fleet, loop)
    finally:
        for i in loop.initiators:
            await i.stop(logout_timeout_s=0.5)
        stop.set()
        await asyncio.wait_for(asyncio.gather(fleet_task, loop_task), 10)


async def _until(predicate, timeout=10.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.02)


def _raw(loop, symbol):
    q = loop.engine.quote("raw", symbol)
    return q.bids, q.asks


async def test_aggregated_book_is_the_lps_books_and_a_dropped_lp_is_excluded_until_its_fresh_snapshot():
    sim = _sim(Scenario(ScenarioKind.DISCONNECT, at_ms=1500, duration_ms=2500, lp="LP2"))

    async def body(cfg, fleet, loop):
        all3 = ("LP1", "LP2", "LP3")
        await _until(lambda: all(f.up for f in loop.feeds))
        await _until(lambda: _raw(loop, "EUR/USD") == expected_book(cfg, fleet.market, "EUR/USD", all3))
        assert _raw(loop, "WTI") == expected_book(cfg, fleet.market, "WTI", all3)
        # LP2 drops at t=1.5 s: excluded at once (LP_DOWN), the book is LP1 + LP3.
        await _until(lambda: fleet.market.now_ms >= 1520)
        await _until(lambda: _raw(loop, "EUR/USD") == expected_book(cfg, fleet.market, "EUR/USD", ("LP1", "LP3")), 2)
        assert not loop.feeds[1].up
        # It comes back after the scenario, with a fresh snapshot, and is priced again.
        await _until(lambda: loop.feeds[1].up, 10)
        await _until(lambda: _raw(loop, "EUR/USD") == expected_book(cfg, fleet.market, "EUR/USD", all3))

    await _with_system(sim, body)


async def test_stale_lp_is_excluded_by_its_limit_and_wti_goes_negative_and_back():
    sim = _sim(
        # Each state a check waits for lasts over a second before the next scenario changes it,
        # so a slow machine cannot miss its window. LP3's staleness limit is 500 ms here.
        Scenario(ScenarioKind.DRIFT, at_ms=0, duration_ms=1000, instrument="WTI", target="-0.40"),
        Scenario(ScenarioKind.STALE, at_ms=2500, duration_ms=3000, lp="LP3"),
        Scenario(ScenarioKind.DRIFT, at_ms=3500, duration_ms=500, instrument="WTI", target="0.25"),
    )

    async def body(cfg, fleet, loop):
        await _until(lambda: fleet.market.now_ms >= 1100)
        all3 = ("LP1", "LP2", "LP3")
        await _until(lambda: _raw(loop, "WTI") == expected_book(cfg, fleet.market, "WTI", all3))
        bids, asks = _raw(loop, "WTI")
        assert bids[0][0] < 0 and asks[0][0] < 0  # -0.40 +- a few ticks
        # LP3 goes silent at 2.5 s; its 500 ms staleness limit removes it by ~3.0 s.
        await _until(lambda: fleet.market.now_ms >= 3100)
        await _until(lambda: _raw(loop, "EUR/USD") == expected_book(cfg, fleet.market, "EUR/USD", ("LP1", "LP2")), 2)
        assert loop.feeds[2].up  # still connected: stale, not down
        # ... and WTI climbs back through zero; the books follow it there too.
        await _until(lambda: fleet.market.now_ms >= 4100)
        await _until(lambda: _raw(loop, "WTI") == expected_book(cfg, fleet.market, "WTI", ("LP1", "LP2")), 2)
        bids, asks = _raw(loop, "WTI")
        assert bids[0][0] > 0 and asks[0][0] > 0

    await _with_system(sim, body)


async def test_a_spiking_lp_is_filtered_and_counted_then_trusted_again():
    # EUR/USD's spike filter is 200 ticks in the example config; LP2 jumps 400 for a second.
    sim = _sim(Scenario(ScenarioKind.SPIKE, at_ms=1000, duration_ms=2500, lp="LP2", instrument="EUR/USD", ticks=400))

    async def body(cfg, fleet, loop):
        await _until(lambda: fleet.market.now_ms >= 1100)
        without_lp2 = ("LP1", "LP3")
        await _until(lambda: _raw(loop, "EUR/USD") == expected_book(cfg, fleet.market, "EUR/USD", without_lp2), 2)
        assert loop.engine.counters("EUR/USD")["spikes_filtered"] > 0
        assert loop.feeds[1].up  # filtered, not disconnected
        await _until(lambda: fleet.market.now_ms >= 3600)
        all3 = ("LP1", "LP2", "LP3")
        await _until(lambda: _raw(loop, "EUR/USD") == expected_book(cfg, fleet.market, "EUR/USD", all3), 2)

    await _with_system(sim, body)
