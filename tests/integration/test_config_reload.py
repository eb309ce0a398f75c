"""Hot reload as a quant uses it: edit the file, prices follow; break the file, nothing breaks."""

import asyncio
import os
import signal

from engine.config import load_config
from engine.reload import ConfigReloader
from tests.conftest import EXAMPLE_CONFIG


async def _wait_for(predicate, timeout=10.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def test_valid_edit_is_taken_and_bad_edit_is_refused(tmp_path):
    path = tmp_path / "lagg.toml"
    text = EXAMPLE_CONFIG.read_text()
    path.write_text(text)
    changes, results = [], []
    reloader = ConfigReloader(path, load_config(path), lambda old, new: changes.append(new), results.append)
    stop = asyncio.Event()
    task = asyncio.create_task(reloader.watch(stop))
    await asyncio.sleep(0.3)  # let the watcher start

    path.write_text(text.replace("bid_markup = 2", "bid_markup = 7"))
    await _wait_for(lambda: changes)
    assert reloader.current.tier("bands").bid_markup == 7

    path.write_text(text.replace("bid_markup = 2", "bid_markup = -7"))
    await _wait_for(lambda: False in results)
    assert reloader.current.tier("bands").bid_markup == 7  # the running config stays
    assert any("tiers[2].bid_markup" in e for e in reloader.last_errors)
    assert len(changes) == 1

    stop.set()
    await asyncio.wait_for(task, 5)


async def test_sighup_reloads_a_change_the_watcher_never_saw(tmp_path):
    path = tmp_path / "lagg.toml"
    text = EXAMPLE_CONFIG.read_text()
    path.write_text(text)
    changes = []
    reloader = ConfigReloader(path, load_config(path), lambda old, new: changes.append(new))
    # Edit before the watcher starts: only SIGHUP can make the reloader read it.
    path.write_text(text.replace("ask_markup = 2", "ask_markup = 3"))
    stop = asyncio.Event()
    task = asyncio.create_task(reloader.watch(stop))
    await asyncio.sleep(0.5)
    assert changes == []
    os.kill(os.getpid(), signal.SIGHUP)
    await _wait_for(lambda: changes)
    assert reloader.current.tier("bands").ask_markup == 3
    stop.set()
    await asyncio.wait_for(task, 5)


async def test_a_running_gateway_prices_with_an_edited_file_and_refuses_a_restart_only_edit(tmp_path):
    from fixserver.gateway import GatewayOptions, serve
    from tests.acceptance.test_gateway import SIM

    path = tmp_path / "lagg.toml"
    text = EXAMPLE_CONFIG.read_text()
    path.write_text(text)
    stop = asyncio.Event()
    options = GatewayOptions(port=0, metrics_port=-1, state_dir=tmp_path, config_path=path)
    task = asyncio.create_task(serve(load_config(path), SIM, options, stop))
    try:
        await asyncio.wait_for(options.ready.wait(), 60)
        gateway = options.gateway
        await asyncio.sleep(1.5)  # the simulated market stands still after its first second
        before = gateway.engine.quote("institutional", "EUR/USD")
        assert before.bids and before.asks

        path.write_text(text.replace("bid_markup = 1", "bid_markup = 11", 1))  # the institutional tier
        await _wait_for(lambda: gateway.engine.quote("institutional", "EUR/USD").bids[0][0] == before.bids[0][0] - 10)
        assert gateway.engine.quote("institutional", "EUR/USD").asks == before.asks

        path.write_text(text.replace("bid_markup = 1", "bid_markup = 11", 1).replace("depth = 5", "depth = 4", 1))
        def reloads(result):
            return gateway.metrics.registry.get_sample_value("lagg_config_reloads_total", {"result": result})

        await _wait_for(lambda: reloads("refused") == 1)
        assert gateway.cfg.tier("institutional").depth == 5  # the running config stays
        assert reloads("ok") == 1

        (tmp_path / "fix_messages.log").rename(tmp_path / "fix_messages.log.1")  # logrotate moves it
        os.kill(os.getpid(), signal.SIGHUP)  # a reload, not the end of the process
        await _wait_for(lambda: reloads("refused") == 2)
        assert not task.done()
        assert (tmp_path / "fix_messages.log").exists()  # the message log was reopened at its path
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
