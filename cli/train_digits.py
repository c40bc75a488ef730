"""Train the spiking 8x8 digit classifier of ``docs/digits.md``.

The network is ``pixels`` (64 inputs) -> ``hidden`` (LIF) -> ``output`` (10 LIF neurons), fed by the
regular spike trains of :func:`spikeforge.cli.encode.encode`; the class is the output neuron with
the most spikes, the lowest index on a tie.

Training is quantization-aware backpropagation through time with a surrogate gradient. The
forward pass *is* the golden model: integer weights in the ``w_width`` range and
:func:`spikeforge.sim.golden.lif_step` on the integer membrane, so the trained network is exactly
the one that runs on the array. The backward pass treats rounding, the floor of the shift-based
leak and saturation as the identity (straight-through) and the threshold step as a smooth bump (the
surrogate). Float "shadow" weights in integer units accumulate the updates; every forward pass
rounds and clips them.

Every gradient is computed from integer states and integer weights only, so a different BLAS
summation order on another machine perturbs the shadow weights by rounding noise far below the
half-unit that would change an integer weight: the same seed gives the same network.
"""

import importlib.resources
import os
import time

import numpy as np

from ..gen.network import Network, load_network, save_network
from ..gen.spike_io import write_npz
from ..sim.golden import lif_step, param_arrays
from ..sim.network_golden import run_network
from ..spec.errors import SpikeforgeError
from ..spec.files import atomic_paths
from ..spec.limits import check_int, w_range
from ..spec.params import NeuronParams
from .encode import PIXELS, encode

__all__ = [
    "STEPS",
    "CLASSES",
    "DEFAULT_SEED",
    "DEFAULT_EPOCHS",
    "SPLIT_SEED",
    "TEST_SIZE",
    "NET_FILE",
    "TEST_FILE",
    "HIDDEN_PARAMS",
    "OUTPUT_PARAMS",
    "load_split",
    "load_test_digits",
    "shipped_network",
    "train",
    "fit",
    "quantize",
    "surrogate",
    "count_loss",
    "lif_population",
    "save",
    "output_counts",
    "predict",
    "accuracy",
]

# Timesteps per image. 16 steps let a full-intensity pixel (16) fire on every step, so a pixel's
# spike count is its intensity.
STEPS = 16
CLASSES = 10
V_WIDTH = 16
W_WIDTH = 8
DEFAULT_SEED = 0
DEFAULT_EPOCHS = 30
DEFAULT_HIDDEN = 64
# The held-out split is fixed on its own seed so that every training seed is measured on the same
# digits, the ones shipped in data/digits_test.npz. 360 of 1797 is 20%.
SPLIT_SEED = 2025
TEST_SIZE = 360
NET_FILE = "digits_net.json"
TEST_FILE = "digits_test.npz"

# Subtractive reset keeps the charge above the threshold, so a spike count measures the input
# current without a dead zone; no refractory period for the same reason. decay [3] (1/8 per step)
# forgets the input of about eight steps ago. A threshold of 256 gives an int8 weight a resolution
# of 1/256 of a threshold and lets one weight reach half of it.
HIDDEN_PARAMS = NeuronParams(
    v_th=256,
    v_reset=0,
    v_rest=0,
    t_ref=0,
    bias=0,
    reset_mode="subtract",
    decay=(3,),
    v_width=V_WIDTH,
)
OUTPUT_PARAMS = HIDDEN_PARAMS

# Optimiser settings (Adam on weights measured in integer units, cosine learning-rate decay).
_LEARNING_RATE = 1.0
_BATCH = 64
_ADAM_BETAS = (0.9, 0.999)
_ADAM_EPS = 1e-8
# Softmax temperature on the output spike counts: counts of 0...16 become logits of 0...8.
_LOGIT_SCALE = 0.5
# Width of the surrogate: derivative 1 / (1 + a |v' - v_th| / v_th)^2 / v_th.
_SURROGATE_SHARPNESS = 4.0


# -- data -----------------------------------------------------------------------------------------


def _sklearn_digits():
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise SpikeforgeError(
            "training needs scikit-learn, which is not installed; "
            'install it with: pip install "spikeforge[train]"'
        ) from None
    digits = load_digits()
    return digits.data.astype(np.uint8), digits.target.astype(np.uint8)


def load_split():
    """The fixed train/test split of the scikit-learn digits (needs scikit-learn).

    Returns
    -------
    train_images, train_labels, test_images, test_labels, test_index
        Images ``(n, 64)`` uint8 in ``0 ... 16``, labels uint8, and the positions of the test
        digits in ``sklearn.datasets.load_digits()``.
    """
    images, labels = _sklearn_digits()
    order = np.random.default_rng(SPLIT_SEED).permutation(len(labels))
    test, train_ = np.sort(order[:TEST_SIZE]), order[TEST_SIZE:]
    return images[train_], labels[train_], images[test], labels[test], test


def _data_path(name):
    return importlib.resources.files("spikeforge.cli").joinpath("data", name)


def load_test_digits():
    """The held-out digits shipped with spikeforge: ``(images (360, 64) uint8, labels uint8)``."""
    with importlib.resources.as_file(_data_path(TEST_FILE)) as path:
        with np.load(path, allow_pickle=False) as archive:
            return archive["images"], archive["labels"]


def shipped_network():
    """The trained :class:`~spikeforge.gen.network.Network` shipped in ``spikeforge.cli/data``."""
    with importlib.resources.as_file(_data_path(NET_FILE)) as path:
        return load_network(path)


# -- the fixed-point forward pass of training ----------------------------------------------------


def _forward(w1, w2, spikes):
    """Run a batch through the integer network with the golden neuron step.

    ``w1`` and ``w2`` hold integer values (as float64, so that the matrix products use BLAS; every
    product is an exact integer far below 2**53). Returns the input spikes as float, and per layer
    the saturated pre-threshold membrane ``v'`` and the spikes, all shaped ``(B, T, N)``.
    """
    p1, p2 = param_arrays(HIDDEN_PARAMS), param_arrays(OUTPUT_PARAMS)
    s_in = spikes.astype(np.float64)
    batch, steps, _ = s_in.shape
    current1 = (s_in @ w1).astype(np.int64)
    v1 = np.zeros((batch, w1.shape[1]), np.int64)
    v2 = np.zeros((batch, CLASSES), np.int64)
    r1, r2 = np.zeros_like(v1), np.zeros_like(v2)
    u1 = np.zeros((batch, steps, w1.shape[1]))
    s1 = np.zeros_like(u1)
    u2 = np.zeros((batch, steps, CLASSES))
    s2 = np.zeros_like(u2)
    for t in range(steps):
        # The projection from an earlier population delivers in the same step (docs/network.md).
        v1, r1, spike1, _ = lif_step(v1, r1, current1[:, t], p1)
        s1[:, t] = spike1
        # Subtractive reset without refractoriness: v' = v_next + v_th on a spike, exactly.
        u1[:, t] = v1 + HIDDEN_PARAMS.v_th * spike1
        v2, r2, spike2, _ = lif_step(v2, r2, (s1[:, t] @ w2).astype(np.int64), p2)
        s2[:, t] = spike2
        u2[:, t] = v2 + OUTPUT_PARAMS.v_th * spike2
    return s_in, u1, s1, u2, s2


def _forward_float(w1, w2, spikes):
    """The same network in floating point: real weights, real leak ``v * decay``, no saturation.

    Returns the output spike counts ``(B, 10)``.
    """
    s_in = spikes.astype(np.float64)
    keep1 = 1.0 - HIDDEN_PARAMS.decay_ratio
    keep2 = 1.0 - OUTPUT_PARAMS.decay_ratio
    current1 = s_in @ w1
    v1 = np.zeros((s_in.shape[0], w1.shape[1]))
    v2 = np.zeros((s_in.shape[0], CLASSES))
    counts = np.zeros((s_in.shape[0], CLASSES), np.int64)
    for t in range(s_in.shape[1]):
        v1 = keep1 * v1 + current1[:, t]
        spike1 = v1 > HIDDEN_PARAMS.v_th
        v1 -= HIDDEN_PARAMS.v_th * spike1
        v2 = keep2 * v2 + spike1 @ w2
        spike2 = v2 > OUTPUT_PARAMS.v_th
        v2 -= OUTPUT_PARAMS.v_th * spike2
        counts += spike2
    return counts


def surrogate(u, v_th):
    """d spike / d v' of the smooth stand-in for the step ``v' > v_th``."""
    x = (u - v_th) / v_th
    return 1.0 / ((1.0 + _SURROGATE_SHARPNESS * np.abs(x)) ** 2 * v_th)


def count_loss(s2, labels):
    """Softmax cross-entropy of output spikes ``(B, T, 10)``: the summed loss and its gradient
    with respect to the spike counts, divided by the batch size."""
    batch = len(labels)
    logits = _LOGIT_SCALE * s2.sum(axis=1)
    logits -= logits.max(axis=1, keepdims=True)
    prob = np.exp(logits)
    prob /= prob.sum(axis=1, keepdims=True)
    rows = np.arange(batch)
    loss = float(-np.log(prob[rows, labels]).sum())
    d_count = prob
    d_count[rows, labels] -= 1.0
    d_count *= _LOGIT_SCALE / batch
    return loss, d_count


def _gradients(w1q, w2q, spikes, labels):
    """Cross-entropy loss of one batch and its gradients w.r.t. the integer weights."""
    s_in, u1, s1, u2, s2 = _forward(w1q, w2q, spikes)
    batch, steps, _ = s_in.shape
    loss, d_count = count_loss(s2, labels)
    # Backpropagation through time. The reset is left out of the gradient (a common choice that
    # trains better); d v'[t+1] / d v'[t] is the leak factor, the floor shift passing straight
    # through.
    keep1 = 1.0 - HIDDEN_PARAMS.decay_ratio
    keep2 = 1.0 - OUTPUT_PARAMS.decay_ratio
    g1 = np.zeros_like(w1q)
    g2 = np.zeros_like(w2q)
    du1_next = np.zeros((batch, w1q.shape[1]))
    du2_next = np.zeros((batch, CLASSES))
    for t in reversed(range(steps)):
        du2 = d_count * surrogate(u2[:, t], OUTPUT_PARAMS.v_th) + keep2 * du2_next
        g2 += s1[:, t].T @ du2
        du1 = (du2 @ w2q.T) * surrogate(u1[:, t], HIDDEN_PARAMS.v_th) + keep1 * du1_next
        g1 += s_in[:, t].T @ du1
        du1_next, du2_next = du1, du2
    return loss, g1, g2


def quantize(w):
    """Shadow weights rounded to the nearest integer and clipped to the ``w_width`` range."""
    lo, hi = w_range(W_WIDTH)
    return np.clip(np.round(w), lo, hi)


# -- training -------------------------------------------------------------------------------------


def train(seed=DEFAULT_SEED, epochs=DEFAULT_EPOCHS, hidden=DEFAULT_HIDDEN, subset=None, log=None):
    """Train the classifier and return it with a report.

    Parameters
    ----------
    seed : int
        Seeds the initial weights and the batch order; the test split does not depend on it.
    epochs : int
        Passes over the training digits, 1 ... 1000.
    hidden : int
        Size of the hidden population, 1 ... 1024.
    subset : int, optional
        Train on only the first ``subset`` training digits (for quick checks).
    log : callable, optional
        Called with one line of text after every epoch.

    Returns
    -------
    network : Network
        The trained network (fixed-point weights), evaluated with :func:`predict`.
    report : dict
        ``seed``, ``epochs``, ``hidden``, ``steps``, ``train_size``, ``test_size``,
        ``accuracy_fixed`` (the golden model on the held-out digits), ``accuracy_float`` (the same
        network with its real-valued weights in floating point), ``train_accuracy_fixed``,
        ``seconds`` (training time), ``test_index`` (the held-out digits in scikit-learn's order)
        and ``loss`` per epoch.
    """
    seed = check_int("seed", seed, 0, (1 << 32) - 1)
    epochs = check_int("epochs", epochs, 1, 1000)
    hidden = check_int("hidden", hidden, 1, 1024)
    train_x, train_y, test_x, test_y, test_index = load_split()
    if subset is not None:
        subset = check_int("subset", subset, 1, len(train_y))
        train_x, train_y = train_x[:subset], train_y[:subset]
    train_spikes = encode(train_x, STEPS)
    labels = train_y.astype(np.int64)

    rng = np.random.default_rng(seed)
    # Initial spread: about one threshold of input per step from the typical 4 active inputs, and
    # half that from the hidden layer.
    w1 = rng.normal(0.0, HIDDEN_PARAMS.v_th / np.sqrt(PIXELS * 4), (PIXELS, hidden))
    w2 = rng.normal(0.0, OUTPUT_PARAMS.v_th / np.sqrt(hidden * 2), (hidden, CLASSES))
    start = time.perf_counter()
    losses = fit([w1, w2], _gradients, train_spikes, labels, epochs, rng, log)
    seconds = time.perf_counter() - start

    net = _network(quantize(w1).astype(np.int64), quantize(w2).astype(np.int64))
    float_counts = _forward_float(w1, w2, encode(test_x, STEPS))
    report = {
        "seed": seed,
        "epochs": epochs,
        "hidden": hidden,
        "steps": STEPS,
        "train_size": len(train_y),
        "test_size": len(test_y),
        "accuracy_fixed": accuracy(net, test_x, test_y),
        "accuracy_float": float(np.mean(classify(float_counts) == test_y)),
        "train_accuracy_fixed": accuracy(net, train_x, train_y),
        "seconds": seconds,
        "test_index": test_index,
        "loss": losses,
    }
    return net, report


def fit(weights, gradients, spikes, labels, epochs, rng, log=None):
    """Train shadow weights in place: Adam with a cosine learning-rate decay over ``epochs``.

    Parameters
    ----------
    weights : list of ndarray
        Float shadow weights in integer units, updated in place.
    gradients : callable
        ``gradients(*quantized_weights, spikes, labels)`` returns the summed loss of a batch and
        the gradient of every weight array, in order.
    spikes, labels : ndarray
        Encoded training digits ``(n, T, 64)`` and their classes.
    epochs : int
    rng : numpy.random.Generator
        Draws the batch order of every epoch.
    log : callable, optional
        Called with one line of text after every epoch.

    Returns
    -------
    list of float
        The mean loss of every epoch.
    """
    moments = [[np.zeros_like(w) for w in weights] for _ in range(2)]
    beta1, beta2 = _ADAM_BETAS
    lo, hi = w_range(W_WIDTH)
    losses = []
    step = 0
    for epoch in range(epochs):
        rate = _LEARNING_RATE * 0.5 * (1.0 + np.cos(np.pi * epoch / epochs))
        order = rng.permutation(len(labels))
        total = 0.0
        for first in range(0, len(order), _BATCH):
            batch = order[first : first + _BATCH]
            loss, *grads = gradients(*(quantize(w) for w in weights), spikes[batch], labels[batch])
            total += loss
            step += 1
            for w, g, m, v in zip(weights, grads, *moments):
                m *= beta1
                m += (1.0 - beta1) * g
                v *= beta2
                v += (1.0 - beta2) * g * g
                w -= (
                    rate
                    * (m / (1.0 - beta1**step))
                    / (np.sqrt(v / (1.0 - beta2**step)) + _ADAM_EPS)
                )
                # Straight-through only inside the weight range: beyond it the shadow weight would
                # drift where no integer weight follows.
                np.clip(w, lo - 0.5, hi + 0.5, out=w)
        losses.append(total / len(labels))
        if log is not None:
            log(f"epoch {epoch + 1}/{epochs}: loss {losses[-1]:.4f}")
    return losses


def lif_population(name, size, p):
    """The JSON object of LIF population ``name`` of ``size`` neurons with parameters ``p``."""
    return {
        "name": name,
        "kind": "lif",
        "size": size,
        "v_th": p.v_th,
        "v_reset": p.v_reset,
        "v_rest": p.v_rest,
        "v_peak": p.v_peak,
        "t_ref": p.t_ref,
        "decay": list(p.decay),
        "reset_mode": p.reset_mode,
        "bias": p.bias,
    }


def _network(w1, w2):
    return Network.from_dict(
        {
            "format": "spikeforge-network/1",
            "v_width": V_WIDTH,
            "w_width": W_WIDTH,
            "populations": [
                {"name": "pixels", "kind": "input", "size": PIXELS},
                lif_population("hidden", w1.shape[1], HIDDEN_PARAMS),
                lif_population("output", CLASSES, OUTPUT_PARAMS),
            ],
            "projections": [
                {"from": "pixels", "to": "hidden", "weights": w1},
                {"from": "hidden", "to": "output", "weights": w2},
            ],
        }
    )


def save(net, directory):
    """Write ``digits_net.json`` and ``digits_test.npz`` (the held-out digits) to ``directory``.

    Returns the two paths. The files are deterministic; the test digits need scikit-learn.
    """
    _, _, test_x, test_y, test_index = load_split()
    os.makedirs(directory, exist_ok=True)
    net_path, test_path = output_paths(directory)
    # The test digits are renamed into place once the network is written: both or neither.
    with atomic_paths([test_path], "-o") as (temp,):
        write_npz(
            temp,
            {"images": test_x, "labels": test_y, "sklearn_index": test_index.astype(np.int16)},
        )
        save_network(net, net_path, npz=False, option="-o")
    return net_path, test_path


def output_paths(directory):
    """The paths of ``digits_net.json`` and ``digits_test.npz`` in ``directory``."""
    return os.path.join(directory, NET_FILE), os.path.join(directory, TEST_FILE)


# -- inference with the golden model --------------------------------------------------------------


def output_counts(net, images, T=STEPS):
    """Output spike counts ``(n, 10)`` of ``net`` for ``images`` with the golden model.

    ``net`` must have one 64-neuron input population and a LIF population named ``output``.
    """
    T = check_int("T", T, 1, 32)
    if net.n_inputs != PIXELS:
        raise SpikeforgeError(f"the digit network must have {PIXELS} inputs, not {net.n_inputs}")
    output = net.population("output")
    spikes = encode(images, T)
    if spikes.ndim == 2:
        spikes = spikes[None]
    return run_network(net, spikes).spikes[output.name].sum(axis=-2, dtype=np.int64)


def classify(counts):
    """Class of each row of output spike counts: the most spikes, the lowest index on a tie."""
    # np.argmax returns the first maximum: ties go to the lowest class index.
    return np.argmax(counts, axis=-1)


def predict(net, images, T=STEPS):
    """Classify ``images`` (``(n, 64)`` or ``(n, 8, 8)``, intensities 0 ... 16) with ``net``.

    The class is the output neuron with the most spikes over ``T`` steps (at most 32), the lowest
    index on a tie. Returns an int64 array ``(n,)``.
    """
    return classify(output_counts(net, images, T))


def accuracy(net, images, labels, T=STEPS):
    """Fraction of ``images`` that :func:`predict` classifies as ``labels``."""
    labels = np.asarray(labels)
    predicted = predict(net, images, T)
    if labels.shape != predicted.shape:
        raise SpikeforgeError(f"labels must have shape {predicted.shape}, not {labels.shape}")
    return float(np.mean(predicted == labels))
