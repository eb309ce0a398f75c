"""The end-to-end benchmark's driver: one uvloop process that plays every LP and every client.

Towards the gateway it is 10 LP FIX acceptors (the gateway's LP feeds log on to them and
subscribe) and 20 FIX client sessions (initiators that log on to the gateway and subscribe to
every instrument, incremental). Towards the floor's forwarder it opens the same 10 "LP"
connections and one "client" connection (the echo floor) or 20 (the fan-out floor) and writes
the very same LP tick bytes, so every run pays the same driver cost per tick and per client
read: one template fill and one ``write`` on the LP side, one timestamp per read and a few
``bytes.find`` per message on the client side.

Timing: a tick's send time is ``perf_counter_ns()`` just before its LP message is written; a
read's receive time is ``perf_counter_ns()`` on entry to ``data_received``. Reads are only
queued there and parsed once the loop has delivered every ready socket (``call_soon``), so the
parsing of one client's messages does not delay the timestamp of the next client's read.
"""

from __future__ import annotations

import asyncio
import time
from array import array
from collections.abc import Callable
from typing import cast

import numpy as np

from benchmarks import _e2e_wire as wire

_W, _X, _EXEC, _LOGON, _TEST, _LOGOUT = b"W", b"X", b"8", b"A", b"1", b"5"
_REJECTS = (b"3", b"j", b"Y", b"9")
KEEPALIVE_S = 10.0  # a heartbeat on any session that sent nothing for this long


class Recorder:
    """Send times per (instrument, k) and the latency samples of the phase being measured."""

    def __init__(self, max_ticks: int, max_orders: int) -> None:
        per_instr = max_ticks // wire.N_INSTR + 2
        self.send_ns = np.zeros((wire.N_INSTR, per_instr), np.int64)  # 0: not a measured tick
        self.first_ns = np.zeros((wire.N_INSTR, per_instr), np.int64)  # first client to show it
        self.tick_samples = array("q")  # every client's receipt of a measured tick
        self.order_send_ns = np.zeros(max_orders, np.int64)
        self.order_samples = array("q")
        self.order_reports: dict[bytes, int] = {}  # first report's ExecType → count
        self.rejects: list[bytes] = []


class _Link(asyncio.Protocol):
    """One connection of the driver: reads are queued with their arrival time."""

    def __init__(self, driver: Driver) -> None:
        self.driver = driver
        self.transport: asyncio.Transport | None = None
        self.buf = b""
        self.out: wire.Outbound | None = None
        self.last_sent = time.monotonic()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None

    def data_received(self, data: bytes) -> None:
        driver = self.driver
        driver.pending.append((time.perf_counter_ns(), self, data))
        if not driver.drain_scheduled:
            driver.drain_scheduled = True
            driver.loop.call_soon(driver.drain)

    def send(self, msg_type: bytes, body: bytes) -> None:
        if self.transport is None or self.out is None:
            return
        self.transport.write(self.out.message(msg_type, body, time.time_ns()))
        self.last_sent = time.monotonic()

    def on_message(self, msg: bytes, t_ns: int) -> None:
        raise NotImplementedError


class LpLink(_Link):
    """LP ``lp``: a FIX acceptor for the gateway's feed, or a plain connection to the floor."""

    def __init__(self, driver: Driver, lp: int, fix: bool) -> None:
        super().__init__(driver)
        self.lp = lp
        self.name = f"LP{lp + 1:02d}"
        self.subscribed: set[int] = set()
        if not fix:  # the floor: no session, the same bytes
            self.out = wire.Outbound(self.name, "LAGG")

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.driver.lps[self.lp] = self

    def on_message(self, msg: bytes, t_ns: int) -> None:
        kind = wire.msg_type(msg)
        if kind == _LOGON:
            self.out = wire.Outbound(self.name, "LAGG")
            hb = wire.value(msg, b"\x01108=") or b"30"
            reset = b"141=Y\x01" if wire.value(msg, b"\x01141=") == b"Y" else b""
            self.send(_LOGON, b"98=0\x01108=%s\x01%s" % (hb, reset))
        elif kind == b"V":
            req = wire.value(msg, b"\x01262=") or b""
            if wire.value(msg, b"\x01263=") == b"2":
                return
            symbol = wire.value(msg, b"\x0155=")
            instr = self.driver.symbols.get(symbol or b"")
            if instr is None:
                self.send(b"Y", b"262=%s\x01281=0\x01" % req)
                return
            self.send(_W, wire.snapshot_body(req, instr, self.driver.lp_k[self.lp][instr]))
            self.subscribed.add(instr)
        elif kind == _TEST:
            self.send(b"0", b"112=%s\x01" % (wire.value(msg, b"\x01112=") or b""))
        elif kind == _LOGOUT:
            self.send(_LOGOUT, b"")
            if self.transport is not None:
                self.transport.close()


class ClientLink(_Link):
    """A client session (gateway) or the floor's client connection: decodes the best bid it is
    shown back to the tick that set it."""

    def __init__(self, driver: Driver, comp_id: str, markup: int, password: bytes = b"") -> None:
        super().__init__(driver)
        self.comp_id = comp_id
        self.markup = markup
        self.password = password
        self.last_k = [-(1 << 40)] * wire.N_INSTR  # newest tick shown per instrument
        self.md_messages = 0
        self.logged_on = False
        self.logout_text: bytes | None = None

    def logon(self, heartbeat_s: int) -> None:
        self.out = wire.Outbound(self.comp_id, "LAGG")
        user = self.comp_id.encode()
        self.send(_LOGON, b"98=0\x01108=%d\x01141=Y\x01553=%s\x01554=%s\x01" % (heartbeat_s, user, self.password))

    def subscribe(self, depth: int) -> None:
        for instr, inst in enumerate(wire.INSTRUMENTS):
            body = b"262=%d\x01263=1\x01264=%d\x01265=1\x01267=2\x01269=0\x01269=1\x01146=1\x0155=%s\x01" % (
                instr, depth, inst.symbol.encode(),
            )  # fmt: skip
            self.send(b"V", body)

    def on_message(self, msg: bytes, t_ns: int) -> None:
        kind = wire.msg_type(msg)
        driver = self.driver
        if kind == _X or kind == _W:
            self.md_messages += 1
            top = wire.top_bid(msg)
            if top is None:
                return
            instr = driver.symbols.get(top[0])
            if instr is None:
                return
            k = wire.price_ticks(instr, top[1]) + self.markup - wire.INSTRUMENTS[instr].base
            if k <= self.last_k[instr]:
                return
            self.last_k[instr] = k
            rec = driver.rec
            if 0 <= k < rec.send_ns.shape[1]:
                sent = int(rec.send_ns[instr, k])
                if sent:
                    rec.tick_samples.append(t_ns - sent)
                    first = int(rec.first_ns[instr, k])
                    if first == 0 or t_ns < first:
                        rec.first_ns[instr, k] = t_ns
        elif kind == _EXEC:
            cl = wire.value(msg, b"\x0111=") or b""
            n = int(cl[1:]) if cl[:1] == b"O" and cl[1:].isdigit() else -1
            rec = driver.rec
            if 0 <= n < len(rec.order_send_ns) and rec.order_send_ns[n] > 0:
                rec.order_samples.append(t_ns - int(rec.order_send_ns[n]))
                rec.order_send_ns[n] = -1  # the first report ends the round trip
                exec_type = wire.value(msg, b"\x01150=") or b"?"
                rec.order_reports[exec_type] = rec.order_reports.get(exec_type, 0) + 1
                if exec_type == b"8":
                    rec.rejects.append(wire.value(msg, b"\x0158=") or b"")
        elif kind == _TEST:
            self.send(b"0", b"112=%s\x01" % (wire.value(msg, b"\x01112=") or b""))
        elif kind == _LOGON:
            self.logged_on = True
        elif kind == _LOGOUT:
            self.logged_on = False
            self.logout_text = wire.value(msg, b"\x0158=") or b""
        elif kind in _REJECTS:
            driver.rec.rejects.append(kind + b": " + (wire.value(msg, b"\x0158=") or b""))


class Driver:
    """Both ends of every path; the phases live in :mod:`benchmarks.e2e`."""

    def __init__(self, rec: Recorder) -> None:
        self.loop = asyncio.get_running_loop()
        self.rec = rec
        self.pending: list[tuple[int, _Link, bytes]] = []
        self.drain_scheduled = False
        self.lps: list[LpLink | None] = [None] * wire.N_LPS
        self.clients: list[ClientLink] = []
        self.symbols = {inst.symbol.encode(): i for i, inst in enumerate(wire.INSTRUMENTS)}
        self.encoder = wire.TickEncoder()
        self.lp_k = [[wire.initial_k(lp, i) for i in range(wire.N_INSTR)] for lp in range(wire.N_LPS)]
        self.ticks_sent = 0  # global tick counter n (instrument n % N_INSTR, k = n // N_INSTR)
        self.sampling = False
        self.orders_sent = 0

    def drain(self) -> None:
        self.drain_scheduled = False
        pending, self.pending = self.pending, []
        for t_ns, link, data in pending:
            buf = link.buf + data if link.buf else data
            messages, link.buf = wire.split(buf)
            for msg in messages:
                link.on_message(msg, t_ns)

    # --- LP side ---------------------------------------------------------------------------------

    def _lp_factory(self, lp: int, fix: bool) -> Callable[[], LpLink]:
        return lambda: LpLink(self, lp, fix)

    async def serve_lps(self) -> tuple[list[asyncio.AbstractServer], list[int]]:
        """10 LP acceptors on free loopback ports (the gateway's feeds connect to them)."""
        servers: list[asyncio.AbstractServer] = []
        ports: list[int] = []
        for lp in range(wire.N_LPS):
            server = await self.loop.create_server(self._lp_factory(lp, True), "127.0.0.1", 0)
            servers.append(server)
            ports.append(int(server.sockets[0].getsockname()[1]))
        return servers, ports

    async def connect_lps_to(self, port: int) -> None:
        """The floor: 10 plain connections to the echo server's LP port."""
        for lp in range(wire.N_LPS):
            await self.loop.create_connection(self._lp_factory(lp, False), "127.0.0.1", port)

    def close(self) -> None:
        """Close every connection of the driver."""
        links: list[_Link | None] = [*self.lps, *self.clients]
        for link in links:
            if link is not None and link.transport is not None:
                link.transport.close()

    def lps_subscribed(self) -> bool:
        return all(link is not None and len(link.subscribed) == wire.N_INSTR for link in self.lps)

    def send_tick(self) -> None:
        n = self.ticks_sent
        instr, k = n % wire.N_INSTR, n // wire.N_INSTR
        lp = (k + instr) % wire.N_LPS
        link = self.lps[lp]
        self.ticks_sent = n + 1
        self.lp_k[lp][instr] = k
        if link is None or link.transport is None or link.out is None:
            return  # an LP that is not connected misses its tick, as a real one would
        data = link.out.message(_X, self.encoder.body(instr, k), time.time_ns())
        t = time.perf_counter_ns()
        link.transport.write(data)
        if self.sampling:
            self.rec.send_ns[instr, k] = t
        link.last_sent = time.monotonic()

    # --- client side -----------------------------------------------------------------------------

    async def connect_client(self, port: int, comp_id: str, markup: int, password: bytes = b"") -> ClientLink:
        link = ClientLink(self, comp_id, markup, password)
        await self.loop.create_connection(lambda: link, "127.0.0.1", port)
        self.clients.append(link)
        return link

    def send_order(self, qty_steps: int) -> None:
        n = self.orders_sent
        self.orders_sent = n + 1
        link = self.clients[n % len(self.clients)]
        instr = n % wire.N_INSTR
        inst = wire.INSTRUMENTS[instr]
        side = b"1" if (n // len(self.clients)) % 2 == 0 else b"2"  # each client alternates: flat again
        qty = b"%d" % (qty_steps * int(inst.qty_step))
        body = b"11=O%d\x0155=%s\x0154=%s\x0160=%s\x0138=%s\x0140=1\x0159=3\x01" % (
            n, inst.symbol.encode(), side, wire.format_utc_timestamp(time.time_ns()), qty,
        )  # fmt: skip
        if link.transport is None or link.out is None:
            return
        data = link.out.message(b"D", body, time.time_ns())
        t = time.perf_counter_ns()
        link.transport.write(data)
        if n < len(self.rec.order_send_ns):
            self.rec.order_send_ns[n] = t
        link.last_sent = time.monotonic()

    # --- pacing ----------------------------------------------------------------------------------

    async def paced(self, count: int, rate: float, send: Callable[[], None], deadline_s: float,
                    progress: Callable[[int], None] | None = None) -> tuple[int, float]:  # fmt: skip
        """Call ``send`` ``count`` times at ``rate`` per second: whatever is due at each wake-up
        of a 1 ms timer (uvloop's resolution), so at <= 1000/s ticks leave one at a time.
        Returns (sent, seconds); stops early at ``deadline_s`` (monotonic)."""
        start = time.perf_counter()
        sent = 0
        next_progress = start + 5.0
        while sent < count and time.monotonic() < deadline_s:
            now = time.perf_counter()
            due = min(count, int((now - start) * rate) + 1)
            while sent < due:
                send()
                sent += 1
            if progress is not None and now >= next_progress:
                progress(sent)
                next_progress = now + 5.0
            if sent < count:
                await asyncio.sleep(max(0.001, (sent / rate) - (time.perf_counter() - start)))
        return sent, time.perf_counter() - start

    async def keepalive(self) -> None:
        """Heartbeats on idle sessions, so nobody's TestRequest goes unanswered (runs until cancelled)."""
        while True:
            await asyncio.sleep(2.0)
            now = time.monotonic()
            for link in [*self.lps, *self.clients]:
                if link is not None and link.out is not None and now - link.last_sent > KEEPALIVE_S:
                    link.send(b"0", b"")
