"""Our market data as a standard FIX 4.4 client validates it: every W and X the hub sends, for
full and incremental subscriptions, any depth and side, through book changes that add, change
and delete levels, passes QuickFIX's own FIX44.xml data dictionary (group membership, counts,
field types). QuickFIX runs in a child process, as in test_interop_quickfix.py."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

from engine.fixedpoint import Grid
from fixserver.codec import encode_with_prepared
from fixserver.marketdata import MarketDataHub
from fixserver.message import FixMessage

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


def test_every_w_and_x_we_send_passes_quickfix_fix44_data_dictionary() -> None:
    assert FIX44_XML.exists(), f"{FIX44_XML}: QuickFIX's FIX 4.4 dictionary (installed with quickfix by make install)"
    messages = _messages()
    kinds = {m.split("\x0135=")[1][0] for m in messages}
    assert kinds == {"W", "X"} and len(messages) > 400
    deletes = sum(m.count("\x01279=2\x01") for m in messages)
    changes = sum(m.count("\x01279=1\x01") for m in messages)
    assert deletes and changes
    result = subprocess.run(
        [sys.executable, "-c", _VALIDATE, str(FIX44_XML)],
        input="\n".join(json.dumps(m) for m in messages), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []
