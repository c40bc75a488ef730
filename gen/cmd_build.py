"""``spikeforge build`` (a network to a bitstream) and ``spikeforge run`` (a network on a board)."""

import json
import os
import struct

from ..hdl.neuron import STAGES_RANGE
from ..hdl.plan import LANES
from ..sim.params import check_int
from .errors import SpikeforgeError
from .network import load_network
from .spike_io import load_input_spikes

__all__ = ["add_parser", "design_fields", "open_port", "choose_weights", "WEIGHT_STORES"]

# Where a build keeps the weights: block RAM initialised from the bitstream, or the SPRAM of an
# iCE40 UltraPlus (no initial contents: `spikeforge run` loads them); `auto` takes SPRAM only
# when the array's block RAMs would not fit the device.
WEIGHT_STORES = ("auto", "bram", "spram")


def open_port(device, baud):
    """The serial port of ``spikeforge run`` (replaced by a simulated board in the tests)."""
    from ..boards.host import open_port as open_serial

    return open_serial(device, baud)


def add_parser(subparsers):
    from ..boards.build import DEFAULT_BUILD_DIR
    from ..boards.host import DEFAULT_BAUD
    from ..boards.registry import BOARDS

    boards = ", ".join(BOARDS)
    build = subparsers.add_parser(
        "build",
        help="build a network's bitstream for a board",
        description="Compile NETWORK.json onto the neuron array behind the UART host link "
        "(docs/host-link.md), then synthesise, place and route it for the board "
        "and write the bitstream, report.json and a one-line summary.",
    )
    build.add_argument("network", help="network description, .json")
    build.add_argument("--board", required=True, help=f"one of {boards}")
    build.add_argument(
        "--lanes", type=int, default=1, help="update lanes, 1, 2, 4 or 8 (default 1)"
    )
    build.add_argument(
        "--stages", type=int, default=4, help="neuron pipeline stages, 1 to 4 (default 4)"
    )
    build.add_argument(
        "--clock",
        type=float,
        metavar="MHZ",
        help="clock of the design (default: the board clock; others use a PLL)",
    )
    build.add_argument(
        "--baud", type=int, default=DEFAULT_BAUD, help=f"host link speed (default {DEFAULT_BAUD})"
    )
    build.add_argument(
        "--weights",
        default="auto",
        metavar="STORE",
        help="where the weights live: bram (block RAM, in the bitstream), spram "
        "(iCE40 UltraPlus SPRAM, loaded by 'spikeforge run'), or auto "
        "(default: spram when block RAM is too small)",
    )
    build.add_argument("--report", metavar="FILE.json", help="also write the report here")
    build.add_argument(
        "-o",
        "--output",
        metavar="DIR",
        help=f"build folder (default {DEFAULT_BUILD_DIR.format(board='BOARD')})",
    )
    build.set_defaults(func=run_build)

    run = subparsers.add_parser(
        "run",
        help="run a network on a board through the host link",
        description="Run input spikes (.npy or .npz, (T, n_in) or (B, T, n_in)) on a board "
        "programmed with 'spikeforge build' and write the output spikes and cycles "
        "like 'spikeforge simulate'. The network's weights and parameters are "
        "loaded into the board first when it holds others of the same layout, "
        "or none (a build with --weights spram).",
    )
    run.add_argument("network", help="network description, .json")
    run.add_argument("--board", required=True, help=f"one of {boards}")
    run.add_argument("--port", required=True, help="serial device, e.g. /dev/ttyUSB1")
    run.add_argument("--input", required=True, help="input spikes, .npy or .npz")
    run.add_argument("-o", "--output", required=True, help="result file to write, .npz")
    run.add_argument(
        "--baud", type=int, default=DEFAULT_BAUD, help=f"host link speed (default {DEFAULT_BAUD})"
    )
    run.set_defaults(func=run_run)


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


def _block_rams(plan, board):
    # The memory model of the capacity benchmark (exact on every board built), plus the host
    # link's two memories: the STEP indices and the output spikes with the identity.
    from ..boards.protocol import IDENTITY_FORMAT
    from ..hdl.arith import bits_for
    from .bench import device_blocks, map_memory, memory_model

    index_width = bits_for(max(plan.n_inputs - 1, 0))
    spike_width = bits_for(len(plan.populations) - 1) + bits_for(plan.max_size - 1)
    neurons = sum(p.size for p in plan.lif_populations)
    link = [
        (max(plan.n_inputs, 1), index_width),
        (neurons + struct.calcsize(IDENTITY_FORMAT), max(spike_width, 8)),
    ]
    needed = memory_model(plan, board.family)[0] + sum(
        map_memory(depth, width, board.family)[1] for depth, width in link
    )
    return needed, device_blocks(board.device)


def choose_weights(plan, board, weights="auto"):
    """``"bram"`` or ``"spram"``: where a build of ``plan`` for ``board`` keeps the weights.

    ``auto`` takes SPRAM on an iCE40 UltraPlus when the modelled block RAMs of the array and
    the host link exceed the device's, block RAM otherwise.

    Raises
    ------
    SpikeforgeError
        ``weights`` not one of :data:`WEIGHT_STORES`; ``spram`` on a board without SPRAM; or
        weights that need more SPRAM blocks than the device has.
    """
    from ..hdl.spram import SPRAM_COUNT, SPRAM_DEPTH, spram_tiles

    if weights not in WEIGHT_STORES:
        raise SpikeforgeError(
            f"--weights must be one of {', '.join(WEIGHT_STORES)}, not {weights!r}"
        )
    spram = board.device.startswith("iCE40UP")
    if weights == "auto":
        if not spram:
            return "bram"
        needed, available = _block_rams(plan, board)
        weights = "spram" if needed > available else "bram"
    if weights == "bram":
        return "bram"
    if not spram:
        raise SpikeforgeError(
            f"--weights spram needs an iCE40 UltraPlus board (SPRAM), not "
            f"{board.name} ({board.device})"
        )
    rows, cols = spram_tiles(plan.weight_words, plan.lanes, plan.w_width)
    if rows * cols > SPRAM_COUNT:
        raise SpikeforgeError(
            f"network needs {rows * cols} SPRAM blocks for its weights ({plan.weight_words} "
            f"words of {plan.lanes} x {plan.w_width}-bit weights, {SPRAM_DEPTH} words per "
            f"block), the {board.device} has {SPRAM_COUNT}; use "
            f"{'more lanes or ' if plan.lanes == 1 else ''}a smaller network"
        )
    return "spram"


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
    from ..boards.build import build, default_build_dir
    from ..boards.host import DEFAULT_BAUD
    from ..boards.pll import pll_for
    from ..boards.registry import get_board
    from ..boards.report import ReportError
    from ..boards.top import BoardTop
    from .compile import compile_network

    board = get_board(board_name)
    if lanes not in LANES:
        raise SpikeforgeError(f"--lanes must be one of {', '.join(map(str, LANES))}, not {lanes}")
    check_int("--stages", stages, *STAGES_RANGE)
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


def run_build(args):
    from ..boards.report import format_report

    net = load_network(args.network)
    report = build_network(
        net,
        args.board,
        args.output,
        lanes=args.lanes,
        stages=args.stages,
        clock=args.clock,
        baud=args.baud,
        report_path=args.report,
        weights=args.weights,
    )
    print(format_report(report))
    # Only a SPRAM build says where its weights are: they are not in the bitstream.
    spram = "; weights in spram, loaded by 'spikeforge run'" if report["weights"] == "spram" else ""
    print(
        f"{args.network}: {report['neurons']} neurons, {report['synapses']} synapses on "
        f"{args.lanes} lane{'s' * (args.lanes > 1)}{spram}; host link at {args.baud} baud; "
        f"report {os.path.join(report['build_dir'], 'report.json')}"
    )
    return 0


def run_run(args):
    from ..boards.host import HostDriver
    from ..boards.registry import get_board
    from .compile import compile_network

    board = get_board(args.board)
    if board.uart is None:
        raise SpikeforgeError(f"board {board.name} has no USB-serial UART for the host link")
    net = load_network(args.network)
    spikes = load_input_spikes(args.input, net)
    port = open_port(args.port, args.baud)
    try:
        driver = HostDriver(port)
        identity = driver.identify()
        plan = compile_network(net, identity["lanes"])
        driver.check_plan(plan)
        status = driver.status()
        loaded = identity["network_hash"] != net.network_hash() or status["modified"]
        if loaded:
            driver.load(plan)
        elif status["weights_unloaded"]:
            # Built from this network: only the weights are missing (they are not in the
            # bitstream).
            driver.load(plan, ("weights",))
            loaded = True
        result = driver.run(spikes, plan)
    finally:
        close = getattr(port, "close", None)
        if close is not None:
            close()
    result.save(args.output)
    counts = ", ".join(f"{name} {int(s.sum())}" for name, s in result.spikes.items())
    print(
        f"wrote {args.output}: {board.name} on {args.port}, {spikes.shape[-2]} timesteps"
        f"{f' x {spikes.shape[0]} runs' if spikes.ndim == 3 else ''}, spikes: {counts}"
        f"{' (weights loaded)' if loaded else ''}; {driver.recovered} retried commands"
    )
    return 0
