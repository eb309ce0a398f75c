"""The trade journal: nothing committed is lost, nothing uncommitted is pretended."""

import io
import os
import sqlite3
import subprocess
import sys
import textwrap
from fractions import Fraction

import pytest

from engine.fixedpoint import Grid
from engine.journal import BatchLost, DuplicateClOrdID, Journal, _decimal_text, replay_fills


def test_order_fill_and_status_survive_reopen(tmp_path):
    j = Journal(tmp_path / "j.sqlite")
    oid = j.new_order("DEMO", "c1", "EUR/USD", 1, "2", "3", 1000, 108510, now_ns=1)
    eid = j.fill(oid, 400, 108508, "internal", now_ns=2, status="1")
    j.commit()
    j.close()

    j2 = Journal(tmp_path / "j.sqlite")
    order = j2.order(oid)
    assert order is not None
    assert (order.status, order.cum_qty, order.cost) == ("1", 400, 400 * 108508)
    assert [f.exec_id for f in j2.fills()] == [eid]
    assert [o.order_id for o in j2.open_orders()] == [oid]
    # ids continue after a restart rather than colliding
    assert j2.next_id("E") not in (oid, eid)


def test_duplicate_cl_ord_id_per_client_is_refused(tmp_path):
    j = Journal(tmp_path / "j.sqlite")
    j.new_order("DEMO", "c1", "EUR/USD", 1, "1", "3", 1, None, now_ns=1)
    with pytest.raises(DuplicateClOrdID):
        j.new_order("DEMO", "c1", "EUR/USD", -1, "1", "3", 1, None, now_ns=2)
    j.new_order("OTHER", "c1", "EUR/USD", 1, "1", "3", 1, None, now_ns=3)  # another client's c1
    assert j.has_cl_ord_id("DEMO", "c1") and not j.has_cl_ord_id("DEMO", "c2")


def test_closed_orders_are_not_reopened(tmp_path):
    j = Journal(tmp_path / "j.sqlite")
    a = j.new_order("DEMO", "a", "WTI", 1, "2", "0", 5, -3763, now_ns=1)
    b = j.new_order("DEMO", "b", "WTI", 1, "2", "0", 5, -3700, now_ns=2)
    j.fill(a, 5, -3763, "internal", now_ns=3, status="2")
    j.set_status(b, "4", now_ns=4, text="cancelled by client")
    j.commit()
    assert j.open_orders() == []


def test_positions_replay_from_fills_and_csv_export_renders_decimals(tmp_path):
    j = Journal(tmp_path / "j.sqlite")
    a = j.new_order("DEMO", "a", "WTI", 1, "1", "3", 5, None, now_ns=1)
    b = j.new_order("DEMO", "b", "WTI", -1, "1", "3", 2, None, now_ns=2)
    j.fill(a, 5, -3763, "internal", now_ns=3, status="2")
    j.fill(b, 2, 120, "LP1", now_ns=4, status="2")
    j.commit()
    assert replay_fills(j.fills()) == {("DEMO", "WTI"): 3}
    out = io.StringIO()
    assert j.export_csv(out, {"WTI": (Grid.parse("0.01"), Grid.parse("1"))}) == 2
    lines = out.getvalue().splitlines()
    assert lines[1].split(",")[3:8] == ["WTI", "buy", "5", "-37.63", "internal"]
    assert lines[2].split(",")[4:8] == ["sell", "2", "1.20", "LP1"]


def test_uncommitted_work_is_lost_and_committed_work_is_kept_across_kill_9(tmp_path):
    path = tmp_path / "j.sqlite"
    script = textwrap.dedent(
        f"""
        import os, signal
        from engine.journal import Journal
        j = Journal({str(path)!r})
        oid = j.new_order("DEMO", "kept", "EUR/USD", 1, "1", "3", 10, None, now_ns=1)
        j.fill(oid, 10, 108500, "internal", now_ns=2, status="2")
        j.commit()
        lost = j.new_order("DEMO", "lost", "EUR/USD", 1, "1", "3", 10, None, now_ns=3)
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], cwd=os.getcwd(), timeout=60)
    assert proc.returncode == -9
    j = Journal(path)
    assert j.has_cl_ord_id("DEMO", "kept")
    assert not j.has_cl_ord_id("DEMO", "lost")
    assert [f.qty for f in j.fills()] == [10]


def test_cli_exports_fills_as_csv(tmp_path):
    from tests.conftest import EXAMPLE_CONFIG

    path = tmp_path / "j.sqlite"
    j = Journal(path)
    oid = j.new_order("DEMO", "a", "EUR/USD", 1, "1", "3", 1000, None, now_ns=1)
    j.fill(oid, 1000, 108512, "internal", now_ns=2, status="2")
    j.close()
    result = subprocess.run(
        [sys.executable, "-m", "engine.cli", "journal", "export", "--csv", "--config", str(EXAMPLE_CONFIG),
         "--journal", str(path)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    rows = result.stdout.splitlines()
    assert rows[0].startswith("exec_id,order_id,client")
    assert rows[1].split(",")[3:7] == ["EUR/USD", "buy", "1000000", "1.08512"]
    assert "exported 1 fills" in result.stderr


def test_a_failed_event_is_rolled_back_whole_and_the_next_commit_keeps_only_whole_events(tmp_path):
    j = Journal(tmp_path / "j.sqlite")
    with j.atomic():
        kept = j.new_order("DEMO", "kept", "EUR/USD", 1, "1", "3", 10, None, now_ns=1)
    with pytest.raises(RuntimeError), j.atomic():
        half = j.new_order("DEMO", "half", "EUR/USD", 1, "1", "3", 10, None, now_ns=2)
        assert j.fill(half, 4, 108500, "internal", now_ns=3, status="1") == "E3"
        raise RuntimeError("the second fill failed")
    j.commit()
    j.close()

    again = Journal(tmp_path / "j.sqlite")
    assert again.has_cl_ord_id("DEMO", "kept") and not again.has_cl_ord_id("DEMO", "half")
    assert list(again.fills()) == []
    assert (kept, half) == ("O1", "O2")
    assert again.next_id("E") == "E4"  # an id handed out is never reused, even one of a rolled-back event


def test_a_failed_commit_rolls_the_batch_back_and_says_so(tmp_path):
    j = Journal(tmp_path / "j.sqlite")
    j.new_order("DEMO", "a", "EUR/USD", 1, "1", "3", 10, None, now_ns=1)
    j._db = _FailingCommit(j._db)  # the disk fails at the COMMIT's fsync, say
    with pytest.raises(BatchLost):
        j.commit()
    j.new_order("DEMO", "b", "EUR/USD", 1, "1", "3", 10, None, now_ns=2)  # a fresh batch works
    j.commit()
    assert not j.has_cl_ord_id("DEMO", "a") and j.has_cl_ord_id("DEMO", "b")


class _FailingCommit:
    """A connection whose first COMMIT fails."""

    def __init__(self, db):
        self._db, self._armed = db, True

    def __getattr__(self, name):
        return getattr(self._db, name)

    def execute(self, sql, *args):
        if sql == "COMMIT" and self._armed:
            self._armed = False
            raise sqlite3.OperationalError("disk I/O error")
        return self._db.execute(sql, *args)


def test_when_sqlite_drops_the_whole_batch_inside_an_event_the_event_says_so_and_nothing_half_is_kept(tmp_path):
    j = Journal(tmp_path / "j.sqlite")
    j.new_order("DEMO", "earlier", "EUR/USD", 1, "1", "3", 10, None, now_ns=1)
    with pytest.raises(BatchLost), j.atomic():
        with pytest.raises(BatchLost), j.atomic():
            j._db.execute("ROLLBACK")  # what SQLite itself does on some disk-full and I/O errors
            raise sqlite3.OperationalError("disk I/O error")
        j.new_order("DEMO", "after", "EUR/USD", 1, "1", "3", 10, None, now_ns=2)  # the outer event goes on
    j.commit()
    assert not j.has_cl_ord_id("DEMO", "earlier") and not j.has_cl_ord_id("DEMO", "after")


def test_the_csv_export_ends_with_the_houses_odd_lots_in_exact_quantities(tmp_path):
    j = Journal(tmp_path / "j.sqlite")
    oid = j.new_order("FUNDA", "c1", "EUR/USD", 1, "1", "3", 3, None, now_ns=1)
    j.fill(oid, 2, 108511, "LP2", now_ns=2, status="1")
    j.odd_lot("EUR/USD", 1, Fraction(1, 2), 108510, "LP1", "O1.1", "32=500 31=1.08510", now_ns=3)
    j.odd_lot("EUR/USD", -1, Fraction(1, 8), 108509, "LP1", "O1.2", "32=125 31=1.08509", now_ns=4)
    j.commit()
    out = io.StringIO()
    assert j.export_csv(out, {"EUR/USD": (Grid.parse("0.00001"), Grid.parse("1000"))}) == 3
    rows = [line.split(",") for line in out.getvalue().splitlines()[1:]]
    assert rows[0][2:8] == ["FUNDA", "EUR/USD", "buy", "2000", "1.08511", "LP2"]
    assert [r[1:8] for r in rows[1:]] == [
        ["O1.1", "__house__", "EUR/USD", "buy", "500", "1.08510", "LP1"],
        ["O1.2", "__house__", "EUR/USD", "sell", "125", "1.08509", "LP1"],
    ]


def test_odd_lot_quantities_below_one_unit_keep_their_decimals():
    assert _decimal_text(Fraction(1, 8)) == "0.125"
    assert _decimal_text(Fraction(-5, 2)) == "-2.5"
    assert _decimal_text(Fraction(3)) == "3"


def test_the_journal_keeps_each_symbols_tick_and_step_and_refuses_other_ones(tmp_path):
    j = Journal(tmp_path / "j.sqlite")
    assert j.adopt_grids({"EUR/USD": ("0.00001", "1000"), "WTI": ("0.01", "1")}) == []
    assert j.adopt_grids({"EUR/USD": ("0.000010", "1000.0"), "USD/JPY": ("0.001", "1000")}) == []  # same; one new
    assert dict(j.grids()) == {"EUR/USD": ("0.00001", "1000"), "WTI": ("0.01", "1"), "USD/JPY": ("0.001", "1000")}
    changed = j.adopt_grids({"EUR/USD": ("0.0001", "1000"), "WTI": ("0.01", "10"), "XAU/USD": ("0.01", "1")})
    assert changed == [
        f"EUR/USD: the journal {j.path} holds prices in ticks of 0.00001 and quantities in steps of 1000; "
        "the config says 0.0001 and 1000",
        f"WTI: the journal {j.path} holds prices in ticks of 0.01 and quantities in steps of 1; "
        "the config says 0.01 and 10",
    ]
    assert "XAU/USD" not in dict(j.grids())  # nothing adopted from a config that was refused
