"""The limits of every parameter that more than one layer checks, each defined once.

The hardware generators, the golden model, the network loader and the command line all check
against these numbers, so a value is refused with the same range wherever it enters.
"""

import numbers

__all__ = [
    "LANES",
    "STAGES_RANGE",
    "V_WIDTH_RANGE",
    "W_WIDTH_RANGE",
    "ACC_WIDTH_RANGE",
    "T_REF_MAX",
    "MAX_DECAY_TERMS",
    "RESET_MODES",
    "RESET_TIMINGS",
    "THRESHOLD_COMPARES",
    "check_int",
    "check_lanes",
    "v_range",
    "w_range",
]

# Update lanes of the neuron array: the lane of a neuron is its index modulo the lane count, a
# shift and a mask only for a power of two.
LANES = (1, 2, 4, 8, 16)
# Pipeline stages of the neuron core (docs/neuron.md, "Pipelining").
STAGES_RANGE = (1, 4)
# Membrane width in bits (signed): the golden model computes in int64 with headroom for the
# decay sums of a 32-bit membrane.
V_WIDTH_RANGE = (2, 32)
# Weight width in bits (signed).
W_WIDTH_RANGE = (2, 16)
# Accumulator width in bits (signed): the core adds the accumulator to the membrane in one
# adder; 48 bits keep that sum and the golden model's int64 sums exact.
ACC_WIDTH_RANGE = (2, 48)
# Longest refractory period in timesteps: a 16-bit counter.
T_REF_MAX = 65535
# Shift terms of a decay (docs/neuron.md): each costs one adder in the core.
MAX_DECAY_TERMS = 4
RESET_MODES = ("zero", "subtract")
# When a spike's reset takes effect (docs/neuron.md): in the spiking step, or at the start of the
# next one (snnTorch's default delayed reset).
RESET_TIMINGS = ("same", "next")
# The spike condition (docs/neuron.md): v' > v_th (snnTorch, Norse) or v' >= v_th (Sinabs).
THRESHOLD_COMPARES = (">", ">=")


def check_int(name, value, lo, hi, error=TypeError):
    """Return ``value`` if it is an integer in ``[lo, hi]``, else raise ``error`` naming ``name``.

    ``bool`` is refused: ``True`` as a threshold is always a mistake. Components keep the
    default :class:`TypeError`; the command line passes
    :class:`~spikeforge.spec.errors.SpikeforgeError` for the options a user typed.
    """
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or not lo <= value <= hi:
        raise error(f"{name} must be an integer in [{lo}, {hi}], not {value!r}")
    return int(value)


def check_lanes(lanes, name="lanes", error=TypeError):
    """Return ``lanes`` if it is one of :data:`LANES`, else raise ``error`` naming ``name``."""
    if not isinstance(lanes, numbers.Integral) or isinstance(lanes, bool) or lanes not in LANES:
        raise error(f"{name} must be one of {', '.join(map(str, LANES))}, not {lanes!r}")
    return int(lanes)


def v_range(v_width):
    """Return ``(V_MIN, V_MAX)`` of a signed ``v_width``-bit membrane."""
    return -(1 << (v_width - 1)), (1 << (v_width - 1)) - 1


def w_range(w_width):
    """Return ``(W_MIN, W_MAX)`` of a signed ``w_width``-bit weight."""
    return v_range(w_width)
