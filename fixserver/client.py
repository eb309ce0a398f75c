"""A FIX 4.4 client for poking a running gateway: ``lagg client`` and the demo's client.

It logs on, asks for the security list, subscribes to market data (265=1: W then X), keeps each
symbol's book with :class:`~fixserver.md_book.MdBook`, shows a quotes table, sends orders and
prints their execution reports. It uses the same session layer and transport as the gateway.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field

from rich.console import Console
from rich.table import Table

from fixserver.clock import SystemClock
from fixserver.md_book import MdBook, md_request
from fixserver.message import FixMessage
from fixserver.session import Credentials, Role, SessionConfig, SessionID
from fixserver.store import MemoryStoreFactory
from fixserver.transport import Application, Initiator, SessionHandle

__all__ = ["ClientApp", "OrderSpec", "run_client"]

_EXEC_TYPES = {b"0": "new", b"F": "fill", b"4": "cancelled", b"8": "REJECTED", b"I": "status"}


@dataclass(frozen=True)
class OrderSpec:
    symbol: str
    side: str  # "buy" | "sell"
    qty: str  # decimal, FIX 38
    ord_type: str = "market"  # market | limit
    tif: str = "ioc"  # ioc | fok | day | gtc
    price: str | None = None  # limit price; "touch" = the current best on our side


@dataclass
class ClientApp(Application):
    symbols: Sequence[str]
    depth: int = 0
    book: MdBook = field(default_factory=MdBook)
    reports: list[FixMessage] = field(default_factory=list)
    rejects: list[FixMessage] = field(default_factory=list)
    security_list: list[tuple[str, str, str]] = field(default_factory=list)
    md_messages: int = 0
    logged_on: asyncio.Event = field(default_factory=asyncio.Event)
    console: Console = field(default_factory=Console)

    def on_logon(self, session: SessionHandle) -> None:
        session.send(b"x", [(320, b"sl-1"), (559, b"4")])
        body = md_request(b"md-1", [s.encode() for s in self.symbols], depth=self.depth)
        session.send(b"V", body, resendable=False)
        self.logged_on.set()

    def from_app(self, message: FixMessage, session: SessionHandle) -> None:
        kind = message.msg_type
        if kind in (b"W", b"X"):
            self.book.apply(message)
            self.md_messages += 1
        elif kind == b"8":
            self.reports.append(message)
            self.console.print(_describe_report(message))
        elif kind == b"y":
            symbols = message.get_all(55)
            ticks = message.get_all(969)
            lots = message.get_all(561)
            self.security_list = list(zip((s.decode() for s in symbols), (t.decode() for t in ticks),
                                          (q.decode() for q in lots), strict=False))  # fmt: skip
        elif kind in (b"Y", b"9", b"j", b"3"):
            self.rejects.append(message)
            self.console.print(f"[red]rejected ({kind.decode()}): {message.get_str(58)}[/red]")

    def quotes_table(self) -> Table:
        table = Table(title="live quotes (your tier)", show_lines=False)
        for col in ("symbol", "bid size", "bid", "ask", "ask size", "levels"):
            table.add_column(col, justify="right")
        for symbol in self.symbols:
            bids, asks = self.book.ladder(symbol.encode())
            bid = bids[0] if bids else (b"-", b"-", b"")
            ask = asks[0] if asks else (b"-", b"-", b"")
            table.add_row(
                symbol, bid[1].decode(), bid[0].decode(), ask[0].decode(), ask[1].decode(), f"{len(bids)}/{len(asks)}"
            )
        return table

    def best(self, symbol: str, side: str) -> str | None:
        bids, asks = self.book.ladder(symbol.encode())
        levels = asks if side == "buy" else bids
        return levels[0][0].decode() if levels else None


_ids = itertools.count(1)


def order_fields(spec: OrderSpec, app: ClientApp) -> list[tuple[int, bytes]]:
    """A NewOrderSingle body for ``spec`` ("touch" takes the current best price)."""
    price = spec.price
    if price == "touch":
        price = app.best(spec.symbol, spec.side)
        if price is None:
            raise ValueError(f"no {spec.side} price for {spec.symbol} yet")
    fields = [
        (11, f"demo-{next(_ids)}".encode()), (55, spec.symbol.encode()), (54, b"1" if spec.side == "buy" else b"2"),
        (60, b"20000101-00:00:00.000"), (38, spec.qty.encode()), (40, b"1" if spec.ord_type == "market" else b"2"),
        (59, {"day": b"0", "gtc": b"1", "ioc": b"3", "fok": b"4"}[spec.tif]),
    ]  # fmt: skip
    if price is not None and spec.ord_type == "limit":
        fields.append((44, price.encode()))
    return fields


def _describe_report(msg: FixMessage) -> str:
    kind = _EXEC_TYPES.get(msg.get(150) or b"", (msg.get_str(150) or "?"))
    side = "buy" if msg.get(54) == b"1" else "sell"
    text = f"execution report: {kind:9} {side} {msg.get_str(38)} {msg.get_str(55)}"
    if msg.get(150) == b"F":
        text += f"  filled {msg.get_str(32)} @ {msg.get_str(31)} (cum {msg.get_str(14)}, avg {msg.get_str(6)})"
    if msg.get(58):
        text += f"  [{msg.get_str(58)}]"
    return f"[bold]{text}[/bold]" if msg.get(150) == b"F" else text


async def run_client(
    host: str,
    port: int,
    sender: str,
    target: str,
    password: str | None,
    symbols: Sequence[str],
    seconds: float,
    orders: Sequence[tuple[float, OrderSpec]] = (),
    heartbeat_s: int = 10,
    console: Console | None = None,
    refresh_s: float = 2.0,
) -> ClientApp:
    """Connect, stream quotes for ``seconds`` (bounded), send ``orders`` at their offsets."""
    # Off a terminal (logs, CI, `make demo | tee`), do not wrap report lines at 80 columns.
    console = console or Console(width=None if Console().is_terminal else 120)
    app = ClientApp(symbols, console=console)
    config = SessionConfig(
        SessionID("FIX.4.4", sender, target), Role.INITIATOR, heartbeat_s=heartbeat_s, reset_on_logon=True,
        credentials=Credentials(sender, password),
    )  # fmt: skip
    initiator = Initiator(app, config, MemoryStoreFactory(), host, port, clock=SystemClock(), max_attempts=10)
    await initiator.start()
    loop = asyncio.get_running_loop()
    try:
        await asyncio.wait_for(app.logged_on.wait(), timeout=30)
    except TimeoutError:
        console.print(f"[red]could not log on to {host}:{port} as {sender}[/red]")
        await initiator.stop()
        return app
    console.print(f"logged on to {host}:{port} as {sender} -> {target}")
    start = loop.time()
    pending = sorted(orders, key=lambda o: o[0])
    next_table = start + 1.0
    while (elapsed := loop.time() - start) < seconds:
        while pending and pending[0][0] <= elapsed:
            _, spec = pending.pop(0)
            try:
                body = order_fields(spec, app)
            except ValueError as exc:
                console.print(f"[yellow]order skipped: {exc}[/yellow]")
                continue
            price = dict(body).get(44, b"").decode()
            console.print(f"sending {spec.ord_type} {spec.tif} {spec.side} {spec.qty} {spec.symbol} {price}".rstrip())
            initiator.handle.send(b"D", body)
        if loop.time() >= next_table:
            console.print(app.quotes_table())
            next_table += refresh_s
        await asyncio.sleep(0.1)
    console.print(app.quotes_table())
    console.print(f"{app.md_messages} market-data messages, {len(app.reports)} execution reports")
    await initiator.stop()
    return app
