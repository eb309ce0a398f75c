"""A small runnable FIX acceptor: the session layer, store and transport with a toy application.

    python -m fixserver.demo_acceptor --config configs/example.toml [--port 0] [--store PATH]

It serves every ``[[clients]]`` entry of the config (authenticated by its password), validates
inbound messages against the FIX 4.4 dictionary, and answers each NewOrderSingle (D) with a market
data snapshot (W, not stored: a resend replaces it with a gap fill) and an ExecutionReport (8,
stored: a resend repeats it with 43=Y/122). It prints ``LISTENING <port>`` once it accepts
connections, so a test (the acceptor restart test) can start it on port 0 and find it. SIGTERM or
SIGINT logs every session out and exits.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys

from engine.config import load_config
from fixserver.dictionary import validate
from fixserver.message import FixMessage
from fixserver.store import SqliteStoreFactory
from fixserver.transport import Acceptor, Application, SessionHandle, run

__all__ = ["DemoApplication", "main"]


class DemoApplication(Application):
    """Fills every order in full at a fixed price; enough to produce resendable reports."""

    def __init__(self) -> None:
        self.orders = 0

    def from_app(self, message: FixMessage, session: SessionHandle) -> None:
        if message.msg_type != b"D":
            session.business_reject(message, 3, "Unsupported message type in the demo acceptor")
            return
        self.orders += 1
        symbol = message.get(55) or b"EUR/USD"
        cl_ord_id = message.get(11) or b""
        qty = message.get(38) or b"0"
        session.send(b"W", [(262, b"DEMO"), (55, symbol), (268, 2), (269, b"0"), (270, b"1.10000"), (271, b"1000000"),
                            (269, b"1"), (270, b"1.10002"), (271, b"1000000")])
        session.send(b"8", [
            (37, b"ORD-%d" % self.orders), (11, cl_ord_id), (17, b"EXEC-%d" % self.orders), (150, b"F"),
            (39, b"2"), (55, symbol), (54, message.get(54) or b"1"), (38, qty), (32, qty), (31, b"1.10002"),
            (151, b"0"), (14, qty), (6, b"1.10002"),
        ])


async def _serve(args: argparse.Namespace) -> None:
    config = load_config(args.config)
    store = SqliteStoreFactory(args.store or config.server.store_path)
    acceptor = Acceptor.from_config(config, DemoApplication(), store_factory=store, port=args.port,
                                    validator=validate)
    await acceptor.start()
    print(f"LISTENING {acceptor.port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await acceptor.stop()
    store.close()


def main(argv: list[str] | None = None) -> int:
    """Entry point: parse arguments, serve until SIGTERM/SIGINT."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True)
    parser.add_argument("--port", type=int, default=None, help="override server.port (0: any free port)")
    parser.add_argument("--store", default=None, help="override server.store_path")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s")
    run(lambda: _serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
