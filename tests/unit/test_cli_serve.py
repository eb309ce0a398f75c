"""`lagg serve` and `lagg lp-sim` on the mistakes an operator makes: a recording path it cannot
write or that holds the last recording, a port in use, a state directory it cannot make, an
`--lp-port` that names no LP or no port. One line that says what is wrong and exit status 1,
never a traceback, and never an earlier recording erased."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from feeds.recording import Recorder
from tests.conftest import ROOT
from tests.unit.test_recording import _header


def _lagg(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "engine.cli", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)  # fmt: skip


def _serve(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return _lagg("serve", "--seconds", "1", "--port", "0", "--metrics-port", "-1", "--state-dir", str(tmp_path), *args)


def _refused(result: subprocess.CompletedProcess[str], words: str) -> None:
    assert result.returncode == 1, result.stderr
    assert words in result.stderr
    assert "Traceback" not in result.stderr


def test_an_existing_recording_is_never_overwritten(tmp_path):
    earlier = tmp_path / "run.lagg"
    earlier.write_bytes(b"yesterday's recording")
    _refused(_serve(tmp_path, "--record", str(earlier)), "already exists")
    assert earlier.read_bytes() == b"yesterday's recording"
    with pytest.raises(FileExistsError):
        Recorder(earlier, _header())
    assert earlier.read_bytes() == b"yesterday's recording"


def test_a_recording_path_that_cannot_be_written_is_refused_before_anything_starts(tmp_path):
    a_file = tmp_path / "notes.txt"
    a_file.write_text("not a directory")
    _refused(_serve(tmp_path, "--record", str(a_file / "run.lagg")), "cannot write there")
    _refused(_serve(tmp_path, "--record", str(tmp_path)), "already exists")


def test_a_port_in_use_is_reported_without_a_traceback(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = _lagg("serve", "--seconds", "1", "--port", str(port), "--metrics-port", "-1",
                       "--state-dir", str(tmp_path))  # fmt: skip
    _refused(result, "address already in use")


def test_a_state_directory_that_cannot_be_made_is_reported_without_a_traceback(tmp_path):
    a_file = tmp_path / "notes.txt"
    a_file.write_text("not a directory")
    _refused(_serve(a_file / "state"), "lagg serve:")


@pytest.mark.parametrize(
    ("pair", "words"),
    [("LP9=9101", "no LP named 'LP9'"), ("LP1=99999", "a port is 0 to 65535"), ("LP1", "expects NAME=PORT")],
)
def test_an_lp_port_that_names_no_lp_or_no_port_is_refused(pair, words):
    _refused(_lagg("lp-sim", "--seconds", "1", "--lp-port", pair, timeout=60), words)


@pytest.mark.parametrize(
    "args",
    [
        ("check-config", "{binary}"),
        ("serve", "--seconds", "1", "--config", "{binary}"),
        ("serve", "--seconds", "1", "--sim", "{binary}"),
        ("lp-sim", "--seconds", "1", "--config", "{binary}"),
        ("journal", "export", "--csv", "--config", "{binary}"),
    ],
)
def test_a_config_that_is_not_text_is_refused_without_a_traceback(tmp_path, args):
    binary = tmp_path / "image.png"  # passed for a config by mistake
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\xc4\xff" * 20)
    _refused(_lagg(*(arg.format(binary=binary) for arg in args), timeout=60), "not UTF-8 text")
