"""Engine benchmark: cost per LP update through apply → aggregate → price 3 tiers → publish.

Run with ``make bench-engine`` (``python -m benchmarks.engine``). Writes
``benchmarks/results/engine.json`` and prints a table.

Workload: 10 LPs x 10 levels per side; 1 and 20 instruments; 3 tiers (full_depth depth 5,
top_of_book, vwap_bands 1/3/5); a seeded random walk per instrument (one of the 20 starts at
zero and crosses it). Each update rewrites one level of one LP's ladder around the current mid;
clocks advance 10 µs per update. Both books start from a full snapshot (untimed).

Method: the same pre-generated batches go to the Numba engine and to the plain-Python reference
(the baseline, measured in the same run on fewer batches). Every ``apply`` call is timed with
``perf_counter_ns``; the per-update cost of a batch is its time divided by its size; percentiles
are numpy's (linear) over those per-batch values; the GC is off while timing. The JIT is warmed up before timing; the
compile time (cold, in a fresh process with an empty Numba cache) is reported separately.
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
from engine.reference import ReferenceEngine

RESULTS = Path(__file__).resolve().parent / "results" / "engine.json"
N_LPS = 10
LEVELS = 10
SEED = 20260101
STEP_NS = 10_000
MID_MOVE_P = 0.005  # chance that an update comes with a one-tick move of its instrument's mid
# Batches timed per implementation and batch size (the reference is ~100x slower).
ITERATIONS = {"numba": {1: 60_000, 64: 3_000}, "reference": {1: 3_000, 64: 60}}


def workload_config(n_instr: int) -> Config:
    symbols = [f"SYM{i:02d}" for i in range(n_instr)]
    return Config(
        instruments=[
            InstrumentConfig(symbol=s, tick_size="0.00001", qty_step="1000", spike_filter_ticks=50) for s in symbols
        ],
        lps=[
            LpConfig(name=f"LP{j}", instruments=symbols, haircut_ticks=j % 2, size_weight_pct=100 - 5 * (j % 3))
            for j in range(N_LPS)
        ],
        tiers=[
            TierConfig(
                name="depth",
                mode=AggregationMode.FULL_DEPTH,
                depth=5,
                bid_markup=1,
                ask_markup=1,
                min_spread_ticks=2,
                skew_pct=50,
                max_skew_ticks=5,
            ),
            TierConfig(
                name="top",
                mode=AggregationMode.TOP_OF_BOOK,
                depth=1,
                bid_markup=3,
                ask_markup=3,
                min_spread_ticks=10,
                vol_widen_pct=100,
                max_vol_widen_ticks=20,
                round_ticks=10,
            ),
            TierConfig(
                name="bands",
                mode=AggregationMode.VWAP_BANDS,
                depth=3,
                size_bands=[1000, 3000, 5000],
                bid_markup=2,
                ask_markup=2,
                min_spread_ticks=4,
            ),
        ],
        engine=EngineConfig(max_levels=LEVELS),
    )


class Walk:
    """Seeded LP update stream: a random-walk mid per instrument, LPs quoting around it."""

    def __init__(self, n_instr: int, seed: int = SEED) -> None:
        self.rng = np.random.default_rng(seed)
        self.n_instr = n_instr
        self.mid = np.full(n_instr, 110_000, np.int64)
        if n_instr > 1:
            self.mid[-1] = 0  # this one crosses zero back and forth
        self.lp_offset = self.rng.integers(0, 2, N_LPS)
        self.now = 0

    def price(self, lp: int, instr: int, side: int, level: int) -> int:
        half = 2 + int(self.lp_offset[lp]) + level
        return int(self.mid[instr]) - half if side == 0 else int(self.mid[instr]) + half

    def snapshot(self) -> UpdateBatch:
        batch = UpdateBatch(self.n_instr * N_LPS * LEVELS * 2 + N_LPS)
        for lp in range(N_LPS):
            batch.lp_up(lp, 0)
            for i in range(self.n_instr):
                for side in (0, 1):
                    for level in range(LEVELS):
                        batch.set_level(lp, i, side, level, self.price(lp, i, side, level), 1000 + 100 * level, 0)
        return batch

    def batches(self, n_batches: int, size: int) -> list[tuple[UpdateBatch, int]]:
        out = []
        rng = self.rng
        for _ in range(n_batches):
            batch = UpdateBatch(size)
            for _ in range(size):
                self.now += STEP_NS
                i = int(rng.integers(self.n_instr))
                # The mid moves slowly next to how often each LP slot is refreshed, so books stay
                # mostly uncrossed and the timed path is the full pricing one (checked below).
                if rng.random() < MID_MOVE_P:
                    self.mid[i] += 1 if rng.random() < 0.5 else -1
                lp, side = int(rng.integers(N_LPS)), int(rng.integers(2))
                # Most updates touch the top of the book, as LP feeds do.
                level = 0 if rng.random() < 0.5 else int(rng.integers(LEVELS))
                qty = int(rng.integers(1, 50)) * 100
                batch.set_level(lp, i, side, level, self.price(lp, i, side, level), qty, self.now)
            out.append((batch, self.now))
        return out


def measure(impl: str, n_instr: int, batch_size: int, n_batches: int) -> dict[str, Any]:
    cfg = workload_config(n_instr)
    engine: Engine | ReferenceEngine = Engine(cfg) if impl == "numba" else ReferenceEngine(cfg)
    walk = Walk(n_instr)
    engine.apply(walk.snapshot(), 0)
    warm = walk.batches(max(n_batches // 20, 5), batch_size)
    batches = walk.batches(n_batches, batch_size)
    for batch, now in warm:  # warm caches and branch predictors, not timed
        engine.apply(batch, now)
    timings = np.empty(n_batches, np.int64)
    crossed_before = sum(engine.counters(i.symbol)["crossed_input"] for i in cfg.instruments)
    repriced = 0
    clock = time.perf_counter_ns
    apply = engine.apply
    gc.disable()  # a collection inside a timed call measures Python's GC, not the engine
    try:
        for n, (batch, now) in enumerate(batches):
            t0 = clock()
            repriced += apply(batch, now)
            timings[n] = clock() - t0
    finally:
        gc.enable()
    quoted = two_sided_share(engine, cfg)
    crossed = sum(engine.counters(i.symbol)["crossed_input"] for i in cfg.instruments) - crossed_before
    per_update_us = timings / batch_size / 1000.0
    mean = float(per_update_us.mean())
    return {
        "p50_us": round(float(np.percentile(per_update_us, 50)), 4),
        "p99_us": round(float(np.percentile(per_update_us, 99)), 4),
        "p999_us": round(float(np.percentile(per_update_us, 99.9)), 4),
        "mean_us": round(mean, 4),
        "per_s": round(1e6 / mean),
        "batches": n_batches,
        "batch_p99_us": round(float(np.percentile(timings, 99)) / 1000.0, 3),
        "reprices_per_batch": round(repriced / n_batches, 2),
        "two_sided_share_at_end": quoted,
        "crossed_input_share": round(crossed / max(repriced, 1), 4),
    }


def two_sided_share(engine: Engine | ReferenceEngine, cfg: Config) -> float:
    """Share of (tier, instrument) quotes that are two-sided: the workload must price, not
    mostly publish "no quote" (a cheaper path)."""
    quotes = [engine.quote(t.name, i.symbol) for t in cfg.tiers for i in cfg.instruments]
    return round(sum(1 for q in quotes if q.bids and q.asks) / len(quotes), 3)


def cold_compile_seconds() -> float:
    """Compile the kernels in a fresh process with an empty Numba cache."""
    code = (
        "from benchmarks.engine import workload_config\n"
        "from engine.book import Engine\n"
        "print(Engine(workload_config(1)).compile_seconds)\n"
    )
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> int:
    from rich.console import Console
    from rich.table import Table

    started = time.perf_counter()
    host = machine()  # before the benchmark adds its own load
    t0 = time.perf_counter()
    Engine(workload_config(1))  # warm-up in this process (Numba cache may be warm)
    warm_s = time.perf_counter() - t0
    cold_s = cold_compile_seconds()
    results: dict[str, Any] = {}
    for impl, sizes in ITERATIONS.items():
        results[impl] = {}
        for size, n_batches in sizes.items():
            by_instr = {str(n): measure(impl, n, size, n_batches) for n in (1, 20)}
            # The headline numbers are the 20-instrument run (more dirty instruments per batch).
            results[impl][f"batch{size}"] = {**by_instr["20"], "instruments": 20, "by_instruments": by_instr}

    def speedup(size: int, n: str, key: str) -> float:
        ref = results["reference"][f"batch{size}"]["by_instruments"][n][key]
        return round(ref / results["numba"][f"batch{size}"]["by_instruments"][n][key], 1)

    def speedups(key: str) -> dict[str, dict[str, float]]:
        return {f"batch{size}": {f"instruments_{n}": speedup(size, n, key) for n in ("1", "20")} for size in (1, 64)}

    ratio, ratio_p50 = speedups("mean_us"), speedups("p50_us")
    results["reference_over_numba_mean"] = ratio
    results["reference_over_numba_p50"] = ratio_p50
    results["compile"] = {"cold_compile_s": round(cold_s, 2), "warm_start_s": round(warm_s, 3)}
    report = {
        "benchmark": "engine",
        "workload": {
            "lps": N_LPS,
            "levels_per_side": LEVELS,
            "instruments": [1, 20],
            "tiers": ["full_depth(depth 5)", "top_of_book", "vwap_bands(1000/3000/5000)"],
            "stream": "seeded random walk per instrument (one of 20 crosses zero), 10 µs per update, "
            "50% top-of-book updates",
            "seed": SEED,
            "batch_sizes": [1, 64],
            "method": "perf_counter_ns per apply() call / batch size; numpy percentiles",
        },
        "machine": host,
        "results": results,
        "runtime_s": round(time.perf_counter() - started, 1),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")

    table = Table(title="engine: cost per LP update (µs), 10 LPs x 10 levels, 3 tiers")
    for col in ("impl", "instr", "batch", "p50", "p99", "p99.9", "mean", "updates/s", "ref/numba mean|p50"):
        table.add_column(col, justify="right", no_wrap=True)
    for impl in ("numba", "reference"):
        for size in (1, 64):
            for n in ("1", "20"):
                r = results[impl][f"batch{size}"]["by_instruments"][n]
                table.add_row(
                    impl,
                    n,
                    str(size),
                    f"{r['p50_us']:.3f}",
                    f"{r['p99_us']:.3f}",
                    f"{r['p999_us']:.3f}",
                    f"{r['mean_us']:.3f}",
                    f"{r['per_s']:,}",
                    f"{ratio[f'batch{size}'][f'instruments_{n}']}x | {ratio_p50[f'batch{size}'][f'instruments_{n}']}x"
                    if impl == "numba"
                    else "",
                )
    console = Console(width=140)
    console.print(table)
    console.print(
        f"cold JIT compile: {cold_s:.1f} s; warm start (cache): {warm_s:.2f} s; "
        f"load average at start {host['load_average_at_start']} on {host['cores']} cores; "
        f"whole benchmark {report['runtime_s']} s -> {RESULTS.relative_to(Path.cwd())}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
