"""A client that stops reading is conflated, then dropped, in bounded time; the other clients
keep receiving market data on time throughout."""

import asyncio
import socket
import time

from engine.config import parse_config
from feeds.sim_market import decode_sim_config
from fixserver.client import ClientApp
from fixserver.codec import encode
from fixserver.gateway import GatewayOptions, serve
from fixserver.md_book import md_request
from fixserver.session import Credentials, Role, SessionConfig, SessionID, format_utc_timestamp
from fixserver.store import MemoryStoreFactory
from fixserver.transport import Initiator
from tests.conftest import EXAMPLE_CONFIG, ROOT

SYMBOLS = [b"EUR/USD", b"GBP/USD", b"USD/JPY", b"XAU/USD", b"WTI"]


def _config():
    text = EXAMPLE_CONFIG.read_text()
    text = text.replace("heartbeat_s = 30\n", "heartbeat_s = 30\nmax_send_buffer_bytes = 262144\n"
                        "max_conflation_s = 2\nsocket_send_buffer_bytes = 16384\n", 1)  # fmt: skip
    cfg = parse_config(text)
    assert cfg.server.max_conflation_s == 2 and cfg.server.max_send_buffer_bytes == 262144
    return cfg


def _slow_client(port: int) -> socket.socket:
    """Logs on as RETAIL1, subscribes to everything, then never reads again."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", port))

    def header(seq):
        return [(49, b"RETAIL1"), (56, b"LAGG"), (34, seq), (52, format_utc_timestamp(time.time_ns()))]

    s.sendall(encode(b"A", header(1), [(98, b"0"), (108, b"30"), (141, b"Y"), (554, b"slow-pw")]))
    s.sendall(encode(b"V", header(2), md_request(b"all", SYMBOLS)))
    return s


async def test_slow_client_is_conflated_then_dropped_while_others_keep_receiving(tmp_path, monkeypatch):
    monkeypatch.setenv("LAGG_RETAIL1_PASSWORD", "slow-pw")
    cfg = _config()
    sim = decode_sim_config((ROOT / "configs" / "simulator.toml").read_text().replace("step_ms = 100", "step_ms = 10"))
    stop = asyncio.Event()
    options = GatewayOptions(port=0, metrics_port=-1, state_dir=tmp_path)
    task = asyncio.create_task(serve(cfg, sim, options, stop))
    await asyncio.wait_for(options.ready.wait(), 60)
    port = options.bound["fix"]

    fast = ClientApp([s.decode() for s in SYMBOLS])
    config = SessionConfig(
        SessionID("FIX.4.4", "DEMO", "LAGG"), Role.INITIATOR, heartbeat_s=30, reset_on_logon=True,
        credentials=Credentials("DEMO", "demo"),
    )  # fmt: skip
    initiator = Initiator(fast, config, MemoryStoreFactory(), "127.0.0.1", port, max_attempts=1)
    slow = _slow_client(port)
    try:
        await initiator.start()
        await asyncio.wait_for(fast.logged_on.wait(), 20)
        gateway = options.gateway
        assert gateway is not None
        for _ in range(100):
            if "RETAIL1" in gateway.handles and gateway.handles["RETAIL1"].is_logged_on:
                break
            await asyncio.sleep(0.05)
        slow_handle = gateway.handles["RETAIL1"]

        per_second = []
        dropped_after = None
        started = time.monotonic()
        while time.monotonic() - started < 20:
            before = fast.md_messages
            await asyncio.sleep(1.0)
            per_second.append(fast.md_messages - before)
            if dropped_after is None and not slow_handle.connected:
                dropped_after = time.monotonic() - started
            if dropped_after is not None and len(per_second) >= 3 and time.monotonic() - started > dropped_after + 2:
                break
        assert dropped_after is not None, f"slow client never dropped; conflated={gateway.hub.conflated}"
        assert dropped_after < 15, dropped_after
        assert gateway.hub.conflated > 0  # it was conflated before it was dropped
        drops = gateway.metrics.slow_logouts.labels(client="RETAIL1")._value.get()
        assert drops == 1
        # The well-behaved client never went a second without data, before, during and after.
        assert min(per_second) > 20, per_second
    finally:
        slow.close()
        await initiator.stop(logout_timeout_s=1)
        stop.set()
        await asyncio.wait_for(task, 30)
