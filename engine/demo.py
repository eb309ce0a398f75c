"""``make demo``: the whole system on its embedded default, then a client that shows it working.

Starts three simulated LPs as FIX 4.4 acceptors (``lagg lp-sim``) and the gateway (LP feeds,
engine, FIX acceptor, metrics endpoint; ``lagg serve --market fix``), each its own process on
free loopback ports with a throw-away state directory, then runs the demo client in this
process: it logs on as DEMO, streams live quotes for the example instruments, sends a market
order and two limit orders, and prints the fills. Bounded in time; Ctrl-C stops everything.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

__all__ = ["free_port", "run_demo", "wait_for_port"]


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (for demos and tests)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, proc: subprocess.Popen[bytes], timeout_s: float) -> bool:
    """True once ``port`` accepts connections; False if ``proc`` exits first or time runs out."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return True
        except OSError:
            time.sleep(0.1)
    return False


def run_demo(config: str, sim: str, seconds: float) -> int:
    from fixserver.client import OrderSpec, run_client
    from fixserver.transport import run

    fix_port, metrics_port = free_port(), free_port()
    lp_ports = [f"{name}={free_port()}" for name in ("LP1", "LP2", "LP3")]
    lp_args = [arg for pair in lp_ports for arg in ("--lp-port", pair)]
    state = tempfile.mkdtemp(prefix="lagg-demo-")
    # The LPs are their own process speaking FIX 4.4, as real LPs would be.
    lps = subprocess.Popen(
        [sys.executable, "-m", "engine.cli", "lp-sim", "--config", config, "--sim", sim,
         "--seconds", str(seconds + 90), *lp_args],
    )  # fmt: skip
    server = subprocess.Popen(
        [sys.executable, "-m", "engine.cli", "serve", "--config", config, "--sim", sim, "--port", str(fix_port),
         "--metrics-port", str(metrics_port), "--state-dir", state, "--seconds", str(seconds + 60),
         "--market", "fix", *lp_args],
    )  # fmt: skip
    try:
        print(f"demo: LPs starting ({', '.join(lp_ports)}); gateway starting "
              f"(FIX 127.0.0.1:{fix_port}, metrics http://127.0.0.1:{metrics_port}/metrics)")
        if not wait_for_port(fix_port, server, timeout_s=120):
            print("demo: the gateway did not start", file=sys.stderr)
            return 1
        orders = [
            (3.0, OrderSpec("EUR/USD", "buy", "1000000")),  # market IOC
            (5.0, OrderSpec("EUR/USD", "sell", "2000000", "limit", "day", "touch")),  # at the bid: fills
            (7.0, OrderSpec("WTI", "buy", "100", "limit", "ioc", "touch")),  # through zero, if it got there
        ]
        os.environ.setdefault("LAGG_DEMO_PASSWORD", "demo")
        app = run(
            lambda: run_client(
                "127.0.0.1", fix_port, "DEMO", "LAGG", os.environ["LAGG_DEMO_PASSWORD"],
                ["EUR/USD", "GBP/USD", "USD/JPY", "XAU/USD", "WTI"], seconds, orders,
            )
        )  # fmt: skip
        fills = sum(1 for r in app.reports if r.get(150) == b"F")
        print(f"demo: {app.md_messages} market-data messages, {fills} fills, metrics at :{metrics_port}")
        return 0 if app.md_messages and fills else 1
    except KeyboardInterrupt:
        print("demo: interrupted")
        return 130
    finally:
        for proc in (server, lps):
            stop_process(proc)


def stop_process(proc: subprocess.Popen[bytes], timeout_s: float = 15.0) -> None:
    """SIGINT (a clean stop: logouts, journal closed), then SIGKILL if it is still up after ``timeout_s``."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=timeout_s)
