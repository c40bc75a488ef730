"""``spikeforge simulate``: run a network file on input spikes with a chosen back-end."""

from ..gen.network import load_network
from ..gen.spike_io import NetworkRun, load_input_spikes
from ..sim.backends import BACKENDS, HARDWARE_BACKENDS, WAVES_BACKENDS, get_backend, simulate
from ..sim.native import parse_steps
from ..spec.errors import SpikeforgeError
from ..spec.files import atomic_paths, check_outputs
from ..spec.limits import STAGES_RANGE, check_int, check_lanes
from .budget import add_limit_arguments, check_budget, simulate_estimate
from .plot import PLOT_SUFFIXES, plot_run
from .progress import Progress

__all__ = ["add_parser"]


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "simulate",
        help="run a network on input spikes and write the output spikes",
        description="Run NETWORK.json (docs/network.md) on input spikes (.npy or .npz, 0/1, "
        "shape (T, n_in) or (B, T, n_in)) and write an .npz with spikes_<population> "
        "for every LIF population.",
    )
    parser.add_argument("network", help="network description, .json")
    parser.add_argument("--input", required=True, help="input spikes, .npy or .npz")
    parser.add_argument(
        "--backend", default="golden", help=f"simulator: {', '.join(BACKENDS)} (default golden)"
    )
    parser.add_argument(
        "--lanes",
        type=int,
        default=None,
        help="hardware back-ends: update lanes, 1, 2, 4, 8 or 16 (default 1)",
    )
    parser.add_argument(
        "--stages",
        type=int,
        default=None,
        help="hardware back-ends: neuron pipeline stages, 1 to 4 (default 4)",
    )
    parser.add_argument("-o", "--output", required=True, help="result file to write, .npz")
    parser.add_argument(
        "--trace", action="store_true", help="also write the membrane traces v_<population>"
    )
    parser.add_argument(
        "--plot",
        metavar="FILE.png",
        help="draw a spike raster and membrane traces; a back-end other than "
        "golden is drawn over a golden run",
    )
    parser.add_argument(
        "--waves",
        metavar="FILE.fst|FILE.vcd",
        help=f"{', '.join(WAVES_BACKENDS)}: dump every signal of the array for GTKWave or Surfer",
    )
    parser.add_argument(
        "--waves-steps",
        metavar="A:B",
        help="with --waves: dump only timesteps A to B-1 (counted over the whole batch)",
    )
    add_limit_arguments(parser)
    parser.set_defaults(func=run)


def _check_options(args):
    """Refuse options that do not apply to the back-end; return ``(lanes, stages)``."""
    get_backend(args.backend)
    if args.backend == "golden":
        for option, value in (("--lanes", args.lanes), ("--stages", args.stages)):
            if value is not None:
                raise SpikeforgeError(
                    f"{option} configures the array of the hardware back-ends "
                    f"({', '.join(HARDWARE_BACKENDS)}); the golden model has none"
                )
    if args.waves is not None and args.backend not in WAVES_BACKENDS:
        raise SpikeforgeError(
            f"--waves needs the {' or '.join(WAVES_BACKENDS)} back-end, not {args.backend!r}"
        )
    if args.waves_steps is not None and args.waves is None:
        raise SpikeforgeError("--waves-steps needs --waves")
    if args.waves_steps is not None:
        parse_steps(args.waves_steps)
    lanes = 1 if args.lanes is None else args.lanes
    stages = 4 if args.stages is None else args.stages
    check_lanes(lanes, "--lanes", SpikeforgeError)
    check_int("--stages", stages, *STAGES_RANGE, error=SpikeforgeError)
    return lanes, stages


def run(args):
    lanes, stages = _check_options(args)
    outputs = [
        ("-o", args.output, (".npz",)),
        ("--plot", args.plot, PLOT_SUFFIXES),
        ("--waves", args.waves, (".fst", ".vcd")),
    ]
    check_outputs(outputs, [args.network, args.input])
    net = load_network(args.network, args.allow_outside_npz)
    check_outputs(outputs, net.files)
    spikes = load_input_spikes(args.input, net)
    runs = 2 if args.plot and args.backend != "golden" else 1
    memory, size = simulate_estimate(net, spikes.shape, args.trace or bool(args.plot), runs)
    if not args.trace:
        size = simulate_estimate(net, spikes.shape, False)[1]
    check_budget(args, "simulate", memory, size)
    reference = None
    golden_too = bool(args.plot) and args.backend != "golden"
    # On a terminal: the run, and the golden run drawn under it.
    with Progress(f"simulate {args.network}", 1 + golden_too, tty_only=True) as bar:
        bar.advance(0, f"{args.backend} back-end")
        # Traces are drawn when plotting, so record them then even without --trace.
        result = simulate(
            net,
            spikes,
            args.backend,
            args.trace or bool(args.plot),
            lanes=lanes,
            stages=stages,
            **_waves_options(args),
        )
        if golden_too:
            bar.advance(1, "golden model for the plot")
            reference = get_backend("golden")(net, spikes, True)
        bar.advance(1, "done")
    saved = result if args.trace else NetworkRun(spikes=result.spikes, cycles=result.cycles)
    targets = [args.output] + ([args.plot] if args.plot else [])
    # Both files or neither.
    with atomic_paths(targets, ["-o", "--plot"][: len(targets)]) as temps:
        saved.save(temps[0], net)
        if args.plot:
            plot_run(
                temps[1],
                result,
                reference,
                title=f"{args.network} ({args.backend}"
                f"{' over golden' if reference is not None else ''})",
            )
    counts = ", ".join(f"{name} {int(s.sum())}" for name, s in result.spikes.items())
    print(
        f"wrote {args.output}: {args.backend}, {spikes.shape[-2]} timesteps"
        f"{f' x {spikes.shape[0]} runs' if spikes.ndim == 3 else ''}, spikes: {counts}"
    )
    if args.plot:
        print(f"wrote {args.plot}")
    if args.waves:
        print(f"wrote {args.waves}")
    return 0


def _waves_options(args):
    """The ``waves`` options of the back-end, none without ``--waves``."""
    if args.waves is None:
        return {}
    steps = None if args.waves_steps is None else parse_steps(args.waves_steps)
    return {"waves": args.waves, "waves_steps": steps}
