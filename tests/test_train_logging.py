"""Training output (``matconv_port.train.logging.IterationLog``): on a terminal a
progress bar whose postfix carries the running averages (no per-iteration line
scrolls under it) and epoch summaries that still print; without a terminal one
``cnn_train_dag`` line every N iterations and at the last."""
from __future__ import annotations

import io

from matconv_port.train.logging import IterationLog, format_iteration


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def _epoch(log, stream, total=25, progress=True, every=10):
    out = IterationLog("train", 3, total, log, progress=progress, stream=stream, every=every)
    for it in range(1, total + 1):
        out.update(it, 1e-3, 12.5, {"objective": 4.0 / it, "top1err": 0.5})
    out.close()
    log("finished epoch 03: objective (train):0.160")


def test_bar_on_a_terminal_shows_averages_in_its_postfix_and_no_iteration_lines():
    lines, tty = [], FakeTTY()
    _epoch(lines.append, tty)
    assert lines == ["finished epoch 03: objective (train):0.160"]  # the summary still prints
    drawn = tty.getvalue()
    assert "train epoch 3" in drawn and "25/25" in drawn
    assert "objective:0.160" in drawn and "lr: 1e-03, 12.5 Hz" in drawn  # the last averages, in the bar
    assert "\n" not in drawn.rstrip("\n")  # redrawn in place (carriage returns), never scrolled


def test_without_a_terminal_a_line_every_n_iterations_and_the_last():
    lines, pipe = [], io.StringIO()
    _epoch(lines.append, pipe)
    assert pipe.getvalue() == ""
    assert lines == [format_iteration("train", 3, it, 25, 1e-3, 12.5, {"objective": 4.0 / it, "top1err": 0.5})
                     for it in (10, 20, 25)] + ["finished epoch 03: objective (train):0.160"]
    assert lines[0] == "train: epoch 03:  10/ 25: lr: 1e-03, 12.5 Hz objective:0.400 top1err:0.500"


def test_progress_off_prints_lines_even_on_a_terminal():
    lines, tty = [], FakeTTY()
    _epoch(lines.append, tty, total=4, progress=False, every=2)
    assert tty.getvalue() == ""
    assert [l.split(":")[2].strip() for l in lines[:-1]] == ["2/  4", "4/  4"]
