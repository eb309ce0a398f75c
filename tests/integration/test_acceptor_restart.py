"""Crash recovery: kill -9 the acceptor mid-session, restart it on the same store, log on again.

The sequence numbers continue (no reset), and a ResendRequest for what the client "lost" is
answered from the SQLite store: execution reports (8) re-sent with 43=Y and 122=original
SendingTime, market data (W) and admin messages replaced by SequenceReset-GapFill (123=Y).
Everything is bounded: subprocess start, every read, the whole test.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from fixserver.codec import FrameDecoder, encode
from fixserver.message import FixMessage
from fixserver.session import format_utc_timestamp, parse_utc_timestamp

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "pw-Restart-42"  # distinctive, so we can check no log ever shows it

CONFIG = f"""
lps = []

[server]
host = "127.0.0.1"
port = 0
sender_comp_id = "LAGG"
heartbeat_s = 30

[[instruments]]
symbol = "EUR/USD"
tick_size = "0.00001"
qty_step = "1000"

[[tiers]]
name = "institutional"

[[clients]]
name = "Demo Broker"
sender_comp_id = "DEMO"
tier = "institutional"
password_sha256 = "{hashlib.sha256(PASSWORD.encode()).hexdigest()}"
"""


class AcceptorProcess:
    """``python -m fixserver.demo_acceptor`` in a subprocess; waits for its LISTENING line."""

    def __init__(self, config: Path, store: Path, log: Path) -> None:
        self.log = log.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "fixserver.demo_acceptor", "--config", str(config), "--port", "0",
             "--store", str(store)],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=self.log, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        assert self.proc.stdout is not None
        line = self._readline(timeout=30)
        assert line.startswith(b"LISTENING "), line
        self.port = int(line.split()[1])

    def _readline(self, timeout: float) -> bytes:
        import selectors

        sel = selectors.DefaultSelector()
        assert self.proc.stdout is not None
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        if not sel.select(timeout):
            self.kill()
            raise AssertionError("acceptor did not start in time")
        return self.proc.stdout.readline()

    def kill(self) -> None:
        """SIGKILL: no logout, no clean close, no last commit."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)
        self.log.close()

    def terminate(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=10)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
            self.log.close()
        return code


class RawClient:
    """A deliberately independent FIX client: codec + asyncio streams, its own sequence number."""

    def __init__(self, next_seq: int = 1) -> None:
        self.next_seq = next_seq
        self.decoder = FrameDecoder()
        self.inbox: list[FixMessage] = []

    async def connect(self, port: int) -> None:
        self.reader, self.writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 5)

    def send(self, msg_type: bytes, *body: tuple[int, bytes | int | str]) -> int:
        seq = self.next_seq
        self.next_seq += 1
        header = [(49, b"DEMO"), (56, b"LAGG"), (34, seq), (52, format_utc_timestamp(_now_ns()))]
        self.writer.write(encode(msg_type, header, list(body)))
        return seq

    async def read(self, count: int, timeout: float = 5.0) -> list[FixMessage]:
        """Exactly ``count`` more messages, or fail after ``timeout``."""
        async def fill() -> None:
            while len(self.inbox) < count:
                data = await self.reader.read(65536)
                if not data:
                    raise AssertionError(f"connection closed after {self.inbox}")
                self.inbox += self.decoder.feed(data)

        await asyncio.wait_for(fill(), timeout)
        got, self.inbox = self.inbox[:count], self.inbox[count:]
        return got

    async def closed(self, timeout: float = 5.0) -> bool:
        async def drain() -> None:
            while await self.reader.read(65536):
                pass

        try:
            await asyncio.wait_for(drain(), timeout)
        except (ConnectionResetError, BrokenPipeError):
            pass
        return True

    def close(self) -> None:
        self.writer.close()


def _now_ns() -> int:
    import time

    return time.time_ns()


def order(client: RawClient, cl_ord_id: bytes) -> int:
    return client.send(b"D", (11, cl_ord_id), (55, b"EUR/USD"), (54, b"1"),
                       (60, format_utc_timestamp(_now_ns())), (38, b"1000000"), (40, b"1"))


def summary(messages: list[FixMessage]) -> list[tuple[bytes, int | None, bytes | None, bytes | None]]:
    return [(m.msg_type, m.seq_num, m.get(43), m.get(36) or m.get(11)) for m in messages]


@pytest.mark.timeout(120)
def test_kill_9_restart_continues_sequences_and_resends_from_the_store(tmp_path: Path) -> None:
    config = tmp_path / "lagg.toml"
    config.write_text(CONFIG)
    store = tmp_path / "var" / "fix_store.sqlite"
    log = tmp_path / "acceptor.log"

    async def main() -> None:
        first = AcceptorProcess(config, store, log)
        try:
            client = RawClient()
            await client.connect(first.port)
            client.send(b"A", (98, b"0"), (108, b"30"), (553, b"demo"), (554, PASSWORD))
            (logon,) = await client.read(1)
            assert (logon.msg_type, logon.seq_num) == (b"A", 1)
            order(client, b"C1")
            order(client, b"C2")
            got = await client.read(4)
            assert summary(got) == [(b"W", 2, None, None), (b"8", 3, None, b"C1"),
                                    (b"W", 4, None, None), (b"8", 5, None, b"C2")]
            original_8s = {m.seq_num: m.get(52) for m in got if m.msg_type == b"8"}
        finally:
            first.kill()  # mid-session: no Logout, no clean shutdown
        assert await client.closed()
        client.close()

        second = AcceptorProcess(config, store, log)
        try:
            client2 = RawClient(next_seq=client.next_seq)  # the client keeps its own sequence
            await client2.connect(second.port)
            client2.send(b"A", (98, b"0"), (108, b"30"), (554, PASSWORD))
            (logon2,) = await client2.read(1)
            assert logon2.msg_type == b"A"
            assert logon2.seq_num == 6  # continued after 5: no reset
            assert logon2.get(141) is None
            # The client pretends it lost everything after its Logon: 2..end.
            client2.send(b"2", (7, b"2"), (16, b"0"))
            resent = await client2.read(5)
            assert summary(resent) == [
                (b"4", 2, b"Y", b"3"),  # W -> gap fill
                (b"8", 3, b"Y", b"C1"),  # execution report re-sent
                (b"4", 4, b"Y", b"5"),
                (b"8", 5, b"Y", b"C2"),
                (b"4", 6, b"Y", b"7"),  # our new Logon (admin) -> gap fill
            ]
            for m in resent:
                if m.msg_type == b"8":
                    assert m.get(122) == original_8s[m.seq_num]  # OrigSendingTime = first 52
                    orig, sent = parse_utc_timestamp(m.get(122)), parse_utc_timestamp(m.get(52))
                    assert orig is not None and sent is not None and orig <= sent
                else:
                    assert m.get(123) == b"Y"
            # The session goes on with the next numbers on both sides.
            order(client2, b"C3")
            after = await client2.read(2)
            assert summary(after) == [(b"W", 7, None, None), (b"8", 8, None, b"C3")]
            client2.send(b"5")
            (bye,) = await client2.read(1)
            assert (bye.msg_type, bye.seq_num) == (b"5", 9)
            assert await client2.closed()
            client2.close()
        finally:
            assert second.terminate() == 0

    asyncio.run(asyncio.wait_for(main(), 90))
    text = log.read_bytes()
    assert PASSWORD.encode() not in text
    assert b"logged on" in text
