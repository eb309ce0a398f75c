"""`make demo` on its embedded default shows live quotes and fills, headless, within 60 s."""

import re
import subprocess
import sys
import time

from tests.conftest import ROOT


def test_demo_shows_quotes_and_fills_within_a_minute():
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "engine.cli", "demo", "--seconds", "10"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    elapsed = time.monotonic() - started
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-3000:]
    assert elapsed < 60, f"demo took {elapsed:.0f}s"
    assert "logged on to 127.0.0.1" in out
    # A quotes row with a real bid and ask for EUR/USD (5 decimals) and the levels column.
    row = r"EUR/USD[\s│|]+\d+[\s│|]+1\.\d{5}[\s│|]+1\.\d{5}[\s│|]+\d+[\s│|]+5/5"
    assert re.search(row, out), out[-3000:]
    fills = re.findall(r"execution report: fill .* filled (\d+) @ (-?\d+\.\d+)", out)
    assert len(fills) >= 2, out[-3000:]
    summary = re.search(r"demo: (\d+) market-data messages, (\d+) fills", out)
    assert summary and int(summary.group(1)) > 20 and int(summary.group(2)) >= 2
    assert "gateway stopped" in out  # the gateway process shut down cleanly
