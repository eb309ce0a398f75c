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
