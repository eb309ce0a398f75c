"""The FIX message log as support reads it: one line per message in and out, with time,
direction and session; passwords masked; market data left out; a rotated file reopened."""

from fixserver.codec import encode
from fixserver.message import FixMessage
from fixserver.message_log import MessageLog

KEY = "FIX.4.4:LAGG->DEMO"
T = 1_763_892_000_123_000_000  # 20251123-10:00:00.123
HEADER = [(49, b"LAGG"), (56, b"DEMO"), (34, 7), (52, b"20251123-10:00:00.123")]


def test_each_message_is_one_line_with_time_direction_and_session(tmp_path):
    log = MessageLog(tmp_path / "fix.log")
    log.inbound(KEY, FixMessage([(8, b"FIX.4.4"), (35, b"D"), (34, b"7"), (11, b"o1"), (10, b"000")]), T)
    report = encode(b"8", HEADER, [(37, b"O1"), (11, b"o1"), (150, b"F")])
    log.outbound(KEY, report, T + 1_000_000)
    lines = (tmp_path / "fix.log").read_bytes().splitlines()
    assert lines[0] == b"20251123-10:00:00.123 IN  FIX.4.4:LAGG->DEMO 8=FIX.4.4|35=D|34=7|11=o1|10=000|"
    assert lines[1] == b"20251123-10:00:00.124 OUT FIX.4.4:LAGG->DEMO " + report.replace(b"\x01", b"|")
    assert log.lines == 2


def test_passwords_are_masked_both_ways(tmp_path):
    log = MessageLog(tmp_path / "fix.log")
    log.inbound(KEY, FixMessage([(35, b"A"), (553, b"DEMO"), (554, b"s3cret"), (925, b"n3w"), (108, b"30")]), T)
    log.outbound(KEY, encode(b"A", HEADER, [(98, b"0"), (108, b"30"), (554, b"s3cret"), (925, b"n3w")]), T)
    text = (tmp_path / "fix.log").read_bytes()
    assert b"s3cret" not in text and b"n3w" not in text
    assert text.count(b"|554=***|") == 2 and text.count(b"|925=***|") == 2 and b"|553=DEMO|" in text


def test_market_data_is_left_out_either_way(tmp_path):
    log = MessageLog(tmp_path / "fix.log")
    log.inbound(KEY, FixMessage([(35, b"X"), (34, b"8")]), T)
    log.inbound(KEY, FixMessage([(35, b"W"), (34, b"9")]), T)
    log.outbound(KEY, encode(b"W", HEADER, [(262, b"md"), (55, b"EUR/USD"), (268, b"0")]), T)
    log.outbound(KEY, encode(b"X", HEADER, [(262, b"md"), (268, b"0")]), T)
    log.inbound(KEY, FixMessage([(35, b"V"), (262, b"md")]), T)  # the request is in
    assert (tmp_path / "fix.log").read_bytes().count(b"\n") == 1 and log.lines == 1


def test_reopen_starts_a_new_file_after_a_rotation(tmp_path):
    log = MessageLog(tmp_path / "logs" / "fix.log")  # the directory is made
    log.inbound(KEY, FixMessage([(35, b"0"), (34, b"2")]), T)
    (tmp_path / "logs" / "fix.log").rename(tmp_path / "logs" / "fix.log.1")
    log.reopen()
    log.inbound(KEY, FixMessage([(35, b"0"), (34, b"3")]), T)
    log.close()
    assert b"34=2" in (tmp_path / "logs" / "fix.log.1").read_bytes()
    assert b"34=3" in (tmp_path / "logs" / "fix.log").read_bytes()
