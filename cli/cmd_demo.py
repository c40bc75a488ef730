"""``spikeforge demo``: a shipped digit classifier, golden model against RTL simulation."""

from ..spec.errors import SpikeforgeError
from ..spec.limits import check_lanes
from .demo import run_demo

__all__ = ["add_parser"]


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "demo",
        help="classify the shipped test digits on the array: golden model against RTL",
        description="Run a shipped spiking digit classifier on its 360 held-out 8x8 digits with "
        "the golden model and with the array's Verilog (Verilator), and report "
        "accuracy, bit-exact agreement, cycles per inference and board figures.",
    )
    parser.add_argument(
        "-o",
        "--output",
        default="spikeforge-demo",
        help="folder for the Verilog, the raster plot and demo.json (default spikeforge-demo)",
    )
    parser.add_argument(
        "--network",
        default="dense",
        help="the shipped classifier to run: dense (64-64-10) or conv (3x3 conv2d, 8 channels, "
        "2x2 sum pool, 10 outputs); default dense",
    )
    parser.add_argument(
        "--backend",
        default="verilator",
        help="RTL simulator: verilator, icarus or amaranth (default verilator)",
    )
    parser.add_argument(
        "--lanes",
        type=int,
        default=2,
        help="array lanes: 1, 2, 4, 8 or 16 (default 2, which fits the iCEBreaker)",
    )
    parser.add_argument(
        "--digits",
        type=int,
        default=None,
        help="run only the first N test digits (default: all 360)",
    )
    parser.add_argument(
        "--board",
        default=None,
        help="also build the bitstream for this board and project from its report",
    )
    parser.set_defaults(func=run)


def run(args):
    check_lanes(args.lanes, "--lanes", SpikeforgeError)
    run_demo(
        args.output,
        network=args.network,
        backend=args.backend,
        lanes=args.lanes,
        digits=args.digits,
        board=args.board,
    )
    return 0
