"""Neuron parameters of ``docs/neuron.md``, validated once for every user of them.

The golden model, the hardware generators and the network loader all take a :class:`NeuronParams`;
validating here means a bad value is reported the same way wherever it enters.
"""

import math
import numbers
from dataclasses import dataclass

from .limits import (
    MAX_DECAY_TERMS,
    RESET_MODES,
    RESET_TIMINGS,
    T_REF_MAX,
    THRESHOLD_COMPARES,
    V_WIDTH_RANGE,
    check_int,
    v_range,
)

__all__ = ["NeuronParams", "decay_from_ratio", "decay_value"]


@dataclass(frozen=True)
class NeuronParams:
    """Parameters of one LIF population, as defined in ``docs/neuron.md``.

    Parameters
    ----------
    v_width : int
        Membrane width in bits (signed), 2 to 32.
    v_th, v_reset, v_rest, v_peak : int
        Threshold, reset value, resting potential and the trace value of a spike, in the
        ``v_width`` range, with ``v_reset <= v_th <= v_peak``.
    t_ref : int
        Refractory period in timesteps, 0 to 65535.
    bias : int
        Constant input added every step, in the ``v_width`` range.
    reset_mode : str
        ``"zero"`` (``v <- v_reset``) or ``"subtract"`` (``v <- sat(v' - v_th)``).
    decay : tuple of int
        0 to 4 signed shift terms; ``k >= 0`` adds ``(v - v_rest) >> k``, ``k < 0`` subtracts
        ``(v - v_rest) >> -k``. Each ``|k| < v_width``.
    syn_decay : tuple of int or None
        None for a plain LIF neuron. A tuple (0 to 4 terms, as ``decay``, applied to ``i``)
        gives the neuron the synaptic current ``i`` of ``docs/neuron.md`` (a current-based LIF).
    reset_timing : str
        ``"same"``: a spike's reset takes effect in the spiking step. ``"next"``: at the start of
        the next step (snnTorch's default ``reset_delay=True``); the stored membrane of a spiking
        step is then ``v'`` itself.
    threshold_compare : str
        The spike condition: ``">"`` (``v' > v_th``) or ``">="`` (``v' >= v_th``).

    Raises
    ------
    TypeError
        A value of the wrong type or out of its range.
    ValueError
        Values that are each in range but inconsistent together.
    """

    v_th: int
    v_reset: int = 0
    v_rest: int = 0
    v_peak: int | None = None
    t_ref: int = 0
    bias: int = 0
    reset_mode: str = "zero"
    decay: tuple = (4,)
    v_width: int = 16
    syn_decay: tuple | None = None
    reset_timing: str = "same"
    threshold_compare: str = ">"

    def __post_init__(self):
        v_width = check_int("v_width", self.v_width, *V_WIDTH_RANGE)
        lo, hi = v_range(v_width)
        for name in ("v_th", "v_reset", "v_rest", "bias"):
            object.__setattr__(self, name, check_int(name, getattr(self, name), lo, hi))
        if self.v_peak is None:
            object.__setattr__(self, "v_peak", hi)
        object.__setattr__(self, "v_peak", check_int("v_peak", self.v_peak, lo, hi))
        object.__setattr__(self, "t_ref", check_int("t_ref", self.t_ref, 0, T_REF_MAX))
        if self.reset_mode not in RESET_MODES:
            raise TypeError(
                f"reset_mode must be one of 'zero', 'subtract', not {self.reset_mode!r}"
            )
        if self.reset_timing not in RESET_TIMINGS:
            raise TypeError(
                f"reset_timing must be one of 'same', 'next', not {self.reset_timing!r}"
            )
        if self.threshold_compare not in THRESHOLD_COMPARES:
            raise TypeError(
                f"threshold_compare must be one of '>', '>=', not {self.threshold_compare!r}"
            )
        object.__setattr__(self, "decay", _terms("decay", self.decay, v_width))
        if self.syn_decay is not None:
            object.__setattr__(self, "syn_decay", _terms("syn_decay", self.syn_decay, v_width))
        if not self.v_reset <= self.v_th <= self.v_peak:
            raise ValueError(
                f"parameters must satisfy v_reset <= v_th <= v_peak, not "
                f"v_reset={self.v_reset}, v_th={self.v_th}, v_peak={self.v_peak}"
            )

    @property
    def decay_ratio(self):
        """The leak factor that ``decay`` stands for, as a float (for reports only)."""
        return decay_value(self.decay)

    @property
    def delayed_reset(self):
        """True if a spike's reset takes effect at the start of the next step."""
        return self.reset_timing == "next"

    @property
    def fires_at_threshold(self):
        """True if ``v' = v_th`` fires (``threshold_compare`` is ``">="``)."""
        return self.threshold_compare == ">="

    @property
    def synaptic(self):
        """True for a current-based neuron (one with the synaptic current ``i``)."""
        return self.syn_decay is not None


def _terms(name, terms, v_width):
    """``terms`` as a tuple of at most four shift terms in ``[-(v_width-1), v_width-1]``."""
    if isinstance(terms, (str, bytes)) or not hasattr(terms, "__iter__"):
        raise TypeError(
            f"{name} must be a list of 0 to {MAX_DECAY_TERMS} shift terms, not {terms!r}"
        )
    terms = tuple(terms)
    if len(terms) > MAX_DECAY_TERMS:
        raise TypeError(
            f"{name} must be a list of 0 to {MAX_DECAY_TERMS} shift terms, not {len(terms)} terms"
        )
    return tuple(check_int(f"{name} term", k, -(v_width - 1), v_width - 1) for k in terms)


def decay_value(decay):
    """Return the real factor ``sum sign_k 2**-|k|`` of a list of decay terms."""
    return sum(math.copysign(2.0 ** -abs(k), 1 if k >= 0 else -1) for k in decay)


def decay_from_ratio(ratio, v_width=16, max_terms=MAX_DECAY_TERMS):
    """Approximate ``ratio`` (``dt / tau_m``) by a signed sum of at most ``max_terms`` powers of two.

    Each step of the search tries the powers of two just below and just above the remaining
    error, so all ``2**max_terms`` signed-digit expansions of that form are compared and the one
    with the least absolute error (then the fewest terms) wins.

    Returns
    -------
    tuple of int
        Decay terms in the notation of :class:`NeuronParams`.
    """
    if not isinstance(ratio, numbers.Real) or not 0 <= ratio <= 1:
        raise TypeError(f"dt/tau must be a number in [0, 1], not {ratio!r}")
    max_shift = v_width - 1
    best = ((), abs(ratio))
    frontier = [((), float(ratio))]
    for _ in range(max_terms):
        grown = []
        for terms, rest in frontier:
            if rest == 0:
                continue
            sign = 1 if rest > 0 else -1
            e = math.log2(abs(rest))
            for k in {
                min(max(-math.floor(e), 0), max_shift),
                min(max(-math.ceil(e), 0), max_shift),
            }:
                if sign < 0 and k == 0:
                    continue
                new = (terms + ((k if sign > 0 else -k),), rest - sign * 2.0**-k)
                grown.append(new)
                if abs(new[1]) < best[1] - 1e-15:
                    best = (new[0], abs(new[1]))
        frontier = grown
    return best[0]
