"""``spikeforge emulate``: a virtual board on a pseudo-terminal, for ``spikeforge run --port``."""

import signal
import sys

from ..boards.emulate import Emulator, emulated_design, parse_window
from ..boards.registry import BOARDS
from ..gen.network import load_network
from ..spec.errors import SpikeforgeError, ToolError
from ..spec.files import check_outputs

__all__ = ["add_parser"]


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "emulate",
        help="serve a network's board design on a pseudo-terminal (no board needed)",
        description="Make the design 'spikeforge build' would flash for the board, compile it "
        "with Verilator, and serve it on a pseudo-terminal until Ctrl-C: the first line "
        "printed is the port for 'spikeforge run --port'. The UART is simulated at bit "
        "level with the board's real divisor, or with --byte-level without the UART.",
    )
    parser.add_argument("network", help="network description, .json")
    parser.add_argument("--board", required=True, help=f"one of {', '.join(BOARDS)}")
    parser.add_argument(
        "--lanes", type=int, default=1, help="update lanes, 1, 2, 4, 8 or 16 (default 1)"
    )
    parser.add_argument(
        "--stages", type=int, default=4, help="neuron pipeline stages, 1 to 4 (default 4)"
    )
    parser.add_argument(
        "--clock", type=float, metavar="MHZ", help="clock of the design (default: the board clock)"
    )
    parser.add_argument(
        "--baud",
        type=int,
        help="host link speed (default: the board's, or the fastest common rate below it "
        "that the clock makes, as for 'spikeforge build')",
    )
    parser.add_argument(
        "--weights",
        default="auto",
        metavar="STORE",
        help="bram, spram or auto (default), as for 'spikeforge build'",
    )
    parser.add_argument(
        "--no-steps",
        dest="steps",
        action="store_false",
        help="host link without STEPS frames, as 'spikeforge build --no-steps'",
    )
    parser.add_argument(
        "--byte-level",
        action="store_true",
        help="drive the host link's byte streams instead of the UART pins (faster)",
    )
    parser.add_argument(
        "--faults",
        type=float,
        default=0.0,
        metavar="RATE",
        help="damage this fraction of the bytes on the virtual wire, both directions: "
        "dropped, one bit flipped or delayed (default 0)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the faults (default 0)")
    parser.add_argument("--waves", metavar="FILE", help="dump waveforms, .fst or .vcd")
    parser.add_argument(
        "--waves-steps",
        metavar="A:B",
        help="dump only timesteps A to B-1, counted from the start of the emulator",
    )
    parser.set_defaults(func=run_emulate)


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def run_emulate(args):
    window = None
    if args.waves_steps is not None:
        if args.waves is None:
            raise SpikeforgeError("--waves-steps needs --waves FILE")
        window = parse_window(args.waves_steps)
    if not 0 <= args.faults <= 1:
        raise SpikeforgeError(f"--faults must be a rate in [0, 1], not {args.faults:g}")
    # The waveform file is written by the emulator as it runs, so it is checked, not atomic.
    outputs = [("--waves", args.waves, (".fst", ".vcd"))]
    check_outputs(outputs, [args.network])
    net = load_network(args.network, args.allow_outside_npz)
    check_outputs(outputs, net.files)
    design = emulated_design(
        net,
        args.board,
        lanes=args.lanes,
        stages=args.stages,
        clock=args.clock,
        baud=args.baud,
        weights=args.weights,
        byte_level=args.byte_level,
        steps=args.steps,
    )
    emulator = Emulator(design, faults=args.faults, seed=args.seed, waves=args.waves, window=window)
    # A service manager or `kill` stops it with SIGTERM: the same clean stop as Ctrl-C (the
    # summary, no stray harness), not Python's silent exit. SIGINT gets the handler too: a shell
    # script's background job inherits SIGINT ignored, and `kill -INT` must still stop it.
    previous = {sig: signal.signal(sig, _interrupt) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        print(emulator.port, flush=True)
        print(
            f"emulating {args.network} on {design.describe()}; "
            f"'spikeforge run {args.network} --board {design.board.name} --port {emulator.port} "
            f"...'; Ctrl-C stops",
            file=sys.stderr,
            flush=True,
        )
        status = emulator.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        emulator.close()
        if emulator.summary:
            print(emulator.summary, file=sys.stderr, flush=True)
    if status:
        raise ToolError(f"emulator stopped with status {status}")
    return 0
