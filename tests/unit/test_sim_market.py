"""The simulated LP market: deterministic, and each scenario does what it says."""

from engine.fixedpoint import Grid
from feeds.sim_market import LpState, Scenario, ScenarioKind, SimConfig, SimInstrument, SimLp, SimMarket

GRIDS = {"EUR/USD": Grid.parse("0.00001"), "WTI": Grid.parse("0.01")}


def _cfg(*scenarios: Scenario, seed: int = 7) -> SimConfig:
    return SimConfig(
        seed=seed,
        step_ms=100,
        instruments=[
            SimInstrument("EUR/USD", "1.08500", vol_ticks=3, half_spread_ticks=4),
            SimInstrument("WTI", "5.00", vol_ticks=0, half_spread_ticks=2),
        ],
        lps=[SimLp("LP1", depth=3), SimLp("LP2", depth=3, noise_ticks=0), SimLp("LP3", instruments=["EUR/USD"])],
        scenarios=list(scenarios),
    )


def _run(market: SimMarket, steps: int):
    return [market.step() for _ in range(steps)]


def test_same_seed_same_books_different_seed_different_books():
    a = _run(SimMarket(_cfg(), GRIDS), 50)
    b = _run(SimMarket(_cfg(), GRIDS), 50)
    c = _run(SimMarket(_cfg(seed=8), GRIDS), 50)
    assert a == b
    assert a != c


def test_books_are_ordered_uncrossed_and_positive_sized():
    for books in _run(SimMarket(_cfg(), GRIDS), 100):
        assert ("LP3", "WTI") not in books  # LP3 quotes EUR/USD only
        for book in books.values():
            assert book.bid_px[0] < book.ask_px[0]
            assert list(book.bid_px) == sorted(book.bid_px, reverse=True)
            assert list(book.ask_px) == sorted(book.ask_px)
            assert min(book.bid_qty + book.ask_qty) > 0


def test_spike_moves_only_the_spiking_lp():
    spike = Scenario(ScenarioKind.SPIKE, at_ms=500, duration_ms=300, lp="LP2", instrument="EUR/USD", ticks=500)
    calm = _run(SimMarket(_cfg(), GRIDS), 10)
    spiky = _run(SimMarket(_cfg(spike), GRIDS), 10)
    for step, (c, s) in enumerate(zip(calm, spiky, strict=True), start=1):
        t = step * 100
        lp2_shift = s[("LP2", "EUR/USD")].bid_px[0] - c[("LP2", "EUR/USD")].bid_px[0]
        assert lp2_shift == (500 if 500 <= t < 800 else 0)
        assert s[("LP1", "EUR/USD")] == c[("LP1", "EUR/USD")]


def test_stale_and_disconnected_lps_send_nothing_then_resume():
    market = SimMarket(
        _cfg(
            Scenario(ScenarioKind.STALE, at_ms=200, duration_ms=200, lp="LP1"),
            Scenario(ScenarioKind.DISCONNECT, at_ms=300, duration_ms=300, lp="LP2"),
        ),
        GRIDS,
    )
    seen = []
    for books in _run(market, 8):
        seen.append(sorted({lp for lp, _ in books}))
    assert seen[0] == ["LP1", "LP2", "LP3"]  # t=100
    assert seen[1] == ["LP2", "LP3"]  # t=200: LP1 stale
    assert seen[2] == ["LP3"]  # t=300: LP1 stale, LP2 down
    assert seen[4] == ["LP1", "LP3"]  # t=500: LP2 still down
    assert seen[6] == ["LP1", "LP2", "LP3"]  # t=700
    assert market.lp_state("LP2", 350) is LpState.DOWN
    assert market.lp_state("LP1", 250) is LpState.STALE
    assert market.lp_state("LP1", 450) is LpState.LIVE


def test_crossed_lp_book_has_bid_above_ask():
    market = SimMarket(_cfg(Scenario(ScenarioKind.CROSSED, at_ms=0, duration_ms=10_000, lp="LP1", ticks=3)), GRIDS)
    book = market.step()[("LP1", "EUR/USD")]
    assert book.bid_px[0] - book.ask_px[0] == 3


def test_drift_takes_wti_through_zero_into_negative_prices_and_back():
    down = Scenario(ScenarioKind.DRIFT, at_ms=0, duration_ms=1000, instrument="WTI", target="-37.63")
    up = Scenario(ScenarioKind.DRIFT, at_ms=1000, duration_ms=1000, instrument="WTI", target="5.00")
    market = SimMarket(_cfg(down, up), GRIDS)
    mids = []
    for books in _run(market, 20):
        book = books[("LP2", "WTI")]  # LP2 has no noise: its mid is the market's
        mids.append((book.bid_px[0] + book.ask_px[0]) // 2)
    assert mids[0] == 500 + round((-3763 - 500) * 0.1)  # a straight line from the start
    assert mids[9] == -3763  # the step ending at t=1000 reaches the target
    assert min(mids) == -3763
    assert mids[-1] == 500
    assert any(m < 0 for m in mids) and mids[0] > 0


def test_last_look_rejects_the_configured_share_deterministically():
    cfg = _cfg(Scenario(ScenarioKind.LAST_LOOK, at_ms=0, duration_ms=10_000, lp="LP1", pct=50))
    a, b = SimMarket(cfg, GRIDS), SimMarket(cfg, GRIDS)
    decisions = [a.fill_decision("LP1", 10) for _ in range(400)]
    assert decisions == [b.fill_decision("LP1", 10) for _ in range(400)]
    rejected = sum(r for _, r in decisions)
    assert 140 < rejected < 260
    assert all(q == (0 if r else 10) for q, r in decisions)
    assert a.fill_decision("LP2", 10) == (10, False)
