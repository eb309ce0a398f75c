"""Interoperability with QuickFIX (the C++ engine, via its PyPI Python bindings).

1. A QuickFIX initiator against our acceptor: Logon (with 554), heartbeats both ways at
   HeartBtInt=1, TestRequests both ways, a sequence gap on *our* side (QuickFIX asks, we gap-fill)
   and one on *its* side (we ask, QuickFIX gap-fills), then a clean Logout.
2. Our initiator against a QuickFIX acceptor: Logon, heartbeats, a TestRequest, Logout.

Our side runs on a uvloop loop in a background thread; QuickFIX runs its own threads. Loopback
only; QuickFIX's store and logs go to tmp_path; every wait is a bounded poll.
"""

from __future__ import annotations

import asyncio
import hashlib
import socket
import threading
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest
import quickfix as fix
import uvloop

from fixserver.message import FixMessage
from fixserver.session import Role, SessionConfig, SessionID
from fixserver.session_auth import ConfigAuthenticator
from fixserver.store import MemoryStoreFactory, SqliteStoreFactory
from fixserver.transport import Acceptor, Application, Initiator, SessionHandle

QF_PASSWORD = "qf-interop-pw"
pytestmark = pytest.mark.timeout(120)


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or predicate}")
        time.sleep(0.02)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LoopThread:
    """A uvloop event loop in a daemon thread; the test talks to it through run()/call()."""

    def __init__(self) -> None:
        self.loop = uvloop.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, Any], timeout: float = 15.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        async def in_loop() -> Any:
            return fn(*args)

        return self.run(in_loop())

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


class Ours(Application):
    """Records what our side sees (appended in the loop thread, read in the test thread)."""

    def __init__(self) -> None:
        self.admin: list[FixMessage] = []
        self.logons = 0
        self.logouts: list[str] = []

    def on_logon(self, session: SessionHandle) -> None:
        self.logons += 1

    def on_logout(self, session: SessionHandle, reason: str) -> None:
        self.logouts.append(reason)

    def from_admin(self, message: FixMessage, session: SessionHandle) -> None:
        self.admin.append(message)

    def seen(self, msg_type: bytes, **tags: bytes) -> list[FixMessage]:
        return [m for m in list(self.admin) if m.msg_type == msg_type
                and all(m.get(int(t[1:])) == v for t, v in tags.items())]


def qf_fields(message: fix.Message) -> dict[int, str]:
    out: dict[int, str] = {}
    for part in message.toString().split("\x01"):
        if "=" in part:
            tag, value = part.split("=", 1)
            out.setdefault(int(tag), value)
    return out


class Theirs(fix.Application):
    """The QuickFIX side's application: records admin traffic, adds 554 to its Logon."""

    def __init__(self, password: str | None = None) -> None:
        super().__init__()
        self.password = password
        self.session_id: fix.SessionID | None = None
        self.logged_on = threading.Event()
        self.logged_out = threading.Event()
        self.admin: list[dict[int, str]] = []
        self.lock = threading.Lock()

    def onCreate(self, session_id: fix.SessionID) -> None:  # noqa: N802 - QuickFIX's names
        self.session_id = session_id

    def onLogon(self, session_id: fix.SessionID) -> None:  # noqa: N802
        self.logged_on.set()

    def onLogout(self, session_id: fix.SessionID) -> None:  # noqa: N802
        self.logged_out.set()

    def toAdmin(self, message: fix.Message, session_id: fix.SessionID) -> None:  # noqa: N802
        if self.password and message.getHeader().getField(35) == "A":
            message.setField(554, self.password)

    def fromAdmin(self, message: fix.Message, session_id: fix.SessionID) -> None:  # noqa: N802
        with self.lock:
            self.admin.append(qf_fields(message))

    def toApp(self, message: fix.Message, session_id: fix.SessionID) -> None:  # noqa: N802
        pass

    def fromApp(self, message: fix.Message, session_id: fix.SessionID) -> None:  # noqa: N802
        pass

    def seen(self, msg_type: str, **tags: str) -> list[dict[int, str]]:
        with self.lock:
            return [m for m in self.admin if m.get(35) == msg_type
                    and all(m.get(int(t[1:])) == v for t, v in tags.items())]


def qf_settings(tmp_path: Path, body: str) -> fix.SessionSettings:
    (tmp_path / "qf_store").mkdir(exist_ok=True)
    (tmp_path / "qf_log").mkdir(exist_ok=True)
    text = f"""[DEFAULT]
FileStorePath={tmp_path / "qf_store"}
FileLogPath={tmp_path / "qf_log"}
StartTime=00:00:00
EndTime=00:00:00
UseDataDictionary=N
ReconnectInterval=30
LogoutTimeout=2
{body}
"""
    path = tmp_path / "quickfix.cfg"
    path.write_text(text)
    return fix.SessionSettings(str(path))


class _Client:
    sender_comp_id = "QFCLIENT"
    password_sha256 = hashlib.sha256(QF_PASSWORD.encode()).hexdigest()
    password_env = None


def test_quickfix_initiator_against_our_acceptor(tmp_path: Path) -> None:
    loop = LoopThread()
    ours = Ours()
    sessions = [SessionConfig(SessionID("FIX.4.4", "LAGG", "QFCLIENT"), Role.ACCEPTOR)]
    acceptor = Acceptor(ours, sessions, SqliteStoreFactory(tmp_path / "ours.sqlite"), port=0,
                        authenticator=ConfigAuthenticator([_Client()]))  # type: ignore[list-item]
    qf_initiator = None
    try:
        loop.run(acceptor.start())
        handle = acceptor.handle("QFCLIENT")
        theirs = Theirs(QF_PASSWORD)
        settings = qf_settings(tmp_path, f"""ConnectionType=initiator

[SESSION]
BeginString=FIX.4.4
SenderCompID=QFCLIENT
TargetCompID=LAGG
SocketConnectHost=127.0.0.1
SocketConnectPort={acceptor.port}
HeartBtInt=1
""")
        qf_initiator = fix.SocketInitiator(theirs, fix.FileStoreFactory(settings), settings,
                                           fix.FileLogFactory(settings))
        qf_initiator.start()

        # Logon, authenticated by 554.
        assert theirs.logged_on.wait(10), "QuickFIX did not log on"
        wait_until(lambda: handle.is_logged_on, what="our side logged on")
        assert handle.session.heartbeat_s == 1
        qf_session = fix.Session.lookupSession(theirs.session_id)

        # Heartbeats both ways.
        wait_until(lambda: len(ours.seen(b"0")) >= 2 and len(theirs.seen("0")) >= 2, what="heartbeats")

        # Our TestRequest, answered by QuickFIX with a Heartbeat carrying our 112.
        loop.call(handle.test_request, b"LAGG-PROBE-1")
        wait_until(lambda: ours.seen(b"0", t112=b"LAGG-PROBE-1"), what="QuickFIX answering our TestRequest")
        assert theirs.seen("1", t112="LAGG-PROBE-1")

        # QuickFIX's TestRequest, answered by us.
        probe = fix.Message()
        probe.getHeader().setField(fix.MsgType("1"))
        probe.setField(112, "QF-PROBE-1")
        assert fix.Session.sendToTarget(probe, theirs.session_id)
        wait_until(lambda: theirs.seen("0", t112="QF-PROBE-1"), what="our Heartbeat answering QuickFIX")

        # A gap on our side: we skip three numbers; QuickFIX asks, we fill.
        def skip_ours() -> int:
            first = handle.session.next_sender_seq
            handle.session.store.set_next_sender_seq(first + 3)
            return first

        skipped = loop.call(skip_ours)
        wait_until(lambda: ours.seen(b"2", t7=str(skipped).encode()), what="QuickFIX's ResendRequest")
        wait_until(lambda: theirs.seen("4", t34=str(skipped), t123="Y"), what="our gap fill at QuickFIX")
        wait_until(lambda: qf_session.getExpectedTargetNum() == handle.session.next_sender_seq,
                   what="QuickFIX caught up with our sequence")
        assert handle.is_logged_on and qf_session.isLoggedOn()

        # A gap on QuickFIX's side: it skips three numbers; we ask, it fills.
        their_next = qf_session.getExpectedSenderNum()
        qf_session.setNextSenderMsgSeqNum(their_next + 3)
        wait_until(lambda: ours.seen(b"4", t123=b"Y", t34=str(their_next).encode()),
                   what="QuickFIX's gap fill answering our ResendRequest")
        assert theirs.seen("2", t7=str(their_next))
        wait_until(lambda: handle.session.next_target_seq == qf_session.getExpectedSenderNum(),
                   what="we caught up with QuickFIX's sequence")
        assert handle.is_logged_on and not handle.session.resend_outstanding

        # Clean Logout, initiated by QuickFIX.
        qf_initiator.stop()
        qf_initiator = None
        assert theirs.logged_out.wait(10)
        wait_until(lambda: bool(ours.logouts), what="our side logged out")
        assert ours.logouts == ["counterparty logged out"]
        assert ours.logons == 1  # no reconnects, no resets along the way
    finally:
        if qf_initiator is not None:
            qf_initiator.stop(True)
        loop.run(acceptor.stop(logout_timeout_s=1))
        loop.close()


def test_our_initiator_against_a_quickfix_acceptor(tmp_path: Path) -> None:
    port = free_port()
    theirs = Theirs()
    settings = qf_settings(tmp_path, f"""ConnectionType=acceptor
SocketAcceptPort={port}
SocketAcceptAddress=127.0.0.1

[SESSION]
BeginString=FIX.4.4
SenderCompID=LP1
TargetCompID=LAGG
""")
    qf_acceptor = fix.SocketAcceptor(theirs, fix.FileStoreFactory(settings), settings, fix.FileLogFactory(settings))
    qf_acceptor.start()
    loop = LoopThread()
    ours = Ours()
    config = SessionConfig(SessionID("FIX.4.4", "LAGG", "LP1"), Role.INITIATOR, heartbeat_s=1)
    initiator = Initiator(ours, config, MemoryStoreFactory(), "127.0.0.1", port, max_attempts=5,
                          backoff_initial_s=0.1, backoff_max_s=0.5)
    try:
        loop.run(initiator.start())
        assert theirs.logged_on.wait(10), "QuickFIX acceptor did not accept our Logon"
        wait_until(lambda: initiator.handle.is_logged_on, what="our initiator logged on")
        wait_until(lambda: len(ours.seen(b"0")) >= 2 and len(theirs.seen("0")) >= 2, what="heartbeats")
        loop.call(initiator.handle.test_request, b"LAGG-PROBE-2")
        wait_until(lambda: ours.seen(b"0", t112=b"LAGG-PROBE-2"), what="QuickFIX answering our TestRequest")
        loop.run(initiator.stop(logout_timeout_s=5))
        assert theirs.logged_out.wait(10)
        assert ours.logouts == ["logout complete"]  # QuickFIX answered our Logout
        assert ours.logons == 1 and initiator.connect_attempts == 1
    finally:
        loop.run(initiator.stop(logout_timeout_s=1))
        loop.close()
        qf_acceptor.stop(True)
