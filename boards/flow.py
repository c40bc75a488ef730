"""A network to a bitstream: the flow behind ``spikeforge build`` and ``spikeforge demo --board``.

With ``clock="auto"`` (the default) the clock comes from place and route: a first run for the
board's goal clock gives the design's Fmax, the fastest PLL output at least
:data:`CLOCK_MARGIN` below it (and at which the UART makes the baud rate) is confirmed by a
second run (which replaces the first one's bitstream only if it meets timing), and a design
that no PLL clock helps runs from the board clock.
"""

import json
import os
import shutil

from ..gen.compile import compile_network
from ..hdl.uart import MAX_BAUD_ERROR, baud_error
from ..spec.errors import SpikeforgeError
from ..spec.files import atomic_write
from ..spec.limits import STAGES_RANGE, check_int, check_lanes
from .build import REPORT_NAME, build, default_build_dir
from .pll import pll_for, pll_outputs
from .registry import get_board
from .report import ReportError
from .resources import choose_weights
from .top import BoardTop, check_baud, default_baud

__all__ = [
    "design_fields",
    "build_network",
    "built_baud",
    "design_clock",
    "auto_clocks",
    "CLOCK_MARGIN",
]

# How far below the Fmax of place and route --clock auto stays: nextpnr's figure moves by a few
# percent from one clock constraint (and placement) to the next.
CLOCK_MARGIN = 0.05
# The folder inside the build folder where --clock auto tries a clock faster than the goal.
TRIAL_DIR = "faster"


def design_fields(net, plan, stages, weights="bram"):
    """The design fields of a build report: sizes of the network and the array, where the
    weights are (``bram`` or ``spram``), and the array's worst-case cycles a timestep
    (``step_cycles``, every neuron spiking: :meth:`ArrayPlan.max_step_cycles`)."""
    return {
        "neurons": sum(p.size for p in net.lif_populations),
        "synapses": int(sum(int((proj.weights != 0).sum()) for proj in net.projections)),
        "lanes": plan.lanes,
        "stages": stages,
        "network_hash": net.network_hash(),
        "weights": weights,
        "step_cycles": plan.max_step_cycles(stages),
    }


def _write_report(path, report, option="--report"):
    with atomic_write(path, option=option) as file:
        json.dump(report, file, indent=2, sort_keys=True)
        file.write("\n")


def design_clock(board, clock):
    """The ``sync`` clock in MHz of a fixed ``--clock`` (None: the board clock): the PLL's
    real output, for which the UART divisor is made."""
    if clock is None or clock == board.clock_mhz:
        return board.clock_mhz
    if isinstance(clock, bool) or not isinstance(clock, (int, float)):
        raise SpikeforgeError(f"--clock must be a frequency in MHz or 'auto', not {clock!r}")
    if not 0 < clock <= 1000:
        raise SpikeforgeError(f"--clock must be a frequency in MHz in (0, 1000], not {clock:g}")
    return round(pll_for(board, clock).f_out_mhz, 6)


def auto_clocks(board, baud, fmax_mhz):
    """The PLL clocks ``--clock auto`` may take after a run with ``fmax_mhz``, fastest first:
    above the board clock, :data:`CLOCK_MARGIN` below the Fmax, and where ``baud`` is within
    2%."""
    limit = fmax_mhz / (1 + CLOCK_MARGIN)
    return [
        f
        for f in reversed(pll_outputs(board))
        if board.clock_mhz < f <= limit and baud_error(round(f * 1e6), baud) <= MAX_BAUD_ERROR
    ]


def build_network(
    net,
    board_name,
    build_dir=None,
    *,
    lanes=1,
    stages=4,
    clock="auto",
    baud=None,
    report_path=None,
    weights="auto",
    inference_steps=None,
    steps=True,
):
    """Build the board top of ``net`` for ``board_name`` and return the build report.

    Shared by ``spikeforge build`` and ``spikeforge demo --board``. With ``report_path`` the
    report is written there, also when the build fails timing (the error says by how much).
    ``weights`` is one of :data:`WEIGHT_STORES` (:func:`choose_weights`); ``baud`` defaults to
    the board's (:attr:`Board.baud`), or the fastest common rate below it that the clock makes
    (:func:`default_baud`); ``clock`` is a frequency in MHz, None (the board clock)
    or ``"auto"`` (module docstring). The report adds ``baud``, ``clock_runs`` (``[clock_mhz,
    fmax_mhz]`` of every place and route, in order) and ``timesteps_per_s`` (at the clock, from
    ``step_cycles``); for a classifier that takes ``inference_steps`` timesteps an input,
    ``inferences_per_s`` too. ``steps`` False leaves STEPS out of the host link (the report's
    ``steps``): STEP frames only, fewer logic cells.
    """
    board = get_board(board_name)
    check_lanes(lanes, "--lanes", SpikeforgeError)
    check_int("--stages", stages, *STAGES_RANGE, error=SpikeforgeError)
    auto = clock == "auto"
    if baud is not None:
        check_baud(baud)
        if auto and not (
            baud_error(round(board.clock_mhz * 1e6), baud) <= MAX_BAUD_ERROR
            or auto_clocks(board, baud, 1000)
        ):
            # No clock at all makes it: the error of the board clock says why.
            check_baud(baud, board.clock_mhz)
    if not auto:
        fixed = design_clock(board, clock)
        baud = default_baud(board, fixed) if baud is None else baud
        check_baud(baud, fixed)
    plan = compile_network(net, lanes)
    weights = choose_weights(plan, board, weights)
    extra = dict(design_fields(net, plan, stages, weights), steps=steps)
    if inference_steps is not None:
        check_int("inference_steps", inference_steps, 1, 1 << 30, error=SpikeforgeError)
        extra["inference_steps"] = inference_steps
    build_dir = build_dir or default_build_dir(board)

    def run(clock_mhz, check_timing, folder):
        # Without --baud, a clock that cannot make the board's rate takes the next one down.
        link_baud = default_baud(board, clock_mhz) if baud is None else baud
        top = BoardTop(
            board,
            plan,
            stages=stages,
            clock_mhz=clock_mhz,
            baud=link_baud,
            runtime_weights=weights == "spram",
            steps=steps,
        )
        report = build(
            top,
            board,
            folder,
            clock_mhz=clock_mhz,
            check_timing=check_timing,
            extra=dict(extra, baud=link_baud),
        )
        runs.append([report["clock_mhz"], report["fmax_mhz"]])
        return report

    runs = []
    try:
        if auto:
            report = _auto_build(board, board.baud if baud is None else baud, run, build_dir)
        else:
            report = run(design_clock(board, clock), True, build_dir)
    except ReportError as error:
        # The timing report is still worth keeping where it was asked for.
        error.report = _finish(error.report, runs, build_dir)
        if report_path:
            _write_report(report_path, error.report)
        raise
    report = _finish(report, runs, build_dir)
    if report_path:
        _write_report(report_path, report)
    report["build_dir"] = str(build_dir)
    return report


def _auto_build(board, baud, run, build_dir):
    """Place and route for the goal clock, then at the fastest clock the Fmax allows, stepping
    down once if that run comes out slower; else the board clock. Returns the report of the
    build left in ``build_dir``.

    A goal clock that met timing is never given up for a slower one: nextpnr's Fmax swings by
    several percent from one clock constraint to the next, and stepping down from a faster run
    that missed could land below the goal the first run had met. So the faster runs go to a
    folder of their own (:data:`TRIAL_DIR` inside ``build_dir``), and only one that meets
    timing replaces the goal run's outputs; otherwise those stay, without a third run to make
    them again.
    """
    probe_clock = design_clock(board, board.goal_mhz)
    report = run(probe_clock, False, build_dir)
    if not report["timing_met"]:
        for _ in range(2):
            clocks = auto_clocks(board, baud, report["fmax_mhz"])
            if not clocks:
                break
            report = run(clocks[0], False, build_dir)
            if report["timing_met"]:
                return report
        # No PLL clock met timing: the board clock, checked as a fixed clock is.
        return run(board.clock_mhz, True, build_dir)
    trial_dir = os.path.join(build_dir, TRIAL_DIR)
    fmax = report["fmax_mhz"]
    for _ in range(2):
        clocks = [c for c in auto_clocks(board, baud, fmax) if c > probe_clock]
        if not clocks:
            break
        trial = run(clocks[0], False, trial_dir)
        if trial["timing_met"]:
            for name in os.listdir(trial_dir):
                os.replace(os.path.join(trial_dir, name), os.path.join(build_dir, name))
            os.rmdir(trial_dir)
            bitstream = os.path.join(os.path.abspath(build_dir), board.bitstream)
            return dict(trial, bitstream=bitstream)
        fmax = trial["fmax_mhz"]
    # (Left behind by a build that failed, the folder keeps the log its error names.)
    shutil.rmtree(trial_dir, ignore_errors=True)
    return report


def _finish(report, runs, build_dir):
    """The report with every run and the timestep rate at its clock, also in report.json."""
    rate = report["clock_mhz"] * 1e6 / report["step_cycles"]
    report = dict(report, clock_runs=runs, timesteps_per_s=round(rate))
    if "inference_steps" in report:
        report["inferences_per_s"] = round(rate / report["inference_steps"])
    _write_report(os.path.join(build_dir, REPORT_NAME), report, option="-o")
    return report


def built_baud(board, build_dir=None):
    """The host link speed of the last build of ``board`` in ``build_dir`` (default: the
    board's build folder), from its report; the board's own rate when there is no such build.

    A build without ``--baud`` may have taken a slower rate than the board's (a 25 MHz clock
    cannot make 3 Mbaud), and ``spikeforge run`` has to talk at that rate.

    Raises
    ------
    SpikeforgeError
        The report is there but unreadable, or has no baud rate.
    """
    path = os.path.join(build_dir or default_build_dir(board), REPORT_NAME)
    try:
        with open(path, encoding="utf-8") as file:
            report = json.load(file)
    except FileNotFoundError:
        return board.baud
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise SpikeforgeError(f"build report {path} is unreadable ({error}); pass --baud") from None
    if not isinstance(report, dict) or report.get("board") != board.name:
        return board.baud
    baud = report.get("baud")
    if isinstance(baud, bool) or not isinstance(baud, int) or baud <= 0:
        raise SpikeforgeError(f"build report {path} gives no baud rate; pass --baud")
    return baud
