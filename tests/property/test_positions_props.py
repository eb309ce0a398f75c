"""Position accounting never loses a tick: realised + unrealised equals the cash P&L exactly."""

from hypothesis import given
from hypothesis import strategies as st

from risk import BUY, SELL, Position

fills = st.lists(
    st.tuples(st.sampled_from([BUY, SELL]), st.integers(1, 10_000), st.integers(-10**7, 10**7)),
    max_size=60,
)


@given(fills, st.integers(-10**7, 10**7))
def test_realised_plus_unrealised_is_cash_pnl(trades, mark):
    p = Position()
    cash = 0
    net = 0
    for side, qty, price in trades:
        p.apply(side, qty, price)
        cash -= side * qty * price
        net += side * qty
    assert p.qty == net
    assert p.realised + p.unrealised(mark) == cash + net * mark
