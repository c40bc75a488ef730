"""``spikeforge generate``: Verilog or RTLIL of the neuron core or of a whole network's array."""

import os

from ..gen.network import load_network
from ..gen.output import FORMATS, MEMORY_INIT, array_source, convert, weight_hex
from ..hdl.neuron import NeuronCore
from ..spec.errors import SpikeforgeError
from ..spec.files import atomic_paths, atomic_write, check_outputs
from ..spec.limits import STAGES_RANGE, W_WIDTH_RANGE, check_int
from ..spec.params import NeuronParams
from .budget import add_limit_arguments, check_budget, generate_estimate
from .params_cli import add_neuron_arguments, neuron_options_given, neuron_params_from_args
from .progress import Progress
from .tools import tool_failures

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
        "--lanes",
        type=int,
        default=None,
        help="network: update lanes, 1, 2, 4, 8 or 16 (default 1)",
    )
    parser.add_argument(
        "--trace", action="store_true", help="network: add the membrane trace stream"
    )
    add_neuron_arguments(parser)
    parser.add_argument(
        "--w-width", type=int, default=None, help="core: weight width in bits (default 8)"
    )
    parser.add_argument(
        "--fan-in",
        type=int,
        default=None,
        help="core: largest number of synapses into one neuron; sizes the accumulator (default 256)",
    )
    parser.add_argument("--stages", type=int, default=4, help="pipeline stages, 1 to 4 (default 4)")
    parser.add_argument(
        "--runtime-params",
        action="store_true",
        help="core: keep the parameters as an input port instead of constants",
    )
    parser.add_argument("--format", default="verilog", help="verilog or rtlil (default verilog)")
    parser.add_argument(
        "--memory-init",
        default="inline",
        help="network, Verilog: the weights 'inline' in the Verilog (default) or in 'readmemh' "
        "files OUTPUT-STEM_weights<lane>.hex beside it, read with $readmemh",
    )
    parser.add_argument("-o", "--output", required=True, help="file to write")
    add_limit_arguments(parser)
    parser.set_defaults(func=run)


# The suffixes of each format's files.
SUFFIXES = {"verilog": (".v", ".sv"), "rtlil": (".il", ".rtlil")}


def _refuse_options(options, target):
    if options:
        raise SpikeforgeError(
            f"{', '.join(options)} {'does' if len(options) == 1 else 'do'} not apply to {target}"
        )


def run(args):
    if args.format not in FORMATS:
        raise SpikeforgeError(f"--format must be one of {', '.join(FORMATS)}, not {args.format!r}")
    if args.target != "core":
        return run_network(args)
    network_only = [("--lanes", args.lanes is not None), ("--trace", args.trace)]
    network_only.append(("--memory-init", args.memory_init != "inline"))
    _refuse_options(
        [option for option, given in network_only if given], "the core (only to a network)"
    )
    check_outputs([("-o", args.output, SUFFIXES[args.format])])
    check_budget(args, "generate", 0, 0)
    params = neuron_params_from_args(args)
    w_width = 8 if args.w_width is None else args.w_width
    w_width = check_int("--w-width", w_width, *W_WIDTH_RANGE, error=SpikeforgeError)
    fan_in = 256 if args.fan_in is None else args.fan_in
    fan_in = check_int("--fan-in", fan_in, 1, 1 << 24, error=SpikeforgeError)
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
    with tool_failures(f"generate ({args.format} back-end)"):
        text = convert(core, name="spikeforge_neuron_core", fmt=args.format, parameters=header)
    with atomic_write(args.output, option="-o") as file:
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
    if args.memory_init not in MEMORY_INIT:
        raise SpikeforgeError(
            f"--memory-init must be one of {', '.join(MEMORY_INIT)}, not {args.memory_init!r}"
        )
    if args.memory_init == "readmemh" and args.format != "verilog":
        raise SpikeforgeError("--memory-init readmemh needs --format verilog")
    core_only = neuron_options_given(args) + [
        option
        for option, given in (
            ("--w-width", args.w_width is not None),
            ("--fan-in", args.fan_in is not None),
            ("--runtime-params", args.runtime_params),
        )
        if given
    ]
    _refuse_options(core_only, "a network (only to the core: the network file sets them)")
    lanes = 1 if args.lanes is None else args.lanes
    stages = check_int("--stages", args.stages, *STAGES_RANGE, error=SpikeforgeError)
    stem = os.path.splitext(os.path.basename(args.output))[0]

    def hex_name(lane):
        return f"{stem}_weights{lane}.hex"

    def hex_path(lane):
        return os.path.join(os.path.dirname(args.output), hex_name(lane))

    # The lanes are checked later, by the compiler; the most there can be is checked here.
    hex_files = [hex_path(lane) for lane in range(lanes)] if args.memory_init == "readmemh" else []
    outputs = [("-o", args.output, SUFFIXES[args.format])]
    outputs += [("-o", path, (".hex",)) for path in hex_files]
    check_outputs(outputs, [args.target])
    net = load_network(args.target, args.allow_outside_npz)
    check_outputs(outputs, net.files)
    check_budget(args, "generate", *generate_estimate(net, args.format, args.memory_init))

    # On a terminal: the design, each lane's weights (Verilog), and the writing.
    weight_lanes = lanes if args.format == "verilog" else 0
    with Progress(f"generate {args.output}", 2 + weight_lanes, tty_only=True) as bar:
        bar.advance(0, "converting the design")

        def on_lane(done):
            bar.advance(1, f"weights of lane {done}" if done < weight_lanes else "writing")

        with tool_failures(f"generate ({args.format} back-end)"):
            text, array = array_source(
                net,
                lanes=lanes,
                stages=stages,
                trace=args.trace,
                fmt=args.format,
                memory_init=args.memory_init,
                hex_name=hex_name,
                on_lane=on_lane,
            )
        plan = array.plan
        # The Verilog and its $readmemh files, all or none.
        with atomic_paths([args.output, *hex_files], "-o") as temps:
            with open(temps[0], "w", encoding="utf-8", newline="\n") as file:
                file.write(text)
            for lane, temp in enumerate(temps[1:]):
                with open(temp, "w", encoding="ascii", newline="\n") as file:
                    file.write(weight_hex(plan, lane))
        bar.advance(1, "done")
    neurons = sum(p.size for p in plan.lif_populations)
    print(
        f"wrote {args.output}: {neurons} neurons on {plan.lanes} lanes, {plan.slots} slots and "
        f"{plan.weight_words} weight words per lane, {args.format}"
        + (f", weights in {plan.lanes} $readmemh files" if args.memory_init == "readmemh" else "")
    )
    return 0
