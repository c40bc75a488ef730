"""A minimal progress bar on stderr, for the long steps of the demo and the benchmarks."""

import sys
import time

__all__ = ["Progress"]


class Progress:
    """``with Progress("RTL simulation", total) as bar: bar.advance(n)``.

    Redraws one line on a terminal; elsewhere (CI logs) prints a line at each quarter.
    """

    def __init__(self, label, total, stream=None):
        self.label = label
        self.total = max(int(total), 1)
        self.done = 0
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.start = time.monotonic()
        self._quarter = -1

    def __enter__(self):
        self._draw()
        return self

    def __exit__(self, *exc):
        if self.tty:
            self.stream.write("\n")
        self.stream.flush()

    def advance(self, n=1):
        self.done = min(self.done + n, self.total)
        self._draw()

    def _draw(self):
        fraction = self.done / self.total
        elapsed = time.monotonic() - self.start
        text = f"{self.label}: {self.done}/{self.total} ({elapsed:.1f} s)"
        if self.tty:
            bar = "#" * int(30 * fraction)
            self.stream.write(
                f"\r{self.label}: [{bar:<30}] {self.done}/{self.total} ({elapsed:.1f} s)"
            )
        elif int(4 * fraction) != self._quarter:
            self._quarter = int(4 * fraction)
            self.stream.write(text + "\n")
        self.stream.flush()
