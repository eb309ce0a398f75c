"""The sans-I/O FIX session as conversation scripts: "the peer sends this, we expect that"."""

from __future__ import annotations

import hashlib
from datetime import time as dt_time

import pytest

from fixserver.message import FixMessage
from fixserver.session import (
    AdminReceived,
    Credentials,
    DailySchedule,
    Deliver,
    Disconnect,
    LoggedOn,
    LoggedOut,
    Role,
    Send,
    Session,
    SessionConfig,
    SessionEvent,
    SessionID,
    SessionState,
    SessionStateError,
    SessionUsageError,
    format_utc_timestamp,
    parse_utc_timestamp,
)
from fixserver.session_auth import ConfigAuthenticator
from fixserver.session_script import Counterparty, as_received, field_map, sends
from fixserver.store import MemoryStore

T0 = 1_700_000_000_000_000_000  # 2023-11-14 22:13:20 UTC
NS = 1_000_000_000
PASSWORD = "s3cret-pw"


class _Client:
    """Just the fields ConfigAuthenticator reads."""

    def __init__(self, comp_id: str, password: str) -> None:
        self.sender_comp_id = comp_id
        self.password_sha256 = hashlib.sha256(password.encode()).hexdigest()
        self.password_env = None


def acceptor(
    store: MemoryStore | None = None, validator=None, schedule: DailySchedule | None = None, **cfg
) -> tuple[Session, Counterparty]:
    config = SessionConfig(SessionID("FIX.4.4", "LAGG", "DEMO"), Role.ACCEPTOR, schedule=schedule, **cfg)
    auth = ConfigAuthenticator([_Client("DEMO", PASSWORD)])  # type: ignore[list-item]
    session = Session(config, store or MemoryStore(T0), authenticator=auth, validator=validator)
    return session, Counterparty(session, T0)


def logged_on(**kw) -> tuple[Session, Counterparty]:
    session, peer = acceptor(**kw)
    session.connected(peer.now_ns)
    actions = peer.logon(30, (554, PASSWORD.encode()))
    assert session.state is SessionState.ACTIVE, actions
    return session, peer


def types(actions) -> list[bytes]:
    return [s.msg_type for s in sends(actions)]


def of(actions, kind):
    return [a for a in actions if isinstance(a, kind)]


# --- Logon -------------------------------------------------------------------------------------


def test_logon_is_answered_and_both_sequences_advance() -> None:
    session, peer = acceptor()
    assert session.connected(peer.now_ns) == []
    assert session.state is SessionState.AWAIT_LOGON
    actions = peer.logon(30, (553, b"demo-user"), (554, PASSWORD.encode()))
    (reply,) = sends(actions)
    f = field_map(reply)
    assert (f[35], f[49], f[56], f[34], f[98], f[108]) == (b"A", b"LAGG", b"DEMO", b"1", b"0", b"30")
    assert 141 not in f
    assert of(actions, LoggedOn) == [LoggedOn(reset=False)]
    assert session.state is SessionState.ACTIVE and session.heartbeat_s == 30
    assert (session.next_sender_seq, session.next_target_seq) == (2, 2)


@pytest.mark.parametrize("password", [b"wrong", None])
def test_wrong_password_gets_neutral_logout_and_no_state_change(password) -> None:
    store = MemoryStore(T0)
    store.set_next_sender_seq(17)
    store.set_next_target_seq(9)
    session, peer = acceptor(store)
    session.connected(peer.now_ns)
    extra = () if password is None else ((554, password),)
    actions = peer.logon(30, *extra, seq=9)
    (logout,) = sends(actions)
    f = field_map(logout)
    assert (f[35], f[34], f[58]) == (b"5", b"1", b"Logon rejected")  # 34=1: our sequence not revealed
    assert not logout.sequenced
    assert of(actions, Disconnect) == [Disconnect("Logon rejected")]
    assert not of(actions, LoggedOn)
    assert (store.next_sender_seq, store.next_target_seq) == (17, 9)
    assert session.state is SessionState.DISCONNECTED


def test_unknown_comp_id_gets_the_same_logout_as_a_wrong_password() -> None:
    wrong_pw, peer1 = acceptor()
    wrong_pw.connected(T0)
    a = sends(peer1.logon(30, (554, b"nope")))[0]
    unknown, peer2 = acceptor()
    unknown.connected(T0)
    b = sends(peer2.logon(30, (554, PASSWORD.encode()), sender=b"STRANGER"))[0]
    assert field_map(a)[58] == field_map(b)[58] == b"Logon rejected"
    assert field_map(a)[34] == field_map(b)[34] == b"1"


def test_password_never_appears_in_reprs_or_reasons() -> None:
    session, peer = acceptor()
    session.connected(T0)
    msg = peer.message(b"A", (98, b"0"), (108, b"30"), (554, b"wrong-password-xyz"))
    actions = session.receive(msg, T0)
    text = repr(actions) + repr(session) + repr(msg)
    assert "wrong-password-xyz" not in text
    initiator = Session(
        SessionConfig(SessionID("FIX.4.4", "LAGG", "LP1"), Role.INITIATOR,
                      credentials=Credentials("lagg", "lp-secret-123")),
        MemoryStore(T0),
    )
    logon = sends(initiator.connected(T0))[0]
    assert field_map(logon)[554] == b"lp-secret-123"  # it is on the wire ...
    assert "lp-secret-123" not in repr(logon) + repr(initiator.config)  # ... and nowhere else


def test_first_message_not_logon_disconnects_without_reply() -> None:
    session, peer = acceptor()
    session.connected(T0)
    actions = peer.send(b"D", (11, b"ord1"))
    assert sends(actions) == []
    assert of(actions, Disconnect) and session.state is SessionState.DISCONNECTED


@pytest.mark.parametrize(
    "fields, reason",
    [
        (((98, b"1"), (108, b"30")), "EncryptMethod(98) must be 0"),
        (((98, b"0"),), "HeartBtInt(108) must be a positive integer"),
        (((98, b"0"), (108, b"0")), "HeartBtInt(108) must be a positive integer"),
        # We would heartbeat (and notice a dead peer) only every 31,000 years.
        (((98, b"0"), (108, b"1000000000000")), "HeartBtInt(108) must be at most 300 seconds, got 1000000000000"),
        (((98, b"0"), (108, b"301")), "HeartBtInt(108) must be at most 300 seconds, got 301"),
    ],
)
def test_bad_logon_fields_get_logout_with_reason(fields, reason) -> None:
    session, peer = acceptor()
    session.connected(T0)
    actions = peer.send(b"A", *fields, (554, PASSWORD.encode()))
    assert types(actions) == [b"5"]
    assert field_map(sends(actions)[0])[58] == reason.encode()
    assert of(actions, Disconnect) == [Disconnect(reason)]


@pytest.mark.parametrize("hb", [1, 300])
def test_heartbeat_intervals_at_the_bounds_are_accepted_and_used(hb) -> None:
    session, peer = acceptor()
    session.connected(T0)
    actions = peer.send(b"A", (98, b"0"), (108, str(hb).encode()), (554, PASSWORD.encode()))
    assert types(actions) == [b"A"] and field_map(sends(actions)[0])[108] == str(hb).encode()
    assert session.state is SessionState.ACTIVE
    # Silence past the interval (+20%) gets a TestRequest: a dead peer is noticed in bounded time.
    probe = session.on_timer(T0 + hb * 12 * NS // 10 + NS)
    assert types(probe) == [b"1"]


def test_the_heartbeat_bound_is_a_session_setting() -> None:
    session, peer = acceptor(max_heartbeat_s=30)
    session.connected(T0)
    actions = peer.send(b"A", (98, b"0"), (108, b"31"), (554, PASSWORD.encode()))
    assert field_map(sends(actions)[0])[58] == b"HeartBtInt(108) must be at most 30 seconds, got 31"
    assert session.state is SessionState.DISCONNECTED


def test_logon_with_a_stale_sending_time_is_refused_after_authentication() -> None:
    session, peer = acceptor()
    session.connected(T0)
    actions = peer.logon(30, (554, PASSWORD.encode()), sending_time=format_utc_timestamp(T0 - 300 * NS))
    assert field_map(sends(actions)[0])[58] == b"SendingTime accuracy problem"
    assert session.state is SessionState.DISCONNECTED


def test_reset_seq_num_flag_resets_both_sides() -> None:
    store = MemoryStore(T0)
    store.set_next_sender_seq(50)
    store.set_next_target_seq(40)
    session, peer = acceptor(store)
    session.connected(T0)
    actions = peer.logon(30, (141, b"Y"), (554, PASSWORD.encode()), seq=1)
    f = field_map(sends(actions)[0])
    assert (f[35], f[34], f[141]) == (b"A", b"1", b"Y")
    assert of(actions, LoggedOn) == [LoggedOn(reset=True)]
    assert (store.next_sender_seq, store.next_target_seq) == (2, 2)


def test_logon_seq_too_low_is_logged_out() -> None:
    store = MemoryStore(T0)
    store.set_next_target_seq(10)
    session, peer = acceptor(store)
    session.connected(T0)
    actions = peer.logon(30, (554, PASSWORD.encode()), seq=5)
    assert types(actions) == [b"5"]
    assert field_map(sends(actions)[0])[58] == b"MsgSeqNum too low, expecting 10 but received 5"
    assert session.state is SessionState.DISCONNECTED


# A gap fill resent (43=Y) carries OrigSendingTime (122), or not: QuickFIX sends it without, and
# refusing it would leave the gap open for good.
@pytest.mark.parametrize("orig_sending_time", [b"20231114-22:13:20", None])
def test_logon_seq_too_high_logs_on_then_asks_for_the_gap(orig_sending_time) -> None:
    store = MemoryStore(T0)
    store.set_next_target_seq(3)
    session, peer = acceptor(store)
    session.connected(T0)
    peer.next_seq = 6
    actions = peer.logon(30, (554, PASSWORD.encode()))
    assert types(actions) == [b"A", b"2"]
    rr = field_map(sends(actions)[1])
    assert (rr[7], rr[16]) == (b"3", b"0")
    assert session.resend_outstanding
    # The peer fills 3..5 with a gap fill; the queued Logon (6) is consumed, 7 is next.
    fill = peer.send(b"4", (123, b"Y"), (36, b"6"), seq=3, poss_dup=True, orig_sending_time=orig_sending_time)
    assert sends(fill) == []  # no Reject: the gap is filled
    assert session.next_target_seq == 7 and not session.resend_outstanding
    order = peer.send(b"D", (11, b"o1"))
    assert [a.message.get(11) for a in of(order, Deliver)] == [b"o1"]


# --- Heartbeat and TestRequest -----------------------------------------------------------------


def test_heartbeat_after_heartbtint_of_outbound_silence() -> None:
    session, peer = logged_on()
    assert session.next_deadline_ns == T0 + 30 * NS
    assert peer.advance(29.9) == []
    peer.send(b"0")  # inbound traffic does not delay our heartbeat
    actions = peer.advance(0.2)
    assert types(actions) == [b"0"]
    assert session.next_deadline_ns == peer.now_ns + 30 * NS  # the next heartbeat, not the TestRequest


def test_test_request_answered_with_its_id() -> None:
    session, peer = logged_on()
    actions = peer.send(b"1", (112, b"PING-7"))
    (hb,) = sends(actions)
    assert field_map(hb)[35] == b"0" and field_map(hb)[112] == b"PING-7"


def test_test_request_after_heartbtint_plus_20pct_then_disconnect_if_unanswered() -> None:
    session, peer = logged_on()
    peer.send(b"0")
    peer.advance(30)  # our heartbeat goes out at 30 s
    assert peer.advance(5.9) == []  # 35.9 s of inbound silence: still fine
    actions = peer.advance(0.2)  # 36.1 s > 30 s + 20%
    assert types(actions) == [b"1"]
    test_id = field_map(sends(actions)[0])[112]
    actions = peer.advance(36.1)
    assert of(actions, Disconnect) == [Disconnect("TestRequest not answered")]
    assert of(actions, LoggedOut) == [LoggedOut("TestRequest not answered")]
    assert session.state is SessionState.DISCONNECTED
    assert test_id.startswith(b"TEST-")


def test_answered_test_request_keeps_the_session() -> None:
    session, peer = logged_on()
    actions = peer.advance(36.1)
    test_id = field_map([s for s in sends(actions) if s.msg_type == b"1"][0])[112]
    peer.send(b"0", (112, test_id))
    actions = peer.advance(30)
    assert not of(actions, Disconnect) and session.state is SessionState.ACTIVE


def test_test_request_on_demand() -> None:
    session, peer = logged_on()
    (tr,) = sends(session.test_request(T0, b"PROBE"))
    assert (field_map(tr)[35], field_map(tr)[112]) == (b"1", b"PROBE")
    peer.send(b"0", (112, b"PROBE"))
    assert not of(peer.advance(36.1), Disconnect)
    session.test_request(peer.now_ns)
    assert of(peer.advance(36.1), Disconnect) == [Disconnect("TestRequest not answered")]


# --- sequence numbers --------------------------------------------------------------------------


def test_seq_too_low_without_possdup_is_logged_out() -> None:
    session, peer = logged_on()
    peer.send(b"0")
    actions = peer.send(b"0", seq=2)
    assert types(actions) == [b"5"]
    assert field_map(sends(actions)[0])[58] == b"MsgSeqNum too low, expecting 3 but received 2"
    assert of(actions, Disconnect)


def test_possdup_duplicate_is_ignored() -> None:
    session, peer = logged_on()
    first = peer.send(b"D", (11, b"o1"))
    assert len(of(first, Deliver)) == 1
    again = peer.send(b"D", (11, b"o1"), seq=2, poss_dup=True, orig_sending_time=format_utc_timestamp(T0))
    assert again == [] and session.duplicates_ignored == 1
    assert session.next_target_seq == 3


def test_gap_sends_one_resend_request_queues_and_replays_in_order() -> None:
    session, peer = logged_on()
    peer.next_seq = 4  # 2 and 3 are lost
    actions = peer.send(b"D", (11, b"o4"))
    assert types(actions) == [b"2"] and not of(actions, Deliver)
    rr = field_map(sends(actions)[0])
    assert (rr[7], rr[16]) == (b"2", b"0")
    more = peer.send(b"D", (11, b"o5"))  # still in the gap: no second ResendRequest
    assert more == [] and session.queued_count == 2
    orig = format_utc_timestamp(T0)
    r2 = peer.send(b"D", (11, b"o2"), seq=2, poss_dup=True, orig_sending_time=orig)
    assert [d.message.get(11) for d in of(r2, Deliver)] == [b"o2"]
    r3 = peer.send(b"D", (11, b"o3"), seq=3, poss_dup=True, orig_sending_time=orig)
    assert [d.message.get(11) for d in of(r3, Deliver)] == [b"o3", b"o4", b"o5"]
    assert session.next_target_seq == 6 and not session.resend_outstanding and session.queued_count == 0
    # the peer's 16=0 resend also repeats 4 and 5 with PossDup: ignored
    assert peer.send(b"D", (11, b"o4"), seq=4, poss_dup=True, orig_sending_time=orig) == []


def test_gap_filled_by_sequence_reset_gap_fill() -> None:
    session, peer = logged_on()
    peer.next_seq = 5
    peer.send(b"D", (11, b"o5"))
    actions = peer.send(b"4", (123, b"Y"), (36, b"5"), seq=2, poss_dup=True,
                        orig_sending_time=format_utc_timestamp(T0))
    assert [d.message.get(11) for d in of(actions, Deliver)] == [b"o5"]
    assert session.next_target_seq == 6


def test_gap_fill_that_does_not_advance_is_rejected() -> None:
    session, peer = logged_on()
    actions = peer.send(b"4", (123, b"Y"), (36, b"2"))
    (rej,) = sends(actions)
    f = field_map(rej)
    assert (f[35], f[45], f[371], f[372], f[373]) == (b"3", b"2", b"36", b"4", b"5")


def test_sequence_reset_reset_mode_moves_expected_and_never_lowers() -> None:
    session, peer = logged_on()
    assert sends(peer.send(b"4", (36, b"20"), seq=99)) == []  # Reset mode ignores 34
    assert session.next_target_seq == 20
    actions = peer.send(b"4", (123, b"N"), (36, b"10"), seq=20)
    f = field_map(sends(actions)[0])
    assert (f[35], f[373], f[371]) == (b"3", b"5", b"36")
    assert session.next_target_seq == 20


def test_sequence_reset_reset_releases_queued_messages() -> None:
    session, peer = logged_on()
    peer.next_seq = 4
    peer.send(b"D", (11, b"o4"))
    actions = peer.send(b"4", (36, b"4"), seq=2)
    assert [d.message.get(11) for d in of(actions, Deliver)] == [b"o4"]


# --- answering ResendRequest -------------------------------------------------------------------


def test_resend_request_answers_with_stored_reports_and_gap_fills() -> None:
    session, peer = logged_on()  # our Logon was 1
    session.send_app(b"8", [(37, b"E1"), (150, b"0")], peer.now_ns)  # 2 stored
    session.send_app(b"W", [(55, b"EUR/USD")], peer.now_ns)  # 3 market data: not stored
    peer.advance(30)  # 4 heartbeat
    session.send_app(b"8", [(37, b"E2"), (150, b"F")], peer.now_ns)  # 5 stored
    session.send_app(b"X", [(55, b"EUR/USD")], peer.now_ns)  # 6 not stored
    assert session.next_sender_seq == 7
    peer.now_ns += NS
    actions = peer.send(b"2", (7, b"1"), (16, b"0"))
    got = [(f[35], f[34], f.get(36), f.get(37), f.get(43)) for f in map(field_map, sends(actions))]
    assert got == [
        (b"4", b"1", b"2", None, b"Y"),
        (b"8", b"2", None, b"E1", b"Y"),
        (b"4", b"3", b"5", None, b"Y"),
        (b"8", b"5", None, b"E2", b"Y"),
        (b"4", b"6", b"7", None, b"Y"),
    ]
    resent = field_map(sends(actions)[1])
    assert resent[122] == format_utc_timestamp(T0)  # the original SendingTime
    assert resent[52] == format_utc_timestamp(peer.now_ns)
    assert all(s.poss_dup for s in sends(actions))
    assert session.next_sender_seq == 7  # resends reuse their numbers


def test_resend_request_with_bounded_end() -> None:
    session, peer = logged_on()
    for i in range(3):
        session.send_app(b"8", [(37, b"E%d" % i)], T0)  # 2, 3, 4
    actions = peer.send(b"2", (7, b"3"), (16, b"3"))
    assert [(s.msg_type, s.seq_num) for s in sends(actions)] == [(b"8", 3)]


def test_resend_request_arriving_in_a_gap_is_answered_at_once() -> None:
    session, peer = logged_on()
    session.send_app(b"8", [(37, b"E1")], T0)
    peer.next_seq = 5
    actions = peer.send(b"2", (7, b"2"), (16, b"0"))
    assert [(s.msg_type, s.seq_num) for s in sends(actions)] == [(b"8", 2), (b"2", 3)]


def test_messages_sent_while_away_are_recovered_by_resend() -> None:
    session, peer = logged_on()
    session.connection_lost(T0, "peer vanished")
    session.send_app(b"8", [(37, b"away")], T0)  # stored under 2
    with pytest.raises(SessionStateError):
        session.send_app(b"W", [(55, b"EUR/USD")], T0)  # market data is not kept for later
    session.connected(T0)
    actions = peer.logon(30, (554, PASSWORD.encode()))
    assert field_map(sends(actions)[0])[34] == b"3"
    rr = peer.send(b"2", (7, b"2"), (16, b"2"))
    (resent,) = sends(rr)
    assert (resent.msg_type, resent.seq_num, field_map(resent)[37]) == (b"8", 2, b"away")


# --- Reject and BusinessMessageReject ----------------------------------------------------------


class _Bad:
    def __init__(self, reason: int, tag: int | None, text: str, business: bool = False) -> None:
        self.reason, self.ref_tag_id, self.text, self.business = reason, tag, text, business
        self.ref_msg_type = b"D"


def test_dictionary_failure_gets_reject_and_consumes_the_seq() -> None:
    def validator(msg: FixMessage):
        return _Bad(1, 55, "Required tag missing: Symbol(55)") if msg.msg_type == b"D" else None

    session, peer = logged_on(validator=validator)
    actions = peer.send(b"D", (11, b"o1"))
    (rej,) = sends(actions)
    f = field_map(rej)
    assert (f[35], f[45], f[371], f[372], f[373], f[58]) == (
        b"3", b"2", b"55", b"D", b"1", b"Required tag missing: Symbol(55)")
    assert not of(actions, Deliver)
    assert session.next_target_seq == 3


def test_unsupported_business_type_gets_business_message_reject() -> None:
    session, peer = logged_on(validator=lambda m: _Bad(3, None, "Unsupported", True) if m.msg_type == b"R" else None)
    f = field_map(sends(peer.send(b"R", (131, b"q")))[0])
    assert (f[35], f[45], f[372], f[380]) == (b"j", b"2", b"R", b"3")


def test_business_reject_helper() -> None:
    session, peer = logged_on()
    (order,) = of(peer.send(b"D", (11, b"o1")), Deliver)
    actions = session.business_reject(order.message, 5, "Conditionally required field missing", T0, ref_id=b"o1")
    f = field_map(sends(actions)[0])
    assert (f[35], f[45], f[372], f[380], f[379], f[58]) == (
        b"j", b"2", b"D", b"5", b"o1", b"Conditionally required field missing")


def test_comp_id_problem_gets_reject_and_logout() -> None:
    session, peer = logged_on()
    actions = peer.send(b"0", sender=b"OTHER")
    assert types(actions) == [b"3", b"5"]
    assert field_map(sends(actions)[0])[373] == b"9"
    assert session.state is SessionState.LOGOUT_SENT


def test_sending_time_accuracy_problem_gets_reject_and_logout() -> None:
    session, peer = logged_on()
    actions = peer.send(b"0", sending_time=format_utc_timestamp(T0 - 600 * NS))
    assert types(actions) == [b"3", b"5"]
    f = field_map(sends(actions)[0])
    assert (f[373], f[371]) == (b"10", b"52")


def test_possdup_without_orig_sending_time_is_rejected() -> None:
    session, peer = logged_on()
    actions = peer.send(b"D", (11, b"o1"), poss_dup=True)
    f = field_map(sends(actions)[0])
    assert (f[35], f[373], f[371]) == (b"3", b"1", b"122")
    assert not of(actions, Deliver)


def test_app_message_is_delivered_and_admin_observed() -> None:
    session, peer = logged_on()
    actions = peer.send(b"D", (11, b"o1"))
    assert [type(a) for a in actions] == [Deliver]
    actions = peer.send(b"0")
    assert [type(a) for a in actions] == [AdminReceived]


# --- Logout ------------------------------------------------------------------------------------


def test_we_log_out_and_the_peer_confirms() -> None:
    session, peer = logged_on()
    actions = session.logout(T0, "end of day")
    assert types(actions) == [b"5"] and field_map(sends(actions)[0])[58] == b"end of day"
    assert session.state is SessionState.LOGOUT_SENT
    d = peer.send(b"D", (11, b"late"))  # still processed while logging out
    assert of(d, Deliver)
    actions = peer.send(b"5")
    assert sends(actions) == []
    assert of(actions, Disconnect) == [Disconnect("logout complete")]
    assert of(actions, LoggedOut) == [LoggedOut("logout complete")]


def test_logout_times_out_without_an_answer() -> None:
    session, peer = logged_on()
    session.logout(T0)
    assert peer.advance(1.9) == []
    actions = peer.advance(0.2)
    assert of(actions, Disconnect) == [Disconnect("logout timeout")]


def test_peer_logs_out_and_we_answer() -> None:
    session, peer = logged_on()
    actions = peer.send(b"5", (58, b"bye"))
    assert types(actions) == [b"5"]
    assert of(actions, Disconnect) == [Disconnect("counterparty logged out: bye")]
    assert session.next_target_seq == 3


# --- state table -------------------------------------------------------------------------------


def test_illegal_events_raise_typed_errors_naming_state_and_event() -> None:
    session, peer = acceptor()
    with pytest.raises(SessionStateError) as err:
        session.receive(peer.message(b"A", (98, b"0"), (108, b"30")), T0)
    assert err.value.state is SessionState.DISCONNECTED
    assert err.value.event is SessionEvent.RECV_LOGON
    assert "RECV_LOGON" in str(err.value) and "DISCONNECTED" in str(err.value)
    session.connected(T0)
    with pytest.raises(SessionStateError, match="CONNECTED is not allowed in state AWAIT_LOGON"):
        session.connected(T0)


def test_application_cannot_send_admin_types() -> None:
    session, _ = logged_on()
    with pytest.raises(SessionUsageError):
        session.send_app(b"4", [(36, b"100")], T0)


def test_logon_timeout() -> None:
    session, peer = acceptor()
    session.connected(T0)
    assert session.next_deadline_ns == T0 + 10 * NS
    assert of(peer.advance(10), Disconnect) == [Disconnect("logon timeout")]


def test_unexpected_logon_while_logged_on() -> None:
    session, peer = logged_on()
    actions = peer.logon(30)
    assert types(actions) == [b"5"] and session.state is SessionState.DISCONNECTED


# --- initiator ---------------------------------------------------------------------------------


def initiator(reset: bool = False) -> tuple[Session, Counterparty]:
    cfg = SessionConfig(SessionID("FIX.4.4", "LAGG", "LP1"), Role.INITIATOR, heartbeat_s=2,
                        reset_on_logon=reset, credentials=Credentials("lagg", "pw"))
    session = Session(cfg, MemoryStore(T0))
    return session, Counterparty(session, T0)


def test_initiator_logon_handshake() -> None:
    session, peer = initiator(reset=True)
    (logon,) = sends(session.connected(T0))
    f = field_map(logon)
    assert (f[35], f[34], f[98], f[108], f[141], f[553]) == (b"A", b"1", b"0", b"2", b"Y", b"lagg")
    assert session.state is SessionState.LOGON_SENT
    actions = peer.logon(2, (141, b"Y"))
    assert sends(actions) == [] and of(actions, LoggedOn) == [LoggedOn(reset=True)]
    assert session.state is SessionState.ACTIVE and session.heartbeat_s == 2


def test_initiator_logon_refused() -> None:
    session, peer = initiator()
    session.connected(T0)
    actions = peer.send(b"5", (58, b"Logon rejected"))
    assert of(actions, Disconnect) == [Disconnect("logon refused: Logon rejected")]
    assert not of(actions, LoggedOut)


def test_initiator_and_acceptor_talk_to_each_other() -> None:
    """Two machines wired back to back: every Send of one is received by the other."""
    client = Session(SessionConfig(SessionID("FIX.4.4", "DEMO", "LAGG"), Role.INITIATOR,
                                   credentials=Credentials(None, PASSWORD)), MemoryStore(T0))
    server, _ = acceptor()
    now = T0
    pending = [("server", a) for a in client.connected(now)]
    server.connected(now)
    seen: list[tuple[str, object]] = []
    while pending:
        to, send = pending.pop(0)
        if not isinstance(send, Send):
            continue
        target, back = (server, "client") if to == "server" else (client, "server")
        for a in target.receive(as_received(send), now):
            seen.append((to, a))
            pending.append((back, a))
    assert client.is_logged_on and server.is_logged_on
    order = client.send_app(b"D", [(11, b"c1"), (55, b"EUR/USD")], now)
    (delivered,) = of(server.receive(as_received(sends(order)[0]), now), Deliver)
    assert delivered.message.get(11) == b"c1"
    bye = client.logout(now, "done")
    answer = server.receive(as_received(sends(bye)[0]), now)
    final = client.receive(as_received(sends(answer)[0]), now)
    assert of(final, Disconnect) and server.state is client.state is SessionState.DISCONNECTED


# --- schedule ----------------------------------------------------------------------------------

DAY = 86_400 * NS
MIDNIGHT = T0 - T0 % DAY


def test_daily_schedule_periods() -> None:
    day = DailySchedule(dt_time(8, 0), dt_time(17, 0))
    assert day.period(MIDNIGHT + 9 * 3600 * NS) == (MIDNIGHT + 8 * 3600 * NS, MIDNIGHT + 17 * 3600 * NS)
    assert day.period(MIDNIGHT + 18 * 3600 * NS) is None
    night = DailySchedule(dt_time(22, 0), dt_time(21, 0))  # FX week-day style, across midnight
    assert night.period(MIDNIGHT + 23 * 3600 * NS) == (MIDNIGHT + 22 * 3600 * NS, MIDNIGHT + DAY + 21 * 3600 * NS)
    assert night.period(MIDNIGHT + 3600 * NS) == (MIDNIGHT - 2 * 3600 * NS, MIDNIGHT + 21 * 3600 * NS)
    assert night.period(MIDNIGHT + 21 * 3600 * NS + 1) is None
    always = DailySchedule(dt_time(17, 0), dt_time(17, 0))
    assert always.period(MIDNIGHT + 3600 * NS) == (MIDNIGHT - 7 * 3600 * NS, MIDNIGHT + 17 * 3600 * NS)


def test_schedule_logs_out_at_end_and_resets_sequences_next_period() -> None:
    schedule = DailySchedule(dt_time(8, 0), dt_time(17, 0))
    start = MIDNIGHT + DAY + 9 * 3600 * NS  # 09:00 the next day
    store = MemoryStore(start - 3600 * NS)
    session, peer = acceptor(store, schedule=schedule, max_sending_time_skew_s=None)
    peer.now_ns = start
    session.connected(start)
    peer.logon(30, (554, PASSWORD.encode()))
    session.send_app(b"8", [(37, b"E1")], start)
    assert session.next_deadline_ns is not None and session.next_deadline_ns <= start + 30 * NS
    # keep the session alive until 17:00 with heartbeats both ways
    actions: list = []
    for _ in range(8 * 120):
        peer.send(b"0")
        actions = peer.advance(30)
        if b"5" in types(actions):
            break
    assert peer.now_ns >= MIDNIGHT + DAY + 17 * 3600 * NS
    assert field_map([s for s in sends(actions) if s.msg_type == b"5"][0])[58] == b"End of session"
    peer.send(b"5")
    assert session.state is SessionState.DISCONNECTED and store.next_sender_seq > 3
    # outside the window a Logon is refused (after authentication)
    peer.now_ns = MIDNIGHT + DAY + 20 * 3600 * NS
    session.connected(peer.now_ns)
    refused = peer.logon(30, (554, PASSWORD.encode()))
    assert field_map(sends(refused)[0])[58] == b"Logon outside the session's hours"
    # the next morning everything starts at 1 again
    peer.now_ns = MIDNIGHT + 2 * DAY + 8 * 3600 * NS + NS
    peer.next_seq = 1
    session.connected(peer.now_ns)
    actions = peer.logon(30, (554, PASSWORD.encode()))
    assert field_map(sends(actions)[0])[34] == b"1"
    assert store.get_range(1, 100) == []


# --- time stamps -------------------------------------------------------------------------------


def test_timestamps_round_trip() -> None:
    stamp = format_utc_timestamp(T0 + 123_456_789)
    assert stamp == b"20231114-22:13:20.123"
    assert parse_utc_timestamp(stamp) == T0 + 123_000_000
    assert parse_utc_timestamp(b"20231114-22:13:20") == T0
    assert parse_utc_timestamp(b"20231114-22:13:20.123456789") == T0 + 123_456_789
    assert parse_utc_timestamp(b"20231114-22:13:20.5") == T0 + 500_000_000
    assert parse_utc_timestamp(b"20161231-23:59:60") == parse_utc_timestamp(b"20170101-00:00:00")  # leap second
    bad_ones = (
        b"", b"2023", b"20231114 22:13:20", b"20231114-22:13:2x", b"20231114-22:13:20.1x", None,
        b"20231114-22:13:20xyz", b"20231114-22:13:20.", b"20231114-22:13:20.1234567890",  # junk after it
        b"20231114-22-13-20", b" 2023114-22:13:20", b"+2023114-22:13:20",  # other separators, signs, spaces
        b"20231314-22:13:20", b"20230230-22:13:20", b"20231114-24:00:00", b"20231114-22:60:20",  # out of range
    )  # fmt: skip
    for bad in bad_ones:
        assert parse_utc_timestamp(bad) is None, bad


def test_real_dictionary_rejects_through_the_session() -> None:
    from fixserver.dictionary import validate

    session, peer = logged_on(validator=validate)
    # NewOrderSingle without Symbol(55): session-level Reject naming the tag, not delivered.
    actions = peer.send(b"D", (11, b"o1"), (54, b"1"), (60, format_utc_timestamp(T0)), (38, b"1000"), (40, b"1"))
    assert not of(actions, Deliver)
    f = field_map(sends(actions)[0])
    assert (f[35], f[45], f[371], f[372], f[373]) == (b"3", b"2", b"55", b"D", b"1")
    # A valid one is delivered; sequence numbers moved past the rejected message.
    ok = peer.send(b"D", (11, b"o2"), (55, b"EUR/USD"), (54, b"1"), (60, format_utc_timestamp(T0)),
                   (38, b"1000"), (40, b"1"))
    assert [d.message.get(11) for d in of(ok, Deliver)] == [b"o2"]
    assert session.next_target_seq == 4
    # Heartbeats and TestRequests pass the dictionary too.
    assert types(peer.send(b"1", (112, b"T1"))) == [b"0"]


def test_too_many_messages_behind_a_gap_end_the_session() -> None:
    session, peer = logged_on(max_queued=2)
    peer.next_seq = 10
    peer.send(b"D", (11, b"a"))
    peer.send(b"D", (11, b"b"))
    actions = peer.send(b"D", (11, b"c"))
    assert types(actions) == [b"5"]
    assert of(actions, Disconnect) == [Disconnect("Too many messages queued behind a sequence gap")]


def test_initiator_follows_an_acceptor_that_resets_on_its_own() -> None:
    session, peer = initiator()
    session.store.set_next_sender_seq(30)
    session.store.set_next_target_seq(40)
    session.connected(T0)  # our Logon goes out as 30
    actions = peer.logon(2, (141, b"Y"), seq=1)
    assert of(actions, LoggedOn) == [LoggedOn(reset=True)]
    assert (session.next_sender_seq, session.next_target_seq) == (2, 2)


def test_initiator_logon_answer_with_a_gap_asks_for_resend() -> None:
    session, peer = initiator()
    session.connected(T0)
    peer.next_seq = 4
    actions = peer.logon(2)
    rr = field_map(sends(actions)[0])
    assert (rr[35], rr[7], rr[16]) == (b"2", b"1", b"0")
    assert session.resend_outstanding


# --- the whole (state x event) table -------------------------------------------------------------


def _in_state(state: SessionState) -> tuple[Session, Counterparty]:
    if state is SessionState.LOGON_SENT:
        session, peer = initiator()
        session.connected(T0)
        return session, peer
    if state is SessionState.DISCONNECTED:
        return acceptor()
    if state is SessionState.AWAIT_LOGON:
        session, peer = acceptor()
        session.connected(T0)
        return session, peer
    session, peer = logged_on()
    if state is SessionState.LOGOUT_SENT:
        session.logout(T0)
    return session, peer


_FIRE = {
    SessionEvent.CONNECTED: lambda s, p: s.connected(p.now_ns),
    SessionEvent.RECV_LOGON: lambda s, p: p.logon(30, (554, PASSWORD.encode())),
    SessionEvent.RECV_LOGOUT: lambda s, p: p.send(b"5"),
    SessionEvent.RECV_ADMIN: lambda s, p: p.send(b"0"),
    SessionEvent.RECV_APP: lambda s, p: p.send(b"D", (11, b"x")),
    SessionEvent.TIMER: lambda s, p: p.advance(1),
    SessionEvent.SEND_APP: lambda s, p: s.send_app(b"8", [(37, b"E")], p.now_ns),
    SessionEvent.LOGOUT_REQUEST: lambda s, p: s.logout(p.now_ns),
    SessionEvent.TEST_REQUEST: lambda s, p: s.test_request(p.now_ns),
    SessionEvent.CONNECTION_LOST: lambda s, p: s.connection_lost(p.now_ns),
}


@pytest.mark.parametrize("state", list(SessionState), ids=lambda s: s.name)
@pytest.mark.parametrize("event", list(SessionEvent), ids=lambda e: e.name)
def test_every_state_event_pair_follows_the_table(state: SessionState, event: SessionEvent) -> None:
    from fixserver.session import TRANSITIONS

    session, peer = _in_state(state)
    assert session.state is state
    entry = TRANSITIONS.get((state, event))
    if entry is None:
        with pytest.raises(SessionStateError) as err:
            _FIRE[event](session, peer)
        assert (err.value.state, err.value.event) == (state, event)
        assert session.state is state  # a refused event changes nothing
    else:
        _FIRE[event](session, peer)
        assert session.state in entry[1]


def test_market_data_fast_path_is_byte_for_byte_the_action_path() -> None:
    from fixserver.codec import encode_with_prepared, prepare_body
    from fixserver.session import SharedBody

    fast, peer = logged_on()
    slow, _ = logged_on()
    body = prepare_body(b"X", [(268, b"1"), (279, b"1"), (269, b"0"), (270, b"-37.63"), (271, b"1000")])
    for n in range(3):
        shared = SharedBody(((262, b"md-%d" % n),), body)
        now = peer.now_ns + n * 1_000_123
        data = fast.encode_shared(shared, now)
        (send,) = of(slow.send_shared(shared, now), Send)
        assert data == encode_with_prepared(send.header + shared.prefix, shared.prepared, send.begin_string)
    assert fast.next_sender_seq == slow.next_sender_seq
    assert fast.next_deadline_ns == slow.next_deadline_ns  # the heartbeat clock moved alike
    # Not its case: the caller takes the action path (which checks and refuses what it must).
    assert fast.encode_shared(SharedBody(((262, b""),), body), peer.now_ns) is None
    assert fast.encode_shared(SharedBody(((262, b"a\x01b"),), body), peer.now_ns) is None
    assert fast.encode_shared(SharedBody(((55, b"x"),), body), peer.now_ns) is None
    idle, _ = acceptor()
    assert idle.encode_shared(SharedBody(((262, b"x"),), body), peer.now_ns) is None  # not logged on


def test_market_data_of_one_publish_is_the_bytes_of_each_message_sent_alone() -> None:
    from fixserver.codec import prepare_body

    batched, peer = logged_on()
    single, _ = logged_on()
    bodies = [
        (b"md-%d" % n, prepare_body(b"X", [(268, b"1"), (279, b"1"), (269, b"%d" % (n % 2)), (270, b"-0.%d" % n)]))
        for n in range(3)
    ]
    data = batched.encode_market_data(bodies, peer.now_ns)
    alone = [single.encode_market_data([b], peer.now_ns) for b in bodies]
    assert data is not None and data == b"".join(a for a in alone if a is not None)
    assert batched.next_sender_seq == single.next_sender_seq
    # One bad MDReqID and nothing is sequenced: the caller takes the action path for all.
    before = batched.next_sender_seq
    assert batched.encode_market_data([bodies[0], (b"a\x01b", bodies[1][1])], peer.now_ns) is None
    assert batched.next_sender_seq == before


def test_an_application_message_with_an_empty_value_is_refused_before_it_takes_a_number() -> None:
    session, peer = logged_on()
    before = session.store.next_sender_seq
    with pytest.raises(SessionUsageError, match="tag 54 without a value"):
        session.send_app(b"8", [(37, b"O1"), (54, b"")], peer.now_ns)
    assert session.store.next_sender_seq == before  # no number taken: no gap the peer could never fill
