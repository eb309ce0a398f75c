"""End-to-end benchmark: LP tick → client quote, and client order → execution report, over FIX.

Run with ``make bench-e2e`` (``python -m benchmarks.e2e``; ``--quick`` for a smoke run, ``--ticks N``
for the measured tick count). Writes ``benchmarks/results/e2e.json`` and prints a table.

Process layout (2 processes under test, all on 127.0.0.1):

* the **gateway**, ``lagg serve --market fix`` in its own process, on a generated config: 10 LPs,
  5 instruments, 3 tiers (top_of_book, full_depth depth 5, vwap_bands 1M/3M/5M), 20 clients
  (internalised routing, no limits), FIX store and journal in a temp dir; its metrics endpoint on
  a loopback port, read before and after the tick-to-quote phase for the time per stage
  (``lagg_stage_latency_seconds``: wait, engine, orders, publish, fanout);
* the **driver** (this process, uvloop): the 10 LPs as FIX acceptors that the gateway's LP feeds
  log on to, and the 20 client FIX sessions, each subscribed to all 5 instruments (265=1: W then
  X). It speaks FIX from precomputed templates (:mod:`benchmarks._e2e_wire`), not through our
  session layer, so its own cost per message is a few microseconds (:mod:`benchmarks._e2e_driver`).
* the **floor**, measured in the same run once the gateway has stopped: a plain uvloop TCP forwarder
  in its own process (:mod:`benchmarks._e2e_floor`) standing where the gateway stands, driven by the
  same driver with the same LP tick bytes (same size), the same 10 LP connections, the same pacing
  and tick count, read back on one client connection by the same parser. Its latency is two
  loopback hops and two loop wake-ups with no work in between. The target is against this floor.
* the **fan-out floor**, measured right after it: the same forwarder, driver, ticks, pacing and
  warm-up, read back on 20 client connections, so each tick is 20 loopback writes in the forwarder
  and 20 reads in the driver, and nothing else. Any single-process gateway that sends each of 20
  clients its own quote pays at least this kernel and driver cost per tick, so it shows how much of
  tick-to-quote over the floor the 20 writes alone account for on this machine. It is a reference
  measured in every run, not the target.

Workload: a monotone price walk (see :mod:`benchmarks._e2e_wire`) in which every LP tick becomes
the new best bid, so the tick behind any quote a client receives is known from its price. The
instruments take turns; each tick is one LP's 35=X rewriting its 3-level ladder (6 entries).
Phases: warm-up ticks and orders (not measured), orders, latency ticks (paced), then the rest of
the ticks up to the total at a higher rate for the memory check.

Method:

* tick_to_quote: for each measured tick, the time from the driver writing the LP message to each
  client's read that contains a W/X showing that tick's price as the tier's best bid. **Every
  client's** receipt is a sample (the fan-out view: the 20th session written pays for the 19
  before it); the first client's receipt per tick is reported beside it. A client that was sent
  a later tick's price before reading an earlier one (conflation, or two ticks of one instrument
  in one gateway batch) has no sample for the earlier tick; ``ticks_seen_share`` says how many.
* order_round_trip: market IOC NewOrderSingle (internalised) written → the first
  ExecutionReport for its ClOrdID read; orders are paced, round-robin over the 20 clients, with no
  ticks in flight.
* floor_echo: the same as tick_to_quote, through the forwarder, one client.
* floor_fanout: the same as tick_to_quote, through the forwarder, 20 clients: every client's
  receipt is a sample, and the first client's per tick is floor_fanout_first_client; the ratios
  of tick_to_quote (and its first client) over these are reported beside the target's ratio.
* rss_mb: VmRSS of the gateway process from /proc after the latency phase (~100k ticks) and after
  the total (1M ticks), each read once every client shows the last tick sent (the gateway has
  taken every tick; none is queued in a socket).

* cpu: the cores used during each measured phase by the server under test (gateway or forwarder),
  by the driver and by everything else on the machine (``/proc``), and the server's CPU time per
  tick: other jobs share this machine's two cores, and a gateway short of CPU queues.

Clocks: ``perf_counter_ns`` in the driver at write and at ``data_received`` entry (reads are parsed
after every ready socket has been stamped); numpy (linear) percentiles over all samples; the
driver's GC is off while measuring. The load average is recorded at start and end: other jobs on
this machine move every number.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import IO, Any

import numpy as np

from benchmarks import _e2e_wire as wire
from benchmarks._e2e_driver import Driver, Recorder
from benchmarks.machine import machine
from engine.demo import stop_process

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results" / "e2e.json"
N_CLIENTS = 20
PROFILE = os.environ.get("LAGG_E2E_PROFILE")  # debugging: run the gateway under cProfile, stats to this file
PASSWORD = b"bench"
ORDER_QTY_STEPS = 10  # 10k EUR, 10 oz gold, 10 barrels
# name, mode, depth, markup in ticks (both sides), extra TOML
TIERS = [
    ("top", "top_of_book", 1, 1, ""),
    ("depth", "full_depth", 5, 2, ""),
    ("bands", "vwap_bands", 3, 3, "size_bands = [1000, 3000, 5000]\n"),
]


@dataclass(frozen=True)
class Plan:
    latency_ticks: int = 100_000  # measured, paced; also each floor's tick count
    total_ticks: int = 1_000_000  # every tick the gateway gets, for the memory check
    warmup_ticks: int = 2_000
    # Per second, latency phase and floors: about half of what this gateway sustains with 20
    # clients on this 2-core machine (~1,000/s, where conflation starts), so the numbers are
    # latency rather than queueing; it makes the run ~11 minutes.
    tick_rate: float = 500.0
    # The rest up to total_ticks goes in bursts of this many ticks, each sent at once and followed
    # by a wait until every client shows the burst's last tick: as fast as the gateway takes them,
    # with nothing left queued in front of it when its memory is read.
    bulk_burst: int = 5_000
    warmup_orders: int = 200
    orders: int = 5_000
    order_rate: float = 500.0


QUICK = Plan(latency_ticks=3_000, total_ticks=12_000, warmup_ticks=500, tick_rate=1_000.0, bulk_burst=2_000,
             warmup_orders=50, orders=300, order_rate=300.0)  # fmt: skip


def bench_config() -> str:
    """The gateway's config (TOML): 10 LPs, 5 instruments, 3 tiers, 20 clients."""
    symbols = ", ".join(f'"{inst.symbol}"' for inst in wire.INSTRUMENTS)
    digest = hashlib.sha256(PASSWORD).hexdigest()
    parts = ["[engine]\nmax_levels = 10\n", '[server]\nhost = "127.0.0.1"\nsender_comp_id = "LAGG"\nheartbeat_s = 30\n']
    for inst in wire.INSTRUMENTS:
        parts.append(f'[[instruments]]\nsymbol = "{inst.symbol}"\ntick_size = "{inst.tick_size}"\n'
                     f'qty_step = "{inst.qty_step}"\n')  # fmt: skip
    for lp in range(wire.N_LPS):
        # Staleness well above the order phase, in which no LP ticks.
        parts.append(f'[[lps]]\nname = "LP{lp + 1:02d}"\ntarget_comp_id = "LP{lp + 1:02d}"\ninstruments = [{symbols}]\n'
                     f'depth = {wire.LEVELS}\nstaleness_ms = 60000\n')  # fmt: skip
    for name, mode, depth, markup, extra in TIERS:
        parts.append(f'[[tiers]]\nname = "{name}"\nmode = "{mode}"\ndepth = {depth}\nbid_markup = {markup}\n'
                     f"ask_markup = {markup}\nmin_spread_ticks = 2\n{extra}")  # fmt: skip
    for c in range(N_CLIENTS):
        parts.append(f'[[clients]]\nname = "Bench {c + 1}"\nsender_comp_id = "BENCH{c + 1:02d}"\n'
                     f'tier = "{TIERS[c % len(TIERS)][0]}"\npassword_sha256 = "{digest}"\n'
                     'routing = "internalise"\n')  # fmt: skip
    return "\n".join(parts)


def latency_summary(samples_ns: Sequence[int] | np.ndarray) -> dict[str, float | int]:
    """p50/p90/p99/p99.9/max in µs (numpy linear percentiles) and the sample count."""
    arr = np.asarray(samples_ns, dtype=np.float64) / 1000.0
    if arr.size == 0:
        return {"p50_us": 0.0, "p90_us": 0.0, "p99_us": 0.0, "p999_us": 0.0, "max_us": 0.0, "samples": 0}
    p50, p90, p99, p999 = (round(float(x), 1) for x in np.percentile(arr, [50, 90, 99, 99.9]))
    return {"p50_us": p50, "p90_us": p90, "p99_us": p99, "p999_us": p999, "max_us": round(float(arr.max()), 1),
            "samples": int(arr.size)}  # fmt: skip


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    raise RuntimeError(f"no VmRSS for pid {pid}")


class CpuShare:
    """CPU used during a phase, in cores: by the process under test, by the driver, and by
    everything else on the machine (other jobs share it, and take the same cores)."""

    _CLK = os.sysconf("SC_CLK_TCK")

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._start = (time.perf_counter(), self._proc(pid), self._proc(os.getpid()), self._busy())

    @classmethod
    def _proc(cls, pid: int) -> float:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / cls._CLK  # utime + stime

    @classmethod
    def _busy(cls) -> float:
        values = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        return (sum(values) - values[3] - values[4]) / cls._CLK  # all but idle and iowait

    def stop(self, events: int) -> dict[str, float]:
        t0, served0, driver0, busy0 = self._start
        wall = time.perf_counter() - t0
        served = self._proc(self.pid) - served0
        driver = self._proc(os.getpid()) - driver0
        busy = self._busy() - busy0
        return {
            "server_cores": round(served / wall, 3), "driver_cores": round(driver / wall, 3),
            "other_cores": round(max(0.0, busy - served - driver) / wall, 3),
            "server_cpu_us_per_tick": round(1e6 * served / max(events, 1), 1),
        }  # fmt: skip


def scrape_stages(port: int) -> dict[str, dict[str, Any]]:
    """The gateway's ``lagg_stage_latency_seconds`` histograms: per stage, count, sum and the
    cumulative bucket counts (from its /metrics endpoint on loopback)."""
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    stages: dict[str, dict[str, Any]] = {}
    for family in text_string_to_metric_families(text):
        if family.name != "lagg_stage_latency_seconds":
            continue
        for sample in family.samples:
            stage = stages.setdefault(sample.labels["stage"], {"count": 0.0, "sum": 0.0, "buckets": {}})
            if sample.name.endswith("_bucket"):
                stage["buckets"][float(sample.labels["le"])] = sample.value
            elif sample.name.endswith("_count"):
                stage["count"] = sample.value
            elif sample.name.endswith("_sum"):
                stage["sum"] = sample.value
    return stages


def stage_summary(before: dict[str, dict[str, Any]], after: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per stage over a phase: batches, mean µs (exact: sum/count), and the histogram bucket
    bounds that hold the p50 and p99 (the buckets are 1-2.5-5 steps, so these are upper bounds)."""
    out: dict[str, dict[str, Any]] = {}
    order = ("wait", "engine", "orders", "publish", "fanout")  # a tick's path through the gateway
    for stage, end in sorted(after.items(), key=lambda kv: order.index(kv[0]) if kv[0] in order else len(order)):
        start = before.get(stage, {"count": 0.0, "sum": 0.0, "buckets": {}})
        count = end["count"] - start["count"]
        if count <= 0:
            continue
        cumulative = sorted((le, n - start["buckets"].get(le, 0.0)) for le, n in end["buckets"].items())
        out[stage] = {"batches": int(count), "mean_us": round((end["sum"] - start["sum"]) / count * 1e6, 1),
                      "p50_le_us": _bucket_bound(cumulative, 0.5 * count),
                      "p99_le_us": _bucket_bound(cumulative, 0.99 * count)}  # fmt: skip
    return out


def _bucket_bound(cumulative: list[tuple[float, float]], rank: float) -> float | None:
    """The upper bound (µs) of the first bucket holding ``rank`` observations (None: beyond the last)."""
    for le, n in cumulative:
        if n >= rank:
            return None if le == float("inf") else round(le * 1e6, 1)
    return None


def free_port() -> int:
    from engine.demo import free_port as pick

    return pick()


class Progress:
    def __init__(self) -> None:
        self.started = time.perf_counter()

    def __call__(self, text: str) -> None:
        print(f"[{time.perf_counter() - self.started:6.1f}s] {text}", flush=True)


async def _wait_for(predicate: Any, timeout_s: float, what: str, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what}: the process exited with {proc.returncode}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout_s:.0f}s")
        await asyncio.sleep(0.01)


def _first_client(rec: Recorder) -> np.ndarray:
    seen = (rec.send_ns > 0) & (rec.first_ns > 0)
    return (rec.first_ns[seen] - rec.send_ns[seen]).astype(np.int64)


def _last_k(driver: Driver) -> list[int]:
    """The newest k sent per instrument."""
    n = driver.ticks_sent
    return [((n - 1 - i) // wire.N_INSTR) if n > i else -1 for i in range(wire.N_INSTR)]


async def _caught_up(driver: Driver, proc: subprocess.Popen[bytes], timeout_s: float = 120.0) -> None:
    """Wait until every client shows the last tick sent: the server under test (gateway or
    forwarder) has taken every tick and passed it on."""
    target = _last_k(driver)
    await _wait_for(lambda: all(c.last_k == target for c in driver.clients), timeout_s,
                    "every client shown the last tick", proc)  # fmt: skip


async def measure_floor(plan: Plan, say: Progress, logs: Path, name: str, clients: int) -> dict[str, Any]:
    """A floor: the same driver and ticks through a plain forwarder process, read back on ``clients``
    connections (1: the echo floor; ``N_CLIENTS``: the fan-out floor). ``name`` labels its log and
    progress lines."""
    rec = Recorder(plan.warmup_ticks + plan.latency_ticks, 1)
    driver = Driver(rec)
    log = open(logs / f"{name}.log", "wb")  # noqa: SIM115 - closed in finally
    proc = subprocess.Popen([sys.executable, "-m", "benchmarks._e2e_floor", "--seconds", "900"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=log)  # fmt: skip
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(asyncio.get_running_loop().run_in_executor(None, proc.stdout.readline), 30)
        _, lp_port, client_port = line.decode().split()
        for c in range(clients):
            await driver.connect_client(int(client_port), f"FLOOR{c + 1:02d}", markup=0)
        await driver.connect_lps_to(int(lp_port))
        await asyncio.sleep(0.3)  # the forwarder has registered its client connections
        deadline = time.monotonic() + 60 + 3 * plan.latency_ticks / plan.tick_rate
        await driver.paced(plan.warmup_ticks, plan.tick_rate, driver.send_tick, deadline)
        # Every connection is on the forwarder's list before sampling starts: a client that joined
        # late would take its missing receipts out of the fan-out floor's samples.
        await _caught_up(driver, proc, 30)
        gc.collect()
        gc.disable()
        driver.sampling = True
        cpu = CpuShare(proc.pid)
        sent, seconds = await driver.paced(
            plan.latency_ticks, plan.tick_rate, driver.send_tick, deadline,
            lambda n: say(f"{name}: {n:,}/{plan.latency_ticks:,} ticks, {len(rec.tick_samples):,} samples"),
        )  # fmt: skip
        cpu_share = cpu.stop(sent)
        driver.sampling = False
        await asyncio.sleep(0.3)
        gc.enable()
        target = _last_k(driver)
        converged = all(c.last_k == target for c in driver.clients)
        return {"summary": latency_summary(rec.tick_samples), "first_client": latency_summary(_first_client(rec)),
                "ticks": sent, "seconds": round(seconds, 2), "converged": converged, "cpu": cpu_share}  # fmt: skip
    finally:
        gc.enable()
        driver.close()
        stop_process(proc)
        if proc.stdout is not None:
            proc.stdout.close()
        log.close()


async def measure_gateway(plan: Plan, say: Progress, state: Path) -> dict[str, Any]:
    """Tick-to-quote, order round trip and RSS through the real gateway process."""
    rec = Recorder(plan.total_ticks + plan.warmup_ticks, plan.warmup_orders + plan.orders)
    driver = Driver(rec)
    servers, lp_ports = await driver.serve_lps()
    config = state / "bench_e2e.toml"
    config.write_text(bench_config())
    fix_port = free_port()
    metrics_port = free_port()
    lp_args = [a for lp, port in enumerate(lp_ports) for a in ("--lp-port", f"LP{lp + 1:02d}={port}")]
    expected_s = (plan.warmup_ticks + plan.latency_ticks) / plan.tick_rate + plan.total_ticks / 2_000
    log: IO[bytes] = open(state / "gateway.log", "wb")  # noqa: SIM115 - closed in finally
    profile = ["-m", "cProfile", "-o", PROFILE] if PROFILE else []
    command = [
        sys.executable, *profile, "-m", "engine.cli", "serve", "--config", str(config),
        "--sim", str(ROOT / "configs" / "simulator.toml"), "--port", str(fix_port), "--metrics-port", str(metrics_port),
        "--state-dir", str(state / "gateway"), "--seconds", str(round(expected_s * 3 + 300)), "--market", "fix",
        *lp_args,
    ]  # fmt: skip
    proc = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    keepalive: asyncio.Task[None] | None = None
    out: dict[str, Any] = {"gateway_pid": proc.pid}
    try:
        await _wait_for(driver.lps_subscribed, 180, "LP feeds subscribed", proc)
        say(f"gateway up (pid {proc.pid}): {wire.N_LPS} LP feeds subscribed; connecting {N_CLIENTS} clients")
        for c in range(N_CLIENTS):
            markup = TIERS[c % len(TIERS)][3]
            for _ in range(300):
                try:
                    link = await driver.connect_client(fix_port, f"BENCH{c + 1:02d}", markup, PASSWORD)
                    break
                except OSError:
                    await asyncio.sleep(0.1)
            else:
                raise RuntimeError(f"could not connect to the gateway on port {fix_port}")
            link.logon(heartbeat_s=30)
        await _wait_for(lambda: all(c.logged_on for c in driver.clients), 30, "clients logged on", proc)
        for link in driver.clients:
            link.subscribe(depth=0)
        await _wait_for(lambda: all(c.last_k == [-1] * wire.N_INSTR for c in driver.clients), 30,
                        "every client shown the initial book", proc)  # fmt: skip
        keepalive = asyncio.ensure_future(driver.keepalive())
        deadline = time.monotonic() + 120 + 3 * expected_s

        # Warm-up (not measured): the loop, the sockets, the engine and the order path.
        await driver.paced(plan.warmup_ticks, plan.tick_rate, driver.send_tick, deadline)
        await driver.paced(plan.warmup_orders, plan.order_rate, lambda: driver.send_order(ORDER_QTY_STEPS), deadline)
        await _wait_for(lambda: len(rec.order_samples) >= plan.warmup_orders, 30, "warm-up orders answered", proc)
        del rec.order_samples[:]
        rec.order_reports.clear()
        rec.rejects.clear()
        gc.collect()
        gc.disable()

        say(f"orders: {plan.orders:,} market IOC at {plan.order_rate:,.0f}/s")
        sent, seconds = await driver.paced(plan.orders, plan.order_rate, lambda: driver.send_order(ORDER_QTY_STEPS),
                                           deadline)  # fmt: skip
        await _wait_for(lambda: len(rec.order_samples) >= sent, 30, "orders answered", proc)
        out["orders"] = {"summary": latency_summary(rec.order_samples), "sent": sent, "seconds": round(seconds, 2),
                         "first_reports": {k.decode(): v for k, v in sorted(rec.order_reports.items())},
                         "rejects": sorted({r.decode("ascii", "replace") for r in rec.rejects})[:5]}  # fmt: skip

        say(f"tick-to-quote: {plan.latency_ticks:,} ticks at {plan.tick_rate:,.0f}/s")
        stages_before = await asyncio.to_thread(scrape_stages, metrics_port)
        driver.sampling = True
        cpu = CpuShare(proc.pid)
        sent, seconds = await driver.paced(
            plan.latency_ticks, plan.tick_rate, driver.send_tick, deadline,
            lambda n: say(f"tick-to-quote: {n:,}/{plan.latency_ticks:,} ticks, {len(rec.tick_samples):,} samples, "
                          f"gateway RSS {rss_mb(proc.pid)} MB"),
        )  # fmt: skip
        cpu_share = cpu.stop(sent)
        driver.sampling = False
        stages = stage_summary(stages_before, await asyncio.to_thread(scrape_stages, metrics_port))
        await asyncio.sleep(0.5)
        gc.enable()
        measured = int((rec.send_ns > 0).sum())
        first = _first_client(rec)
        target = _last_k(driver)
        out["ticks"] = {
            "summary": latency_summary(rec.tick_samples), "first_client": latency_summary(first),
            "sent": sent, "seconds": round(seconds, 2), "ticks_seen_share": round(first.size / max(measured, 1), 4),
            "client_receipts_share": round(len(rec.tick_samples) / max(measured * N_CLIENTS, 1), 4),
            "clients_converged": sum(c.last_k == target for c in driver.clients), "cpu": cpu_share,
            "stages": stages,
        }  # fmt: skip
        await _caught_up(driver, proc)
        out["rss_first"] = {"mb": rss_mb(proc.pid), "ticks": driver.ticks_sent}
        del rec.tick_samples[:]  # the bulk phase is not a latency measurement

        bulk = plan.total_ticks - driver.ticks_sent
        say(f"memory: {bulk:,} more ticks in bursts of {plan.bulk_burst:,}, each taken in full before the next "
            f"(RSS {out['rss_first']['mb']} MB at {driver.ticks_sent:,} ticks)")  # fmt: skip
        started = time.perf_counter()
        next_progress = started + 5.0
        sent = 0
        while sent < bulk and time.monotonic() < deadline:
            for _ in range(min(plan.bulk_burst, bulk - sent)):
                driver.send_tick()
                sent += 1
            await _caught_up(driver, proc)
            if time.perf_counter() >= next_progress:
                next_progress += 5.0
                say(
                    f"memory: {driver.ticks_sent:,}/{plan.total_ticks:,} ticks taken, gateway RSS {rss_mb(proc.pid)} MB"
                )
        seconds = time.perf_counter() - started
        target = _last_k(driver)
        out["bulk"] = {"sent": sent, "seconds": round(seconds, 2), "rate": round(sent / max(seconds, 1e-9)),
                       "clients_converged": sum(c.last_k == target for c in driver.clients),
                       "client_md_messages": sum(c.md_messages for c in driver.clients)}  # fmt: skip
        out["rss_second"] = {"mb": rss_mb(proc.pid), "ticks": driver.ticks_sent}
        logouts = [c.comp_id for c in driver.clients if not c.logged_on]
        out["clients_logged_out"] = logouts
        return out
    finally:
        gc.enable()
        if keepalive is not None:
            keepalive.cancel()
        driver.close()
        stop_process(proc)
        log.close()
        for server in servers:
            server.close()


async def run(plan: Plan) -> dict[str, Any]:
    say = Progress()
    host = machine()
    with tempfile.TemporaryDirectory(prefix="lagg-bench-e2e-") as tmp:
        state = Path(tmp)
        try:
            gateway = await measure_gateway(plan, say, state)
            say(f"floor: {plan.latency_ticks:,} ticks at {plan.tick_rate:,.0f}/s through a plain uvloop forwarder")
            floor = await measure_floor(plan, say, state, "floor", 1)
            say(f"floor_fanout: the same forwarder and ticks, read back on {N_CLIENTS} client connections")
            fanout = await measure_floor(plan, say, state, "floor_fanout", N_CLIENTS)
        except BaseException:
            for name in ("gateway.log", "floor.log", "floor_fanout.log"):
                path = state / name
                if path.exists():
                    print(f"--- last lines of {name} ---\n" + "\n".join(path.read_text().splitlines()[-30:]))
            raise
    ticks = gateway["ticks"]
    tick, first, floor_s = ticks["summary"], ticks["first_client"], floor["summary"]
    fanout_s, fanout_first = fanout["summary"], fanout["first_client"]
    ratio = _p99_ratio(tick, floor_s)
    ratio_first = _p99_ratio(first, floor_s)
    rss1, rss2 = gateway["rss_first"], gateway["rss_second"]
    growth = round(100.0 * (rss2["mb"] - rss1["mb"]) / rss1["mb"], 1)
    return {
        "benchmark": "e2e",
        "workload": {
            "lps": wire.N_LPS,
            "instruments": [i.symbol for i in wire.INSTRUMENTS],
            "clients": N_CLIENTS,
            "tiers": [f"{name}({mode}, depth {depth}, markup {m})" for name, mode, depth, m, _ in TIERS],
            "client_tiers": "round-robin over the tiers; every client subscribes to all 5 instruments, 265=1",
            "lp_levels_per_side": wire.LEVELS,
            "lp_tick": "one 35=X per tick, one LP rewriting its 3-level ladder "
            "(6 entries); the instruments take turns; each tick is the new best bid",
            "lp_tick_bytes": len(_sample_tick()),
            "tick_rate_per_s": plan.tick_rate,
            "latency_ticks": ticks["sent"],
            "latency_phase_s": ticks["seconds"],
            "warmup_ticks": plan.warmup_ticks,
            "floor_ticks": floor["ticks"],
            "floor_phase_s": floor["seconds"],
            "floor_fanout_ticks": fanout["ticks"],
            "floor_fanout_phase_s": fanout["seconds"],
            "orders": gateway["orders"]["sent"],
            "order_rate_per_s": plan.order_rate,
            "order": f"market IOC, {ORDER_QTY_STEPS} quantity steps, internalised, alternating buy/sell per client",
            "warmup_orders": plan.warmup_orders,
            "total_ticks": rss2["ticks"],
            "bulk": f"bursts of {plan.bulk_burst:,} ticks, each until every client shows its last tick",
            "bulk_rate_per_s_achieved": gateway["bulk"]["rate"],
            "process_layout": "driver (this process: 10 LP acceptors + 20 client sessions, uvloop) | gateway "
            "(lagg serve --market fix) or floor (uvloop forwarder), each its own process; 127.0.0.1",
            "plan": asdict(plan),
        },  # fmt: skip
        "machine": {**host, "load_average_at_end": [round(x, 2) for x in os.getloadavg()]},
        "results": {
            "tick_to_quote": tick,
            "order_round_trip": gateway["orders"]["summary"],
            "floor_echo": floor_s,
            "rss_mb": {"after_100k": rss1["mb"], "after_1m": rss2["mb"]},
            "p99_ratio_tick_to_quote_over_floor": ratio,
            "tick_to_quote_first_client": first,
            "p99_ratio_first_client_over_floor": ratio_first,
            "floor_fanout": fanout_s,
            "floor_fanout_first_client": fanout_first,
            "p99_ratio_floor_fanout_over_floor": _p99_ratio(fanout_s, floor_s),
            "p99_ratio_tick_to_quote_over_floor_fanout": _p99_ratio(tick, fanout_s),
            "p99_ratio_first_client_over_floor_fanout_first_client": _p99_ratio(first, fanout_first),
            "detail": {
                "tick_to_quote": "every client's receipt of a tick's price (fan-out view); first_client: the "
                "earliest of the 20 per tick",
                "ticks_seen_share": ticks["ticks_seen_share"],
                "client_receipts_share": ticks["client_receipts_share"],
                "clients_converged_after_latency_phase": ticks["clients_converged"],
                "clients_converged_after_total": gateway["bulk"]["clients_converged"],
                "floor_converged": floor["converged"],
                "floor_fanout": f"the floor's forwarder read back on {N_CLIENTS} client connections: every byte "
                "written to each, no other work; the cost of the per-tick loopback writes alone (a reference, not "
                "the target)",
                "floor_fanout_converged": fanout["converged"],
                "order_first_reports_by_exec_type": gateway["orders"]["first_reports"],
                "order_rejects": gateway["orders"]["rejects"],
                "rss_read_at_ticks": [rss1["ticks"], rss2["ticks"]],
                "rss_growth_pct": growth,
                "client_md_messages_total": gateway["bulk"]["client_md_messages"],
                "clients_logged_out_at_end": gateway["clients_logged_out"],
                "cpu_cores_tick_to_quote_phase": ticks["cpu"],
                "cpu_cores_floor_phase": floor["cpu"],
                "cpu_cores_floor_fanout_phase": fanout["cpu"],
                "gateway_stages_tick_to_quote_phase": ticks["stages"],
            },
        },
        "targets": {
            "tick_to_quote_p99_over_floor_p99_max": 3.0,
            "tick_to_quote_p99_met": ratio is not None and ratio <= 3.0,
            "first_client_p99_met": ratio_first is not None and ratio_first <= 3.0,
            "rss_growth_max_pct": 10.0,
            "rss_met": abs(growth) <= 10.0,
        },
        "method": "perf_counter_ns in the driver at the LP write and at data_received of the client read; "
        "numpy linear percentiles over every sample; driver GC off while measuring; gateway measured first, "
        f"then the floor (1 client), then the fan-out floor ({N_CLIENTS} clients), in the same run",
        "runtime_s": round(time.perf_counter() - say.started, 1),
    }


def _p99_ratio(over: dict[str, Any], under: dict[str, Any]) -> float | None:
    """p99 of one latency_summary over another's (None if the second has no samples)."""
    return round(over["p99_us"] / under["p99_us"], 2) if under["p99_us"] else None


def _sample_tick() -> bytes:
    return wire.Outbound("LP01", "LAGG").message(b"X", wire.TickEncoder().body(0, 50_000), time.time_ns())


def _cpu_text(cpu: dict[str, float], server: str) -> str:
    return (f"{server} {cpu['server_cores']:.2f} ({cpu['server_cpu_us_per_tick']:,.0f} µs/tick), driver "
            f"{cpu['driver_cores']:.2f}, other jobs {cpu['other_cores']:.2f}")  # fmt: skip


def print_table(report: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    res = report["results"]
    wl = report["workload"]
    table = Table(title=f"e2e: {wl['lps']} LPs, {len(wl['instruments'])} instruments, {wl['clients']} clients, "
                  f"{wl['latency_ticks']:,} ticks at {wl['tick_rate_per_s']:,.0f}/s (µs)")  # fmt: skip
    for col in ("path", "p50", "p90", "p99", "p99.9", "max", "samples"):
        table.add_column(col, justify="right", no_wrap=True)
    for name in ("tick_to_quote", "tick_to_quote_first_client", "order_round_trip", "floor_echo", "floor_fanout",
                 "floor_fanout_first_client"):  # fmt: skip
        r = res[name]
        table.add_row(name, *(f"{r[k]:,.1f}" for k in ("p50_us", "p90_us", "p99_us", "p999_us", "max_us")),
                      f"{r['samples']:,}")  # fmt: skip
    console = Console(width=140)
    console.print(table)
    t = report["targets"]
    d = res["detail"]
    console.print(
        f"p99 tick_to_quote / floor: {res['p99_ratio_tick_to_quote_over_floor']}x (first client "
        f"{res['p99_ratio_first_client_over_floor']}x; target <= 3x: "
        f"{'met' if t['tick_to_quote_p99_met'] else 'NOT met'}); ticks seen by some client "
        f"{d['ticks_seen_share']:.1%}, client receipts {d['client_receipts_share']:.1%}\n"
        f"p99 floor_fanout / floor: {res['p99_ratio_floor_fanout_over_floor']}x (what {wl['clients']} writes per tick "
        f"cost alone); tick_to_quote / floor_fanout: {res['p99_ratio_tick_to_quote_over_floor_fanout']}x (first "
        f"client / fan-out first client {res['p99_ratio_first_client_over_floor_fanout_first_client']}x)\n"
        f"gateway RSS {res['rss_mb']['after_100k']} MB at {d['rss_read_at_ticks'][0]:,} ticks -> "
        f"{res['rss_mb']['after_1m']} MB at {d['rss_read_at_ticks'][1]:,} ticks ({d['rss_growth_pct']:+.1f}%, target "
        f"within 10%: {'met' if t['rss_met'] else 'NOT met'}); bulk {wl['bulk_rate_per_s_achieved']:,} ticks/s\n"
        f"CPU (cores) in the tick-to-quote phase: {_cpu_text(d['cpu_cores_tick_to_quote_phase'], 'gateway')}; "
        f"in the floor phase: {_cpu_text(d['cpu_cores_floor_phase'], 'forwarder')}; "
        f"in the fan-out floor phase: {_cpu_text(d['cpu_cores_floor_fanout_phase'], 'forwarder')}\n"
        f"gateway stages per batch of LP updates in the tick-to-quote phase (mean µs; p99 bucket): "
        + ", ".join(f"{k} {v['mean_us']:,.0f} (<= {v['p99_le_us']})"
                    for k, v in d["gateway_stages_tick_to_quote_phase"].items()) + "\n"
        f"orders: first reports {d['order_first_reports_by_exec_type']}; load average at start "
        f"{report['machine']['load_average_at_start']}, at end {report['machine']['load_average_at_end']} on "
        f"{report['machine']['cores']} cores; whole benchmark {report['runtime_s']} s"
    )  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.e2e", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run (seconds, not minutes)")
    parser.add_argument("--ticks", type=int, help="measured ticks (latency phase and both floors)")
    parser.add_argument("--total-ticks", type=int, help="ticks before the second memory reading")
    parser.add_argument("--rate", type=float, help="ticks per second in the latency phase and both floors")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results file")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else Plan()
    if args.ticks:
        plan = replace(plan, latency_ticks=args.ticks)
    if args.total_ticks:
        plan = replace(plan, total_ticks=args.total_ticks)
    if args.rate:
        plan = replace(plan, tick_rate=args.rate)
    if plan.total_ticks < plan.warmup_ticks + plan.latency_ticks:
        parser.error("--total-ticks must cover the warm-up and the measured ticks")
    from fixserver.transport import run as run_on_uvloop

    report = run_on_uvloop(lambda: run(plan))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print_table(report)
    print(f"-> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
