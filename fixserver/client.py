"""A FIX 4.4 client for poking a running gateway: ``lagg client`` and the demo's client.

It logs on, asks for the security list, subscribes to market data (265=1: W then X), keeps each
symbol's book with :class:`~fixserver.md_book.MdBook`, shows a quotes table, sends orders and
prints their execution reports. It uses the same session layer and transport as the gateway.

Orders are checked before connecting (:func:`order_problems`): a typo must not become the other
side's order. Whatever the server sends is printed literally (escaped), never read as rich markup.
A Logon the server refuses ends the run at once with the server's reason (58); only a failure to
connect is retried.
"""

from __future__ import annotations

import asyncio
import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from fixserver.clock import SystemClock
from fixserver.codec import FrameDecoder
from fixserver.md_book import MdBook, md_request
from fixserver.message import FixMessage
from fixserver.security_list import TICK_SIZE_TEXT
from fixserver.session import Credentials, Role, SessionConfig, SessionID
from fixserver.store import MemoryStoreFactory
from fixserver.transport import Application, Initiator, SessionHandle

__all__ = ["ClientApp", "OrderSpec", "order_problems", "run_client"]

_EXEC_TYPES = {b"0": "new", b"F": "fill", b"4": "cancelled", b"8": "REJECTED", b"I": "status"}
_SIDES = {"buy": b"1", "sell": b"2"}  # 54
_ORD_TYPES = {"market": b"1", "limit": b"2"}  # 40
_TIFS = {"day": b"0", "gtc": b"1", "ioc": b"3", "fok": b"4"}  # 59
_QTY = re.compile(r"^[0-9]+(\.[0-9]+)?$")
_PRICE = re.compile(r"^-?[0-9]+(\.[0-9]+)?$")  # negative prices are legal (WTI, April 2020)
_SYMBOL = re.compile(r"^[!-~]+$")  # printable ASCII, no spaces: nothing that could break a FIX field


@dataclass(frozen=True)
class OrderSpec:
    """One order as typed by a person; ``side``, ``ord_type`` and ``tif`` in any case ("Buy")."""

    symbol: str
    side: str  # "buy" | "sell"
    qty: str  # decimal, FIX 38
    ord_type: str = "market"  # market | limit
    tif: str = "ioc"  # ioc | fok | day | gtc
    price: str | None = None  # limit price; "touch" = the current best on our side

    def __post_init__(self) -> None:
        for name in ("side", "ord_type", "tif"):
            object.__setattr__(self, name, getattr(self, name).lower())


def order_problems(spec: OrderSpec) -> list[str]:
    """Everything wrong with ``spec`` that the client can tell without the server; empty if none.

    Symbols, quantity steps and tick sizes are the server's to judge (it rejects with a reason)."""
    problems = []
    if spec.side not in _SIDES:
        problems.append(f"side must be buy or sell, got {spec.side!r}")
    if not _QTY.match(spec.qty) or not spec.qty.strip("0."):
        problems.append(f"quantity must be a positive decimal number (e.g. 1000000), got {spec.qty!r}")
    if not _SYMBOL.match(spec.symbol):
        problems.append(f"symbol must be printable characters without spaces, got {spec.symbol!r}")
    if spec.ord_type not in _ORD_TYPES:
        problems.append(f"order type must be market or limit, got {spec.ord_type!r}")
    if spec.tif not in _TIFS:
        problems.append(f"time in force must be one of {', '.join(_TIFS)}, got {spec.tif!r}")
    if spec.ord_type == "limit" and spec.price is None:
        problems.append("a limit order needs a price (a decimal or 'touch')")
    if spec.price is not None:
        if spec.ord_type == "market":
            problems.append(f"a market order takes no price, got {spec.price!r}")
        elif spec.price != "touch" and not _PRICE.match(spec.price):
            problems.append(f"price must be a decimal number or 'touch', got {spec.price!r}")
    return problems


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
    logon_refusal: str | None = None  # the server's Logout text (58) when it refused our Logon
    logon_refused: asyncio.Event = field(default_factory=asyncio.Event)

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
            self.security_list = _security_list_entries(message)
        elif kind in (b"Y", b"9", b"j", b"3"):
            self.rejects.append(message)
            self.console.print(f"[red]rejected ({kind.decode()}): {escape(message.get_str(58) or '')}[/red]")

    def quotes_table(self) -> Table:
        table = Table(title="live quotes (your tier)", show_lines=False)
        for col in ("symbol", "bid size", "bid", "ask", "ask size", "levels"):
            table.add_column(col, justify="right")
        for symbol in self.symbols:
            bids, asks = self.book.ladder(symbol.encode())
            bid = bids[0] if bids else (b"-", b"-", b"")
            ask = asks[0] if asks else (b"-", b"-", b"")
            cells = (symbol, bid[1].decode(), bid[0].decode(), ask[0].decode(), ask[1].decode())
            # Table cells are rich markup: escaped, "[X]" is shown as it is.
            table.add_row(*(escape(c) for c in cells), f"{len(bids)}/{len(asks)}")
        return table

    def best(self, symbol: str, side: str) -> str | None:
        bids, asks = self.book.ladder(symbol.encode())
        levels = asks if side == "buy" else bids
        return levels[0][0].decode() if levels else None


class _LogonRefusalWatch:
    """A connection's frame decoder that also notes a Logout answering our Logon. The session
    layer ends the connection on it and the initiator would try again; only the server's text
    (58) says why, and a wrong password does not get better by retrying."""

    def __init__(self, app: ClientApp) -> None:
        self._decoder = FrameDecoder()
        self._app = app

    def feed(self, data: bytes) -> list[FixMessage]:
        messages = self._decoder.feed(data)
        if not self._app.logged_on.is_set():
            for message in messages:
                if message.msg_type == b"5":
                    self._app.logon_refusal = message.get_str(58) or "no reason given"
                    self._app.logon_refused.set()
        return messages


_ids = itertools.count(1)


def _security_list_entries(message: FixMessage) -> list[tuple[str, str, str]]:
    """``(symbol, tick size, quantity step)`` of each entry of a SecurityList (35=y): 55, the
    tick size in Text (58, ``tick size <tick>``: FIX 4.4 has no field for it) and RoundLot (561)."""
    entries: list[list[str]] = []
    for tag, value in message.fields:
        if tag == 55:
            entries.append([value.decode(), "", ""])
        elif entries and tag == 58 and value.startswith(TICK_SIZE_TEXT):
            entries[-1][1] = value[len(TICK_SIZE_TEXT) :].decode()
        elif entries and tag == 561:
            entries[-1][2] = value.decode()
    return [(symbol, tick, lot) for symbol, tick, lot in entries]


def order_fields(spec: OrderSpec, app: ClientApp) -> list[tuple[int, bytes]]:
    """A NewOrderSingle body for ``spec`` ("touch" takes the current best price)."""
    price = spec.price
    if price == "touch":
        price = app.best(spec.symbol, spec.side)
        if price is None:
            raise ValueError(f"no {spec.side} price for {spec.symbol} yet")
    problems = order_problems(spec)
    if problems:
        raise ValueError("; ".join(problems))
    fields = [
        (11, f"demo-{next(_ids)}".encode()), (55, spec.symbol.encode()), (54, _SIDES[spec.side]),
        (60, b"20000101-00:00:00.000"), (38, spec.qty.encode()), (40, _ORD_TYPES[spec.ord_type]),
        (59, _TIFS[spec.tif]),
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
    text = escape(text)  # the server's words, shown as they are: "[reason]" is not markup
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
    problems = [
        f"order {n} ({escape(' '.join((spec.side, spec.qty, spec.symbol)))}): {escape(problem)}"
        for n, (_, spec) in enumerate(orders, 1)
        for problem in order_problems(spec)
    ]
    if problems:
        for line in problems:
            console.print(f"[red]{line}[/red]")
        console.print("[red]nothing sent: fix the orders above[/red]")
        return app
    config = SessionConfig(
        SessionID("FIX.4.4", sender, target), Role.INITIATOR, heartbeat_s=heartbeat_s, reset_on_logon=True,
        credentials=Credentials(sender, password),
    )  # fmt: skip
    initiator = Initiator(app, config, MemoryStoreFactory(), host, port, clock=SystemClock(), max_attempts=10,
                          decoder_factory=lambda: _LogonRefusalWatch(app))  # fmt: skip
    await initiator.start()
    loop = asyncio.get_running_loop()
    # Connection failures are retried (the gateway may still be starting); a refusal is final.
    waits = [asyncio.ensure_future(app.logged_on.wait()), asyncio.ensure_future(app.logon_refused.wait())]
    await asyncio.wait(waits, timeout=30, return_when=asyncio.FIRST_COMPLETED)
    for wait in waits:
        wait.cancel()
    if not app.logged_on.is_set():
        if app.logon_refusal is not None:
            reason = escape(app.logon_refusal)
            console.print(f"[red]{host}:{port} refused the logon as {sender}: {reason}[/red]")
        else:
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
                console.print(f"[yellow]order skipped: {escape(str(exc))}[/yellow]")
                continue
            price = dict(body).get(44, b"").decode()
            sending = f"sending {spec.ord_type} {spec.tif} {spec.side} {spec.qty} {spec.symbol} {price}".rstrip()
            console.print(escape(sending))
            initiator.handle.send(b"D", body)
        if loop.time() >= next_table:
            console.print(app.quotes_table())
            next_table += refresh_s
        await asyncio.sleep(0.1)
    console.print(app.quotes_table())
    console.print(f"{app.md_messages} market-data messages, {len(app.reports)} execution reports")
    await initiator.stop()
    return app
