"""asyncio transport for FIX sessions: an acceptor (many sessions, one port) and an initiator.

Built on asyncio *Protocols* (not streams) so a read is one callback that decodes everything it
got and runs the sans-I/O :class:`~fixserver.session.Session` over it, and so backpressure is the
transport's own ``pause_writing``/``resume_writing``. Run it on uvloop (:func:`run`).

Plugging in an application (QuickFIX/J's split)::

    class MyApp(Application):
        def on_logon(self, session: SessionHandle) -> None: ...
        def from_app(self, message: FixMessage, session: SessionHandle) -> None:
            session.send(b"8", [(37, b"ORD-1"), ...])      # stored, resendable
            if session.buffered_bytes > limit: ...           # conflate market data, or log out

    acceptor = Acceptor.from_config(config, MyApp())
    await acceptor.start()

Every write of a session goes through its send buffer: the encoded messages of one batch (one
socket read, one application call) are joined, the store is committed (the durability rule of
:mod:`fixserver.store`: a message is stored before its bytes leave) and written with one
``transport.write``. The transport's write-buffer limits make a slow reader pause us rather than
block the loop; :attr:`SessionHandle.buffered_bytes` shows the backlog, and past
``max_send_buffer_bytes`` the connection is dropped (a slow client must never hold memory
without bound nor slow the others).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Coroutine, Iterable, Sequence
from typing import Any, TypeVar, cast

from engine.config import Config, LpConfig
from fixserver.clock import Clock, SystemClock
from fixserver.codec import FrameDecoder, FrameTooLarge, PreparedBody, encode, encode_with_prepared
from fixserver.dictionary import validate_session_level
from fixserver.message import FixMessage
from fixserver.message_log import MessageLog
from fixserver.session import (
    NEUTRAL_LOGON_REJECT_TEXT,
    Action,
    AdminReceived,
    Authenticator,
    Credentials,
    Deliver,
    Disconnect,
    Fields,
    LoggedOn,
    LoggedOut,
    Role,
    Send,
    Session,
    SessionConfig,
    SessionID,
    SessionState,
    SharedBody,
    Validator,
    neutral_logon_reject,
)
from fixserver.session_auth import ConfigAuthenticator
from fixserver.store import MessageStoreFactory, SqliteStoreFactory

__all__ = [
    "Acceptor",
    "Application",
    "Initiator",
    "SessionHandle",
    "backoff_delay",
    "run",
]

log = logging.getLogger("lagg.fix")

_NS = 1_000_000_000
DEFAULT_WRITE_HIGH_WATER = 256 * 1024  # pause the application's sends past this many buffered bytes
DEFAULT_MAX_SEND_BUFFER = 4 * 1024 * 1024

T = TypeVar("T")


class Application:
    """QuickFIX/J-style callbacks; override what you need. The application never touches
    sequence numbers: it sends through :class:`SessionHandle`."""

    def on_create(self, session: SessionHandle) -> None:
        """A session exists (before any connection)."""

    def on_logon(self, session: SessionHandle) -> None:
        """The Logon handshake completed."""

    def on_logout(self, session: SessionHandle, reason: str) -> None:
        """A logged-on session ended."""

    def from_admin(self, message: FixMessage, session: SessionHandle) -> None:
        """An in-order admin message arrived (observe only)."""

    def from_app(self, message: FixMessage, session: SessionHandle) -> None:
        """An in-order application message arrived."""

    def on_send_buffer(self, session: SessionHandle, paused: bool) -> None:
        """The socket's write buffer crossed its high (``paused``) or low water mark."""


def _abort_unread(transport: asyncio.Transport, session_id: SessionID) -> None:
    """A closing connection whose peer did not take its last bytes in the grace period."""
    if transport.get_write_buffer_size():
        log.warning("%s: peer did not read its last %d bytes; dropping the connection",
                    session_id.key, transport.get_write_buffer_size())  # fmt: skip
        transport.abort()


class SessionHandle:
    """One session and its current connection, as the application sees it."""

    def __init__(
        self,
        session: Session,
        application: Application,
        clock: Clock,
        *,
        max_send_buffer_bytes: int = DEFAULT_MAX_SEND_BUFFER,
        write_high_water: int = DEFAULT_WRITE_HIGH_WATER,
    ) -> None:
        self.session = session
        self.application = application
        self.clock = clock
        self.max_send_buffer_bytes = max_send_buffer_bytes
        self.write_high_water = write_high_water
        # After our last message (a Logout), the connection closes once its bytes are out; a peer
        # that does not read would hold it open for ever, so it is dropped after this long.
        self.close_grace_s = 2.0
        self.writing_paused = False
        self.messages_sent = 0
        self.logon_count = 0
        self.logon_rejects = 0  # Logons the session refused (bad password, wrong CompIDs)
        self.callback_errors = 0
        self._transport: asyncio.Transport | None = None
        self._pending: list[bytes] = []
        self._batch_depth = 0
        self._flush_scheduled = False  # a deferred flush of shared sends is queued on the loop
        self._timer: asyncio.TimerHandle | None = None
        self._timer_deadline: int | None = None
        self._closed_waiters: list[asyncio.Future[None]] = []
        self._logon_waiters: list[asyncio.Future[None]] = []
        # Every message in and out but market data, as text (fixserver.message_log); None: none.
        self.message_log: MessageLog | None = None

    # -- what the application uses --

    @property
    def session_id(self) -> SessionID:
        return self.session.session_id

    @property
    def is_logged_on(self) -> bool:
        return self.session.is_logged_on

    @property
    def connected(self) -> bool:
        return self._transport is not None

    @property
    def buffered_bytes(self) -> int:
        """Bytes accepted for this session but not yet on the wire (our batch + the socket's)."""
        size = sum(map(len, self._pending))
        if self._transport is not None:
            size += self._transport.get_write_buffer_size()
        return size

    def send(self, msg_type: bytes, body: Fields, *, resendable: bool | None = None) -> None:
        """Send an application message (see :meth:`Session.send_app` for ``resendable``)."""
        self._run(self.session.send_app(msg_type, body, self.clock.now_ns(), resendable=resendable))

    def send_shared(self, body: SharedBody, *, defer: bool = True) -> None:
        """Send a body encoded once for many sessions (market data; never resent).

        Outside a read batch, the bytes go out when the current loop step ends, or at
        :meth:`flush`. (A publisher flushes each session right after its sends: the store commit
        that must precede the write is a memory copy of the sequence counters, so there is no
        reason to hold the first session's bytes until the last session is encoded.) Such a
        caller passes ``defer=False``: nothing is scheduled, and it must call :meth:`flush`."""
        data = self.session.encode_shared(body, self.clock.now_ns()) if self._transport is not None else None
        if data is not None:
            # The session's fast path (ACTIVE): no actions, and the heartbeat deadline only moved
            # later, so the armed timer stands (an early wake-up is harmless).
            self._pending.append(data)
            self.messages_sent += 1
        else:
            self._batch_depth += 1  # no flush inside: see below
            try:
                self._run(self.session.send_shared(body, self.clock.now_ns()))
            finally:
                self._batch_depth -= 1
        if self._batch_depth or not defer:
            return  # the read batch flushes at its end, or the caller does
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._deferred_flush)

    def send_market_data(self, bodies: Sequence[tuple[bytes, PreparedBody]]) -> None:
        """A publish cycle's market data for this session, written now: each ``(MDReqID, body)``,
        the body encoded once for every session (:class:`fixserver.marketdata.MarketDataHub`).
        The same bytes and sequence numbers as :meth:`send_shared` of each then :meth:`flush`,
        with one call per session instead of several per message while ACTIVE."""
        if self._transport is not None and not self._batch_depth and not self._pending:
            data = self.session.encode_market_data(bodies, self.clock.now_ns())
            if data is not None:
                self.messages_sent += len(bodies)
                self._commit_and_write(data)  # nothing else pending: no list to join
                return
        for md_req_id, prepared in bodies:
            self.send_shared(SharedBody(((262, md_req_id),), prepared), defer=False)
        self.flush()

    def flush(self) -> None:
        """Commit the store, then write what :meth:`send_shared` left pending, now rather than
        when the loop step ends."""
        if self._batch_depth == 0:
            self._flush()

    def business_reject(self, ref: FixMessage, reason: int, text: str, *, ref_id: bytes | None = None) -> None:
        """BusinessMessageReject (35=j) of ``ref``."""
        self._run(self.session.business_reject(ref, reason, text, self.clock.now_ns(), ref_id=ref_id))

    def test_request(self, test_req_id: bytes | None = None) -> None:
        """Send a TestRequest now (the peer must answer with a Heartbeat carrying its 112)."""
        self._run(self.session.test_request(self.clock.now_ns(), test_req_id))

    def logout(self, text: str = "") -> None:
        """Start the Logout handshake (the connection closes on the answer or the timeout)."""
        self._run(self.session.logout(self.clock.now_ns(), text))

    def abort(self, reason: str) -> None:
        """Drop the connection now, without waiting for queued bytes (a slow consumer)."""
        transport = self._transport
        if transport is not None:
            log.warning("%s: aborting connection: %s", self.session_id.key, reason)
            transport.abort()

    def set_socket_send_buffer(self, size: int) -> None:
        """Cap the kernel send buffer (SO_SNDBUF) of the current connection.

        A smaller kernel buffer makes a slow reader visible to :attr:`buffered_bytes` sooner,
        so it is conflated or dropped in bounded time instead of after megabytes of lag.
        """
        transport = self._transport
        sock = transport.get_extra_info("socket") if transport is not None else None
        if sock is not None and size > 0:
            import socket

            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, size)

    async def wait_logged_on(self) -> None:
        """Wait until the session is logged on (wrap in ``asyncio.wait_for``)."""
        if self.is_logged_on:
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._logon_waiters.append(fut)
        await fut

    async def wait_disconnected(self) -> None:
        """Wait until the current connection is gone (wrap in ``asyncio.wait_for``)."""
        if self._transport is None:
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._closed_waiters.append(fut)
        await fut

    def __repr__(self) -> str:
        return f"SessionHandle({self.session!r}, buffered={self.buffered_bytes})"

    # -- what the protocols use --

    def attach(self, transport: asyncio.Transport) -> None:
        """A connection now carries this session."""
        self._transport = transport
        transport.set_write_buffer_limits(high=self.write_high_water, low=self.write_high_water // 4)
        self._run(self.session.connected(self.clock.now_ns()))

    def receive_batch(self, messages: Iterable[FixMessage]) -> None:
        """Run every decoded message of one read through the session; one write at the end."""
        self._batch_depth += 1
        try:
            for msg in messages:
                if self._transport is None or self.session.state is SessionState.DISCONNECTED:
                    break  # the session ended inside this batch: the rest is not ours to read
                now = self.clock.now_ns()
                if self.message_log is not None:
                    self.message_log.inbound(self.session_id.key, msg, now)
                self._run(self.session.receive(msg, now))
        finally:
            self._batch_depth -= 1
        self._flush()

    def connection_lost(self, reason: str) -> None:
        """The connection closed; tell the session (if it does not know yet) and the waiters."""
        transport, self._transport = self._transport, None
        self._pending.clear()
        if transport is not None and self.session.state is not SessionState.DISCONNECTED:
            self._run(self.session.connection_lost(self.clock.now_ns(), reason))
        self._cancel_timer()
        self.writing_paused = False
        for fut in self._closed_waiters:
            if not fut.done():
                fut.set_result(None)
        self._closed_waiters.clear()

    def set_paused(self, paused: bool) -> None:
        self.writing_paused = paused
        self._notify(self.application.on_send_buffer, self, paused)

    # -- executing actions --

    def _run(self, actions: list[Action]) -> None:
        self._batch_depth += 1
        try:
            # The session numbered its own messages of this batch when it made them; what the
            # callbacks below send is numbered later. So all of the session's go first, then the
            # callbacks' in the order of events: MsgSeqNum rises on the wire (an admin reply
            # behind a delivered order used to follow the order's report with a lower number).
            for action in actions:
                if isinstance(action, Send):
                    body = action.body
                    if isinstance(body, SharedBody):
                        data = encode_with_prepared(action.header + body.prefix, body.prepared, action.begin_string)
                    else:
                        data = encode(action.msg_type, action.header, body, action.begin_string)
                    self._pending.append(data)
                    self.messages_sent += 1
                    if self.message_log is not None:
                        self.message_log.outbound(self.session_id.key, data, self.clock.now_ns())
            for action in actions:
                if isinstance(action, Send):
                    continue
                if isinstance(action, Deliver):
                    self._notify(self.application.from_app, action.message, self)
                elif isinstance(action, AdminReceived):
                    self._notify(self.application.from_admin, action.message, self)
                elif isinstance(action, LoggedOn):
                    self.logon_count += 1
                    log.info("%s logged on%s", self.session_id.key, " (sequence reset)" if action.reset else "")
                    for fut in self._logon_waiters:
                        if not fut.done():
                            fut.set_result(None)
                    self._logon_waiters.clear()
                    self._notify(self.application.on_logon, self)
                elif isinstance(action, LoggedOut):
                    log.info("%s logged out: %s", self.session_id.key, action.reason)
                    self._notify(self.application.on_logout, self, action.reason)
                elif isinstance(action, Disconnect):
                    log.info("%s disconnect: %s", self.session_id.key, action.reason)
                    if action.reason == NEUTRAL_LOGON_REJECT_TEXT:  # the session's refusal of a Logon
                        self.logon_rejects += 1
                    self._flush(force=True)
                    self._close()
        finally:
            self._batch_depth -= 1
        if self._batch_depth == 0:
            self._flush()
        self._arm_timer()

    def _notify(self, callback: Callable[..., None], *args: Any) -> None:
        """Run an application callback. A failing one is logged and counted; the session goes
        on (the message counts as processed), as QuickFIX/J does by default: one bad message
        must not take down a client's session, nor the loop every session shares."""
        try:
            callback(*args)
        except Exception:
            self.callback_errors += 1
            log.exception("%s: application callback %s failed", self.session_id.key, callback.__name__)

    def _flush(self, force: bool = False) -> None:
        if self._batch_depth and not force:
            return
        # The durability rule: committed before the bytes leave (fixserver.store). Also with
        # nothing to write: the inbound sequence number moved (a crash must not make us process
        # the peer's messages twice) or a message was stored for a later resend.
        if not self._pending:
            self.session.store.commit()
            return
        data = b"".join(self._pending)
        self._pending.clear()
        self._commit_and_write(data)

    def _commit_and_write(self, data: bytes) -> None:
        self.session.store.commit()  # the counters before the bytes (fixserver.store)
        transport = self._transport
        if transport is None or transport.is_closing():
            return  # sequence numbers and stored messages are kept; the peer will ask
        transport.write(data)
        if transport.get_write_buffer_size() > self.max_send_buffer_bytes:
            log.warning(
                "%s: send buffer %d bytes over the limit %d, dropping the connection",
                self.session_id.key, transport.get_write_buffer_size(), self.max_send_buffer_bytes,
            )
            transport.abort()

    def _deferred_flush(self) -> None:
        self._flush_scheduled = False
        if self._batch_depth == 0:
            self._flush()

    def _close(self) -> None:
        transport = self._transport
        if transport is not None and not transport.is_closing():
            transport.close()  # flushes what is buffered (our Logout) then closes
            if transport.get_write_buffer_size():
                asyncio.get_running_loop().call_later(self.close_grace_s, _abort_unread, transport, self.session_id)

    # -- the one timer --

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = None
        self._timer_deadline = None

    def _arm_timer(self) -> None:
        deadline = self.session.next_deadline_ns
        if deadline is None or self._transport is None:
            self._cancel_timer()
            return
        # Re-arm only for an earlier deadline: a later one is found when the timer fires
        # (an early on_timer is harmless), which saves a TimerHandle per message.
        if self._timer is not None and self._timer_deadline is not None and self._timer_deadline <= deadline:
            return
        self._cancel_timer()
        loop = asyncio.get_running_loop()
        delay = max(0.0, (deadline - self.clock.now_ns()) / _NS)
        self._timer_deadline = deadline
        self._timer = loop.call_later(delay, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_deadline = None
        if self._transport is None:
            return
        self._run(self.session.on_timer(self.clock.now_ns()))


_MARKET_DATA = (b"W", b"X")  # the message types a deferred read may hold (Initiator's defer_session_reads)


class _FixProtocol(asyncio.Protocol):
    """Bytes in → FrameDecoder → session; backpressure signals → the handle."""

    def __init__(self, max_message_size: int) -> None:
        self.decoder = FrameDecoder(max_message_size)
        self.handle: SessionHandle | None = None
        self.transport: asyncio.Transport | None = None
        # See Initiator's ``defer_session_reads``: decoded messages wait here for the session.
        self.defer_session_reads = False
        self._deferred: list[FixMessage] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport but implement it.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if self._deferred:
            # The session is up to date before the next read is decoded (the LP decoder takes its
            # expected MsgSeqNum from it), so at most one read's messages ever wait; and a read
            # that came after the session ended the connection is not decoded at all.
            self._run_deferred()
            if self.transport is None or self.transport.is_closing():
                return
        try:
            messages = self.decoder.feed(data)
        except FrameTooLarge as exc:
            self._dispatch(exc.messages)
            log.warning("dropping connection: %s", exc)
            if self.transport is not None:
                self.transport.abort()
            return
        if not messages:
            return
        # Only market data waits: an ExecutionReport, a reject or a Logout is read at once, before
        # the turn (an order route's deadline, an LP going away, must be seen in this turn).
        if self.defer_session_reads and all(m.msg_type in _MARKET_DATA for m in messages):
            if not self._deferred:
                asyncio.get_running_loop().call_soon(self._deferred_callback)
            self._deferred += messages
        else:
            self._dispatch(messages)

    def _run_deferred(self) -> None:
        messages, self._deferred = self._deferred, []
        if messages:
            self._dispatch(messages)

    def _deferred_callback(self) -> None:
        try:
            self._run_deferred()
        except Exception:
            # As if it had failed inside data_received, where the transport treats it as fatal.
            log.exception("session failed on a deferred read; dropping the connection")
            if self.transport is not None:
                self.transport.abort()

    def _dispatch(self, messages: list[FixMessage]) -> None:
        if self.handle is not None:
            self.handle.receive_batch(messages)

    def connection_lost(self, exc: Exception | None) -> None:
        self._run_deferred()  # the session reads everything that came before the end
        if self.handle is not None:
            self.handle.connection_lost(f"connection lost: {exc}" if exc else "connection closed")
            self.handle = None
        self.transport = None

    def pause_writing(self) -> None:
        if self.handle is not None:
            self.handle.set_paused(True)

    def resume_writing(self) -> None:
        if self.handle is not None:
            self.handle.set_paused(False)


class _AcceptorProtocol(_FixProtocol):
    """Until the first Logon names the session, the connection belongs to no session."""

    def __init__(self, acceptor: Acceptor) -> None:
        super().__init__(acceptor.max_message_size)
        self.acceptor = acceptor
        self._logon_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        # No session owns this connection yet, so no session timer guards it: a peer that
        # never sends a Logon is closed after the logon timeout.
        loop = asyncio.get_running_loop()
        self._logon_timer = loop.call_later(self.acceptor.logon_timeout_s, self._no_logon)

    def _no_logon(self) -> None:
        if self.handle is None and self.transport is not None:
            self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._logon_timer is not None:
            self._logon_timer.cancel()
        super().connection_lost(exc)

    def _dispatch(self, messages: list[FixMessage]) -> None:
        if self.handle is None:
            if self.transport is None or self.transport.is_closing():
                return
            first = messages[0]
            handle = self.acceptor._bind(first)
            if handle is None:
                # Say who knocked (for SREs), never what they sent (a Logon carries 554).
                log.warning(
                    "refused connection from %s: first message 35=%s for an unknown or already connected session",
                    self.transport.get_extra_info("peername"), first.msg_type.decode("ascii", "replace"),
                )
                if first.msg_type == b"A":
                    self.acceptor.unbound_logon_rejects += 1
                    reject = neutral_logon_reject(
                        first.get(8) or b"FIX.4.4", first.get(56) or b"?", first.get(49) or b"?",
                        self.acceptor.clock.now_ns(),
                    )
                    assert isinstance(reject.body, tuple)
                    self.transport.write(encode(reject.msg_type, reject.header, reject.body, reject.begin_string))
                self.transport.close()
                return
            self.handle = handle
            handle.attach(self.transport)
        self.handle.receive_batch(messages)


class Acceptor:
    """Serves many sessions on one port; a connection's first Logon picks its session by
    (BeginString, TargetCompID=ours, SenderCompID=theirs). Unknown, or already connected →
    the neutral Logout and close."""

    def __init__(
        self,
        application: Application,
        sessions: Sequence[SessionConfig],
        store_factory: MessageStoreFactory,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Clock | None = None,
        authenticator: Authenticator | None = None,
        validator: Validator | None = None,
        max_send_buffer_bytes: int = DEFAULT_MAX_SEND_BUFFER,
        write_high_water: int = DEFAULT_WRITE_HIGH_WATER,
        max_message_size: int = 1 << 20,
        logon_timeout_s: float = 10.0,
    ) -> None:
        self.application = application
        self.logon_timeout_s = logon_timeout_s
        self.host = host
        self.port = port
        self.clock = clock or SystemClock()
        self.max_message_size = max_message_size
        self.store_factory = store_factory
        self._server: asyncio.AbstractServer | None = None
        # Logons refused before any session took them (unknown CompIDs, session already connected).
        self.unbound_logon_rejects = 0
        self.handles: dict[tuple[bytes, bytes, bytes], SessionHandle] = {}
        now = self.clock.now_ns()
        for cfg in sessions:
            if cfg.role is not Role.ACCEPTOR:
                raise ValueError(f"{cfg.session_id.key}: an acceptor serves acceptor sessions only")
            sid = cfg.session_id
            session = Session(cfg, store_factory.create(sid.key, now), authenticator=authenticator, validator=validator)
            handle = SessionHandle(session, application, self.clock, max_send_buffer_bytes=max_send_buffer_bytes,
                                   write_high_water=write_high_water)
            self.handles[(sid.begin_string.encode(), sid.sender_comp_id.encode(), sid.target_comp_id.encode())] = handle
            application.on_create(handle)

    @classmethod
    def from_config(
        cls,
        config: Config,
        application: Application,
        *,
        store_factory: MessageStoreFactory | None = None,
        port: int | None = None,
        clock: Clock | None = None,
        validator: Validator | None = validate_session_level,
        **session_options: Any,
    ) -> Acceptor:
        """An acceptor for every ``[[clients]]`` entry, authenticated against the config.

        ``validator``: by default the session-level checks of the FIX 4.4 dictionary (admin
        messages, MsgType; :func:`fixserver.dictionary.validate_session_level`), so a client's
        malformed session message gets the Reject (35=3) its 373 reason names; ``None``: none."""
        server = config.server
        sessions = [
            SessionConfig(SessionID("FIX.4.4", server.sender_comp_id, c.sender_comp_id), Role.ACCEPTOR,
                          heartbeat_s=server.heartbeat_s, **session_options)
            for c in config.clients
        ]
        return cls(
            application, sessions, store_factory or SqliteStoreFactory(server.store_path),
            host=server.host, port=server.port if port is None else port, clock=clock,
            authenticator=ConfigAuthenticator(config.clients), validator=validator,
            max_send_buffer_bytes=server.max_send_buffer_bytes,
        )

    @property
    def logon_rejects(self) -> int:
        """Every Logon refused: unknown CompIDs or an already connected session here, a wrong
        password (or CompIDs) in the session. Plain ints only, so the metrics exporter may read
        it from its own thread (the handles are all made in __init__)."""
        return self.unbound_logon_rejects + sum(h.logon_rejects for h in self.handles.values())

    def handle(self, target_comp_id: str, begin_string: str = "FIX.4.4") -> SessionHandle:
        """The handle of the session with client ``target_comp_id``."""
        for (begin, _sender, target), handle in self.handles.items():
            if begin == begin_string.encode() and target == target_comp_id.encode():
                return handle
        raise KeyError(target_comp_id)

    def _bind(self, logon: FixMessage) -> SessionHandle | None:
        if logon.msg_type != b"A":
            return None
        key = (logon.get(8) or b"", logon.get(56) or b"", logon.get(49) or b"")
        handle = self.handles.get(key)
        if handle is None or handle.connected:
            return None
        return handle

    async def start(self) -> None:
        """Listen; :attr:`port` is the bound port afterwards (useful with port 0)."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _AcceptorProtocol(self), self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("FIX acceptor listening on %s:%d with %d sessions", self.host, self.port, len(self.handles))

    async def stop(self, logout_timeout_s: float = 2.0) -> None:
        """Log out every logged-on session (bounded), close connections and the listener."""
        if self._server is not None:
            self._server.close()
        connected = [h for h in self.handles.values() if h.connected]
        for handle in connected:
            if handle.is_logged_on:
                handle.logout("Server shutting down")
        if connected:
            waits = [asyncio.ensure_future(h.wait_disconnected()) for h in connected]
            _, pending = await asyncio.wait(waits, timeout=logout_timeout_s)
            for fut in pending:
                fut.cancel()
        for handle in connected:
            if handle._transport is not None:
                handle._transport.abort()
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None


def backoff_delay(attempt: int, initial_s: float, max_s: float, jitter: float, rng: random.Random) -> float:
    """Exponential backoff with jitter: ``min(max_s, initial_s * 2**attempt)`` scaled by a random
    factor in ``[1 - jitter, 1 + jitter]`` and still capped at ``max_s`` -- so many initiators
    that lost the same LP do not reconnect in lockstep."""
    base = min(max_s, initial_s * (2 ** min(attempt, 32)))
    return min(max_s, base * (1.0 + jitter * (2.0 * rng.random() - 1.0)))


class Initiator:
    """Connects one session to a counterparty and keeps it connected: reconnects with bounded
    exponential backoff and jitter until :meth:`stop` (or ``max_attempts`` failed connects)."""

    def __init__(
        self,
        application: Application,
        config: SessionConfig,
        store_factory: MessageStoreFactory,
        host: str,
        port: int,
        *,
        clock: Clock | None = None,
        validator: Validator | None = None,
        backoff_initial_s: float = 0.5,
        backoff_max_s: float = 30.0,
        backoff_jitter: float = 0.2,
        max_attempts: int | None = None,
        rng: random.Random | None = None,
        max_send_buffer_bytes: int = DEFAULT_MAX_SEND_BUFFER,
        write_high_water: int = DEFAULT_WRITE_HIGH_WATER,
        max_message_size: int = 1 << 20,
        decoder_factory: Callable[[], Any] | None = None,
        defer_session_reads: bool = False,
        stable_after_s: float | None = None,
    ) -> None:
        """``stable_after_s``: a connection resets the backoff only if it logged on and stayed
        connected at least this long (default: one heartbeat interval). A counterparty that accepts
        the Logon and then logs us out at once is retried with a growing delay, not every
        ``backoff_initial_s`` for ever.

        ``decoder_factory``, if given, makes each connection's byte decoder (an object with
        ``feed(data) -> list[FixMessage]`` that may raise :class:`FrameTooLarge`) in place of a
        :class:`FrameDecoder`: the LP feeds use it to decode market data in batch.

        ``defer_session_reads``: the session processes a read that holds only market data (W/X)
        in a callback queued on the loop, behind what the decoder queued while decoding it,
        rather than at once. An LP feed's decoder turns prices into engine rows and wakes the
        gateway's loop turn, so the turn (engine, publish) runs first and the session's
        bookkeeping of those messages (~50 µs per read here) is no longer in every tick-to-quote.
        Messages still reach the session in order, each read's before the next read is decoded
        (which is skipped if the session closed the connection), and all of them before it hears
        that the connection was lost. A read with anything else in it is processed at once."""
        if config.role is not Role.INITIATOR:
            raise ValueError(f"{config.session_id.key}: an initiator runs an initiator session")
        self.host = host
        self.port = port
        self.clock = clock or SystemClock()
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.backoff_jitter = backoff_jitter
        self.max_attempts = max_attempts
        self.max_message_size = max_message_size
        self.decoder_factory = decoder_factory
        self.defer_session_reads = defer_session_reads
        self.stable_after_s = float(config.heartbeat_s) if stable_after_s is None else stable_after_s
        self._rng = rng or random.Random()
        session = Session(config, store_factory.create(config.session_id.key, self.clock.now_ns()),
                          validator=validator)
        self.handle = SessionHandle(session, application, self.clock, max_send_buffer_bytes=max_send_buffer_bytes,
                                    write_high_water=write_high_water)
        self.connect_attempts = 0
        self.delays: list[float] = []  # backoff delays taken, for observability and tests
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        application.on_create(self.handle)

    @classmethod
    def from_lp_config(
        cls, lp: LpConfig, application: Application, store_factory: MessageStoreFactory,
        *, heartbeat_s: int = 30, environ: dict[str, str] | None = None, **kwargs: Any,
    ) -> Initiator:
        """An initiator for an ``[[lps]]`` entry; the password comes from ``password_env``."""
        import os

        env = os.environ if environ is None else environ
        password = env.get(lp.password_env) if lp.password_env else None
        config = SessionConfig(
            SessionID("FIX.4.4", lp.sender_comp_id, lp.target_comp_id), Role.INITIATOR,
            heartbeat_s=heartbeat_s, credentials=Credentials(None, password) if password else None,
        )
        return cls(application, config, store_factory, lp.host, lp.port, **kwargs)

    async def start(self) -> None:
        """Start connecting in the background."""
        self._stopping = False
        self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        failures = 0
        while not self._stopping:
            self.connect_attempts += 1
            protocol = _FixProtocol(self.max_message_size)
            if self.decoder_factory is not None:
                protocol.decoder = self.decoder_factory()
            protocol.defer_session_reads = self.defer_session_reads

            def factory(p: _FixProtocol = protocol) -> _FixProtocol:
                return p

            try:
                transport, _ = await loop.create_connection(factory, self.host, self.port)
            except OSError as exc:
                failures += 1
                log.info("%s: connect to %s:%d failed: %s", self.handle.session_id.key, self.host, self.port, exc)
            else:
                logons = self.handle.logon_count
                connected_at = loop.time()
                protocol.handle = self.handle
                self.handle.attach(cast(asyncio.Transport, transport))
                await self.handle.wait_disconnected()
                # Only a connection that logged on and stayed up resets the backoff: a refused
                # Logon, or one logged out at once, counts as a failure.
                stable = loop.time() - connected_at >= self.stable_after_s
                failures = 0 if self.handle.logon_count > logons and stable else failures + 1
            if self._stopping or (self.max_attempts is not None and self.connect_attempts >= self.max_attempts):
                break
            delay = backoff_delay(failures, self.backoff_initial_s, self.backoff_max_s, self.backoff_jitter, self._rng)
            self.delays.append(delay)
            await asyncio.sleep(delay)

    async def stop(self, logout_timeout_s: float = 2.0) -> None:
        """Log out (bounded by ``logout_timeout_s``), close, stop reconnecting."""
        self._stopping = True
        handle = self.handle
        if handle.is_logged_on:
            handle.logout("Initiator stopping")
            try:
                await asyncio.wait_for(handle.wait_disconnected(), logout_timeout_s)
            except TimeoutError:
                pass
        if handle._transport is not None:
            handle._transport.abort()
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None


def run(main: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run ``main()`` on a uvloop event loop (the production loop)."""
    import uvloop

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main())
