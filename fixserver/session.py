"""The FIX 4.4 session layer as a sans-I/O state machine (h11/h2 style).

A :class:`Session` takes decoded inbound messages (:class:`~fixserver.message.FixMessage`),
application requests and timer ticks, each with ``now_ns``, and returns a list of *actions*:

* :class:`Send` -- an outbound message with its complete header (49, 56, 34, 52[, 43, 122]);
  the transport encodes it (``codec.encode(send.msg_type, send.header, send.body)``), commits
  the store, then writes the bytes;
* :class:`Deliver` -- an application message for the application (QuickFIX/J's ``fromApp``);
* :class:`AdminReceived` -- an admin message, for observers (``fromAdmin``);
* :class:`LoggedOn` / :class:`LoggedOut` -- session events (``onLogon`` / ``onLogout``);
* :class:`Disconnect` -- close the connection now, with a reason for the log.

After every call the transport reads :attr:`Session.next_deadline_ns` and arms one timer for it;
when it fires it calls :meth:`Session.on_timer`. Nothing in here reads a clock, touches a socket
or starts a thread; persistence is an injected :class:`~fixserver.store.MessageStore`.

States are :class:`SessionState`; the allowed (state, event) pairs are the :data:`TRANSITIONS`
table, each naming its handler and the states it may lead to. An event the table does not allow
(for example receiving a message while disconnected) raises :class:`SessionStateError` naming the
state and the event. A *counterparty's* protocol violation never raises: it becomes a Reject,
a Logout or a Disconnect, as the FIX session rules say.

The application never touches sequence numbers: it calls :meth:`Session.send_app`,
:meth:`Session.business_reject` and :meth:`Session.logout`.

Secrets: a Logon's Password (554) is read only to pass it to the authenticator; it never appears
in an action's repr, an exception or a Disconnect reason, and a failed Logon gets the same neutral
Logout whether the CompID is unknown or the password is wrong (see :func:`neutral_logon_reject`).
"""

from __future__ import annotations

import calendar
import enum
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import time as dt_time
from typing import NamedTuple, Protocol

from fixserver.codec import PreparedBody, encode_prepared
from fixserver.message import SECRET_TAGS, SOH, FixMessage
from fixserver.store import MessageStore, StoredMessage

__all__ = [
    "ADMIN_MSG_TYPES",
    "Action",
    "AdminReceived",
    "business_reject_body",
    "Authenticator",
    "Credentials",
    "DailySchedule",
    "Deliver",
    "Disconnect",
    "LoggedOn",
    "LoggedOut",
    "RejectLike",
    "Role",
    "Send",
    "Session",
    "SessionConfig",
    "SessionError",
    "SessionEvent",
    "SessionID",
    "SessionState",
    "SessionStateError",
    "SessionUsageError",
    "SharedBody",
    "TRANSITIONS",
    "format_utc_timestamp",
    "neutral_logon_reject",
    "parse_utc_timestamp",
]

FieldValue = bytes | int | str
Fields = Sequence[tuple[int, FieldValue]]

ADMIN_MSG_TYPES = frozenset({b"0", b"1", b"2", b"3", b"4", b"5", b"A"})
NEUTRAL_LOGON_REJECT_TEXT = "Logon rejected"

# SessionRejectReason (373) values used here.
REJECT_REQUIRED_TAG_MISSING = 1
REJECT_TAG_WITHOUT_VALUE = 4
REJECT_VALUE_INCORRECT = 5
REJECT_INCORRECT_DATA_FORMAT = 6
REJECT_COMPID_PROBLEM = 9
REJECT_SENDING_TIME_ACCURACY = 10

_NS = 1_000_000_000
_UTC_TIMESTAMP = re.compile(rb"(\d{4})(\d{2})(\d{2})-(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?")
_DAY_NS = 86_400 * _NS


# --- time stamps --------------------------------------------------------------------------------

_ts_cache: tuple[int, bytes] = (-1 << 62, b"")
_ms_cache: tuple[int, bytes] = (-1 << 62, b"")  # the last millisecond formatted


def format_utc_timestamp(now_ns: int) -> bytes:
    """``now_ns`` as a FIX UTCTimestamp with milliseconds: ``YYYYMMDD-HH:MM:SS.sss``."""
    global _ts_cache, _ms_cache
    ms = now_ns // 1_000_000
    if _ms_cache[0] == ms:  # a publish stamps every session within the same millisecond
        return _ms_cache[1]
    seconds, rest = divmod(ms, 1000)
    if _ts_cache[0] != seconds:  # one strftime per second, not per message
        _ts_cache = (seconds, time.strftime("%Y%m%d-%H:%M:%S", time.gmtime(seconds)).encode())
    stamp = b"%s.%03d" % (_ts_cache[1], rest)
    _ms_cache = (ms, stamp)
    return stamp


def business_reject_body(
    ref: FixMessage, reason: bytes, text: bytes, ref_id: bytes | None = None
) -> list[tuple[int, bytes]]:
    """The body of a BusinessMessageReject (35=j) of ``ref``, in FIX 4.4's order: 45 RefSeqNum,
    372 RefMsgType, 379 BusinessRejectRefID (``ref_id``, if any), 380 BusinessRejectReason, 58."""
    body = [(45, ref.get(34) or b"0"), (372, ref.msg_type)]
    if ref_id:
        body.append((379, ref_id))
    return [*body, (380, reason), (58, text)]


def parse_utc_timestamp(value: bytes | None) -> int | None:
    """Parse ``YYYYMMDD-HH:MM:SS[.fraction]`` (1 to 9 digits) to ns since the epoch; ``None`` if
    malformed: anything else around it, or a field out of its range (month 13, 25:00; a leap
    second 60 is allowed, as FIX allows it)."""
    match = _UTC_TIMESTAMP.fullmatch(value) if value is not None else None
    if match is None:
        return None
    year, month, day, hour, minute, second, frac = match.groups()
    month_n, day_n = int(month), int(day)
    if not (1 <= month_n <= 12 and 1 <= day_n <= calendar.monthrange(int(year), month_n)[1]):
        return None
    if int(hour) > 23 or int(minute) > 59 or int(second) > 60:
        return None
    seconds = calendar.timegm((int(year), month_n, day_n, int(hour), int(minute), int(second), 0, 0, 0))
    return seconds * _NS + (int((frac + b"00000000")[:9]) if frac else 0)


# --- identities, configuration ------------------------------------------------------------------


class SessionID(NamedTuple):
    """A session as QuickFIX/J names it, from *our* side: we are the sender."""

    begin_string: str
    sender_comp_id: str
    target_comp_id: str

    @property
    def key(self) -> str:
        """Store key, e.g. ``FIX.4.4:LAGG->DEMO``."""
        return f"{self.begin_string}:{self.sender_comp_id}->{self.target_comp_id}"


class Role(enum.Enum):
    ACCEPTOR = "acceptor"
    INITIATOR = "initiator"


class Credentials:
    """Username (553) and password (554) an initiator sends; the password never shows in reprs."""

    __slots__ = ("username", "_password")

    def __init__(self, username: str | None, password: str | None) -> None:
        self.username = username
        self._password = password

    @property
    def password(self) -> str | None:
        return self._password

    def __repr__(self) -> str:
        return f"Credentials(username={self.username!r}, password={'***' if self._password else None})"


@dataclass(frozen=True, slots=True)
class DailySchedule:
    """A daily session window in UTC. ``start == end`` means a 24-hour session that rolls over
    at ``start``; ``end < start`` crosses midnight. At each period's start the store is reset
    (sequence numbers back to 1, stored messages dropped); at its end a logged-on session logs out."""

    start: dt_time
    end: dt_time

    def _offsets(self) -> tuple[int, int]:
        def ns(t: dt_time) -> int:
            return ((t.hour * 60 + t.minute) * 60 + t.second) * _NS + t.microsecond * 1000

        return ns(self.start), ns(self.end)

    def period(self, now_ns: int) -> tuple[int, int] | None:
        """``(start_ns, end_ns)`` of the session period containing ``now_ns``, or ``None``."""
        s, e = self._offsets()
        tod = now_ns % _DAY_NS
        day0 = now_ns - tod
        if s == e:
            start = day0 + s if tod >= s else day0 + s - _DAY_NS
            return start, start + _DAY_NS
        if s < e:
            return (day0 + s, day0 + e) if s <= tod < e else None
        if tod >= s:
            return day0 + s, day0 + _DAY_NS + e
        if tod < e:
            return day0 - _DAY_NS + s, day0 + e
        return None

    def in_session(self, now_ns: int) -> bool:
        """Whether ``now_ns`` falls inside a session period."""
        return self.period(now_ns) is not None


class Authenticator(Protocol):
    """Decides a Logon: ``(their CompID, Username 553, Password 554) -> accepted``."""

    def __call__(self, comp_id: str, username: bytes | None, password: bytes | None) -> bool: ...


class RejectLike(Protocol):
    """What a dictionary validator returns for a bad message (fixserver.dictionary.Reject)."""

    # Read-only members, so frozen dataclasses qualify. An optional ``business`` attribute set
    # to True asks for a BusinessMessageReject (35=j, 380=reason) instead of a Reject (35=3).
    @property
    def ref_tag_id(self) -> int | None: ...

    @property
    def reason(self) -> int: ...

    @property
    def text(self) -> str: ...


Validator = Callable[[FixMessage], "RejectLike | None"]


@dataclass(frozen=True, slots=True)
class SessionConfig:
    """Static settings of one session."""

    session_id: SessionID
    role: Role
    heartbeat_s: int = 30  # initiator: the HeartBtInt it proposes; acceptor: the counterparty's wins
    reset_on_logon: bool = False  # initiator: send 141=Y on every Logon
    credentials: Credentials | None = None  # initiator: 553/554 to send
    logon_timeout_s: int = 10
    logout_timeout_s: int = 2
    max_sending_time_skew_s: int | None = 120  # None disables the SendingTime accuracy check
    schedule: DailySchedule | None = None  # None: always in session, never resets on its own
    # Not kept for resends: stale prices are worse than a gap fill.
    non_resendable_msg_types: frozenset[bytes] = frozenset({b"W", b"X"})
    max_queued: int = 10_000  # messages held back behind a sequence gap before we give up
    # Acceptor: a Logon proposing a longer HeartBtInt is refused. The client's interval is ours
    # too: past it we test, then drop, a silent connection; with 108=10^12 a half-open connection
    # would hold the session (and lock its client out) for ever.
    max_heartbeat_s: int = 300


# --- actions ------------------------------------------------------------------------------------


def _masked(fields: Sequence[tuple[int, FieldValue]]) -> str:
    return "|".join(f"{t}={'***' if t in SECRET_TAGS else _text(v)}" for t, v in fields)


def _text(value: FieldValue) -> str:
    return value.decode("ascii", "replace") if isinstance(value, bytes) else str(value)


@dataclass(frozen=True, slots=True)
class SharedBody:
    """A body encoded once and shared by many sessions (market-data fan-out).

    ``prefix`` holds the few per-session body fields (e.g. 262 MDReqID) written before the
    shared part; the transport encodes it with :func:`fixserver.codec.encode_with_prepared`, so
    only the header and prefix are encoded and summed per session. Never stored for resend.
    """

    prefix: tuple[tuple[int, bytes], ...]
    prepared: PreparedBody


@dataclass(frozen=True, slots=True)
class Send:
    """Write this message. ``header`` holds every header field after 35; the codec adds 8/9/10."""

    msg_type: bytes
    header: tuple[tuple[int, bytes], ...]
    body: tuple[tuple[int, FieldValue], ...] | SharedBody
    seq_num: int
    poss_dup: bool = False
    sequenced: bool = True  # False only for the stateless neutral logon reject (34=1)
    begin_string: bytes = b"FIX.4.4"

    def __repr__(self) -> str:
        body = self.body
        shown = f"<shared {len(body.prepared.body)} bytes>" if isinstance(body, SharedBody) else _masked(body)
        return f"Send(35={_text(self.msg_type)}|{_masked(self.header)}|{shown})"


@dataclass(frozen=True, slots=True)
class Deliver:
    """An in-order application message for the application."""

    message: FixMessage


@dataclass(frozen=True, slots=True)
class AdminReceived:
    """An in-order admin message (Heartbeat, TestRequest, Logon, ...), for observers."""

    message: FixMessage


@dataclass(frozen=True, slots=True)
class LoggedOn:
    """The Logon handshake completed; ``reset`` tells whether sequence numbers restarted at 1."""

    reset: bool


@dataclass(frozen=True, slots=True)
class LoggedOut:
    """A logged-on session ended (Logout handshake, timeout or lost connection)."""

    reason: str


@dataclass(frozen=True, slots=True)
class Disconnect:
    """Close the connection now."""

    reason: str


Action = Send | Deliver | AdminReceived | LoggedOn | LoggedOut | Disconnect


# --- states, events, the transition table -------------------------------------------------------


class SessionState(enum.Enum):
    DISCONNECTED = "disconnected"
    AWAIT_LOGON = "await_logon"  # acceptor: connected, the counterparty's Logon not yet in
    LOGON_SENT = "logon_sent"  # initiator: our Logon sent, the answer not yet in
    ACTIVE = "active"  # logged on
    LOGOUT_SENT = "logout_sent"  # our Logout sent, waiting for theirs (or the timeout)


class SessionEvent(enum.Enum):
    CONNECTED = "connected"
    RECV_LOGON = "recv_logon"
    RECV_LOGOUT = "recv_logout"
    RECV_ADMIN = "recv_admin"  # 0, 1, 2, 3, 4
    RECV_APP = "recv_app"
    TIMER = "timer"
    SEND_APP = "send_app"
    LOGOUT_REQUEST = "logout_request"  # our application wants to log out
    TEST_REQUEST = "test_request"  # our application wants proof the peer is alive
    CONNECTION_LOST = "connection_lost"


class SessionError(Exception):
    """Base of the session layer's typed errors."""


class SessionStateError(SessionError):
    """An event that the transition table does not allow in the current state."""

    def __init__(self, state: SessionState, event: SessionEvent) -> None:
        self.state = state
        self.event = event
        super().__init__(f"event {event.name} is not allowed in state {state.name}")


class SessionUsageError(SessionError):
    """The application asked for something the session cannot do (e.g. send an admin type)."""


S = SessionState
E = SessionEvent
_ANY_OPEN = frozenset({S.AWAIT_LOGON, S.LOGON_SENT, S.ACTIVE, S.LOGOUT_SENT})

#: (state, event) -> (handler method, states the handler may leave the session in).
TRANSITIONS: dict[tuple[SessionState, SessionEvent], tuple[str, frozenset[SessionState]]] = {
    (S.DISCONNECTED, E.CONNECTED): ("_on_connected", frozenset({S.AWAIT_LOGON, S.LOGON_SENT})),
    (S.DISCONNECTED, E.TIMER): ("_on_timer_disconnected", frozenset({S.DISCONNECTED})),
    (S.DISCONNECTED, E.SEND_APP): ("_on_send_offline", frozenset({S.DISCONNECTED})),
    (S.DISCONNECTED, E.CONNECTION_LOST): ("_on_nothing", frozenset({S.DISCONNECTED})),
    (S.DISCONNECTED, E.LOGOUT_REQUEST): ("_on_nothing", frozenset({S.DISCONNECTED})),
    (S.AWAIT_LOGON, E.RECV_LOGON): ("_on_logon_as_acceptor", frozenset({S.ACTIVE, S.DISCONNECTED})),
    (S.AWAIT_LOGON, E.RECV_LOGOUT): ("_on_first_not_logon", frozenset({S.DISCONNECTED})),
    (S.AWAIT_LOGON, E.RECV_ADMIN): ("_on_first_not_logon", frozenset({S.DISCONNECTED})),
    (S.AWAIT_LOGON, E.RECV_APP): ("_on_first_not_logon", frozenset({S.DISCONNECTED})),
    (S.AWAIT_LOGON, E.TIMER): ("_on_timer_logon", frozenset({S.AWAIT_LOGON, S.DISCONNECTED})),
    (S.AWAIT_LOGON, E.SEND_APP): ("_on_send_offline", frozenset({S.AWAIT_LOGON})),
    (S.AWAIT_LOGON, E.LOGOUT_REQUEST): ("_on_drop", frozenset({S.DISCONNECTED})),
    (S.AWAIT_LOGON, E.CONNECTION_LOST): ("_on_connection_lost", frozenset({S.DISCONNECTED})),
    (S.LOGON_SENT, E.RECV_LOGON): ("_on_logon_as_initiator", frozenset({S.ACTIVE, S.DISCONNECTED})),
    (S.LOGON_SENT, E.RECV_LOGOUT): ("_on_logon_refused", frozenset({S.DISCONNECTED})),
    (S.LOGON_SENT, E.RECV_ADMIN): ("_on_first_not_logon", frozenset({S.DISCONNECTED})),
    (S.LOGON_SENT, E.RECV_APP): ("_on_first_not_logon", frozenset({S.DISCONNECTED})),
    (S.LOGON_SENT, E.TIMER): ("_on_timer_logon", frozenset({S.LOGON_SENT, S.DISCONNECTED})),
    (S.LOGON_SENT, E.SEND_APP): ("_on_send_offline", frozenset({S.LOGON_SENT})),
    (S.LOGON_SENT, E.LOGOUT_REQUEST): ("_on_drop", frozenset({S.DISCONNECTED})),
    (S.LOGON_SENT, E.CONNECTION_LOST): ("_on_connection_lost", frozenset({S.DISCONNECTED})),
    (S.ACTIVE, E.RECV_LOGON): ("_on_unexpected_logon", frozenset({S.ACTIVE, S.DISCONNECTED})),
    (S.ACTIVE, E.RECV_LOGOUT): ("_on_logout", frozenset({S.DISCONNECTED})),
    (S.ACTIVE, E.RECV_ADMIN): ("_on_message", frozenset({S.ACTIVE, S.LOGOUT_SENT, S.DISCONNECTED})),
    (S.ACTIVE, E.RECV_APP): ("_on_message", frozenset({S.ACTIVE, S.LOGOUT_SENT, S.DISCONNECTED})),
    (S.ACTIVE, E.TIMER): ("_on_timer_active", frozenset({S.ACTIVE, S.LOGOUT_SENT, S.DISCONNECTED})),
    (S.ACTIVE, E.SEND_APP): ("_on_send_app", frozenset({S.ACTIVE})),
    (S.ACTIVE, E.LOGOUT_REQUEST): ("_on_logout_request", frozenset({S.LOGOUT_SENT})),
    (S.ACTIVE, E.TEST_REQUEST): ("_on_test_request", frozenset({S.ACTIVE})),
    (S.ACTIVE, E.CONNECTION_LOST): ("_on_connection_lost", frozenset({S.DISCONNECTED})),
    (S.LOGOUT_SENT, E.RECV_LOGON): ("_on_unexpected_logon", frozenset({S.DISCONNECTED})),
    (S.LOGOUT_SENT, E.RECV_LOGOUT): ("_on_logout", frozenset({S.DISCONNECTED})),
    (S.LOGOUT_SENT, E.RECV_ADMIN): ("_on_message", frozenset({S.LOGOUT_SENT, S.DISCONNECTED})),
    (S.LOGOUT_SENT, E.RECV_APP): ("_on_message", frozenset({S.LOGOUT_SENT, S.DISCONNECTED})),
    (S.LOGOUT_SENT, E.TIMER): ("_on_timer_logout", frozenset({S.LOGOUT_SENT, S.DISCONNECTED})),
    # After our Logout no new application message goes out; resendable ones are kept for later.
    (S.LOGOUT_SENT, E.SEND_APP): ("_on_send_offline", frozenset({S.LOGOUT_SENT})),
    (S.LOGOUT_SENT, E.LOGOUT_REQUEST): ("_on_nothing", frozenset({S.LOGOUT_SENT})),
    (S.LOGOUT_SENT, E.CONNECTION_LOST): ("_on_connection_lost", frozenset({S.DISCONNECTED})),
}
del S, E


def neutral_logon_reject(
    begin_string: bytes, our_comp_id: bytes, their_comp_id: bytes, now_ns: int
) -> Send:
    """The Logout for a Logon we refuse before trusting the peer (unknown CompID, bad password).

    It is stateless (34=1, nothing stored, no sequence number consumed) and word-for-word the
    same in every case, so a prober learns neither whether a CompID exists nor its sequence."""
    header = ((49, our_comp_id), (56, their_comp_id), (34, b"1"), (52, format_utc_timestamp(now_ns)))
    return Send(
        b"5", header, ((58, NEUTRAL_LOGON_REJECT_TEXT.encode()),), 1, sequenced=False,
        begin_string=begin_string,
    )


def _as_bytes(value: FieldValue) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, int):
        return b"%d" % value
    return value.encode("ascii")


def _event_for(msg_type: bytes) -> SessionEvent:
    if msg_type == b"A":
        return SessionEvent.RECV_LOGON
    if msg_type == b"5":
        return SessionEvent.RECV_LOGOUT
    if msg_type in ADMIN_MSG_TYPES:
        return SessionEvent.RECV_ADMIN
    return SessionEvent.RECV_APP


# --- the session --------------------------------------------------------------------------------


@dataclass(slots=True)
class _Queued:
    message: FixMessage
    answered: bool  # a ResendRequest we already answered on arrival
    time_problem: int = 0  # its SendingTime's 373 reason (see Session._check_header), 0 if none


@dataclass(slots=True)
class _Transient:
    """Per-connection state; replaced on every connect."""

    heartbeat_ns: int = 0
    last_recv_ns: int = 0
    last_sent_ns: int = 0
    test_request_sent_ns: int | None = None
    test_request_id: bytes | None = None
    logon_deadline_ns: int | None = None
    logout_deadline_ns: int | None = None
    reset_requested: bool = False  # initiator sent 141=Y
    resend_to: int | None = None  # our ResendRequest is outstanding until expected > this
    period_end_ns: int | None = None  # the daily schedule's end of the current period
    queue: dict[int, _Queued] = field(default_factory=dict)


class Session:
    """One FIX session's state machine. Every public method returns the actions to carry out."""

    def __init__(
        self,
        config: SessionConfig,
        store: MessageStore,
        *,
        authenticator: Authenticator | None = None,
        validator: Validator | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self._auth = authenticator
        self._validator = validator
        sid = config.session_id
        self._begin = sid.begin_string.encode()
        self._sender = sid.sender_comp_id.encode()
        self._target = sid.target_comp_id.encode()
        # The per-message part of a market-data message: this session's header, then 262.
        self._md_header = b"49=%s\x0156=%s\x0134=%%d\x0152=%%s\x01262=%%s\x01" % (
            self._sender.replace(b"%", b"%%"), self._target.replace(b"%", b"%%"),
        )  # fmt: skip
        self._state = SessionState.DISCONNECTED
        self._t = _Transient()
        self._test_request_counter = 0
        self.duplicates_ignored = 0  # PossDup resends of messages we already had

    # -- read-only views --

    @property
    def session_id(self) -> SessionID:
        return self.config.session_id

    @property
    def state(self) -> SessionState:
        return self._state

    @property
    def is_logged_on(self) -> bool:
        """True once the Logon handshake completed and until the session ends."""
        return self._state in (SessionState.ACTIVE, SessionState.LOGOUT_SENT)

    @property
    def heartbeat_s(self) -> int:
        """The HeartBtInt in force on this connection (0 when not logged on)."""
        return self._t.heartbeat_ns // _NS

    @property
    def next_sender_seq(self) -> int:
        return self.store.next_sender_seq

    @property
    def next_target_seq(self) -> int:
        return self.store.next_target_seq

    @property
    def resend_outstanding(self) -> bool:
        """True while a ResendRequest of ours waits to be filled."""
        return self._t.resend_to is not None

    @property
    def queued_count(self) -> int:
        """Messages held back behind a sequence gap."""
        return len(self._t.queue)

    @property
    def next_deadline_ns(self) -> int | None:
        """When the transport must call :meth:`on_timer` next (``None``: no timer needed)."""
        t = self._t
        state = self._state
        if state in (SessionState.AWAIT_LOGON, SessionState.LOGON_SENT):
            return t.logon_deadline_ns
        if state is SessionState.LOGOUT_SENT:
            return t.logout_deadline_ns
        if state is SessionState.ACTIVE:
            grace = t.heartbeat_ns + t.heartbeat_ns // 5  # HeartBtInt + 20%
            deadline = t.last_sent_ns + t.heartbeat_ns
            if t.test_request_sent_ns is None:
                deadline = min(deadline, t.last_recv_ns + grace)
            else:
                deadline = min(deadline, t.test_request_sent_ns + grace)
            if t.period_end_ns is not None:
                deadline = min(deadline, t.period_end_ns)
            return deadline
        return None

    def __repr__(self) -> str:
        return (
            f"Session({self.config.session_id.key}, {self._state.name}, "
            f"out={self.store.next_sender_seq}, in={self.store.next_target_seq})"
        )

    # -- inputs --

    def connected(self, now_ns: int) -> list[Action]:
        """The transport has a connection (acceptor: accepted; initiator: connected)."""
        return self._fire(SessionEvent.CONNECTED, now_ns)

    def receive(self, message: FixMessage, now_ns: int) -> list[Action]:
        """A decoded inbound message."""
        return self._fire(_event_for(message.msg_type), now_ns, message)

    def on_timer(self, now_ns: int) -> list[Action]:
        """Time passed; call at (or after) :attr:`next_deadline_ns`. Early calls are harmless."""
        return self._fire(SessionEvent.TIMER, now_ns)

    def connection_lost(self, now_ns: int, reason: str = "connection lost") -> list[Action]:
        """The transport's connection closed (either side)."""
        return self._fire(SessionEvent.CONNECTION_LOST, now_ns, reason)

    def logout(self, now_ns: int, text: str = "") -> list[Action]:
        """Start the Logout handshake (our side initiates)."""
        return self._fire(SessionEvent.LOGOUT_REQUEST, now_ns, text)

    def test_request(self, now_ns: int, test_req_id: bytes | None = None) -> list[Action]:
        """Send a TestRequest (35=1) now; unanswered by any traffic within HeartBtInt + 20% it
        ends the connection, as a silence-triggered one does."""
        return self._fire(SessionEvent.TEST_REQUEST, now_ns, test_req_id)

    def send_app(
        self, msg_type: bytes, body: Fields, now_ns: int, *, resendable: bool | None = None
    ) -> list[Action]:
        """Send an application message. ``resendable`` overrides the default (every type except
        :attr:`SessionConfig.non_resendable_msg_types` is stored and resent on request).

        While not logged on, a resendable message is stored under the next sequence number so
        the counterparty recovers it with a ResendRequest after its next Logon; a non-resendable
        one raises :class:`SessionStateError`."""
        if msg_type in ADMIN_MSG_TYPES:
            raise SessionUsageError(f"35={msg_type.decode()} is an admin message; the session sends those")
        for tag, value in body:
            if value == b"" or value == "":
                # Refused before it takes a MsgSeqNum: the codec could not write it, and a number
                # taken by a message that never goes out is a gap the peer can never fill.
                raise SessionUsageError(f"35={msg_type.decode()}: tag {tag} without a value (FIX forbids it)")
        if resendable is None:
            resendable = msg_type not in self.config.non_resendable_msg_types
        return self._fire(SessionEvent.SEND_APP, now_ns, msg_type, body, resendable)

    def send_shared(self, body: SharedBody, now_ns: int) -> list[Action]:
        """Send a shared, non-resendable application body (market data) on this session."""
        return self._fire(SessionEvent.SEND_APP, now_ns, body.prepared.msg_type, body, False)

    def encode_shared(self, body: SharedBody, now_ns: int) -> bytes | None:
        """Market data's fast path while ACTIVE: the bytes :meth:`send_shared` plus the codec would
        produce (same sequence number, header and store update, never stored for resend), without
        the dispatch table and the action list (a few µs per session and message, which the
        fan-out pays 20 times per tick). ``None``: not this case, use :meth:`send_shared`."""
        if len(body.prefix) != 1 or body.prefix[0][0] != 262:
            return None
        return self.encode_market_data(((body.prefix[0][1], body.prepared),), now_ns)

    def encode_market_data(self, bodies: Sequence[tuple[bytes, PreparedBody]], now_ns: int) -> bytes | None:
        """:meth:`encode_shared` for several ``(MDReqID, body)`` at once, as one run of bytes: the
        fan-out's path per session and publish. ``None`` (nothing sequenced): not ACTIVE, or an
        MDReqID that is empty or holds SOH; use :meth:`send_shared`."""
        if self._state is not SessionState.ACTIVE:
            return None
        for md_req_id, _ in bodies:
            if not md_req_id or SOH in md_req_id:
                return None
        store = self.store
        seq = store.next_sender_seq
        store.set_next_sender_seq(seq + len(bodies))
        self._t.last_sent_ns = now_ns
        stamp = format_utc_timestamp(now_ns)
        header, begin = self._md_header, self._begin
        if len(bodies) == 1:
            md_req_id, prepared = bodies[0]
            return encode_prepared(header % (seq, stamp, md_req_id), prepared, begin)
        return b"".join(
            [encode_prepared(header % (seq + n, stamp, md_req_id), prepared, begin)
             for n, (md_req_id, prepared) in enumerate(bodies)]
        )  # fmt: skip

    def business_reject(
        self, ref: FixMessage, reason: int, text: str, now_ns: int, *, ref_id: bytes | None = None
    ) -> list[Action]:
        """BusinessMessageReject (35=j) of an application message the application cannot handle
        (:func:`business_reject_body`)."""
        return self.send_app(b"j", business_reject_body(ref, b"%d" % reason, text.encode(), ref_id), now_ns)

    # -- dispatch --

    def _fire(self, event: SessionEvent, now_ns: int, *args: object) -> list[Action]:
        entry = TRANSITIONS.get((self._state, event))
        if entry is None:
            raise SessionStateError(self._state, event)
        handler, allowed = entry
        out: list[Action] = []
        getattr(self, handler)(out, now_ns, *args)
        if self._state not in allowed:  # a bug in this module, not in the counterparty
            raise AssertionError(f"{handler} left {self._state.name}, table allows {sorted(s.name for s in allowed)}")
        return out

    # -- sending --

    def _header(self, seq: int, now_ns: int) -> tuple[tuple[int, bytes], ...]:
        return ((49, self._sender), (56, self._target), (34, b"%d" % seq), (52, format_utc_timestamp(now_ns)))

    def _send(
        self, out: list[Action], msg_type: bytes, body: Fields, now_ns: int, *, store: bool = False
    ) -> int:
        seq = self.store.next_sender_seq
        header = self._header(seq, now_ns)
        if store:
            stored_body = tuple((tag, _as_bytes(v)) for tag, v in body)
            self.store.save(StoredMessage(seq, msg_type, header[3][1], stored_body))
        self.store.set_next_sender_seq(seq + 1)
        self._t.last_sent_ns = now_ns
        shared = body if isinstance(body, SharedBody) else tuple(body)
        out.append(Send(msg_type, header, shared, seq, begin_string=self._begin))
        return seq

    def _send_reject(
        self, out: list[Action], ref: FixMessage, reason: int, text: str, now_ns: int,
        ref_tag: int | None = None,
    ) -> None:
        body: list[tuple[int, FieldValue]] = [(45, ref.get(34) or b"0")]
        if ref_tag is not None:
            body.append((371, ref_tag))
        body += [(372, ref.msg_type), (373, reason), (58, text)]
        self._send(out, b"3", body, now_ns)

    def _send_logout(self, out: list[Action], now_ns: int, text: str) -> None:
        self._send(out, b"5", ((58, text),) if text else (), now_ns)

    def _logout_and_disconnect(self, out: list[Action], now_ns: int, text: str) -> None:
        self._send_logout(out, now_ns, text)
        self._disconnect(out, text)

    def _begin_logout(self, out: list[Action], now_ns: int, text: str) -> None:
        if self._state is SessionState.LOGOUT_SENT:
            return
        self._send_logout(out, now_ns, text)
        self._t.logout_deadline_ns = now_ns + self.config.logout_timeout_s * _NS
        self._state = SessionState.LOGOUT_SENT

    def _disconnect(self, out: list[Action], reason: str) -> None:
        was_logged_on = self.is_logged_on
        self._state = SessionState.DISCONNECTED
        self._t = _Transient()
        out.append(Disconnect(reason))
        if was_logged_on:
            out.append(LoggedOut(reason))

    def _resend(self, out: list[Action], begin: int, end: int, now_ns: int) -> None:
        """Answer a ResendRequest: stored messages again (43=Y, 122), gaps as SequenceReset-GapFill."""
        last = self.store.next_sender_seq - 1
        if end == 0 or end > last:
            end = last
        if begin > end:
            return
        stamp = format_utc_timestamp(now_ns)
        cursor = begin
        for stored in self.store.get_range(begin, end):
            if stored.seq_num > cursor:
                self._gap_fill(out, cursor, stored.seq_num, stamp)
            header = (
                (49, self._sender), (56, self._target), (34, b"%d" % stored.seq_num),
                (43, b"Y"), (52, stamp), (122, stored.sending_time),
            )
            out.append(Send(stored.msg_type, header, stored.body, stored.seq_num, poss_dup=True,
                            begin_string=self._begin))
            cursor = stored.seq_num + 1
        if cursor <= end:
            self._gap_fill(out, cursor, end + 1, stamp)
        self._t.last_sent_ns = now_ns

    def _gap_fill(self, out: list[Action], seq: int, new_seq: int, stamp: bytes) -> None:
        header = ((49, self._sender), (56, self._target), (34, b"%d" % seq), (43, b"Y"), (52, stamp), (122, stamp))
        out.append(Send(b"4", header, ((123, b"Y"), (36, b"%d" % new_seq)), seq, poss_dup=True,
                        begin_string=self._begin))

    # -- schedule --

    def _roll_period(self, now_ns: int) -> None:
        """At a new session period's start: sequence numbers back to 1, stored messages dropped."""
        schedule = self.config.schedule
        if schedule is None:
            return
        period = schedule.period(now_ns)
        if period is not None and self.store.creation_time_ns < period[0]:
            self.store.reset(now_ns)

    # -- handlers (named in TRANSITIONS) --

    def _on_nothing(self, out: list[Action], now_ns: int, *args: object) -> None:
        return

    def _on_connected(self, out: list[Action], now_ns: int) -> None:
        self._roll_period(now_ns)
        self._t = _Transient(last_recv_ns=now_ns, last_sent_ns=now_ns,
                             logon_deadline_ns=now_ns + self.config.logon_timeout_s * _NS)
        if self.config.role is Role.ACCEPTOR:
            self._state = SessionState.AWAIT_LOGON
            return
        if self.config.reset_on_logon:
            self.store.reset(now_ns)
            self._t.reset_requested = True
        body: list[tuple[int, FieldValue]] = [(98, b"0"), (108, self.config.heartbeat_s)]
        if self.config.reset_on_logon:
            body.append((141, b"Y"))
        creds = self.config.credentials
        if creds is not None:
            if creds.username is not None:
                body.append((553, creds.username))
            if creds.password is not None:
                body.append((554, creds.password))
        self._send(out, b"A", body, now_ns)
        self._state = SessionState.LOGON_SENT

    def _on_timer_disconnected(self, out: list[Action], now_ns: int) -> None:
        self._roll_period(now_ns)

    def _on_send_offline(
        self, out: list[Action], now_ns: int, msg_type: bytes, body: Fields, resendable: bool
    ) -> None:
        if not resendable:
            raise SessionStateError(self._state, SessionEvent.SEND_APP)
        # Consume a sequence number and keep the message: the counterparty's next Logon shows
        # a gap, its ResendRequest brings this message (43=Y) -- nothing is lost while away.
        seq = self.store.next_sender_seq
        stored_body = tuple((tag, _as_bytes(v)) for tag, v in body)
        self.store.save(StoredMessage(seq, msg_type, format_utc_timestamp(now_ns), stored_body))
        self.store.set_next_sender_seq(seq + 1)

    def _on_send_app(
        self, out: list[Action], now_ns: int, msg_type: bytes, body: Fields, resendable: bool
    ) -> None:
        self._send(out, msg_type, body, now_ns, store=resendable)

    def _on_drop(self, out: list[Action], now_ns: int, text: str = "") -> None:
        self._disconnect(out, text or "closed before logon")

    def _on_connection_lost(self, out: list[Action], now_ns: int, reason: str) -> None:
        was_logged_on = self.is_logged_on
        self._state = SessionState.DISCONNECTED
        self._t = _Transient()
        if was_logged_on:
            out.append(LoggedOut(reason))

    def _on_first_not_logon(self, out: list[Action], now_ns: int, msg: FixMessage) -> None:
        # FIX: the first message must be a Logon; anything else is dropped with the connection.
        self._disconnect(out, f"first message was 35={msg.msg_type.decode('ascii', 'replace')}, not Logon")

    def _on_logon_refused(self, out: list[Action], now_ns: int, msg: FixMessage) -> None:
        self._disconnect(out, "logon refused: " + (msg.get_str(58) or "no reason given"))

    def _on_unexpected_logon(self, out: list[Action], now_ns: int, msg: FixMessage) -> None:
        if self._state is SessionState.ACTIVE and msg.get(141) == b"Y":
            self._reset_in_session(out, now_ns, msg)
            return
        self._logout_and_disconnect(out, now_ns, "Unexpected Logon on a logged-on session")

    def _reset_in_session(self, out: list[Action], now_ns: int, msg: FixMessage) -> None:
        """A sequence reset during the session (FIX 4.4): the peer's Logon with ResetSeqNumFlag
        (141=Y) and MsgSeqNum 1. Both sides start again at 1: we answer with our Logon (141=Y,
        34=1) and expect 2 next. What either side kept for resending is dropped (the numbers it
        had are gone), and so is a gap we were waiting to have filled. The connection was
        authenticated at its first Logon; this one is not a new logon for the application."""
        hb = self._peer_logon_fields(out, now_ns, msg)
        if hb is None:
            return
        if msg.seq_num != 1:
            self._logout_and_disconnect(out, now_ns, "ResetSeqNumFlag(141)=Y requires MsgSeqNum(34)=1")
            return
        if self.config.role is Role.ACCEPTOR:
            if not self._heartbeat_allowed(out, now_ns, hb):
                return
            self._t.heartbeat_ns = hb * _NS
        self.store.reset(now_ns)
        t = self._t
        t.queue.clear()
        t.resend_to = None
        t.test_request_sent_ns = t.test_request_id = None
        t.last_recv_ns = now_ns
        self._send(out, b"A", ((98, b"0"), (108, t.heartbeat_ns // _NS), (141, b"Y")), now_ns)
        self.store.set_next_target_seq(2)
        out.append(AdminReceived(msg))

    def _peer_logon_fields(self, out: list[Action], now_ns: int, msg: FixMessage) -> int | None:
        """:meth:`_check_logon_fields` of a Logon from the peer we already know (our initiator's
        acceptor, or a logged-on peer resetting): its CompIDs must be the session's."""
        if msg.get(49) != self._target or msg.get(56) != self._sender:
            self._logout_and_disconnect(out, now_ns, "CompID problem on Logon")
            return None
        return self._check_logon_fields(out, now_ns, msg)

    def _heartbeat_allowed(self, out: list[Action], now_ns: int, hb: int) -> bool:
        """An acceptor takes the peer's HeartBtInt up to its limit; past it, a Logout."""
        if hb > self.config.max_heartbeat_s:
            self._logout_and_disconnect(
                out, now_ns, f"HeartBtInt(108) must be at most {self.config.max_heartbeat_s} seconds, got {hb}"
            )
            return False
        return True

    def _check_logon_fields(self, out: list[Action], now_ns: int, msg: FixMessage) -> int | None:
        """EncryptMethod, HeartBtInt and MsgSeqNum of a Logon; returns HeartBtInt or None (handled)."""
        if msg.get(98) != b"0":
            self._logout_and_disconnect(out, now_ns, "EncryptMethod(98) must be 0")
            return None
        hb = msg.get_int(108)
        if hb is None or hb <= 0:
            self._logout_and_disconnect(out, now_ns, "HeartBtInt(108) must be a positive integer")
            return None
        if msg.seq_num is None:
            self._logout_and_disconnect(out, now_ns, "MsgSeqNum(34) missing")
            return None
        skew = self.config.max_sending_time_skew_s
        if skew is not None:
            sent = parse_utc_timestamp(msg.get(52))
            if sent is None or abs(now_ns - sent) > skew * _NS:
                self._logout_and_disconnect(out, now_ns, "SendingTime accuracy problem")
                return None
        return hb

    def _on_logon_as_acceptor(self, out: list[Action], now_ns: int, msg: FixMessage) -> None:
        # Authenticate before anything else answers, so nothing is revealed to a stranger.
        if msg.get(49) != self._target or msg.get(56) != self._sender or msg.get(8, self._begin) != self._begin:
            self._neutral_reject(out, now_ns)
            return
        if self._auth is not None and not self._auth(
            self.config.session_id.target_comp_id, msg.get(553), msg.get(554)
        ):
            self._neutral_reject(out, now_ns)
            return
        self._roll_period(now_ns)
        schedule = self.config.schedule
        if schedule is not None and not schedule.in_session(now_ns):
            self._logout_and_disconnect(out, now_ns, "Logon outside the session's hours")
            return
        hb = self._check_logon_fields(out, now_ns, msg)
        if hb is None or not self._heartbeat_allowed(out, now_ns, hb):
            return
        seq = msg.seq_num
        assert seq is not None
        reset = msg.get(141) == b"Y"
        if reset:
            if seq != 1:
                self._logout_and_disconnect(out, now_ns, "ResetSeqNumFlag(141)=Y requires MsgSeqNum(34)=1")
                return
            self.store.reset(now_ns)
        expected = self.store.next_target_seq
        if seq < expected:
            self._logout_and_disconnect(
                out, now_ns, f"MsgSeqNum too low, expecting {expected} but received {seq}"
            )
            return
        self._t.heartbeat_ns = hb * _NS
        body: list[tuple[int, FieldValue]] = [(98, b"0"), (108, hb)]
        if reset:
            body.append((141, b"Y"))
        self._send(out, b"A", body, now_ns)
        self._logged_on(out, now_ns, msg, seq, expected, reset)

    def _on_logon_as_initiator(self, out: list[Action], now_ns: int, msg: FixMessage) -> None:
        hb = self._peer_logon_fields(out, now_ns, msg)
        if hb is None:
            return
        seq = msg.seq_num
        assert seq is not None
        reset = msg.get(141) == b"Y"
        if reset and not self._t.reset_requested:
            # The acceptor reset on its own: our Logon counts as 1 in the new sequence.
            self.store.reset(now_ns)
            self.store.set_next_sender_seq(2)
        expected = self.store.next_target_seq
        if seq < expected:
            self._logout_and_disconnect(
                out, now_ns, f"MsgSeqNum too low, expecting {expected} but received {seq}"
            )
            return
        self._t.heartbeat_ns = self.config.heartbeat_s * _NS
        self._logged_on(out, now_ns, msg, seq, expected, reset or self._t.reset_requested)

    def _logged_on(
        self, out: list[Action], now_ns: int, msg: FixMessage, seq: int, expected: int, reset: bool
    ) -> None:
        self._state = SessionState.ACTIVE
        self._t.last_recv_ns = now_ns
        self._t.logon_deadline_ns = None
        schedule = self.config.schedule
        period = schedule.period(now_ns) if schedule is not None else None
        self._t.period_end_ns = period[1] if period is not None else None
        out.append(AdminReceived(msg))
        out.append(LoggedOn(reset))
        if seq == expected:
            self.store.set_next_target_seq(seq + 1)
        else:  # messages were missed while away: ask for them, the Logon waits in the queue
            self._gap(out, now_ns, msg, seq, expected, answered=True)

    def _neutral_reject(self, out: list[Action], now_ns: int) -> None:
        out.append(neutral_logon_reject(self._begin, self._sender, self._target, now_ns))
        self._disconnect(out, NEUTRAL_LOGON_REJECT_TEXT)

    def _on_timer_logon(self, out: list[Action], now_ns: int) -> None:
        deadline = self._t.logon_deadline_ns
        if deadline is not None and now_ns >= deadline:
            self._disconnect(out, "logon timeout")

    def _on_timer_logout(self, out: list[Action], now_ns: int) -> None:
        deadline = self._t.logout_deadline_ns
        if deadline is not None and now_ns >= deadline:
            self._disconnect(out, "logout timeout")

    def _on_timer_active(self, out: list[Action], now_ns: int) -> None:
        t = self._t
        schedule = self.config.schedule
        if schedule is not None:
            period = schedule.period(now_ns)
            if period is None or self.store.creation_time_ns < period[0]:
                self._begin_logout(out, now_ns, "End of session")
                return
        grace = t.heartbeat_ns + t.heartbeat_ns // 5
        if t.test_request_sent_ns is not None:
            if now_ns >= t.test_request_sent_ns + grace:
                self._disconnect(out, "TestRequest not answered")
                return
        elif now_ns >= t.last_recv_ns + grace:
            self._send_test_request(out, now_ns, None)
        if now_ns >= t.last_sent_ns + t.heartbeat_ns:
            self._send(out, b"0", (), now_ns)

    def _send_test_request(self, out: list[Action], now_ns: int, test_req_id: bytes | None) -> None:
        t = self._t
        if test_req_id is None:
            self._test_request_counter += 1
            test_req_id = b"TEST-%d" % self._test_request_counter
        t.test_request_id = test_req_id
        self._send(out, b"1", ((112, test_req_id),), now_ns)
        t.test_request_sent_ns = now_ns

    def _on_test_request(self, out: list[Action], now_ns: int, test_req_id: bytes | None) -> None:
        self._send_test_request(out, now_ns, test_req_id)

    def _on_logout_request(self, out: list[Action], now_ns: int, text: str) -> None:
        self._begin_logout(out, now_ns, text)

    def _on_logout(self, out: list[Action], now_ns: int, msg: FixMessage) -> None:
        self._t.last_recv_ns = now_ns
        if msg.seq_num == self.store.next_target_seq:
            self.store.set_next_target_seq(msg.seq_num + 1)
        out.append(AdminReceived(msg))
        text = msg.get_str(58) or ""
        if self._state is SessionState.LOGOUT_SENT:
            self._disconnect(out, "logout complete")
        else:
            self._send_logout(out, now_ns, "")
            self._disconnect(out, "counterparty logged out" + (f": {text}" if text else ""))

    def _on_message(self, out: list[Action], now_ns: int, msg: FixMessage) -> None:
        t = self._t
        t.last_recv_ns = now_ns
        if t.test_request_sent_ns is not None:
            t.test_request_sent_ns = None  # any traffic proves the peer alive
            t.test_request_id = None
        time_problem = self._check_header(out, now_ns, msg)
        if time_problem is None:
            return
        seq = msg.seq_num
        if seq is None:
            self._logout_and_disconnect(out, now_ns, "MsgSeqNum(34) missing")
            return
        msg_type = msg.msg_type
        if msg_type == b"4" and msg.get(123) != b"Y":
            if time_problem:  # refused, and (Reset mode ignores MsgSeqNum) no number consumed
                self._reject_sending_time(out, now_ns, msg, time_problem)
                return
            self._sequence_reset(out, now_ns, msg)  # Reset mode ignores MsgSeqNum
            return
        expected = self.store.next_target_seq
        if seq < expected:
            if msg.get(43) == b"Y":
                self.duplicates_ignored += 1  # a resend of something we already processed
                return
            self._logout_and_disconnect(
                out, now_ns, f"MsgSeqNum too low, expecting {expected} but received {seq}"
            )
            return
        if seq > expected:
            answered = False
            if msg_type == b"2" and not time_problem:  # at once: both sides may be waiting on each other
                self._answer_resend_request(out, now_ns, msg)
                answered = True
            self._gap(out, now_ns, msg, seq, expected, answered, time_problem)
            return
        self._process_in_order(out, now_ns, msg, answered=False, time_problem=time_problem)
        self._drain_queue(out, now_ns)

    def _check_header(self, out: list[Action], now_ns: int, msg: FixMessage) -> int | None:
        """BeginString, CompIDs and SendingTime accuracy (FIX session test cases 2h, 2i, 2k): a
        wrong BeginString is a Logout and disconnect (no Reject: it is not our protocol), the
        others a Reject + Logout; ``None`` then. Otherwise the 373 reason of a SendingTime that
        is missing (1) or malformed (6), or 0: that is a field problem (14b, 14f), refused with a
        Reject when the message's turn comes, and the session goes on."""
        begin = msg.get(8)  # (a decoded frame always has 8; a hand-built one may not)
        if begin is not None and begin != self._begin:
            shown = begin.decode("ascii", "replace")[:16]
            self._logout_and_disconnect(
                out, now_ns, f"Incorrect BeginString(8): expected {self._begin.decode()}, got {shown}"
            )
            return None
        if msg.get(49) != self._target or msg.get(56) != self._sender:
            self._reject_and_logout(out, now_ns, msg, REJECT_COMPID_PROBLEM, "CompID problem", None)
            return None
        stamp = msg.get(52)
        if stamp is None:
            return REJECT_REQUIRED_TAG_MISSING
        skew = self.config.max_sending_time_skew_s
        # Also for a resend (43=Y): its 52 is when it was sent again, the original time is in 122.
        if skew is not None:
            sent = parse_utc_timestamp(stamp)
            if sent is None:
                return REJECT_INCORRECT_DATA_FORMAT
            if abs(now_ns - sent) > skew * _NS:
                self._reject_and_logout(
                    out, now_ns, msg, REJECT_SENDING_TIME_ACCURACY, "SendingTime accuracy problem", 52
                )
                return None
        return 0

    def _reject_sending_time(self, out: list[Action], now_ns: int, msg: FixMessage, reason: int) -> None:
        text = "SendingTime(52) missing" if reason == REJECT_REQUIRED_TAG_MISSING else "SendingTime(52) malformed"
        self._send_reject(out, msg, reason, text, now_ns, 52)

    def _reject_and_logout(
        self, out: list[Action], now_ns: int, msg: FixMessage, reason: int, text: str, tag: int | None
    ) -> None:
        self._send_reject(out, msg, reason, text, now_ns, tag)
        if msg.seq_num == self.store.next_target_seq:
            self.store.set_next_target_seq(msg.seq_num + 1)
        self._begin_logout(out, now_ns, text)

    def _gap(
        self, out: list[Action], now_ns: int, msg: FixMessage, seq: int, expected: int, answered: bool,
        time_problem: int = 0,
    ) -> None:
        t = self._t
        if len(t.queue) >= self.config.max_queued:
            self._logout_and_disconnect(out, now_ns, "Too many messages queued behind a sequence gap")
            return
        t.queue[seq] = _Queued(msg, answered, time_problem)
        if t.resend_to is None or expected > t.resend_to:
            # 16=0: "everything from 7 on", the FIX 4.4 way; later arrivals only extend the wait.
            self._send(out, b"2", ((7, expected), (16, 0)), now_ns)
            t.resend_to = seq - 1
        else:
            t.resend_to = max(t.resend_to, seq - 1)

    def _drain_queue(self, out: list[Action], now_ns: int) -> None:
        t = self._t
        queue = t.queue
        while queue and self.is_logged_on:
            expected = self.store.next_target_seq
            for stale in [s for s in queue if s < expected]:  # gap-filled past them
                del queue[stale]
            item = queue.pop(expected, None)
            if item is None:
                break
            self._process_in_order(out, now_ns, item.message, answered=item.answered, time_problem=item.time_problem)
        if t.resend_to is not None and self.store.next_target_seq > t.resend_to:
            t.resend_to = None

    def _process_in_order(
        self, out: list[Action], now_ns: int, msg: FixMessage, *, answered: bool, time_problem: int = 0
    ) -> None:
        """The message with the expected MsgSeqNum: validate, consume its number, act on it."""
        seq = msg.seq_num
        assert seq is not None
        msg_type = msg.msg_type
        if time_problem:
            self.store.set_next_target_seq(seq + 1)
            self._reject_sending_time(out, now_ns, msg, time_problem)
            return
        if msg.get(43) == b"Y" and msg_type != b"A":
            orig = parse_utc_timestamp(msg.get(122))
            sent = parse_utc_timestamp(msg.get(52))
            if orig is None:
                # A SequenceReset carries no content to date, and engines (QuickFIX) send one
                # without 122; refusing it would leave the gap it fills open for good.
                if msg_type != b"4":
                    self.store.set_next_target_seq(seq + 1)
                    self._send_reject(
                        out, msg, REJECT_REQUIRED_TAG_MISSING, "OrigSendingTime(122) missing", now_ns, 122
                    )
                    return
            elif sent is not None and orig > sent:
                self._reject_and_logout(
                    out, now_ns, msg, REJECT_SENDING_TIME_ACCURACY, "OrigSendingTime after SendingTime", 122
                )
                return
        if self._validator is not None and msg_type != b"A":
            problem = self._validator(msg)
            if problem is not None:
                self.store.set_next_target_seq(seq + 1)
                if getattr(problem, "business", False):
                    # A real FIX 4.4 type we do not serve: an application-level refusal.
                    body = ((45, msg.get(34) or b"0"), (372, msg_type), (380, problem.reason), (58, problem.text))
                    self._send(out, b"j", body, now_ns, store=True)
                else:
                    self._send_reject(out, msg, problem.reason, problem.text, now_ns, problem.ref_tag_id)
                return
        self.store.set_next_target_seq(seq + 1)
        if msg_type not in ADMIN_MSG_TYPES:
            out.append(Deliver(msg))
            return
        if msg_type == b"A":  # a Logon queued behind its own gap: handled on arrival
            return
        if msg_type == b"1" and not msg.get(112):
            # Nothing to echo (a Heartbeat with an empty 112 cannot even be encoded): TestReqID is
            # required, whether or not a dictionary validator runs.
            missing = msg.get(112) is None
            reason = REJECT_REQUIRED_TAG_MISSING if missing else REJECT_TAG_WITHOUT_VALUE
            text = "TestReqID(112) missing" if missing else "TestReqID(112) without a value"
            self._send_reject(out, msg, reason, text, now_ns, 112)
            return
        out.append(AdminReceived(msg))
        if msg_type == b"1":
            self._send(out, b"0", ((112, msg.get(112) or b""),), now_ns)
        elif msg_type == b"2":
            if not answered:
                self._answer_resend_request(out, now_ns, msg)
        elif msg_type == b"4":
            self._gap_fill_received(out, now_ns, msg, seq)
        # 0 Heartbeat, 3 Reject, A (a Logon queued behind its own gap): nothing more to do.

    def _answer_resend_request(self, out: list[Action], now_ns: int, msg: FixMessage) -> None:
        begin, end = msg.get_int(7), msg.get_int(16)
        if begin is None or begin < 1:
            self._send_reject(out, msg, REJECT_VALUE_INCORRECT, "BeginSeqNo(7) missing or invalid", now_ns, 7)
            return
        if end is None or end < 0 or (end != 0 and end < begin):
            self._send_reject(out, msg, REJECT_VALUE_INCORRECT, "EndSeqNo(16) missing or invalid", now_ns, 16)
            return
        self._resend(out, begin, end, now_ns)

    def _gap_fill_received(self, out: list[Action], now_ns: int, msg: FixMessage, seq: int) -> None:
        new_seq = self._new_seq_no(out, now_ns, msg)
        if new_seq is None:
            return
        if new_seq <= seq:
            self._send_reject(out, msg, REJECT_VALUE_INCORRECT, "NewSeqNo(36) must exceed MsgSeqNum", now_ns, 36)
            return
        self.store.set_next_target_seq(new_seq)

    def _new_seq_no(self, out: list[Action], now_ns: int, msg: FixMessage) -> int | None:
        """NewSeqNo (36) of a SequenceReset, or ``None`` after rejecting it for its format."""
        value = msg.get(36)
        if value is not None and value.isdigit():
            return int(value)
        if value is None:
            reason, text = REJECT_REQUIRED_TAG_MISSING, "NewSeqNo(36) missing"
        elif not value:
            reason, text = REJECT_TAG_WITHOUT_VALUE, "NewSeqNo(36) without a value"
        else:
            reason, text = REJECT_INCORRECT_DATA_FORMAT, "NewSeqNo(36) must be a number"
        self._send_reject(out, msg, reason, text, now_ns, 36)
        return None

    def _sequence_reset(self, out: list[Action], now_ns: int, msg: FixMessage) -> None:
        """SequenceReset-Reset: the counterparty jumps our expected number (never backwards).

        Its MsgSeqNum is not checked and a refused one consumes no number (FIX test case 11c)."""
        if self._validator is not None:  # (this mode bypasses _process_in_order, which runs it)
            problem = self._validator(msg)
            if problem is not None:
                self._send_reject(out, msg, problem.reason, problem.text, now_ns, problem.ref_tag_id)
                return
        flag = msg.get(123)
        if flag is not None and flag != b"N":  # not a Boolean: not to be read as a Reset
            self._send_reject(out, msg, REJECT_INCORRECT_DATA_FORMAT, "GapFillFlag(123) must be Y or N", now_ns, 123)
            return
        new_seq = self._new_seq_no(out, now_ns, msg)
        if new_seq is None:
            return
        out.append(AdminReceived(msg))
        expected = self.store.next_target_seq
        if new_seq < expected:
            self._send_reject(
                out, msg, REJECT_VALUE_INCORRECT,
                f"SequenceReset may not lower MsgSeqNum (expected {expected})", now_ns, 36,
            )
            return
        self.store.set_next_target_seq(new_seq)
        self._drain_queue(out, now_ns)
