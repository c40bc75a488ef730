"""Random networks and input spikes for checking network simulators against the golden model.

:func:`random_network` draws feed-forward or recurrent networks of 1 to 4 LIF populations with
sizes up to 256: mostly "live" parameters (thresholds that a few input spikes cross), and on
purpose some extremes (full-range parameters from ``neuron_cases.random_params``, saturating
weights, long refractory periods, tiny widths, per-neuron bias, inputs placed late in the order).
With ``synaptic`` some populations are current-based (a ``syn_decay``); with ``delayed`` and
``at_threshold`` some have ``reset_timing = "next"`` and ``threshold_compare = ">="``; with
``per_neuron`` some have per-neuron ``v_th``, ``v_reset``, ``v_rest``, ``decay`` and
``syn_decay``.
"""

import numpy as np
from neuron_cases import random_decay, random_params

from spikeforge.gen.network import Network
from spikeforge.spec.limits import v_range, w_range

__all__ = [
    "random_network",
    "synaptic_network",
    "option_network",
    "per_neuron_network",
    "many_decays_network",
    "distinct_decays",
    "random_spikes",
]


def _live_params(rng, v_width, w_width, t_ref_max):
    """Parameters under which a handful of input spikes make a neuron fire."""
    v_lo, v_hi = v_range(v_width)
    w_hi = w_range(w_width)[1]
    v_rest = int(rng.integers(max(v_lo, -4 * w_hi), min(v_hi, 4 * w_hi) // 2, endpoint=True))
    v_th = int(rng.integers(v_rest, min(v_hi, v_rest + 4 * w_hi + 1), endpoint=True))
    v_reset = int(rng.integers(max(v_lo, v_rest - 2 * w_hi), v_th, endpoint=True))
    v_peak = int(rng.integers(v_th, v_hi, endpoint=True))
    n_terms = int(rng.integers(0, 2, endpoint=True))
    decay = [
        int(rng.integers(1, v_width - 1, endpoint=True)) if v_width > 2 else 1
        for _ in range(n_terms)
    ]
    return dict(
        v_th=v_th,
        v_reset=v_reset,
        v_rest=v_rest,
        v_peak=v_peak,
        t_ref=int(rng.integers(0, t_ref_max, endpoint=True)),
        decay=decay,
        reset_mode=str(rng.choice(["zero", "subtract"])),
        bias=0,
    )


def _weights(rng, shape, w_width, density, saturating):
    lo, hi = w_range(w_width)
    if saturating:
        values = rng.choice([lo, hi, hi, hi], size=shape)
    else:
        # Mostly excitatory, so that activity propagates; inhibition keeps it bounded.
        values = rng.integers(lo // 2, hi, size=shape, endpoint=True)
    return np.where(rng.random(shape) < density, values, 0).astype(np.int64)


def random_network(
    rng,
    *,
    n_lif=None,
    max_size=256,
    recurrent=None,
    v_width=None,
    w_width=None,
    extremes=0.2,
    density=None,
    synaptic=0.0,
    delayed=0.0,
    at_threshold=0.0,
    per_neuron=0.0,
):
    """Draw a random valid :class:`Network`.

    Parameters
    ----------
    rng : numpy.random.Generator
    n_lif : int, optional
        Number of LIF populations, 1 to 4 (random if None).
    max_size : int
        Largest population size.
    recurrent : bool, optional
        Whether projections from the same or later populations are drawn (random if None).
    v_width, w_width : int, optional
        Widths (random if None; small widths are drawn now and then).
    extremes : float
        Probability that a population gets full-range parameters and its input saturating
        weights.
    density : float, optional
        Fraction of nonzero weights (random per projection if None).
    synaptic : float
        Probability that a LIF population is current-based. At 0 (the default) nothing more is
        drawn, so the networks of a seed are those drawn before current-based populations.
    delayed, at_threshold : float
        Probabilities that a LIF population gets ``reset_timing = "next"`` and
        ``threshold_compare = ">="``; at 0 (the default) nothing more is drawn either.
    per_neuron : float
        Probability that a LIF population gets per-neuron parameters (:func:`_per_neuron`);
        likewise nothing more is drawn at 0.
    """
    if n_lif is None:
        n_lif = int(rng.integers(1, 4, endpoint=True))
    if recurrent is None:
        recurrent = bool(rng.random() < 0.5)
    if v_width is None:
        v_width = int(rng.choice([4, 8, 12, 16, 16, 16, 24, 32]))
    if w_width is None:
        w_width = int(rng.choice([2, 4, 8, 8, 8, 12, 16]))

    def size():
        # Small sizes are the interesting ones for edge cases; big ones exercise the matmuls.
        return int(
            rng.integers(1, max_size, endpoint=True)
            if rng.random() < 0.3
            else rng.integers(1, min(max_size, 16), endpoint=True)
        )

    n_input = int(rng.integers(1, 2, endpoint=True))
    kinds = ["input"] * n_input + ["lif"] * n_lif
    # Now and then an input population later in the order: its projections are recurrent.
    if n_input == 2 and rng.random() < 0.3:
        kinds = ["input", "lif", "input"] + ["lif"] * (n_lif - 1)
    pops = []
    saturating = {}
    for i, kind in enumerate(kinds):
        name = f"{kind}{i}"
        spec = {"name": name, "kind": kind, "size": size()}
        if kind == "lif":
            t_ref_max = int(rng.choice([0, 3, 3, 20]))
            extreme = bool(rng.random() < extremes)
            saturating[name] = extreme
            if extreme:
                p = random_params(rng, v_width, t_ref_max)
                spec.update(
                    v_th=p.v_th,
                    v_reset=p.v_reset,
                    v_rest=p.v_rest,
                    v_peak=p.v_peak,
                    t_ref=p.t_ref,
                    decay=list(p.decay),
                    reset_mode=p.reset_mode,
                    bias=p.bias,
                )
            else:
                spec.update(_live_params(rng, v_width, w_width, t_ref_max))
            if rng.random() < 0.3:
                lo, hi = v_range(v_width)
                spec["bias"] = rng.integers(max(lo, -8), min(hi, 8), spec["size"], endpoint=True)
            if synaptic and rng.random() < synaptic:
                # Live currents decay by about a quarter to a half per step; extreme ones by
                # anything, including not at all.
                spec["syn_decay"] = (
                    list(random_decay(rng, v_width))
                    if extreme
                    else [int(rng.integers(1, min(2, v_width - 1), endpoint=True))]
                )
            if delayed and rng.random() < delayed:
                spec["reset_timing"] = "next"
            if at_threshold and rng.random() < at_threshold:
                spec["threshold_compare"] = ">="
            if per_neuron and rng.random() < per_neuron:
                _per_neuron(rng, spec, v_width, w_width, extreme)
        pops.append(spec)

    projections = []
    for j, dst in enumerate(pops):
        if dst["kind"] != "lif":
            continue
        sources = {int(rng.integers(0, j))} if j else set()
        for i in range(len(pops)):
            if i < j and rng.random() < 0.3:
                sources.add(i)
            if recurrent and i >= j and rng.random() < 0.4:
                sources.add(i)
        for i in sorted(sources):
            d = rng.uniform(0.05, 0.6) if density is None else density
            projections.append(
                {
                    "from": pops[i]["name"],
                    "to": dst["name"],
                    "weights": _weights(
                        rng, (pops[i]["size"], dst["size"]), w_width, d, saturating[dst["name"]]
                    ),
                }
            )

    d = {
        "format": "spikeforge-network/1",
        "v_width": v_width,
        "w_width": w_width,
        "populations": pops,
        "projections": projections,
    }
    net = Network.from_dict(d)
    if rng.random() < 0.3:
        d["acc_width"] = net.required_acc_width() + int(rng.integers(0, 3, endpoint=True))
        net = Network.from_dict(d)
    return net


def _per_neuron(rng, spec, v_width, w_width, extreme):
    """Give LIF population ``spec`` per-neuron values: each of ``v_th``, ``v_reset``, ``v_rest``
    (all three together, so that every neuron's ``v_reset <= v_th <= v_peak`` holds), ``decay``
    and ``syn_decay`` in turn, drawn from a few distinct decays."""
    size = spec["size"]
    if rng.random() < 0.8:
        draws = [
            random_params(rng, v_width, 0) if extreme else _live_params(rng, v_width, w_width, 0)
            for _ in range(size)
        ]
        for key in ("v_th", "v_reset", "v_rest"):
            spec[key] = [int(getattr(p, key) if extreme else p[key]) for p in draws]
        spec["v_peak"] = max(spec["v_peak"], *spec["v_th"])
    for key in ("decay", "syn_decay"):
        if key in spec and rng.random() < 0.6:
            choices = [list(random_decay(rng, v_width)) for _ in range(int(rng.integers(1, 3)))]
            choices.append(spec[key])
            spec[key] = [choices[int(rng.integers(0, len(choices)))] for _ in range(size)]


def per_neuron_network(rng, **options):
    """A :func:`random_network` with a population of per-neuron parameters (often beside
    populations without), some current-based or with the options of :func:`option_network`."""
    while True:
        net = random_network(
            rng, synaptic=0.3, delayed=0.2, at_threshold=0.2, per_neuron=0.7, **options
        )
        if any(p.per_neuron for p in net.lif_populations):
            return net


def synaptic_network(rng, **options):
    """A :func:`random_network` with at least one current-based population, often beside
    plain ones."""
    while True:
        net = random_network(rng, synaptic=0.6, **options)
        if any(p.params.synaptic for p in net.lif_populations):
            return net


def option_network(rng, **options):
    """A :func:`random_network` with a population of ``reset_timing = "next"`` and one of
    ``threshold_compare = ">="`` (often beside plain ones), some current-based."""
    while True:
        net = random_network(rng, synaptic=0.3, delayed=0.6, at_threshold=0.5, **options)
        params = [p.params for p in net.lif_populations]
        if any(p.delayed_reset for p in params) and any(p.fires_at_threshold for p in params):
            return net


def random_spikes(rng, net, T, batch=None, activity=0.2):
    """Random 0/1 input spikes for ``net``: uint8, ``(T, n_in)`` or ``(batch, T, n_in)``.

    ``activity`` is the probability that an input neuron spikes in a timestep.
    """
    shape = (T, net.n_inputs) if batch is None else (batch, T, net.n_inputs)
    return (rng.random(shape) < activity).astype(np.uint8)


def distinct_decays(size, offset=0):
    """``size`` different two-term decays ``[a, -b]`` or ``[a, b]`` (``offset`` skips as many
    of them)."""
    pairs = [[a, sign * b] for a in range(1, 16) for b in range(a + 1, 16) for sign in (-1, 1)]
    return pairs[offset : offset + size]


def many_decays_network(size, synaptic=False, scale=1):
    """Input 8 -> LIF ``size`` (plus a plain LIF 3 after it) where every hidden neuron has its
    own ``decay`` (and, with ``synaptic``, its own ``syn_decay``), as a learned-beta import
    gives; ``scale`` changes the weights only."""
    rng = np.random.default_rng(size)
    hidden = {
        "name": "h",
        "kind": "lif",
        "size": size,
        "v_th": rng.integers(40, 90, size).tolist(),
        "v_reset": 0,
        "v_rest": rng.integers(-8, 8, size).tolist(),
        "v_peak": 500,
        "t_ref": 0,
        "decay": distinct_decays(size),
        "reset_mode": "subtract",
        "bias": 1,
    }
    if synaptic:
        hidden["syn_decay"] = distinct_decays(size, offset=7)
    out = {**hidden, "name": "o", "size": 3, "v_th": 60, "v_rest": 0, "decay": [2]}
    out.pop("syn_decay", None)
    return Network.from_dict(
        {
            "format": "spikeforge-network/1",
            "v_width": 16,
            "w_width": 8,
            "populations": [{"name": "x", "kind": "input", "size": 8}, hidden, out],
            "projections": [
                {
                    "from": "x",
                    "to": "h",
                    "weights": (rng.integers(-10, 40, (8, size)) * scale).tolist(),
                },
                {"from": "h", "to": "o", "weights": rng.integers(-20, 30, (size, 3)).tolist()},
            ],
        }
    )
