"""Whatever the sequence of tier quotes and however often a client is conflated, the book it
rebuilds from our W/X stream (keyed by position, by MDEntryID, or reading 290 as a display
position) equals the engine's latest ladder (the sides it asked for, to its depth) once it can
read again, and every QuoteID in that book can be hit."""

from hypothesis import given, settings
from hypothesis import strategies as st

from fixserver.marketdata import MarketDataHub
from fixserver.md_book import MdBook
from tests.unit.test_marketdata import GRIDS, QTY, SYMBOLS, FakeEngine, IdBook, ShiftingBook, _levels, _v, _wire


@st.composite
def ladder(draw):
    def side(sign):
        n = draw(st.integers(0, 5))
        start = draw(st.integers(-500, 500))
        gaps = draw(st.lists(st.integers(1, 5), min_size=n, max_size=n))
        prices, p = [], start
        for g in gaps:
            prices.append(p)
            p += sign * g
        return [(px, draw(st.integers(1, 50))) for px in prices]

    return side(-1), side(+1)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.tuples(ladder(), st.booleans()), min_size=1, max_size=12),
    st.booleans(),
    st.sampled_from([0, 2]),
    st.sampled_from([(0, 1), (0,), (1,)]),
)
def test_client_book_converges_to_engine_ladder(steps, incremental, depth, sides):
    engine = FakeEngine()
    engine.set(0, 0, [], [])
    hub = MarketDataHub(SYMBOLS, GRIDS, QTY, tier_depths=[5], quote_of=engine.quote_of)
    book = MdBook()
    shifting = ShiftingBook()  # reads 290 as a display position: the order of entries matters
    by_id = IdBook()  # keys entries by 278: changes and deletes must name ids it holds
    types = tuple(b"%d" % side for side in sides)
    request = _v(depth=b"%d" % depth, update=b"1" if incremental else b"0", types=types)
    snaps, reject = hub.on_request("c", 0, request, 0)
    assert reject is None
    for req, body in snaps:
        book.apply(_wire(req, body))
        shifting.apply(_wire(req, body))
        by_id.apply(_wire(req, body))
    shown = depth or 5
    for (bids, asks), readable in steps:
        engine.set(0, 0, bids, asks)
        for req, body in hub.publish(0, writable=lambda s, r=readable: r).get("c", []):
            book.apply(_wire(req, body))
            shifting.apply(_wire(req, body))
            by_id.apply(_wire(req, body))
    for req, body in hub.publish(0).get("c", []):  # the client reads again
        book.apply(_wire(req, body))
        shifting.apply(_wire(req, body))
        by_id.apply(_wire(req, body))
    (bids, asks), _ = engine.quote_of(0, 0)

    def text(side, levels):
        if side not in sides:  # a side not asked for is never sent
            return []
        return [(GRIDS[0].to_text(p).encode(), QTY[0].to_text(q).encode()) for p, q in levels[:shown]]

    assert _levels(book) == (text(0, bids), text(1, asks))
    assert shifting.levels() == [text(0, bids), text(1, asks)]
    assert by_id.levels() == [text(0, bids), text(1, asks)]
    assert sorted(by_id.entries) == sorted(quote_id for side in book.ladder(b"EUR/USD") for _, _, quote_id in side)
    # Every QuoteID the client holds names the level it shows, and can be hit.
    for side, levels in enumerate(book.ladder(b"EUR/USD")):
        for px, qty, quote_id in levels:
            hit = hub.resolve_quote(quote_id, 0, 1, ttl_ns=10**12)
            assert not isinstance(hit, str), (quote_id, hit)
            assert (hit.side, GRIDS[0].to_text(hit.price).encode(), QTY[0].to_text(hit.qty).encode()) == (side, px, qty)
