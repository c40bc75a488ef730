"""``spikeforge build`` (a network to a bitstream) and ``spikeforge run`` (a network on a board)."""

import json
import os

from ..boards.build import DEFAULT_BUILD_DIR, default_build_dir
from ..boards.flow import build_network, built_baud
from ..boards.host import HostDriver
from ..boards.host import open_port as open_serial
from ..boards.registry import BOARDS, get_board
from ..boards.report import ReportError, format_report
from ..boards.top import check_baud
from ..gen.compile import compile_network
from ..gen.network import load_network
from ..gen.spike_io import load_input_spikes
from ..spec.errors import SpikeforgeError
from ..spec.files import atomic_write, check_output_dir, check_outputs
from .budget import add_limit_arguments, check_budget, generate_estimate

__all__ = ["add_parser", "open_port"]


def open_port(device, baud):
    """The serial port of ``spikeforge run`` (replaced by a simulated board in the tests)."""
    return open_serial(device, baud)


def clock_option(text):
    """``--clock``: ``auto`` or a frequency in MHz."""
    return text if text == "auto" else float(text)


def add_parser(subparsers):
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
        "--lanes", type=int, default=1, help="update lanes, 1, 2, 4, 8 or 16 (default 1)"
    )
    build.add_argument(
        "--stages", type=int, default=4, help="neuron pipeline stages, 1 to 4 (default 4)"
    )
    build.add_argument(
        "--clock",
        type=clock_option,
        default="auto",
        metavar="MHZ",
        help="clock of the design, through a PLL unless it is the board clock; auto (default): "
        "the fastest the PLL makes at least 5%% below the Fmax of place and route, confirmed "
        "by a second run, else the board clock",
    )
    build.add_argument(
        "--baud",
        type=int,
        help="host link speed (default: the board's, see 'spikeforge boards')",
    )
    build.add_argument(
        "--weights",
        default="auto",
        metavar="STORE",
        help="where the weights live: bram (block RAM, in the bitstream), spram "
        "(iCE40 UltraPlus SPRAM, loaded by 'spikeforge run'), or auto "
        "(default: spram when block RAM is too small)",
    )
    build.add_argument(
        "--no-steps",
        dest="steps",
        action="store_false",
        help="host link without STEPS frames (one timestep a frame): fewer logic cells, "
        "for a network that fills the device",
    )
    build.add_argument("--report", metavar="FILE.json", help="also write the report here")
    build.add_argument(
        "-o",
        "--output",
        metavar="DIR",
        help=f"build folder (default {DEFAULT_BUILD_DIR.format(board='BOARD')})",
    )
    add_limit_arguments(build, output=False)
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
        "--baud",
        type=int,
        help="host link speed of the build (default: the one in the build folder's "
        "report.json, else the board's, see 'spikeforge boards')",
    )
    run.add_argument(
        "--build",
        metavar="DIR",
        help=f"build folder whose report gives the baud rate "
        f"(default {DEFAULT_BUILD_DIR.format(board='BOARD')})",
    )
    run.add_argument(
        "--populations",
        metavar="A,B",
        help="report only these LIF populations' spikes (default all; e.g. only the "
        "classifier's output: fewer bytes on the line, more steps a second)",
    )
    run.set_defaults(func=run_run)


def _write_report(path, report):
    with atomic_write(path, option="--report") as file:
        json.dump(report, file, indent=2, sort_keys=True)
        file.write("\n")


def run_build(args):
    board = get_board(args.board)
    folder = args.output or default_build_dir(board)
    check_output_dir("-o", folder)
    outputs = [("--report", args.report, (".json",))]
    check_outputs(outputs, [args.network])
    net = load_network(args.network, args.allow_outside_npz)
    check_outputs(outputs, net.files)
    check_budget(args, "build", generate_estimate(net)[0])
    try:
        report = build_network(
            net,
            args.board,
            folder,
            lanes=args.lanes,
            stages=args.stages,
            clock=args.clock,
            baud=args.baud,
            weights=args.weights,
            steps=args.steps,
        )
    except ReportError as error:
        # The timing report is still worth keeping where it was asked for.
        if args.report:
            _write_report(args.report, error.report)
        raise
    if args.report:
        # The same report as the build folder's, which does not say where it is.
        _write_report(args.report, {k: v for k, v in report.items() if k != "build_dir"})
    print(format_report(report))
    _note_steps(args, board, report)
    # Only a SPRAM build says where its weights are: they are not in the bitstream.
    spram = "; weights in spram, loaded by 'spikeforge run'" if report["weights"] == "spram" else ""
    print(
        f"{args.network}: {report['neurons']} neurons, {report['synapses']} synapses on "
        f"{args.lanes} lane{'s' * (args.lanes > 1)}{spram}; host link at {report['baud']} baud; "
        f"report {os.path.join(report['build_dir'], 'report.json')}"
    )
    return 0


def _note_steps(args, board, report):
    """Say so when ``--clock auto`` stayed under the board's goal clock with STEPS in the link:
    on a full device (the 2,048-neuron iCEBreaker top: 85% of the cells, 33 MHz) the link
    without STEPS is the way to the goal (73%, 39.75 MHz; docs/performance.md)."""
    if args.clock != "auto" or not report["steps"]:
        return
    if report["clock_mhz"] >= 0.99 * board.goal_mhz:  # a PLL may miss the goal by 1%
        return
    used = 100 * report["luts"] // report["luts_available"]
    print(
        f"note: {report['clock_mhz']:g} MHz is under the {board.goal_mhz:g} MHz goal of "
        f"{board.name}, with {used}% of its logic cells used; --no-steps builds the host "
        f"link without STEPS frames, in fewer cells"
    )


def run_run(args):
    board = get_board(args.board)
    if board.uart is None:
        raise SpikeforgeError(f"board {board.name} has no USB-serial UART for the host link")
    baud = built_baud(board, args.build) if args.baud is None else args.baud
    check_baud(baud)
    outputs = [("-o", args.output, (".npz",))]
    check_outputs(outputs, [args.network, args.input])
    net = load_network(args.network, args.allow_outside_npz)
    check_outputs(outputs, net.files)
    spikes = load_input_spikes(args.input, net)
    populations = None
    if args.populations is not None:
        populations = args.populations.split(",")
        names = [q.name for q in net.populations if not q.is_input]
        wrong = [name for name in populations if name not in names]
        if wrong:
            raise SpikeforgeError(
                f"--populations must name LIF populations of the network "
                f"({', '.join(names)}), not {wrong[0]!r}"
            )
    port = open_port(args.port, baud)
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
        result = driver.run(spikes, plan, populations=populations)
    finally:
        close = getattr(port, "close", None)
        if close is not None:
            close()
    with atomic_write(args.output, "wb", option="-o") as file:
        result.save(file)
    counts = ", ".join(f"{name} {int(s.sum())}" for name, s in result.spikes.items())
    print(
        f"wrote {args.output}: {board.name} on {args.port} at {baud} baud, "
        f"{spikes.shape[-2]} timesteps"
        f"{f' x {spikes.shape[0]} runs' if spikes.ndim == 3 else ''}, spikes: {counts}"
        f"{' (weights loaded)' if loaded else ''}; {driver.recovered} retried commands"
    )
    return 0
