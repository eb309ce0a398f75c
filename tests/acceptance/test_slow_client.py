"""A client that stops reading is conflated, then logged out (a FIX Logout behind its backlog)
in bounded time; one that never reads again is dropped; the other clients keep receiving market
data on time throughout."""

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


def _slow_client(port: int, comp_id: bytes, password: bytes) -> socket.socket:
    """Logs on, subscribes to everything, then reads nothing (until the test says so)."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", port))

    def header(seq):
        return [(49, comp_id), (56, b"LAGG"), (34, seq), (52, format_utc_timestamp(time.time_ns()))]

    s.sendall(encode(b"A", header(1), [(98, b"0"), (108, b"30"), (141, b"Y"), (554, password)]))
    s.sendall(encode(b"V", header(2), md_request(b"all", SYMBOLS)))
    return s


def _read_to_end(s: socket.socket, limit_s: float) -> bytes:
    """Everything the gateway sent, until it closes the connection (or ``limit_s`` passes)."""
    s.settimeout(limit_s)
    data = bytearray()
    while chunk := s.recv(65536):
        data += chunk
    return bytes(data)


async def test_slow_clients_are_conflated_then_logged_out_while_others_keep_receiving(tmp_path, monkeypatch):
    monkeypatch.setenv("LAGG_RETAIL1_PASSWORD", "slow-pw")
    monkeypatch.setenv("LAGG_FUNDA_PASSWORD", "dead-pw")
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
    slow = _slow_client(port, b"RETAIL1", b"slow-pw")  # stops reading, catches up once logged out
    dead = _slow_client(port, b"FUNDA", b"dead-pw")  # never reads again
    loop = asyncio.get_running_loop()
    try:
        await initiator.start()
        await asyncio.wait_for(fast.logged_on.wait(), 20)
        gateway = options.gateway
        assert gateway is not None
        for _ in range(100):
            if all(c in gateway.handles and gateway.handles[c].is_logged_on for c in ("RETAIL1", "FUNDA")):
                break
            await asyncio.sleep(0.05)
        slow_handle, dead_handle = gateway.handles["RETAIL1"], gateway.handles["FUNDA"]
        logouts = gateway.metrics.slow_logouts

        per_second = []
        logged_out_after = dropped_after = None
        slow_read = None
        started = time.monotonic()
        while time.monotonic() - started < 25:
            before = fast.md_messages
            await asyncio.sleep(1.0)
            per_second.append(fast.md_messages - before)
            elapsed = time.monotonic() - started
            if slow_read is None and logouts.labels(client="RETAIL1")._value.get() == 1:
                logged_out_after = elapsed
                slow_read = loop.run_in_executor(None, _read_to_end, slow, 15.0)  # now it catches up
            if dropped_after is None and not dead_handle.connected:
                dropped_after = elapsed
            if slow_read is not None and slow_read.done() and dropped_after is not None and len(per_second) >= 3:
                break
        assert logged_out_after is not None, f"slow client never logged out; conflated={gateway.hub.conflated}"
        assert logged_out_after < 12, logged_out_after
        assert gateway.hub.conflated > 0  # both were conflated before anything else
        # The client that caught up read its backlog, then our Logout saying why, then the end.
        backlog = await asyncio.wait_for(slow_read, 20)
        last = [f for f in backlog.split(b"\x018=FIX.4.4")[-1].split(b"\x01") if f]
        assert b"35=5" in last and any(f.startswith(b"58=slow consumer") for f in last), last
        assert not slow_handle.connected
        # The one that never read was logged out too, then dropped when the handshake and the
        # connection's close grace ran out.
        assert logouts.labels(client="FUNDA")._value.get() == 1
        assert dropped_after is not None and dropped_after < 20, dropped_after
        # The well-behaved client never went a second without data, before, during and after.
        assert min(per_second) > 20, per_second
    finally:
        slow.close()
        dead.close()
        await initiator.stop(logout_timeout_s=1)
        stop.set()
        await asyncio.wait_for(task, 30)
