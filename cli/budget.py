"""Resource limits of the commands that can grow without bound: known before the work starts.

``simulate``, ``generate``, ``build`` and ``import`` estimate the memory they will take and the
size of what they will write from the network and the input shapes, and refuse past
``--max-memory`` and ``--max-output`` (MB) with one line giving the estimate and the option that
raises the limit. The estimates are upper bounds of the big arrays only (docs/architecture.md,
"Resource limits"); the defaults let every shipped example and benchmark through.
"""

from ..spec.errors import SpikeforgeError

__all__ = [
    "DEFAULT_MAX_MEMORY_MB",
    "DEFAULT_MAX_OUTPUT_MB",
    "add_limit_arguments",
    "check_budget",
    "simulate_estimate",
    "generate_estimate",
    "import_estimate",
]

DEFAULT_MAX_MEMORY_MB = 2048
# A 4,096-neuron dense recurrent network (16.8 M weights) writes 440 MB of Verilog, estimated
# at 521 MB; the default lets it through and refuses what no FPGA holds anyway.
DEFAULT_MAX_OUTPUT_MB = 1024
_MB = 1 << 20
# Generation holds each weight a few times over (the network's int64 matrix, the lane memories'
# words, the Verilog text in chunks): 66 bytes per weight at the peak for Verilog (1,213 MB for
# 16.8 M weights, 368 MB for 4.3 M), 292 for RTLIL, whose weights pass through Amaranth's memory
# contents (1,371 MB for 4.3 M); plus the interpreter and Amaranth themselves, about 100 MB
# (bench/generation.py measures it).
_GENERATE_BASE = 200 * _MB
_GENERATE_PER_WEIGHT = {"verilog": 100, "rtlil": 400}
# Verilog of one inline weight, "    mem[INDEX] = 8'hXX;\n": 25.8 bytes measured per weight at 16.8 M
# weights, 8-bit; up to 30 with 16-bit weights and 8-digit indices, and a margin for the padding
# of the lanes' memories. A $readmemh file holds 3 to 5 characters a word. RTLIL writes the
# memory contents as bit strings, 8.3 bytes per 8-bit weight measured.
_OUTPUT_PER_WEIGHT = {"inline": 32, "readmemh": 6, "rtlil": 24}
# The array's logic around the weights (ports, control, the cores of every lane): at most a few
# hundred kB.
_OUTPUT_BASE = _MB


def add_limit_arguments(parser, output=True):
    """Add ``--max-memory`` (and ``--max-output``) to ``parser``."""
    parser.add_argument(
        "--max-memory",
        type=float,
        default=DEFAULT_MAX_MEMORY_MB,
        metavar="MB",
        help=f"refuse to start when the estimated memory exceeds this "
        f"(default {DEFAULT_MAX_MEMORY_MB} MB)",
    )
    if output:
        parser.add_argument(
            "--max-output",
            type=float,
            default=DEFAULT_MAX_OUTPUT_MB,
            metavar="MB",
            help=f"refuse to start when the estimated output size exceeds this "
            f"(default {DEFAULT_MAX_OUTPUT_MB} MB)",
        )


def _mb(size):
    return f"{size / _MB:,.0f} MB" if size >= _MB else f"{size / _MB:.3g} MB"


def check_budget(args, what, memory, output=0):
    """Refuse ``what`` (e.g. ``"simulate"``) whose estimate of ``memory`` or ``output`` bytes
    exceeds ``args.max_memory`` / ``args.max_output`` (MB)."""
    limits = [("--max-memory", "memory", memory, args.max_memory)]
    if hasattr(args, "max_output"):
        limits.append(("--max-output", "output", output, args.max_output))
    for option, noun, estimate, limit in limits:
        if not limit > 0:
            raise SpikeforgeError(f"{option} must be a positive number of MB, not {limit:g}")
        if estimate > limit * _MB:
            raise SpikeforgeError(
                f"{what} would need about {_mb(estimate)} of {noun}, more than {option} "
                f"{limit:g} MB; raise {option} to allow it"
            )


def _neurons(net):
    return sum(p.size for p in net.lif_populations)


def _weights(net):
    return sum(int(proj.weights.size) for proj in net.projections)


def simulate_estimate(net, shape, trace, runs=1):
    """``(memory, output)`` bytes of simulating ``net`` on input spikes of ``shape``.

    Per timestep and LIF neuron the run holds a uint8 spike and, traced, an int64 membrane value;
    the result file stores the spike and an int32 value. ``runs`` counts whole runs kept at once
    (2 when a hardware back-end is drawn over a golden run).
    """
    steps = 1
    for n in shape[:-1]:
        steps *= int(n)
    cells = steps * _neurons(net)
    held = cells * (1 + 8 * trace)
    saved = cells * (1 + 4 * trace) + 8 * steps
    memory = runs * held + saved + steps * int(shape[-1]) + 8 * _weights(net)
    return memory, saved


def generate_estimate(net, fmt="verilog", memory_init="inline"):
    """``(memory, output)`` bytes of generating the array of ``net`` as ``fmt`` text with its
    weights ``memory_init`` (``"inline"`` or ``"readmemh"``, Verilog only)."""
    weights = _weights(net)
    memory = _GENERATE_BASE + _GENERATE_PER_WEIGHT[fmt] * weights
    output = _OUTPUT_BASE + _OUTPUT_PER_WEIGHT[memory_init if fmt == "verilog" else fmt] * weights
    return memory, output


def import_estimate(net, steps):
    """``(memory, output)`` bytes of importing ``net`` and its report over ``steps`` timesteps.

    The report runs the float and the fixed-point model side by side (float64 and int64 values
    per timestep and neuron); the network file holds each weight as a few JSON characters.
    """
    memory = steps * _neurons(net) * 32 + 16 * _weights(net)
    return memory, 6 * _weights(net)
