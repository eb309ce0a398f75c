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


_TWO_INSTRUMENTS = """
[server]
sender_comp_id = "LAGG"

[[instruments]]
symbol = "EUR/USD"
tick_size = "0.00001"
qty_step = "1000"

[[instruments]]
symbol = "GBP/USD"
tick_size = "0.00001"
qty_step = "1000"

[[tiers]]
name = "t"
"""


def test_an_lp_listing_an_instrument_twice_is_refused():
    errors = _errors(_TWO_INSTRUMENTS + '[[lps]]\nname = "LP1"\ninstruments = ["EUR/USD", "GBP/USD", "EUR/USD"]\n')
    assert errors == ["lps[0].instruments[2]: duplicate instrument 'EUR/USD'"]


def test_two_lps_on_one_fix_session_are_refused_but_unset_ports_are_not():
    lp = '[[lps]]\nname = "{}"\nhost = "10.0.0.1"\nport = {}\ntarget_comp_id = "{}"\n'
    errors = _errors(_TWO_INSTRUMENTS + lp.format("A", 9101, "LPX") + lp.format("B", 9101, "LPX"))
    assert errors == ["lps[1]: same host, port and target_comp_id as lps[0] (10.0.0.1:9101 LPX)"]
    # Another port or another target is another session; port 0 is "set at run time".
    parse_config(_TWO_INSTRUMENTS + lp.format("A", 9101, "LPX") + lp.format("B", 9102, "LPX"))
    parse_config(_TWO_INSTRUMENTS + lp.format("A", 9101, "LPX") + lp.format("B", 9101, "LPY"))
    parse_config(_TWO_INSTRUMENTS + lp.format("A", 0, "LPX") + lp.format("B", 0, "LPX"))


def test_a_symbol_map_giving_two_instruments_one_lp_symbol_is_refused():
    lp = '[[lps]]\nname = "LP1"\ninstruments = ["EUR/USD", "GBP/USD"]\nsymbol_map = {}\n'
    errors = _errors(_TWO_INSTRUMENTS + lp.format('{ "EUR/USD" = "X", "GBP/USD" = "X" }'))
    assert errors == ["lps[0].symbol_map.GBP/USD: LP symbol 'X' is used for both 'EUR/USD' and 'GBP/USD'"]
    # Mapped onto another instrument's own (unmapped) symbol is the same clash.
    errors = _errors(_TWO_INSTRUMENTS + lp.format('{ "EUR/USD" = "GBP/USD" }'))
    assert errors == ["lps[0].symbol_map.EUR/USD: LP symbol 'GBP/USD' is used for both 'EUR/USD' and 'GBP/USD'"]
    parse_config(_TWO_INSTRUMENTS + lp.format('{ "EUR/USD" = "EURUSD", "GBP/USD" = "GBPUSD" }'))


def test_a_client_with_the_servers_own_comp_id_is_refused():
    client = '[[clients]]\nname = "c"\nsender_comp_id = "{}"\ntier = "t"\npassword_env = "PW"\n'
    errors = _errors("lps = []\n" + _TWO_INSTRUMENTS + client.format("LAGG"))
    assert errors == ["clients[0].sender_comp_id: 'LAGG' is the server's own CompID (server.sender_comp_id)"]
    parse_config("lps = []\n" + _TWO_INSTRUMENTS + client.format("BROKER1"))


def test_an_empty_lp_list_is_a_valid_config():
    # The session-only demo acceptor (fixserver.demo_acceptor) runs without LPs; a market needs
    # its simulated LPs named in [[lps]] and SimFeed refuses any that are not.
    cfg = parse_config("lps = []\n" + _TWO_INSTRUMENTS)
    assert cfg.lps == []


def test_one_bad_value_is_one_error_not_one_per_reference_to_its_item(example_config_text):
    # A TOML float where an exact decimal string belongs: EUR/USD fails to parse, and the LPs
    # and symbol maps that name it must not each add "unknown instrument 'EUR/USD'".
    errors = _errors(example_config_text.replace('tick_size = "0.00001"', "tick_size = 0.00001", 1))
    assert errors == ["instruments[0].tick_size: expected str, got float"]
    # Likewise a tier that failed to parse (its name is over 64 characters) is not "unknown" to
    # the client that names it.
    long = "retail " * 10
    errors = _errors(example_config_text.replace('"retail"', f'"{long}"'))
    assert len(errors) == 1 and errors[0].startswith("tiers[1].name: "), errors


def test_a_tier_that_failed_to_parse_does_not_break_the_other_checks():
    errors = _errors(
        """
        lps = []
        [[instruments]]
        symbol = "EUR/USD"
        tick_size = "0.00001"
        qty_step = "1000"
        [[tiers]]
        name = ""
        [[tiers]]
        name = "t"
        [[clients]]
        name = "c"
        sender_comp_id = "C1"
        tier = "t"
        password_env = "C1_PASSWORD"
        routing = "hybrid"
        """
    )
    assert errors[0].startswith("tiers[0].name: ")
    assert errors[1:] == ["clients[0].hybrid_threshold: must be > 0 for hybrid routing"]


def test_kill_switches_name_only_clients_instruments_and_lps_the_config_defines():
    text = EXAMPLE_CONFIG.read_text().replace(
        'clients = []                  # e.g. ["RETAIL1"]', 'clients = ["RETAIL1", "RETAIL2"]'
    ).replace('instruments = []              # e.g. ["WTI"]', 'instruments = ["WTI", "BTC"]').replace(
        'lps = []                      # no A-book', 'lps = ["LP9"]                 # no A-book'
    )
    with pytest.raises(ConfigError) as exc:
        parse_config(text)
    assert exc.value.errors == [
        "halt.clients[1]: unknown client CompID 'RETAIL2'",
        "halt.instruments[1]: unknown instrument 'BTC'",
        "halt.lps[0]: unknown LP 'LP9'",
    ]
