"""The benchmark networks of docs/performance.md and their Poisson inputs."""

import numpy as np

from ..gen.network import FORMAT, Network, signed_width

__all__ = [
    "CAPACITY_INPUTS",
    "feedforward_network",
    "recurrent_network",
    "brian_network",
    "capacity_network",
    "poisson_inputs",
    "benchmark_cases",
    "network_label",
]

# The inputs of every network of the capacity family.
CAPACITY_INPUTS = 64


def _lif(name, size, v_th, decay=(4,), t_ref=2, bias=0):
    return {
        "name": name,
        "kind": "lif",
        "size": size,
        "v_th": v_th,
        "v_reset": 0,
        "v_rest": 0,
        "v_peak": 4 * v_th,
        "t_ref": t_ref,
        "decay": list(decay),
        "reset_mode": "zero",
        "bias": bias,
    }


def feedforward_network(sizes=(256, 128, 10), seed=0):
    """The feed-forward benchmark network ``in -> hidden -> out`` (default 256-128-10).

    Random 8-bit weights with a positive mean, thresholds set so that 20% input activity makes
    the hidden layer fire on roughly one step in ten.
    """
    rng = np.random.default_rng(seed)
    n_in, n_hid, n_out = sizes
    w1 = rng.integers(-24, 40, (n_in, n_hid))
    w2 = rng.integers(-16, 64, (n_hid, n_out))
    return Network.from_dict(
        {
            "format": FORMAT,
            "v_width": 16,
            "w_width": 8,
            "populations": [
                {"name": "inp", "kind": "input", "size": n_in},
                _lif("hidden", n_hid, 1200),
                _lif("out", n_out, 300),
            ],
            "projections": [
                {"from": "inp", "to": "hidden", "weights": w1},
                {"from": "hidden", "to": "out", "weights": w2},
            ],
        }
    )


def recurrent_network(n_in=64, size=512, seed=1):
    """The recurrent benchmark network: ``n_in`` inputs -> ``size`` LIF neurons with dense
    ``size x size`` recurrent weights (no self-connections), moderate activity."""
    rng = np.random.default_rng(seed)
    w_in = rng.integers(-10, 40, (n_in, size))
    w_rec = rng.integers(-16, 10, (size, size))
    np.fill_diagonal(w_rec, 0)
    return Network.from_dict(
        {
            "format": FORMAT,
            "v_width": 16,
            "w_width": 8,
            "populations": [{"name": "inp", "kind": "input", "size": n_in}, _lif("rec", size, 700)],
            "projections": [
                {"from": "inp", "to": "rec", "weights": w_in},
                {"from": "rec", "to": "rec", "weights": w_rec},
            ],
        }
    )


def brian_network(size=1024, n_in=256, seed=2):
    """The Brian2 comparison network: ``n_in`` Poisson inputs, ``size`` LIF neurons, dense
    weights, refractory period 2 steps, leak ``v -= v >> 4`` (``v' = -v / 16`` per step)."""
    rng = np.random.default_rng(seed)
    weights = rng.integers(0, 64, (n_in, size))
    return Network.from_dict(
        {
            "format": FORMAT,
            "v_width": 16,
            "w_width": 8,
            "populations": [
                {"name": "inp", "kind": "input", "size": n_in},
                _lif("lif", size, 600, decay=(4,), t_ref=2),
            ],
            "projections": [{"from": "inp", "to": "lif", "weights": weights}],
        }
    )


def capacity_network(neurons, n_in=CAPACITY_INPUTS, seed=3):
    """The capacity family: ``n_in`` inputs densely connected to ``neurons`` LIF neurons,
    random 8-bit weights, 16-bit membrane, refractory period 2.

    The accumulator is as wide as the worst case of ``n_in`` 8-bit weights (14 bits for 64),
    whatever the random weights, so that the memories depend on ``neurons`` alone.
    """
    weights = np.random.default_rng(seed).integers(-128, 128, (n_in, neurons))
    return Network.from_dict(
        {
            "format": FORMAT,
            "v_width": 16,
            "w_width": 8,
            "acc_width": signed_width(-128 * n_in, 127 * n_in),
            "populations": [
                {"name": "inp", "kind": "input", "size": n_in},
                _lif("lif", neurons, 1000),
            ],
            "projections": [{"from": "inp", "to": "lif", "weights": weights}],
        }
    )


def poisson_inputs(n_steps, n_inputs, rate, seed=0, batch=None):
    """0/1 inputs, each one spiking with probability ``rate`` per step."""
    shape = (n_steps, n_inputs) if batch is None else (batch, n_steps, n_inputs)
    return (np.random.default_rng(seed).random(shape) < rate).astype(np.uint8)


def benchmark_cases(quick):
    """(name, network, inputs) of the cycle, speed and build cases: the feed-forward and the
    recurrent network at 20% input activity (small ones and fewer steps when ``quick``)."""
    if quick:
        ff = feedforward_network((32, 16, 4))
        rec = recurrent_network(8, 32)
        steps = 4
    else:
        ff, rec, steps = feedforward_network(), recurrent_network(), 8
    return [
        ("feedforward", ff, poisson_inputs(steps, ff.n_inputs, 0.2, seed=10)),
        ("recurrent", rec, poisson_inputs(steps, rec.n_inputs, 0.2, seed=11)),
    ]


def network_label(net):
    """The population sizes of ``net``, e.g. ``"256-128-10"``, and whether it is recurrent."""
    sizes = "-".join(str(p.size) for p in net.populations)
    rec = " recurrent" if any(p.recurrent for p in net.projections) else ""
    return f"{sizes}{rec}"
