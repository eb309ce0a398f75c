"""The config tree: the example loads, and every mistake is reported with its key path."""

import subprocess
import sys

import pytest

from engine.config import AggregationMode, ConfigError, MaxSpreadRule, parse_config
from tests.conftest import EXAMPLE_CONFIG


def test_example_config_loads_with_five_instruments_three_lps_three_tiers(example_config_text):
    cfg = parse_config(example_config_text)
    assert [i.symbol for i in cfg.instruments] == ["EUR/USD", "GBP/USD", "USD/JPY", "XAU/USD", "WTI"]
    assert [lp.name for lp in cfg.lps] == ["LP1", "LP2", "LP3"]
    assert [t.mode for t in cfg.tiers] == [
        AggregationMode.FULL_DEPTH,
        AggregationMode.TOP_OF_BOOK,
        AggregationMode.VWAP_BANDS,
    ]
    assert cfg.tier("retail").max_spread_rule is MaxSpreadRule.CAP
    assert cfg.instrument("WTI").price_grid().to_steps("-37.63") == -3763


def test_config_is_frozen(example_config_text):
    cfg = parse_config(example_config_text)
    with pytest.raises(AttributeError):
        cfg.tiers[0].bid_markup = 5  # type: ignore[misc]


def _errors(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(text)
    return info.value.errors


def test_three_distinct_mistakes_are_all_reported_with_key_paths(example_config_text):
    bad = (
        example_config_text.replace("min_spread_ticks = 10", "min_spread_ticks = -1")
        .replace('tick_size = "0.001"', 'tick_size = "abc"')
        .replace('tier = "bands"', 'tier = "platinum"')
    )
    errors = _errors(bad)
    assert len(errors) == 3, errors
    assert any(e.startswith("tiers[1].min_spread_ticks: ") and ">= 0" in e for e in errors)
    assert any(e.startswith("instruments[2].tick_size: ") for e in errors)
    assert any(e.startswith("clients[2].tier: unknown tier 'platinum'") for e in errors)


def test_unknown_keys_missing_keys_and_wrong_types_are_named():
    errors = _errors(
        """
        [[instruments]]
        symbol = "EUR/USD"
        tick = "0.00001"
        qty_step = "1000"

        [[lps]]
        name = "LP1"
        staleness_ms = "2s"

        [[tiers]]
        name = "t"
        mode = "best_guess"
        """
    )
    assert "instruments[0].tick: unknown key" in " ".join(errors)
    assert "instruments[0].tick_size: required key is missing" in errors
    assert "lps[0].staleness_ms: expected int, got str" in errors
    assert any(e.startswith("tiers[0].mode: invalid enum value 'best_guess'") for e in errors)


def test_cross_references_and_duplicates_are_checked():
    errors = _errors(
        """
        [[instruments]]
        symbol = "EUR/USD"
        tick_size = "0.00001"
        qty_step = "1000"
        [[instruments]]
        symbol = "EUR/USD"
        tick_size = "0.00001"
        qty_step = "1000"

        [[lps]]
        name = "LP1"
        instruments = ["EUR/USD", "XBT/USD"]

        [[tiers]]
        name = "t"
        mode = "vwap_bands"
        min_spread_ticks = 10
        max_spread_ticks = 5

        [[clients]]
        name = "c"
        sender_comp_id = "C1"
        tier = "t"
        """
    )
    assert "instruments[1].symbol: duplicate symbol 'EUR/USD'" in errors
    assert "lps[0].instruments[1]: unknown instrument 'XBT/USD'" in errors
    assert "tiers[0].max_spread_ticks: 5 is below min_spread_ticks 10" in errors
    assert "tiers[0].size_bands: required for mode 'vwap_bands'" in errors
    assert "clients[0]: set exactly one of password_sha256 or password_env" in errors


def test_toml_syntax_error_is_reported():
    errors = _errors("[[instruments]\nsymbol=")
    assert errors and errors[0].startswith("TOML syntax:")


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "engine.cli", *args], capture_output=True, text=True)


def test_check_config_cli_accepts_the_example():
    result = _cli("check-config", str(EXAMPLE_CONFIG))
    assert result.returncode == 0, result.stderr
    assert "OK" in result.stdout and "5 instruments" in result.stdout


def test_check_config_cli_lists_all_errors_and_fails(tmp_path, example_config_text):
    bad = tmp_path / "bad.toml"
    bad.write_text(
        example_config_text.replace("staleness_ms = 2000", 'staleness_ms = "2s"')
        .replace("depth = 3", "depth = 0")
        .replace('qty_step = "1"                # troy ounces', 'qty_step = "-1"')
    )
    result = _cli("check-config", str(bad))
    assert result.returncode == 1
    assert "3 error(s)" in result.stderr
    for path in ("lps[2].staleness_ms", "tiers[2].depth", "instruments[3].qty_step"):
        assert path in result.stderr


def test_routing_comes_from_the_tier_unless_the_client_sets_its_own(example_config_text):
    from engine.config import Routing

    text = example_config_text.replace(
        'name = "institutional"        # tight, deep, merged book',
        'name = "institutional"        # tight, deep, merged book\nrouting = "hybrid"\nhybrid_threshold = 500',
    )
    text = text.replace('routing = "internalise"\n', "")  # DEMO now inherits its tier's routing
    cfg = parse_config(text)
    by_id = {c.sender_comp_id: c for c in cfg.clients}
    assert cfg.routing_of(by_id["DEMO"]) == (Routing.HYBRID, 500)
    assert cfg.routing_of(by_id["FUNDA"]) == (Routing.A_BOOK, 0)  # its own
    assert cfg.routing.budget_ms == 250


def test_hybrid_routing_without_a_threshold_is_refused_where_it_is_set(example_config_text):
    text = example_config_text.replace(
        'name = "bands"', 'name = "bands"\nrouting = "hybrid"'
    ).replace("hybrid_threshold = 1000", "hybrid_threshold = 0")
    with pytest.raises(ConfigError) as err:
        parse_config(text)
    assert err.value.errors == [
        "tiers[2].hybrid_threshold: must be > 0 for hybrid routing",
        "clients[1].hybrid_threshold: must be > 0 for hybrid routing",
    ]
