"""FIX 4.4 session-level test cases (FIX Protocol Ltd, "FIX Session-level Test Cases and Expected
Behaviors") for our acceptor, as conversation scripts. Each test names its case; the cases that
test_session.py already covers are not repeated here."""

from __future__ import annotations

import pytest

from fixserver.codec import encode
from fixserver.dictionary import validate, validate_session_level
from fixserver.message import FixMessage
from fixserver.session import Deliver, Disconnect, SessionState, format_utc_timestamp
from fixserver.session_script import field_map, sends
from tests.unit.test_session import NS, T0, logged_on, of, types


def _with_begin_string(msg: FixMessage, begin: bytes) -> FixMessage:
    return FixMessage([(8, begin) if tag == 8 else (tag, value) for tag, value in msg.fields])


# --- 2h: BeginString --------------------------------------------------------------------------------


def test_2h_begin_string_other_than_the_sessions_gets_logout_and_disconnect() -> None:
    session, peer = logged_on()
    msg = _with_begin_string(peer.message(b"D", (11, b"o1")), b"FIX.4.2")
    actions = peer.deliver(msg)
    assert types(actions) == [b"5"]  # a Logout, no Reject (the spec's 2h)
    assert b"BeginString" in field_map(sends(actions)[0])[58]
    assert not of(actions, Deliver)  # the order is not acted on
    assert of(actions, Disconnect) and session.state is SessionState.DISCONNECTED
    assert session.next_target_seq == 2  # not consumed


# --- 2k: SendingTime accuracy, also on a resend ------------------------------------------------------


def test_2k_a_possdup_resend_with_a_stale_sending_time_gets_reject_and_logout() -> None:
    # A resend carries the time it was sent again in 52 and the original time in 122, so 52 is
    # as fresh as any other message's: a stale one is a clock (or replay) problem all the same.
    session, peer = logged_on()
    actions = peer.send(
        b"D", (11, b"o1"), poss_dup=True,
        sending_time=format_utc_timestamp(T0 - 600 * NS), orig_sending_time=format_utc_timestamp(T0 - 700 * NS),
    )  # fmt: skip
    assert types(actions) == [b"3", b"5"]
    f = field_map(sends(actions)[0])
    assert (f[45], f[371], f[373]) == (b"2", b"52", b"10")
    assert not of(actions, Deliver)
    assert session.state is SessionState.LOGOUT_SENT


def test_2e_a_possdup_resend_with_a_fresh_sending_time_and_an_old_orig_is_accepted() -> None:
    session, peer = logged_on()
    actions = peer.send(b"D", (11, b"o1"), poss_dup=True, orig_sending_time=format_utc_timestamp(T0 - 3600 * NS))
    assert [d.message.get(11) for d in of(actions, Deliver)] == [b"o1"] and sends(actions) == []


# --- 14b / 14d: TestRequest without its TestReqID, with no dictionary validator (the gateway's case) ---


@pytest.mark.parametrize(("body", "reason"), [((), b"1"), (((112, b""),), b"4")])
def test_14b_14d_a_test_request_without_test_req_id_gets_a_reject_not_an_empty_heartbeat(body, reason) -> None:
    session, peer = logged_on()  # no validator
    actions = peer.send(b"1", *body)
    (reject,) = sends(actions)
    f = field_map(reject)
    assert (f[35], f[45], f[371], f[372], f[373]) == (b"3", b"2", b"112", b"1", reason)
    for send in sends(actions):  # what the session asks for can be put on the wire
        encode(send.msg_type, send.header, send.body)  # type: ignore[arg-type]
    assert session.next_target_seq == 3 and session.state is SessionState.ACTIVE


# --- 10 / 11: SequenceReset fields, in either mode, with or without a dictionary validator -----------


@pytest.mark.parametrize("validator", [None, validate])
@pytest.mark.parametrize(
    ("body", "tag", "reason"),
    [
        (((123, b"X"), (36, b"10")), b"123", b"6"),  # GapFillFlag is a Boolean (as the dictionary says)
        (((123, b"N"),), b"36", b"1"),  # Reset without NewSeqNo
        (((36, b"ten"),), b"36", b"6"),  # NewSeqNo not a number
    ],
)
def test_11_a_sequence_reset_with_a_bad_field_is_rejected_for_that_field(validator, body, tag, reason) -> None:
    session, peer = logged_on(validator=validator)
    actions = peer.send(b"4", *body)
    (reject,) = sends(actions)
    f = field_map(reject)
    assert (f[35], f[45], f[371], f[372], f[373]) == (b"3", b"2", tag, b"4", reason)
    assert session.next_target_seq == 2  # not moved: a SequenceReset that is refused resets nothing


@pytest.mark.parametrize(("body", "reason"), [((), b"1"), (((36, b"ten"),), b"6")])
def test_10_a_gap_fill_without_a_usable_new_seq_no_is_rejected_for_that_field(body, reason) -> None:
    session, peer = logged_on()
    (reject,) = sends(peer.send(b"4", (123, b"Y"), *body))
    f = field_map(reject)
    assert (f[35], f[371], f[373]) == (b"3", b"36", reason)


def test_11_the_dictionary_checks_a_sequence_reset_in_reset_mode_too() -> None:
    session, peer = logged_on(validator=validate)
    (reject,) = sends(peer.send(b"4", (36, b"10"), (55, b"EUR/USD")))
    f = field_map(reject)
    assert (f[371], f[373]) == (b"55", b"2")  # tag not defined for SequenceReset
    assert session.next_target_seq == 2


# --- 14g: header fields after body fields ---------------------------------------------------------


def _reorder(msg: FixMessage, tag: int, after: int) -> FixMessage:
    """``msg`` with field ``tag`` moved to just after field ``after``."""
    moved = [f for f in msg.fields if f[0] == tag]
    fields = [f for f in msg.fields if f[0] != tag]
    at = next(i for i, f in enumerate(fields) if f[0] == after) + 1
    return FixMessage(fields[:at] + moved + fields[at:])


@pytest.mark.parametrize(("msg_type", "body", "tag"), [(b"1", ((112, b"PING"),), 52), (b"D", ((11, b"o1"),), 34)])
def test_14g_a_header_field_after_a_body_field_gets_reject_373_14(msg_type, body, tag) -> None:
    session, peer = logged_on(validator=validate)
    msg = _reorder(peer.message(msg_type, *body), tag, after=body[0][0])
    actions = peer.deliver(msg)
    (reject,) = sends(actions)
    f = field_map(reject)
    assert (f[35], f[45], f[371], f[372], f[373]) == (b"3", b"2", str(tag).encode(), msg_type, b"14")
    assert not of(actions, Deliver) and session.next_target_seq == 3


# --- what the gateway's acceptor validates at session level -----------------------------------------


def test_session_level_validation_leaves_application_messages_of_real_fix_types_to_the_application() -> None:
    session, peer = logged_on(validator=validate_session_level)
    # SettlType (63) is FIX 4.4 but not in our subset's NewOrderSingle, ManualOrderIndicator (1028)
    # is FIX 5.0 that FIX 4.4 dialects carry: the order desk judges the order.
    order = peer.send(b"D", (11, b"o1"), (63, b"0"), (1028, b"Y"))
    assert [d.message.get(11) for d in of(order, Deliver)] == [b"o1"] and sends(order) == []
    assert of(peer.send(b"R", (131, b"q1")), Deliver)  # QuoteRequest: the gateway answers 35=j itself
    f = field_map(sends(peer.send(b"ZZ"))[0])
    assert (f[35], f[371], f[372], f[373]) == (b"3", b"35", b"ZZ", b"11")
    f = field_map(sends(peer.send(b"0", (55, b"EUR/USD")))[0])
    assert (f[35], f[371], f[373]) == (b"3", b"55", b"2")


@pytest.mark.parametrize(
    ("extra", "tag", "reason"),
    [
        ((0, b"junk"), None, b"0"),  # a field that was not tag=value
        ((44, b""), b"44", b"4"),  # tag without a value (14d)
        ((52, b"20231114-22:13:20.000"), b"52", b"13"),  # SendingTime again, after the body (14h)
    ],
)
def test_14_session_level_validation_checks_the_form_of_application_messages_too(extra, tag, reason) -> None:
    session, peer = logged_on(validator=validate_session_level)
    msg = peer.message(b"D", (11, b"o1"))
    msg = FixMessage([*msg.fields[:-1], extra, msg.fields[-1]])
    actions = peer.deliver(msg)
    assert not of(actions, Deliver)
    f = field_map(sends(actions)[0])
    assert (f[35], f[45], f.get(371), f[372], f[373]) == (b"3", b"2", tag, b"D", reason)
    assert session.next_target_seq == 3


def test_14g_session_level_validation_refuses_a_header_field_after_the_body_of_an_order() -> None:
    session, peer = logged_on(validator=validate_session_level)
    msg = _reorder(peer.message(b"D", (11, b"o1"), (55, b"EUR/USD")), 34, after=55)
    f = field_map(sends(peer.deliver(msg))[0])
    assert (f[35], f[371], f[373]) == (b"3", b"34", b"14")


# --- 14b / 14f on SendingTime: a field problem, not an accuracy problem ------------------------------


@pytest.mark.parametrize("validator", [None, validate])
@pytest.mark.parametrize(("stamp", "reason"), [(None, b"1"), (b"2023-11-14 22:13:20", b"6")])
def test_14b_14f_a_missing_or_malformed_sending_time_gets_a_reject_and_the_session_goes_on(
    validator, stamp, reason
) -> None:
    session, peer = logged_on(validator=validator)
    if stamp is None:
        msg = peer.message(b"D", (11, b"o1"), omit=frozenset({52}))
    else:
        msg = peer.message(b"D", (11, b"o1"), sending_time=stamp)
    actions = peer.deliver(msg)
    (reject,) = sends(actions)  # no Logout: only a wrong time (2k) ends the session
    f = field_map(reject)
    assert (f[35], f[45], f[371], f[372], f[373]) == (b"3", b"2", b"52", b"D", reason)
    assert not of(actions, Deliver)
    assert session.next_target_seq == 3 and session.state is SessionState.ACTIVE


def test_14b_a_message_without_sending_time_queued_behind_a_gap_is_rejected_when_its_turn_comes() -> None:
    session, peer = logged_on()
    peer.next_seq = 3  # 2 is lost
    held = peer.deliver(peer.message(b"D", (11, b"o3"), omit=frozenset({52})))
    assert types(held) == [b"2"] and session.queued_count == 1
    orig = format_utc_timestamp(T0)
    actions = peer.send(b"D", (11, b"o2"), seq=2, poss_dup=True, orig_sending_time=orig)
    assert [d.message.get(11) for d in of(actions, Deliver)] == [b"o2"]
    (reject,) = sends(actions)
    f = field_map(reject)
    assert (f[45], f[371], f[373]) == (b"3", b"52", b"1")
    assert session.next_target_seq == 4 and session.state is SessionState.ACTIVE


# --- sequence reset during a session: Logon with ResetSeqNumFlag (141=Y) while logged on ------------


def test_a_logon_with_141_y_during_the_session_resets_both_sequences_and_the_session_goes_on() -> None:
    session, peer = logged_on()
    peer.send(b"D", (11, b"o1"))
    session.send_app(b"8", [(37, b"O1")], peer.now_ns)  # our MsgSeqNum 2, kept for resending
    peer.next_seq = 1
    actions = peer.logon(30, (141, b"Y"))
    (answer,) = sends(actions)
    f = field_map(answer)
    assert (answer.msg_type, f[34], f[141], f[108]) == (b"A", b"1", b"Y", b"30")
    assert session.state is SessionState.ACTIVE and session.next_target_seq == 2
    actions = peer.send(b"D", (11, b"o2"))  # 34=2 in the new sequence: in order
    assert [d.message.get(11) for d in of(actions, Deliver)] == [b"o2"]
    actions = peer.send(b"2", (7, b"1"), (16, b"0"))  # the old report is gone with its number
    assert [m.msg_type for m in sends(actions)] == [b"4"]  # a gap fill over our Logon, nothing resent


@pytest.mark.parametrize(
    ("seq", "extra", "why"),
    [
        (5, (), "ResetSeqNumFlag(141)=Y requires MsgSeqNum(34)=1"),
        (1, ((141, b"N"),), "Unexpected Logon on a logged-on session"),
    ],
)
def test_any_other_logon_during_the_session_is_a_logout(seq, extra, why) -> None:
    session, peer = logged_on()
    actions = peer.send(b"A", (98, b"0"), (108, b"30"), *(extra or ((141, b"Y"),)), seq=seq)
    assert types(actions) == [b"5"] and field_map(sends(actions)[0])[58] == why.encode()
    assert session.state is SessionState.DISCONNECTED
