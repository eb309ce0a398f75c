"""An LP feed over a real initiator and session against a scripted LP on 127.0.0.1: the LP's bytes
(and sequence numbers) are whatever each test writes, so misbehaving LPs can be played exactly."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence

import msgspec
import pytest

from engine.batch import UpdateBatch
from engine.book import Engine
from engine.config import Config, parse_config
from feeds import md_decode
from feeds.lp_feed import LpFeed
from fixserver.codec import FrameDecoder, encode
from fixserver.message import FixMessage
from fixserver.session import format_utc_timestamp
from fixserver.transport import Initiator
from tests.conftest import EXAMPLE_CONFIG

RAW_TIER = '\n[[tiers]]\nname = "raw"\nmode = "full_depth"\ndepth = 20\n'
SYMBOLS = [b"EUR/USD", b"GBP/USD", b"USD/JPY", b"XAU/USD", b"WTI"]
BIDS = [b"1.08500", b"1.27000", b"150.000", b"2400.00", b"-1.00"]
ASKS = [b"1.08510", b"1.27010", b"150.010", b"2400.10", b"-0.90"]

Fields = Sequence[tuple[int, bytes]]


def config() -> Config:
    return parse_config(EXAMPLE_CONFIG.read_text().replace("# --- clients", RAW_TIER + "\n# --- clients"))


def snapshot(instr: int, bid: bytes | None = None, ask: bytes | None = None) -> list[tuple[int, bytes]]:
    return [(262, b"%d" % instr), (55, SYMBOLS[instr]), (268, b"2"),
            (269, b"0"), (270, bid or BIDS[instr]), (271, b"1000000"), (278, b"b0"),
            (269, b"1"), (270, ask or ASKS[instr]), (271, b"1000000"), (278, b"a0")]  # fmt: skip


class ScriptedLp:
    """A FIX acceptor that answers Logon, TestRequest and Logout and sends what the test says."""

    def __init__(self, on_logon: Callable[[ScriptedLp], None] | None = None) -> None:
        self.seq = 0
        self.received: list[FixMessage] = []
        self.connections = 0
        self.writer: asyncio.StreamWriter | None = None
        self.logged_on = asyncio.Event()
        self.on_logon = on_logon
        self.port = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self.writer is not None:
            self.writer.close()
        if self._server is not None:
            self._server.close()

    def frame(self, kind: bytes, fields: Fields, seq: int | None = None, possdup: bool = False) -> bytes:
        if seq is None:
            self.seq += 1
            seq = self.seq
        header = [(49, b"LP1"), (56, b"LAGG"), (34, b"%d" % seq)]
        stamp = format_utc_timestamp(time.time_ns())
        if possdup:
            header += [(43, b"Y"), (122, stamp)]
        return encode(kind, [*header, (52, stamp)], list(fields))

    def send(self, kind: bytes, fields: Fields, seq: int | None = None, possdup: bool = False) -> None:
        assert self.writer is not None
        self.writer.write(self.frame(kind, fields, seq, possdup))

    def requests(self, kind: bytes = b"V") -> list[FixMessage]:
        return [m for m in self.received if m.msg_type == kind]

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.writer, self.seq = writer, 0
        decoder = FrameDecoder(1 << 22)
        while data := await reader.read(65536):
            for m in decoder.feed(data):
                self.received.append(m)
                if m.msg_type == b"A":
                    self.send(b"A", [(98, b"0"), (108, m.get(108) or b"30"), (141, b"Y")])
                    self.logged_on.set()
                    if self.on_logon is not None:
                        self.on_logon(self)
                elif m.msg_type == b"1":
                    self.send(b"0", [(112, m.get(112) or b"")])
                elif m.msg_type == b"5":
                    self.send(b"5", [])
        self.writer = None


class OneFeed:
    """One LpFeed on a real initiator, with the gateway's loop turn (apply, expire) in miniature."""

    def __init__(self, cfg: Config, port: int, **initiator_kw: object) -> None:
        lp = msgspec.structs.replace(cfg.lps[0], port=port, host="127.0.0.1")
        self.engine = Engine(cfg)
        self.batch = UpdateBatch(4096)
        self.wakeup: asyncio.Future[None] | None = None  # the gateway's: resolved by a read with rows
        self.feed = LpFeed(cfg, lp, self.batch, on_rows=self._rows)
        kw: dict[str, object] = {"backoff_initial_s": 0.05, "backoff_max_s": 0.2, **initiator_kw}
        self.initiator: Initiator = self.feed.initiator(**kw)
        self.bids_seen: list[int] = []  # EUR/USD best bids of the raw tier, turn by turn

    def turn(self) -> None:
        now = self.feed.clock.now_ns()
        self.engine.apply(self.batch, now)
        self.batch.clear()
        self.engine.expire(now)
        bids = self.engine.quote("raw", "EUR/USD").bids
        if bids:
            self.bids_seen.append(bids[0][0])

    def _rows(self) -> None:
        if self.wakeup is not None:
            self._wake(self.wakeup)

    @staticmethod
    def _wake(wakeup: asyncio.Future[None]) -> None:
        if not wakeup.done():
            wakeup.set_result(None)

    async def run(self, stop: asyncio.Event) -> None:
        """The gateway's loop shape: the turn runs as soon as a read brought rows (before the
        session's deferred bookkeeping of that read), or every 20 ms."""
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            self.turn()
            wakeup = self.wakeup = loop.create_future()
            timer = loop.call_later(0.02, self._wake, wakeup)
            await wakeup
            timer.cancel()


async def until(pred: Callable[[], bool], timeout: float = 5.0) -> None:
    end = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < end, "timed out"
        await asyncio.sleep(0.005)


class Harness:
    def __init__(self, lp: ScriptedLp, one: OneFeed) -> None:
        self.lp, self.one = lp, one
        self.stop = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    @classmethod
    async def up(cls, lp: ScriptedLp | None = None, **initiator_kw: object) -> Harness:
        """Connected, logged on, subscribed and (with a snapshot per instrument) up."""
        lp = lp or ScriptedLp()
        await lp.start()
        h = cls(lp, OneFeed(config(), lp.port, **initiator_kw))
        h.task = asyncio.create_task(h.one.run(h.stop))
        await h.one.initiator.start()
        await until(lambda: len(lp.requests()) >= 5)
        for n in range(5):
            lp.send(b"W", snapshot(n))
        await until(lambda: h.one.feed.up)
        return h

    async def close(self) -> None:
        await self.one.initiator.stop(logout_timeout_s=0.3)
        self.stop.set()
        if self.task is not None:
            await self.task
        await self.lp.stop()


@pytest.fixture(autouse=True, scope="module")
def _compiled() -> None:
    md_decode.warm_up()  # a first-time JIT compile inside a timed test would stall its loop


async def test_an_lp_that_logs_us_out_at_once_is_retried_with_a_growing_backoff() -> None:
    # The LP accepts every Logon and logs the session out straight away ("not entitled"). The
    # backoff is reset only by a session that stayed up (a heartbeat interval), so the retries
    # slow down instead of hammering the LP every backoff_initial_s.
    def kick(lp: ScriptedLp) -> None:
        lp.send(b"5", [(58, b"market data not entitled")])

    lp = ScriptedLp(on_logon=kick)
    await lp.start()
    one = OneFeed(config(), lp.port, backoff_initial_s=0.05, backoff_max_s=1.0, backoff_jitter=0.0)
    await one.initiator.start()
    await asyncio.sleep(1.2)
    await one.initiator.stop(logout_timeout_s=0.2)
    await lp.stop()
    delays = one.initiator.delays
    assert lp.connections >= 3
    assert delays[:4] == [0.1, 0.2, 0.4, 0.8]
    assert lp.connections <= 6


async def test_an_oversized_message_drops_the_connection_at_once_and_the_lp_goes_down() -> None:
    h = await Harness.up()
    big = h.lp.frame(b"W", [*snapshot(0)[:2], (58, b"x" * (1 << 20)), *snapshot(0)[2:]])
    sent = time.monotonic()
    assert h.lp.writer is not None
    h.lp.writer.write(big)
    await until(lambda: not h.one.initiator.handle.connected, timeout=2.0)
    assert time.monotonic() - sent < 1.0  # not after a TestRequest timeout
    assert not h.one.feed.up and h.one.feed.decoder.pending == 0
    await h.close()


async def test_market_data_replayed_with_a_low_msgseqnum_is_never_priced() -> None:
    # "MsgSeqNum too low" without PossDupFlag: the session logs the LP out, and the replayed
    # price must not be quoted in between (market data is read before the session sees it).
    h = await Harness.up()
    await until(lambda: bool(h.one.bids_seen))
    x = [(262, b"0"), (268, b"1"), (279, b"1"), (269, b"0"), (278, b"b0"), (270, b"1.07000"), (271, b"1000000")]
    h.lp.send(b"X", x, seq=3)
    await until(lambda: any(m.msg_type == b"5" for m in h.lp.received), 2.0)
    await asyncio.sleep(0.05)
    assert 107000 not in h.one.bids_seen and set(h.one.bids_seen) == {108500}
    await h.close()
