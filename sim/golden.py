"""The NumPy golden model of ``docs/neuron.md``.

Written from the spec alone; the hardware is checked against it, never the other way round.
Every function is vectorised over neurons and over a leading batch of independent runs, in int64,
which holds every intermediate value of a ``v_width <= 32`` neuron exactly.
"""

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from .network_golden import run_network
from .params import MAX_DECAY_TERMS, NeuronParams, v_range

__all__ = ["ParamArrays", "param_arrays", "leak", "syn_leak", "lif_step", "cuba_lif_step",
           "PopulationRun", "run_population", "run_network"]


class ParamArrays(NamedTuple):
    """Parameters as int64 arrays that broadcast against the neuron axis.

    ``decay_shift`` and ``decay_sign`` have a last axis of ``MAX_DECAY_TERMS``; an unused term has
    sign 0. ``syn_shift`` and ``syn_sign`` are the same for ``syn_decay`` (all sign 0 for a plain
    LIF neuron); ``synaptic`` tells whether the neurons have the synaptic current.
    """

    v_width: int
    v_th: np.ndarray
    v_reset: np.ndarray
    v_rest: np.ndarray
    v_peak: np.ndarray
    t_ref: np.ndarray
    bias: np.ndarray
    subtract: np.ndarray
    decay_shift: np.ndarray
    decay_sign: np.ndarray
    syn_shift: np.ndarray
    syn_sign: np.ndarray
    synaptic: bool


def _term_arrays(seq, attr):
    shift = np.zeros((len(seq), MAX_DECAY_TERMS), np.int64)
    sign = np.zeros((len(seq), MAX_DECAY_TERMS), np.int64)
    for n, p in enumerate(seq):
        for k, term in enumerate(getattr(p, attr) or ()):
            shift[n, k] = abs(term)
            sign[n, k] = 1 if term >= 0 else -1
    return shift, sign


def param_arrays(params):
    """Stack one :class:`NeuronParams`, or a sequence of them (one per neuron), into arrays.

    A sequence must share one ``v_width`` and be all plain LIF or all current-based.
    """
    if isinstance(params, NeuronParams):
        seq = [params]
    else:
        seq = list(params)
        if not seq or not all(isinstance(p, NeuronParams) for p in seq):
            raise TypeError("params must be a NeuronParams or a non-empty sequence of them")
    widths = {p.v_width for p in seq}
    if len(widths) != 1:
        raise ValueError(f"all params must share one v_width, not {sorted(widths)}")
    synaptic = {p.synaptic for p in seq}
    if len(synaptic) != 1:
        raise ValueError("params must be all plain LIF (syn_decay None) or all current-based")
    shift, sign = _term_arrays(seq, "decay")
    syn_shift, syn_sign = _term_arrays(seq, "syn_decay")

    def col(name):
        return np.array([getattr(p, name) for p in seq], np.int64)

    arrays = ParamArrays(
        v_width=widths.pop(), v_th=col("v_th"), v_reset=col("v_reset"), v_rest=col("v_rest"),
        v_peak=col("v_peak"), t_ref=col("t_ref"), bias=col("bias"),
        subtract=np.array([p.reset_mode == "subtract" for p in seq]),
        decay_shift=shift, decay_sign=sign, syn_shift=syn_shift, syn_sign=syn_sign,
        synaptic=synaptic.pop())
    if isinstance(params, NeuronParams):
        # One population: scalars, so that they broadcast against any neuron count.
        arrays = arrays._replace(**{name: getattr(arrays, name)[0]
                                    for name in ParamArrays._fields[1:-1]})
    return arrays


def leak(v, p):
    """``leak(v) = sum_k sign_k * ((v - v_rest) >> |k|)`` with floor shifts."""
    d = np.asarray(v, np.int64) - p.v_rest
    total = np.zeros(np.broadcast_shapes(d.shape, p.decay_shift[..., 0].shape), np.int64)
    for k in range(MAX_DECAY_TERMS):
        sign = p.decay_sign[..., k]
        # A term no neuron uses adds nothing; most neurons use one or two of the four.
        if np.count_nonzero(sign):
            total += sign * (d >> p.decay_shift[..., k])
    return total


def syn_leak(i, p):
    """``syn_leak(i) = sum_k sign_k * (i >> |k|)`` over the ``syn_decay`` terms, floor shifts."""
    i = np.asarray(i, np.int64)
    total = np.zeros(np.broadcast_shapes(i.shape, p.syn_shift[..., 0].shape), np.int64)
    for k in range(MAX_DECAY_TERMS):
        sign = p.syn_sign[..., k]
        if np.count_nonzero(sign):
            total += sign * (i >> p.syn_shift[..., k])
    return total


def lif_step(v, r, acc, p):
    """One timestep of ``docs/neuron.md`` for every neuron (plain LIF).

    Parameters
    ----------
    v, r : array of int
        Membrane and refractory counter before the step.
    acc : array of int
        Sum of the weights of this step's input spikes (``bias`` is added here).
    p : ParamArrays

    Returns
    -------
    v, r, spike, trace : arrays
        State after the step, the spike flags (bool) and the observable membrane trace.
    """
    return _membrane_step(v, r, np.asarray(acc, np.int64) + p.bias, p)


def cuba_lif_step(v, i, r, acc, p):
    """One timestep of the current-based neuron of ``docs/neuron.md`` for every neuron.

    The synaptic current takes this step's input, also while refractory, and the membrane
    integrates the new current instead of the raw input.

    Parameters
    ----------
    v, i, r : array of int
        Membrane, synaptic current and refractory counter before the step.
    acc : array of int
        Sum of the weights of this step's input spikes (``bias`` is added here).
    p : ParamArrays
        With ``synaptic`` set.

    Returns
    -------
    v, i, r, spike, trace : arrays
    """
    lo, hi = v_range(p.v_width)
    i = np.asarray(i, np.int64)
    i_next = np.minimum(np.maximum(i - syn_leak(i, p) + np.asarray(acc, np.int64) + p.bias, lo),
                        hi)
    v_next, r_next, spike, trace = _membrane_step(v, r, i_next, p)
    return v_next, i_next, r_next, spike, trace


def _membrane_step(v, r, current, p):
    """Step 3 of ``docs/neuron.md``: ``current`` is ``I`` (LIF) or ``i'`` (current-based)."""
    lo, hi = v_range(p.v_width)
    v = np.asarray(v, np.int64)
    r = np.asarray(r, np.int64)
    # np.minimum/np.maximum rather than np.clip, whose Python wrapper costs more than the
    # arithmetic at small sizes.
    v_prime = np.minimum(np.maximum(v - leak(v, p) + current, lo), hi)
    refractory = r > 0
    spike = ~refractory & (v_prime > p.v_th)
    # Skipped when no neuron subtracts: np.where would discard it.
    v_after_spike = (np.where(p.subtract, np.minimum(np.maximum(v_prime - p.v_th, lo), hi),
                              p.v_reset) if np.count_nonzero(p.subtract) else p.v_reset)
    v_next = np.where(refractory, v, np.where(spike, v_after_spike, v_prime))
    # r - 1 while refractory, t_ref on a spike (never while refractory), else 0: without
    # np.where, which is slow on unpredictable masks.
    r_next = np.maximum(r - 1, 0) + spike * p.t_ref
    trace = np.where(spike, p.v_peak, v_next)
    return v_next, r_next, spike, trace


@dataclass
class PopulationRun:
    """What :func:`run_population` returns: arrays shaped ``(..., T, N)`` and final ``(..., N)``.

    ``i`` is the final synaptic current, None for plain LIF neurons.
    """

    spikes: np.ndarray
    v: np.ndarray
    r: np.ndarray
    trace: np.ndarray | None
    i: np.ndarray | None = None


def run_population(params, acc, v0=None, r0=None, trace=False, i0=None):
    """Step one population through ``T`` timesteps.

    Parameters
    ----------
    params : NeuronParams or sequence of NeuronParams
        One set for the population, or one per neuron.
    acc : array of int, shape (T, N) or (B, T, N)
        Per-step sum of the weights of the input spikes.
    v0, r0 : array of int, optional
        Initial state; by default ``v = v_rest`` and ``r = 0``.
    trace : bool
        Also return the membrane trace, shaped like ``acc``.
    i0 : array of int, optional
        Initial synaptic current of current-based neurons; by default 0.
    """
    p = param_arrays(params)
    acc = np.asarray(acc, np.int64)
    if acc.ndim < 2:
        raise ValueError(f"acc must have shape (T, N) or (B, T, N), not {acc.shape}")
    state_shape = acc.shape[:-2] + acc.shape[-1:]
    v = np.broadcast_to(p.v_rest if v0 is None else np.asarray(v0, np.int64), state_shape).copy()
    r = np.broadcast_to(0 if r0 is None else np.asarray(r0, np.int64), state_shape).copy()
    i = (np.broadcast_to(0 if i0 is None else np.asarray(i0, np.int64), state_shape).copy()
         if p.synaptic else None)
    spikes = np.zeros(acc.shape, bool)
    traces = np.zeros(acc.shape, np.int64) if trace else None
    for t in range(acc.shape[-2]):
        if p.synaptic:
            v, i, r, spikes[..., t, :], tr = cuba_lif_step(v, i, r, acc[..., t, :], p)
        else:
            v, r, spikes[..., t, :], tr = lif_step(v, r, acc[..., t, :], p)
        if trace:
            traces[..., t, :] = tr
    return PopulationRun(spikes=spikes, v=v, r=r, trace=traces, i=i)
