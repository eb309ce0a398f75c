"""Market data to clients: V requests answered or rejected with the right 281, W/X bodies encoded
once and shared, slow clients conflated to a full refresh, QuoteIDs resolvable while live."""

import pytest

from engine.fixedpoint import Grid
from fixserver.codec import FrameDecoder, PreparedBody, byte_sum, encode_with_prepared
from fixserver.marketdata import MarketDataHub, MdRejectReason
from fixserver.md_book import MdBook, _entries
from fixserver.message import FixMessage

SYMBOLS = ["EUR/USD", "WTI"]
GRIDS = [Grid.parse("0.00001"), Grid.parse("0.01")]
QTY = [Grid.parse("1000"), Grid.parse("1")]
MS = 1_000_000


class FakeEngine:
    """Tier quotes by (tier, instr) with a version counter, like engine.quote_state."""

    def __init__(self):
        self.ladders = {}
        self.versions = {}

    def set(self, tier, instr, bids, asks):
        self.ladders[(tier, instr)] = (tuple(bids), tuple(asks))
        self.versions[(tier, instr)] = self.versions.get((tier, instr), 0) + 1

    def quote_of(self, tier, instr):
        return self.ladders.get((tier, instr), ((), ())), self.versions.get((tier, instr), 0)


def _hub(engine):
    return MarketDataHub(SYMBOLS, GRIDS, QTY, tier_depths=[5, 1], quote_of=engine.quote_of)


def _v(
    req_id=b"r1", req_type=b"1", depth=b"0", update=b"1", types=(b"0", b"1"), symbols=(b"EUR/USD",), aggregated=None
):
    fields = [(35, b"V"), (262, req_id), (263, req_type), (264, depth), (265, update)]
    fields += [] if aggregated is None else [(266, aggregated)]
    fields += [(267, b"%d" % len(types))]
    fields += [(269, t) for t in types]
    fields += [(146, b"%d" % len(symbols))] + [(55, s) for s in symbols]
    return FixMessage(fields)


def _wire(req_id, body, seq=1):
    raw = encode_with_prepared(
        [(49, b"LAGG"), (56, b"C1"), (34, seq), (52, b"20261123-09:00:00.000"), (262, req_id)], body
    )
    (msg,) = FrameDecoder().feed(raw)
    return msg


def _levels(book, symbol=b"EUR/USD"):
    bids, asks = book.ladder(symbol)
    return [(p, q) for p, q, _ in bids], [(p, q) for p, q, _ in asks]


def _apply(book, bodies):
    """``book`` after each ``(MDReqID, body)`` of ``bodies``, as the client reads them."""
    for req, body in bodies:
        book.apply(_wire(req, body))
    return book


def test_snapshot_request_answers_with_a_w_of_the_clients_tier():
    engine = FakeEngine()
    engine.set(0, 0, [(108500, 3), (108499, 5)], [(108502, 2)])
    engine.set(1, 0, [(108490, 1)], [(108510, 1)])
    hub = _hub(engine)
    snaps, reject = hub.on_request("s1", 1, _v(req_type=b"0", update=b"0"), 0)
    assert reject is None and len(snaps) == 1
    msg = _wire(*snaps[0])
    assert msg.msg_type == b"W" and msg.get(262) == b"r1" and msg.get(55) == b"EUR/USD"
    book = MdBook()
    book.apply(msg)
    assert _levels(book) == ([(b"1.08490", b"1000")], [(b"1.08510", b"1000")])
    assert hub.sessions["s1"] == {}  # a snapshot does not subscribe


def test_each_bad_request_gets_its_281_reason():
    hub = _hub(FakeEngine())
    cases = [
        (_v(symbols=(b"XBT/USD",)), MdRejectReason.UNKNOWN_SYMBOL),
        (_v(depth=b"6"), MdRejectReason.UNSUPPORTED_MARKET_DEPTH),
        (_v(types=(b"2",)), MdRejectReason.UNSUPPORTED_MD_ENTRY_TYPE),
        (_v(req_type=b"7"), MdRejectReason.UNSUPPORTED_SUBSCRIPTION_TYPE),
        (_v(update=b"5"), MdRejectReason.UNSUPPORTED_MD_UPDATE_TYPE),
        (_v(aggregated=b"N"), MdRejectReason.UNSUPPORTED_AGGREGATED_BOOK),  # a book per LP: not offered
        (_v(req_type=b"0", update=b"0", aggregated=b"N"), MdRejectReason.UNSUPPORTED_AGGREGATED_BOOK),
    ]
    for msg, reason in cases:
        snaps, reject = hub.on_request("s1", 0, msg, 0)
        assert snaps == [] and reject is not None and reject.reason is reason, (msg, reject)
        assert dict(reject.body())[281] == reason.value
    assert hub.on_request("s1", 0, _v(), 0)[1] is None
    _, dup = hub.on_request("s1", 0, _v(), 0)
    assert dup is not None and dup.reason is MdRejectReason.DUPLICATE_MDREQID
    assert hub.on_request("s1", 0, _v(b"agg", aggregated=b"Y"), 0)[1] is None  # the aggregated book: ours


def test_cancelling_an_unknown_mdreqid_is_refused_without_a_281_that_would_mislead():
    hub = _hub(FakeEngine())
    snaps, reject = hub.on_request("s1", 0, _v(b"nope", req_type=b"2"), 0)
    assert snaps == [] and reject is not None
    # No FIX 4.4 281 means "unknown MDReqID" (4 would claim 263=2 is unsupported): 58 says it.
    assert reject.body() == [(262, b"nope"), (58, b"no subscription with this MDReqID to cancel")]


def test_depth_zero_means_the_tiers_full_depth_and_depth_one_the_top():
    engine = FakeEngine()
    engine.set(0, 0, [(100 - k, 1) for k in range(5)], [(110 + k, 1) for k in range(5)])
    hub = _hub(engine)
    full = MdBook()
    full.apply(_wire(*hub.on_request("s", 0, _v(b"a", depth=b"0"), 0)[0][0]))
    top = MdBook()
    top.apply(_wire(*hub.on_request("s", 0, _v(b"b", depth=b"1"), 0)[0][0]))
    assert len(_levels(full)[0]) == 5 and len(_levels(top)[0]) == 1


def test_one_encoding_is_shared_by_every_session_with_the_same_tier_depth_and_format():
    engine = FakeEngine()
    engine.set(0, 0, [(100, 1)], [(101, 1)])
    hub = _hub(engine)
    for s in range(10):
        hub.on_request(f"s{s}", 0, _v(b"r%d" % s), 0)
    hub.on_request("other-tier", 1, _v(b"x"), 0)
    engine.set(0, 0, [(100, 2)], [(101, 1)])
    engine.set(1, 0, [(99, 1)], [(102, 1)])
    out = hub.publish(1)
    bodies = {id(body) for s in range(10) for _, body in out[f"s{s}"]}
    assert len(bodies) == 1
    assert out["other-tier"][0][1] is not out["s0"][0][1]
    assert [req for req, _ in out["s3"]] == [b"r3"]


def test_incremental_subscriber_rebuilds_the_engines_ladder_from_w_then_x():
    engine = FakeEngine()
    engine.set(0, 0, [(100, 1), (99, 2)], [(101, 1)])
    hub = _hub(engine)
    book = MdBook()
    for req, body in hub.on_request("s", 0, _v(), 0)[0]:
        book.apply(_wire(req, body))
    steps = [
        ([(100, 1), (98, 2)], [(101, 1)]),  # level 2 changes
        ([(100, 1)], [(101, 1), (102, 7)]),  # a bid level vanishes, an ask level appears
        ([], [(-5, 1)]),  # bids gone; price crosses zero
    ]
    for bids, asks in steps:
        engine.set(0, 0, bids, asks)
        ((req, body),) = hub.publish(1)["s"]
        msg = _wire(req, body)
        assert msg.msg_type == b"X"
        book.apply(msg)
        expect_b = [(GRIDS[0].to_text(p).encode(), QTY[0].to_text(q).encode()) for p, q in bids]
        expect_a = [(GRIDS[0].to_text(p).encode(), QTY[0].to_text(q).encode()) for p, q in asks]
        assert _levels(book) == (expect_b, expect_a)


def test_nothing_is_sent_when_nothing_changed():
    engine = FakeEngine()
    engine.set(0, 0, [(100, 1)], [(101, 1)])
    hub = _hub(engine)
    hub.on_request("s", 0, _v(), 0)
    assert hub.publish(1) == {}


def test_slow_client_is_conflated_then_gets_a_full_refresh_of_the_latest_state():
    engine = FakeEngine()
    engine.set(0, 0, [(100, 1)], [(101, 1)])
    hub = _hub(engine)
    hub.on_request("slow", 0, _v(), 0)
    hub.on_request("fast", 0, _v(), 0)
    for k in range(5):
        engine.set(0, 0, [(100 + k, 1)], [(110 + k, 1)])
        out = hub.publish(k, writable=lambda s: s != "slow")
        assert "slow" not in out and out["fast"][0][1].msg_type == b"X"
    assert hub.conflated == 5
    ((req, body),) = hub.publish(9)["slow"]  # it can take data again
    assert body.msg_type == b"W"
    book = MdBook()
    book.apply(_wire(req, body))
    assert _levels(book) == ([(b"0.00104", b"1000")], [(b"0.00114", b"1000")])


def test_unsubscribe_stops_updates():
    engine = FakeEngine()
    engine.set(0, 0, [(100, 1)], [(101, 1)])
    hub = _hub(engine)
    hub.on_request("s", 0, _v(), 0)
    assert hub.on_request("s", 0, _v(req_type=b"2"), 0) == ([], None)
    engine.set(0, 0, [(100, 2)], [(101, 1)])
    assert hub.publish(1) == {}


def test_quote_ids_resolve_while_live_and_within_ttl_only():
    engine = FakeEngine()
    engine.set(0, 0, [(100, 5)], [(101, 7)])
    hub = _hub(engine)
    msg = _wire(*hub.on_request("s", 0, _v(), 10 * MS)[0][0])
    ask_id = MdBook()
    ask_id.apply(msg)
    quote_id = ask_id.ladder(b"EUR/USD")[1][0][2]
    hit = hub.resolve_quote(quote_id, 0, 500 * MS, ttl_ns=1000 * MS)
    assert (hit.side, hit.price, hit.qty) == (1, 101, 7)
    assert hub.resolve_quote(quote_id, 0, 1011 * MS, ttl_ns=1000 * MS) == "quote expired"
    assert hub.resolve_quote(quote_id, 1, 500 * MS, ttl_ns=1000 * MS) == "unknown QuoteID"
    assert hub.resolve_quote(b"garbage", 0, 500 * MS, ttl_ns=1000 * MS) == "unknown QuoteID"
    engine.set(0, 0, [(100, 5)], [(102, 7)])  # superseded
    assert hub.resolve_quote(quote_id, 0, 500 * MS, ttl_ns=1000 * MS) == "quote expired"


def test_with_version_of_an_unchanged_quote_is_not_copied_again():
    engine = FakeEngine()
    engine.set(0, 0, [(100, 1)], [(101, 1)])
    engine.set(0, 1, [(5, 1)], [(6, 1)])
    copies = []

    def quote_of(tier, instr):
        copies.append((tier, instr))
        return engine.quote_of(tier, instr)

    hub = MarketDataHub(SYMBOLS, GRIDS, QTY, tier_depths=[5, 1], quote_of=quote_of,
                        version_of=lambda t, i: engine.quote_of(t, i)[1])  # fmt: skip
    hub.on_request("s", 0, _v(symbols=(b"EUR/USD", b"WTI")), 0)
    copies.clear()
    for k in range(3):
        engine.set(0, 0, [(100 + k, 1)], [(110 + k, 1)])
        assert [body.msg_type for _, body in hub.publish(k)["s"]] == [b"X"]
    assert copies == [(0, 0)] * 3  # WTI never changed: never copied again


def test_a_publish_that_fails_half_way_loses_no_conflated_session():
    engine = FakeEngine()
    engine.set(0, 0, [(100, 1)], [(101, 1)])
    hub = _hub(engine)
    for s in ("a", "b", "slow"):
        hub.on_request(s, 0, _v(), 0)
    engine.set(0, 0, [(100, 2)], [(101, 1)])
    assert set(hub.publish(1, writable=lambda s: s != "slow")) == {"a", "b"}

    def broken(session):
        raise RuntimeError("transport gone")

    try:
        hub.publish(2, writable=broken)
    except RuntimeError:
        pass
    ((_, body),) = hub.publish(3)["slow"]  # still owed the update, though the quote has not moved since
    assert body.msg_type == b"X" and hub.sessions["slow"][b"r1"].last_version[0] == engine.quote_of(0, 0)[1]


@pytest.mark.parametrize("with_deliver", [False, True])
def test_updates_built_but_not_handed_out_when_a_publish_fails_are_sent_by_the_next(with_deliver):
    # One session, two instruments; reading the second quote fails after the first update is
    # built. Nothing went out, so the next publish owes the session both, with or without deliver.
    engine = FakeEngine()
    for i in (0, 1):
        engine.set(0, i, [(100, 1)], [(101, 1)])
    failing = False

    def quote_of(tier, instr):
        if failing and instr == 1:
            raise RuntimeError("engine read failed")
        return engine.quote_of(tier, instr)

    def versions():
        return [[engine.quote_of(t, i)[1] for i in (0, 1)] for t in (0, 1)]

    hub = MarketDataHub(SYMBOLS, GRIDS, QTY, tier_depths=[5, 1], quote_of=quote_of, versions=versions)
    hub.on_request("s", 0, _v(symbols=(b"EUR/USD", b"WTI")), 0)
    for i in (0, 1):
        engine.set(0, i, [(102, 1)], [(103, 1)])
    delivered: list = []

    def publish(now):
        if not with_deliver:
            return hub.publish(now)
        assert hub.publish(now, deliver=lambda *d: delivered.append(d)) == {}
        return dict(delivered)

    failing = True
    with pytest.raises(RuntimeError):
        publish(1)
    assert delivered == []
    failing = False
    bodies = publish(2)["s"]
    assert [body.msg_type for _, body in bodies] == [b"X", b"X"]  # both, each one version on
    assert b"55=EUR/USD" in bodies[0][1].body and b"55=WTI" in bodies[1][1].body
    assert hub.sessions["s"][b"r1"].last_version == {0: 2, 1: 2}


@pytest.mark.parametrize("side", [0, 1])
def test_a_one_sided_subscription_gets_only_its_side_in_w_and_x(side):
    engine = FakeEngine()
    engine.set(0, 0, [(100, 1), (99, 2)], [(101, 1), (102, 2)])
    hub = _hub(engine)
    entry_type = b"%d" % side
    one, both = MdBook(), MdBook()
    for req, body in hub.on_request("one", 0, _v(types=(entry_type,)), 0)[0]:
        msg = _wire(req, body)
        assert msg.get_all(269) == [entry_type, entry_type] and msg.get(268) == b"2"
        one.apply(msg)
    for req, body in hub.on_request("both", 0, _v(), 0)[0]:
        both.apply(_wire(req, body))
    engine.set(0, 0, [(100, 3), (98, 2)], [(101, 3), (103, 2)])  # both sides move
    out = hub.publish(1)
    ((req, body),) = out["one"]
    msg = _wire(req, body)
    assert msg.msg_type == b"X" and msg.get_all(269) == [entry_type, entry_type]
    assert body is not out["both"][0][1]  # not the both-sides encoding
    one.apply(msg)
    both.apply(_wire(*out["both"][0]))
    assert _levels(one)[side] == _levels(both)[side] and _levels(one)[1 - side] == []


def _ids(book, symbol=b"EUR/USD"):
    bids, asks = book.ladder(symbol)
    return [quote_id for _, _, quote_id in bids], [quote_id for _, _, quote_id in asks]


def test_an_incremental_clients_quote_id_for_a_level_that_did_not_move_stays_hittable():
    engine = FakeEngine()
    engine.set(0, 0, [(100, 5), (99, 4)], [(101, 7)])
    hub = MarketDataHub(SYMBOLS, GRIDS, QTY, tier_depths=[5, 1], quote_of=engine.quote_of,
                        version_of=lambda t, i: engine.quote_of(t, i)[1])  # fmt: skip
    book = MdBook()
    for req, body in hub.on_request("s", 0, _v(), 10 * MS)[0]:
        book.apply(_wire(req, body))
    engine.set(0, 0, [(100, 5), (98, 4)], [(102, 7)])  # the ask and the second bid move
    ((req, body),) = hub.publish(20 * MS)["s"]
    book.apply(_wire(req, body))
    (best_bid, second_bid), (best_ask,) = _ids(book)
    assert best_bid.startswith(b"0-0-1-")  # the X left it alone: the client still has v1's ID
    ttl = 1000 * MS
    hit = hub.resolve_quote(best_bid, 0, 30 * MS, ttl)
    assert (hit.side, hit.price, hit.qty, hit.published_ns) == (0, 100, 5, 10 * MS)
    assert hub.resolve_quote(best_ask, 0, 30 * MS, ttl).price == 102
    assert hub.resolve_quote(second_bid, 0, 30 * MS, ttl).price == 98
    # The TTL still runs from when the ID was sent (10 ms), not from the last publish.
    assert hub.resolve_quote(best_bid, 0, 1011 * MS, ttl) == "quote expired"
    assert hub.resolve_quote(best_ask, 0, 1011 * MS, ttl).price == 102
    # Another tier's client may not use it.
    assert hub.resolve_quote(best_bid, 1, 30 * MS, ttl) == "unknown QuoteID"


def test_a_quote_id_whose_level_changed_since_is_refused_even_if_it_came_back():
    engine = FakeEngine()
    engine.set(0, 0, [(100, 5)], [(101, 7)])
    hub = _hub(engine)
    book = MdBook()
    for req, body in hub.on_request("s", 0, _v(), 0)[0]:
        book.apply(_wire(req, body))
    (old_bid,), _ = _ids(book)
    ttl = 1000 * MS
    engine.set(0, 0, [(100, 6)], [(101, 7)])  # size-only change: a new level, a new ID
    assert hub.resolve_quote(old_bid, 0, 1, ttl) == "quote expired"  # not yet published: still refused
    hub.publish(1)
    assert hub.resolve_quote(old_bid, 0, 2, ttl) == "quote expired"
    engine.set(0, 0, [(100, 5)], [(101, 7)])  # back to what the old ID named
    hub.publish(3)
    assert hub.resolve_quote(old_bid, 0, 4, ttl) == "quote expired"  # another ID was sent for it since
    engine.set(0, 0, [], [(101, 7)])  # the level is gone
    assert hub.resolve_quote(old_bid, 0, 5, ttl) == "quote expired"


def test_nothing_is_sent_to_a_subscription_when_only_what_it_does_not_show_moved():
    engine = FakeEngine()
    engine.set(0, 0, [(100, 5), (99, 5)], [(101, 7), (102, 7)])
    hub = _hub(engine)
    books = {name: MdBook() for name in ("top", "top-w", "bids", "full")}
    requests = {
        "top": _v(depth=b"1"),
        "top-w": _v(depth=b"1", update=b"0"),  # refreshed by W
        "bids": _v(types=(b"0",)),
        "full": _v(),
    }
    for name, request in requests.items():
        for req, body in hub.on_request(name, 0, request, 0)[0]:
            books[name].apply(_wire(req, body))
    engine.set(0, 0, [(100, 5), (98, 5)], [(101, 7), (102, 7)])  # the second bid only
    out = hub.publish(1)
    assert set(out) == {"bids", "full"}  # no "X 268=0" to the depth-1 ones
    for name, bodies in out.items():
        for req, body in bodies:
            books[name].apply(_wire(req, body))
    engine.set(0, 0, [(100, 5), (98, 5)], [(101, 8), (102, 7)])  # the best ask only
    out = hub.publish(2)
    assert set(out) == {"top", "top-w", "full"}
    assert [b"268=1\x01" in body.body for _, body in out["top"]] == [True]
    for name, bodies in out.items():
        for req, body in bodies:
            books[name].apply(_wire(req, body))
    assert _levels(books["top"]) == ([(b"0.00100", b"5000")], [(b"0.00101", b"8000")])
    assert _levels(books["top-w"]) == _levels(books["top"])
    # Nothing moved for them since: every QuoteID they hold can still be hit.
    for name in ("top", "top-w", "bids"):
        for ids in _ids(books[name]):
            for quote_id in ids:
                assert not isinstance(hub.resolve_quote(quote_id, 0, 3, ttl_ns=1000 * MS), str), (name, quote_id)


def test_a_slow_client_skipped_past_a_change_and_back_gets_a_w_with_ids_it_can_hit():
    engine = FakeEngine()
    engine.set(0, 0, [(100, 5)], [(101, 7)])
    hub = _hub(engine)
    book = MdBook()
    for req, body in hub.on_request("slow", 0, _v(), 0)[0]:
        book.apply(_wire(req, body))
    hub.on_request("fast", 0, _v(), 0)
    engine.set(0, 0, [(100, 6)], [(101, 7)])
    assert set(hub.publish(1, writable=lambda s: s != "slow")) == {"fast"}
    engine.set(0, 0, [(100, 5)], [(101, 7)])  # back to what the slow client shows
    ((req, body),) = hub.publish(2)["slow"]
    assert body.msg_type == b"W"  # its old best-bid ID named a level that changed since
    book.apply(_wire(req, body))
    for ids in _ids(book):
        assert not isinstance(hub.resolve_quote(ids[0], 0, 3, ttl_ns=1000 * MS), str)


class ShiftingBook:
    """A client that reads 290 as a display position, as FIX describes it for X: a New inserts at
    its position, a Delete closes the gap, so the order of entries in one X matters."""

    def __init__(self):
        self.sides = ([], [])

    def apply(self, msg):
        if msg.msg_type == b"W":
            self.sides = ([], [])
            for entry in _entries(msg, 269):
                self.sides[int(entry[269])].append((entry[270], entry[271]))
            return
        for entry in _entries(msg, 279):
            levels, at = self.sides[int(entry[269])], int(entry[290]) - 1
            if entry[279] == b"0":
                levels.insert(at, (entry[270], entry[271]))
            elif entry[279] == b"1":
                levels[at] = (entry[270], entry[271])
            else:
                del levels[at]

    def levels(self):
        return [list(side) for side in self.sides]


def test_deletes_go_bottom_up_so_a_client_closing_gaps_ends_with_the_right_book():
    engine = FakeEngine()
    engine.set(0, 0, [(100, 1), (99, 1), (98, 1), (97, 1)], [(101, 1), (102, 1), (103, 1)])
    hub = _hub(engine)
    book = ShiftingBook()
    for req, body in hub.on_request("s", 0, _v(), 0)[0]:
        book.apply(_wire(req, body))
    engine.set(0, 0, [(100, 1), (99, 2)], [(101, 1)])
    ((req, body),) = hub.publish(1)["s"]
    msg = _wire(req, body)
    assert msg.get_all(290) == [b"2", b"4", b"3", b"3", b"2"]  # bids: change 2, delete 4, 3; asks: delete 3, 2
    book.apply(msg)
    assert book.levels() == [[(b"0.00100", b"1000"), (b"0.00099", b"2000")], [(b"0.00101", b"1000")]]


def test_snapshot_subscribers_of_one_view_get_what_their_own_last_version_calls_for():
    # Same view (tier 0, depth 1, both sides, 265=0), one publish: "fast" holds the previous
    # version, in which only a deeper level has moved since, so it is sent nothing; "slow" was
    # conflated at the version before, whose best bid differs, so it needs a W. The shared
    # judgement must be per version held, not per view.
    engine = FakeEngine()
    engine.set(0, 0, [(100, 5), (99, 5)], [(101, 7)])
    hub = _hub(engine)
    books = {}
    for name in ("fast", "slow"):
        books[name] = MdBook()
        for req, body in hub.on_request(name, 0, _v(depth=b"1", update=b"0"), 0)[0]:
            books[name].apply(_wire(req, body))
    engine.set(0, 0, [(100, 6), (99, 5)], [(101, 7)])  # the best bid
    assert set(hub.publish(1, writable=lambda s: s != "slow")) == {"fast"}
    engine.set(0, 0, [(100, 6), (98, 5)], [(101, 7)])  # beyond depth 1 only
    out = hub.publish(2)
    assert set(out) == {"slow"}
    ((req, body),) = out["slow"]
    assert body.msg_type == b"W"
    books["slow"].apply(_wire(req, body))
    assert _levels(books["slow"]) == ([(b"0.00100", b"6000")], [(b"0.00101", b"7000")])


def test_whether_a_view_moved_is_judged_once_per_publish_not_once_per_snapshot_subscriber(monkeypatch):
    # The reviewed cost: with a thousand 265=0 sessions, checking the history once per session
    # took ~5 ms a publish; every session of a view that holds the same version shares one answer.
    from fixserver import marketdata

    judged = []
    real = marketdata._view_kept

    def counting(history, last, depth, sides):
        judged.append((last, depth, sides))
        return real(history, last, depth, sides)

    monkeypatch.setattr(marketdata, "_view_kept", counting)
    engine = FakeEngine()
    engine.set(0, 0, [(100, 5), (99, 5)], [(101, 7)])
    hub = _hub(engine)
    for s in range(20):
        hub.on_request(f"s{s}", 0, _v(b"r", depth=b"1" if s % 2 else b"0", update=b"0"), 0)
    engine.set(0, 0, [(100, 5), (98, 5)], [(101, 7)])  # beyond depth 1 only
    out = hub.publish(1)
    assert sorted(out) == sorted(f"s{s}" for s in range(0, 20, 2))  # the full-depth ones
    assert len({id(body) for bodies in out.values() for _, body in bodies}) == 1
    assert sorted(judged) == [(1, 1, (0, 1)), (1, 5, (0, 1))]


class IdBook:
    """A client that keys its book by MDEntryID (278), as FIX 4.4 X defines it: a change names the
    entry it replaces in 280, a delete the entry it removes in 278. Refuses any that it lacks."""

    def __init__(self):
        self.entries = {}  # MDEntryID -> (269, 270, 271)

    def apply(self, msg):
        if msg.msg_type == b"W":
            self.entries = {e[299]: (e[269], e[270], e[271]) for e in _entries(msg, 269)}  # a W: QuoteEntryID
            return
        for entry in _entries(msg, 279):
            action = entry[279]
            if action != b"0":
                gone = entry[280] if action == b"1" else entry[278]
                assert gone in self.entries, (action, gone, self.entries)
                del self.entries[gone]
            if action != b"2":
                assert entry[278] not in self.entries
                self.entries[entry[278]] = (entry[269], entry[270], entry[271])

    def levels(self):
        by_side = ([], [])
        for entry_type, px, qty in self.entries.values():
            by_side[int(entry_type)].append((px, qty))
        return [sorted(by_side[0], key=lambda level: -float(level[0])), sorted(by_side[1], key=lambda lv: float(lv[0]))]


def test_x_names_the_entry_ids_every_in_step_client_holds_in_280_and_in_deletes():
    engine = FakeEngine()
    engine.set(0, 0, [(100, 5), (99, 5), (98, 5)], [(101, 7)])
    hub = _hub(engine)
    early, late, by_position = IdBook(), IdBook(), MdBook()
    for req, body in hub.on_request("early", 0, _v(), 0)[0]:
        early.apply(_wire(req, body))
        by_position.apply(_wire(req, body))
    engine.set(0, 0, [(100, 5), (99, 5), (98, 5)], [(102, 7)])  # the ask only
    ((req, body),) = hub.publish(1)["early"]
    early.apply(_wire(req, body))
    by_position.apply(_wire(req, body))
    for req, body in hub.on_request("late", 0, _v(b"r2"), 1)[0]:  # subscribes after: its W has the same ids
        late.apply(_wire(req, body))
    assert late.entries == early.entries
    engine.set(0, 0, [(100, 6)], [(102, 7)])  # best bid's size changes, two bids go
    out = hub.publish(2)
    assert out["early"][0][1] is out["late"][0][1]  # still one X for both
    msg = _wire(*out["early"][0])
    assert msg.get_all(279) == [b"1", b"2", b"2"]
    assert msg.get_all(280) == [b"0-0-1-b0"]  # the best bid's id since it was first sent
    assert msg.get_all(278) == [b"0-0-3-b0", b"0-0-1-b2", b"0-0-1-b1"]
    for book in (early, late, by_position):
        book.apply(msg)
    assert (
        early.entries
        == late.entries
        == {b"0-0-3-b0": (b"0", b"0.00100", b"6000"), b"0-0-2-a0": (b"1", b"0.00102", b"7000")}
    )
    assert _ids(by_position) == ([b"0-0-3-b0"], [b"0-0-2-a0"])
    hit = hub.resolve_quote(b"0-0-3-b0", 0, 3, ttl_ns=1000 * MS)
    assert (hit.price, hit.qty) == (100, 6)
    assert hub.resolve_quote(b"0-0-1-b0", 0, 3, ttl_ns=1000 * MS) == "quote expired"  # named in 280: replaced


def test_md_book_finds_an_entry_without_290_by_the_id_it_names():
    engine = FakeEngine()
    engine.set(0, 0, [(100, 5), (99, 5)], [(101, 7)])
    hub = _hub(engine)
    book = _apply(MdBook(), hub.on_request("s", 0, _v(), 0)[0])
    engine.set(0, 0, [(100, 6)], [(101, 7), (102, 1)])
    ((req, body),) = hub.publish(1)["s"]
    fields = [f for f in body.body.split(b"\x01")[:-1] if not f.startswith(b"290=")]  # a feed without 290
    stripped = b"\x01".join(fields) + b"\x01"
    msg = _wire(req, PreparedBody(body.msg_type, stripped, byte_sum(stripped)))
    assert msg.get(290) is None and msg.get_all(279) == [b"1", b"2", b"0"]
    book.apply(msg)
    assert _levels(book) == ([(b"0.00100", b"6000")], [(b"0.00101", b"7000"), (b"0.00102", b"1000")])


def test_a_w_restarts_the_ttl_of_the_quote_ids_it_shows():
    # The best ask has not moved since it was first sent at 0 ms; a client that subscribes at
    # 1500 ms is shown its MDEntryID then, and may hit it for the full TTL from then.
    engine = FakeEngine()
    engine.set(0, 0, [(100, 5)], [(101, 7)])
    hub = _hub(engine)
    hub.on_request("early", 0, _v(), 0)
    engine.set(0, 0, [(99, 5)], [(101, 7)])  # the bid only
    hub.publish(1 * MS)
    _, (ask_id,) = _ids(_apply(MdBook(), hub.on_request("late", 0, _v(b"r2", types=(b"1",)), 1500 * MS)[0]))
    assert ask_id == b"0-0-1-a0"  # the same ID the early client holds
    hit = hub.resolve_quote(ask_id, 0, 2400 * MS, ttl_ns=1000 * MS)
    assert (hit.price, hit.qty) == (101, 7)
    assert hub.resolve_quote(ask_id, 0, 2501 * MS, ttl_ns=1000 * MS) == "quote expired"


def test_a_level_that_holds_past_the_kept_versions_stays_hittable():
    engine = FakeEngine()
    engine.set(0, 0, [(100, 5)], [(101, 7)])
    hub = _hub(engine)
    book = _apply(MdBook(), hub.on_request("s", 0, _v(), 0)[0])
    for step in range(1, 200):  # the bid moves every time, far beyond QUOTE_HISTORY versions
        engine.set(0, 0, [(100 - step % 2, 5)], [(101, 7)])
        for req, body in hub.publish(step).get("s", []):
            book.apply(_wire(req, body))
    (ask_id,) = _ids(book)[1]
    hit = hub.resolve_quote(ask_id, 0, 200, ttl_ns=1000 * MS)
    assert (hit.side, hit.price, hit.qty) == (1, 101, 7)


def test_a_w_that_is_not_sent_does_not_restart_the_ttl():
    # A slow client is conflated: its W is built but not sent. The IDs it would have shown were
    # not sent again, so their TTL still runs from when they last went out.
    engine = FakeEngine()
    engine.set(0, 0, [(100, 5)], [(101, 7)])
    hub = _hub(engine)
    _, (ask_id,) = _ids(_apply(MdBook(), hub.on_request("s", 0, _v(update=b"0"), 0)[0]))
    engine.set(0, 0, [(99, 5)], [(101, 7)])  # the bid only: the ask keeps its ID
    assert hub.publish(900 * MS, writable=lambda s: False) == {}
    assert hub.resolve_quote(ask_id, 0, 1001 * MS, ttl_ns=1000 * MS) == "quote expired"
