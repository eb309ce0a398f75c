"""Market-data publish benchmark: CPU per publish cycle of :class:`fixserver.marketdata.MarketDataHub`.

Run with ``python -m benchmarks.md_publish`` (``--cycles N``, ``--out FILE`` for JSON). Prints a table.

Workload: the gateway's side of ``make bench-e2e`` without the sockets. The e2e config
(:func:`benchmarks.e2e.bench_config`: 10 LPs, 5 instruments, 3 tiers top_of_book / full_depth 5 /
vwap_bands 1M-3M-5M, 20 clients round-robin over the tiers) drives a real :class:`engine.book.Engine`
with the e2e price walk (:mod:`benchmarks._e2e_wire`: the instruments take turns, each tick one LP
rewrites its 3-level ladder and becomes the best bid). One tick is one engine batch and one publish
cycle; in each, one instrument's quote changes in all 3 tiers. Every client holds 5 subscriptions
(one per instrument, 265=1, 264=0), made before the clock starts; every session is writable.

Implementations, each with its own hub and sessions, fed the same engine state in the same cycle:

* ``reference``: the publish path before this benchmark existed (``tests/md_reference.py``).
* ``fast``: :class:`MarketDataHub` with ``quote_of`` only, so every subscribed (tier, instrument)
  ladder is copied out of the engine every cycle.
* ``fast+version_of``: the same hub given ``version_of`` (one numpy read of the engine's version
  per subscribed quote), so it copies only the ladders that changed.
* ``gateway``: the hub as ``fixserver/gateway.py`` drives it: ``versions`` (every version in one
  read per cycle) and each session's bodies handed to ``deliver`` as soon as they are complete
  (collected here; the gateway writes them there).

Method: each cycle applies one tick to the engine (untimed), then calls ``publish`` on each
implementation in a rotating order, timing each call with ``perf_counter_ns`` (wall time of one
call on an otherwise idle process; the GC is off while timing). Outputs are compared byte for
byte every cycle (untimed); a mismatch aborts the run. p50/p90/p99 are numpy (linear) percentiles
over cycles; the per-X figure is a cycle's time divided by the X messages it hands to sessions
(20 per cycle here). Ratios are of medians: on a shared 2-core machine a mean measures
preemption as much as code.
"""

from __future__ import annotations

import argparse
import gc
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from benchmarks import _e2e_wire as wire
from benchmarks.e2e import bench_config
from benchmarks.machine import machine
from engine.batch import UpdateBatch
from engine.book import Engine
from engine.config import parse_config
from fixserver.codec import PreparedBody
from fixserver.marketdata import Ladder, MarketDataHub
from fixserver.message import FixMessage
from tests.md_reference import ReferenceMarketDataHub

WARMUP_CYCLES = 500
STEP_NS = 2_000_000  # the e2e latency phase's 500 ticks/s


class Hub(Protocol):
    def on_request(
        self, session: str, tier: int, msg: FixMessage, now_ns: int
    ) -> tuple[list[tuple[bytes, PreparedBody]], object]: ...

    def publish(self, now_ns: int) -> dict[Any, list[tuple[bytes, PreparedBody]]]: ...


class Workload:
    """The engine, the e2e walk, and hubs subscribed like the e2e clients."""

    def __init__(self) -> None:
        self.cfg = cfg = parse_config(bench_config(), "bench_config")
        self.engine = Engine(cfg)
        self.batch = UpdateBatch(4096)
        self.now = 1
        self.n = 0
        for lp in range(wire.N_LPS):
            self.batch.lp_up(lp, self.now)
        for instr in range(wire.N_INSTR):
            for k in range(-wire.N_LPS, 0):  # every LP quoted once, below the walk's start
                self._lp_tick(instr, k)
        self.engine.apply(self.batch, self.now)
        self.batch.clear()

    def _lp_tick(self, instr: int, k: int) -> None:
        lp, base = wire.lp_of(instr, k), wire.INSTRUMENTS[instr].base + k
        for level in range(wire.LEVELS):
            self.batch.set_level(lp, instr, 0, level, base - level, wire.LEVEL_QTY, self.now)
            self.batch.set_level(lp, instr, 1, level, base + wire.SPREAD + level, wire.LEVEL_QTY, self.now)

    def tick(self) -> None:
        """The next tick of the walk, applied as one engine batch."""
        self.now += STEP_NS
        self._lp_tick(*wire.tick_of(self.n))
        self.n += 1
        self.engine.apply(self.batch, self.now)
        self.batch.clear()

    def quote_of(self, tier: int, instr: int) -> tuple[Ladder, int]:
        """What gateway.py hands the hub (``Engine.ladder``)."""
        return self.engine.ladder(tier, instr)

    def version_of(self, tier: int, instr: int) -> int:
        return int(self.engine.quote_state[tier, instr, 2])

    def versions(self) -> list[list[int]]:
        return self.engine.quote_state[:, :, 2].tolist()  # type: ignore[no-any-return]

    def subscribe(self, hub: Hub, n_clients: int) -> Hub:
        for c in range(n_clients):
            for instr, sym in enumerate(self.engine.symbols):
                fields = [(35, b"V"), (262, b"%d" % instr), (263, b"1"), (264, b"0"), (265, b"1"), (267, b"2")]
                fields += [(269, b"0"), (269, b"1"), (146, b"1"), (55, sym.encode())]
                _, reject = hub.on_request(f"BENCH{c + 1:02d}", c % len(self.cfg.tiers), FixMessage(fields), self.now)
                assert reject is None, reject
        return hub

    def hubs(self, n_clients: int) -> dict[str, Hub]:
        cfg = self.cfg
        args = (
            list(self.engine.symbols),
            [i.price_grid() for i in cfg.instruments],
            [i.qty_grid() for i in cfg.instruments],
            [t.depth for t in cfg.tiers],
        )
        return {
            "reference": self.subscribe(ReferenceMarketDataHub(*args, quote_of=self.quote_of), n_clients),
            "fast": self.subscribe(MarketDataHub(*args, quote_of=self.quote_of), n_clients),
            "fast+version_of": self.subscribe(
                MarketDataHub(*args, quote_of=self.quote_of, version_of=self.version_of), n_clients
            ),
            "gateway": self.subscribe(
                _Delivering(
                    MarketDataHub(*args, quote_of=self.quote_of, version_of=self.version_of, versions=self.versions)
                ),
                n_clients,
            ),
        }


class _Delivering:
    """A hub driven with ``deliver``, seen as one that returns its output."""

    def __init__(self, hub: MarketDataHub) -> None:
        self.hub = hub

    def on_request(
        self, session: str, tier: int, msg: FixMessage, now_ns: int
    ) -> tuple[list[tuple[bytes, PreparedBody]], object]:
        return self.hub.on_request(session, tier, msg, now_ns)

    def publish(self, now_ns: int) -> dict[Any, list[tuple[bytes, PreparedBody]]]:
        out: dict[Any, list[tuple[bytes, PreparedBody]]] = {}
        self.hub.publish(now_ns, deliver=out.__setitem__)
        return out


def _wire_view(out: dict[Any, list[tuple[bytes, PreparedBody]]]) -> list[tuple[Any, list[tuple[bytes, bytes, bytes]]]]:
    return [(s, [(req, b.msg_type, b.body) for req, b in bodies]) for s, bodies in out.items()]


def run(cycles: int, n_clients: int = 20) -> dict[str, Any]:
    work = Workload()
    hubs = work.hubs(n_clients)
    names = list(hubs)
    samples: dict[str, list[int]] = {name: [] for name in names}
    sent: list[int] = []
    clock: Callable[[], int] = time.perf_counter_ns
    gc.collect()
    gc.disable()
    try:
        for cycle in range(WARMUP_CYCLES + cycles):
            work.tick()
            outs = {}
            for r in range(len(names)):
                name = names[(cycle + r) % len(names)]
                started = clock()
                outs[name] = hubs[name].publish(work.now)
                elapsed = clock() - started
                if cycle >= WARMUP_CYCLES:
                    samples[name].append(elapsed)
            expected = _wire_view(outs["reference"])
            for name in names[1:]:
                if _wire_view(outs[name]) != expected:
                    raise AssertionError(f"cycle {cycle}: {name} sent other bytes than the reference")
            if cycle >= WARMUP_CYCLES:
                sent.append(sum(len(bodies) for bodies in outs["reference"].values()))
    finally:
        gc.enable()
    per_cycle_sent = float(np.mean(sent))
    results: dict[str, Any] = {}
    for name in names:
        us = np.asarray(samples[name], dtype=np.float64) / 1000.0
        p50, p90, p99 = (round(float(x), 1) for x in np.percentile(us, [50, 90, 99]))
        results[name] = {
            "cycle_p50_us": p50,
            "cycle_p90_us": p90,
            "cycle_p99_us": p99,
            "cycle_mean_us": round(float(us.mean()), 1),
            "per_x_sent_p50_us": round(p50 / per_cycle_sent, 2),
        }
    base = results["reference"]["cycle_p50_us"]
    for name in names:
        results[name]["speedup_p50"] = round(base / results[name]["cycle_p50_us"], 1)
    return {
        "workload": (
            f"e2e config, {n_clients} sessions x 5 subscriptions (265=1, full tier depth), one LP tick per cycle: "
            f"one instrument changes in all 3 tiers; {per_cycle_sent:.1f} X messages handed out per cycle"
        ),
        "method": "interleaved per cycle, rotating order, perf_counter_ns per publish call, GC off, outputs compared",
        "cycles": cycles,
        "machine": machine(),
        "results": results,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=5_000)
    parser.add_argument("--out", type=Path, default=None, help="also write the report here as JSON")
    args = parser.parse_args()
    report = run(args.cycles)
    print(report["workload"])
    print(f"{report['cycles']} cycles; load average at start {report['machine'].get('load_average_at_start')}")
    print(f"{'implementation':<18}{'p50 µs':>9}{'p90 µs':>9}{'p99 µs':>9}{'mean µs':>9}{'µs/X sent':>11}{'x ref':>7}")
    for name, r in report["results"].items():
        print(
            f"{name:<18}{r['cycle_p50_us']:>9}{r['cycle_p90_us']:>9}{r['cycle_p99_us']:>9}{r['cycle_mean_us']:>9}"
            f"{r['per_x_sent_p50_us']:>11}{r['speedup_p50']:>7}"
        )
    if args.out is not None:
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
