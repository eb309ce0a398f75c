"""What a hot reload may change in a running gateway: pricing, limits and routing apply live;
what is built into sessions, subscriptions and arrays is named and needs a restart."""

import msgspec

from engine.book import Engine
from engine.config import load_config, parse_config
from engine.reload import ConfigReloader, restart_needed
from tests.conftest import EXAMPLE_CONFIG, lp_quotes

TEXT = EXAMPLE_CONFIG.read_text()
T0 = 1_700_000_000_000_000_000


def _edited(old: str, new: str):
    assert old in TEXT
    return parse_config(TEXT.replace(old, new, 1))


def test_pricing_limits_routing_and_staleness_edits_apply_live():
    running = parse_config(TEXT)
    for old, new in [
        ("bid_markup = 1", "bid_markup = 9"),
        ("max_spread_rule = \"no_quote\"", "max_spread_rule = \"cap\""),
        ("max_order_qty = 10000", "max_order_qty = 20000"),
        ('routing = "internalise"', 'routing = "a_book"'),
        ("staleness_ms = 2000", "staleness_ms = 500"),
        ("size_bands = [1000, 3000, 5000]", "size_bands = [1000, 2000]"),
    ]:
        assert restart_needed(running, _edited(old, new)) == [], old


def test_edits_built_into_sessions_and_arrays_are_named():
    running = parse_config(TEXT)
    assert restart_needed(running, _edited("depth = 5", "depth = 4")) == ["tiers[0].depth"]
    assert restart_needed(running, _edited('tier = "institutional"', 'tier = "retail"')) == ["clients[0].tier"]
    assert restart_needed(running, _edited('tick_size = "0.00001"', 'tick_size = "0.0001"')) == [
        "instruments[0].tick_size"
    ]
    fewer_tiers = msgspec.structs.replace(running, tiers=running.tiers[:2])
    assert restart_needed(running, fewer_tiers) == ["tiers (added, removed or reordered)"]
    moved = msgspec.structs.replace(running, server=msgspec.structs.replace(running.server, port=9999))
    assert restart_needed(running, moved) == ["server"]


def test_the_engine_reprices_every_instrument_with_the_new_tier_parameters():
    engine = Engine(parse_config(TEXT))
    lp_quotes(engine, "LP1", "EUR/USD", 108500, 108520, 1000, T0)
    before = engine.quote("institutional", "EUR/USD")

    engine.reconfigure(_edited("bid_markup = 1", "bid_markup = 11"))  # the institutional tier's
    engine.expire(T0 + 1)
    after = engine.quote("institutional", "EUR/USD")
    assert after.bids[0][0] == before.bids[0][0] - 10
    assert after.asks == before.asks
    assert after.version == before.version + 1


def test_a_reloaded_lp_haircut_and_size_weight_reprice_the_levels_the_engine_already_holds():
    old_line = "haircut_ticks = 1             # a slightly"
    new_text = TEXT.replace(old_line, "haircut_ticks = 20\nsize_weight_pct = 10 # a slightly", 1)
    assert new_text != TEXT

    running = Engine(parse_config(TEXT))
    lp_quotes(running, "LP2", "EUR/USD", 108500, 108520, 1000, T0)
    before = running.quote("institutional", "EUR/USD")
    running.reconfigure(parse_config(new_text))  # LP2 sends nothing after it
    running.expire(T0 + 1)
    fresh = Engine(parse_config(new_text))
    lp_quotes(fresh, "LP2", "EUR/USD", 108500, 108520, 1000, T0)
    fresh.expire(T0 + 1)
    after, expected = running.quote("institutional", "EUR/USD"), fresh.quote("institutional", "EUR/USD")
    assert (after.bids, after.asks) == (expected.bids, expected.asks) != (before.bids, before.asks)


def test_kill_switches_apply_live():
    running = parse_config(TEXT)
    assert restart_needed(running, _edited("all = false", "all = true")) == []
    halt_wti = _edited('instruments = []              # e.g. ["WTI"]', 'instruments = ["WTI"]')
    assert restart_needed(running, halt_wti) == []


def test_a_reload_of_an_unchanged_file_says_so(tmp_path, caplog):
    path = tmp_path / "lagg.toml"
    path.write_text(TEXT)
    results = []
    reloader = ConfigReloader(path, parse_config(TEXT), lambda old, new: None, results.append)
    caplog.set_level("INFO", logger="lagg.config")
    assert reloader.reload()
    assert results == [True]
    assert f"config reload: {path} is unchanged" in caplog.text


def test_a_file_saved_as_something_other_than_utf8_is_refused_and_the_watch_goes_on(tmp_path):
    path = tmp_path / "lagg.toml"
    path.write_text(EXAMPLE_CONFIG.read_text())
    reloader = ConfigReloader(path, load_config(path), lambda old, new: None)
    path.write_bytes(EXAMPLE_CONFIG.read_bytes() + "# caf\u00e9\n".encode("latin-1"))
    assert reloader.reload() is False  # refused, not raised out of the watcher
    assert reloader.last_errors == [f"cannot read {path}: not UTF-8 text (byte {len(EXAMPLE_CONFIG.read_bytes()) + 5})"]
