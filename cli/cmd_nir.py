"""``spikeforge import`` and ``spikeforge export``: NIR graphs in and out (``docs/nir.md``)."""

import numpy as np

from ..gen.network import load_network, save_network
from ..gen.nir_export import export_nir
from ..gen.nir_import import import_nir
from ..gen.spike_io import load_input_spikes
from ..sim.quant_report import format_report, quantization_report, write_report
from ..spec.errors import SpikeforgeError
from ..spec.limits import RESET_MODES, check_int

__all__ = ["add_parser"]

# The report's random input when no --input is given: long enough to see a few spikes per neuron,
# short enough that the float and golden runs take well under a second.
DEFAULT_STEPS = 100
DEFAULT_RATE = 0.2


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "import",
        help="map a NIR graph onto a spikeforge network, with a quantization report",
        description="Read GRAPH.nir (nodes Input, Output, Affine, Linear, Flatten, LIF, IF, LI, "
        "CubaLIF, CubaLI), "
        "write a spikeforge network and report how the fixed-point network compares "
        "with the float NIR semantics (docs/nir.md).",
    )
    parser.add_argument("graph", help="NIR graph, .nir (HDF5)")
    parser.add_argument("-o", "--output", required=True, help="network to write, .json")
    parser.add_argument(
        "--v-width", type=int, help="membrane width (default: the graph's metadata, else 16)"
    )
    parser.add_argument(
        "--w-width", type=int, help="weight width (default: the graph's metadata, else 8)"
    )
    parser.add_argument(
        "--dt", type=float, help="forward-Euler step in seconds (default: the graph's dt metadata)"
    )
    parser.add_argument(
        "--reset-mode",
        choices=RESET_MODES,
        help="reset after a spike: zero (to v_reset, NIR's rule) or subtract "
        "(v - v_threshold, snnTorch's default); default: the node's "
        "metadata, else zero",
    )
    parser.add_argument(
        "--weight-percentile",
        type=float,
        default=100.0,
        help="map this percentile of the absolute weights to the largest "
        "integer weight and clip the rest (default 100: clip nothing)",
    )
    parser.add_argument("-r", "--report", metavar="FILE.json", help="write the report as JSON")
    parser.add_argument(
        "--input", metavar="IN.npy", help="input spikes for the report (default: random)"
    )
    parser.add_argument(
        "--steps",
        type=int,
        default=DEFAULT_STEPS,
        help=f"timesteps of the random input (default {DEFAULT_STEPS})",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the random input")
    parser.set_defaults(func=run_import)

    parser = subparsers.add_parser(
        "export",
        help="write a spikeforge network as a NIR graph",
        description="Write NETWORK.json as a NIR graph; importing it gives the same network "
        "(docs/nir.md).",
    )
    parser.add_argument("network", help="network description, .json")
    parser.add_argument("-o", "--output", required=True, help="NIR graph to write, .nir")
    parser.set_defaults(func=run_export)


def run_import(args):
    steps = check_int("--steps", args.steps, 1, 1 << 20, error=SpikeforgeError)
    model = import_nir(
        args.graph,
        v_width=args.v_width,
        w_width=args.w_width,
        dt=args.dt,
        reset_mode=args.reset_mode,
        weight_percentile=args.weight_percentile,
    )
    net = model.network
    if args.input:
        spikes = load_input_spikes(args.input, net)
        source = args.input
    else:
        rng = np.random.default_rng(args.seed)
        spikes = (rng.random((steps, net.n_inputs)) < DEFAULT_RATE).astype(np.uint8)
        source = f"random input (rate {DEFAULT_RATE}, seed {args.seed})"
    report = quantization_report(model, spikes, source)
    save_network(net, args.output)
    print(format_report(report))
    if args.report:
        write_report(report, args.report)
        print(f"wrote {args.report}")
    print(
        f"wrote {args.output}: {len(net.lif_populations)} LIF populations, "
        f"{len(net.projections)} projections"
    )
    return 0


def run_export(args):
    net = load_network(args.network)
    export_nir(net, args.output)
    print(
        f"wrote {args.output}: {len(net.populations)} populations, "
        f"{len(net.projections)} projections"
    )
    return 0
