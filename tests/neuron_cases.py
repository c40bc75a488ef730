"""Random neuron-step cases for checking the hardware against the golden model.

A case is one (state, input, parameters) triple; extremes are drawn on purpose (full-scale
membrane, saturating input, t_ref 0 and maximum, shifts 0 and v_width-1, both reset modes).
"""

from dataclasses import dataclass

import numpy as np

from spikeforge.sim.golden import lif_step, param_arrays
from spikeforge.sim.params import NeuronParams, v_range


@dataclass
class Cases:
    params: list
    v: np.ndarray
    r: np.ndarray
    acc: np.ndarray

    def expected(self):
        """Golden ``(v_next, r_next, spike, trace)`` for every case."""
        return lif_step(self.v, self.r, self.acc, param_arrays(self.params))


def _pick(rng, lo, hi, n):
    """Integers in [lo, hi], a quarter of them at or next to the ends."""
    out = rng.integers(lo, hi, n, endpoint=True)
    edge = rng.random(n) < 0.25
    ends = np.array([lo, hi, min(lo + 1, hi), max(hi - 1, lo), 0 if lo <= 0 <= hi else lo])
    out[edge] = rng.choice(ends, edge.sum())
    return out


def random_params(rng, v_width, t_ref_max):
    lo, hi = v_range(v_width)
    v_reset, v_th, v_peak = sorted(int(x) for x in _pick(rng, lo, hi, 3))
    n_terms = int(rng.integers(0, 4, endpoint=True))
    decay = []
    for _ in range(n_terms):
        shift = int(_pick(rng, 0, v_width - 1, 1)[0])
        decay.append(-shift if shift and rng.random() < 0.3 else shift)
    return NeuronParams(
        v_width=v_width, v_th=v_th, v_reset=v_reset, v_peak=v_peak,
        v_rest=int(_pick(rng, lo, hi, 1)[0]), bias=int(_pick(rng, lo, hi, 1)[0]),
        t_ref=int(_pick(rng, 0, t_ref_max, 1)[0]),
        reset_mode=str(rng.choice(["zero", "subtract"])), decay=tuple(decay))


def random_cases(rng, n, *, v_width, acc_width, t_ref_max):
    """``n`` cases for a core of the given widths; parameters change every few cases."""
    lo, hi = v_range(v_width)
    pool = [random_params(rng, v_width, t_ref_max) for _ in range(max(n // 8, 1))]
    params = [pool[i] for i in rng.integers(0, len(pool), n)]
    r_max = (1 << max(int(t_ref_max).bit_length(), 1)) - 1
    r = np.where(rng.random(n) < 0.6, 0, _pick(rng, 0, r_max, n))
    return Cases(params=params, v=_pick(rng, lo, hi, n), r=r,
                 acc=_pick(rng, *v_range(acc_width), n))
