"""A terminal progress bar for style-transfer runs: step/total, steps per second, ETA, loss."""

from __future__ import annotations

import shutil
import sys
import time
from typing import TextIO

from bot.engine.progress import Progress
from bot.text import bar, format_seconds


class ProgressBar:
    """Redraws one line on a terminal; elsewhere (a log, a pipe) prints a line every 10 %."""

    def __init__(self, stream: TextIO = sys.stderr, *, enabled: bool = True):
        self.stream = stream
        self.enabled = enabled
        self.interactive = enabled and stream.isatty()
        self._last_draw = 0.0
        self._last_decile = -1

    def update(self, progress: Progress) -> None:
        if not self.enabled:
            return
        final = progress.step == progress.total
        if self.interactive:
            now = time.monotonic()
            if final or now - self._last_draw >= 0.1:
                self._last_draw = now
                self.stream.write(
                    "\r" + self.line(progress, shutil.get_terminal_size().columns - 1)
                )
                self.stream.flush()
            return
        decile = int(progress.fraction * 10)
        if decile != self._last_decile:
            self._last_decile = decile
            self.stream.write(self.line(progress, 100) + "\n")
            self.stream.flush()

    def close(self) -> None:
        if self.interactive:
            self.stream.write("\n")
            self.stream.flush()

    @staticmethod
    def line(progress: Progress, width: int) -> str:
        rate = progress.step / progress.elapsed if progress.elapsed > 0 else 0.0
        level = f" level {progress.level}/{progress.levels}" if progress.levels > 1 else ""
        text = (
            f" {progress.step}/{progress.total}{level} {rate:.2f} step/s"
            f" ETA {format_seconds(progress.eta)} loss {progress.losses.get('total', 0.0):.4g}"
        )
        bar_width = max(10, min(40, width - len(text) - 7))
        percent = int(100 * progress.fraction)  # of the work: a coarse step counts by its pixels
        return (
            f"{percent:3d}% |{bar(progress.fraction, 1.0, bar_width, full='#', empty='.')}|{text}"
        )
