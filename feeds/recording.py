"""Recorder and reader for LP update batches: the replay file format.

Format (version 1), designed to be appended while the engine runs and read back tick-for-tick:

    file   := MAGIC frame*
    MAGIC  := b"LAGGREC1"
    frame  := u32 little-endian length, then that many bytes of msgpack

The first frame is a :class:`RecordingHeader` (format version, the instrument table with tick
sizes and quantity steps, the LP table, the tier table, and the config text it was recorded
with). Each following frame is a :class:`RecordedBatch`: the engine's ``now_ns`` when the batch
was applied, the row count, the :class:`~engine.batch.UpdateBatch` columns as raw
little-endian array bytes, and the inventory-skew inputs fills set since the previous batch.
Raw column bytes keep recording cheap on the hot path (one ``tobytes`` per column, no per-row
Python objects) and make the reader a zero-copy ``np.frombuffer``.

A truncated last frame (the process was killed mid-write) is reported and ignored: everything
before it replays.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import msgspec
import numpy as np

from engine.batch import UpdateBatch

__all__ = ["MAGIC", "FORMAT_VERSION", "RecordingHeader", "RecordedBatch", "Recorder", "read_recording"]

MAGIC = b"LAGGREC1"
FORMAT_VERSION = 1
_LEN = struct.Struct("<I")

# Column name -> dtype, in file order. Little-endian explicitly so files move between machines.
_COLUMNS: tuple[tuple[str, str], ...] = (
    ("kind", "<i1"),
    ("lp", "<i4"),
    ("instr", "<i4"),
    ("side", "<i1"),
    ("level", "<i4"),
    ("price", "<i8"),
    ("qty", "<i8"),
    ("ts_ns", "<i8"),
)


class RecordingHeader(msgspec.Struct, frozen=True):
    version: int
    instruments: list[str]
    tick_sizes: list[str]
    qty_steps: list[str]
    lps: list[str]
    tiers: list[str]
    config_toml: str = ""
    started_ns: int = 0
    config_json: str = ""  # the validated Config as msgspec JSON: a recording replays on its own


class RecordedBatch(msgspec.Struct, frozen=True):
    now_ns: int
    n: int
    columns: list[bytes]  # in _COLUMNS order
    # Inventory-skew inputs set since the previous batch, (instrument, ticks) in order: applied
    # before the batch. Absent in older files (decoded as none), ignored by older readers.
    skews: list[tuple[int, int]] = []

    def to_batch(self, into: UpdateBatch | None = None) -> UpdateBatch:
        """Rebuild an :class:`UpdateBatch` (reusing ``into`` when given)."""
        batch = into if into is not None else UpdateBatch(max(self.n, 1))
        while batch.capacity < self.n:
            batch._grow()
        for (name, dtype), raw in zip(_COLUMNS, self.columns, strict=True):
            getattr(batch, name)[: self.n] = np.frombuffer(raw, dtype=dtype, count=self.n)
        batch.n = self.n
        return batch


class Recorder:
    """Appends batches to a recording file. Not thread-safe; one per engine."""

    def __init__(self, path: str | Path, header: RecordingHeader) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file: BinaryIO = open(self.path, "wb")  # noqa: SIM115 - closed in close()
        self._encoder = msgspec.msgpack.Encoder()
        self._file.write(MAGIC)
        self._write(self._encoder.encode(header))
        self.batches = 0
        self.rows = 0

    def _write(self, payload: bytes) -> None:
        self._file.write(_LEN.pack(len(payload)))
        self._file.write(payload)

    def record(self, batch: UpdateBatch, now_ns: int, skews: list[tuple[int, int]] | None = None) -> None:
        """Append the batch's valid rows as they will be applied at ``now_ns``, after ``skews``."""
        n = batch.n
        columns = [getattr(batch, name)[:n].astype(dtype, copy=False).tobytes() for name, dtype in _COLUMNS]
        self._write(self._encoder.encode(RecordedBatch(now_ns=now_ns, n=n, columns=columns, skews=skews or [])))
        self.batches += 1
        self.rows += n

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class RecordingError(ValueError):
    """The file is not a recording this version can read."""


def read_recording(path: str | Path) -> tuple[RecordingHeader, Iterator[RecordedBatch]]:
    """Open a recording: its header, and an iterator over its batches in order.

    A truncated trailing frame (the writer was killed mid-write) ends the iteration.
    """
    data = Path(path).read_bytes()
    if not data.startswith(MAGIC):
        raise RecordingError(f"{path}: not a lagg recording (bad magic)")
    offset = len(MAGIC)
    frames = _frames(data, offset)
    try:
        first = next(frames)
    except StopIteration:
        raise RecordingError(f"{path}: recording has no header") from None
    header = msgspec.msgpack.decode(first, type=RecordingHeader)
    if header.version != FORMAT_VERSION:
        raise RecordingError(f"{path}: format version {header.version}, this build reads {FORMAT_VERSION}")
    decoder = msgspec.msgpack.Decoder(RecordedBatch)
    return header, (decoder.decode(frame) for frame in frames)


def _frames(data: bytes, offset: int) -> Iterator[bytes]:
    view = memoryview(data)
    end = len(data)
    while offset + _LEN.size <= end:
        (length,) = _LEN.unpack_from(data, offset)
        start = offset + _LEN.size
        if start + length > end:
            return  # truncated last frame: the writer was killed mid-frame
        yield bytes(view[start : start + length])
        offset = start + length
