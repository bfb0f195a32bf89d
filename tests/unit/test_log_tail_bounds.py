"""The Logs tab on a log file with huge lines (a logged answer body): the past day's tail reads a
bounded end of the file, and every line is shown cut to LINE_MAX_CHARS (reviewer's find: a 32 MB
line was read by ever larger copies, 7 s, and sent to the page whole)."""
from __future__ import annotations

from dashboard import files
from dashboard.tabs import logs


def test_a_file_of_few_huge_lines_is_read_within_the_byte_bound(tmp_path):
    path = tmp_path / "2026-12-07_hil_scheduler.log"
    path.write_bytes(b"2026-12-07 10:00:00 - INFO - start\n" + b"x" * (6 * 2**20) + b"\n"
                     + b"2026-12-07 10:00:01 - ERROR - body: " + b"y" * (3 * 2**20) + b"\n"
                     + b"2026-12-07 10:00:02 - INFO - end\n")
    lines = files.tail_lines(path, max_lines=2000, max_bytes=4 * 2**20)
    assert len(lines) == 3
    assert lines[0].startswith("…x") and set(lines[0][1:]) == {"x"}        # cut by the bound, marked
    assert lines[1].startswith("2026-12-07 10:00:01 - ERROR - body: yyy") and len(lines[1]) == 36 + 3 * 2**20
    assert lines[2] == "2026-12-07 10:00:02 - INFO - end"
    assert sum(len(line.encode()) - line.startswith("…") * 3 + 1 for line in lines) == 4 * 2**20   # read: 4 MiB


def test_a_tail_stopped_by_the_line_count_drops_its_cut_first_line(tmp_path):
    path = tmp_path / "big.log"
    path.write_text("".join(f"line {i}\n" for i in range(50_000)))
    assert files.tail_lines(path, 2000)[0] == "line 48000"
    assert files.tail_lines(path, 10, max_bytes=30)[0].startswith("…")       # the bytes bound came first


def test_a_shown_log_line_is_cut_with_the_count_of_the_rest():
    assert logs.shown_line("short") == "short"
    long = "a" * (logs.LINE_MAX_CHARS + 12_345)
    assert logs.shown_line(long) == "a" * logs.LINE_MAX_CHARS + " … (12,345 more characters)"
    ring = [{"date": "2026-12-07", "timestamp": "10:00:00", "level": "ERROR", "message": long}]
    assert logs.render_ring(ring, "2026-12-07")[0].children.endswith("more characters)")
    assert logs._render_file_lines([long])[0].children == logs.shown_line(long)


def test_the_byte_bound_falling_on_a_line_start_a_newline_or_inside_a_character(tmp_path):
    """A line cut by the bound is marked `…` and starts at a whole character; a bound on a line's
    start cuts nothing (no mark: the line keeps its level colour); one leaving only a newline of the
    line before shows nothing of it (before: `…2026-…` uncoloured, an empty `…` line, `…�`)."""
    last = b"2026-12-07 10:00:01 - INFO - end\n"
    path = tmp_path / "x.log"
    path.write_bytes(b"start\n" + "é".encode() * 20 + b"\n" + last)
    assert files.tail_lines(path, max_bytes=len(last)) == [last.decode().strip()]                   # a line start
    assert files.tail_lines(path, max_bytes=len(last) + 1) == [last.decode().strip()]               # its newline
    assert files.tail_lines(path, max_bytes=len(last) + 6) == ["…éé", last.decode().strip()]        # mid-character
    assert files.tail_lines(path, max_bytes=len(last) + 7) == ["…ééé", last.decode().strip()]       # whole ones
    assert logs.shown_line("…" + "x" * (logs.LINE_MAX_CHARS + 9)).endswith("(at least 10 more characters)")
