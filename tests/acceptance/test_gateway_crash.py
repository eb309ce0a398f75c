"""kill -9 of the gateway during order flow, then a restart: no fill a client was told about is
lost, every journaled fill is still there, and the FIX sequence continues."""

import asyncio
import os
import signal
import subprocess
import sys

from engine.demo import free_port, wait_for_port
from engine.journal import Journal
from fixserver.client import ClientApp, OrderSpec, order_fields
from fixserver.session import Credentials, Role, SessionConfig, SessionID
from fixserver.store import MemoryStoreFactory
from fixserver.transport import Initiator
from tests.conftest import EXAMPLE_CONFIG, ROOT


def _start_gateway(port: int, state) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "engine.cli", "serve", "--config", str(EXAMPLE_CONFIG), "--sim",
         str(ROOT / "configs" / "simulator.toml"), "--port", str(port), "--metrics-port", "-1",
         "--state-dir", str(state), "--seconds", "120"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def _wait_port(port: int, gateway: subprocess.Popen) -> None:
    assert wait_for_port(port, gateway, timeout_s=60), "gateway did not come up"


async def _client(port: int, app: ClientApp) -> Initiator:
    config = SessionConfig(
        SessionID("FIX.4.4", "DEMO", "LAGG"), Role.INITIATOR, heartbeat_s=5, credentials=Credentials("DEMO", "demo"),
    )  # fmt: skip
    initiator = Initiator(app, config, MemoryStoreFactory(), "127.0.0.1", port, max_attempts=1)
    await initiator.start()
    await asyncio.wait_for(app.logged_on.wait(), 30)
    return initiator


async def test_kill_9_mid_order_flow_loses_no_reported_or_journaled_fill(tmp_path):
    port = free_port()
    gateway = _start_gateway(port, tmp_path)
    try:
        _wait_port(port, gateway)
        app = ClientApp(["EUR/USD"])
        initiator = await _client(port, app)
        await asyncio.sleep(1.0)  # quotes arrive
        sent = 0
        # Stream small market orders and kill the gateway while they are in flight.
        for n in range(200):
            initiator.handle.send(b"D", order_fields(OrderSpec("EUR/USD", "buy" if n % 2 else "sell", "1000"), app))
            sent += 1
            if n == 120:
                os.kill(gateway.pid, signal.SIGKILL)
            await asyncio.sleep(0.005)
        gateway.wait(timeout=10)
        reported = {r.get_str(17) for r in app.reports if r.get(150) == b"F"}
        seq_before = initiator.handle.session.next_target_seq
        await initiator.stop(logout_timeout_s=0.5)
        assert len(reported) > 10, "the gateway should have filled orders before the kill"

        journal = Journal(tmp_path / "journal.sqlite")
        journaled = {f.exec_id for f in journal.fills()}
        journal.close()
        assert reported <= journaled, f"reported but not journaled: {sorted(reported - journaled)[:5]}"

        # Restart on the same state: the journal keeps every fill, and the FIX sequence
        # continues where the killed process left it (no reset).
        gateway = _start_gateway(port, tmp_path)
        _wait_port(port, gateway)
        app2 = ClientApp(["EUR/USD"])
        config = SessionConfig(
            SessionID("FIX.4.4", "DEMO", "LAGG"), Role.INITIATOR, heartbeat_s=5,
            credentials=Credentials("DEMO", "demo"),
        )  # fmt: skip
        store = MemoryStoreFactory()
        again = Initiator(app2, config, store, "127.0.0.1", port, max_attempts=1)
        # Continue our side's sequence as a real client's persistent store would.
        again.handle.session.store.set_next_sender_seq(initiator.handle.session.next_sender_seq)
        again.handle.session.store.set_next_target_seq(seq_before)
        await again.start()
        await asyncio.wait_for(app2.logged_on.wait(), 30)
        await asyncio.sleep(0.5)
        assert again.handle.session.next_target_seq > seq_before  # continued, not reset to 1
        await again.stop(logout_timeout_s=1)
        journal = Journal(tmp_path / "journal.sqlite")
        assert journaled <= {f.exec_id for f in journal.fills()}
        journal.close()
    finally:
        if gateway.poll() is None:
            gateway.send_signal(signal.SIGINT)
            gateway.wait(timeout=20)
