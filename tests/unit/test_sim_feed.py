"""Simulated LPs enter the engine the way real feeds must: book first, LP_UP after, and an LP
that drops is withdrawn at once and returns only with a fresh book."""

from engine.batch import CLEAR_BOOK, LP_DOWN, LP_UP, SET_LEVEL, UpdateBatch
from engine.config import parse_config
from feeds.sim_feed import SimFeed
from feeds.sim_market import Scenario, ScenarioKind, SimConfig, SimInstrument, SimLp
from tests.conftest import EXAMPLE_CONFIG


def _feed(*scenarios):
    cfg = parse_config(EXAMPLE_CONFIG.read_text())
    sim = SimConfig(
        step_ms=100,
        instruments=[SimInstrument("EUR/USD", "1.08500"), SimInstrument("WTI", "-1.00")],
        lps=[SimLp("LP1", depth=2), SimLp("LP3", instruments=["WTI"], depth=2)],
        scenarios=list(scenarios),
    )
    return SimFeed(cfg, sim)


def _kinds(batch):
    return [(int(batch.kind[i]), int(batch.lp[i])) for i in range(batch.n)]


def test_first_book_then_lp_up():
    feed, batch = _feed(), UpdateBatch()
    feed.step(batch, 1)
    rows = _kinds(batch)
    assert rows[-2:] == [(LP_UP, 0), (LP_UP, 2)] or rows[-2:] == [(LP_UP, 2), (LP_UP, 0)]
    first_up = min(i for i, (k, _) in enumerate(rows) if k == LP_UP)
    assert all(k in (CLEAR_BOOK, SET_LEVEL) for k, _ in rows[:first_up])
    assert sum(k == SET_LEVEL for k, _ in rows) == (2 + 1) * 2 * 2  # (LP1: 2 instr, LP3: 1) x 2 sides x 2 levels
    batch.clear()
    feed.step(batch, 2)
    assert {k for k, _ in _kinds(batch)} == {SET_LEVEL}


def test_disconnect_withdraws_and_return_comes_with_a_fresh_book():
    feed, batch = _feed(Scenario(ScenarioKind.DISCONNECT, at_ms=200, duration_ms=200, lp="LP3")), UpdateBatch()
    feed.step(batch, 1)  # t=100
    batch.clear()
    feed.step(batch, 2)  # t=200: LP3 down
    assert (LP_DOWN, 2) in _kinds(batch)
    assert all(lp != 2 for k, lp in _kinds(batch) if k == SET_LEVEL)
    batch.clear()
    feed.step(batch, 3)  # t=300: still down, nothing from it, no second LP_DOWN
    assert all(lp != 2 for _, lp in _kinds(batch))
    batch.clear()
    feed.step(batch, 4)  # t=400: back
    lp3 = [k for k, lp in _kinds(batch) if lp == 2]
    assert lp3[0] == CLEAR_BOOK and lp3[-1] == LP_UP and SET_LEVEL in lp3
