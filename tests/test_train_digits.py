"""The trained digit classifier (cli/train_digits.py, cli/data/, docs/digits.md).

Needs scikit-learn, which the ``test`` extra installs. Default runtime about 15 s on two cores;
``--slow`` adds the full reproduction of the shipped network (about 30 s more).
"""

import os
import re
import sys

import numpy as np
import pytest

from spikeforge.cli import train_digits as td
from spikeforge.cli.encode import encode
from spikeforge.cli.main import main
from spikeforge.gen.network import Network, load_network
from spikeforge.spec.errors import SpikeforgeError

DATA = os.path.join(os.path.dirname(td.__file__), "data")
# The figures docs/digits.md reports for the shipped network: 351 of 360 held-out digits.
DOCUMENTED_CORRECT = 351


@pytest.fixture(scope="module")
def shipped():
    return td.shipped_network()


@pytest.fixture(scope="module")
def test_digits():
    return td.load_test_digits()


def test_shipped_network_shape(shipped):
    assert load_network(os.path.join(DATA, td.NET_FILE)) == shipped
    assert [(p.name, p.kind, p.size) for p in shipped.populations] == [
        ("pixels", "input", 64),
        ("hidden", "lif", 64),
        ("output", "lif", 10),
    ]
    assert (shipped.v_width, shipped.w_width) == (16, 8)
    assert [(p.source, p.target, p.recurrent) for p in shipped.projections] == [
        ("pixels", "hidden", False),
        ("hidden", "output", False),
    ]
    for pop in shipped.lif_populations:
        assert pop.params == td.HIDDEN_PARAMS
    assert os.path.getsize(os.path.join(DATA, td.NET_FILE)) < 32_000
    assert os.path.getsize(os.path.join(DATA, td.TEST_FILE)) < 32_000


def test_shipped_accuracy(shipped, test_digits):
    images, labels = test_digits
    assert images.shape == (td.TEST_SIZE, 64) and labels.shape == (td.TEST_SIZE,)
    # Every class is held out in numbers.
    assert np.bincount(labels, minlength=10).min() > 25
    predicted = td.predict(shipped, images)
    assert int(np.sum(predicted == labels)) == DOCUMENTED_CORRECT
    assert td.accuracy(shipped, images, labels) >= 0.93
    # At most 32 steps: the encoding keeps its rate, the network still classifies.
    assert td.accuracy(shipped, images, labels, T=32) >= 0.93


def test_trainer_forward_is_the_golden_model(shipped, test_digits):
    # The training forward pass and spikeforge.sim.golden.run_network give the same output
    # spikes, so the same predictions, on every held-out digit.
    images, _ = test_digits
    w1, w2 = (proj.weights.astype(np.float64) for proj in shipped.projections)
    *_, trainer_spikes = td._forward(w1, w2, encode(images, td.STEPS))
    counts = td.output_counts(shipped, images)
    assert np.array_equal(trainer_spikes.sum(axis=1).astype(np.int64), counts)
    assert np.array_equal(
        np.argmax(trainer_spikes.sum(axis=1), axis=1), td.predict(shipped, images)
    )


def test_ties_go_to_lowest_index(shipped):
    # An empty image makes no spikes anywhere: every count is 0 and class 0 wins the tie.
    assert td.output_counts(shipped, np.zeros((1, 64), int)).tolist() == [[0] * 10]
    assert td.predict(shipped, np.zeros((2, 8, 8), int)).tolist() == [0, 0]


def test_shipped_test_set_is_the_split(test_digits):
    images, labels = test_digits
    train_x, _, test_x, test_y, index = td.load_split()
    assert np.array_equal(images, test_x) and np.array_equal(labels, test_y)
    assert len(train_x) + len(test_x) == 1797
    from sklearn.datasets import load_digits

    digits = load_digits()
    assert np.array_equal(digits.data[index], images)
    assert np.array_equal(digits.target[index], labels)


def test_save_reproduces_shipped_files(shipped, tmp_path):
    net_path, test_path = td.save(shipped, tmp_path)
    for path, name in ((net_path, td.NET_FILE), (test_path, td.TEST_FILE)):
        with open(path, "rb") as new, open(os.path.join(DATA, name), "rb") as old:
            assert new.read() == old.read(), name


def test_short_training_is_deterministic_and_learns():
    net_a, report_a = td.train(seed=1, epochs=2, subset=200)
    net_b, report_b = td.train(seed=1, epochs=2, subset=200)
    net_c, _ = td.train(seed=2, epochs=2, subset=200)
    assert net_a == net_b
    assert net_a != net_c
    assert report_a["accuracy_fixed"] == report_b["accuracy_fixed"]
    assert report_a["train_size"] == 200 and report_a["test_size"] == td.TEST_SIZE
    # Chance is 10%.
    assert report_a["accuracy_fixed"] > 0.25
    assert report_a["accuracy_float"] > 0.25
    assert len(report_a["loss"]) == 2 and report_a["loss"][1] < report_a["loss"][0]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"epochs": 0}, r"epochs must be an integer in \[1, 1000\], not 0"),
        ({"seed": -1}, r"seed must be an integer in \[0, 4294967295\], not -1"),
        ({"hidden": 0}, r"hidden must be an integer in \[1, 1024\], not 0"),
        ({"subset": 0}, r"subset must be an integer in \[1, 1437\], not 0"),
    ],
)
def test_train_arguments(kwargs, message):
    with pytest.raises(TypeError, match=message):
        td.train(**kwargs)


def test_predict_errors(shipped, test_digits):
    images, labels = test_digits
    with pytest.raises(TypeError, match=r"T must be an integer in \[1, 32\], not 33"):
        td.predict(shipped, images, T=33)
    with pytest.raises(SpikeforgeError, match=r"labels must have shape \(360,\), not \(359,\)"):
        td.accuracy(shipped, images, labels[1:])
    small = Network.from_dict(
        {
            "format": "spikeforge-network/1",
            "v_width": 16,
            "w_width": 8,
            "populations": [
                {"name": "pixels", "kind": "input", "size": 4},
                {
                    "name": "output",
                    "kind": "lif",
                    "size": 10,
                    "v_th": 10,
                    "v_reset": 0,
                    "v_rest": 0,
                    "v_peak": 10,
                    "t_ref": 0,
                    "decay": [],
                    "bias": 0,
                    "reset_mode": "zero",
                },
            ],
            "projections": [{"from": "pixels", "to": "output", "weights": np.ones((4, 10), int)}],
        }
    )
    with pytest.raises(SpikeforgeError, match="the digit network must have 64 inputs, not 4"):
        td.predict(small, images)


def test_cli_short_run(tmp_path, capsys):
    assert main(["train-digits", "-o", str(tmp_path), "--epochs", "1", "--seed", "3"]) == 0
    out = capsys.readouterr().out
    assert "epoch 1/1: loss" in out
    assert "different from the one shipped with spikeforge" in out
    net = load_network(tmp_path / td.NET_FILE)
    images, labels = td.load_test_digits()
    assert f"{100 * td.accuracy(net, images, labels):.2f}% fixed point" in out
    with np.load(tmp_path / td.TEST_FILE) as archive:
        assert np.array_equal(archive["labels"], labels)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--epochs", "0"], r"--epochs must be an integer in \[1, 1000\], not 0"),
        (["--seed", "-2"], r"--seed must be an integer in \[0, 4294967295\], not -2"),
        (["--seed", "x"], r"argument --seed: invalid int value: 'x'"),
    ],
)
def test_cli_errors(argv, message, capsys):
    assert main(["train-digits", *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("spikeforge: error: ")
    assert re.search(message, err)


def test_cli_without_scikit_learn(tmp_path, capsys, monkeypatch):
    # A None entry in sys.modules makes the import fail as if the package were absent.
    monkeypatch.setitem(sys.modules, "sklearn", None)
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    assert main(["train-digits", "-o", str(tmp_path)]) == 2
    assert capsys.readouterr().err == (
        "spikeforge: error: training needs scikit-learn, which is not installed; install it "
        'with: pip install "spikeforge[train]"\n'
    )
    assert not os.listdir(tmp_path)


@pytest.mark.slow
def test_cli_reproduces_shipped_network(tmp_path, capsys):
    # The defaults reproduce the shipped files byte for byte.
    assert main(["train-digits", "-o", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "identical to the one shipped with spikeforge" in out
    for name in (td.NET_FILE, td.TEST_FILE):
        with open(tmp_path / name, "rb") as new, open(os.path.join(DATA, name), "rb") as old:
            assert new.read() == old.read(), name


@pytest.mark.slow
def test_full_training_report():
    net, report = td.train()
    assert net == td.shipped_network()
    assert report["accuracy_fixed"] == DOCUMENTED_CORRECT / td.TEST_SIZE
    assert report["accuracy_fixed"] >= 0.93
    assert abs(report["accuracy_fixed"] - report["accuracy_float"]) <= 0.02
    # "A few minutes at most" on a shared two-core machine.
    assert report["seconds"] < 180
