"""What an SRE reads off /metrics about the LPs and the pricing: the counts the feeds and the
engine keep, exported at scrape time once Metrics.attach has named them (engine.metrics)."""

from __future__ import annotations

from engine.batch import UpdateBatch
from engine.book import Engine
from engine.config import Config, parse_config
from engine.metrics import Metrics
from feeds.lp_feed import DROP_REASONS, LpFeed
from feeds.sim_feed import SimFeed
from feeds.sim_market import Scenario, ScenarioKind, SimConfig, SimInstrument, SimLp
from fixserver.codec import encode
from tests.conftest import EXAMPLE_CONFIG

COLLECTED = {
    "lagg_lp_md_entries_total",
    "lagg_lp_md_dropped_total",
    "lagg_lp_reconnects_total",
    "lagg_lp_books_withdrawn_total",
    "lagg_lp_stale_total",
    "lagg_spikes_filtered_total",
    "lagg_no_quote_total",
    "lagg_quotes_published_total",
    "lagg_client_send_buffer_bytes",
    "lagg_logon_failures_total",
}


def _config() -> Config:
    return parse_config(EXAMPLE_CONFIG.read_text())


def _value(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


# --- LP feeds over FIX --------------------------------------------------------------------------


class _Session:
    next_target_seq = 2


class _Handle:
    """The session handle as the feed sees it (the test plays the session)."""

    def __init__(self) -> None:
        self.session = _Session()
        self.is_logged_on = True

    def send(self, msg_type, body, resendable=None) -> None:  # noqa: ANN001
        pass


def _md(kind: bytes, seq: int, entries: list[tuple[int, bytes]]) -> bytes:
    header = [(49, b"LP1"), (56, b"LAGG"), (34, seq), (52, b"20261123-10:00:00.000")]
    count = sum(tag == 269 for tag, _ in entries)
    return encode(kind, header, [(262, b"0"), (55, b"EUR/USD"), (268, b"%d" % count), *entries])


def test_md_entries_received_and_dropped_by_reason_per_lp() -> None:
    cfg = _config()
    feed = LpFeed(cfg, cfg.lps[0], UpdateBatch())  # LP1, EUR/USD is instrument 0
    handle = _Handle()
    feed.on_create(handle)  # type: ignore[arg-type]
    feed.on_logon(handle)  # type: ignore[arg-type]
    metrics = Metrics()
    metrics.attach(feeds=[feed])
    for reason in DROP_REASONS:  # every reason exported from the start, so rate() sees the first
        assert _value(metrics, "lagg_lp_md_dropped_total", lp="LP1", reason=reason) == 0
    feed._on_read(_md(b"W", 2, [
        (269, b"0"), (270, b"1.08500"), (271, b"1000000"), (278, b"b0"),
        (269, b"1"), (270, b"1.085005"), (271, b"1000000"), (278, b"a0"),  # off the 0.00001 grid
        (269, b"1"), (270, b"1.08502"), (271, b"1000000"), (278, b"a1"),
    ]))  # fmt: skip
    handle.session.next_target_seq = 3
    feed._on_read(_md(b"X", 3, [(279, b"1"), (269, b"0"), (278, b"nope"), (271, b"2000000")]))
    assert _value(metrics, "lagg_lp_md_entries_total", lp="LP1") == 4
    assert _value(metrics, "lagg_lp_md_dropped_total", lp="LP1", reason="off_grid") == 1
    assert _value(metrics, "lagg_lp_md_dropped_total", lp="LP1", reason="unknown_id") == 1
    assert _value(metrics, "lagg_lp_md_dropped_total", lp="LP1", reason="bad_number") == 0
    assert _value(metrics, "lagg_lp_reconnects_total", lp="LP1") == 0  # no initiator made yet
    assert _value(metrics, "lagg_lp_books_withdrawn_total", lp="LP1") == 0
    # A change off the grid: our copy of the LP's EUR/USD book is no longer known good.
    handle.session.next_target_seq = 4
    feed._on_read(_md(b"X", 4, [(279, b"1"), (269, b"0"), (278, b"b0"), (270, b"1.085005"), (271, b"1000000")]))
    assert _value(metrics, "lagg_lp_books_withdrawn_total", lp="LP1") == 1


# --- the engine and the simulated LPs -----------------------------------------------------------

STEP_MS = 100


class _Market:
    """Engine and simulated LPs driven the way the gateway's loop drives them, one step a turn."""

    def __init__(self, *scenarios: Scenario, lps: tuple[str, ...] = ("LP1", "LP2", "LP3")) -> None:
        cfg = _config()
        sim = SimConfig(
            step_ms=STEP_MS,
            instruments=[SimInstrument("EUR/USD", "1.08500"), SimInstrument("WTI", "0.60")],
            lps=[SimLp(name, depth=2) for name in lps],
            scenarios=list(scenarios),
        )
        self.engine = Engine(cfg)
        self.feed = SimFeed(cfg, sim)
        self.batch = UpdateBatch()
        self.metrics = Metrics()
        self.metrics.attach(engine=self.engine, feeds=self.feed.lps)
        self.step_no = 0

    def run_until(self, t_ms: int) -> None:
        while self.step_no * STEP_MS < t_ms:
            self.step_no += 1
            now = self.step_no * STEP_MS * 1_000_000
            self.feed.step(self.batch, now)
            self.engine.apply(self.batch, now)
            self.batch.clear()
            self.engine.expire(now)

    def value(self, name: str, **labels: str) -> float | None:
        return _value(self.metrics, name, **labels)


def test_spikes_filtered_per_instrument_count_what_the_engine_ignored() -> None:
    market = _Market(Scenario(ScenarioKind.SPIKE, at_ms=1000, duration_ms=500, lp="LP1", instrument="EUR/USD",
                              ticks=5000))  # fmt: skip
    market.run_until(900)
    assert market.value("lagg_spikes_filtered_total", instrument="EUR/USD") == 0
    market.run_until(2000)
    spikes = market.value("lagg_spikes_filtered_total", instrument="EUR/USD")
    assert spikes == market.engine.counters("EUR/USD")["spikes_filtered"] == 5  # one per spiked step
    assert market.value("lagg_spikes_filtered_total", instrument="WTI") == 0


def test_no_quotes_by_reason_and_quotes_published_per_tier() -> None:
    market = _Market(Scenario(ScenarioKind.CROSSED, at_ms=1000, duration_ms=300, lp="LP3", instrument="EUR/USD",
                              ticks=20))  # fmt: skip
    market.run_until(900)
    published = {t: market.value("lagg_quotes_published_total", tier=t) for t in market.engine.tier_names}
    assert all(published.values())
    assert market.value("lagg_no_quote_total", tier="all", instrument="EUR/USD", reason="crossed") == 0
    market.run_until(1500)
    tiers = len(market.engine.tier_names)
    # Three crossed steps, each a no quote in every tier (counted over all tiers: tier="all").
    assert market.value("lagg_no_quote_total", tier="all", instrument="EUR/USD", reason="crossed") == 3 * tiers
    assert market.value("lagg_no_quote_total", tier="all", instrument="WTI", reason="crossed") == 0
    for tier, before in published.items():
        assert market.value("lagg_quotes_published_total", tier=tier) > before  # type: ignore[operator]


def test_an_lp_going_stale_counts_once_per_silence() -> None:
    # LP3's staleness limit is 2 s (configs/example.toml): silent from 500 ms, excluded from 2.5 s.
    market = _Market(
        Scenario(ScenarioKind.STALE, at_ms=500, duration_ms=3000, lp="LP3"),
        Scenario(ScenarioKind.STALE, at_ms=5000, duration_ms=2500, lp="LP3"),
    )
    market.run_until(2300)
    assert market.value("lagg_lp_stale_total", lp="LP3", instrument="EUR/USD") == 0
    market.run_until(4900)  # many expire() calls while silent, then it talks again
    assert market.value("lagg_lp_stale_total", lp="LP3", instrument="EUR/USD") == 1
    assert market.value("lagg_lp_stale_total", lp="LP3", instrument="WTI") == 1
    market.run_until(8000)  # a second silence
    assert market.value("lagg_lp_stale_total", lp="LP3", instrument="EUR/USD") == 2
    assert market.value("lagg_lp_stale_total", lp="LP3", instrument="WTI") == 2
    assert market.value("lagg_lp_stale_total", lp="LP1", instrument="EUR/USD") == 0


def test_a_simulated_lp_that_drops_is_down_then_counts_a_reconnect() -> None:
    market = _Market(Scenario(ScenarioKind.DISCONNECT, at_ms=1000, duration_ms=500, lp="LP3"))
    status = {s.lp.name: s for s in market.feed.lps}
    market.run_until(900)
    assert status["LP3"].up and status["LP1"].up
    market.run_until(1200)
    assert not status["LP3"].up
    assert market.value("lagg_lp_reconnects_total", lp="LP3") == 0
    market.run_until(1600)
    assert status["LP3"].up
    assert market.value("lagg_lp_reconnects_total", lp="LP3") == 1
    assert market.value("lagg_lp_reconnects_total", lp="LP1") == 0
    # LP1: 2 instruments x 2 sides x 2 levels per step, every one of 16 steps.
    assert market.value("lagg_lp_md_entries_total", lp="LP1") == 16 * 8


def test_an_lp_of_the_config_that_the_simulator_does_not_run_stays_down() -> None:
    market = _Market(lps=("LP1", "LP2"))
    market.run_until(500)
    assert {s.lp.name: s.up for s in market.feed.lps} == {"LP1": True, "LP2": True, "LP3": False}
    assert market.value("lagg_lp_md_entries_total", lp="LP3") == 0


# --- the registry -------------------------------------------------------------------------------


def test_collected_metrics_are_registered_once_and_exported_before_anything_is_attached() -> None:
    metrics = Metrics()
    names = [family.name + "_total" if family.type == "counter" else family.name
             for family in metrics.registry.collect()]  # fmt: skip
    assert COLLECTED <= metrics.names()
    assert all(names.count(name) == 1 for name in COLLECTED)
    assert metrics.registry.get_sample_value("lagg_logon_failures_total") is None  # no acceptor yet
