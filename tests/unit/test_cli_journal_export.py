"""`lagg journal export --csv` on the files an operator may really pass it: the wrong file, a
journal the config does not match, an output it cannot write, a reader that stops early. Each
gets one line that says what is wrong and exit status 1, never a traceback; and a wrong file is
left as it was."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

from engine.journal import Journal
from tests.conftest import EXAMPLE_CONFIG, ROOT


def _export(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "engine.cli", "journal", "export", "--csv", "--config", str(EXAMPLE_CONFIG), *args],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
    )  # fmt: skip


def _journal(path: Path, symbol: str = "WTI", fills: int = 1) -> Path:
    j = Journal(path)
    for n in range(fills):
        oid = j.new_order("DEMO", f"c{n}", symbol, 1, "2", "3", 100, -3763, now_ns=1 + n)
        j.fill(oid, 100, -3763, "internal", now_ns=1 + n, status="2")
    j.close()
    return path


def _refused(result: subprocess.CompletedProcess[str], words: str) -> None:
    assert result.returncode == 1, result.stdout
    assert words in result.stderr
    assert "Traceback" not in result.stderr


def test_a_sqlite_file_that_is_not_a_journal_is_refused_and_left_as_it_was(tmp_path):
    store = tmp_path / "fix_store.sqlite"  # the FIX store beside the journal: an easy slip
    db = sqlite3.connect(store)
    db.execute("CREATE TABLE messages (seq INTEGER)")
    db.commit()
    db.close()
    _refused(_export("--journal", str(store)), "not a journal (no fills, orders table)")
    db = sqlite3.connect(store)
    assert [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")] == ["messages"]
    db.close()


def test_a_file_that_is_no_database_or_a_directory_is_refused(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("hello\n" * 100)
    _refused(_export("--journal", str(text)), "not a journal")
    _refused(_export("--journal", str(tmp_path)), "cannot export")


def test_a_journal_with_symbols_the_config_lacks_is_refused_before_any_row_is_written(tmp_path):
    path = _journal(tmp_path / "j.sqlite")
    j = Journal(path)
    oid = j.new_order("DEMO", "x", "BTC/USD", 1, "1", "3", 1, None, now_ns=9)
    j.fill(oid, 1, 5, "internal", now_ns=9, status="2")
    j.close()
    result = _export("--journal", str(path))
    _refused(result, "fills in BTC/USD, which the config does not define")
    assert result.stdout == ""


def test_an_output_that_cannot_be_written_is_refused(tmp_path):
    path = _journal(tmp_path / "j.sqlite")
    _refused(_export("--journal", str(path), "--out", str(tmp_path / "no" / "such" / "dir.csv")), "cannot write")
    _refused(_export("--journal", str(path), "--out", str(tmp_path)), "cannot write")


def test_a_reader_that_stops_early_gets_no_traceback(tmp_path):
    path = _journal(tmp_path / "j.sqlite", fills=3000)  # more than a pipe holds
    proc = subprocess.Popen(
        [sys.executable, "-m", "engine.cli", "journal", "export", "--csv", "--config", str(EXAMPLE_CONFIG),
         "--journal", str(path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT,
    )  # fmt: skip
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.readline().startswith(b"exec_id,")  # `| head -1`
    proc.stdout.close()
    stderr = proc.stderr.read().decode()
    assert proc.wait(timeout=60) != 0
    assert "Traceback" not in stderr and "BrokenPipeError" not in stderr


def test_negative_prices_and_odd_lots_export_exactly(tmp_path):
    path = _journal(tmp_path / "j.sqlite")
    j = Journal(path)
    j.odd_lot("WTI", -1, Fraction(1, 2), -5, "LP1", "O9.1", "32=0.5 31=-0.05", now_ns=7)
    j.close()
    out = tmp_path / "fills.csv"
    result = _export("--journal", str(path), "--out", str(out))
    assert result.returncode == 0, result.stderr
    rows = [line.split(",") for line in out.read_text().splitlines()[1:]]
    assert [r[2:8] for r in rows] == [
        ["DEMO", "WTI", "buy", "100", "-37.63", "internal"],
        ["__house__", "WTI", "sell", "0.5", "-0.05", "LP1"],
    ]
    assert "exported 2 fills" in result.stderr


def test_an_output_naming_the_journal_or_the_config_is_refused_and_the_journal_kept(tmp_path):
    path = _journal(tmp_path / "j.sqlite")
    before = path.read_bytes()
    _refused(_export("--journal", str(path), "--out", str(path)), "which the export reads")
    _refused(_export("--journal", str(path), "--out", str(tmp_path / "." / "j.sqlite")), "which the export reads")
    assert path.read_bytes() == before
    assert _export("--journal", str(path)).returncode == 0
    config = tmp_path / "config.toml"  # a copy: a failing run must not truncate the repository's
    config.write_text(EXAMPLE_CONFIG.read_text())
    _refused(_export("--journal", str(path), "--config", str(config), "--out", str(config)), "which the export reads")
    assert config.read_text() == EXAMPLE_CONFIG.read_text()


def test_an_export_counts_in_the_ticks_the_journal_was_written_in_whatever_the_config_says_now(tmp_path):
    path = tmp_path / "j.sqlite"
    j = Journal(path)
    assert j.adopt_grids({"EUR/USD": ("0.00001", "1000")}) == []
    oid = j.new_order("DEMO", "c1", "EUR/USD", 1, "2", "3", 2, 108512, now_ns=1)
    j.fill(oid, 2, 108512, "internal", now_ns=1, status="2")
    j.close()
    config = tmp_path / "lagg.toml"  # the tick size was changed since
    config.write_text(EXAMPLE_CONFIG.read_text().replace('tick_size = "0.00001"', 'tick_size = "0.0001"', 1))
    out = tmp_path / "fills.csv"
    result = subprocess.run(
        [sys.executable, "-m", "engine.cli", "journal", "export", "--csv", "--config", str(config),
         "--journal", str(path), "--out", str(out)],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    (row,) = [line.split(",") for line in out.read_text().splitlines()[1:]]
    assert row[3:7] == ["EUR/USD", "buy", "2000", "1.08512"]  # not 10.8512
