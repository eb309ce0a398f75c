"""Hypothesis over (state x input) for the sans-I/O session.

Random scripts of inputs (connect, every message type with exact/gapped/low/absurd sequence
numbers, PossDup with and without OrigSendingTime, wrong CompIDs, time passing, application
sends, logouts, lost connections) for both roles. After every input:

* only the session's typed errors escape (SessionStateError / SessionUsageError);
* new outbound messages carry consecutive MsgSeqNums continuing the store's (a reset restarts at
  1), resends (43=Y) reuse numbers already sent, and the store ends one past the last sent;
* application messages are delivered in strictly increasing MsgSeqNum order, never twice;
* each state's invariants hold (timers, queue, heartbeat interval, logged-on flag);
* a Disconnect leaves the session DISCONNECTED.
"""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from fixserver.session import (
    AdminReceived,
    Credentials,
    Deliver,
    Disconnect,
    LoggedOn,
    LoggedOut,
    Role,
    Send,
    Session,
    SessionConfig,
    SessionError,
    SessionID,
    SessionState,
    format_utc_timestamp,
)
from fixserver.session_script import Counterparty
from fixserver.store import MemoryStore

T0 = 1_700_000_000_000_000_000
NS = 1_000_000_000


@dataclass(frozen=True)
class Connect:
    pass


@dataclass(frozen=True)
class Lost:
    pass


@dataclass(frozen=True)
class Tick:
    seconds: float


@dataclass(frozen=True)
class AppSend:
    msg_type: bytes


@dataclass(frozen=True)
class Logout:
    pass


@dataclass(frozen=True)
class Probe:
    pass


@dataclass(frozen=True)
class Peer:
    msg_type: bytes
    seq_mode: str  # exact, gap, low, abs
    seq_value: int
    poss_dup: bool
    orig: bool
    good_comp: bool
    reset_flag: bool
    good_password: bool
    extra: int


@dataclass(frozen=True)
class Reconnect:
    """Connect and (as the peer) log on correctly: gets scripts back into the logged-on states."""


inputs = st.one_of(
    st.just(Connect()),
    st.just(Reconnect()),
    st.just(Lost()),
    st.builds(Tick, st.sampled_from([0.5, 1.0, 2.5, 31.0, 40.0])),
    st.builds(AppSend, st.sampled_from([b"8", b"W", b"j"])),
    st.just(Logout()),
    st.just(Probe()),
    st.builds(
        Peer,
        # weighted towards traffic that keeps the session up, so the deep states get explored
        st.sampled_from([b"0", b"D", b"D", b"D", b"8", b"1", b"2", b"4", b"4R", b"3", b"5", b"A"]),
        st.sampled_from(["exact"] * 6 + ["gap", "gap", "low", "abs"]),
        st.integers(1, 6),
        st.sampled_from([False, False, False, True]),  # PossDup now and then
        st.booleans(),
        st.sampled_from([True] * 9 + [False]),  # mostly right CompIDs
        st.booleans(),
        st.booleans(),
        st.integers(0, 12),
    ),
)


def make(role: Role) -> tuple[Session, Counterparty, MemoryStore]:
    store = MemoryStore(T0)
    if role is Role.ACCEPTOR:
        sid = SessionID("FIX.4.4", "LAGG", "DEMO")
        cfg = SessionConfig(sid, role, heartbeat_s=30)

        def auth(comp: str, user: bytes | None, pw: bytes | None) -> bool:
            return pw == b"good"

        session = Session(cfg, store, authenticator=auth)
    else:
        sid = SessionID("FIX.4.4", "LAGG", "LP1")
        cfg = SessionConfig(sid, role, heartbeat_s=2, credentials=Credentials("u", "good"))
        session = Session(cfg, store)
    return session, Counterparty(session, T0), store


def peer_message(peer: Counterparty, session: Session, p: Peer):
    expected = session.next_target_seq
    seq = {
        "exact": expected,
        "gap": expected + p.seq_value,
        "low": max(1, expected - p.seq_value),
        "abs": p.seq_value,
    }[p.seq_mode]
    body: list[tuple[int, bytes]] = []
    msg_type = p.msg_type
    if msg_type == b"A":
        body = [(98, b"0"), (108, b"30")]
        if p.reset_flag:
            body.append((141, b"Y"))
            seq = 1
        body.append((554, b"good" if p.good_password else b"bad"))
    elif msg_type == b"1":
        body = [(112, b"T%d" % p.extra)]
    elif msg_type == b"2":
        body = [(7, b"%d" % max(1, p.extra)), (16, b"%d" % (0 if p.reset_flag else p.extra + 2))]
    elif msg_type == b"4":
        body = [(123, b"Y"), (36, b"%d" % (seq + p.extra))]
    elif msg_type == b"4R":
        msg_type = b"4"
        body = [(36, b"%d" % (expected + p.extra - 2))]
    elif msg_type == b"D":
        body = [(11, b"o%d" % seq)]
    orig = format_utc_timestamp(peer.now_ns - NS) if p.orig else None
    return peer.message(
        msg_type, *body, seq=seq, poss_dup=p.poss_dup, orig_sending_time=orig,
        sender=None if p.good_comp else b"EVIL",
    )


def check_state_invariants(session: Session) -> None:
    state = session.state
    assert session.next_sender_seq >= 1 and session.next_target_seq >= 1
    if state is SessionState.DISCONNECTED:
        assert session.next_deadline_ns is None
        assert session.queued_count == 0 and not session.resend_outstanding
        assert not session.is_logged_on and session.heartbeat_s == 0
    elif state in (SessionState.AWAIT_LOGON, SessionState.LOGON_SENT):
        assert session.next_deadline_ns is not None and not session.is_logged_on
        assert session.queued_count == 0
    elif state is SessionState.ACTIVE:
        assert session.is_logged_on and session.heartbeat_s > 0
        assert session.next_deadline_ns is not None
    else:
        assert state is SessionState.LOGOUT_SENT
        assert session.is_logged_on and session.next_deadline_ns is not None


GOOD_LOGON = Peer(b"A", "exact", 1, False, False, True, False, True, 0)
STATES_SEEN: set[SessionState] = set()


@settings(max_examples=500, deadline=None)
@given(
    role=st.sampled_from([Role.ACCEPTOR, Role.INITIATOR]),
    logged_on_first=st.booleans(),
    script=st.lists(inputs, min_size=5, max_size=50),
)
def test_random_scripts_keep_the_session_invariants(role: Role, logged_on_first: bool, script: list) -> None:
    session, peer, store = make(role)
    last_delivered = 0
    if logged_on_first:  # start half the scripts from a logged-on session
        script = [Reconnect(), *script]
    for step in script:
        before_state = session.state
        was_logged_on = session.is_logged_on
        prev_next = store.next_sender_seq
        try:
            if isinstance(step, Connect):
                actions = session.connected(peer.now_ns)
            elif isinstance(step, Reconnect):
                actions = session.connected(peer.now_ns)
                actions += peer.deliver(peer_message(peer, session, GOOD_LOGON))
            elif isinstance(step, Lost):
                actions = session.connection_lost(peer.now_ns)
            elif isinstance(step, Tick):
                actions = peer.advance(step.seconds)
            elif isinstance(step, AppSend):
                actions = session.send_app(step.msg_type, [(58, b"x")], peer.now_ns)
            elif isinstance(step, Probe):
                actions = session.test_request(peer.now_ns)
            elif isinstance(step, Logout):
                actions = session.logout(peer.now_ns, "bye")
            else:
                actions = peer.deliver(peer_message(peer, session, step))
        except SessionError:
            # typed errors only, and they change nothing
            assert session.state is before_state
            assert store.next_sender_seq == prev_next
            check_state_invariants(session)
            continue

        sequenced = [a for a in actions if isinstance(a, Send) and a.sequenced and not a.poss_dup]
        for i, send in enumerate(sequenced):
            if i == 0:
                assert send.seq_num in (prev_next, 1), (send, prev_next)
            else:
                assert send.seq_num == sequenced[i - 1].seq_num + 1
        if sequenced:
            assert store.next_sender_seq == sequenced[-1].seq_num + 1
        for a in actions:
            if isinstance(a, Send) and a.poss_dup:
                assert a.seq_num < store.next_sender_seq
                assert dict(a.header)[43] == b"Y" and 122 in dict(a.header)
            if isinstance(a, Send) and not a.sequenced:
                assert a.msg_type == b"5" and a.seq_num == 1
            if isinstance(a, LoggedOn) and a.reset:
                last_delivered = 0
            if isinstance(a, AdminReceived) and a.message.msg_type == b"A" and a.message.get(141) == b"Y":
                last_delivered = 0  # a sequence reset during the session: the numbers start again
            if isinstance(a, Deliver):
                seq = a.message.seq_num
                assert seq is not None and seq > last_delivered
                last_delivered = seq
        if any(isinstance(a, Disconnect) for a in actions):
            assert session.state is SessionState.DISCONNECTED
        logged_out = [a for a in actions if isinstance(a, LoggedOut)]
        assert len(logged_out) <= 1
        if logged_out:
            assert was_logged_on or any(isinstance(a, LoggedOn) for a in actions)
        check_state_invariants(session)
        STATES_SEEN.add(session.state)


def test_the_random_scripts_reached_every_state() -> None:
    """Guards the generator: the invariants above were checked in every state."""
    test_random_scripts_keep_the_session_invariants()
    assert STATES_SEEN == set(SessionState)
