"""The optimised market-data hub sends exactly the bytes the reference hub (tests/md_reference.py)
sends: same sessions in the same order, same MDReqIDs, same W/X bodies and checksums, same
conflation count, same answers to V requests and QuoteIDs, whatever the quotes, subscriptions
(their depths, formats and sides),
unsubscriptions, dropped sessions and slow readers: plain, with ``version_of``, and with
``versions`` and per-session ``deliver`` (the gateway's way)."""

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from engine.fixedpoint import Grid
from fixserver import marketdata
from fixserver.marketdata import MarketDataHub
from fixserver.message import FixMessage
from tests.md_reference import ReferenceMarketDataHub

# A "%" in a symbol must survive the hub's byte templates; negative and zero prices are prices.
SYMBOLS = ["EUR/USD", "WTI", "X%dY%s"]
GRIDS = [Grid.parse("0.00001"), Grid.parse("0.01"), Grid.parse("0.25", decimals=3)]
QTY = [Grid.parse("1000"), Grid.parse("1"), Grid.parse("0.1")]
TIER_DEPTHS = [5, 1, 3]
SESSIONS = ["c0", "c1", "c2", "c3"]
MS = 1_000_000


class FakeEngine:
    """Tier quotes by (tier, instr); every set bumps the version, like the engine's quote_state."""

    def __init__(self) -> None:
        self.ladders: dict = {}
        self.versions: dict = {}

    def set(self, tier, instr, bids, asks):
        self.ladders[(tier, instr)] = (tuple(bids), tuple(asks))
        self.versions[(tier, instr)] = self.versions.get((tier, instr), 0) + 1

    def quote_of(self, tier, instr):
        return self.ladders.get((tier, instr), ((), ())), self.versions.get((tier, instr), 0)

    def version_of(self, tier, instr):
        return self.versions.get((tier, instr), 0)

    def version_table(self):
        return [[self.version_of(t, i) for i in range(len(SYMBOLS))] for t in range(len(TIER_DEPTHS))]


ENTRY_TYPES = [(b"0", b"1"), (b"0",), (b"1",), (b"1", b"0")]


def _request(req_id, req_type, depth, incremental, instruments, types=(b"0", b"1"), aggregated=None):
    fields = [(35, b"V"), (262, req_id), (263, req_type), (264, b"%d" % depth), (265, b"1" if incremental else b"0")]
    fields += [] if aggregated is None else [(266, aggregated)]
    fields += [(267, b"%d" % len(types)), *((269, t) for t in types), (146, b"%d" % len(instruments))]
    fields += [(55, SYMBOLS[i].encode()) for i in instruments]
    return FixMessage(fields)


def _wire(bodies):
    return [(req, b.msg_type, b.body, b.body_sum) for req, b in bodies]


class Pair:
    """The hub under test and the reference, driven with the same calls; every answer compared."""

    def __init__(self, mode: str) -> None:
        """``mode``: "plain", "version_of" or "deliver" (``versions``, and bodies by ``deliver``)."""
        self.engine = FakeEngine()
        args = (SYMBOLS, GRIDS, QTY, TIER_DEPTHS)
        self.ref = ReferenceMarketDataHub(*args, quote_of=self.engine.quote_of)
        version_of = self.engine.version_of if mode != "plain" else None
        versions = self.engine.version_table if mode == "deliver" else None
        self.hub = MarketDataHub(*args, quote_of=self.engine.quote_of, version_of=version_of, versions=versions)
        self.deliver = mode == "deliver"
        self.quote_ids: list[bytes] = [b"garbage", b"0-0-1-b0"]
        self.messages = 0

    def request(self, session, tier, msg, now):
        ref_snaps, ref_reject = self.ref.on_request(session, tier, msg, now)
        snaps, reject = self.hub.on_request(session, tier, msg, now)
        assert _wire(snaps) == _wire(ref_snaps)
        assert reject == ref_reject
        self._collect(snaps)

    def publish(self, now, readable):
        ref_out = self.ref.publish(now, writable=lambda s: s in readable)
        if self.deliver:
            delivered: list = []
            assert self.hub.publish(now, writable=lambda s: s in readable, deliver=lambda *d: delivered.append(d)) == {}
            assert len({s for s, _ in delivered}) == len(delivered)  # once per session and publish
            out = dict(delivered)
        else:
            out = self.hub.publish(now, writable=lambda s: s in readable)
        assert [(s, _wire(b)) for s, b in out.items()] == [(s, _wire(b)) for s, b in ref_out.items()]
        assert self.hub.conflated == self.ref.conflated
        for bodies in out.values():
            self._collect(bodies)

    def resolve(self, quote_id, tier, now):
        ttl = 50 * MS
        assert self.hub.resolve_quote(quote_id, tier, now, ttl) == self.ref.resolve_quote(quote_id, tier, now, ttl)

    def drop(self, session):
        self.ref.drop_session(session)
        self.hub.drop_session(session)

    def _collect(self, bodies):
        for _, body in bodies:
            self.messages += 1
            for field in body.body.split(b"\x01"):
                if field.startswith(b"278="):
                    self.quote_ids.append(field[4:])
        del self.quote_ids[:-200]


@st.composite
def ladder_side(draw, sign):
    n = draw(st.integers(0, 6))
    price = draw(st.integers(-300, 300))
    levels = []
    for _ in range(n):
        levels.append((price, draw(st.integers(1, 40))))
        price += sign * draw(st.integers(1, 3))
    return levels


publish_op = st.one_of(
    st.tuples(st.just("publish"), st.sets(st.sampled_from(SESSIONS))),
    st.tuples(st.just("publish"), st.just(set(SESSIONS))),
)
# Publishing as often as quotes change keeps sessions in step, so that most updates are X.
ops = st.one_of(
    publish_op,
    publish_op,
    publish_op,
    st.tuples(st.just("set"), st.integers(0, 2), st.integers(0, 2), ladder_side(-1), ladder_side(1)),
    st.tuples(st.just("set_same"), st.integers(0, 2), st.integers(0, 2)),  # a new version, same ladder
    # The current ladder edited: one side cut to n levels (deletes), one level's size changed (a
    # size-only update at an unchanged price).
    st.tuples(
        st.just("edit"),
        st.integers(0, 2),
        st.integers(0, 2),
        st.integers(0, 1),
        st.integers(0, 6),
        st.integers(0, 5),
        st.integers(1, 40),
    ),
    st.tuples(
        st.just("request"),
        st.sampled_from(SESSIONS),
        st.integers(0, 2),
        st.sampled_from([b"a", b"b", b"c"]),
        st.sampled_from([b"0", b"1", b"2"]),
        st.integers(0, 5),
        st.booleans(),
        st.lists(st.integers(0, 2), min_size=1, max_size=3),
        st.sampled_from(ENTRY_TYPES),
        st.sampled_from([None, None, b"Y", b"N"]),
    ),
    st.tuples(st.just("drop"), st.sampled_from(SESSIONS)),
    st.tuples(st.just("resolve"), st.integers(0, 199), st.integers(0, 2)),
)


def _apply(pair: Pair, op: tuple, now: int) -> None:
    kind = op[0]
    if kind == "set":
        _, tier, instr, bids, asks = op
        pair.engine.set(tier, instr, bids, asks)
    elif kind == "set_same":
        _, tier, instr = op
        pair.engine.set(tier, instr, *pair.engine.quote_of(tier, instr)[0])
    elif kind == "edit":
        _, tier, instr, side, keep, level, qty = op
        sides = [list(levels) for levels in pair.engine.quote_of(tier, instr)[0]]
        sides[side] = sides[side][:keep]
        if level < len(sides[1 - side]):
            sides[1 - side][level] = (sides[1 - side][level][0], qty)
        pair.engine.set(tier, instr, *sides)
    elif kind == "request":
        _, session, tier, req_id, req_type, depth, incremental, instruments, types, aggregated = op
        msg = _request(req_id, req_type, depth, incremental, instruments, types, aggregated)
        pair.request(session, tier, msg, now)
    elif kind == "publish":
        pair.publish(now, op[1])
    elif kind == "drop":
        pair.drop(op[1])
    else:
        _, pick, tier = op
        pair.resolve(pair.quote_ids[pick % len(pair.quote_ids)], tier, now)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 5), st.booleans(), st.sampled_from(ENTRY_TYPES)),
        min_size=len(SESSIONS),
        max_size=len(SESSIONS),
    ),
    st.lists(ops, min_size=10, max_size=80),
    st.sampled_from(["plain", "version_of", "deliver"]),
)
def test_same_bytes_as_the_reference_hub(subscriptions, steps, mode):
    pair = Pair(mode)
    # Every session starts subscribed to every instrument of one tier, so most steps publish.
    for n, (session, (depth, incremental, types)) in enumerate(zip(SESSIONS, subscriptions, strict=True)):
        tier = n % len(TIER_DEPTHS)
        msg = _request(b"s", b"1", min(depth, TIER_DEPTHS[tier]), incremental, [0, 1, 2], types)
        pair.request(session, tier, msg, 0)
    for n, op in enumerate(steps):
        _apply(pair, op, n * 10 * MS)
    pair.publish(len(steps) * 10 * MS, set(SESSIONS))


def test_same_bytes_as_the_reference_over_a_long_seeded_run(monkeypatch):
    """Long enough to roll the QuoteID history over; the level-text cache is made small so that it
    is emptied and refilled many times."""
    monkeypatch.setattr(marketdata, "LEVEL_TEXT_CACHE", 64)
    for mode in ("plain", "version_of", "deliver"):
        rng = random.Random(20261123)
        pair = Pair(mode)
        for session_no, session in enumerate(SESSIONS):
            for tier in range(3):
                for instr in range(3):
                    req = b"%d-%d" % (tier, instr)
                    msg = _request(req, b"1", rng.choice([0, 1, 3]), session_no != 3, [instr], rng.choice(ENTRY_TYPES))
                    pair.request(session, tier, msg, 0)
        mid = [0, 0, 0]
        for step in range(6_000):
            now = step * MS
            for _ in range(rng.choice([0, 1, 1, 2, 4])):
                tier, instr = rng.randrange(3), rng.randrange(3)
                mid[instr] += rng.randint(-40, 40)
                bids = [(mid[instr] - 1 - k, rng.randint(1, 3000)) for k in range(rng.randint(0, 6))]
                asks = [(mid[instr] + 1 + k, rng.randint(1, 3000)) for k in range(rng.randint(0, 6))]
                pair.engine.set(tier, instr, bids, asks)
            if rng.random() < 0.02:
                pair.drop(rng.choice(SESSIONS[:3]))
            if rng.random() < 0.05:
                session, tier, instr = rng.choice(SESSIONS[:3]), rng.randrange(3), rng.randrange(3)
                req_type = rng.choice([b"0", b"1", b"2"])
                msg = _request(
                    b"%d-%d" % (tier, instr),
                    req_type,
                    rng.choice([0, 1, 2]),
                    rng.random() < 0.8,
                    [instr],
                    rng.choice(ENTRY_TYPES),
                )
                pair.request(session, tier, msg, now)
            readable = {s for s in SESSIONS if rng.random() < 0.9}
            pair.publish(now, readable)
            if rng.random() < 0.1:
                pair.resolve(rng.choice(pair.quote_ids), rng.randrange(3), now)
        assert pair.messages > 5_000
        caches = [*pair.hub._level_text, *pair.hub._price_text, *pair.hub._qty_text]
        assert all(0 < len(cache) <= 64 for cache in caches)
