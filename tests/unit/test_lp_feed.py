"""An LP feed's lifecycle rules, driven read by read: LP_UP only after a fresh snapshot of every
instrument, a sequence gap (in any state, once) withdraws the books and resubscribes, increments
wait for a fresh snapshot, unchanged books stay fresh, rejects and oversized messages."""

import pytest

from engine.batch import CLEAR_BOOK, LP_UP, SET_LEVEL, UpdateBatch
from engine.book import Engine
from engine.config import parse_config
from feeds.lp_feed import LpFeed
from fixserver.codec import FrameTooLarge, encode
from fixserver.message import FixMessage
from fixserver.session import SessionEvent, SessionState, SessionStateError
from tests.conftest import EXAMPLE_CONFIG


class FakeSession:
    def __init__(self):
        self.next_target_seq = 2


class FakeHandle:
    """The session handle as the feed sees it; the test plays the session's part."""

    def __init__(self):
        self.session = FakeSession()
        self.is_logged_on = True
        self.sent = []

    def send(self, msg_type, body, resendable=None):
        self.sent.append((msg_type, dict(body)))


def _md(
    kind: bytes, seq: int, instr: int, symbol: bytes, price: bytes, sender: bytes = b"LP1", ask: bytes | None = None
) -> bytes:
    header = [(49, sender), (56, b"LAGG"), (34, seq), (52, b"20261123-10:00:00.000")]
    if kind == b"W":
        body = [(262, b"%d" % instr), (55, symbol), (268, b"2"), (269, b"0"), (270, price), (271, b"1000000"),
                (278, b"b0"), (269, b"1"), (270, ask or price), (271, b"1000000"), (278, b"a0")]  # fmt: skip
    else:
        body = [(262, b"%d" % instr), (268, b"1"), (279, b"1"), (269, b"0"), (278, b"b0"), (55, symbol),
                (270, price), (271, b"2000000")]  # fmt: skip
    return encode(kind, header, body)


RAW_TIER = '\n[[tiers]]\nname = "raw"\nmode = "full_depth"\ndepth = 20\n'


class FakeClock:
    def __init__(self) -> None:
        self.t = 1_000_000_000_000

    def now_ns(self) -> int:
        return self.t


def fix_checksum(frame: bytes) -> bytes:
    """BodyLength and CheckSum redone after an edit of the body."""
    body = frame[frame.index(b"\x0135=") + 1 : frame.rindex(b"10=")]
    head = b"8=FIX.4.4\x019=%d\x01" % len(body)
    return head + body + b"10=%03d\x01" % (sum(head + body) % 256)


SYMBOLS = [b"EUR/USD", b"GBP/USD", b"USD/JPY", b"XAU/USD", b"WTI"]
PRICES = [b"1.08500", b"1.27000", b"150.000", b"2400.00", b"-1.00"]
ASKS = [b"1.08510", b"1.27010", b"150.010", b"2400.10", b"-0.90"]


def _feed():
    cfg = parse_config(EXAMPLE_CONFIG.read_text())
    batch = UpdateBatch()
    feed = LpFeed(cfg, cfg.lps[0], batch)  # LP1 quotes all five instruments
    handle = FakeHandle()
    feed.on_create(handle)
    feed.on_logon(handle)
    return feed, handle, batch


def _priced_feed(lp: int):
    """LP ``lp`` of the example config logged on, its rows going to an engine with a 20-deep "raw" tier."""
    cfg = parse_config(EXAMPLE_CONFIG.read_text().replace("# --- clients", RAW_TIER + "\n# --- clients"))
    clock = FakeClock()
    engine, batch = Engine(cfg), UpdateBatch()
    feed = LpFeed(cfg, cfg.lps[lp], batch, clock=clock)
    handle = FakeHandle()
    feed.on_create(handle)
    feed.on_logon(handle)
    return clock, engine, batch, feed, handle


def _kinds(batch):
    return [int(batch.kind[i]) for i in range(batch.n)]


def test_subscribes_per_instrument_and_comes_up_only_after_every_snapshot():
    feed, handle, batch = _feed()
    assert [body[262] for _, body in handle.sent] == [b"0", b"1", b"2", b"3", b"4"]
    assert all(body[263] == b"1" and body[146] == b"1" for _, body in handle.sent)
    for n in range(4):
        messages = feed._on_read(_md(b"W", 2 + n, n, SYMBOLS[n], PRICES[n]))
        handle.session.next_target_seq += 1
        assert [m.msg_type for m in messages] == [b"W"] and len(messages[0].fields) < 10  # header only
        assert not feed.up and LP_UP not in _kinds(batch)
    feed._on_read(_md(b"W", 6, 4, b"WTI", b"-1.00"))  # the last one, a negative price
    assert feed.up and _kinds(batch)[-1] == LP_UP
    assert _kinds(batch).count(SET_LEVEL) == 10


def test_a_sequence_gap_clears_the_books_and_resubscribes():
    feed, handle, batch = _feed()
    for n in range(5):
        feed._on_read(_md(b"W", 2 + n, n, SYMBOLS[n], PRICES[n]))
        handle.session.next_target_seq += 1
    handle.sent.clear()
    batch.clear()
    feed._on_read(_md(b"X", 7, 0, b"EUR/USD", b"1.08501"))  # in sequence: applied
    handle.session.next_target_seq += 1
    assert _kinds(batch) == [SET_LEVEL] and feed.gaps == 0
    batch.clear()
    feed._on_read(_md(b"X", 10, 0, b"EUR/USD", b"1.08502"))  # 8 and 9 are missing
    assert feed.gaps == 1
    assert _kinds(batch) == [CLEAR_BOOK] * 5  # and the X after the gap is not applied
    requests = [(body[262], body[263]) for kind, body in handle.sent if kind == b"V"]
    # per instrument: unsubscribe, then a fresh subscription
    assert requests == [(b"%d" % n, action) for n in range(5) for action in (b"2", b"1")]
    assert feed.awaiting == {0, 1, 2, 3, 4}


def test_the_feeds_initiator_defers_session_reads_behind_the_engine_turn():
    # Prices go into engine rows as the bytes are decoded; the session's bookkeeping of the same
    # messages waits behind the gateway's turn (fixserver.transport.Initiator).
    cfg = parse_config(EXAMPLE_CONFIG.read_text())
    assert LpFeed(cfg, cfg.lps[0], UpdateBatch()).initiator().defer_session_reads is True


def test_an_oversized_message_ends_the_connection_at_once_keeping_what_came_before_it():
    # FrameTooLarge is how the transport is told to drop the connection; the messages before the
    # oversized one are still handed to the session, and its megabytes are not kept.
    feed, handle, batch = _feed()
    first = _md(b"W", 2, 0, b"EUR/USD", b"1.08500")
    big = b"8=FIX.4.4\x019=%d\x0135=W\x01" % (2 << 20)
    with pytest.raises(FrameTooLarge) as exc:
        feed._on_read(first + big + b"x" * 70000)
    assert [m.msg_type for m in exc.value.messages] == [b"W"] and exc.value.body_length == 2 << 20
    assert feed.decoder.pending == 0
    assert _kinds(batch).count(SET_LEVEL) == 2  # the snapshot before it was applied


def test_a_rejected_instrument_is_not_waited_for_and_is_requested_again_after_a_reconnect(caplog):
    feed, handle, batch = _feed()
    reject = FixMessage([(35, b"Y"), (262, b"3"), (281, b"0"), (58, b"XAU/USD not available now")])
    with caplog.at_level("WARNING", logger="lagg.feed"):
        feed.from_app(reject, handle)
    assert "XAU/USD not available now" in caplog.text and "281=0" in caplog.text
    for k, n in enumerate((0, 1, 2, 4)):
        feed._on_read(_md(b"W", 2 + k, n, SYMBOLS[n], PRICES[n]))
        handle.session.next_target_seq += 1
    assert feed.up  # XAU/USD is not waited for
    feed.on_logout(handle, "connection lost")
    again = FakeHandle()
    feed.on_logon(again)
    assert [body[262] for _, body in again.sent] == [b"0", b"1", b"2", b"3", b"4"]
    for k, n in enumerate((0, 1, 2, 4)):
        feed._on_read(_md(b"W", 2 + k, n, SYMBOLS[n], PRICES[n]))
        again.session.next_target_seq += 1
    assert not feed.up  # ... and this time it is


def test_a_snapshot_only_lp_resending_an_unchanged_book_stays_fresh():
    # LP3 sends full snapshots only (staleness 2000 ms). The same book every 100 ms for 3 s
    # changes no level, yet the LP is alive and quoting: it must stay in the price.
    clock, engine, batch, feed, handle = _priced_feed(2)
    for seq, n in enumerate(feed.instruments, 2):
        feed._on_read(_md(b"W", seq, n, SYMBOLS[n], PRICES[n], sender=b"LP3", ask=ASKS[n]))
        handle.session.next_target_seq = seq + 1
    assert feed.up
    engine.apply(batch, clock.t)
    batch.clear()
    seq = handle.session.next_target_seq
    for _ in range(30):
        clock.t += 100_000_000
        feed._on_read(_md(b"W", seq, 0, SYMBOLS[0], PRICES[0], sender=b"LP3", ask=ASKS[0]))
        handle.session.next_target_seq = seq = seq + 1
        engine.apply(batch, clock.t)
        batch.clear()
        engine.expire(clock.t)
    q = engine.quote("raw", "EUR/USD")
    assert q.bids and q.asks and engine.stale_exclusions[0].tolist() == [0, 0, 0]


def test_snapshots_that_echo_only_the_symbol_bring_the_lp_up():
    # Some LPs answer a MarketDataRequest without 262: the W is matched by its Symbol 55.
    feed, handle, batch = _feed()
    for n in range(5):
        w = _md(b"W", 2 + n, n, SYMBOLS[n], PRICES[n], ask=ASKS[n]).replace(b"\x01262=%d\x01" % n, b"\x01")
        assert b"262=" not in w
        feed._on_read(fix_checksum(w))
        handle.session.next_target_seq += 1
    assert feed.up and _kinds(batch).count(SET_LEVEL) == 10 and _kinds(batch)[-1] == LP_UP


def _up_with_engine(lp_index: int = 0):
    clock, engine, batch, feed, handle = _priced_feed(lp_index)
    for n in feed.instruments:
        read(feed, handle, _md(b"W", handle.session.next_target_seq, n, SYMBOLS[n], PRICES[n], ask=ASKS[n]))
    assert feed.up
    engine.apply(batch, clock.t)
    batch.clear()
    return feed, handle, batch, engine, clock


def read(feed, handle, data: bytes):
    """One read, then the session catches up as an in-order session would."""
    messages = feed._on_read(data)
    for m in messages:
        if m.seq_num is not None and m.seq_num >= handle.session.next_target_seq:
            handle.session.next_target_seq = m.seq_num + 1
    return messages


def _x(seq: int, *entry: tuple[int, bytes], instr: int = 0) -> bytes:
    header = [(49, b"LP1"), (56, b"LAGG"), (34, seq), (52, b"20261123-10:00:00.000")]
    return encode(b"X", header, [(262, b"%d" % instr), (268, b"1"), *entry])


def test_after_a_gap_increments_are_not_priced_until_the_fresh_snapshot():
    feed, handle, batch, engine, clock = _up_with_engine()
    seq = handle.session.next_target_seq
    # seq is lost; seq + 1 shows the gap (the session holds it back and asks for a resend)
    feed._on_read(_x(seq + 1, (279, b"1"), (269, b"0"), (278, b"b0"), (271, b"2000000")))
    assert feed.gaps == 1 and feed.awaiting == set(feed.instruments)
    handle.session.next_target_seq = seq + 2  # the LP gap-filled at once
    # the LP's old subscription goes on before it answers ours: a new deep ask level
    read(feed, handle, _x(seq + 2, (279, b"0"), (269, b"1"), (278, b"a9"), (270, b"1.08530"), (271, b"5000000")))
    engine.apply(batch, clock.t)
    batch.clear()
    q = engine.quote("raw", "EUR/USD")
    assert not q.bids and not q.asks  # not a one-level book built from increments
    assert feed.decoder.counters["awaiting_snapshot"] == 2  # both X after the gap
    read(feed, handle, _md(b"W", seq + 3, 0, SYMBOLS[0], b"1.08490", ask=b"1.08495"))
    engine.apply(batch, clock.t)
    q = engine.quote("raw", "EUR/USD")
    assert q.bids[0][0] == 108490 and q.asks[0][0] == 108495 and 0 not in feed.awaiting


def test_a_gap_while_the_lp_is_coming_up_withdraws_the_snapshots_it_already_had():
    # EUR/USD's W (seq 2), then seq 3 -- an X moving EUR/USD -- is lost, then the other four W
    # (seq 4..7). The LP must not come up with the pre-gap EUR/USD book.
    clock, engine, batch, feed, handle = _priced_feed(0)
    read(feed, handle, _md(b"W", 2, 0, SYMBOLS[0], PRICES[0], ask=ASKS[0]))
    handle.sent.clear()
    for k, n in enumerate((1, 2, 3, 4)):
        feed._on_read(_md(b"W", 4 + k, n, SYMBOLS[n], PRICES[n], ask=ASKS[n]))  # the session waits for 3
    assert feed.gaps == 1 and not feed.up and feed.awaiting == {0}
    # EUR/USD withdrawn and asked for again; so are the three whose snapshots had not come when
    # the gap showed (the lost message might have been one of them; GBP/USD's came with the gap).
    assert [(body[262], body[263]) for _, body in handle.sent] == [
        (b"%d" % n, request) for n in (0, 2, 3, 4) for request in (b"2", b"1")
    ]
    engine.apply(batch, clock.t)
    assert not engine.quote("raw", "EUR/USD").bids
    read(feed, handle, _md(b"W", 8, 0, SYMBOLS[0], b"1.08490", ask=b"1.08495"))  # the fresh snapshot
    assert feed.up
    engine.apply(batch, clock.t)
    assert engine.quote("raw", "EUR/USD").bids[0][0] == 108490


def test_one_gap_withdraws_each_book_once_while_the_session_waits_for_its_resend():
    feed, handle, batch, engine, clock = _up_with_engine()
    seq = handle.session.next_target_seq
    handle.sent.clear()
    batch.clear()
    # seq is lost; the session expects it until the LP's GapFill, reads after reads
    feed._on_read(_x(seq + 1, (279, b"1"), (269, b"0"), (278, b"b0"), (271, b"2000000")))
    for k, n in enumerate(feed.instruments):  # the LP answers the resubscription, a read each
        feed._on_read(_md(b"W", seq + 2 + k, n, SYMBOLS[n], PRICES[n], ask=ASKS[n]))
    feed._on_read(_x(seq + 7, (279, b"1"), (269, b"0"), (278, b"b0"), (271, b"3000000")))
    assert feed.gaps == 1 and len(handle.sent) == 10 and _kinds(batch).count(CLEAR_BOOK) == 5
    assert feed.awaiting == set() and feed.up
    engine.apply(batch, clock.t)
    assert engine.quote("raw", "EUR/USD").bids == ((108500, 3000),)


def test_market_data_with_a_msgseqnum_below_the_expected_one_is_not_priced():
    # An LP replays an old message without PossDupFlag: the session will log it out for that,
    # but the price must not reach the engine first (nor a message without MsgSeqNum).
    feed, handle, batch, engine, clock = _up_with_engine()
    before = engine.quote("raw", "EUR/USD")
    feed._on_read(_x(3, (279, b"1"), (269, b"0"), (278, b"b0"), (270, b"1.07000"), (271, b"1000000")))
    no_seq = _x(0, (279, b"1"), (269, b"0"), (278, b"b0"), (270, b"1.07001"), (271, b"1000000"))
    feed._on_read(fix_checksum(no_seq.replace(b"\x0134=0\x01", b"\x01")))
    assert batch.n == 0 and feed.decoder.counters["stale_seq"] == 2 and feed.gaps == 0
    engine.apply(batch, clock.t)
    assert engine.quote("raw", "EUR/USD").bids == before.bids


def _admin(msg_type: bytes, seq: int, *fields: tuple[int, bytes], possdup: bool = False) -> bytes:
    header = [(49, b"LP1"), (56, b"LAGG"), (34, seq), (52, b"20261123-10:00:00.000")]
    if possdup:
        header += [(43, b"Y"), (122, b"20261123-09:59:00.000")]
    return encode(msg_type, header, list(fields))


@pytest.mark.parametrize("same_read", [True, False])
def test_a_sequence_reset_that_skips_numbers_is_a_gap_whatever_the_reads(same_read):
    # Reset mode is FIX's disaster recovery: the LP may have lost messages it counted as sent.
    feed, handle, batch, engine, clock = _up_with_engine()
    seq = handle.session.next_target_seq
    handle.sent.clear()
    batch.clear()
    reset = _admin(b"4", seq, (36, b"%d" % (seq + 10)))
    x = _x(seq + 10, (279, b"1"), (269, b"0"), (278, b"b0"), (271, b"3000000"))
    if same_read:
        feed._on_read(reset + x)
    else:
        feed._on_read(reset)
        handle.session.next_target_seq = seq + 10  # the session applied the Reset
        feed._on_read(x)
    assert feed.gaps == 1 and feed.awaiting == set(feed.instruments) and len(handle.sent) == 10
    assert _kinds(batch) == [CLEAR_BOOK] * 5  # the X after it is not applied


def test_gap_fills_in_sequence_or_answering_a_resend_are_no_gap():
    feed, handle, batch, engine, clock = _up_with_engine()
    seq = handle.session.next_target_seq
    handle.sent.clear()
    # in sequence: "nothing for you up to seq + 5" (e.g. messages for another session)
    read(feed, handle, _admin(b"4", seq, (123, b"Y"), (36, b"%d" % (seq + 5)), possdup=True))
    handle.session.next_target_seq = seq + 5
    read(feed, handle, _x(seq + 5, (279, b"1"), (269, b"0"), (278, b"b0"), (271, b"3000000")))
    assert feed.gaps == 0 and handle.sent == [] and feed.awaiting == set()
    # a heartbeat is lost (one gap), then the LP's GapFill answers the session's ResendRequest
    feed._on_read(_admin(b"0", seq + 7))
    feed._on_read(_admin(b"4", seq + 6, (123, b"Y"), (36, b"%d" % (seq + 8)), possdup=True))
    read(feed, handle, _x(seq + 8, (279, b"1"), (269, b"0"), (278, b"b0"), (271, b"4000000")))
    assert feed.gaps == 1 and len(handle.sent) == 10


@pytest.mark.parametrize(
    "entry",
    [
        [(279, b"1"), (269, b"0"), (278, b"b0"), (270, b"1.085005"), (271, b"1000000")],  # off the grid
        [(279, b"3"), (269, b"0"), (278, b"b0")],  # not a FIX 4.4 action
        [(279, b"2"), (269, b"0")],  # "delete the bid side": no 278
        [(279, b"1"), (269, b"0"), (278, b"b0"), (271, b"-5000000")],  # a negative size
    ],
    ids=["off_grid", "bad_action", "side_delete_without_id", "bad_number"],
)
def test_an_increment_that_cannot_be_applied_withdraws_that_book_until_a_fresh_snapshot(entry):
    # The LP's bid moved and ours cannot follow: its old bid must not stay priced.
    feed, handle, batch, engine, clock = _up_with_engine()
    seq = handle.session.next_target_seq
    handle.sent.clear()
    read(feed, handle, _x(seq, *entry))
    engine.apply(batch, clock.t)
    batch.clear()
    q = engine.quote("raw", "EUR/USD")
    assert not q.bids and not q.asks and feed.up  # the LP's other books stay
    assert engine.quote("raw", "GBP/USD").bids
    assert [(body[262], body[263]) for _, body in handle.sent] == [(b"0", b"2"), (b"0", b"1")]
    assert feed.awaiting == {0} and feed.gaps == 0
    read(feed, handle, _x(seq + 1, (279, b"1"), (269, b"0"), (278, b"b0"), (271, b"3000000")))  # not applied
    read(feed, handle, _md(b"W", seq + 2, 0, SYMBOLS[0], b"1.08499", ask=ASKS[0]))
    engine.apply(batch, clock.t)
    assert engine.quote("raw", "EUR/USD").bids == ((108499, 1000),) and feed.awaiting == set()


def test_entries_about_ids_or_levels_we_do_not_keep_withdraw_nothing():
    feed, handle, batch, engine, clock = _up_with_engine()
    seq = handle.session.next_target_seq
    handle.sent.clear()
    read(feed, handle, _x(seq, (279, b"2"), (269, b"0"), (278, b"zz")))  # an id we do not hold
    read(feed, handle, _x(seq + 1, (279, b"0"), (269, b"2"), (278, b"t"), (270, b"1.08"), (271, b"1")))  # a trade
    assert handle.sent == [] and feed.awaiting == set()


def _heartbeat(seq):
    return encode(b"0", [(49, b"LP1"), (56, b"LAGG"), (34, seq), (52, b"20261123-10:00:00.000")], [])


def _requested(handle):
    return [(body[262], body[263]) for kind, body in handle.sent if kind == b"V"]


def test_a_gap_that_may_have_swallowed_an_awaited_snapshot_asks_for_it_again():
    feed, handle, _ = _feed()
    handle.sent.clear()
    for n in range(4):  # the snapshots of instruments 0-3; WTI's (seq 6) is lost
        feed._on_read(_md(b"W", 2 + n, n, SYMBOLS[n], PRICES[n], ask=ASKS[n]))
    feed._on_read(_heartbeat(7))
    assert (b"4", b"1") in _requested(handle)  # asked for again: the LP will not resend it
    feed._on_read(_md(b"W", 8, 4, SYMBOLS[4], PRICES[4], ask=ASKS[4]))
    feed._on_read(_heartbeat(9))
    assert 4 not in feed.awaiting


def test_books_withdrawn_while_the_session_is_ending_are_asked_for_at_the_next_logon():
    feed, handle, _ = _feed()
    for n in range(5):
        feed._on_read(_md(b"W", 2 + n, n, SYMBOLS[n], PRICES[n], ask=ASKS[n]))
    assert feed.up

    def refuse(msg_type, body, resendable=None):  # as a session does once it sent its Logout
        raise SessionStateError(SessionState.LOGOUT_SENT, SessionEvent.SEND_APP)

    handle.send = refuse
    feed._on_read(_md(b"X", 10, 0, b"EUR/USD", b"1.08502"))  # a gap (7-9 lost): no exception escapes
    assert feed.awaiting == {0, 1, 2, 3, 4}
    handle = FakeHandle()
    feed.on_logon(handle)
    assert sorted(_requested(handle)) == [(b"%d" % n, b"1") for n in range(5)]


def test_a_gap_before_any_book_is_live_still_asks_for_the_snapshots_again():
    feed, handle, _ = _feed()
    handle.sent.clear()
    feed._on_read(_heartbeat(3))  # seq 2, EUR/USD's snapshot, is lost
    assert feed.gaps == 1
    assert sorted(_requested(handle)) == sorted((b"%d" % n, r) for n in range(5) for r in (b"1", b"2"))
    for n in range(5):  # the snapshots asked for again
        feed._on_read(_md(b"W", 4 + n, n, SYMBOLS[n], PRICES[n], ask=ASKS[n]))
    assert feed.up
