"""The `lagg client` console client: orders mean what was typed, the server's words are shown
as they are, and a refused logon says why and stops."""

from __future__ import annotations

import asyncio
import io
import subprocess
import sys
import time

import pytest
from rich.console import Console

from engine.config import parse_config
from fixserver.client import ClientApp, OrderSpec, _describe_report, order_fields, order_problems, run_client
from fixserver.message import FixMessage
from fixserver.store import MemoryStoreFactory
from fixserver.transport import Acceptor, Application
from tests.conftest import ROOT, one_client_config


def _console() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, width=200, color_system=None), out


@pytest.mark.parametrize(("side", "tag54"), [("buy", b"1"), ("Buy", b"1"), ("BUY", b"1"), ("Sell", b"2")])
def test_the_side_is_read_case_insensitively(side, tag54):
    spec = OrderSpec("EUR/USD", side, "1000000", "Limit", "GTC", "1.08")
    assert order_problems(spec) == []
    fields = dict(order_fields(spec, ClientApp(["EUR/USD"])))
    assert fields[54] == tag54 and fields[40] == b"2" and fields[59] == b"1" and fields[44] == b"1.08"


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        (OrderSpec("EUR/USD", "Bye", "1000000"), "side must be buy or sell, got 'bye'"),
        (OrderSpec("EUR/USD", "buy", "1e6"), "quantity must be a positive decimal number"),
        (OrderSpec("EUR/USD", "buy", "0"), "quantity must be a positive decimal number"),
        (OrderSpec("EUR/USD", "buy", "-5"), "quantity must be a positive decimal number"),
        (OrderSpec("EUR USD", "buy", "1000"), "symbol must be printable characters without spaces"),
        (OrderSpec("EUR/USD", "buy", "1000", "stop"), "order type must be market or limit, got 'stop'"),
        (OrderSpec("EUR/USD", "buy", "1000", "market", "gtd"), "time in force must be one of day, gtc, ioc, fok"),
        (OrderSpec("EUR/USD", "buy", "1000", "limit"), "a limit order needs a price"),
        (OrderSpec("EUR/USD", "buy", "1000", "limit", "ioc", "1,08"), "price must be a decimal number or 'touch'"),
        (OrderSpec("EUR/USD", "buy", "1000", "market", "ioc", "1.08"), "a market order takes no price"),
    ],
)
def test_a_malformed_order_is_named_and_never_encoded(spec, problem):
    problems = order_problems(spec)
    assert len(problems) == 1 and problems[0].startswith(problem), problems
    with pytest.raises(ValueError, match=problem.split(",")[0]):
        order_fields(spec, ClientApp(["EUR/USD"]))


def test_negative_limit_prices_are_orders_like_any_other():
    assert order_problems(OrderSpec("WTI", "sell", "100", "limit", "day", "-37.63")) == []


def test_the_cli_refuses_a_bad_side_before_connecting():
    # Port 9 (discard) on loopback: a client that tried to connect would retry for 30 s.
    start = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "engine.cli", "client", "--port", "9", "--seconds", "1",
         "--order", "Bye", "1000000", "EUR/USD", "--order", "buy", "1000000", "EUR/USD"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 1
    assert "order 1 (bye 1000000 EUR/USD): side must be buy or sell, got 'bye'" in result.stdout
    assert "order 2" not in result.stdout and "nothing sent" in result.stdout
    assert time.monotonic() - start < 20


def _message(*fields: tuple[int, bytes]) -> FixMessage:
    return FixMessage([(35, fields[0][1]), *fields[1:]])


def test_reject_reasons_in_brackets_are_shown_not_swallowed_as_markup():
    console, out = _console()
    app = ClientApp(["EUR/USD"], console=console)
    app.from_app(_message((35, b"j"), (58, b"[risk] max_order_qty exceeded [/red]")), None)  # type: ignore[arg-type]
    report = _message((35, b"8"), (150, b"8"), (54, b"1"), (38, b"1000"), (55, b"EUR/USD"), (58, b"[stale quote]"))
    app.from_app(report, None)  # type: ignore[arg-type]
    text = out.getvalue()
    assert "rejected (j): [risk] max_order_qty exceeded [/red]" in text
    assert "execution report: REJECTED  buy 1000 EUR/USD  [[stale quote]]" in text
    fill = _message((35, b"8"), (150, b"F"), (54, b"2"), (38, b"1"), (55, b"[X]"), (32, b"1"), (31, b"2"))
    console.print(_describe_report(fill))
    assert "sell 1 [X]  filled 1 @ 2" in out.getvalue()


PASSWORD = "right-Password-1"
CONFIG = one_client_config(PASSWORD)


async def _client_against_acceptor(password: str) -> tuple[ClientApp, str, float, int]:
    acceptor = Acceptor.from_config(parse_config(CONFIG), Application(), store_factory=MemoryStoreFactory(), port=0)
    await acceptor.start()
    console, out = _console()
    try:
        start = time.monotonic()
        app = await asyncio.wait_for(
            run_client("127.0.0.1", acceptor.port, "DEMO", "LAGG", password, ["EUR/USD"], 0.2, console=console),
            timeout=40,
        )
        elapsed = time.monotonic() - start
    finally:
        await acceptor.stop()
    return app, out.getvalue(), elapsed, acceptor.logon_rejects


async def test_a_refused_logon_shows_the_servers_reason_and_is_not_retried():
    app, text, elapsed, rejects = await _client_against_acceptor("wrong-password")
    assert not app.logged_on.is_set()
    assert "refused the logon as DEMO: Logon rejected" in text and "could not log on" not in text
    assert rejects == 1  # one Logon, not one per reconnect
    assert elapsed < 10


async def test_the_right_password_still_logs_on():
    app, text, _, rejects = await _client_against_acceptor(PASSWORD)
    assert app.logged_on.is_set() and rejects == 0
    assert "logged on to 127.0.0.1" in text
