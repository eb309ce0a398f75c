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
