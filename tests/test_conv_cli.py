"""Convolutional networks on the command line: the hardware commands compile them to the array
(kernel walks, ``docs/array.md``), `spikeforge simulate` writes the populations' shapes, and
`spikeforge bench --parts conv` runs the golden model's speed measurement (``docs/network.md``,
"Convolutions")."""

import json

import numpy as np
import pytest
from conv_cases import lif

from spikeforge.cli.main import main
from spikeforge.gen.compile import compile_network
from spikeforge.gen.network import FORMAT, Network, save_network
from spikeforge.gen.spike_io import load_outputs, save_outputs
from spikeforge.sim.rtl import require_or_skip
from spikeforge.spec.errors import SpikeforgeError


def conv_dict():
    """inp 2x4x4 -> conv 3x3 -> c 3x2x2 -> pooled dense -> out 2 (unshaped)."""
    rng = np.random.default_rng(1)
    return {
        "format": FORMAT,
        "v_width": 16,
        "w_width": 8,
        "populations": [
            {"name": "inp", "kind": "input", "size": 32, "shape": [2, 4, 4]},
            lif("c", [3, 2, 2], v_th=10),
            lif("out", [2], v_th=10),
        ],
        "projections": [
            {
                "from": "inp",
                "to": "c",
                "kind": "conv2d",
                "out_channels": 3,
                "kernel": 3,
                "weights": rng.integers(0, 9, (3, 2, 3, 3)).tolist(),
            },
            {
                "from": "c",
                "to": "out",
                "kind": "dense",
                "pool": 2,
                "weights": rng.integers(0, 9, (3, 2)).tolist(),
            },
        ],
    }


@pytest.fixture
def conv_files(tmp_path):
    """The conv network's JSON file and 6 steps of input spikes."""
    net_path = tmp_path / "conv.json"
    save_network(Network.from_dict(conv_dict()), net_path, npz=False)
    spikes_path = tmp_path / "in.npy"
    np.save(spikes_path, (np.random.default_rng(2).random((6, 32)) < 0.5).astype(np.uint8))
    return net_path, spikes_path


def test_compile_lays_out_kernels_and_unrolls_pooled_dense():
    """The conv projection keeps its kernel once per lane and gets a kernel walk; the pooled
    dense projection is stored as its unrolled matrix."""
    net = Network.from_dict(conv_dict())
    plan = compile_network(net, 2)
    conv, pooled = plan.projections
    assert conv.conv is not None and pooled.conv is None
    kernel_words = 3 * 2 * 3 * 3
    assert pooled.weight_base == kernel_words
    # 12 source neurons of c (its pooled positions repeated over each 2x2 window), 1 row of
    # 2 targets over 2 lanes each.
    assert plan.weights.shape == (2, kernel_words + 12)
    np.testing.assert_array_equal(plan.weights[0, :kernel_words], plan.weights[1, :kernel_words])
    assert sorted(plan.weights[0, :kernel_words]) == sorted(net.projections[0].weights.ravel())


def test_simulate_rtl_equals_golden(conv_files, tmp_path):
    """`spikeforge simulate --backend icarus` runs the conv network bit-exact with golden."""
    require_or_skip("icarus")
    net, spikes = conv_files
    outs = {}
    for backend in ("golden", "icarus"):
        outs[backend] = tmp_path / f"{backend}.npz"
        argv = ["simulate", str(net), "--input", str(spikes), "--backend", backend, "--lanes", "2"]
        if backend == "golden":
            argv = argv[:-2]
        assert main([*argv, "-o", str(outs[backend])]) == 0
    golden, rtl = load_outputs(outs["golden"]), load_outputs(outs["icarus"])
    for name in golden.spikes:
        np.testing.assert_array_equal(rtl.spikes[name], golden.spikes[name])
    assert rtl.spikes["c"].any() and rtl.spikes["out"].any()
    assert rtl.shapes == golden.shapes == {"c": (3, 2, 2)}


def test_simulate_writes_shapes(conv_files, tmp_path):
    """The result carries shape_<population> for the shaped LIF population only, and
    load_outputs reads it back."""
    net, spikes = conv_files
    out = tmp_path / "o.npz"
    assert main(["simulate", str(net), "--input", str(spikes), "-o", str(out)]) == 0
    with np.load(out) as archive:
        assert sorted(archive.files) == ["shape_c", "spikes_c", "spikes_out"]
        assert archive["shape_c"].dtype == np.int64
        assert archive["shape_c"].tolist() == [3, 2, 2]
    run = load_outputs(out)
    assert run.shapes == {"c": (3, 2, 2)}
    assert run.spikes["c"].shape == (6, 12)


def test_load_outputs_checks_shapes(tmp_path):
    path = tmp_path / "bad.npz"
    save_outputs(path, {"c": np.zeros((2, 12))}, shapes={"c": (3, 2, 3)})
    with pytest.raises(SpikeforgeError, match=r"shape_c \[3, 2, 3\] does not match the 12 "):
        load_outputs(path)
    save_outputs(path, {"c": np.zeros((2, 12))}, shapes={"d": (3, 2, 2)})
    with pytest.raises(SpikeforgeError, match=r"bad.npz' has shape_d but no spikes_d$"):
        load_outputs(path)
    for bad in ((12,), (3, 0, 4), (1, 2, 3, 2)):
        save_outputs(path, {"c": np.zeros((2, 12))}, shapes={"c": bad})
        with pytest.raises(SpikeforgeError, match=r"shape_c must be 2 or 3 positive integers "):
            load_outputs(path)


def test_bench_conv_part(tmp_path, capsys):
    """`spikeforge bench --parts conv` (quick: one short batch) records the golden model's
    samples/s and every population's firing rate."""
    out = tmp_path / "results.json"
    argv = ["bench", "--quick", "--parts", "conv", "--doc", "none", "-o", str(out)]
    assert main(argv) == 0
    conv = json.loads(out.read_text())["conv"]
    assert conv["batch"] == 64 and conv["steps"] == 20 and conv["batches"] == 1
    assert conv["samples_per_s"] > 0 and conv["cpu_samples_per_s"] > 0
    assert sorted(conv["rates"]) == ["c1", "c2", "c3", "d1", "d2", "inp"]
    assert all(0 < rate < 1 for rate in conv["rates"].values())
    out = capsys.readouterr().out
    assert conv["conv_path"] == "native"
    assert "conv: golden NIR CNN (native conv sums), batch 64 x 20 steps, median of 1: " in out
    # The tables printed with --doc none show the figure against its goal.
    assert "### Convolution golden model" in out
    assert (
        f"| 64 x 20 | {conv['samples_per_s']:.1f} | {conv['cpu_samples_per_s']:.1f} | >= 100 |"
        in out
    )
