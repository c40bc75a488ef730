"""The NumPy golden model of ``docs/neuron.md``.

Written from the spec alone; the hardware is checked against it, never the other way round.
Every function is vectorised over neurons and over a leading batch of independent runs. The
step functions work in int64, which holds every intermediate value of a ``v_width <= 32``
neuron exactly; :func:`membrane_update` and :func:`synaptic_update` step arrays in place in the
narrowest type that does (:func:`work_dtype`), for :func:`run_network`'s speed at a batch.
"""

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from ..spec.limits import MAX_DECAY_TERMS, v_range
from ..spec.params import NeuronParams

__all__ = [
    "ParamArrays",
    "param_arrays",
    "leak",
    "syn_leak",
    "lif_step",
    "cuba_lif_step",
    "membrane_update",
    "synaptic_update",
    "work_dtype",
    "cast_params",
    "PopulationRun",
    "run_population",
]


class ParamArrays(NamedTuple):
    """Parameters as int64 arrays that broadcast against the neuron axis.

    ``decay_shift`` and ``decay_sign`` have a last axis of ``MAX_DECAY_TERMS``; an unused term has
    sign 0. ``syn_shift`` and ``syn_sign`` are the same for ``syn_decay`` (all sign 0 for a plain
    LIF neuron); ``delayed`` is true where ``reset_timing`` is ``"next"``, ``at_threshold``
    where ``threshold_compare`` is ``">="``; ``synaptic`` tells whether the neurons have the
    synaptic current.
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
    delayed: np.ndarray
    at_threshold: np.ndarray
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
        v_width=widths.pop(),
        v_th=col("v_th"),
        v_reset=col("v_reset"),
        v_rest=col("v_rest"),
        v_peak=col("v_peak"),
        t_ref=col("t_ref"),
        bias=col("bias"),
        subtract=np.array([p.reset_mode == "subtract" for p in seq]),
        decay_shift=shift,
        decay_sign=sign,
        syn_shift=syn_shift,
        syn_sign=syn_sign,
        delayed=np.array([p.delayed_reset for p in seq]),
        at_threshold=np.array([p.fires_at_threshold for p in seq]),
        synaptic=synaptic.pop(),
    )
    if isinstance(params, NeuronParams):
        # One population: scalars, so that they broadcast against any neuron count.
        arrays = arrays._replace(
            **{name: getattr(arrays, name)[0] for name in ParamArrays._fields[1:-1]}
        )
    return arrays


def leak(v, p):
    """``leak(v) = sum_k sign_k * ((v - v_rest) >> |k|)`` with floor shifts."""
    d = np.asarray(v, np.int64) - p.v_rest
    total = np.zeros(np.broadcast_shapes(d.shape, p.decay_shift[..., 0].shape), np.int64)
    _add_terms(total, d, p.decay_shift, p.decay_sign, 1)
    return total


def syn_leak(i, p):
    """``syn_leak(i) = sum_k sign_k * (i >> |k|)`` over the ``syn_decay`` terms, floor shifts."""
    i = np.asarray(i, np.int64)
    total = np.zeros(np.broadcast_shapes(i.shape, p.syn_shift[..., 0].shape), np.int64)
    _add_terms(total, i, p.syn_shift, p.syn_sign, 1)
    return total


def _add_terms(total, x, shift, sign, scale):
    """``total += scale * sum_k sign_k * (x >> shift_k)`` in place; ``scale`` is 1 or -1."""
    if sign.ndim == 1:
        # One set of terms for all neurons: decided in Python, as NumPy calls on four values
        # cost more than the shift itself.
        for sign_k, shift_k in zip(sign.tolist(), shift):
            if sign_k == scale:
                total += x >> shift_k
            elif sign_k:
                total -= x >> shift_k
        return
    for k in range(MAX_DECAY_TERMS):
        sign_k = sign[..., k]
        # A term no neuron uses adds nothing; most neurons use one or two of the four.
        if np.count_nonzero(sign_k):
            total += scale * sign_k * (x >> shift[..., k])


def lif_step(v, r, acc, p, pending=None):
    """One timestep of ``docs/neuron.md`` for every neuron (plain LIF).

    Parameters
    ----------
    v, r : array of int
        Membrane and refractory counter before the step.
    acc : array of int
        Sum of the weights of this step's input spikes (``bias`` is added here).
    p : ParamArrays
    pending : array of bool, optional
        The reset pending from the previous step: its spikes (``reset_timing = "next"`` only; by
        default none). The returned spikes are the next step's ``pending``.

    Returns
    -------
    v, r, spike, trace : arrays
        State after the step, the spike flags (bool) and the observable membrane trace.
    """
    v, r, current = _step_arrays(p, v, r, np.asarray(acc, np.int64) + p.bias)
    spike = membrane_update(v, r, current, p, pending)
    return v, r, spike, np.where(spike, p.v_peak, v)


def cuba_lif_step(v, i, r, acc, p, pending=None):
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
    pending : array of bool, optional
        As for :func:`lif_step`.

    Returns
    -------
    v, i, r, spike, trace : arrays
    """
    v, i, r, current = _step_arrays(p, v, i, r, np.asarray(acc, np.int64) + p.bias)
    synaptic_update(i, current, p)
    spike = membrane_update(v, r, current, p, pending)
    return v, i, r, spike, np.where(spike, p.v_peak, v)


def _step_arrays(p, *arrays):
    """Fresh int64 copies of ``arrays``, broadcast to the shape of the step."""
    shape = np.broadcast_shapes(*(np.shape(a) for a in arrays), np.shape(p.v_th))
    return [np.broadcast_to(np.asarray(a, np.int64), shape).copy() for a in arrays]


def synaptic_update(i, current, p):
    """Step 2 of ``docs/neuron.md`` in place: ``i' = sat(i - syn_leak(i) + I)``.

    ``i`` becomes ``i'`` and ``current`` (``I`` on entry) too, ready for
    :func:`membrane_update`. Both arrays have one shape and one integer type (int32 or int64)
    that holds every intermediate value (:func:`work_dtype`); so do the fields of ``p``.
    """
    lo, hi = (i.dtype.type(x) for x in v_range(p.v_width))
    current += i
    _add_terms(current, i, p.syn_shift, p.syn_sign, -1)
    np.clip(current, lo, hi, out=current)
    np.copyto(i, current)


def membrane_update(v, r, current, p, pending=None, out=None):
    """Step 3 of ``docs/neuron.md`` in place, for every neuron; returns the spike flags.

    ``pending`` (bool, read only; by default none) is the previous step's spikes, the resets
    still to apply of the neurons whose ``reset_timing`` is ``"next"``. ``out`` (bool, of the
    shape of ``v``), if given, receives the spike flags and is returned.

    ``v`` and ``r`` (``0 <= r``, as ``docs/neuron.md`` keeps it) become the state after the
    step; ``current`` is ``I`` (plain LIF) or ``i'`` (current-based) on entry and scratch
    afterwards. ``v``, ``current`` and the fields of ``p`` share one shape and an integer type
    (int32 or int64) that holds every intermediate value (:func:`work_dtype`); ``r`` and
    ``p.t_ref`` may have a narrower one, signed or unsigned, that holds ``t_ref``, as a fifth
    of the step's passes are over ``r``. In place, because at a batch of 64 the step is about
    fifteen passes over arrays that stay in cache, and fresh arrays for each would cost as much
    as the arithmetic. Without refractory neurons (``t_ref`` 0 and ``r`` 0) the passes over
    ``r`` and the masks fall away, and so does the saturation of a reset by subtraction with
    ``v_th >= 0``: an IF neuron's step (no leak) is five passes.
    """
    if np.count_nonzero(p.delayed):
        spike = _delayed_update(v, r, current, p, pending)
        if out is None:
            return spike
        np.copyto(out, spike)
        return out
    lo, hi = (v.dtype.type(x) for x in v_range(p.v_width))
    # With t_ref 0 and no neuron refractory now, none ever is: r stays 0 (r - 1 + 1 + 0) and
    # every neuron is live, so the masks and the passes over r fall away (an IF neuron's step
    # is then a handful of passes instead of about fifteen).
    refractory = bool(np.count_nonzero(p.t_ref) or np.count_nonzero(r))
    # Selects are products with bool masks: np.where and masked copies branch per element and
    # run several times slower on masks as unpredictable as spikes, and a bool mask is a
    # quarter of the memory traffic of an integer one.
    live = r <= 0 if refractory else None
    # v' = sat(v - leak(v) + I); while refractory the increment is masked off, so v' = v, which
    # is also the state after the step then.
    v_prime = current
    _add_terms(
        v_prime, v - p.v_rest if np.count_nonzero(p.v_rest) else v, p.decay_shift, p.decay_sign, -1
    )
    if refractory:
        np.multiply(v_prime, live, out=v_prime)
    v_prime += v
    np.clip(v_prime, lo, hi, out=v_prime)
    spike = _fires(v_prime, p, out)
    if refractory:
        spike &= live
    _reset(v, v_prime, spike, p, lo, hi)
    if refractory:
        # r - 1 while refractory, 0 otherwise (r - 1 + 1), t_ref after a spike.
        # In an unsigned r, 0 - 1 wraps to the maximum and + 1 wraps back to 0.
        r -= 1
        r += live
        r += spike * p.t_ref
    return spike


def _reset(v, v_prime, spike, p, lo, hi):
    """``v = `` the membrane after the step's reset: ``v'`` where no spike, else ``v_reset``
    or ``sat(v' - v_th)``; ``v_prime`` is scratch afterwards."""
    subtract = np.count_nonzero(p.subtract)
    if subtract and subtract == np.size(p.subtract) and p.v_th.min() >= 0:
        # A spike means v' >= v_th >= 0, so v' - v_th lies in [0, v'] and needs no saturation:
        # v = v' - v_th * spike, two passes.
        np.multiply(spike, p.v_th, out=v)
        np.subtract(v_prime, v, out=v)
        return
    if subtract or np.count_nonzero(p.v_reset):
        if not subtract:
            after = p.v_reset - v_prime
        else:
            after = np.clip(v_prime - p.v_th, lo, hi)
            if subtract < np.size(p.subtract):
                after = np.where(p.subtract, after, p.v_reset)
            after -= v_prime
        # v' + (after - v') * spike
        after *= spike
        v_prime += after
    else:
        v_prime *= ~spike
    np.copyto(v, v_prime)


def _fires(v_prime, p, out=None):
    """The threshold test: ``v' > v_th``, or ``v' >= v_th`` where ``at_threshold`` (into
    ``out`` if given)."""
    if not np.count_nonzero(p.at_threshold):
        return v_prime > p.v_th if out is None else np.greater(v_prime, p.v_th, out=out)
    fired = np.where(p.at_threshold, v_prime >= p.v_th, v_prime > p.v_th)
    if out is None:
        return fired
    np.copyto(out, fired)
    return out


def _delayed_update(v, r, current, p, pending):
    """:func:`membrane_update` of populations with neurons whose ``reset_timing`` is ``"next"``:
    the step of ``docs/neuron.md``, "Reset timing", written out plainly (the fast path above is
    for the common case)."""
    lo, hi = v_range(p.v_width)
    v0 = v.astype(np.int64)
    pend = np.zeros(v.shape, bool) if pending is None else np.broadcast_to(pending, v.shape)
    pend = pend & p.delayed
    subtract = np.broadcast_to(p.subtract, v.shape)
    # The pending reset: zero mode starts the step from v_reset, subtract mode takes v_th off
    # after the leak of the unreset membrane.
    u = np.where(pend & ~subtract, p.v_reset, v0)
    base = u - np.where(pend & subtract, p.v_th, 0)
    live = r <= 0
    v_prime = np.clip(base - leak(u, p) + current, lo, hi)
    spike = live & _fires(v_prime, p)
    after = np.where(p.subtract, np.clip(v_prime - p.v_th, lo, hi), p.v_reset)
    after = np.where(p.delayed, v_prime, after)
    new_v = np.where(live, np.where(spike, after, v_prime), np.clip(base, lo, hi))
    np.copyto(v, new_v.astype(v.dtype))
    r_new = np.where(live, np.where(spike, p.t_ref, 0), r.astype(np.int64) - 1)
    np.copyto(r, r_new.astype(r.dtype))
    return spike


def work_dtype(v_width, acc_width):
    """The integer type that holds every intermediate value of a step: int32 when it can.

    With ``|v|, |bias| < 2**(v_width - 1)``, up to four decay terms of at most
    ``|v - v_rest| <= 2**v_width`` each and ``|acc| < 2**(acc_width - 1)``, every sum of
    :func:`membrane_update` and :func:`synaptic_update` is below ``2**(max(v_width + 3,
    acc_width) + 1)``. int32 halves the memory traffic of int64 and doubles its SIMD width.
    """
    return np.int32 if v_width <= 27 and acc_width <= 30 else np.int64


def cast_params(p, dtype):
    """``p`` with its integer fields in ``dtype``, so that no step promotes to int64."""
    return p._replace(
        **{
            name: np.asarray(getattr(p, name)).astype(dtype)
            for name in ParamArrays._fields[1:-1]
            if name not in ("subtract", "delayed", "at_threshold")
        }
    )


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
    i = (
        np.broadcast_to(0 if i0 is None else np.asarray(i0, np.int64), state_shape).copy()
        if p.synaptic
        else None
    )
    spikes = np.zeros(acc.shape, bool)
    traces = np.zeros(acc.shape, np.int64) if trace else None
    pending = None
    for t in range(acc.shape[-2]):
        if p.synaptic:
            v, i, r, spikes[..., t, :], tr = cuba_lif_step(v, i, r, acc[..., t, :], p, pending)
        else:
            v, r, spikes[..., t, :], tr = lif_step(v, r, acc[..., t, :], p, pending)
        pending = spikes[..., t, :]
        if trace:
            traces[..., t, :] = tr
    return PopulationRun(spikes=spikes, v=v, r=r, trace=traces, i=i)
