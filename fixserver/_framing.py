"""FIX framing for the Numba batch kernels: the one array edition of :class:`fixserver.codec.FrameDecoder`.

:mod:`fixserver.batchdecode` (the generic batch decoder) and :mod:`feeds.md_decode` (the LP market-data
kernel) both find their frames with :func:`next_frame`, so a buffer is framed, resynchronised and counted
the same way by both, and the same way as :class:`~fixserver.codec.FrameDecoder` (the tests hold all three
to each other): a frame starts at ``8=FIX.n.n`` or ``8=FIXT.n.n``, its second field is ``9=`` with a
BodyLength that lands exactly on ``10=``, its first body field is a non-empty ``35=``, and its trailer is
``10=NNN<SOH>`` equal to the byte sum mod 256. Anything else is garbled: counted, and decoding resumes at
the next ``8=FIX``; a run of bytes outside any frame counts once, however many reads it spans.

The caller keeps a small int64 framing state between reads (slots ``FS_*``): frames garbled during the call,
whether the stream is inside a garbled run, the reason of the last garbled frame (codes of :data:`REASONS`)
and how much of a pending partial frame was already searched for an early trailer.

Development note: Numba's on-disk cache (``cache=True``) keys a kernel on its own file only. After editing
this file, delete ``fixserver/__pycache__/*.nb[ic]`` and ``feeds/__pycache__/*.nb[ic]``, or the cached
kernels keep the old framing.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["FS_GARBLED", "FS_IN_JUNK", "FS_REASON", "FS_SCANNED", "N_FS", "REASONS", "next_frame", "parse_uint"]

# Framing state slots (an int64 array the caller keeps between reads)
FS_GARBLED, FS_IN_JUNK, FS_REASON, FS_SCANNED = range(4)
N_FS = 4

REASONS = (
    None,
    "bytes outside any frame",
    "BeginString is not FIX.n.n or FIXT.n.n",
    "second field is not BodyLength (9)",
    "BodyLength is not a number",
    "third field is not MsgType (35)",
    "BodyLength does not end at CheckSum (10)",
    "MsgType (35) is empty",
    "CheckSum is not three digits",
    "CheckSum mismatch",
)
"""The texts of :attr:`fixserver.codec.FrameDecoder.last_garbled_reason`, by the codes kept in ``FS_REASON``."""

_SOH = 1
_SATURATE = 1 << 62  # BodyLength digits beyond any sane maximum saturate here (no int64 overflow)


@njit(cache=True, nogil=True)
def _find(buf: np.ndarray, n: int, start: int, stop: int, c0: int) -> int:
    for i in range(start, min(stop, n)):
        if buf[i] == c0:
            return i
    return -1


@njit(cache=True, nogil=True)
def _find_start(buf: np.ndarray, n: int, pos: int) -> int:
    """Offset of the next b"8=FIX" at or after ``pos``, or -1."""
    i = pos
    last = n - 5
    while i <= last:
        if buf[i] == 56 and buf[i + 1] == 61 and buf[i + 2] == 70 and buf[i + 3] == 73 and buf[i + 4] == 88:
            return i
        i += 1
    return -1


@njit(cache=True, nogil=True)
def _find_trailer(buf: np.ndarray, n: int, start: int) -> int:
    """Offset of the next b"\\x0110=" at or after ``start``, or -1."""
    i = start
    last = n - 4
    while i <= last:
        if buf[i] == 1 and buf[i + 1] == 49 and buf[i + 2] == 48 and buf[i + 3] == 61:
            return i
        i += 1
    return -1


@njit(cache=True, nogil=True)
def _is_digits(buf: np.ndarray, s: int, e: int) -> bool:
    if e <= s:
        return False
    for i in range(s, e):
        c = buf[i]
        if c < 48 or c > 57:
            return False
    return True


@njit(cache=True, nogil=True)
def parse_uint(buf: np.ndarray, s: int, e: int) -> int:
    """Value of an all-digit span of at most 18 digits (int64-safe), else -1."""
    if e <= s or e - s > 18:
        return -1
    v = 0
    for i in range(s, e):
        c = buf[i]
        if c < 48 or c > 57:
            return -1
        v = v * 10 + (c - 48)
    return v


@njit(cache=True, nogil=True)
def _frame_end(buf: np.ndarray, n: int, start: int, scanned: int, max_size: int) -> tuple[int, int, int, int]:
    """The decisions of FrameDecoder._frame_end for the frame at ``start``: (end, reason, body_start, length).

    ``end`` > 0: a sound frame ends there, CheckSum not yet summed (:func:`next_frame` does it, where the
    compiler vectorises the sum); 0: more bytes needed; -1: garbled, ``reason`` says why; -2: BodyLength
    above ``max_size`` (``length`` is the announced one, saturated at 2**62).
    """
    # "8=FIX.4.4<SOH>" or "8=FIXT.1.1<SOH>": anything else after "8=FIX" is not a frame start
    soh1 = _find(buf, n, start, start + 11, _SOH)
    if soh1 < 0:
        if n - start >= 11:
            return -1, 2, 0, 0
        return 0, 0, 0, 0
    o = soh1 - 4  # ".n.n" before the SOH, after "8=FIX" or "8=FIXT"
    if not (soh1 - start == 9 or (soh1 - start == 10 and buf[start + 5] == 84)):
        return -1, 2, 0, 0
    if buf[o] != 46 or buf[o + 2] != 46 or not (48 <= buf[o + 1] <= 57) or not (48 <= buf[o + 3] <= 57):
        return -1, 2, 0, 0
    if n < soh1 + 3:
        return 0, 0, 0, 0
    if buf[soh1 + 1] != 57 or buf[soh1 + 2] != 61:  # "9="
        return -1, 3, 0, 0
    len_start = soh1 + 3
    soh2 = _find(buf, n, len_start, len_start + 21, _SOH)
    dig_end = min(n if soh2 < 0 else soh2, len_start + 21)
    if not _is_digits(buf, len_start, dig_end):
        if soh2 < 0 and dig_end <= len_start:
            return 0, 0, 0, 0
        return -1, 4, 0, 0
    if soh2 < 0:
        if dig_end - len_start > 20:
            return -1, 4, 0, 0
        return 0, 0, 0, 0
    # BodyLength, judged at its SOH: before it, "9=52" may still be junk followed by the next "8=".
    length = 0
    for i in range(len_start, dig_end):
        length = min(length * 10 + (buf[i] - 48), _SATURATE)
    if length > max_size:
        return -2, 0, 0, length
    body_start = soh2 + 1
    body_end = body_start + length
    frame_end = body_end + 7
    # MsgType must be the first body field; checking it early drops junk without waiting for it.
    have = min(n, body_start + 3) - body_start
    bad35 = length < 5
    if have >= 1 and buf[body_start] != 51:
        bad35 = True
    if have >= 2 and buf[body_start + 1] != 53:
        bad35 = True
    if have >= 3 and buf[body_start + 2] != 61:
        bad35 = True
    if bad35:
        return -1, 5, 0, 0
    if n < frame_end:
        # A trailer before the announced end means BodyLength is wrong (10 only ever ends a message):
        # garbled now. The search resumes where the last partial read stopped, so a slow peer is linear.
        early = _find_trailer(buf, n, max(body_start, start + scanned - 4))
        if 0 <= early < body_end - 1:
            return -1, 6, 0, 0
        return 0, 0, 0, 0
    if buf[body_end - 1] != _SOH or buf[body_end] != 49 or buf[body_end + 1] != 48 or buf[body_end + 2] != 61:
        return -1, 6, 0, 0
    if buf[frame_end - 1] != _SOH:
        return -1, 6, 0, 0
    if buf[body_start + 3] == _SOH:
        return -1, 7, 0, 0
    if not _is_digits(buf, body_end + 3, body_end + 6):
        return -1, 8, 0, 0
    return frame_end, 0, body_start, length


@njit(cache=True, nogil=True)
def _junk(fs: np.ndarray) -> None:
    """A run of bytes outside any frame counts once, however many reads it spans."""
    if fs[FS_IN_JUNK] == 0:
        fs[FS_GARBLED] += 1
        fs[FS_IN_JUNK] = 1
        fs[FS_REASON] = 1


@njit(cache=True, nogil=True, inline="always")  # inlined into each kernel: a call per frame cost ~3%
def next_frame(buf: np.ndarray, n: int, pos: int, max_size: int, fs: np.ndarray) -> tuple[int, int, int, int]:
    """The next valid frame of ``buf[:n]`` at or after ``pos``: (start, end, body_start, body_length).

    ``end`` > 0: a valid frame is ``buf[start:end]``, its body (from ``35=`` through the SOH before ``10=``)
    ``body_length`` bytes from ``body_start``. Otherwise decoding stops for this read and ``start`` is where
    the bytes to keep for the next read begin: ``end`` 0 when the rest is a partial frame, or bytes that may
    begin one (or nothing); -2 when the frame at ``start`` announces a BodyLength above ``max_size``
    (``body_length``, saturated at 2**62): the caller disconnects. Garbled frames and junk on the way are
    counted in ``fs``.

    Loop shape: ``while True: start, end, ... = next_frame(buf, n, pos, ...); if end <= 0: break; ...;
    pos = end``, then read ``start`` after the loop. Numba 0.68 miscompiles the obvious ``pos = start;
    break`` (a ``while True`` whose break branch reassigns the loop variable: the loop head keeps the old
    value and never ends; cf. numba/numba#5267).
    """
    while pos < n:
        start = _find_start(buf, n, pos)
        if start < 0:
            # Keep a tail that may be the beginning of "8=FIX"; the rest is junk.
            keep = n
            for k in range(min(4, n - pos), 0, -1):
                match = True
                for q in range(k):
                    if buf[n - k + q] != (56, 61, 70, 73)[q]:  # "8=FI"
                        match = False
                        break
                if match:
                    keep = n - k
                    break
            if keep > pos:
                _junk(fs)
            return keep, 0, 0, 0
        if start > pos:
            _junk(fs)
        end, reason, body_start, length = _frame_end(buf, n, start, fs[FS_SCANNED], max_size)
        if end == -2:
            return start, -2, 0, length
        if end == 0:
            fs[FS_SCANNED] = n - start
            return start, 0, 0, 0
        fs[FS_SCANNED] = 0
        if end > 0:
            # CheckSum, summed here where the compiler vectorises the plain reduction (inside _frame_end
            # it did not: the batch decoder was ~10% slower)
            total = 0
            for i in range(start, end - 7):
                total += buf[i]
            check = (buf[end - 4] - 48) * 100 + (buf[end - 3] - 48) * 10 + (buf[end - 2] - 48)
            if check != (total & 255):
                end = -1
                reason = 9
        if end < 0:  # garbled: resynchronise after this "8=FIX"
            fs[FS_GARBLED] += 1
            fs[FS_IN_JUNK] = 1
            fs[FS_REASON] = reason
            pos = start + 1
            continue
        fs[FS_IN_JUNK] = 0
        return start, end, body_start, length
    return pos, 0, 0, 0
