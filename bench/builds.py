"""Resources and Fmax of the feed-forward network's array, placed and routed on the boards."""

import os
import tempfile

from ..boards.build import BuildError, build
from ..boards.registry import get_board
from ..gen.compile import compile_network
from .networks import benchmark_cases, network_label
from .timing import timed
from .top import BenchTop

__all__ = ["BUILD_CLOCK_MHZ", "measure_builds"]

# The clock each family's builds are constrained to (through the board's PLL): a little above
# the goals of docs/performance.md, because nextpnr's timing-driven placement only works for a
# constraint it has to meet; at the slow board clocks it stops early. Fmax is what the router
# achieved, whether or not it met this.
BUILD_CLOCK_MHZ = {"ice40": 45.0, "ecp5": 125.0, "gowin": 115.0}

# The figures of a build report that a build entry keeps.
_FIGURES = (
    "luts",
    "luts_available",
    "ffs",
    "brams",
    "sprams",
    "dsps",
    "fmax_mhz",
    "clock_mhz",
    "timing_met",
)


def measure_builds(
    boards, quick=False, lanes=(1, 2, 4), stages=4, repeat=1, build_root=None, log=print
):
    """Place and route the feed-forward network's array on each board; resources and Fmax.

    A configuration that does not fit a board is recorded with its error line. Returns a list
    of dicts: board, lanes, stages, the build report's figures and ``build_s`` (spread).
    """
    name, net, _ = benchmark_cases(quick)[0]
    root = build_root or os.path.join(tempfile.gettempdir(), "spikeforge-bench-build")
    results = []
    for board_name in boards:
        board = get_board(board_name)
        for p in lanes:
            entry = {
                "case": name,
                "network": network_label(net),
                "board": board.name,
                "lanes": p,
                "stages": stages,
            }
            try:
                report, entry["build_s"] = timed(
                    repeat,
                    build,
                    BenchTop(board, compile_network(net, p), stages),
                    board,
                    os.path.join(root, f"{board.name}-{name}-p{p}-s{stages}"),
                    clock_mhz=BUILD_CLOCK_MHZ[board.family],
                    check_timing=False,
                )
            except BuildError as error:
                entry["error"] = str(error)
                log(f"build {board.name} P={p}: {error}")
            else:
                entry.update((key, report[key]) for key in _FIGURES)
                log(
                    f"build {board.name} P={p}: {report['luts']} LUTs, {report['brams']} BRAM, "
                    f"{report['fmax_mhz']:.1f} MHz in {entry['build_s']['median']:.0f} s"
                )
            results.append(entry)
    return results
