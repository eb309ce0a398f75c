"""Position accounting never loses a tick: realised + unrealised equals the cash P&L exactly; and
the fills of failed events are taken back exactly, however the events nest."""

from hypothesis import given
from hypothesis import strategies as st

from risk import BUY, SELL, Position, PositionBook

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


# A script of events as OrderDesk runs them: "open" starts an event (perhaps inside another),
# ("close", stands) ends the innermost one, a fill is (client, side, qty, price, internalised).
_steps = st.lists(
    st.one_of(
        st.just("open"),
        st.tuples(st.just("close"), st.booleans()),
        st.tuples(
            st.sampled_from(["A", "B"]),
            st.sampled_from([BUY, SELL]),
            st.integers(1, 100),
            st.integers(1, 1000),
            st.booleans(),
        ),
    ),
    max_size=40,
)


@given(_steps)
def test_a_fill_stands_exactly_when_every_event_around_it_stands(steps):
    book = PositionBook(1)
    spans: list[tuple[int, list[tuple]]] = []  # open events: (mark, fills so far inside it)
    kept: list[tuple] = []  # fills outside any event, or whose events all stood
    for step in steps:
        if step == "open":
            spans.append((book.mark(), []))
        elif step[0] == "close":
            if not spans:
                continue
            mark, inside = spans.pop()
            if step[1]:
                (spans[-1][1] if spans else kept).extend(inside)
            else:
                book.undo(mark)
            book.release(mark)
        else:
            book.on_client_fill(step[0], 0, step[1], step[2], step[3], step[4])
            (spans[-1][1] if spans else kept).append(step)
    while spans:
        mark, inside = spans.pop()
        (spans[-1][1] if spans else kept).extend(inside)
        book.release(mark)
    expected = PositionBook(1)
    for client, side, qty, price, internalised in kept:
        expected.on_client_fill(client, 0, side, qty, price, internalised)
    assert book.house == expected.house
    assert {k: p for k, p in book.clients.items() if p != Position()} == {
        k: p for k, p in expected.clients.items() if p != Position()
    }
