"""``spikeforge simulate``: run a network file on input spikes with a chosen back-end."""

from ..gen.network import load_network
from ..gen.spike_io import NetworkRun, load_input_spikes
from ..sim.backends import BACKENDS, get_backend, simulate
from ..spec.errors import SpikeforgeError
from ..spec.limits import STAGES_RANGE, check_int, check_lanes
from .plot import plot_run

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
        default=1,
        help="hardware back-ends: update lanes, 1, 2, 4 or 8 (default 1)",
    )
    parser.add_argument(
        "--stages",
        type=int,
        default=4,
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
    parser.set_defaults(func=run)


def run(args):
    get_backend(args.backend)
    check_lanes(args.lanes, "--lanes", SpikeforgeError)
    check_int("--stages", args.stages, *STAGES_RANGE, error=SpikeforgeError)
    net = load_network(args.network)
    spikes = load_input_spikes(args.input, net)
    # Traces are drawn when plotting, so record them then even without --trace.
    result = simulate(
        net,
        spikes,
        args.backend,
        args.trace or bool(args.plot),
        lanes=args.lanes,
        stages=args.stages,
    )
    saved = result if args.trace else NetworkRun(spikes=result.spikes, cycles=result.cycles)
    saved.save(args.output)
    counts = ", ".join(f"{name} {int(s.sum())}" for name, s in result.spikes.items())
    print(
        f"wrote {args.output}: {args.backend}, {spikes.shape[-2]} timesteps"
        f"{f' x {spikes.shape[0]} runs' if spikes.ndim == 3 else ''}, spikes: {counts}"
    )
    if args.plot:
        reference = None
        if args.backend != "golden":
            reference = get_backend("golden")(net, spikes, True)
        plot_run(
            args.plot,
            result,
            reference,
            title=f"{args.network} ({args.backend}"
            f"{' over golden' if reference is not None else ''})",
        )
        print(f"wrote {args.plot}")
    return 0
