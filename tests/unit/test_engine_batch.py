"""UpdateBatch: one packed int64 array the kernel takes whole; rows survive growth."""

from __future__ import annotations

from engine.batch import ASK, CLEAR_BOOK, LP_DOWN, SET_LEVEL, UpdateBatch
from engine.config import TierConfig
from tests.unit.test_engine_fixtures import config, desk, engine_fixture

both_engines = engine_fixture()


def test_named_fields_are_views_of_the_packed_rows():
    batch = UpdateBatch(2)
    batch.set_level(3, 1, ASK, 4, -37_63, 5, 99)
    assert batch.rows[:, 0].tolist() == [SET_LEVEL, 3, 1, ASK, 4, -3763, 5, 99]
    assert batch.price[0] == -3763 and batch.rows.shape == (8, 2)


def test_rows_survive_growth_in_order():
    batch = UpdateBatch(1)
    batch.clear_book(0, 1, 10)
    batch.lp_down(2, 11)
    batch.set_level(1, 0, 0, 0, 7, 8, 12)
    assert batch.capacity == 4 and batch.n == 3
    assert batch.kind[:3].tolist() == [CLEAR_BOOK, LP_DOWN, SET_LEVEL]
    assert batch.ts_ns[:3].tolist() == [10, 11, 12]
    assert batch.lp[:3].tolist() == [0, 2, 1]


def test_rows_for_unknown_lps_instruments_levels_or_kinds_are_rejected_and_counted(engine_cls):
    d = desk(engine_cls, config(TierConfig(name="t"), lps=1))
    batch = UpdateBatch()
    batch.set_level(5, 0, 0, 0, 100, 1, d.now)  # unknown LP
    batch.set_level(0, 9, 0, 0, 100, 1, d.now)  # unknown instrument
    batch.lp_up(7, d.now)  # unknown LP
    batch.set_level(0, 0, 0, 99, 100, 1, d.now)  # level beyond max_levels: counted on X
    batch.set_level(0, 0, 2, 0, 100, 1, d.now)  # no such side
    batch.kind[batch.n - 1] = 9  # ... and no such row kind
    d.engine.apply(batch, d.now)
    assert d.engine.counters()["rejected_rows"] == 4
    assert d.counters()["rejected_rows"] == 1
    assert d.sides() == ([], [])


def test_indices_follow_the_config_order(engine_cls):
    cfg = config(TierConfig(name="a"), TierConfig(name="b"), lps=3, symbols=("X", "Y"))
    engine = engine_cls(cfg)
    assert (engine.instrument_index("Y"), engine.lp_index("LP2"), engine.tier_index("b")) == (1, 2, 1)
