"""A minimal progress bar on stderr, for the long steps of the commands, the demo and the
benchmarks."""

import sys
import time

__all__ = ["Progress"]


class Progress:
    """``with Progress("RTL simulation", total) as bar: bar.advance(n)``.

    Redraws one line on a terminal; elsewhere (CI logs) prints a line at each quarter, or nothing
    with ``tty_only``: the commands whose stdout and stderr are their result and their errors
    stay silent on a pipe.

    Parameters
    ----------
    label : str
        What is in progress, at the start of the line.
    total : int
        The steps to the end.
    stream : file, optional
        Where to draw (default ``sys.stderr`` at the time of the call).
    tty_only : bool
        Draw only when ``stream`` is a terminal.
    """

    def __init__(self, label, total, stream=None, tty_only=False):
        self.label = label
        self.total = max(int(total), 1)
        self.done = 0
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.silent = tty_only and not self.tty
        self.start = time.monotonic()
        self.step = ""
        self._quarter = -1
        self._width = 0

    def __enter__(self):
        self._draw()
        return self

    def __exit__(self, *exc):
        if self.silent:
            return
        if self.tty:
            self.stream.write("\n")
        self.stream.flush()

    def advance(self, n=1, step=None):
        """Count ``n`` more steps done; ``step`` names the one now under way."""
        self.done = min(self.done + n, self.total)
        if step is not None:
            self.step = step
        self._draw()

    def _draw(self):
        if self.silent:
            return
        fraction = self.done / self.total
        elapsed = time.monotonic() - self.start
        step = f" {self.step}" if self.step else ""
        if self.tty:
            bar = "#" * int(30 * fraction)
            line = f"{self.label}: [{bar:<30}] {self.done}/{self.total}{step} ({elapsed:.1f} s)"
            # Spaces over what is left of a longer line before.
            self.stream.write(f"\r{line:<{self._width}}")
            self._width = len(line)
        elif int(4 * fraction) != self._quarter:
            self._quarter = int(4 * fraction)
            self.stream.write(f"{self.label}: {self.done}/{self.total}{step} ({elapsed:.1f} s)\n")
        self.stream.flush()
