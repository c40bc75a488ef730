"""The NIR paper's recurrent network for the Braille task, with random weights (``docs/nir.md``,
"The NIR paper's recurrent network").

The paper (neuromorphs/NIR, ``paper/03_rnn``) trains it in snnTorch and ships two graphs:
``12 inputs -> fc1 -> RSynaptic -> fc2 -> Synaptic (7)``, one with the zero reset, 38 hidden
neurons and biases, one with the subtract reset, 40 hidden neurons and no bias, both with
``reset_delay=False``. :func:`braille_graph` writes the same graph as snnTorch 1.0.0 exports it
(``snntorch/export_nir.py``, flattened by nirtorch): ``Affine`` or ``Linear`` nodes ``fc1``,
``lif1.w_rec`` and ``fc2``, ``CubaLIF`` nodes ``lif1.lif`` and ``lif2`` with
``tau_syn = dt/(1-alpha)``, ``tau_mem = dt/(1-beta)``, ``r = tau_mem/dt``, ``w_in = tau_syn/dt``,
``v_threshold = 1`` and ``v_reset = v_leak = 0`` at ``dt = 1e-4``, and no metadata (neither the
step nor the reset is exported). The paper's ``alpha`` and ``beta`` are kept; the weights are Gaussian, scaled so that
on 12 channels of random spikes at rate 0.2 the hidden layer fires at 4 to 6 percent and the output
layer at 17 to 25 percent per step, with an inhibitory mean on the recurrent weights (as in the
trained graphs).
"""

import nir
import numpy as np

__all__ = ["DT", "N_IN", "N_OUT", "VARIANTS", "braille_graph", "input_spikes", "snntorch_spikes"]

DT = 1e-4
N_IN, N_OUT = 12, 7

VARIANTS = {
    # paper/03_rnn/data/parameters_noDelay_bias_ref_zero.json and ..._noBias_ref_subtract.json;
    # the weight scales are ours (the graphs' weights are random).
    "zero": dict(
        hidden=38,
        alpha=(0.55, 0.5),
        beta=(0.9, 0.55),
        bias=True,
        fc1_std=0.3,
        rec_mean=-0.1,
        rec_std=0.1,
        fc2_std=0.6,
    ),
    "subtract": dict(
        hidden=40,
        alpha=(0.75, 0.45),
        beta=(0.85, 0.7),
        bias=False,
        fc1_std=0.3,
        rec_mean=-0.1,
        rec_std=0.1,
        fc2_std=0.2,
    ),
}
"""Per reset mode: hidden size, ``alpha`` and ``beta`` of the hidden and output layers, whether
the linear layers have biases, and the Gaussian weights' scales."""


def _cubalif(n, alpha, beta):
    """snnTorch 1.0.0's export of ``Synaptic(alpha, beta)`` (threshold 1) as float32 arrays."""
    alpha, beta = np.float32(alpha), np.float32(beta)
    tau_syn = np.float32(DT) / (1 - alpha)
    tau_mem = np.float32(DT) / (1 - beta)

    def full(value):
        return np.full(n, value, np.float32)

    return nir.CubaLIF(
        tau_syn=full(tau_syn),
        tau_mem=full(tau_mem),
        r=full(tau_mem / np.float32(DT)),
        v_leak=full(0),
        v_threshold=full(1),
        v_reset=full(0),
        w_in=full(tau_syn / np.float32(DT)),
    )


def braille_graph(reset, seed=0):
    """The paper's recurrent Braille network with random weights, as snnTorch exports it.

    Parameters
    ----------
    reset : {"zero", "subtract"}
        Which of the paper's two graphs: its reset mode picks the sizes, time constants and
        biases of :data:`VARIANTS`.
    seed : int
        Seed of the weights (and biases).

    Returns
    -------
    nir.NIRGraph
    """
    v = VARIANTS[reset]
    n = v["hidden"]
    rng = np.random.default_rng(seed)

    def linear(mean, std, shape):
        weight = rng.normal(mean, std, shape).astype(np.float32)
        if not v["bias"]:
            return nir.Linear(weight=weight)
        # Small negative biases, like the trained zero-reset graph's (smaller here).
        return nir.Affine(weight=weight, bias=rng.normal(-0.02, 0.01, shape[0]).astype(np.float32))

    nodes = {
        "input": nir.Input(input_type=np.array([N_IN])),
        "fc1": linear(0.0, v["fc1_std"], (n, N_IN)),
        "lif1.lif": _cubalif(n, v["alpha"][0], v["beta"][0]),
        "lif1.w_rec": linear(v["rec_mean"], v["rec_std"], (n, n)),
        "fc2": linear(0.0, v["fc2_std"], (N_OUT, n)),
        "lif2": _cubalif(N_OUT, v["alpha"][1], v["beta"][1]),
        "output": nir.Output(output_type=np.array([N_OUT])),
    }
    edges = [
        ("input", "fc1"),
        ("fc1", "lif1.lif"),
        ("lif1.lif", "lif1.w_rec"),
        ("lif1.w_rec", "lif1.lif"),
        ("lif1.lif", "fc2"),
        ("fc2", "lif2"),
        ("lif2", "output"),
    ]
    return nir.NIRGraph(nodes=nodes, edges=edges)


def input_spikes(batch, steps, seed=0, rate=0.2):
    """Random input spikes on the 12 channels, uint8 of shape ``(batch, steps, 12)``."""
    return (np.random.default_rng(seed).random((batch, steps, N_IN)) < rate).astype(np.uint8)


def snntorch_spikes(graph, reset, spikes, guard=True):
    """The spikes of the graph's network under snnTorch's ``reset_delay=False`` equations, float64.

    Written from the equations of ``docs/nir.md`` ("snnTorch 1.0.0"): ``RSynaptic`` then
    ``Synaptic``, both with ``reset_delay=False`` (as the paper trained them; released snnTorch
    drops ``RSynaptic``'s same-step reset, "The NIR paper's recurrent network"), the paper's
    ``alpha`` and ``beta`` (not read back from the graph) and the graph's weights and biases. The
    recurrent input is the hidden layer's spikes of the previous step. With the subtract reset, snnTorch guards against a double
    reset: ``m -= (s - r) th`` with ``r = H(m[t-1] - th)``, which spikeforge does not model;
    ``guard=False`` leaves it out (``r = 0``: the same-step reset alone).

    Parameters
    ----------
    graph : nir.NIRGraph
        From :func:`braille_graph`.
    reset : {"zero", "subtract"}
    spikes : ndarray, shape (B, T, 12)
    guard : bool
        Run snnTorch's guard (it matters with the subtract reset only: after a zero reset the
        membrane is 0, below the threshold).

    Returns
    -------
    hidden, output : ndarray of int32, shapes (B, T, hidden) and (B, T, 7)
    """
    v = VARIANTS[reset]
    nodes = graph.nodes

    def affine(name):
        node = nodes[name]
        return node.weight.astype(np.float64).T, np.asarray(getattr(node, "bias", 0.0), float)

    fc1, rec, fc2 = affine("fc1"), affine("lif1.w_rec"), affine("fc2")
    n_batch, n_steps, _ = spikes.shape
    sizes = (v["hidden"], N_OUT)
    syn = [np.zeros((n_batch, n)) for n in sizes]
    mem = [np.zeros((n_batch, n)) for n in sizes]
    out = [np.zeros((n_batch, n_steps, n), np.int32) for n in sizes]

    def step(k, x):
        alpha, beta = float(np.float32(v["alpha"][k])), float(np.float32(v["beta"][k]))
        # r: the previous membrane (after its reset) is above the threshold 1.
        r = (mem[k] > 1).astype(float) if guard else np.zeros_like(mem[k])
        syn[k] = alpha * syn[k] + x
        if reset == "subtract":
            mem[k] = beta * mem[k] + syn[k] - r
            s = (mem[k] > 1).astype(float)
            mem[k] = mem[k] - (s - r)
        else:
            mem[k] = (1 - r) * (beta * mem[k] + syn[k])
            s = (mem[k] > 1).astype(float)
            mem[k] = mem[k] - (s - r) * mem[k]
        return s

    hidden = np.zeros((n_batch, sizes[0]))
    for t in range(n_steps):
        x = spikes[:, t] @ fc1[0] + fc1[1] + hidden @ rec[0] + rec[1]
        hidden = step(0, x)
        out[0][:, t] = hidden
        out[1][:, t] = step(1, hidden @ fc2[0] + fc2[1])
    return out[0], out[1]
