"""/metrics over loopback for a gateway built the way fixserver.gateway.serve() builds it: rejected
logons, client send buffers and LP reconnect attempts, as Prometheus scrapes them. Every socket is
on 127.0.0.1 and every wait is bounded."""

from __future__ import annotations

import asyncio
import socket
import time
import urllib.request
from collections.abc import Coroutine
from typing import Any

import msgspec
import pytest
import uvloop

from engine.batch import UpdateBatch
from engine.book import Engine
from engine.config import parse_config
from engine.metrics import Metrics
from feeds.lp_feed import LpFeed
from fixserver.codec import FrameDecoder, encode
from fixserver.message import FixMessage
from fixserver.session import Credentials, Role, SessionConfig, SessionID, format_utc_timestamp
from fixserver.store import MemoryStoreFactory
from fixserver.transport import Acceptor, Application, Initiator
from tests.conftest import EXAMPLE_CONFIG

PASSWORD = "metrics-test-pw"


def on_uvloop(coro: Coroutine[Any, Any, Any], timeout: float = 20.0) -> Any:
    async def bounded() -> Any:
        return await asyncio.wait_for(coro, timeout)

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(bounded())


async def scrape(port: int) -> str:
    # urllib blocks: in a thread, so the acceptor keeps running on the loop meanwhile.
    def get() -> str:
        return urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()  # type: ignore[no-any-return]

    return await asyncio.to_thread(get)


async def raw_logon(port: int, sender: bytes, password: bytes) -> list[FixMessage]:
    """One Logon from a hand-rolled client; what comes back before the acceptor closes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    header = [(49, sender), (56, b"LAGG"), (34, b"1"), (52, format_utc_timestamp(time.time_ns()))]
    writer.write(encode(b"A", header, [(98, b"0"), (108, b"30"), (554, password)]))
    decoder, got = FrameDecoder(), []
    while data := await asyncio.wait_for(reader.read(65536), 5):
        got += decoder.feed(data)
    writer.close()
    return got


def test_rejected_logons_and_client_send_buffers_on_the_metrics_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAGG_RETAIL1_PASSWORD", PASSWORD)
    cfg = parse_config(EXAMPLE_CONFIG.read_text())
    cfg = msgspec.structs.replace(cfg, server=msgspec.structs.replace(cfg.server, host="127.0.0.1"))

    async def main() -> None:
        metrics = Metrics()
        engine = Engine(cfg)
        acceptor = Acceptor.from_config(cfg, Application(), store_factory=MemoryStoreFactory(), port=0)
        await acceptor.start()
        metrics.attach(engine=engine, acceptor=acceptor)
        server = metrics.serve("127.0.0.1", 0)
        port = server.server_address[1]
        client = None
        try:
            assert "lagg_logon_failures_total 0.0" in await scrape(port)
            wrong = await raw_logon(acceptor.port, b"RETAIL1", b"guess")  # refused by the session
            unknown = await raw_logon(acceptor.port, b"NOBODY", PASSWORD.encode())  # by the acceptor
            assert [m.msg_type for m in wrong + unknown] == [b"5", b"5"]
            body = await scrape(port)
            assert "lagg_logon_failures_total 2.0" in body
            assert 'lagg_client_send_buffer_bytes{client="RETAIL1"} 0.0' in body
            assert PASSWORD not in body
            # A client that logs on is no failure; its send buffer is exported as its session's.
            session = SessionConfig(SessionID("FIX.4.4", "RETAIL1", cfg.server.sender_comp_id), Role.INITIATOR,
                                    credentials=Credentials(None, PASSWORD))  # fmt: skip
            client = Initiator(Application(), session, MemoryStoreFactory(), "127.0.0.1", acceptor.port, max_attempts=1)
            await client.start()
            await asyncio.wait_for(client.handle.wait_logged_on(), 5)
            body = await scrape(port)
            assert "lagg_logon_failures_total 2.0" in body
            handle = acceptor.handle("RETAIL1")
            assert handle.is_logged_on
            assert f'lagg_client_send_buffer_bytes{{client="RETAIL1"}} {float(handle.buffered_bytes)}' in body
        finally:
            if client is not None:
                await client.stop(logout_timeout_s=1)
            await acceptor.stop(logout_timeout_s=1)
            server.shutdown()

    on_uvloop(main())


def _refusing_port() -> int:
    """A loopback port nobody listens on (bound, then closed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_lp_reconnect_attempts_are_the_feed_initiators_connects_after_the_first() -> None:
    cfg = parse_config(EXAMPLE_CONFIG.read_text())
    lp = msgspec.structs.replace(cfg.lps[0], host="127.0.0.1", port=_refusing_port())
    feed = LpFeed(cfg, lp, UpdateBatch())
    metrics = Metrics()
    metrics.attach(feeds=[feed])

    async def main() -> Initiator:
        initiator = feed.initiator(backoff_initial_s=0.01, backoff_max_s=0.02, max_attempts=4)
        await initiator.start()
        deadline = time.monotonic() + 5
        while initiator.connect_attempts < 4 or initiator._task is not None and not initiator._task.done():
            assert time.monotonic() < deadline, "the initiator did not give up after 4 refused connects"
            await asyncio.sleep(0.01)
        await initiator.stop()
        return initiator

    initiator = on_uvloop(main())
    assert initiator.connect_attempts == 4
    assert metrics.registry.get_sample_value("lagg_lp_reconnects_total", {"lp": "LP1"}) == 3
