"""``spikeforge generate``: Verilog or RTLIL of the neuron core or of a whole network's array."""

from ..gen.network import load_network
from ..gen.output import FORMATS, array_source, convert
from ..hdl.neuron import NeuronCore
from ..spec.errors import SpikeforgeError
from ..spec.limits import STAGES_RANGE, W_WIDTH_RANGE, check_int
from ..spec.params import NeuronParams
from .params_cli import add_neuron_arguments, neuron_params_from_args

__all__ = ["add_parser"]


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "generate",
        help="write Verilog or RTLIL of the neuron core or of a network's array",
        description="Write the neuron core ('core') or the neuron array of NETWORK.json "
        "(docs/network.md) as Verilog or RTLIL. The output is byte-identical for "
        "identical arguments.",
    )
    parser.add_argument("target", help="'core', or a network description NETWORK.json")
    parser.add_argument(
        "--lanes", type=int, default=1, help="network: update lanes, 1, 2, 4 or 8 (default 1)"
    )
    parser.add_argument(
        "--trace", action="store_true", help="network: add the membrane trace stream"
    )
    add_neuron_arguments(parser)
    parser.add_argument("--w-width", type=int, default=8, help="weight width in bits (default 8)")
    parser.add_argument(
        "--fan-in",
        type=int,
        default=256,
        help="largest number of synapses into one neuron; sizes the accumulator (default 256)",
    )
    parser.add_argument("--stages", type=int, default=4, help="pipeline stages, 1 to 4 (default 4)")
    parser.add_argument(
        "--runtime-params",
        action="store_true",
        help="keep the parameters as an input port instead of constants",
    )
    parser.add_argument("--format", default="verilog", help="verilog or rtlil (default verilog)")
    parser.add_argument("-o", "--output", required=True, help="file to write")
    parser.set_defaults(func=run)


def run(args):
    if args.format not in FORMATS:
        raise SpikeforgeError(f"--format must be one of {', '.join(FORMATS)}, not {args.format!r}")
    if args.target != "core":
        return run_network(args)
    params = neuron_params_from_args(args)
    w_width = check_int("--w-width", args.w_width, *W_WIDTH_RANGE, error=SpikeforgeError)
    fan_in = check_int("--fan-in", args.fan_in, 1, 1 << 24, error=SpikeforgeError)
    stages = check_int("--stages", args.stages, *STAGES_RANGE, error=SpikeforgeError)
    acc_width = w_width + fan_in.bit_length()
    core = NeuronCore(
        v_width=params.v_width,
        acc_width=acc_width,
        t_ref_max=params.t_ref,
        stages=stages,
        synaptic=params.synaptic,
    )
    if not args.runtime_params:
        core = core.with_constant_params(params)
    header = [
        ("v_width", params.v_width),
        ("w_width", w_width),
        ("fan_in", fan_in),
        ("acc_width", acc_width),
        ("stages", stages),
        ("params", "runtime port" if args.runtime_params else _describe(params)),
    ]
    text = convert(core, name="spikeforge_neuron_core", fmt=args.format, parameters=header)
    with open(args.output, "w", encoding="utf-8", newline="\n") as file:
        file.write(text)
    print(
        f"wrote {args.output}: neuron core, v_width={params.v_width}, acc_width={acc_width}, "
        f"{stages} stages, {args.format}"
    )
    return 0


def _describe(params: NeuronParams):
    return (
        f"v_th={params.v_th} v_reset={params.v_reset} v_rest={params.v_rest} "
        f"v_peak={params.v_peak} t_ref={params.t_ref} bias={params.bias} "
        f"reset_mode={params.reset_mode} decay={list(params.decay)}"
        + (f" syn_decay={list(params.syn_decay)}" if params.synaptic else "")
    )


def run_network(args):
    if not args.target.endswith(".json"):
        raise SpikeforgeError(
            f"generate: target must be 'core' or a network .json file, not {args.target!r}"
        )
    net = load_network(args.target)
    stages = check_int("--stages", args.stages, *STAGES_RANGE, error=SpikeforgeError)
    text, array = array_source(
        net, lanes=args.lanes, stages=stages, trace=args.trace, fmt=args.format
    )
    plan = array.plan
    with open(args.output, "w", encoding="utf-8", newline="\n") as file:
        file.write(text)
    neurons = sum(p.size for p in plan.lif_populations)
    print(
        f"wrote {args.output}: {neurons} neurons on {plan.lanes} lanes, {plan.slots} slots and "
        f"{plan.weight_words} weight words per lane, {args.format}"
    )
    return 0
