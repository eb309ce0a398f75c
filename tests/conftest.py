import hashlib
import os
from pathlib import Path

import pytest
from hypothesis import settings

# CI runs a fixed, derandomized set of examples (same counts) so a submission's CI verdict does
# not depend on the draw; developers' runs stay random and keep finding new counterexamples,
# which then become regression tests.
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_CONFIG = ROOT / "configs" / "example.toml"


@pytest.fixture
def example_config_text() -> str:
    return EXAMPLE_CONFIG.read_text()


def one_client_config(password: str) -> str:
    """The smallest gateway config with a client: DEMO on one tier, EUR/USD, no LPs, logging on
    with ``password``."""
    return f"""
lps = []
[server]
sender_comp_id = "LAGG"
[[instruments]]
symbol = "EUR/USD"
tick_size = "0.00001"
qty_step = "1000"
[[tiers]]
name = "t"
[[clients]]
name = "Demo"
sender_comp_id = "DEMO"
tier = "t"
password_sha256 = "{hashlib.sha256(password.encode()).hexdigest()}"
"""


def lp_quotes(engine, lp: str, symbol: str, bid: int, ask: int, qty: int, ts: int) -> None:
    """``lp`` comes up with a one-level book of ``symbol`` (prices in ticks, size in steps) at
    ``ts``, applied to ``engine``."""
    from engine.batch import ASK, BID, UpdateBatch

    lp_index, instr = engine.lp_index(lp), engine.instrument_index(symbol)
    batch = UpdateBatch(8)
    batch.set_level(lp_index, instr, BID, 0, bid, qty, ts)
    batch.set_level(lp_index, instr, ASK, 0, ask, qty, ts)
    batch.lp_up(lp_index, ts)
    engine.apply(batch, ts)
