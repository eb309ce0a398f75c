"""Transport pieces that need no socket: backoff, the clock, config wiring."""

from __future__ import annotations

import asyncio
import random

import pytest

from engine.config import parse_config
from fixserver.clock import ManualClock, SystemClock
from fixserver.message import FixMessage
from fixserver.session import Role
from fixserver.store import MemoryStoreFactory
from fixserver.transport import Acceptor, Application, Initiator, _FixProtocol, backoff_delay


def test_backoff_grows_exponentially_and_stays_bounded() -> None:
    rng = random.Random(7)
    no_jitter = [backoff_delay(a, 0.5, 30.0, 0.0, rng) for a in range(10)]
    assert no_jitter == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0, 30.0]
    for attempt in range(200):
        d = backoff_delay(attempt, 0.5, 30.0, 0.25, rng)
        base = min(30.0, 0.5 * 2**attempt)
        assert base * 0.75 <= d <= min(30.0, base * 1.25)


def test_jitter_spreads_reconnects() -> None:
    rng = random.Random(1)
    delays = {round(backoff_delay(3, 0.5, 30.0, 0.2, rng), 6) for _ in range(20)}
    assert len(delays) > 10  # not in lockstep


def test_clocks() -> None:
    clock = ManualClock(100)
    assert clock.advance(5) == 105 and clock.now_ns() == 105
    with pytest.raises(ValueError):
        clock.advance(-1)
    assert SystemClock().now_ns() > 1_600_000_000 * 10**9


def test_acceptor_from_config_has_a_session_per_client(example_config_text: str) -> None:
    config = parse_config(example_config_text)
    created = []

    class App(Application):
        def on_create(self, session) -> None:
            created.append(session.session_id)

    acceptor = Acceptor.from_config(config, App(), store_factory=MemoryStoreFactory(), clock=ManualClock())
    assert [s.target_comp_id for s in created] == ["DEMO", "RETAIL1", "FUNDA"]
    handle = acceptor.handle("DEMO")
    assert handle.session_id.sender_comp_id == "LAGG"
    assert handle.session.config.heartbeat_s == config.server.heartbeat_s
    assert handle.max_send_buffer_bytes == config.server.max_send_buffer_bytes
    assert handle.buffered_bytes == 0 and not handle.connected


def test_initiator_from_lp_config_takes_the_password_from_the_environment(example_config_text: str) -> None:
    config = parse_config(example_config_text)
    lp = config.lps[0]
    initiator = Initiator.from_lp_config(lp, Application(), MemoryStoreFactory(),
                                         environ={"LAGG_LP1_PASSWORD": "lp1-secret"}, clock=ManualClock())
    cfg = initiator.handle.session.config
    assert cfg.role is Role.INITIATOR and cfg.credentials is not None
    assert cfg.credentials.password == "lp1-secret"
    assert "lp1-secret" not in repr(cfg)
    assert (initiator.host, initiator.port) == (lp.host, lp.port)


def test_a_report_sent_while_the_client_is_away_is_committed_at_once(tmp_path) -> None:
    from fixserver.session import Session, SessionConfig, SessionID
    from fixserver.store import SqliteStoreFactory
    from fixserver.transport import SessionHandle

    path = tmp_path / "store.sqlite"
    sid = SessionID("FIX.4.4", "LAGG", "DEMO")
    store = SqliteStoreFactory(path).create(sid.key, 0)
    handle = SessionHandle(Session(SessionConfig(sid, Role.ACCEPTOR), store), Application(), ManualClock())
    handle.send(b"8", [(37, b"E1"), (150, b"F")])  # no connection: kept for the next ResendRequest
    crashed_view = SqliteStoreFactory(path).create(sid.key, 0)  # what a restarted process sees
    assert crashed_view.next_sender_seq == 2
    assert [(m.seq_num, m.msg_type) for m in crashed_view.get_range(1, 10)] == [(1, b"8")]



class _RecordingHandle:
    def __init__(self, events: list, transport: _FakeTransport) -> None:
        self.events = events
        self.transport = transport
        self.fail = False

    def receive_batch(self, messages) -> None:
        self.events.append(("session", [m.get(34) for m in messages]))
        if self.fail:
            raise RuntimeError("session bug")
        if any(m.get(34) == b"0" for m in messages):
            self.transport.close()  # MsgSeqNum too low: the session ends the connection

    def connection_lost(self, reason: str) -> None:
        self.events.append(("lost",))


class _FakeTransport:
    def __init__(self) -> None:
        self.closing = False
        self.aborted = False

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def abort(self) -> None:
        self.closing = self.aborted = True


def _protocol(events: list, defer: bool) -> _FixProtocol:
    loop = asyncio.get_running_loop()

    class Decoder:  # like the LP feed's: decoding queues the gateway's loop turn
        def feed(self, data: bytes) -> list[FixMessage]:
            loop.call_soon(events.append, ("turn", data))
            # b"2" is market data (35=X, MsgSeqNum 2); b"8:3" an ExecutionReport, MsgSeqNum 3.
            kind, _, seq = data.rpartition(b":")
            return [FixMessage([(35, kind or b"X"), (34, seq)])]

    protocol = _FixProtocol(1 << 20)
    protocol.decoder = Decoder()  # type: ignore[assignment]
    transport = _FakeTransport()
    protocol.transport = transport  # type: ignore[assignment]
    protocol.handle = _RecordingHandle(events, transport)  # type: ignore[assignment]
    protocol.defer_session_reads = defer
    return protocol


async def test_without_deferral_the_session_reads_each_message_at_once() -> None:
    events: list = []
    _protocol(events, defer=False).data_received(b"1")
    assert events == [("session", [b"1"])]
    await asyncio.sleep(0)
    assert events == [("session", [b"1"]), ("turn", b"1")]


async def test_deferred_session_reads_come_after_the_turn_in_order_and_before_the_connection_ends() -> None:
    events: list = []
    protocol = _protocol(events, defer=True)
    protocol.data_received(b"1")
    assert events == []
    await asyncio.sleep(0)
    assert events == [("turn", b"1"), ("session", [b"1"])]  # the turn first: the LP feeds' point
    events.clear()
    # A second read before the queued callback ran: the first read's messages reach the session
    # before the second is decoded (the LP decoder takes its expected MsgSeqNum from the session).
    protocol.data_received(b"2")
    protocol.data_received(b"3")
    assert events == [("session", [b"2"])]
    protocol.connection_lost(None)  # what arrived before the end is read before the end
    assert events == [("session", [b"2"]), ("session", [b"3"]), ("lost",)]
    await asyncio.sleep(0)
    assert events == [("session", [b"2"]), ("session", [b"3"]), ("lost",), ("turn", b"2"), ("turn", b"3")]


async def test_a_read_that_is_not_only_market_data_is_not_deferred() -> None:
    # An LP's ExecutionReport (or reject, or Logout) is seen before the turn: an order route's
    # deadline is checked in that turn.
    events: list = []
    protocol = _protocol(events, defer=True)
    protocol.data_received(b"2")
    protocol.data_received(b"8:3")
    assert events == [("session", [b"2"]), ("session", [b"3"])]


async def test_a_read_after_the_session_closed_the_connection_is_not_decoded() -> None:
    events: list = []
    protocol = _protocol(events, defer=True)
    protocol.data_received(b"X:0")  # deferred; the session will end the connection over it
    decoded: list = []
    protocol.decoder.feed = lambda data: decoded.append(data) or []  # type: ignore[method-assign]
    protocol.data_received(b"X:4")  # the session reads X:0 first, and closes
    assert events == [("session", [b"0"])] and decoded == []


async def test_a_session_that_fails_on_a_deferred_read_loses_its_connection() -> None:
    events: list = []
    protocol = _protocol(events, defer=True)
    protocol.handle.fail = True  # type: ignore[union-attr]
    protocol.data_received(b"2")
    await asyncio.sleep(0)
    assert ("session", [b"2"]) in events and protocol.transport.aborted  # type: ignore[union-attr]


class _WireTransport:
    """A connected transport that keeps what is written."""

    def __init__(self) -> None:
        self.written: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def is_closing(self) -> bool:
        return False

    def get_write_buffer_size(self) -> int:
        return 0

    def get_extra_info(self, name: str, default=None):  # noqa: ANN001, ANN201
        return default

    def set_write_buffer_limits(self, high=None, low=None) -> None:  # noqa: ANN001
        pass


async def test_msgseqnums_rise_on_the_wire_when_a_gap_fill_releases_an_order_and_a_test_request() -> None:
    import hashlib
    import re

    from fixserver.session import Session, SessionConfig, SessionID
    from fixserver.session_auth import ConfigAuthenticator
    from fixserver.session_script import Counterparty
    from fixserver.store import MemoryStore
    from fixserver.transport import SessionHandle

    class Client:
        sender_comp_id, password_env = "DEMO", None
        password_sha256 = hashlib.sha256(b"pw").hexdigest()

    class Desk(Application):
        def from_app(self, message, session) -> None:  # noqa: ANN001
            session.send(b"8", [(37, b"O1"), (11, message.get(11)), (150, b"0"), (39, b"0")])

    t0 = 1_700_000_000_000_000_000
    config = SessionConfig(SessionID("FIX.4.4", "LAGG", "DEMO"), Role.ACCEPTOR)
    session = Session(config, MemoryStore(t0), authenticator=ConfigAuthenticator([Client()]))  # type: ignore[list-item]
    handle = SessionHandle(session, Desk(), ManualClock(t0))
    transport = _WireTransport()
    handle.attach(transport)  # type: ignore[arg-type]
    peer = Counterparty(session, t0)
    handle.receive_batch([peer.message(b"A", (98, b"0"), (108, b"30"), (554, b"pw"))])
    # 2 is lost; an order (3) and a TestRequest (4) wait for it; a gap fill (2 -> 3) releases both.
    handle.receive_batch([peer.message(b"D", (11, b"c1"), seq=3), peer.message(b"1", (112, b"t1"), seq=4)])
    del transport.written[:]
    handle.receive_batch([peer.message(b"4", (123, b"Y"), (36, b"3"), seq=2)])
    wire = b"".join(transport.written)
    sent = [(int(seq), kind) for kind, seq in re.findall(rb"\x0135=(\w+)\x01.*?\x0134=(\d+)\x01", wire)]
    assert sorted(kind for _, kind in sent) == [b"0", b"8"]  # the report and the Heartbeat
    assert [seq for seq, _ in sent] == sorted(seq for seq, _ in sent)
