"""The replay file: what is recorded is read back row for row, and a torn tail is survivable."""

import errno
import logging

import pytest

from engine.batch import ASK, BID, UpdateBatch
from feeds.recording import FORMAT_VERSION, MAGIC, Recorder, RecordingError, RecordingHeader, read_recording


def _header() -> RecordingHeader:
    return RecordingHeader(
        version=FORMAT_VERSION,
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


def _recorded(path) -> bytes:
    with Recorder(path, _header()) as rec:
        for batch, now in _batches():
            rec.record(batch, now)
    return path.read_bytes()


def test_a_torn_tail_is_reported_with_its_size(tmp_path):
    path = tmp_path / "rec.lagg"
    whole = _recorded(path)
    _, frames = read_recording(path)
    assert len(list(frames)) == 2 and frames.torn_tail_bytes == 0
    path.write_bytes(whole[:-5])
    _, frames = read_recording(path)
    assert len(list(frames)) == 1
    assert 0 < frames.torn_tail_bytes < len(whole) - len(MAGIC)


def test_a_tail_of_zero_bytes_left_by_a_crash_is_a_torn_tail_not_corruption(tmp_path):
    # Blocks allocated but never written before a power loss read back as zeros on some file systems.
    path = tmp_path / "rec.lagg"
    path.write_bytes(_recorded(path) + bytes(4096))
    _, frames = read_recording(path)
    assert [f.now_ns for f in frames] == [1_300, 2_200]
    assert frames.torn_tail_bytes == 4096


def test_a_corrupt_frame_is_refused_naming_the_frame_and_its_offset(tmp_path):
    path = tmp_path / "rec.lagg"
    whole = _recorded(path)
    header_end = len(MAGIC) + 4 + int.from_bytes(whole[len(MAGIC) : len(MAGIC) + 4], "little")
    corrupt = bytearray(whole)
    corrupt[header_end + 4] = 0xC1  # msgpack's one never-used byte: the first batch cannot decode
    path.write_bytes(bytes(corrupt))
    _, frames = read_recording(path)
    with pytest.raises(RecordingError, match=f"frame 1 at byte {header_end} is corrupt"):
        list(frames)


def test_a_frame_whose_columns_do_not_hold_its_rows_is_corrupt(tmp_path):
    import msgspec

    from feeds.recording import RecordedBatch

    path = tmp_path / "rec.lagg"
    whole = _recorded(path)
    bad = msgspec.msgpack.encode(RecordedBatch(now_ns=1, n=3, columns=[b"\x00"] * 8))
    path.write_bytes(whole + len(bad).to_bytes(4, "little") + bad)
    _, frames = read_recording(path)
    with pytest.raises(RecordingError, match="frame 3 .* is corrupt: its columns do not hold 3 rows"):
        list(frames)


def test_a_newer_version_is_refused_as_such_whatever_its_header_looks_like(tmp_path):
    import msgspec

    path = tmp_path / "v3.lagg"
    header = msgspec.msgpack.encode({"version": 3, "instruments": {"EUR/USD": {"tick": "0.00001"}}})
    path.write_bytes(MAGIC + len(header).to_bytes(4, "little") + header)
    with pytest.raises(RecordingError, match="format version 3, this build reads versions 1, 2"):
        read_recording(path)
    path.write_bytes(b"LAGGREC2" + len(header).to_bytes(4, "little") + header)
    with pytest.raises(RecordingError, match="another format"):
        read_recording(path)


def test_each_batch_is_in_the_file_as_soon_as_it_is_recorded(tmp_path):
    # A gateway killed with SIGKILL never closes its recorder: what it recorded must be on disk.
    path = tmp_path / "rec.lagg"
    rec = Recorder(path, _header())
    for batch, now in _batches():
        rec.record(batch, now)
    _, frames = read_recording(path)
    assert [f.now_ns for f in frames] == [1_300, 2_200]
    rec.close()


class _FullDisk:
    """A file whose writes fail as on a full disk."""

    def __init__(self, inner) -> None:
        self.inner = inner

    def write(self, data: bytes) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    def flush(self) -> None:
        pass

    @property
    def closed(self) -> bool:
        return self.inner.closed

    def close(self) -> None:
        self.inner.close()


def test_a_full_disk_stops_the_recording_and_not_the_caller(tmp_path, caplog):
    path = tmp_path / "rec.lagg"
    (a, t_a), (b, t_b) = _batches()
    rec = Recorder(path, _header())
    rec.record(a, t_a)
    rec._file = _FullDisk(rec._file)  # type: ignore[assignment]
    with caplog.at_level(logging.ERROR, logger="lagg.record"):
        rec.record(b, t_b)  # does not raise: the engine's loop goes on
        rec.record(b, t_b + 1)
    rec.close()
    assert rec.error is not None and rec.error.errno == errno.ENOSPC
    assert rec.batches == 1 and "stopped after 1 batches" in caplog.text
    _, frames = read_recording(path)
    assert [f.now_ns for f in frames] == [t_a]


def test_reading_a_recording_does_not_hold_the_whole_file_in_memory(tmp_path):
    import tracemalloc

    path = tmp_path / "big.lagg"
    big = UpdateBatch(50_000)
    for row in range(50_000):
        big.set_level(0, 0, BID, row % 5, 108_500 + row, 10, row)
    with Recorder(path, _header()) as rec:
        for n in range(12):
            rec.record(big, n)
    size = path.stat().st_size
    assert size > 20_000_000
    tracemalloc.start()
    try:
        _, frames = read_recording(path)
        rows = sum(f.n for f in frames)  # one frame at a time, as a replay reads them
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert rows == 600_000
    assert peak < size / 3, f"reading a {size} byte recording peaked at {peak} bytes"  # a few frames' worth


def test_expires_between_batches_read_back_in_order_with_the_skews(tmp_path):
    path = tmp_path / "rec.lagg"
    (a, t_a), (b, t_b) = _batches()
    with Recorder(path, _header()) as rec:
        rec.record(a, t_a)
        # A skew, an expire for an order read, another skew, two more expires: then the batch.
        rec.record(b, t_b, [(0, 3), (1, -2)], [(1_400, 1), (1_500, 2), (1_600, 2)])
    _, frames = read_recording(path)
    got = [(f.skews, f.expires) for f in frames]
    assert got == [([], []), ([(0, 3), (1, -2)], [(1_400, 1), (1_500, 2), (1_600, 2)])]


def test_expires_out_of_order_among_the_skews_are_corruption(tmp_path):
    path = tmp_path / "rec.lagg"
    (a, t_a), _ = _batches()
    with Recorder(path, _header()) as rec:
        rec.record(a, t_a, [(0, 1)], [(1_000, 1), (1_100, 0)])  # back before a skew already set
    out_of_order = r"frame 1 .* is corrupt: its expires are not in order among its 1 skews \(one after skew 0\)"
    with pytest.raises(RecordingError, match=out_of_order):
        list(read_recording(path)[1])
    path.unlink()
    with Recorder(path, _header()) as rec:
        rec.record(a, t_a, [(0, 1)], [(1_000, 2)])
    with pytest.raises(RecordingError, match=r"not in order among its 1 skews \(one after skew 2\)"):
        list(read_recording(path)[1])


# The columns of a version 1 frame, written out here so that the test keeps meaning version 1.
_V1_COLUMNS = (
    ("kind", "<i1"), ("lp", "<i4"), ("instr", "<i4"), ("side", "<i1"), ("level", "<i4"), ("price", "<i8"),
    ("qty", "<i8"), ("ts_ns", "<i8"),
)  # fmt: skip


def test_a_version_1_recording_still_reads_with_no_expires(tmp_path):
    # Version 1 (before expires were recorded): the same frames without the field.
    import msgspec

    path = tmp_path / "v1.lagg"
    header = msgspec.msgpack.encode(msgspec.structs.replace(_header(), version=1))
    data = MAGIC + len(header).to_bytes(4, "little") + header
    for batch, now in _batches():
        columns = [getattr(batch, name)[: batch.n].astype(dtype).tobytes() for name, dtype in _V1_COLUMNS]
        frame = msgspec.msgpack.encode({"now_ns": now, "n": batch.n, "columns": columns, "skews": [[0, 2]]})
        data += len(frame).to_bytes(4, "little") + frame
    path.write_bytes(data)
    header_read, frames = read_recording(path)
    assert header_read.version == 1
    got = [(f.now_ns, _rows(f.to_batch()), f.skews, f.expires) for f in frames]
    assert got == [(now, _rows(batch), [(0, 2)], []) for batch, now in _batches()]


def test_a_recorder_writes_only_the_current_version(tmp_path):
    import msgspec

    with pytest.raises(ValueError, match=f"writes format version {FORMAT_VERSION}, not 1"):
        Recorder(tmp_path / "rec.lagg", msgspec.structs.replace(_header(), version=1))
    assert not (tmp_path / "rec.lagg").exists()
