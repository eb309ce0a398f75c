"""`lagg replay` on recordings that are not whole: a torn tail replays and is reported, corruption
is refused with a message that says where, and nothing the file holds makes a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import msgspec

from engine.batch import ASK, BID, UpdateBatch
from engine.config import load_config
from feeds.recording import MAGIC, RecordedBatch
from feeds.replay import recorder_for, replay
from tests.conftest import EXAMPLE_CONFIG, ROOT

WTI = 4  # configs/example.toml's fifth instrument, tick 0.01


def _record(path: Path, skews: list[tuple[int, int]] | None = None) -> None:
    """Three LPs quoting WTI below zero for a few batches."""
    cfg = load_config(EXAMPLE_CONFIG)
    with recorder_for(path, cfg, started_ns=0) as rec:
        batch = UpdateBatch(16)
        for step in range(4):
            now = 1_000_000 * (step + 1)
            for lp in range(3):
                bid = -3763 - lp + step  # -37.63 and below
                batch.set_level(lp, WTI, BID, 0, bid, 100 + lp, now)
                batch.set_level(lp, WTI, ASK, 0, bid + 6, 100 + lp, now)
                if step == 0:
                    batch.lp_up(lp, now)
            rec.record(batch, now, skews if step == 2 else None)
            batch.clear()


def _lagg(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "engine.cli", *args], capture_output=True, text=True, timeout=120,
                          cwd=ROOT)  # fmt: skip


def test_a_torn_tail_replays_what_came_before_and_says_what_it_left_out(tmp_path):
    whole, torn = tmp_path / "whole.lagg", tmp_path / "torn.lagg"
    _record(whole)
    data = whole.read_bytes()
    last = msgspec.msgpack.encode(RecordedBatch(0, 0, []))  # only its size matters: cut inside the last frame
    torn.write_bytes(data[: -len(last)])
    full = replay(whole)
    assert full.batches == 4 and full.torn_tail_bytes == 0
    assert full.quote_changes > 0, "negative prices are prices: WTI must be quoted"
    result = _lagg("replay", str(torn))
    assert result.returncode == 0, result.stderr
    assert "replayed 3 batches" in result.stdout
    torn_bytes = len(data) - len(last) - _end_of_third_frame(data)
    assert f"the last {torn_bytes} bytes are a torn frame" in result.stderr


def _end_of_third_frame(data: bytes) -> int:
    offset = len(MAGIC)
    for _ in range(4):  # the header and three batches
        offset += 4 + int.from_bytes(data[offset : offset + 4], "little")
    return offset


def test_a_corrupt_frame_is_refused_without_a_traceback(tmp_path):
    path = tmp_path / "rec.lagg"
    _record(path)
    data = bytearray(path.read_bytes())
    header_end = len(MAGIC) + 4 + int.from_bytes(data[len(MAGIC) : len(MAGIC) + 4], "little")
    data[header_end + 4] = 0xC1  # never used by msgpack
    path.write_bytes(bytes(data))
    result = _lagg("replay", str(path))
    assert result.returncode == 1
    assert f"frame 1 at byte {header_end} is corrupt" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_skew_for_an_instrument_the_config_lacks_is_refused_without_a_traceback(tmp_path):
    path = tmp_path / "rec.lagg"
    _record(path, skews=[(99, 3)])
    result = _lagg("replay", str(path))
    assert result.returncode == 1
    assert "batch 3 sets the skew of instrument 99" in result.stderr
    assert "Traceback" not in result.stderr


def test_negative_prices_replay_to_the_same_quotes_on_both_engines(tmp_path):
    path = tmp_path / "rec.lagg"
    _record(path, skews=[(WTI, -2)])
    numba, reference = replay(path), replay(path, engine_kind="reference")
    assert numba.quote_changes > 0 and numba.quote_hash == reference.quote_hash


def test_a_recording_carries_no_password_digest(tmp_path):
    cfg = load_config(EXAMPLE_CONFIG)
    digests = [c.password_sha256 for c in cfg.clients if c.password_sha256]
    assert digests, "the example config has a client with a password digest"
    path = tmp_path / "rec.lagg"
    _record(path)
    data = path.read_bytes()
    assert not any(d.encode() in data for d in digests)
    assert replay(path).quote_changes > 0  # and it still replays on its own


def test_ctrl_c_stops_a_replay_at_recorded_speed_without_a_traceback(tmp_path):
    import signal
    import time

    path = tmp_path / "slow.lagg"
    cfg = load_config(EXAMPLE_CONFIG)
    with recorder_for(path, cfg, started_ns=0) as rec:
        rec.record(UpdateBatch(1), 0)
        rec.record(UpdateBatch(1), 60 * 1_000_000_000)  # a minute later: replayed at recorded speed
    proc = subprocess.Popen([sys.executable, "-m", "engine.cli", "replay", "--speed", "recorded", str(path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)  # fmt: skip
    time.sleep(5)  # started (the heavy imports are inside the command) and waiting for the second batch
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 130
    assert "interrupted" in stderr and "Traceback" not in stderr


def _record_lp_gone_stale(path: Path, expire_ns: int | None) -> None:
    """WTI quoted by LP1 and LP2 (staleness 1000 ms) and by LP3 (2000 ms) far wider, in batches
    1.2 s apart that do not move: the mid never moves, unless an expire between the second and
    third batches (an order read then) takes LP1 and LP2 out and the third brings them back."""
    cfg = load_config(EXAMPLE_CONFIG)
    with recorder_for(path, cfg, started_ns=0) as rec:
        batch = UpdateBatch(16)
        for step in range(3):
            now = 1_000_000 + 1_200_000_000 * step
            for lp, (bid, ask) in enumerate(((-3763, -3757), (-3764, -3758), (-3900, -3700))):
                batch.set_level(lp, WTI, BID, 0, bid, 100, now)
                batch.set_level(lp, WTI, ASK, 0, ask, 100, now)
                if step == 0:
                    batch.lp_up(lp, now)
            between = step == 2 and expire_ns is not None
            # A skew set by a fill before the order was read, as the gateway records it.
            rec.record(batch, now, [(WTI, 1)] if step == 2 else None, [(expire_ns, 1)] if between else None)
            batch.clear()


def test_an_expire_recorded_between_batches_is_replayed_there(tmp_path):
    second_ns = 1_000_000 + 1_200_000_000
    stale, early, none = tmp_path / "stale.lagg", tmp_path / "early.lagg", tmp_path / "none.lagg"
    _record_lp_gone_stale(stale, second_ns + 1_100_000_000)  # LP1 and LP2 past their limit
    _record_lp_gone_stale(early, second_ns + 900_000_000)  # no LP past its limit yet
    _record_lp_gone_stale(none, None)
    numba = replay(stale)
    assert numba.quote_hash == replay(stale, engine_kind="reference").quote_hash
    assert numba.batches == 3  # an expire is no batch of its own, and no point of the hash
    # The mid moved there and back: the retail tier widens by it, as it did live.
    assert numba.quote_hash != replay(none).quote_hash
    assert replay(early).quote_hash == replay(none).quote_hash


def test_a_version_1_recording_replays_as_it_did(tmp_path):
    # Version 1 files hold no expires: read as such, they replay to the quotes they always did.
    from feeds.recording import read_recording

    path, v1 = tmp_path / "v2.lagg", tmp_path / "v1.lagg"
    _record(path, skews=[(WTI, -2)])
    header, frames = read_recording(path)
    encoded = msgspec.msgpack.encode(msgspec.structs.replace(header, version=1))
    data = MAGIC + len(encoded).to_bytes(4, "little") + encoded
    for f in frames:
        encoded = msgspec.msgpack.encode({"now_ns": f.now_ns, "n": f.n, "columns": f.columns, "skews": f.skews})
        data += len(encoded).to_bytes(4, "little") + encoded
    v1.write_bytes(data)
    assert replay(v1).quote_hash == replay(path).quote_hash
    result = _lagg("replay", str(v1))
    assert result.returncode == 0 and f"quote hash {replay(path).quote_hash}" in result.stdout
