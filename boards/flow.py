"""A network to a bitstream: the flow behind ``spikeforge build`` and ``spikeforge demo --board``."""

import json

from ..gen.compile import compile_network
from ..spec.errors import SpikeforgeError
from ..spec.limits import STAGES_RANGE, check_int, check_lanes
from .build import build, default_build_dir
from .host import DEFAULT_BAUD
from .pll import pll_for
from .registry import get_board
from .report import ReportError
from .resources import choose_weights
from .top import BoardTop

__all__ = ["design_fields", "build_network"]


def design_fields(net, plan, stages, weights="bram"):
    """The design fields of a build report: sizes of the network and the array, and where
    the weights are (``bram`` or ``spram``)."""
    return {
        "neurons": sum(p.size for p in net.lif_populations),
        "synapses": int(sum(int((proj.weights != 0).sum()) for proj in net.projections)),
        "lanes": plan.lanes,
        "stages": stages,
        "network_hash": net.network_hash(),
        "weights": weights,
    }


def _write_report(path, report):
    with open(path, "w", encoding="utf-8", newline="\n") as file:
        json.dump(report, file, indent=2, sort_keys=True)
        file.write("\n")


def build_network(
    net,
    board_name,
    build_dir=None,
    *,
    lanes=1,
    stages=4,
    clock=None,
    baud=None,
    report_path=None,
    weights="auto",
):
    """Build the board top of ``net`` for ``board_name`` and return the build report.

    Shared by ``spikeforge build`` and ``spikeforge demo --board``. With ``report_path`` the
    report is written there, also when the build fails timing (the error says by how much).
    ``weights`` is one of :data:`WEIGHT_STORES` (:func:`choose_weights`).
    """
    board = get_board(board_name)
    check_lanes(lanes, "--lanes", SpikeforgeError)
    check_int("--stages", stages, *STAGES_RANGE, error=SpikeforgeError)
    clock_mhz = board.clock_mhz
    if clock is not None and clock != board.clock_mhz:
        if not 0 < clock <= 1000:
            raise SpikeforgeError(f"--clock must be a frequency in MHz in (0, 1000], not {clock:g}")
        # The UART divisor is made for the frequency the PLL really gives.
        clock_mhz = pll_for(board, clock).f_out_mhz
    plan = compile_network(net, lanes)
    weights = choose_weights(plan, board, weights)
    top = BoardTop(
        board,
        plan,
        stages=stages,
        clock_mhz=clock_mhz,
        baud=baud or DEFAULT_BAUD,
        runtime_weights=weights == "spram",
    )
    build_dir = build_dir or default_build_dir(board)
    try:
        report = build(
            top, board, build_dir, clock_mhz=clock, extra=design_fields(net, plan, stages, weights)
        )
    except ReportError as error:
        # The timing report is still worth keeping where it was asked for.
        if report_path:
            _write_report(report_path, error.report)
        raise
    if report_path:
        _write_report(report_path, report)
    report["build_dir"] = str(build_dir)
    return report
