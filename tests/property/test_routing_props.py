"""Routing under any sequence of LP answers, lost sessions and clock ticks: every route ends once,
its fills add up, no LP is asked twice, no order goes past the limit or after the budget."""

from hypothesis import given, settings
from hypothesis import strategies as st

from risk.routing import LateFill, LpPrice, RouteDone, RouteFill, Router

MS = 1_000_000
BUDGET = 100 * MS

lp_books = st.dictionaries(st.integers(0, 4), st.tuples(st.integers(-50, 50), st.integers(1, 100)), max_size=5)


@settings(max_examples=300, deadline=None)
@given(
    book=lp_books,
    side=st.sampled_from([1, -1]),
    qty=st.integers(1, 50),
    limit=st.none() | st.integers(-50, 50),
    data=st.data(),
)
def test_every_route_ends_once_with_its_fills_adding_up(book, side, qty, limit, data):
    sent: list[tuple[int, str, int, int | None, int]] = []  # lp, id, qty, limit, time
    now = [0]

    def send(lp, cl_ord_id, instr, s, q, lim):
        sent.append((lp, cl_ord_id, q, lim, now[0]))
        return True

    def prices(instr, s):
        return [LpPrice(lp, px, q) for lp, (px, q) in book.items()]

    router = Router(send, prices, [f"LP{n}" for n in range(5)])
    events = list(router.start("R", 0, side, qty, limit, 0, BUDGET))
    closed: set[str] = set()  # answered, or lost with their LP's session
    for _ in range(30):
        open_children = {c[1]: c for c in sent if c[1] not in closed}
        if not open_children and "R" not in router:
            break
        action = data.draw(st.sampled_from(["fill", "partial", "reject", "down", "tick"]))
        now[0] += data.draw(st.integers(0, 40)) * MS
        if action == "tick" or not open_children:
            events += router.poll(now[0])
        else:
            cl_ord_id = data.draw(st.sampled_from(sorted(open_children)))
            lp, _, child_qty, _, _ = open_children[cl_ord_id]
            if action == "down":
                events += router.on_lp_down(lp, now[0])
                closed.update(k for k, v in open_children.items() if v[0] == lp)
            else:
                px = book[lp][0]
                if action == "fill":
                    events += router.on_execution(lp, cl_ord_id, b"2", child_qty, px, "", now[0])
                elif action == "partial":
                    part = max(1, child_qty // 2)
                    events += router.on_execution(lp, cl_ord_id, b"1", part, px, "", now[0])
                    events += router.on_execution(lp, cl_ord_id, b"4", 0, None, "rest cancelled", now[0])
                else:
                    events += router.on_execution(lp, cl_ord_id, b"8", 0, None, "last look", now[0])
                closed.add(cl_ord_id)
    events += router.poll(now[0] + BUDGET)

    dones = [e for e in events if isinstance(e, RouteDone)]
    assert len(dones) == 1 and "R" not in router
    (done,) = dones
    fills = [e for e in events if isinstance(e, RouteFill)]
    assert sum(f.qty for f in fills) == done.filled
    assert done.filled + done.unfilled == qty and done.filled <= qty
    assert (done.unfilled == 0) == (done.reason == "")
    assert events.index(done) > max((events.index(f) for f in fills), default=-1)  # nothing after the end
    assert all(isinstance(e, (RouteFill, RouteDone, LateFill)) for e in events)
    lps_asked = [c[0] for c in sent]
    assert len(lps_asked) == len(set(lps_asked))  # each LP once per route
    for lp, _, child_qty, lim, at in sent:
        assert at < BUDGET  # nothing new after the budget
        assert lim == limit
        px = book[lp][0]
        assert limit is None or (px <= limit if side == 1 else px >= limit)
        assert 0 < child_qty <= qty
