"""FIX 4.4 session-level test cases (FIX Protocol Ltd, "FIX Session-level Test Cases and Expected
Behaviors") for our acceptor, as conversation scripts. Each test names its case; the cases that
test_session.py already covers are not repeated here."""

from __future__ import annotations

from fixserver.message import FixMessage
from fixserver.session import Deliver, Disconnect, SessionState
from fixserver.session_script import field_map, sends
from tests.unit.test_session import logged_on, of, types


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
