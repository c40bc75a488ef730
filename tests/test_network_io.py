"""Input spike files, result files, back-end registry and plots."""

import re

import numpy as np
import pytest
from network_cases import random_network, random_spikes

from spikeforge.cli.plot import plot_run
from spikeforge.gen.spike_io import (
    NetworkRun,
    load_input_spikes,
    load_outputs,
    save_outputs,
    write_npz,
)
from spikeforge.sim.backends import BACKENDS, get_backend, simulate
from spikeforge.sim.network_golden import run_network
from spikeforge.spec.errors import SpikeforgeError


class _Net:
    n_inputs = 64


BAD_INPUTS = [
    (
        np.zeros((10, 5), np.int8),
        "input: shape (10, 5) has 5 columns, the network has n_in=64 input neurons",
    ),
    (np.zeros(64, np.int8), "input: shape (64,) must be (T, n_in) or (B, T, n_in)"),
    (
        np.zeros((1, 2, 3, 64), np.int8),
        "input: shape (1, 2, 3, 64) must be (T, n_in) or (B, T, n_in)",
    ),
    (np.zeros((0, 64), np.int8), "input: shape (0, 64) has no timesteps or no batch entries"),
    (np.zeros((0, 3, 64), np.int8), "input: shape (0, 3, 64) has no timesteps or no batch"),
    (np.zeros((3, 64)), "input: dtype float64 is not an integer type; spikes are 0/1 integers"),
    (
        np.array([[0] * 63 + [2]] * 2, np.int64),
        "input: values must be 0 or 1, found 2 at index (0, 63)",
    ),
    (
        np.full((2, 2, 64), -1, np.int16),
        "input: values must be 0 or 1, found -1 at index (0, 0, 0)",
    ),
]


@pytest.mark.parametrize("array, message", BAD_INPUTS, ids=[m[7:40] for _, m in BAD_INPUTS])
def test_bad_input_array(array, message):
    with pytest.raises(SpikeforgeError, match="^" + re.escape(message)):
        load_input_spikes(array, _Net())


def test_input_files(tmp_path):
    spikes = (np.random.default_rng(0).random((2, 7, 64)) < 0.3).astype(np.int32)
    np.save(tmp_path / "a.npy", spikes)
    write_npz(tmp_path / "named.npz", {"other": spikes[:, :, :3], "spikes": spikes})
    write_npz(tmp_path / "single.npz", {"x": spikes[0]})
    write_npz(tmp_path / "two.npz", {"x": spikes[0], "y": spikes[1]})
    (tmp_path / "junk.npy").write_bytes(b"\x93NUMPY garbage")
    for name, expected in [("a.npy", spikes), ("named.npz", spikes), ("single.npz", spikes[0])]:
        got = load_input_spikes(tmp_path / name, _Net())
        assert got.dtype == np.uint8 and np.array_equal(got, expected)
    assert load_input_spikes(spikes.astype(bool), _Net()).dtype == np.uint8
    errors = [
        ("two.npz", "input: '.*two.npz' has no array 'spikes' \\(it has: x, y\\)$"),
        ("missing.npy", "input: file '.*missing.npy' not found$"),
        ("a.txt", "input: file must be .npy or .npz, not '.*a.txt'$"),
        ("junk.npy", "input: cannot read '.*junk.npy' as a NumPy file \\("),
    ]
    for name, pattern in errors:
        with pytest.raises(SpikeforgeError, match="^" + pattern):
            load_input_spikes(str(tmp_path / name), _Net())


def test_outputs_round_trip_and_deterministic(tmp_path):
    rng = np.random.default_rng(3)
    net = random_network(rng, n_lif=2)
    run = run_network(net, random_spikes(rng, net, 12, batch=3), trace=True)
    run.cycles = np.arange(36, dtype=np.int64).reshape(3, 12)
    run.save(tmp_path / "a.npz")
    save_outputs(tmp_path / "b.npz", run.spikes, run.v, run.cycles)
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()
    with np.load(tmp_path / "a.npz") as archive:
        expected = (
            [f"spikes_{p.name}" for p in net.lif_populations]
            + [f"v_{p.name}" for p in net.lif_populations]
            + ["cycles"]
        )
        assert archive.files == expected
        assert archive["cycles"].dtype == np.int64
        for pop in net.lif_populations:
            assert archive[f"spikes_{pop.name}"].dtype == np.uint8
            assert archive[f"v_{pop.name}"].dtype == np.int32
    back = load_outputs(tmp_path / "a.npz")
    assert list(back.spikes) == list(run.spikes)
    for name in run.spikes:
        assert np.array_equal(back.spikes[name], run.spikes[name])
        assert np.array_equal(back.v[name], run.v[name])
    assert np.array_equal(back.cycles, run.cycles)
    write_npz(tmp_path / "odd.npz", {"spikes_a": np.zeros((2, 2)), "w": np.zeros(1)})
    write_npz(tmp_path / "empty.npz", {"cycles": np.zeros(2)})
    for name, pattern in [
        (
            "odd.npz",
            "has an unknown array 'w'; allowed are spikes_<name>, v_<name>, shape_<name>, cycles$",
        ),
        ("empty.npz", "has no spikes_<population> array$"),
        ("none.npz", "file '.*none.npz' not found$"),
        ("x.npy", "file must be .npz, not '.*x.npy'$"),
    ]:
        with pytest.raises(SpikeforgeError, match="^result: .*" + pattern):
            load_outputs(tmp_path / name)


def test_backend_registry():
    assert BACKENDS["golden"] is run_network
    rng = np.random.default_rng(4)
    net = random_network(rng)
    spikes = random_spikes(rng, net, 5)
    run = simulate(net, spikes, "golden", trace=True)
    assert isinstance(run, NetworkRun) and run.cycles is None and set(run.v) == set(run.spikes)
    with pytest.raises(
        SpikeforgeError,
        match=r"^backend must be one of golden, amaranth, verilator, "
        r"icarus, not 'verilog'$",
    ):
        get_backend("verilog")


def test_plot_run(tmp_path):
    rng = np.random.default_rng(8)
    net = random_network(rng, n_lif=2, recurrent=True)
    spikes = random_spikes(rng, net, 40, batch=2, activity=0.4)
    golden = run_network(net, spikes, trace=True)
    flipped = NetworkRun(
        spikes={k: v.copy() for k, v in golden.spikes.items()},
        v={k: v + 1 for k, v in golden.v.items()},
    )
    name = net.lif_populations[0].name
    flipped.spikes[name][0, 5, 0] ^= 1
    plot_run(tmp_path / "alone.png", run_network(net, spikes))
    plot_run(tmp_path / "over.png", flipped, reference=golden, title="test")
    for picture in ("alone.png", "over.png"):
        assert (tmp_path / picture).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    other = NetworkRun(spikes={"zzz": golden.spikes[name]})
    with pytest.raises(SpikeforgeError, match=r"^plot: the reference has populations \['zzz'\]"):
        plot_run(tmp_path / "bad.png", golden, reference=other)
