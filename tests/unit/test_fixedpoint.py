"""Exact decimal <-> tick conversion: the rules a price has to obey before it reaches the book."""

import pytest

from engine.fixedpoint import DecimalFormatError, Grid, OffGridError, Rounding, parse_decimal


def test_parse_decimal_splits_mantissa_and_scale():
    assert parse_decimal("1.23450") == (123450, 5)
    assert parse_decimal("-37.63") == (-3763, 2)
    assert parse_decimal(b"150") == (150, 0)
    assert parse_decimal(".5") == (5, 1)
    assert parse_decimal("7.") == (7, 0)
    assert parse_decimal("+0.001") == (1, 3)


@pytest.mark.parametrize("text", ["", "-", ".", "1e5", "nan", "inf", " 1", "1,5", "1.2.3", "--1", "0x10"])
def test_parse_decimal_refuses_what_fix_does_not_allow(text):
    with pytest.raises(DecimalFormatError):
        parse_decimal(text)


def test_eurusd_price_to_ticks_and_back():
    grid = Grid.parse("0.00001")
    assert grid.to_steps("1.08523") == 108523
    assert grid.to_text(108523) == "1.08523"
    assert grid.to_steps("1.1") == 110000


def test_negative_prices_are_ordinary_values():
    wti = Grid.parse("0.01")
    assert wti.to_steps("-37.63") == -3763
    assert wti.to_text(-3763) == "-37.63"
    assert wti.to_steps("0") == 0
    assert wti.to_text(0) == "0.00"
    assert wti.to_text(-5) == "-0.05"


def test_off_grid_price_is_rejected_by_default():
    grid = Grid.parse("0.00001")
    with pytest.raises(OffGridError, match="1.085235 is not a multiple of 0.00001"):
        grid.to_steps("1.085235")


def test_off_grid_rounding_goes_toward_the_requested_infinity_for_negative_prices_too():
    grid = Grid.parse("0.01")
    assert grid.to_steps("1.005", Rounding.DOWN) == 100
    assert grid.to_steps("1.005", Rounding.UP) == 101
    assert grid.to_steps("-1.005", Rounding.DOWN) == -101
    assert grid.to_steps("-1.005", Rounding.UP) == -100


def test_non_decimal_tick_sizes():
    quarter = Grid.parse("0.25")
    assert quarter.to_steps("100.75") == 403
    assert quarter.to_text(403) == "100.75"
    with pytest.raises(OffGridError):
        quarter.to_steps("100.10")
    lots = Grid.parse("1000")
    assert lots.to_steps("1000000") == 1000
    assert lots.to_text(1000) == "1000000"


def test_grid_normalises_trailing_zeros_and_display_decimals():
    assert Grid.parse("0.0010") == Grid.parse("0.001")
    jpy_shown_with_more = Grid.parse("0.001", decimals=4)
    assert jpy_shown_with_more.to_text(150123) == "150.1230"
    with pytest.raises(ValueError):
        Grid.parse("0.001", decimals=2)
    with pytest.raises(ValueError):
        Grid.parse("0")
    with pytest.raises(ValueError):
        Grid.parse("-0.01")
