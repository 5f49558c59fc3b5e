"""Progress bars that suit both a terminal and a log file.

On a terminal a bar redraws in place (tqdm). Written to a file or a pipe, every redraw would
become a line of the log (a quick start wrote thousands), so there a bar writes one plain line
at each quarter of its total (25 %, 50 %, 75 %, 100 %) and one when it closes, nothing else.
"""

from __future__ import annotations

import os
import sys
from typing import Any, TextIO

from tqdm import tqdm as _plain_tqdm
from tqdm.auto import tqdm

__all__ = ["LogBar", "progress_bar", "quiet_foreign_bars", "tqdm"]

#: lines a bar writes into a log over its run (plus the closing line)
STEPS = 4


class LogBar(_plain_tqdm):
    """tqdm for a non-terminal stream: a newline-terminated line per quarter of the total."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._written_step = 0
        self._final_written = False
        kwargs.setdefault("mininterval", 0.5)
        kwargs.pop("dynamic_ncols", None)  # a log has no width to follow
        kwargs.setdefault("ncols", 100)
        super().__init__(*args, **kwargs)

    def _line(self) -> None:
        self.fp.write(self.__str__().strip() + "\n")
        self.fp.flush()

    def display(self, msg: str | None = None, pos: int | None = None) -> bool:
        if msg is not None:  # tqdm clearing the bar: nothing to clear in a log
            return False
        if self.total:
            step = min(STEPS, int(STEPS * self.n / self.total))
            if step > self._written_step:
                self._written_step = step
                self._final_written = step == STEPS
                self._line()
        return True

    def close(self) -> None:
        if not self.disable and not self._final_written and self.n:
            self._final_written = True
            self._line()
        self.leave = False  # tqdm would redraw the bar once more and end it with a newline
        super().close()


def is_terminal(stream: TextIO | None) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # a closed stream
        return False


def progress_bar(*args: Any, **kwargs: Any) -> _plain_tqdm:
    """A tqdm bar on a terminal, a :class:`LogBar` anywhere else (same arguments)."""
    stream = kwargs.get("file") or sys.stderr
    return (tqdm if is_terminal(stream) else LogBar)(*args, **kwargs)


def quiet_foreign_bars(stream: TextIO | None = None) -> None:
    """Keep Hugging Face's own bars (weight loading, hub downloads) out of a log: when
    ``stream`` (default stderr) is not a terminal they are switched off, whether transformers
    is imported already or later (``HF_HUB_DISABLE_PROGRESS_BARS`` is read at its import)."""
    if is_terminal(stream if stream is not None else sys.stderr):
        return
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    if "transformers" in sys.modules:
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()
