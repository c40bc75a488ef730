"""``spikeforge boards`` (list the supported boards) and ``spikeforge flash`` (program one)."""

from ..boards.build import DEFAULT_BUILD_DIR
from ..boards.flash import flash
from ..boards.registry import BOARDS

__all__ = ["add_parser"]


def add_parser(subparsers):
    boards = subparsers.add_parser(
        "boards",
        help="list the supported FPGA boards",
        description="List the boards that 'spikeforge build --board' and 'spikeforge flash' "
        "accept: name, FPGA family and part, clock, LEDs, UART, programmer.",
    )
    boards.set_defaults(func=run_boards)

    flash_parser = subparsers.add_parser(
        "flash",
        help="load a bitstream into a board",
        description="Load a bitstream into a board with the board's programmer (iceprog, "
        "icesprog, openFPGALoader or dfu-util).",
    )
    flash_parser.add_argument(
        "--board", required=True, help=f"one of {', '.join(BOARDS)} (see 'spikeforge boards')"
    )
    flash_parser.add_argument(
        "bitstream",
        nargs="?",
        help=f"bitstream file (default: {DEFAULT_BUILD_DIR.format(board='BOARD')}/top.EXT)",
    )
    flash_parser.add_argument(
        "--dry-run", action="store_true", help="print the programmer command instead of running it"
    )
    flash_parser.set_defaults(func=run_flash)


def run_boards(args):
    for board in BOARDS.values():
        print(board.summary())
    return 0


def run_flash(args):
    flash(args.board, args.bitstream, dry_run=args.dry_run)
    return 0
