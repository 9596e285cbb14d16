"""Progress off a terminal: plain lines, a step a tenth of the work, never carriage returns."""

from __future__ import annotations


def test_progress_off_a_terminal_is_a_line_per_tenth():
    import io

    from lowlight.progress import progress

    log = io.StringIO()  # not a terminal
    assert list(progress(range(25), desc="evaluate (test)", unit="img", file=log)) == list(range(25))
    lines = log.getvalue().splitlines()
    assert "\r" not in log.getvalue() and 9 <= len(lines) <= 11, lines
    assert lines[-1].startswith("evaluate (test): 25/25 img, ")
    quiet = io.StringIO()
    assert list(progress([1, 2], file=quiet, disable=True)) == [1, 2] and quiet.getvalue() == ""
