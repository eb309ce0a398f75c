"""What we send, as a standard FIX 4.4 client validates it with QuickFIX's own FIX44.xml data
dictionary (group membership and counts, field types, enum values): every W and X the hub sends
(full and incremental subscriptions, any depth and side, levels added, changed and deleted), and
every answer of the order desk to orders, cancels, replaces and status requests, malformed ones
included. A client that validates refuses anything else, and then never learns what became of
its order. QuickFIX runs in a child process, as in test_interop_quickfix.py."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

from engine.config import parse_config
from engine.fixedpoint import Grid
from engine.journal import Journal
from fixserver.codec import encode, encode_with_prepared
from fixserver.marketdata import MarketDataHub, MdReject, MdRejectReason
from fixserver.message import FixMessage
from fixserver.orders import OrderDesk
from fixserver.security_list import security_list
from risk import KillSwitches, PositionBook, PreTradeChecker
from tests.conftest import EXAMPLE_CONFIG

FIX44_XML = Path(sys.prefix) / "share" / "quickfix" / "FIX44.xml"

_VALIDATE = """
import json, sys
import quickfix as fix
dd = fix.DataDictionary(sys.argv[1])
problems = []
for line in sys.stdin:
    raw = json.loads(line)
    try:
        dd.validate(fix.Message(raw, dd, True))
    except Exception as e:  # QuickFIX's exceptions name the problem: RepeatingGroupCountMismatch, ...
        problems.append([type(e).__name__, str(e), raw.replace(chr(1), "|")])
print(json.dumps(problems))
"""


def _messages() -> list[str]:
    rng = random.Random(7)
    state = {"ladder": ((), ()), "version": 0}

    def quote_of(tier: int, instr: int):
        return state["ladder"], state["version"]

    def move() -> None:
        def side(best: int, sign: int) -> tuple[tuple[int, int], ...]:
            """0-5 levels from ``best`` away from the mid (``sign`` 1: bids), 1-2 ticks apart."""
            levels, price = [], best
            for _ in range(rng.randrange(6)):
                levels.append((price, rng.choice((1, 2, 5))))
                price -= sign * rng.choice((1, 2))
            return tuple(levels)

        mid = rng.randrange(108_400, 108_600)
        state["ladder"] = (side(mid - 1, 1), side(mid + 1, -1))
        state["version"] += 1

    hub = MarketDataHub(["EUR/USD"], [Grid.parse("0.00001")], [Grid.parse("1000")], [5], quote_of=quote_of)
    move()
    out: list[tuple[bytes, object]] = []
    for n, (depth, update, types) in enumerate(
        [(b"0", b"1", (b"0", b"1")), (b"1", b"1", (b"0", b"1")), (b"3", b"0", (b"0", b"1")), (b"0", b"1", (b"1",))]
    ):
        fields = [(35, b"V"), (262, b"r%d" % n), (263, b"1"), (264, depth), (265, update), (267, b"%d" % len(types))]
        fields += [(269, t) for t in types] + [(146, b"1"), (55, b"EUR/USD")]
        snapshots, reject = hub.on_request(f"c{n}", 0, FixMessage(fields), 0)
        assert reject is None
        out += snapshots
    for step in range(200):
        move()
        for bodies in hub.publish(step, writable=lambda s, step=step: step % 7 != 0 or s != "c0").values():
            out += bodies
    header = [(49, b"LAGG"), (56, b"DEMO"), (34, 2), (52, b"20261123-10:00:00.000")]
    return [encode_with_prepared([*header, (262, req)], body).decode() for req, body in out]  # type: ignore[arg-type]


def _quickfix_problems(messages: list[str]) -> list[list[str]]:
    assert FIX44_XML.exists(), f"{FIX44_XML}: QuickFIX's FIX 4.4 dictionary (installed with quickfix by make install)"
    result = subprocess.run(
        [sys.executable, "-c", _VALIDATE, str(FIX44_XML)],
        input="\n".join(json.dumps(m) for m in messages), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def test_every_w_and_x_we_send_passes_quickfix_fix44_data_dictionary() -> None:
    messages = _messages()
    kinds = {m.split("\x0135=")[1][0] for m in messages}
    assert kinds == {"W", "X"} and len(messages) > 400
    deletes = sum(m.count("\x01279=2\x01") for m in messages)
    changes = sum(m.count("\x01279=1\x01") for m in messages)
    assert deletes and changes
    assert _quickfix_problems(messages) == []


def _order_desk_answers(tmp_path: Path) -> list[str]:
    cfg = parse_config(EXAMPLE_CONFIG.read_text())
    quotes = {
        (0, 0): (((108500, 1000), (108499, 2000)), ((108502, 1000), (108503, 3000))),
        (0, 4): (((-3765, 10),), ((-3763, 10),)),
    }
    positions = PositionBook(len(cfg.instruments))
    desk = OrderDesk(cfg, lambda t, i: quotes.get((t, i), ((), ())), Journal(tmp_path / "journal.sqlite"), positions,
                     PreTradeChecker(positions, KillSwitches()))  # fmt: skip
    client = cfg.clients[0]

    def msg(kind: bytes, *fields: tuple[int, bytes]) -> FixMessage:
        return FixMessage([(35, kind), (34, b"9"), *fields])

    def order(cl: bytes, *fields: tuple[int, bytes], symbol: bytes = b"EUR/USD") -> FixMessage:
        return msg(b"D", (11, cl), (55, symbol), *fields)

    requests = [
        order(b"a", (54, b"1"), (38, b"1500000"), (40, b"1"), (59, b"3")),  # two fills
        order(b"b", (54, b"1"), (38, b"5000000"), (40, b"1"), (59, b"3")),  # fills and a cancelled rest
        order(b"c", (54, b"1"), (38, b"1500"), (40, b"1")),  # off the quantity step
        order(b"d", (54, b"1"), (38, b"1000000"), (40, b"1"), symbol=b"XBT/USD"),  # unknown symbol
        order(b"e", (54, b"1"), (38, b"1000000"), (40, b"4"), (59, b"3")),  # a type we do not take
        order(b"f", (54, b"5"), (38, b"1000000"), (40, b"1")),  # a side we do not take
        order(b"g", (54, b"1"), (38, b"lots"), (40, b"9x"), (59, b"Z"), (44, b"x")),  # nothing a FIX value
        order(b"h", (38, b"1000000"), (40, b"1")),  # no side
        msg(b"D", (54, b"2"), (55, b"EUR/USD"), (38, b"1000000"), (40, b"1")),  # no ClOrdID
        order(b"w", (54, b"1"), (38, b"5"), (40, b"2"), (59, b"4"), (44, b"-37.63"), symbol=b"WTI"),  # FOK, < 0
        order(b"L1", (54, b"2"), (38, b"2000000"), (40, b"2"), (59, b"0"), (44, b"1.08510")),  # rests
        msg(
            b"G", (11, b"L2"), (41, b"L1"), (55, b"EUR/USD"), (54, b"2"), (38, b"3000000"), (40, b"2"), (44, b"1.0852")
        ),
        msg(b"G", (11, b"L3"), (41, b"nope"), (55, b"EUR/USD"), (54, b"2"), (38, b"1"), (40, b"2"), (44, b"1")),
        msg(b"G", (41, b"L2"), (55, b"EUR/USD"), (54, b"2"), (38, b"1"), (40, b"2"), (44, b"1")),  # no ClOrdID
        msg(b"H", (11, b"L2"), (55, b"EUR/USD"), (54, b"2")),
        msg(b"H", (11, b"zz"), (55, b"EUR/USD"), (54, b"2")),  # unknown order
        msg(b"H", (11, b"zz")),  # unknown, and no side to echo
        msg(b"F", (11, b"X1"), (41, b"L2"), (55, b"EUR/USD"), (54, b"2")),
        msg(b"F", (11, b"X2"), (41, b"L2"), (55, b"EUR/USD"), (54, b"2")),  # too late
        msg(b"F", (11, b"X3")),  # no OrigClOrdID
    ]
    handlers = {b"D": desk.on_new_order, b"F": desk.on_cancel, b"G": desk.on_replace, b"H": desk.on_status}
    header = [(49, b"LAGG"), (56, b"DEMO"), (34, 5), (52, b"20261123-10:00:00.000")]
    answers = []
    for n, request in enumerate(requests):
        handlers[request.msg_type](client, request, n + 1)
        answers += [encode(out.msg_type, header, out.body).decode() for out in desk.flush()]
    return answers


def test_every_answer_of_the_order_desk_passes_quickfix_fix44_data_dictionary(tmp_path: Path) -> None:
    answers = _order_desk_answers(tmp_path)
    kinds = sorted({m.split("\x0135=")[1][0] for m in answers})
    assert kinds == ["8", "9", "j"] and len(answers) >= 20
    assert _quickfix_problems(answers) == []


def test_the_security_list_and_market_data_rejects_pass_quickfix_fix44_data_dictionary() -> None:
    cfg = parse_config(EXAMPLE_CONFIG.read_text())
    header = [(49, b"LAGG"), (56, b"DEMO"), (34, 5), (52, b"20261123-10:00:00.000")]
    requests = [
        [(320, b"q1")], [(320, b"q2"), (559, b"4")], [(320, b"q3"), (559, b"0"), (55, b"WTI")],
        [(320, b"q4"), (559, b"0"), (55, b"XBT/USD")], [(320, b"q5"), (559, b"1"), (167, b"FXSPOT")],
    ]  # fmt: skip
    lists = [encode(b"y", header, security_list(cfg.instruments, FixMessage([(35, b"x"), *r]), b"SL-1")).decode()
             for r in requests]  # fmt: skip
    rejects = [encode(b"Y", header, reject.body()).decode()
               for reject in (MdReject(b"r1", MdRejectReason.UNKNOWN_SYMBOL, "unknown symbol XBT/USD"),
                              MdReject(b"r2", None, "no subscription with this MDReqID to cancel"))]  # fmt: skip
    assert lists[0].count("\x0155=") == len([i for i in cfg.instruments if i.enabled])
    assert _quickfix_problems(lists + rejects) == []
