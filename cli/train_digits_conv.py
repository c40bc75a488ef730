"""Train the convolutional spiking 8x8 digit classifier of ``docs/digits.md``.

The network is ``pixels`` (input, shape ``[1, 8, 8]``) -> ``conv`` (a 3x3 ``conv2d`` projection
with padding 1 into ``channels`` feature maps of 8x8 LIF neurons) -> ``output`` (10 LIF neurons,
through a dense projection with a 2x2 input sum pool: ``docs/network.md``, "Convolutions"), fed
by the same spike trains and read by the same rule as the dense classifier of
:mod:`.train_digits`.

Training is the dense classifier's quantization-aware backpropagation through time
(:func:`.train_digits.fit`). The forward pass is the golden model's integer arithmetic written
as whole-array operations: the convolution's per-step input sums are the 9 shifted input planes
times the integer kernel (exact integers in float64), the pool is the sum of 2x2 blocks of
spikes, and :func:`spikeforge.sim.golden.lif_step` updates the integer membranes;
``tests/test_train_digits_conv.py`` checks that its spikes equal
:func:`spikeforge.sim.network_golden.run_network`'s on every held-out digit.
"""

import importlib.resources
import os
import time

import numpy as np

from ..gen.network import Network, load_network, save_network
from ..sim.golden import lif_step, param_arrays
from ..spec.limits import check_int
from .encode import PIXELS, encode
from .train_digits import (
    CLASSES,
    DEFAULT_SEED,
    HIDDEN_PARAMS,
    OUTPUT_PARAMS,
    STEPS,
    V_WIDTH,
    W_WIDTH,
    accuracy,
    count_loss,
    fit,
    lif_population,
    load_split,
    quantize,
    surrogate,
)

__all__ = [
    "NET_FILE",
    "DEFAULT_EPOCHS",
    "DEFAULT_CHANNELS",
    "KERNEL",
    "POOL",
    "shipped_network",
    "train",
    "save",
    "output_path",
]

NET_FILE = "digits_conv_net.json"
DEFAULT_EPOCHS = 30
DEFAULT_CHANNELS = 8
# The digits are one 8x8 plane.
SIDE = 8
# A 3x3 kernel with padding 1 keeps the 8x8 map; the 2x2 pool halves it before the dense layer.
KERNEL = 3
PADDING = 1
POOL = 2
POOLED = SIDE // POOL
TAPS = KERNEL * KERNEL


def shipped_network():
    """The trained conv :class:`~spikeforge.gen.network.Network` shipped in
    ``spikeforge.cli/data``."""
    path = importlib.resources.files("spikeforge.cli").joinpath("data", NET_FILE)
    with importlib.resources.as_file(path) as file:
        return load_network(file)


# -- the fixed-point forward pass of training ----------------------------------------------------


def _patches(spikes):
    """The kernel taps' views of the input: ``(B, T, 8 x 8, 9)`` float, tap ``ky * 3 + kx``
    of position ``(y, x)`` being pixel ``(y + ky - 1, x + kx - 1)``, 0 in the padding."""
    batch, steps, _ = spikes.shape
    planes = np.zeros((batch, steps, SIDE + 2 * PADDING, SIDE + 2 * PADDING))
    planes[:, :, PADDING:-PADDING, PADDING:-PADDING] = spikes.reshape(batch, steps, SIDE, SIDE)
    taps = [
        planes[:, :, ky : ky + SIDE, kx : kx + SIDE] for ky in range(KERNEL) for kx in range(KERNEL)
    ]
    return np.stack(taps, axis=-1).reshape(batch, steps, SIDE * SIDE, TAPS)


def _pool(s1):
    """Input sum pool of hidden spikes ``(B, C * 64)`` (C order) -> ``(B, C * 16)``."""
    batch = s1.shape[0]
    blocks = s1.reshape(batch, -1, POOLED, POOL, POOLED, POOL)
    return blocks.sum(axis=(3, 5)).reshape(batch, -1)


def _unpool(d):
    """The gradient of :func:`_pool`: each pooled value back to its 2x2 window."""
    batch = d.shape[0]
    planes = d.reshape(batch, -1, POOLED, 1, POOLED, 1)
    windows = np.broadcast_to(planes, (batch, planes.shape[1], POOLED, POOL, POOLED, POOL))
    return windows.reshape(batch, -1)


def _forward(kernel, w2, spikes):
    """Run a batch through the integer conv network with the golden neuron step.

    ``kernel`` ``(C, 9)`` and ``w2`` ``(C * 16, 10)`` hold integer values as float64: every sum
    is an exact integer far below 2**53. Returns the tap views of the input
    (:func:`_patches`), and per layer the saturated pre-threshold membrane ``v'`` and the
    spikes, ``(B, T, N)`` in the population's C order.
    """
    p1, p2 = param_arrays(HIDDEN_PARAMS), param_arrays(OUTPUT_PARAMS)
    patches = _patches(spikes)
    batch, steps = patches.shape[:2]
    channels = kernel.shape[0]
    hidden = channels * SIDE * SIDE
    # (B, T, positions, C) -> (B, T, C, positions): neuron (c, y, x) is c * 64 + y * 8 + x.
    current1 = (patches @ kernel.T).transpose(0, 1, 3, 2).reshape(batch, steps, hidden)
    current1 = current1.astype(np.int64)
    v1 = np.zeros((batch, hidden), np.int64)
    v2 = np.zeros((batch, CLASSES), np.int64)
    r1, r2 = np.zeros_like(v1), np.zeros_like(v2)
    u1 = np.zeros((batch, steps, hidden))
    s1 = np.zeros_like(u1)
    u2 = np.zeros((batch, steps, CLASSES))
    s2 = np.zeros_like(u2)
    for t in range(steps):
        # Both projections are feed-forward and deliver in the same step (docs/network.md).
        v1, r1, spike1, _ = lif_step(v1, r1, current1[:, t], p1)
        s1[:, t] = spike1
        # Subtractive reset without refractoriness: v' = v_next + v_th on a spike, exactly.
        u1[:, t] = v1 + HIDDEN_PARAMS.v_th * spike1
        v2, r2, spike2, _ = lif_step(v2, r2, (_pool(s1[:, t]) @ w2).astype(np.int64), p2)
        s2[:, t] = spike2
        u2[:, t] = v2 + OUTPUT_PARAMS.v_th * spike2
    return patches, u1, s1, u2, s2


def _forward_float(kernel, w2, spikes):
    """The same network in floating point: real weights, real leak, no saturation.

    Returns the output spike counts ``(B, 10)``.
    """
    patches = _patches(spikes)
    batch, steps = patches.shape[:2]
    current1 = (patches @ kernel.T).transpose(0, 1, 3, 2).reshape(batch, steps, -1)
    keep1 = 1.0 - HIDDEN_PARAMS.decay_ratio
    keep2 = 1.0 - OUTPUT_PARAMS.decay_ratio
    v1 = np.zeros((batch, current1.shape[2]))
    v2 = np.zeros((batch, CLASSES))
    counts = np.zeros((batch, CLASSES), np.int64)
    for t in range(steps):
        v1 = keep1 * v1 + current1[:, t]
        spike1 = v1 > HIDDEN_PARAMS.v_th
        v1 -= HIDDEN_PARAMS.v_th * spike1
        v2 = keep2 * v2 + _pool(spike1.astype(np.float64)) @ w2
        spike2 = v2 > OUTPUT_PARAMS.v_th
        v2 -= OUTPUT_PARAMS.v_th * spike2
        counts += spike2
    return counts


def _gradients(kernel, w2, spikes, labels):
    """Cross-entropy loss of one batch and its gradients w.r.t. the integer weights."""
    patches, u1, s1, u2, s2 = _forward(kernel, w2, spikes)
    batch, steps = patches.shape[:2]
    channels = kernel.shape[0]
    loss, d_count = count_loss(s2, labels)
    # Backpropagation through time as for the dense network (cli/train_digits.py): no gradient
    # through the reset, the leak factor from one step to the next.
    keep1 = 1.0 - HIDDEN_PARAMS.decay_ratio
    keep2 = 1.0 - OUTPUT_PARAMS.decay_ratio
    g2 = np.zeros_like(w2)
    du1 = np.zeros((batch, steps, s1.shape[2]))
    du1_next = np.zeros((batch, s1.shape[2]))
    du2_next = np.zeros((batch, CLASSES))
    for t in reversed(range(steps)):
        du2 = d_count * surrogate(u2[:, t], OUTPUT_PARAMS.v_th) + keep2 * du2_next
        g2 += _pool(s1[:, t]).T @ du2
        du1[:, t] = _unpool(du2 @ w2.T) * surrogate(u1[:, t], HIDDEN_PARAMS.v_th) + keep1 * du1_next
        du1_next, du2_next = du1[:, t], du2
    # A kernel weight's gradient sums over every position of its channel and every step.
    per_position = du1.reshape(batch * steps, channels, SIDE * SIDE)
    g_kernel = np.einsum("ncp,npk->ck", per_position, patches.reshape(batch * steps, -1, TAPS))
    return loss, g_kernel, g2


# -- training -------------------------------------------------------------------------------------


def train(
    seed=DEFAULT_SEED, epochs=DEFAULT_EPOCHS, channels=DEFAULT_CHANNELS, subset=None, log=None
):
    """Train the conv classifier and return it with a report.

    Parameters
    ----------
    seed : int
        Seeds the initial weights and the batch order; the test split does not depend on it.
    epochs : int
        Passes over the training digits, 1 ... 1000.
    channels : int
        Feature maps of the conv layer, 1 ... 16.
    subset : int, optional
        Train on only the first ``subset`` training digits (for quick checks).
    log : callable, optional
        Called with one line of text after every epoch.

    Returns
    -------
    network : Network
        The trained network, evaluated with :func:`.train_digits.predict`.
    report : dict
        As :func:`.train_digits.train`'s, with ``channels`` for ``hidden``.
    """
    seed = check_int("seed", seed, 0, (1 << 32) - 1)
    epochs = check_int("epochs", epochs, 1, 1000)
    channels = check_int("channels", channels, 1, 16)
    train_x, train_y, test_x, test_y, test_index = load_split()
    if subset is not None:
        subset = check_int("subset", subset, 1, len(train_y))
        train_x, train_y = train_x[:subset], train_y[:subset]
    train_spikes = encode(train_x, STEPS)
    labels = train_y.astype(np.int64)

    rng = np.random.default_rng(seed)
    # Initial spread: about one threshold of input per step from the typical 4 active taps of
    # 9, and half that from the pooled hidden layer, where a pooled position adds up to 4
    # spikes.
    kernel = rng.normal(0.0, HIDDEN_PARAMS.v_th / np.sqrt(4), (channels, TAPS))
    pooled = channels * POOLED * POOLED
    w2 = rng.normal(0.0, OUTPUT_PARAMS.v_th / np.sqrt(pooled * 2 * POOL), (pooled, CLASSES))
    start = time.perf_counter()
    losses = fit([kernel, w2], _gradients, train_spikes, labels, epochs, rng, log)
    seconds = time.perf_counter() - start

    net = _network(quantize(kernel).astype(np.int64), quantize(w2).astype(np.int64))
    float_counts = _forward_float(kernel, w2, encode(test_x, STEPS))
    report = {
        "seed": seed,
        "epochs": epochs,
        "channels": channels,
        "steps": STEPS,
        "train_size": len(train_y),
        "test_size": len(test_y),
        "accuracy_fixed": accuracy(net, test_x, test_y),
        "accuracy_float": float(np.mean(np.argmax(float_counts, axis=1) == test_y)),
        "train_accuracy_fixed": accuracy(net, train_x, train_y),
        "seconds": seconds,
        "test_index": test_index,
        "loss": losses,
    }
    return net, report


def _network(kernel, w2):
    """The network file's :class:`Network` of integer ``kernel`` ``(C, 9)`` and ``w2``."""
    channels = kernel.shape[0]
    conv = lif_population("conv", channels * SIDE * SIDE, HIDDEN_PARAMS)
    conv["shape"] = [channels, SIDE, SIDE]
    return Network.from_dict(
        {
            "format": "spikeforge-network/1",
            "v_width": V_WIDTH,
            "w_width": W_WIDTH,
            "populations": [
                {"name": "pixels", "kind": "input", "size": PIXELS, "shape": [1, SIDE, SIDE]},
                conv,
                lif_population("output", CLASSES, OUTPUT_PARAMS),
            ],
            "projections": [
                {
                    "from": "pixels",
                    "to": "conv",
                    "kind": "conv2d",
                    "out_channels": channels,
                    "kernel": KERNEL,
                    "padding": PADDING,
                    "weights": kernel.reshape(channels, 1, KERNEL, KERNEL),
                },
                {"from": "conv", "to": "output", "pool": POOL, "weights": w2},
            ],
        }
    )


def save(net, directory):
    """Write ``digits_conv_net.json`` to ``directory`` (made if missing) and return its path.

    The file is deterministic and keeps every weight inline.
    """
    os.makedirs(directory, exist_ok=True)
    path = output_path(directory)
    save_network(net, path, npz=False, option="-o")
    return path


def output_path(directory):
    """The path of ``digits_conv_net.json`` in ``directory``."""
    return os.path.join(directory, NET_FILE)
