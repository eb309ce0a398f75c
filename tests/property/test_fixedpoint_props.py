"""Fixed-point conversion is exact for every tick size and price, negative ones included."""

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from engine.fixedpoint import Grid, Rounding

grids = st.builds(
    lambda mantissa, scale: Grid.parse(format(Decimal(mantissa).scaleb(-scale), "f")),
    st.sampled_from([1, 2, 5, 25, 50]),
    st.integers(min_value=0, max_value=8),
)


@given(grids, st.integers(min_value=-(10**12), max_value=10**12))
def test_text_round_trip_is_exact(grid, steps):
    assert grid.to_steps(grid.to_text(steps)) == steps


@given(grids, st.integers(min_value=-(10**12), max_value=10**12))
def test_rounding_brackets_the_exact_value(grid, steps):
    # A value strictly between two grid points rounds down to the lower and up to the upper.
    lower = Decimal(grid.to_text(steps))
    step = Decimal(grid.step_text)
    between = lower + step / 3
    text = format(between, "f")
    assert grid.to_steps(text, Rounding.DOWN) == steps
    assert grid.to_steps(text, Rounding.UP) == steps + 1
    assert Decimal(grid.to_text(steps)) == Decimal(steps) * step
