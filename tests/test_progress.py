"""Progress bars in a log: a line per quarter of the total, no carriage-return redraws."""

from __future__ import annotations

import io
import os

import pytest

from recadapt.progress import LogBar, progress_bar, quiet_foreign_bars


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_bar_into_a_file_writes_a_line_per_quarter():
    log = io.StringIO()
    for _ in progress_bar(range(1000), desc="epoch 1/3", file=log, mininterval=0):
        pass
    lines = log.getvalue().splitlines()
    assert "\r" not in log.getvalue()
    assert len(lines) == 4, lines
    assert [line.split("%")[0].split()[-1] for line in lines] == ["25", "50", "75", "100"]
    assert all(line.startswith("epoch 1/3") for line in lines)


def test_a_bar_stopped_early_or_without_total_still_ends_with_one_line():
    log = io.StringIO()
    bar = progress_bar(total=100, desc="caching", file=log, mininterval=0)
    bar.update(10)
    bar.close()
    assert log.getvalue().count("\n") == 1 and "10/100" in log.getvalue()
    log = io.StringIO()
    for _ in progress_bar(iter(range(50)), desc="stream", file=log, mininterval=0):
        pass
    assert log.getvalue().count("\n") == 1 and "50" in log.getvalue()


def test_a_terminal_gets_the_redrawing_bar():
    assert not isinstance(progress_bar(range(3), file=_Terminal(), disable=True), LogBar)
    assert isinstance(progress_bar(range(3), file=io.StringIO(), disable=True), LogBar)


def test_hugging_face_bars_are_switched_off_in_a_log_only(monkeypatch: pytest.MonkeyPatch):
    from transformers.utils import logging as transformers_logging

    monkeypatch.delenv("HF_HUB_DISABLE_PROGRESS_BARS", raising=False)
    transformers_logging.enable_progress_bar()
    try:
        quiet_foreign_bars(_Terminal())
        assert transformers_logging.is_progress_bar_enabled()
        assert "HF_HUB_DISABLE_PROGRESS_BARS" not in os.environ
        quiet_foreign_bars(io.StringIO())
        assert not transformers_logging.is_progress_bar_enabled()
        assert os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] == "1"
    finally:
        transformers_logging.enable_progress_bar()
