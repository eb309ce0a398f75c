"""Feeds benchmark: raw LP socket bytes (FIX 4.4 35=W / 35=X) → engine state.

Run with ``make bench-feeds`` (``python -m benchmarks.feeds``). Writes
``benchmarks/results/feeds.json`` and prints a table.

Workload: 10 LPs (7 incremental: one 35=W then 35=X keyed by MDEntryID; 3 snapshot-only: a full
35=W every step) quoting 6 instruments 10 levels deep, generated ahead of time from a seeded
:class:`feeds.sim_market.SimMarket` (one instrument drifts from 2.50 through zero to -1.00) and
encoded with simplefix. Each LP's byte stream is cut into reads of 4-64 KiB (seeded, uniform), so
reads end mid-message as socket reads do; reads of the 10 LPs are interleaved round-robin.

Per read, both implementations do the whole path into a real :class:`engine.book.Engine` (one
tier, full depth 5): decode the bytes, normalise the LP book into changed-level rows, and
``Engine.apply`` the batch (which reprices the dirty instruments).

* ``ours``: :meth:`feeds.md_decode.MdDecoder.feed` (one Numba kernel per read) + ``apply``.
* ``simplefix_path``: the plain-Python reference (:mod:`feeds._reference_path`, frames located
  by BodyLength and CheckSum-checked, each parsed by ``simplefix.FixParser``, per-entry Python
  book updates) + the same ``apply`` into its own Engine. It runs on the first reads only (it is
  ~100x slower); its engine state is checked equal to ours at that point.

Method: ``perf_counter_ns`` around each read's decode+apply; throughput = entries (or messages)
/ total time; per-message latency = a read's time / the messages completed in it (reads that
complete none are in the throughput, not in the percentiles); numpy (linear) percentiles; GC off
while timing; JIT warmed before timing; the cold compile (empty Numba cache, fresh process) is
measured separately.
"""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.machine import machine
from engine.batch import UpdateBatch
from engine.book import Engine
from engine.config import AggregationMode, Config, EngineConfig, InstrumentConfig, LpConfig, TierConfig
from feeds._md_stream import sim_traffic
from feeds._reference_path import ReferenceMdPath
from feeds.md_decode import MdDecoder, warm_up
from feeds.sim_market import Scenario, ScenarioKind, SimConfig, SimInstrument, SimLp, SimMarket

RESULTS = Path(__file__).resolve().parent / "results" / "feeds.json"
SEED = 20261123
N_LPS = 10
SNAPSHOT_ONLY = {2, 5, 8}  # these LPs send full 35=W snapshots only
LEVELS = 10
STEPS = 600  # market steps of 50 ms
READ_MIN, READ_MAX = 4 * 1024, 64 * 1024
BASELINE_READS = 150  # the simplefix path runs on this many reads (of ~800)
WARM_READS = 100

INSTRUMENTS = [
    # symbol, tick, qty step, start mid
    ("EUR/USD", "0.00001", "1000", "1.08500"),
    ("GBP/USD", "0.00001", "1000", "1.26500"),
    ("USD/JPY", "0.001", "1000", "151.250"),
    ("XAU/USD", "0.01", "1", "2650.00"),
    ("US500", "0.25", "1", "5900.00"),
    ("WTI", "0.01", "1", "2.50"),
]


def config() -> Config:
    symbols = [s for s, *_ in INSTRUMENTS]
    return Config(
        instruments=[InstrumentConfig(symbol=s, tick_size=t, qty_step=q) for s, t, q, _ in INSTRUMENTS],
        lps=[
            LpConfig(name=f"LP{j}", instruments=symbols, depth=LEVELS, incremental=j not in SNAPSHOT_ONLY)
            for j in range(N_LPS)
        ],
        tiers=[TierConfig(name="depth", mode=AggregationMode.FULL_DEPTH, depth=5, bid_markup=1, ask_markup=1)],
        engine=EngineConfig(max_levels=LEVELS),
    )


def generate(cfg: Config) -> tuple[list[tuple[int, bytes]], dict[str, Any]]:
    """The LP traffic as interleaved reads ``(lp, bytes)``, and a description of it."""
    sim = SimConfig(
        seed=SEED,
        step_ms=50,
        instruments=[
            SimInstrument(
                symbol=s, start_mid=mid, vol_ticks=1, half_spread_ticks=3, level_qty=1000 if q == "1" else 1
            )
            for s, _, q, mid in INSTRUMENTS
        ],
        lps=[SimLp(name=f"LP{j}", depth=LEVELS, incremental=j not in SNAPSHOT_ONLY) for j in range(N_LPS)],
        scenarios=[
            Scenario(kind=ScenarioKind.DRIFT, at_ms=0, duration_ms=STEPS * 50, instrument="WTI", target="-1.00")
        ],
    )
    grids = {i.symbol: i.price_grid() for i in cfg.instruments}
    market = SimMarket(sim, grids)
    both = {i.symbol: (i.price_grid(), i.qty_grid()) for i in cfg.instruments}
    streams = [bytearray() for _ in range(N_LPS)]
    kinds = {"W": 0, "X": 0}
    n_msgs = 0
    for j, msg in sim_traffic(
        market, STEPS, [lp.name for lp in cfg.lps], [lp.incremental for lp in cfg.lps],
        [s for s, *_ in INSTRUMENTS], both,
    ):  # fmt: skip
        streams[j] += msg
        kinds["W" if b"\x0135=W\x01" in msg[:30] else "X"] += 1
        n_msgs += 1
    rng = np.random.default_rng(SEED)
    per_lp: list[list[bytes]] = []
    for data in streams:
        cuts, pos = [], 0
        while pos < len(data):
            size = int(rng.integers(READ_MIN, READ_MAX + 1))
            cuts.append(bytes(data[pos : pos + size]))
            pos += size
        per_lp.append(cuts)
    reads: list[tuple[int, bytes]] = []
    for k in range(max(len(c) for c in per_lp)):
        for j, cuts in enumerate(per_lp):
            if k < len(cuts):
                reads.append((j, cuts[k]))
    total = sum(len(s) for s in streams)
    described = {
        "lps": N_LPS,
        "snapshot_only_lps": len(SNAPSHOT_ONLY),
        "instruments": [s for s, *_ in INSTRUMENTS],
        "levels_per_side": LEVELS,
        "market_steps": STEPS,
        "messages": n_msgs,
        "messages_w": kinds["W"],
        "messages_x": kinds["X"],
        "bytes": total,
        "mean_message_bytes": round(total / n_msgs, 1),
        "reads": len(reads),
        "read_bytes": [READ_MIN, READ_MAX],
        "engine": "engine.book.Engine (real), 1 tier full_depth depth 5, apply() per read",
        "seed": SEED,
    }
    return reads, described


def run(
    impl: str, cfg: Config, reads: list[tuple[int, bytes]], into_engine: bool = True
) -> tuple[dict[str, Any], Engine]:
    """Feed every read through ``impl`` (and into a fresh Engine unless ``into_engine`` is False)."""
    engine = Engine(cfg)
    if impl == "ours":
        feeds: list[Any] = [MdDecoder.from_config(cfg, lp.name) for lp in cfg.lps]
    else:
        feeds = []
        for j, lp in enumerate(cfg.lps):
            fast = MdDecoder.from_config(cfg, lp.name)  # only for its resolved per-LP tables
            price = [cfg.instruments[i].price_grid() if fast.grids[i, 0] else None for i in range(len(cfg.instruments))]
            qty = [cfg.instruments[i].qty_grid() if fast.grids[i, 0] else None for i in range(len(cfg.instruments))]
            symbols = {lp.symbol_map.get(s, s): engine.instrument_index(s) for s in lp.instruments}
            feeds.append(ReferenceMdPath(j, price, qty, symbols, fast.books.levels, framer="simplefix"))
    batch = UpdateBatch(4096)
    for j in range(len(cfg.lps)):
        batch.lp_up(j, 0)
    engine.apply(batch, 0)
    times = np.zeros(len(reads), np.int64)
    msgs = np.zeros(len(reads), np.int64)
    entries_before = 0
    clock = time.perf_counter_ns
    apply = engine.apply if into_engine else (lambda batch, now: 0)
    gc.disable()
    try:
        for n, (j, data) in enumerate(reads):
            now = (n + 1) * 100_000
            feed = feeds[j]
            t0 = clock()
            batch.n = 0
            out = feed.feed(data, now, batch)
            apply(batch, now)
            times[n] = clock() - t0
            msgs[n] = len(out.messages) if impl == "ours" else len(out)
    finally:
        gc.enable()
    entries = sum(f.counters["entries"] for f in feeds) - entries_before
    applied = sum(f.counters["applied"] for f in feeds)
    total_s = times.sum() / 1e9
    per_msg_us = (times[msgs > 0] / msgs[msgs > 0]) / 1000.0
    result = {
        "entries_per_s": round(entries / total_s),
        "msgs_per_s": round(int(msgs.sum()) / total_s),
        "p50_us": round(float(np.percentile(per_msg_us, 50)), 3),
        "p99_us": round(float(np.percentile(per_msg_us, 99)), 3),
        "read_p50_us": round(float(np.percentile(times, 50)) / 1000.0, 1),
        "read_p99_us": round(float(np.percentile(times, 99)) / 1000.0, 1),
        "reads": len(reads),
        "messages": int(msgs.sum()),
        "entries": entries,
        "entries_dropped": entries - applied,
        "total_s": round(total_s, 3),
    }
    return result, engine


def cold_compile_seconds() -> float:
    """The decode kernel's JIT compile in a fresh process with an empty Numba cache."""
    code = "from feeds.md_decode import warm_up\nprint(warm_up())\n"
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> int:
    from rich.console import Console
    from rich.table import Table

    started = time.perf_counter()
    load = [round(x, 2) for x in os.getloadavg()]
    cold_s = cold_compile_seconds()
    warm_s = warm_up()
    cfg = config()
    t0 = time.perf_counter()
    reads, workload = generate(cfg)
    workload["generate_s"] = round(time.perf_counter() - t0, 1)
    Engine(cfg)  # the engine's own JIT warm-up, before any clock

    run("ours", cfg, reads[:WARM_READS])  # warm caches and branch predictors on throwaway state
    ours, _ = run("ours", cfg, reads)
    decode_only, _ = run("ours", cfg, reads, into_engine=False)
    base, base_engine = run("simplefix_path", cfg, reads[:BASELINE_READS])
    # The baseline must have built the same engine state as ours at the same point.
    _, check_engine = run("ours", cfg, reads[:BASELINE_READS])
    same = bool(np.array_equal(check_engine.arena, base_engine.arena))
    base["reads_note"] = f"first {BASELINE_READS} of {len(reads)} reads (same engine state as ours there: {same})"
    results = {"ours": ours, "simplefix_path": base}
    decode_only["note"] = "ours without Engine.apply: decode + normalisation only"
    ratio = {
        "entries_per_s": round(ours["entries_per_s"] / base["entries_per_s"], 1),
        "p50_us": round(base["p50_us"] / ours["p50_us"], 1),
    }
    report = {
        "benchmark": "feeds",
        "workload": workload,
        "machine": {**machine(), "load_avg_at_start": load},
        "results": results,
        "ours_decode_only": decode_only,
        "ours_over_simplefix_path": ratio,
        "engine_state_equal": same,
        "compile": {"cold_compile_s": round(cold_s, 2), "warm_start_s": round(warm_s, 3)},
        "targets": {"entries_per_s": 500_000, "ours_over_simplefix_path": 20},
        "method": "perf_counter_ns per read (decode + normalise + Engine.apply); per-message = read time / "
        "messages completed in the read; numpy linear percentiles; GC off while timing",
        "runtime_s": 0.0,
    }
    report["runtime_s"] = round(time.perf_counter() - started, 1)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")

    table = Table(
        title=f"feeds: raw LP bytes → engine state ({N_LPS} LPs, {len(INSTRUMENTS)} instruments, "
        f"{workload['messages']:,} W/X msgs, reads 4-64 KiB)"
    )
    for col in ("impl", "entries/s", "msgs/s", "p50 µs/msg", "p99 µs/msg", "read p50 µs", "read p99 µs", "reads"):
        table.add_column(col, justify="right", no_wrap=True)
    for name, r in [*results.items(), ("ours, no apply", decode_only)]:
        table.add_row(
            name, f"{r['entries_per_s']:,}", f"{r['msgs_per_s']:,}", f"{r['p50_us']:.2f}", f"{r['p99_us']:.2f}",
            f"{r['read_p50_us']:.1f}", f"{r['read_p99_us']:.1f}", str(r["reads"]),
        )  # fmt: skip
    console = Console(width=140)
    console.print(table)
    console.print(
        f"ours / simplefix_path: {ratio['entries_per_s']}x entries/s, {ratio['p50_us']}x p50 "
        f"(targets: >= 500,000 entries/s and >= 20x); engine state equal on the shared reads: {same}"
    )
    console.print(
        f"{workload['mean_message_bytes']:.0f} bytes/msg, {ours['entries'] / max(ours['messages'], 1):.1f} "
        f"entries/msg; cold JIT compile {cold_s:.1f} s, warm start {warm_s:.2f} s; "
        f"load average at start {load} on {os.cpu_count()} cores; "
        f"whole benchmark {report['runtime_s']} s -> {RESULTS.relative_to(Path.cwd())}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
