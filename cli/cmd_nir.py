"""``spikeforge import`` and ``spikeforge export``: NIR graphs in and out (``docs/nir.md``)."""

import sys

import numpy as np

from ..gen.network import load_network, network_npz_path, save_network
from ..gen.nir_export import export_nir
from ..gen.nir_import import import_nir
from ..gen.nir_presets import PRESET_NAMES
from ..gen.spike_io import load_input_spikes
from ..sim.quant_report import (
    AUTO,
    format_report,
    quantization_report,
    smallest_widths,
    write_report,
)
from ..spec.errors import SpikeforgeError
from ..spec.files import atomic_paths, check_outputs
from ..spec.limits import RESET_MODES, RESET_TIMINGS, check_int
from .budget import add_limit_arguments, check_budget, import_estimate

__all__ = ["add_parser"]

# --target: issue 17's goal for the hidden layers.
DEFAULT_TARGET = 0.95

# The report's random input when no --input is given: long enough to see a few spikes per neuron,
# short enough that the float and golden runs take well under a second.
DEFAULT_STEPS = 100
DEFAULT_RATE = 0.2


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "import",
        help="map a NIR graph onto a spikeforge network, with a quantization report",
        description="Read GRAPH.nir (nodes Input, Output, Affine, Linear, Flatten, Conv1d, "
        "Conv2d, SumPool2d, AvgPool2d, LIF, IF, LI, CubaLIF, CubaLI), "
        "write a spikeforge network and report, per layer and per sample, how the fixed-point "
        "network compares with the float semantics of the --from framework (docs/nir.md).",
    )
    parser.add_argument("graph", help="NIR graph, .nir (HDF5)")
    parser.add_argument("-o", "--output", required=True, help="network to write, .json")
    parser.add_argument(
        "--v-width",
        type=width,
        help="membrane width, or auto: the narrowest that reaches --target "
        "(default: the graph's metadata, else 16)",
    )
    parser.add_argument(
        "--w-width",
        type=width,
        help="weight width, or auto: the narrowest that reaches --target "
        "(default: the graph's metadata, else 8)",
    )
    parser.add_argument(
        "--target",
        type=float,
        help=f"with a width auto: the lowest mean spike agreement (Jaccard) of the hidden layers "
        f"with the float reference on the report's input (default {DEFAULT_TARGET})",
    )
    parser.add_argument(
        "--dt", type=float, help="forward-Euler step in seconds (default: the graph's dt metadata)"
    )
    parser.add_argument(
        "--reset-mode",
        choices=RESET_MODES,
        help="reset after a spike: zero (to v_reset, NIR's rule) or subtract "
        "(v - v_threshold, snnTorch's default); default: the node's "
        "metadata, else the preset's",
    )
    parser.add_argument(
        "--from",
        dest="preset",
        choices=PRESET_NAMES,
        default="nir",
        help="the framework that exported the graph, whose discrete-time convention to run "
        "(docs/nir.md, Framework conventions; default nir, the NIR specification's)",
    )
    parser.add_argument(
        "--reset-timing",
        choices=RESET_TIMINGS,
        help="when a spike's reset acts, if the graph does not tell: same step or next step "
        "(snnTorch's reset_delay=True); default: the preset's",
    )
    parser.add_argument(
        "--spikes",
        choices=("single", "multi"),
        help="at most one spike per step, or several (Sinabs' and Rockpool's default); "
        "default: the preset's",
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
    add_limit_arguments(parser)
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


def width(text):
    """A width option: ``auto`` or an integer (checked against its range by the importer)."""
    return AUTO if text == AUTO else int(text)


def _check_target(args):
    """``--target`` as a number in (0, 1], only with a width ``auto``."""
    auto = AUTO in (args.v_width, args.w_width)
    if args.target is None:
        return DEFAULT_TARGET if auto else None
    if not auto:
        raise SpikeforgeError("--target is the agreement --v-width/--w-width auto must reach")
    if not 0 < args.target <= 1:
        raise SpikeforgeError(f"--target must be a number in (0, 1], not {args.target:g}")
    return args.target


def run_import(args):
    steps = check_int("--steps", args.steps, 1, 1 << 20, error=SpikeforgeError)
    if args.input is not None and args.steps != DEFAULT_STEPS:
        raise SpikeforgeError("--steps sets the length of the random input; --input has its own")
    if args.input is not None and args.seed != 0:
        raise SpikeforgeError("--seed seeds the random input; --input replaces it")
    outputs = [
        ("-o", args.output, (".json",)),
        ("-o", network_npz_path(args.output), (".npz",)),
        ("-r", args.report, (".json",)),
    ]
    target = _check_target(args)
    check_outputs(outputs, [args.graph, args.input])

    def load(v_width, w_width):
        return import_nir(
            args.graph,
            v_width=v_width,
            w_width=w_width,
            dt=args.dt,
            reset_mode=args.reset_mode,
            weight_percentile=args.weight_percentile,
            preset=args.preset,
            reset_timing=args.reset_timing,
            spikes=args.spikes,
        )

    # An auto width is searched on the report's input: the first import, at the default
    # widths, gives the input's size.
    model = load(*(None if w == AUTO else w for w in (args.v_width, args.w_width)))
    for line in model.warnings:
        print(f"warning: {line}", file=sys.stderr)
    net = model.network
    if args.input:
        spikes = load_input_spikes(args.input, net)
        source = args.input
        steps = spikes.shape[-2] * (spikes.shape[0] if spikes.ndim == 3 else 1)
    else:
        rng = np.random.default_rng(args.seed)
        spikes = (rng.random((steps, net.n_inputs)) < DEFAULT_RATE).astype(np.uint8)
        source = f"random input (rate {DEFAULT_RATE}, seed {args.seed})"
    check_budget(args, "import", *import_estimate(net, steps))
    # The float reference fires as the framework does: several spikes per step if --spikes (or
    # the preset) says so.
    multi_spike = None if args.spikes is None else args.spikes == "multi"
    if target is not None:
        v_width, w_width, found, tried = smallest_widths(
            load, spikes, target, args.v_width, args.w_width, multi_spike
        )
        model = load(v_width, w_width)
        net = model.network
        print(
            f"auto widths: v_width={net.v_width}, w_width={net.w_width}, hidden-layer "
            f"Jaccard {found:.3f} >= {target:g} ({tried} imports tried)"
        )
    report = quantization_report(model, spikes, source, multi_spike)
    # The network (and its .npz) and the report: the report is renamed only once the network
    # is written.
    with atomic_paths([args.report] if args.report else [], "-r") as temps:
        if args.report:
            write_report(report, temps[0])
        save_network(net, args.output, option="-o")
    print(format_report(report))
    if args.report:
        print(f"wrote {args.report}")
    print(
        f"wrote {args.output}: {len(net.lif_populations)} LIF populations, "
        f"{len(net.projections)} projections"
    )
    return 0


def run_export(args):
    outputs = [("-o", args.output, (".nir",))]
    check_outputs(outputs, [args.network])
    net = load_network(args.network, args.allow_outside_npz)
    check_outputs(outputs, net.files)
    with atomic_paths([args.output], "-o") as (temp,):
        export_nir(net, temp)
    print(
        f"wrote {args.output}: {len(net.populations)} populations, "
        f"{len(net.projections)} projections"
    )
    return 0
