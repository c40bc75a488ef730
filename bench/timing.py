"""Timings as the median of repeated runs with their spread (min and max), so that one busy
moment of the shared machine does not become the figure."""

import statistics
import time

__all__ = ["spread_of", "ratio_spread", "timed"]


def spread_of(values):
    """Median, min, max and count of ``values``."""
    values = [float(v) for v in values]
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "n": len(values),
    }


def ratio_spread(numerators, denominators):
    """Spread of the per-repeat ratios ``numerators[i] / denominators[i]``."""
    return spread_of([a / b for a, b in zip(numerators, denominators)])


def timed(repeat, function, *args, **kwargs):
    """Run ``function(*args, **kwargs)`` ``repeat`` times; return (last result, spread of the
    wall times in s)."""
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = function(*args, **kwargs)
        times.append(time.perf_counter() - start)
    return result, spread_of(times)
