"""FIX session-level test cases against the acceptor over a real loopback socket, as the gateway
runs it (``Acceptor`` without a dictionary validator): a raw client writes exact bytes and reads
what comes back. Every wait is bounded."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from engine.config import parse_config
from fixserver.codec import FrameDecoder, encode
from fixserver.message import FixMessage
from fixserver.session import format_utc_timestamp
from fixserver.store import MemoryStoreFactory, SqliteStoreFactory
from fixserver.transport import Acceptor
from tests.conftest import one_client_config
from tests.integration.test_transport_loopback import PASSWORD, Recorder, make_acceptor, on_uvloop


@asynccontextmanager
async def logged_on_client(acceptor: Acceptor) -> AsyncIterator[RawClient]:
    """``acceptor`` started and a :class:`RawClient` logged on to it; both closed after."""
    await acceptor.start()
    client = await RawClient.connect(acceptor.port)
    try:
        await client.logon()
        yield client
    finally:
        client.close()
        await acceptor.stop()


class RawClient:
    """A FIX peer that writes the messages a test gives it, numbered in order, and reads replies."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.decoder = FrameDecoder()
        self.seq = 0
        self.received: list[FixMessage] = []

    @classmethod
    async def connect(cls, port: int) -> RawClient:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    def send(self, msg_type: bytes, *body: tuple[int, bytes]) -> None:
        self.seq += 1
        stamp = format_utc_timestamp(time.time_ns())
        header: list[tuple[int, bytes | int]] = [(49, b"DEMO"), (56, b"LAGG"), (34, self.seq), (52, stamp)]
        self.writer.write(encode(msg_type, header, list(body)))

    async def expect(self, msg_type: bytes, timeout: float = 5.0) -> FixMessage:
        """The next message of ``msg_type`` (others are kept in ``received``)."""

        async def read() -> FixMessage:
            while True:
                for i, m in enumerate(self.received):
                    if m.msg_type == msg_type:
                        return self.received.pop(i)
                data = await self.reader.read(65536)
                if not data:
                    raise ConnectionError(f"closed while waiting for 35={msg_type.decode()}")
                self.received += self.decoder.feed(data)

        return await asyncio.wait_for(read(), timeout)

    async def logon(self) -> None:
        self.send(b"A", (98, b"0"), (108, b"30"), (554, PASSWORD.encode()))
        await self.expect(b"A")

    def close(self) -> None:
        self.writer.close()


def test_14b_a_test_request_without_test_req_id_gets_a_reject_and_the_session_goes_on() -> None:
    async def main() -> FixMessage:
        acceptor = make_acceptor(Recorder())
        async with logged_on_client(acceptor) as client:
            client.send(b"1")  # TestRequest without its required TestReqID (112)
            reject = await client.expect(b"3")
            client.send(b"1", (112, b"PING"))
            heartbeat = await client.expect(b"0")
            assert heartbeat.get(112) == b"PING"
            assert acceptor.handle("DEMO").is_logged_on
            return reject

    reject = on_uvloop(main())
    assert (reject.get(45), reject.get(371), reject.get(372), reject.get(373)) == (b"2", b"112", b"1", b"1")


CONFIG = one_client_config(PASSWORD)


def test_2l_14_the_acceptor_made_from_the_config_rejects_bad_session_messages_at_session_level() -> None:
    """The gateway's acceptor (``Acceptor.from_config``): an invalid MsgType is 373=11 (2l) and a
    malformed admin message gets the Reject its 373 reason names (14), while the application
    still hears about every application message of a real FIX 4.4 type."""
    app = Recorder()

    async def main() -> list[FixMessage]:
        acceptor = Acceptor.from_config(parse_config(CONFIG), app, store_factory=MemoryStoreFactory(), port=0)
        async with logged_on_client(acceptor) as client:
            client.send(b"ZZ", (58, b"no such type"))  # 2
            client.send(b"1", (112, b"A"), (112, b"B"))  # 3: TestReqID twice
            client.send(b"2", (7, b"one"), (16, b"0"))  # 4: BeginSeqNo not a number
            client.send(b"0", (55, b"EUR/USD"))  # 5: Symbol is no Heartbeat field
            rejects = [await client.expect(b"3") for _ in range(4)]
            client.send(b"1", (112, b"PING"))
            assert (await client.expect(b"0")).get(112) == b"PING"
            assert acceptor.handle("DEMO").is_logged_on
            return rejects

    rejects = on_uvloop(main())
    got = [(r.get(45), r.get(371), r.get(372), r.get(373)) for r in rejects]
    assert got == [
        (b"2", b"35", b"ZZ", b"11"),
        (b"3", b"112", b"1", b"13"),
        (b"4", b"7", b"2", b"6"),
        (b"5", b"55", b"0", b"2"),
    ]
    assert not any(m.msg_type == b"ZZ" for m in app.app)


def test_a_sequence_reset_during_the_session_restarts_both_sequences_in_the_sqlite_store(tmp_path) -> None:
    """A Logon with 141=Y while logged on, over a socket and the store the gateway uses: both
    sides continue from 1, and the store keeps the new numbers (a restart would go on from them)."""

    async def main() -> tuple[FixMessage, FixMessage, int, int]:
        factory = SqliteStoreFactory(tmp_path / "store.sqlite")
        acceptor = make_acceptor(Recorder(), store_factory=factory)
        async with logged_on_client(acceptor) as client:
            for n in range(3):
                client.send(b"1", (112, b"T%d" % n))
                await client.expect(b"0")
            client.seq = 0
            client.send(b"A", (98, b"0"), (108, b"30"), (141, b"Y"))
            answer = await client.expect(b"A")
            client.send(b"1", (112, b"AFTER"))
            heartbeat = await client.expect(b"0")
            store = acceptor.handle("DEMO").session.store
            return answer, heartbeat, store.next_sender_seq, store.next_target_seq

    answer, heartbeat, next_sender, next_target = on_uvloop(main())
    assert (answer.get(34), answer.get(141)) == (b"1", b"Y")
    assert (heartbeat.get(34), heartbeat.get(112)) == (b"2", b"AFTER")
    assert (next_sender, next_target) == (3, 3)
