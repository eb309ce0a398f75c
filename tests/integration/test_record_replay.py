"""Record a live run, replay it: the same tier quotes, hash for hash, every time, on both the
Numba engine and the reference."""

import asyncio
import subprocess
import sys

from engine.config import load_config
from feeds.replay import replay
from feeds.sim_market import decode_sim_config
from fixserver.gateway import GatewayOptions, serve
from tests.conftest import EXAMPLE_CONFIG, ROOT


async def _record(tmp_path, seconds=2.0):
    cfg = load_config(EXAMPLE_CONFIG)
    sim = decode_sim_config((ROOT / "configs" / "simulator.toml").read_text())
    path = tmp_path / "live.lagg"
    options = GatewayOptions(port=0, metrics_port=-1, state_dir=tmp_path, run_seconds=seconds, record_path=path)
    await asyncio.wait_for(serve(cfg, sim, options, asyncio.Event()), 60)
    return path, options.quote_hash


async def test_replaying_a_live_recording_reproduces_the_live_quotes(tmp_path):
    path, live_hash = await _record(tmp_path)
    first = replay(path)
    second = replay(path)
    assert first.batches > 10 and first.rows > 1000 and first.quote_changes > 10
    assert first.quote_hash == second.quote_hash == live_hash
    # The reference engine, fed the same recording, publishes the same quotes.
    assert replay(path, engine_kind="reference").quote_hash == live_hash


async def test_replay_cli_prints_the_hash_and_refuses_bad_files(tmp_path):
    path, live_hash = await _record(tmp_path, seconds=1.0)
    ok = subprocess.run([sys.executable, "-m", "engine.cli", "replay", str(path)], capture_output=True, text=True,
                        timeout=120, cwd=ROOT)  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    assert f"quote hash {live_hash}" in ok.stdout
    bad = tmp_path / "bad.lagg"
    bad.write_bytes(b"not a recording")
    refused = subprocess.run([sys.executable, "-m", "engine.cli", "replay", str(bad)], capture_output=True,
                             text=True, timeout=60, cwd=ROOT)  # fmt: skip
    assert refused.returncode == 1 and "bad magic" in refused.stderr


async def test_recording_a_run_with_lps_over_fix_replays_to_the_same_quotes(tmp_path):
    from feeds.lp_simulator import LpSimulatorFleet

    cfg = load_config(EXAMPLE_CONFIG)
    sim = decode_sim_config((ROOT / "configs" / "simulator.toml").read_text())
    fleet = LpSimulatorFleet(cfg, sim, ports={"LP1": 0, "LP2": 0, "LP3": 0})
    stop = asyncio.Event()
    fleet_task = asyncio.create_task(fleet.run(stop, seconds=30))
    while not all(fleet.ports.values()):
        await asyncio.sleep(0.01)
    path = tmp_path / "fix.lagg"
    options = GatewayOptions(port=0, metrics_port=-1, state_dir=tmp_path, run_seconds=2.5, record_path=path,
                             market="fix", lp_ports=fleet.ports)  # fmt: skip
    try:
        await asyncio.wait_for(serve(cfg, sim, options, asyncio.Event()), 60)
    finally:
        stop.set()
        await asyncio.wait_for(fleet_task, 10)
    result = replay(path)
    assert result.quote_changes > 10, "the LPs' prices should have reached the engine over FIX"
    assert result.quote_hash == options.quote_hash


async def test_skew_from_fills_is_recorded_and_replayed_to_the_same_quotes(tmp_path):
    from engine.journal import Journal
    from feeds.recording import Recorder, read_recording
    from fixserver.message import FixMessage

    cfg = load_config(EXAMPLE_CONFIG)
    sim = decode_sim_config((ROOT / "configs" / "simulator.toml").read_text())
    # A restart with a house position already in the journal: the recording starts from its skew.
    journal = Journal(tmp_path / "journal.sqlite")
    order_id = journal.new_order("DEMO", "before", "EUR/USD", 1, "1", "3", 2000, None, 1)
    journal.fill(order_id, 2000, 108500, "internal", 1, "2")
    journal.close()
    path = tmp_path / "skew.lagg"
    options = GatewayOptions(port=0, metrics_port=-1, state_dir=tmp_path, run_seconds=2.5, record_path=path)
    task = asyncio.create_task(serve(cfg, sim, options, asyncio.Event()))
    await asyncio.wait_for(options.ready.wait(), 60)
    gateway = options.gateway
    demo = gateway.clients["DEMO"]
    for n in range(4):  # the house sells 3M each time: EUR/USD skews 3 ticks further down each time
        await asyncio.sleep(0.3)
        order = [(35, b"D"), (11, b"s%d" % n), (55, b"EUR/USD"), (54, b"1"), (38, b"3000000"), (40, b"1"), (59, b"3")]
        gateway.desk.on_new_order(demo, FixMessage(order), gateway.clock.now_ns())
        gateway.flush_orders()
    await asyncio.wait_for(task, 60)
    assert gateway.skews[0] == -14  # house short 2M + 12M, one tick per 1M

    header, frames = read_recording(path)
    frames = list(frames)
    assert [s for f in frames for s in f.skews] == [(0, -2), (0, -5), (0, -8), (0, -11), (0, -14)]
    assert replay(path).quote_hash == options.quote_hash
    assert replay(path, engine_kind="reference").quote_hash == options.quote_hash
    # Without the skews the same market replays to other quotes: the skews are what made them.
    stripped = tmp_path / "stripped.lagg"
    with Recorder(stripped, header) as rec:
        for f in frames:
            rec.record(f.to_batch(), f.now_ns)
    assert replay(stripped).quote_hash != options.quote_hash


async def _serve_recording(cfg, path):
    """``serve`` on the example simulator for 2.5 s, recording to ``path`` (state beside it): its
    options (``options.gateway`` once ready), its task, and a stand-in for DEMO's session to pass
    to ``Gateway.from_app``."""
    from types import SimpleNamespace

    sim = decode_sim_config((ROOT / "configs" / "simulator.toml").read_text())
    options = GatewayOptions(port=0, metrics_port=-1, state_dir=path.parent, run_seconds=2.5, record_path=path)
    task = asyncio.create_task(serve(cfg, sim, options, asyncio.Event()))
    await asyncio.wait_for(options.ready.wait(), 60)
    return options, task, SimpleNamespace(session_id=SimpleNamespace(target_comp_id="DEMO"))


async def test_orders_read_between_loop_turns_replay_to_the_same_quotes(tmp_path):
    # Orders that come in over FIX (Gateway.from_app) expire stale prices before they are read,
    # which reprices what an earlier order's skew left dirty: a reprice between two loop turns
    # that the recording does not hold. Clients only see what the next turn publishes, and so
    # must the hash: two orders in one read, five times.
    from fixserver.message import FixMessage

    path = tmp_path / "orders.lagg"
    options, task, session = await _serve_recording(load_config(EXAMPLE_CONFIG), path)
    gateway = options.gateway
    for n in range(5):
        await asyncio.sleep(0.3)
        for m in range(2):
            order = [(35, b"D"), (11, b"r%d-%d" % (n, m)), (55, b"EUR/USD"), (54, b"2"), (38, b"3000000"),
                     (40, b"1"), (59, b"3")]  # fmt: skip
            gateway.from_app(FixMessage(order), session)  # type: ignore[arg-type]
    await asyncio.wait_for(task, 60)
    assert gateway.skews[0] == 30  # the house bought 30M: one tick per 1M
    assert replay(path).quote_hash == options.quote_hash
    assert replay(path, engine_kind="reference").quote_hash == options.quote_hash


async def test_an_lp_gone_stale_before_an_order_read_between_turns_replays_to_the_same_quotes(tmp_path):
    # An order read between two loop turns expires stale prices first (Gateway.from_app). LP1 is
    # stale 30 ms after each of its updates, so an order read later in a turn's 100 ms takes it
    # out of the quotes until the next turn brings its book back: the aggregated mid moves there
    # and back, and the volatility the retail tier widens by counts both moves. The replay must
    # expire at the same times, between the same batches, or it widens less.
    import msgspec

    from engine.kernels import LPS_FRESH
    from fixserver.message import FixMessage

    cfg = load_config(EXAMPLE_CONFIG)
    cfg = msgspec.structs.replace(
        cfg, lps=[msgspec.structs.replace(lp, staleness_ms=30) if lp.name == "LP1" else lp for lp in cfg.lps]
    )
    path = tmp_path / "stale.lagg"
    options, task, session = await _serve_recording(cfg, path)
    gateway = options.gateway
    expired_between_turns = 0
    for n in range(60):  # an order every ~30 ms: most land after LP1 went stale, before the next turn
        await asyncio.sleep(0.03)
        fresh_before = int(gateway.engine.lp_state[:, 0, LPS_FRESH].sum())  # LP1, per instrument
        # A buy limit far below the market, immediate or cancel: it never fills, so no skew moves.
        order = [(35, b"D"), (11, b"st%d" % n), (55, b"EUR/USD"), (54, b"1"), (38, b"1000000"), (40, b"2"),
                 (44, b"1.00000"), (59, b"3")]  # fmt: skip
        gateway.from_app(FixMessage(order), session)  # type: ignore[arg-type]
        expired_between_turns += fresh_before > int(gateway.engine.lp_state[:, 0, LPS_FRESH].sum())
    await asyncio.wait_for(task, 60)
    assert gateway.skews == [0] * len(cfg.instruments), "no order filled: no skew was set"
    assert expired_between_turns > 5, "LP1 should have gone stale before orders read between turns"
    assert replay(path).quote_hash == options.quote_hash
    assert replay(path, engine_kind="reference").quote_hash == options.quote_hash
