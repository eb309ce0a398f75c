"""Recorder and reader for LP update batches: the replay file format.

Format (version 2), designed to be appended while the engine runs and read back tick-for-tick:

    file   := MAGIC frame*
    MAGIC  := b"LAGGREC1"
    frame  := u32 little-endian length, then that many bytes of msgpack

The first frame is a :class:`RecordingHeader` (format version, the instrument table with tick
sizes and quantity steps, the LP table, the tier table, and the config text it was recorded
with). Each following frame is a :class:`RecordedBatch`: the engine's ``now_ns`` when the batch
was applied, the row count, the :class:`~engine.batch.UpdateBatch` columns as raw
little-endian array bytes, the inventory-skew inputs fills set since the previous batch, and the
expires the gateway ran between the two batches (an order or a market-data request read then
takes stale prices out first), each with how many of those skews were set before it.
Raw column bytes keep recording cheap on the hot path (one ``tobytes`` per column, no per-row
Python objects) and make the reader a zero-copy ``np.frombuffer``.

Version 2 added the expires. A version 1 file has none and reads as such; a version 1 reader
refuses a version 2 file (it would replay without the expires, to other quotes).

A truncated last frame (the process was killed mid-write), or a tail of zero bytes (what some
file systems leave of blocks that were allocated but never written before a power loss), is
ignored and reported (:attr:`RecordingFrames.torn_tail_bytes`): everything before it replays. A
frame that is whole but does not decode is corruption, not a torn tail: reading stops with a
:class:`RecordingError` that names the frame and its byte offset.

The version is read from the header before anything else in it, so a file of another version is
refused as such (not as a header that fails to decode), whatever else that version changed.
"""

from __future__ import annotations

import logging
import mmap
import os
import struct
from pathlib import Path
from typing import BinaryIO

import msgspec
import numpy as np

from engine.batch import UpdateBatch

__all__ = [
    "MAGIC",
    "FORMAT_VERSION",
    "READABLE_VERSIONS",
    "RecordingError",
    "RecordingFrames",
    "RecordingHeader",
    "RecordedBatch",
    "Recorder",
    "read_recording",
]

log = logging.getLogger("lagg.record")

MAGIC = b"LAGGREC1"
FORMAT_VERSION = 2  # what the recorder writes
READABLE_VERSIONS = (1, 2)  # what the reader reads: version 1 is version 2 without expires
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
    # Expires run between the previous batch and this one, (now_ns, how many of ``skews`` were
    # set before it) in order: replayed among the skews, before the batch. Version 2 on.
    expires: list[tuple[int, int]] = []

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
    """Appends batches to a recording file. Not thread-safe; one per engine.

    Each batch is flushed to the file as it is recorded (one write per loop turn), so a killed
    process loses at most the frame it was writing, never a buffer's worth of batches. A write
    that fails once recording is under way (a full disk) stops the recording, logs why and keeps
    :attr:`error`: the recording is an aid, and must not stop the gateway that feeds it.
    """

    def __init__(self, path: str | Path, header: RecordingHeader) -> None:
        if header.version != FORMAT_VERSION:
            raise ValueError(f"a recorder writes format version {FORMAT_VERSION}, not {header.version}")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # "x": an existing file is never truncated (a restart must not erase the last recording).
        self._file: BinaryIO = open(self.path, "xb")  # noqa: SIM115 - closed in close()
        self._encoder = msgspec.msgpack.Encoder()
        self._file.write(MAGIC)
        self._write(self._encoder.encode(header))
        self._file.flush()
        self.batches = 0
        self.rows = 0
        self.error: OSError | None = None  # why recording stopped early, if it did

    def _write(self, payload: bytes) -> None:
        self._file.write(_LEN.pack(len(payload)))
        self._file.write(payload)

    def record(
        self,
        batch: UpdateBatch,
        now_ns: int,
        skews: list[tuple[int, int]] | None = None,
        expires: list[tuple[int, int]] | None = None,
    ) -> None:
        """Append the batch's valid rows as they will be applied at ``now_ns``, after ``skews``
        and ``expires`` (``(now_ns, how many of skews came before it)`` each, in order)."""
        if self.error is not None:
            return
        n = batch.n
        columns = [getattr(batch, name)[:n].astype(dtype, copy=False).tobytes() for name, dtype in _COLUMNS]
        frame = RecordedBatch(now_ns=now_ns, n=n, columns=columns, skews=skews or [], expires=expires or [])
        try:
            self._write(self._encoder.encode(frame))
            self._file.flush()
        except OSError as exc:
            self._stop(exc)
            return
        self.batches += 1
        self.rows += n

    def _stop(self, exc: OSError) -> None:
        self.error = exc
        log.error("recording to %s stopped after %d batches: %s (the gateway goes on; the file replays up to"
                  " there)", self.path, self.batches, exc)  # fmt: skip
        try:
            self._file.close()
        except OSError:
            pass  # the part of the frame that was not written is a torn tail, which readers expect

    def flush(self) -> None:
        if self.error is None:
            self._file.flush()

    def close(self) -> None:
        if not self._file.closed:
            try:
                self._file.close()
            except OSError as exc:
                self._stop(exc)

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class RecordingError(ValueError):
    """The file is not a recording this version can read, or it is corrupt."""


class _Version(msgspec.Struct):
    version: int  # every other field of the header is left to the version that wrote it


class RecordingFrames:
    """The batches of a recording, in order (an iterator over :class:`RecordedBatch`).

    Once exhausted, :attr:`torn_tail_bytes` is how many bytes at the end were a torn last frame
    (or unwritten zeros) and were ignored; 0 for a recording that was closed cleanly.
    """

    def __init__(self, path: str | Path, data: bytes | mmap.mmap, offset: int) -> None:
        self._path = path
        self._data = data
        self._offset = offset
        self._index = 0  # of the next frame; the header is frame 0
        self._decoder = msgspec.msgpack.Decoder(RecordedBatch)
        self.torn_tail_bytes = 0

    def __iter__(self) -> RecordingFrames:
        return self

    def _next_frame(self) -> bytes | None:
        """The next whole frame's bytes, or None at the end (a torn tail is noted, not raised)."""
        data, offset = self._data, self._offset
        end = len(data)
        if offset >= end:
            return None
        if _is_torn_tail(data, offset):
            self.torn_tail_bytes = end - offset
            self._offset = end
            return None
        (length,) = _LEN.unpack_from(data, offset)
        if not length:  # the recorder never writes an empty frame (msgpack of a struct is not empty)
            raise RecordingError(f"{self._path}: frame {self._index} at byte {offset} is corrupt (empty)")
        start = offset + _LEN.size
        self._offset = start + length
        self._index += 1
        return data[start : start + length]

    def __next__(self) -> RecordedBatch:
        offset = self._offset
        raw = self._next_frame()
        if raw is None:
            raise StopIteration
        try:
            frame = self._decoder.decode(raw)
        except msgspec.DecodeError as exc:
            raise RecordingError(f"{self._path}: frame {self._index - 1} at byte {offset} is corrupt: {exc}") from None
        if len(frame.columns) != len(_COLUMNS) or any(
            len(raw_col) != frame.n * np.dtype(dtype).itemsize
            for raw_col, (_, dtype) in zip(frame.columns, _COLUMNS, strict=False)
        ):
            raise RecordingError(
                f"{self._path}: frame {self._index - 1} at byte {offset} is corrupt: its columns do not hold"
                f" {frame.n} rows"
            )
        before = 0
        for _, skews_before in frame.expires:
            if not before <= skews_before <= len(frame.skews):
                raise RecordingError(
                    f"{self._path}: frame {self._index - 1} at byte {offset} is corrupt: its expires are not in"
                    f" order among its {len(frame.skews)} skews (one after skew {skews_before})"
                )
            before = skews_before
        return frame


def _is_torn_tail(data: bytes | mmap.mmap, offset: int) -> bool:
    """Whether what is left from ``offset`` can be a torn last frame: too short for its length
    prefix, a prefix promising more bytes than are left, or nothing but zeros."""
    end = len(data)
    if offset + _LEN.size > end:
        return True
    (length,) = _LEN.unpack_from(data, offset)
    if length:
        return offset + _LEN.size + length > end
    # A zero length is never written: zeros to the end are unwritten blocks, anything else is
    # corruption. Scanned in pieces (a tail can be long, and this is not the common path).
    return all(not any(data[at : at + 65536]) for at in range(offset, end, 65536))


def _map(path: str | Path) -> bytes | mmap.mmap:
    """The file's bytes, mapped rather than read: a day's recording can be larger than memory,
    and frames are read once each, in order."""
    with open(path, "rb") as file:
        if os.fstat(file.fileno()).st_size == 0:
            return b""
        return mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ)  # outlives the file object


def read_recording(path: str | Path) -> tuple[RecordingHeader, RecordingFrames]:
    """Open a recording: its header, and an iterator over its batches in order.

    A torn last frame (the writer was killed mid-write) ends the iteration and is counted in the
    iterator's ``torn_tail_bytes``; a corrupt frame raises :class:`RecordingError`.
    """
    data = _map(path)
    if data[: len(MAGIC)] != MAGIC:
        if data[: len(MAGIC) - 1] == MAGIC[:-1] and len(data) >= len(MAGIC):
            found = data[: len(MAGIC)]
            raise RecordingError(f"{path}: a lagg recording in another format ({found!r}), this build reads {MAGIC!r}")
        raise RecordingError(f"{path}: not a lagg recording (bad magic)")
    frames = RecordingFrames(path, data, len(MAGIC))
    first = frames._next_frame()
    if first is None:
        raise RecordingError(f"{path}: recording has no header (the file ends before it)")
    try:
        version = msgspec.msgpack.decode(first, type=_Version).version
    except msgspec.DecodeError as exc:
        raise RecordingError(f"{path}: the header is corrupt: {exc}") from None
    if version not in READABLE_VERSIONS:
        readable = ", ".join(str(v) for v in READABLE_VERSIONS)
        raise RecordingError(f"{path}: format version {version}, this build reads versions {readable}")
    try:
        header = msgspec.msgpack.decode(first, type=RecordingHeader)
    except msgspec.DecodeError as exc:
        raise RecordingError(f"{path}: the header is corrupt: {exc}") from None
    return header, frames
