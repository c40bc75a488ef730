"""Random neuron-step cases for checking the hardware against the golden model.

A case is one (state, input, parameters) triple; extremes are drawn on purpose (full-scale
membrane, saturating input, t_ref 0 and maximum, shifts 0 and v_width-1, both reset modes).
Synaptic cases mix current-based and plain LIF parameters, as a synaptic core serves both.
"""

from dataclasses import dataclass

import numpy as np

from spikeforge.sim.golden import cuba_lif_step, lif_step, param_arrays
from spikeforge.spec.limits import v_range
from spikeforge.spec.params import NeuronParams


@dataclass
class Cases:
    params: list
    v: np.ndarray
    r: np.ndarray
    acc: np.ndarray
    i: np.ndarray | None = None

    def expected(self):
        """Golden ``(v_next, r_next, spike, trace)`` for every case, and ``i_next`` (0 for a
        plain neuron) when the cases have a synaptic current."""
        if self.i is None:
            return lif_step(self.v, self.r, self.acc, param_arrays(self.params))
        out = [np.zeros(len(self.v), np.int64) for _ in range(5)]
        for synaptic in (False, True):
            sel = np.flatnonzero([p.synaptic == synaptic for p in self.params])
            if not sel.size:
                continue
            p = param_arrays([self.params[n] for n in sel])
            if synaptic:
                v, i, r, spike, trace = cuba_lif_step(
                    self.v[sel], self.i[sel], self.r[sel], self.acc[sel], p
                )
            else:
                v, r, spike, trace = lif_step(self.v[sel], self.r[sel], self.acc[sel], p)
                i = 0
            for array, value in zip(out, (v, r, spike, trace, i)):
                array[sel] = value
        return out[0], out[1], out[2].astype(bool), out[3], out[4]


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


def random_params(rng, v_width, t_ref_max, synaptic=False):
    """Full-range parameters; with ``synaptic``, three in four get a random ``syn_decay``."""
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
    return NeuronParams(**params)


def random_cases(rng, n, *, v_width, acc_width, t_ref_max, synaptic=False):
    """``n`` cases for a core of the given widths; parameters change every few cases.

    With ``synaptic`` the cases are for a synaptic core: current-based and plain parameters
    mixed, and a random synaptic current ``i`` in every case.
    """
    lo, hi = v_range(v_width)
    pool = [random_params(rng, v_width, t_ref_max, synaptic) for _ in range(max(n // 8, 1))]
    params = [pool[i] for i in rng.integers(0, len(pool), n)]
    r_max = (1 << max(int(t_ref_max).bit_length(), 1)) - 1
    r = np.where(rng.random(n) < 0.6, 0, _pick(rng, 0, r_max, n))
    cases = Cases(
        params=params, v=_pick(rng, lo, hi, n), r=r, acc=_pick(rng, *v_range(acc_width), n)
    )
    if synaptic:
        cases.i = _pick(rng, lo, hi, n)
    return cases
