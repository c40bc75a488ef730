"""The trained convolutional digit classifier (cli/train_digits_conv.py, docs/digits.md).

Needs scikit-learn, which the ``test`` extra installs. Default runtime about 10 s on two cores;
``--slow`` adds the full reproduction of the shipped network (about 30 s more).
"""

import os
import re

import numpy as np
import pytest

from spikeforge.cli import train_digits as td
from spikeforge.cli import train_digits_conv as tc
from spikeforge.cli.encode import encode
from spikeforge.cli.main import main
from spikeforge.gen.network import load_network
from spikeforge.gen.network_conv import ConvProjection
from spikeforge.sim.network_golden import run_network

DATA = os.path.join(os.path.dirname(tc.__file__), "data")
# The figure docs/digits.md reports for the shipped conv network: 352 of 360 held-out digits.
DOCUMENTED_CORRECT = 352


@pytest.fixture(scope="module")
def shipped():
    return tc.shipped_network()


@pytest.fixture(scope="module")
def test_digits():
    return td.load_test_digits()


def test_shipped_network_shape(shipped):
    assert load_network(os.path.join(DATA, tc.NET_FILE)) == shipped
    assert [(p.name, p.kind, p.size, p.shape) for p in shipped.populations] == [
        ("pixels", "input", 64, (1, 8, 8)),
        ("conv", "lif", 512, (8, 8, 8)),
        ("output", "lif", 10, None),
    ]
    assert (shipped.v_width, shipped.w_width) == (16, 8)
    conv, dense = shipped.projections
    assert isinstance(conv, ConvProjection) and isinstance(dense, ConvProjection)
    assert (conv.kind, conv.source, conv.target, conv.recurrent) == (
        "conv2d",
        "pixels",
        "conv",
        False,
    )
    g = conv.geometry
    assert (g.kernel, g.padding, g.stride, g.pool, g.out_shape) == (
        (3, 3),
        (1, 1),
        (1, 1),
        (1, 1),
        (8, 8, 8),
    )
    assert conv.weights.shape == (8, 1, 3, 3)
    assert (dense.kind, dense.source, dense.target, dense.geometry.pool) == (
        "dense",
        "conv",
        "output",
        (2, 2),
    )
    assert dense.weights.shape == (8 * 4 * 4, 10)
    for pop in shipped.lif_populations:
        assert pop.params == td.HIDDEN_PARAMS
    assert os.path.getsize(os.path.join(DATA, tc.NET_FILE)) < 16_000


def test_shipped_accuracy(shipped, test_digits):
    images, labels = test_digits
    predicted = td.predict(shipped, images)
    assert int(np.sum(predicted == labels)) == DOCUMENTED_CORRECT
    assert td.accuracy(shipped, images, labels) >= 0.97


def test_trainer_forward_is_the_golden_model(shipped, test_digits):
    # The training forward pass and run_network give the same spikes of both layers on every
    # held-out digit, so what was trained is what the golden model (and the array) runs.
    images, _ = test_digits
    conv, dense = shipped.projections
    kernel = conv.weights.reshape(8, 9).astype(np.float64)
    spikes = encode(images, td.STEPS)
    _, _, s1, _, s2 = tc._forward(kernel, dense.weights.astype(np.float64), spikes)
    golden = run_network(shipped, spikes)
    assert golden.spikes["conv"].any() and golden.spikes["output"].any()
    assert np.array_equal(s1.astype(bool), golden.spikes["conv"])
    assert np.array_equal(s2.astype(bool), golden.spikes["output"])


def test_trainer_sums_match_the_unrolled_network():
    # The trainer's convolution and pool, on random weights and random spikes (padding at every
    # border, every pool window), give the input sums of the spec's unrolled matrices: the sums
    # agree, not only the spikes of one network.
    rng = np.random.default_rng(5)
    kernel = rng.integers(-128, 128, (3, 9))
    w2 = rng.integers(-128, 128, (3 * 16, 10))
    net = tc._network(kernel, w2)
    spikes = rng.random((4, 2, 64)) < 0.5
    sums = (tc._patches(spikes) @ kernel.T).transpose(0, 1, 3, 2).reshape(4, 2, -1)
    assert np.array_equal(sums, spikes.astype(np.int64) @ net.projections[0].dense())
    hidden = rng.random((4, 3 * 64)) < 0.5
    assert np.array_equal(
        tc._pool(hidden.astype(np.int64)) @ w2,
        hidden.astype(np.int64) @ net.projections[1].dense(),
    )


def test_short_training_is_deterministic_and_learns():
    net_a, report_a = tc.train(seed=1, epochs=2, channels=4, subset=200)
    net_b, report_b = tc.train(seed=1, epochs=2, channels=4, subset=200)
    net_c, _ = tc.train(seed=2, epochs=2, channels=4, subset=200)
    assert net_a == net_b
    assert net_a != net_c
    assert net_a.population("conv").shape == (4, 8, 8)
    assert report_a["accuracy_fixed"] == report_b["accuracy_fixed"]
    assert report_a["train_size"] == 200 and report_a["channels"] == 4
    # Chance is 10%.
    assert report_a["accuracy_fixed"] > 0.2
    assert len(report_a["loss"]) == 2 and report_a["loss"][1] < report_a["loss"][0]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"epochs": 0}, r"epochs must be an integer in \[1, 1000\], not 0"),
        ({"seed": -1}, r"seed must be an integer in \[0, 4294967295\], not -1"),
        ({"channels": 0}, r"channels must be an integer in \[1, 16\], not 0"),
        ({"channels": 17}, r"channels must be an integer in \[1, 16\], not 17"),
        ({"subset": 1438}, r"subset must be an integer in \[1, 1437\], not 1438"),
    ],
)
def test_train_arguments(kwargs, message):
    with pytest.raises(TypeError, match=message):
        tc.train(**kwargs)


def test_cli_short_run(tmp_path, capsys):
    argv = ["train-digits", "--conv", "-o", str(tmp_path), "--epochs", "1", "--channels", "2"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "epoch 1/1: loss" in out
    assert "different from the one shipped with spikeforge" in out
    assert os.listdir(tmp_path) == [tc.NET_FILE]
    net = load_network(tmp_path / tc.NET_FILE)
    assert net.population("conv").shape == (2, 8, 8)
    images, labels = td.load_test_digits()
    assert f"{100 * td.accuracy(net, images, labels):.2f}% fixed point" in out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--conv", "--epochs", "0"], r"--epochs must be an integer in \[1, 1000\], not 0"),
        (["--conv", "--channels", "0"], r"--channels must be an integer in \[1, 16\], not 0"),
        (["--conv", "--channels", "17"], r"--channels must be an integer in \[1, 16\], not 17"),
        (["--channels", "4"], r"--channels needs --conv: the dense classifier has no channels"),
    ],
)
def test_cli_errors(argv, message, tmp_path, capsys):
    assert main(["train-digits", "-o", str(tmp_path), *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("spikeforge: error: ")
    assert re.search(message, err)
    assert not os.listdir(tmp_path)


@pytest.mark.slow
def test_cli_reproduces_shipped_network(tmp_path, capsys):
    # The defaults reproduce the shipped file byte for byte, and the documented figures.
    assert main(["train-digits", "--conv", "-o", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "identical to the one shipped with spikeforge" in out
    assert f"{100 * DOCUMENTED_CORRECT / td.TEST_SIZE:.2f}% fixed point" in out
    with (
        open(tmp_path / tc.NET_FILE, "rb") as new,
        open(os.path.join(DATA, tc.NET_FILE), "rb") as old,
    ):
        assert new.read() == old.read()
