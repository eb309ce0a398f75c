"""The replay file: what is recorded is read back row for row, and a torn tail is survivable."""

import pytest

from engine.batch import ASK, BID, UpdateBatch
from feeds.recording import MAGIC, Recorder, RecordingError, RecordingHeader, read_recording


def _header() -> RecordingHeader:
    return RecordingHeader(
        version=1,
        instruments=["EUR/USD", "WTI"],
        tick_sizes=["0.00001", "0.01"],
        qty_steps=["1000", "1"],
        lps=["LP1", "LP2"],
        tiers=["t"],
    )


def _batches() -> list[tuple[UpdateBatch, int]]:
    a = UpdateBatch(4)
    a.set_level(0, 0, BID, 0, 108500, 10, 1_000)
    a.set_level(1, 1, ASK, 2, -3763, 7, 1_100)  # negative price survives the trip
    a.clear_book(1, 1, 1_200)
    b = UpdateBatch(1)
    b.lp_down(0, 2_000)
    b.lp_up(0, 2_100)  # grows past its capacity
    return [(a, 1_300), (b, 2_200)]


def _rows(batch: UpdateBatch) -> list[tuple[int, ...]]:
    cols = (batch.kind, batch.lp, batch.instr, batch.side, batch.level, batch.price, batch.qty, batch.ts_ns)
    return [tuple(int(c[i]) for c in cols) for i in range(batch.n)]


def test_recorded_batches_read_back_identically(tmp_path):
    path = tmp_path / "rec.lagg"
    with Recorder(path, _header()) as rec:
        for batch, now in _batches():
            rec.record(batch, now)
    assert rec.batches == 2 and rec.rows == 5

    header, frames = read_recording(path)
    assert header == _header()
    got = [(f.now_ns, _rows(f.to_batch())) for f in frames]
    assert got == [(now, _rows(batch)) for batch, now in _batches()]


def test_reader_reuses_one_batch_buffer(tmp_path):
    path = tmp_path / "rec.lagg"
    with Recorder(path, _header()) as rec:
        for batch, now in _batches():
            rec.record(batch, now)
    _, frames = read_recording(path)
    buffer = UpdateBatch(1)
    sizes = [f.to_batch(buffer).n for f in frames]
    assert sizes == [3, 2]


def test_truncated_tail_replays_everything_before_it(tmp_path):
    path = tmp_path / "rec.lagg"
    with Recorder(path, _header()) as rec:
        for batch, now in _batches():
            rec.record(batch, now)
    data = path.read_bytes()
    path.write_bytes(data[:-5])  # killed mid-write of the last frame
    _, frames = read_recording(path)
    assert [f.now_ns for f in frames] == [1_300]


def test_not_a_recording_is_refused(tmp_path):
    path = tmp_path / "x"
    path.write_bytes(b"hello")
    with pytest.raises(RecordingError, match="bad magic"):
        read_recording(path)
    path.write_bytes(MAGIC)
    with pytest.raises(RecordingError, match="no header"):
        read_recording(path)
