"""Execution never gives a client a worse price than asked, never overfills, FOK is atomic."""

from hypothesis import given
from hypothesis import strategies as st

from engine.config import AggregationMode
from engine.execution import BUY, SELL, Order, OrdType, TimeInForce, execute


@st.composite
def ladders(draw):
    best = draw(st.integers(-10_000, 10_000))
    gaps = draw(st.lists(st.integers(1, 50), min_size=0, max_size=6))
    sizes = draw(st.lists(st.integers(1, 1000), min_size=len(gaps) + 1, max_size=len(gaps) + 1))
    prices = [best]
    for g in gaps:
        prices.append(prices[-1] + g)
    return prices, sizes


@given(
    ladders(),
    st.sampled_from([BUY, SELL]),
    st.integers(1, 5000),
    st.sampled_from(list(TimeInForce)),
    st.one_of(st.none(), st.integers(-10_100, 10_400)),
    st.sampled_from([AggregationMode.FULL_DEPTH, AggregationMode.TOP_OF_BOOK]),
)
def test_sweep_respects_limit_quantity_and_fok(ladder, side, qty, tif, limit, mode):
    prices, sizes = ladder
    if side == BUY:
        asks, bids = tuple(zip(prices, sizes, strict=True)), ()
    else:
        bids, asks = tuple(zip([-p for p in prices], sizes, strict=True)), ()
    ord_type = OrdType.MARKET if limit is None else OrdType.LIMIT
    ex = execute(Order(side, qty, ord_type, tif, limit), bids, asks, mode)
    assert ex.filled + ex.resting <= qty
    for f in ex.fills:
        assert f.qty > 0
        if limit is not None:
            assert (f.price <= limit) if side == BUY else (f.price >= limit)
    if tif is TimeInForce.FOK:
        assert ex.filled in (0, qty)
    if ex.reject is not None:
        assert ex.fills == () and ex.resting == 0
    # Fills take the best levels first: prices are monotone in the client's disfavour.
    px = [f.price for f in ex.fills]
    assert px == (sorted(px) if side == BUY else sorted(px, reverse=True))
