"""The floor of the end-to-end benchmark: a plain uvloop TCP forwarder in its own process.

It stands where the gateway stands: the driver's "LP" connections write LP ticks to its LP port
and it writes every byte it reads, unchanged and unparsed, to each connection on its client port.
A tick's trip through it is the same two loopback hops, two socket reads and two event-loop
wake-ups as a tick-to-quote through the gateway, with no FIX, engine or fan-out work: with one
client connection, the lowest latency any gateway in this process layout could have (the echo
floor). With one connection per client (the fan-out floor) each tick is also written once per
client, the part of the fan-out that no single-process gateway can avoid.

``python -m benchmarks._e2e_floor [--seconds N]`` prints ``ports LP_PORT CLIENT_PORT`` once
listening, and exits after N seconds or on SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from typing import cast

import uvloop


class _Client(asyncio.Protocol):
    def __init__(self, clients: list[asyncio.Transport]) -> None:
        self.clients = clients
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.clients.append(self.transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.transport in self.clients:
            self.clients.remove(self.transport)


class _Lp(asyncio.Protocol):
    def __init__(self, clients: list[asyncio.Transport]) -> None:
        self.clients = clients

    def data_received(self, data: bytes) -> None:
        for transport in self.clients:
            transport.write(data)


async def _main(seconds: float) -> None:
    loop = asyncio.get_running_loop()
    clients: list[asyncio.Transport] = []
    lp_server = await loop.create_server(lambda: _Lp(clients), "127.0.0.1", 0)
    client_server = await loop.create_server(lambda: _Client(clients), "127.0.0.1", 0)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    lp_port = lp_server.sockets[0].getsockname()[1]
    client_port = client_server.sockets[0].getsockname()[1]
    print(f"ports {lp_port} {client_port}", flush=True)
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except TimeoutError:
        pass
    lp_server.close()
    client_server.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=600.0, help="exit after this long")
    args = parser.parse_args()
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(_main(args.seconds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
