"""Acceptor and initiator over real loopback sockets, on uvloop. Every wait is bounded."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import uvloop

from fixserver.codec import FrameDecoder, encode
from fixserver.message import FixMessage
from fixserver.session import Credentials, Role, SessionConfig, SessionID, format_utc_timestamp
from fixserver.session_auth import ConfigAuthenticator
from fixserver.store import MemoryStoreFactory, SqliteStoreFactory
from fixserver.transport import Acceptor, Application, Initiator, SessionHandle

PASSWORD = "pw-demo"


class _Client:
    def __init__(self, comp_id: str) -> None:
        self.sender_comp_id = comp_id
        self.password_sha256 = hashlib.sha256(PASSWORD.encode()).hexdigest()
        self.password_env = None


def on_uvloop(coro: Coroutine[Any, Any, Any], timeout: float = 20.0) -> Any:
    async def bounded() -> Any:
        return await asyncio.wait_for(coro, timeout)

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        assert isinstance(runner.get_loop(), uvloop.Loop)
        return runner.run(bounded())


class Recorder(Application):
    """Answers NewOrderSingle (D) with an ExecutionReport (8); records everything."""

    def __init__(self) -> None:
        self.app: list[FixMessage] = []
        self.admin: list[FixMessage] = []
        self.logons = 0
        self.logouts: list[str] = []
        self.paused: list[bool] = []

    def on_logon(self, session: SessionHandle) -> None:
        self.logons += 1

    def on_logout(self, session: SessionHandle, reason: str) -> None:
        self.logouts.append(reason)

    def from_admin(self, message: FixMessage, session: SessionHandle) -> None:
        self.admin.append(message)

    def from_app(self, message: FixMessage, session: SessionHandle) -> None:
        self.app.append(message)
        if message.msg_type == b"D":
            session.send(b"8", [(37, b"E-" + (message.get(11) or b"")), (11, message.get(11) or b""),
                                (17, b"X1"), (150, b"0"), (39, b"0"), (55, b"EUR/USD"), (54, b"1"),
                                (151, b"0"), (14, b"0"), (6, b"0")])

    def on_send_buffer(self, session: SessionHandle, paused: bool) -> None:
        self.paused.append(paused)


def make_acceptor(app: Application, store_factory=None, heartbeat_s: int = 30, **kw: Any) -> Acceptor:
    sessions = [SessionConfig(SessionID("FIX.4.4", "LAGG", c), Role.ACCEPTOR) for c in ("DEMO", "FUNDA")]
    return Acceptor(app, sessions, store_factory or MemoryStoreFactory(), port=0,
                    authenticator=ConfigAuthenticator([_Client("DEMO"), _Client("FUNDA")]),  # type: ignore[list-item]
                    **kw)


def make_initiator(app: Application, port: int, comp_id: str = "DEMO", heartbeat_s: int = 30,
                   password: str = PASSWORD, **kw: Any) -> Initiator:
    cfg = SessionConfig(SessionID("FIX.4.4", comp_id, "LAGG"), Role.INITIATOR, heartbeat_s=heartbeat_s,
                        credentials=Credentials(None, password))
    return Initiator(app, cfg, MemoryStoreFactory(), "127.0.0.1", port, **kw)


async def until(predicate, timeout: float = 5.0) -> None:
    async def poll() -> None:
        while not predicate():
            await asyncio.sleep(0.01)

    await asyncio.wait_for(poll(), timeout)


def test_initiator_and_acceptor_logon_order_execution_report_logout(tmp_path: Path) -> None:
    async def main() -> None:
        server_app, client_app = Recorder(), Recorder()
        acceptor = make_acceptor(server_app, SqliteStoreFactory(tmp_path / "store.sqlite"))
        await acceptor.start()
        initiator = make_initiator(client_app, acceptor.port, max_attempts=1)
        await initiator.start()
        await asyncio.wait_for(initiator.handle.wait_logged_on(), 5)
        for i in range(3):
            initiator.handle.send(b"D", [(11, b"C%d" % i), (55, b"EUR/USD"), (54, b"1"), (60, format_utc_timestamp(0)),
                                         (38, b"1000"), (40, b"1")])
        await until(lambda: len(client_app.app) == 3)
        assert [m.get(37) for m in client_app.app] == [b"E-C0", b"E-C1", b"E-C2"]
        server = acceptor.handle("DEMO")
        assert server.session.next_sender_seq == 5 and server.session.next_target_seq == 5
        await initiator.stop()
        await until(lambda: not server.connected)
        assert server_app.logouts and client_app.logouts
        assert server_app.logouts[0].startswith("counterparty logged out")
        await acceptor.stop()

    on_uvloop(main())


async def raw_logon(port: int, sender: bytes, password: bytes) -> list[FixMessage]:
    """A hand-rolled client: send one Logon, return what comes back before the close."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    header = [(49, sender), (56, b"LAGG"), (34, b"1"), (52, format_utc_timestamp(time.time_ns()))]
    writer.write(encode(b"A", header, [(98, b"0"), (108, b"30"), (554, password)]))
    decoder = FrameDecoder()
    got: list[FixMessage] = []
    while True:
        data = await asyncio.wait_for(reader.read(65536), 5)
        if not data:
            break
        got += decoder.feed(data)
    writer.close()
    return got


def test_unknown_comp_id_and_wrong_password_get_the_same_neutral_logout() -> None:
    async def main() -> None:
        acceptor = make_acceptor(Recorder())
        await acceptor.start()
        unknown = await raw_logon(acceptor.port, b"NOBODY", PASSWORD.encode())
        wrong = await raw_logon(acceptor.port, b"DEMO", b"guess")
        assert [m.msg_type for m in unknown] == [m.msg_type for m in wrong] == [b"5"]
        assert unknown[0].get(58) == wrong[0].get(58) == b"Logon rejected"
        assert unknown[0].get(34) == wrong[0].get(34) == b"1"
        assert acceptor.handle("DEMO").session.next_sender_seq == 1  # nothing consumed
        await acceptor.stop()

    on_uvloop(main())


def test_heartbeats_flow_with_a_short_heartbtint() -> None:
    async def main() -> None:
        server_app, client_app = Recorder(), Recorder()
        acceptor = make_acceptor(server_app)
        await acceptor.start()
        initiator = make_initiator(client_app, acceptor.port, heartbeat_s=1, max_attempts=1)
        await initiator.start()
        await asyncio.wait_for(initiator.handle.wait_logged_on(), 5)
        assert acceptor.handle("DEMO").session.heartbeat_s == 1
        await until(lambda: sum(m.msg_type == b"0" for m in server_app.admin) >= 2
                    and sum(m.msg_type == b"0" for m in client_app.admin) >= 2, timeout=8)
        await initiator.stop()
        await acceptor.stop()

    on_uvloop(main())


def test_slow_reader_pauses_writes_and_is_dropped_past_the_limit_without_blocking_others() -> None:
    async def main() -> None:
        server_app = Recorder()
        acceptor = make_acceptor(server_app, write_high_water=16 * 1024, max_send_buffer_bytes=512 * 1024)
        await acceptor.start()
        # FUNDA logs on and then never reads again. Small kernel buffers on both ends make the
        # backlog land in our user-space buffer quickly instead of in megabytes of socket buffers.
        import socket

        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", acceptor.port))
        reader, writer = await asyncio.open_connection(sock=sock)
        header = [(49, b"FUNDA"), (56, b"LAGG"), (34, b"1"), (52, format_utc_timestamp(time.time_ns()))]
        writer.write(encode(b"A", header, [(98, b"0"), (108, b"30"), (554, PASSWORD.encode())]))
        slow = acceptor.handle("FUNDA")
        await asyncio.wait_for(slow.wait_logged_on(), 5)
        assert slow._transport is not None
        slow._transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        # DEMO is a healthy client on the same acceptor.
        client_app = Recorder()
        initiator = make_initiator(client_app, acceptor.port, max_attempts=1)
        await initiator.start()
        await asyncio.wait_for(initiator.handle.wait_logged_on(), 5)
        body = [(55, b"EUR/USD"), (58, b"x" * 900)]
        sent = 0
        for _ in range(2000):  # at most ~2 MB of market data, far over the 512 KiB limit
            if not slow.connected or slow._transport is None or slow._transport.is_closing():
                break
            slow.send(b"W", body)
            sent += 1
            if sent % 50 == 0:
                await asyncio.sleep(0)  # let the loop run other sessions between bursts
                initiator.handle.send(b"D", [(11, b"K%d" % sent), (55, b"EUR/USD"), (54, b"1"),
                                             (60, format_utc_timestamp(0)), (38, b"1"), (40, b"1")])
        assert True in server_app.paused  # the transport told us to back off
        await until(lambda: not slow.connected, timeout=5)
        assert sent < 2000  # dropped before everything was queued
        await until(lambda: len(client_app.app) >= 1, timeout=5)  # the other session kept going
        writer.close()
        await initiator.stop()
        await acceptor.stop()

    on_uvloop(main())


def test_initiator_retries_with_bounded_backoff_when_nobody_listens() -> None:
    async def main() -> None:
        import socket

        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()  # nothing listens here now
        initiator = make_initiator(Recorder(), port, max_attempts=4, backoff_initial_s=0.01,
                                   backoff_max_s=0.04, backoff_jitter=0.5)
        await initiator.start()
        assert initiator._task is not None
        await asyncio.wait_for(initiator._task, 5)
        assert initiator.connect_attempts == 4
        assert len(initiator.delays) == 3 and all(0 < d <= 0.04 for d in initiator.delays)
        await initiator.stop()

    on_uvloop(main())


def test_initiator_reconnects_after_the_acceptor_drops_it() -> None:
    async def main() -> None:
        server_app, client_app = Recorder(), Recorder()
        acceptor = make_acceptor(server_app)
        await acceptor.start()
        initiator = make_initiator(client_app, acceptor.port, max_attempts=3, backoff_initial_s=0.01,
                                   backoff_max_s=0.05)
        await initiator.start()
        await asyncio.wait_for(initiator.handle.wait_logged_on(), 5)
        server = acceptor.handle("DEMO")
        assert server._transport is not None
        server._transport.abort()  # the network drops the connection
        await until(lambda: client_app.logons == 2, timeout=5)
        assert server.session.next_target_seq == 3  # the second Logon continued the sequence
        await initiator.stop()
        await acceptor.stop()

    on_uvloop(main())


def test_a_failing_application_callback_is_logged_and_the_session_goes_on() -> None:
    class Flaky(Recorder):
        def from_app(self, message: FixMessage, session: SessionHandle) -> None:
            if message.get(11) == b"BOOM":
                raise RuntimeError("application bug")
            super().from_app(message, session)

    async def main() -> None:
        server_app, client_app = Flaky(), Recorder()
        acceptor = make_acceptor(server_app)
        await acceptor.start()
        initiator = make_initiator(client_app, acceptor.port, max_attempts=1)
        await initiator.start()
        await asyncio.wait_for(initiator.handle.wait_logged_on(), 5)
        for cl in (b"BOOM", b"OK"):
            initiator.handle.send(b"D", [(11, cl), (55, b"EUR/USD"), (54, b"1"), (60, format_utc_timestamp(0)),
                                         (38, b"1"), (40, b"1")])
        await until(lambda: len(client_app.app) == 1)
        assert client_app.app[0].get(11) == b"OK"
        server = acceptor.handle("DEMO")
        assert server.callback_errors == 1 and server.is_logged_on
        assert server.session.next_target_seq == 4  # both orders consumed their numbers
        await initiator.stop()
        await acceptor.stop()

    on_uvloop(main())
