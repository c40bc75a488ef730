"""Random neuron-step cases for checking the hardware against the golden model.

A case is one (state, input, parameters) triple; extremes are drawn on purpose (full-scale
membrane, saturating input, t_ref 0 and maximum, shifts 0 and v_width-1, both reset modes).
Synaptic cases mix current-based and plain LIF parameters, as a synaptic core serves both; delayed
cases mix both reset timings and carry a pending reset, as a ``delayed_reset`` core serves both;
``at_threshold`` cases mix both threshold tests and land ``v'`` on ``v_th`` on purpose.
"""

from dataclasses import dataclass

import numpy as np

from spikeforge.sim.golden import cuba_lif_step, leak, lif_step, param_arrays
from spikeforge.spec.limits import v_range
from spikeforge.spec.params import NeuronParams


@dataclass
class Cases:
    params: list
    v: np.ndarray
    r: np.ndarray
    acc: np.ndarray
    i: np.ndarray | None = None
    pending: np.ndarray | None = None

    def expected(self):
        """Golden ``(v_next, r_next, spike, trace)`` for every case, and ``i_next`` (0 for a
        plain neuron) when the cases have a synaptic current."""
        if self.i is None:
            return lif_step(self.v, self.r, self.acc, param_arrays(self.params), self.pending)
        out = [np.zeros(len(self.v), np.int64) for _ in range(5)]
        for synaptic in (False, True):
            sel = np.flatnonzero([p.synaptic == synaptic for p in self.params])
            if not sel.size:
                continue
            p = param_arrays([self.params[n] for n in sel])
            pending = None if self.pending is None else self.pending[sel]
            if synaptic:
                v, i, r, spike, trace = cuba_lif_step(
                    self.v[sel], self.i[sel], self.r[sel], self.acc[sel], p, pending
                )
            else:
                v, r, spike, trace = lif_step(self.v[sel], self.r[sel], self.acc[sel], p, pending)
                i = 0
            for array, value in zip(out, (v, r, spike, trace, i)):
                array[sel] = value
        return out[0], out[1], out[2].astype(bool), out[3], out[4]

    def expected_pending(self, spike):
        """Golden ``pending_next`` of a ``delayed_reset`` core: the spikes of delayed neurons."""
        return spike & np.array([p.delayed_reset for p in self.params])


def _pick(rng, lo, hi, n):
    """Integers in [lo, hi], a quarter of them at or next to the ends."""
    out = rng.integers(lo, hi, n, endpoint=True)
    edge = rng.random(n) < 0.25
    ends = np.array([lo, hi, min(lo + 1, hi), max(hi - 1, lo), 0 if lo <= 0 <= hi else lo])
    out[edge] = rng.choice(ends, edge.sum())
    return out


def random_decay(rng, v_width):
    """0 to 4 shift terms, some negative, shifts 0 and v_width-1 among them."""
    n_terms = int(rng.integers(0, 4, endpoint=True))
    decay = []
    for _ in range(n_terms):
        shift = int(_pick(rng, 0, v_width - 1, 1)[0])
        decay.append(-shift if shift and rng.random() < 0.3 else shift)
    return tuple(decay)


def random_params(rng, v_width, t_ref_max, synaptic=False, delayed=False, at_threshold=False):
    """Full-range parameters; with ``synaptic``, three in four get a random ``syn_decay``; with
    ``delayed``, half get ``reset_timing = "next"``; with ``at_threshold``, half get
    ``threshold_compare = ">="``."""
    lo, hi = v_range(v_width)
    v_reset, v_th, v_peak = sorted(int(x) for x in _pick(rng, lo, hi, 3))
    decay = random_decay(rng, v_width)
    params = dict(
        v_width=v_width,
        v_th=v_th,
        v_reset=v_reset,
        v_peak=v_peak,
        v_rest=int(_pick(rng, lo, hi, 1)[0]),
        bias=int(_pick(rng, lo, hi, 1)[0]),
        t_ref=int(_pick(rng, 0, t_ref_max, 1)[0]),
        reset_mode=str(rng.choice(["zero", "subtract"])),
        decay=decay,
    )
    if synaptic and rng.random() < 0.75:
        params["syn_decay"] = random_decay(rng, v_width)
    if delayed and rng.random() < 0.5:
        params["reset_timing"] = "next"
    if at_threshold and rng.random() < 0.5:
        params["threshold_compare"] = ">="
    return NeuronParams(**params)


def random_cases(
    rng, n, *, v_width, acc_width, t_ref_max, synaptic=False, delayed=False, at_threshold=False
):
    """``n`` cases for a core of the given widths; parameters change every few cases.

    With ``synaptic`` the cases are for a synaptic core: current-based and plain parameters
    mixed, and a random synaptic current ``i`` in every case. With ``delayed`` they are for a
    ``delayed_reset`` core: both reset timings mixed, and a random pending reset in every case.
    With ``at_threshold`` both threshold tests are mixed, and in a quarter of the plain cases the
    input puts ``v'`` on ``v_th`` or next to it.
    """
    lo, hi = v_range(v_width)
    pool = [
        random_params(rng, v_width, t_ref_max, synaptic, delayed, at_threshold)
        for _ in range(max(n // 8, 1))
    ]
    params = [pool[i] for i in rng.integers(0, len(pool), n)]
    r_max = (1 << max(int(t_ref_max).bit_length(), 1)) - 1
    r = np.where(rng.random(n) < 0.6, 0, _pick(rng, 0, r_max, n))
    cases = Cases(
        params=params, v=_pick(rng, lo, hi, n), r=r, acc=_pick(rng, *v_range(acc_width), n)
    )
    if synaptic:
        cases.i = _pick(rng, lo, hi, n)
    if delayed:
        cases.pending = rng.random(n) < 0.5
    if at_threshold:
        _land_on_threshold(rng, cases, acc_width)
    return cases


def _land_on_threshold(rng, cases, acc_width):
    """Set the input of a quarter of the plain cases (no synaptic current, no reset due) so that
    ``v' = v - leak(v) + acc + bias`` is ``v_th - 1``, ``v_th`` or ``v_th + 1``."""
    for n, p in enumerate(cases.params):
        due = cases.pending is not None and cases.pending[n] and p.delayed_reset
        if p.synaptic or due or rng.random() >= 0.25:
            continue
        v = int(cases.v[n])
        acc = p.v_th - p.bias - (v - int(leak(v, param_arrays(p)))) + int(rng.integers(-1, 2))
        lo, hi = v_range(acc_width)
        if lo <= acc <= hi:
            cases.acc[n] = acc
