"""``spikeforge simulate``: outputs, plots, one-line errors with exit status 2, progress on a
terminal."""

import io
import json
import re
import sys

import numpy as np
import pytest
from network_cases import random_network, random_spikes

from spikeforge.cli.main import main
from spikeforge.gen.network import save_network
from spikeforge.gen.spike_io import NetworkRun
from spikeforge.sim import backends
from spikeforge.sim.network_golden import run_network


@pytest.fixture
def files(tmp_path):
    rng = np.random.default_rng(21)
    net = random_network(rng, n_lif=2, recurrent=True, max_size=20)
    save_network(net, tmp_path / "net.json")
    spikes = random_spikes(rng, net, 30, activity=0.4)
    np.save(tmp_path / "in.npy", spikes)
    return net, spikes, tmp_path


def simulate(capsys, *args):
    status = main(["simulate", *map(str, args)])
    out, err = capsys.readouterr()
    return status, out, err


def test_simulate_writes_outputs(files, capsys):
    net, spikes, folder = files
    status, out, err = simulate(
        capsys, folder / "net.json", "--input", folder / "in.npy", "-o", folder / "out.npz"
    )
    assert (status, err) == (0, "")
    assert out.startswith(f"wrote {folder / 'out.npz'}: golden, 30 timesteps, spikes: ")
    expected = run_network(net, spikes, trace=True)
    with np.load(folder / "out.npz") as archive:
        assert archive.files == [f"spikes_{p.name}" for p in net.lif_populations]
        for pop in net.lif_populations:
            assert np.array_equal(archive[f"spikes_{pop.name}"], expected.spikes[pop.name])

    batch = np.stack([spikes, spikes[::-1]])
    np.save(folder / "batch.npy", batch)
    status, out, _ = simulate(
        capsys,
        folder / "net.json",
        "--input",
        folder / "batch.npy",
        "--backend",
        "golden",
        "-o",
        folder / "traced.npz",
        "--trace",
        "--plot",
        folder / "run.png",
    )
    assert status == 0 and "30 timesteps x 2 runs" in out and f"wrote {folder / 'run.png'}" in out
    expected = run_network(net, batch, trace=True)
    with np.load(folder / "traced.npz") as archive:
        for pop in net.lif_populations:
            assert np.array_equal(archive[f"spikes_{pop.name}"], expected.spikes[pop.name])
            assert np.array_equal(archive[f"v_{pop.name}"], expected.v[pop.name])
        assert "cycles" not in archive.files
    assert (folder / "run.png").read_bytes()[:4] == b"\x89PNG"


def test_hardware_backend_is_plotted_over_golden(files, capsys, monkeypatch):
    """A back-end other than golden keeps its cycles and is drawn over a golden run."""
    net, spikes, folder = files
    calls = []

    def fake(net, spikes, trace, **options):
        calls.append(trace)
        run = run_network(net, spikes, trace)
        return NetworkRun(spikes=run.spikes, v=run.v, cycles=np.full(len(spikes), 7, np.int64))

    monkeypatch.setitem(backends.BACKENDS, "fake", fake)
    status, out, err = simulate(
        capsys,
        folder / "net.json",
        "--input",
        folder / "in.npy",
        "--backend",
        "fake",
        "-o",
        folder / "hw.npz",
        "--plot",
        folder / "hw.png",
    )
    assert (status, err) == (0, "") and calls == [True]
    with np.load(folder / "hw.npz") as archive:
        assert archive["cycles"].tolist() == [7] * 30
        assert not any(name.startswith("v_") for name in archive.files)
    assert (folder / "hw.png").stat().st_size > 1000


def write(path, text):
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    "case, message",
    [
        ("missing_network", "network file '.*nope.json' not found"),
        ("bad_json", ".*broken.json: line 1 column 2: invalid JSON \\(Expecting property name "),
        ("bad_network", "w_width: must be an integer in \\[2, 16\\], not 99"),
        ("missing_input", "input: file '.*none.npy' not found"),
        (
            "wrong_width",
            "input: shape \\(30, 1\\) has 1 columns, the network has n_in=\\d+ input neurons",
        ),
        ("not_binary", "input: values must be 0 or 1, found 3 at index \\(0, 0\\)"),
        ("float_input", "input: dtype float64 is not an integer type"),
        ("backend", "backend must be one of golden, amaranth, verilator, icarus, not 'spice'"),
        ("no_input_option", "simulate: the following arguments are required: --input"),
    ],
)
def test_errors_are_one_line(files, capsys, case, message):
    net, spikes, folder = files
    network, inputs, extra = folder / "net.json", folder / "in.npy", []
    if case == "missing_network":
        network = folder / "nope.json"
    elif case == "bad_json":
        network = write(folder / "broken.json", "{,}")
    elif case == "bad_network":
        d = json.loads((folder / "net.json").read_text())
        d["w_width"] = 99
        network = write(folder / "bad.json", json.dumps(d))
    elif case == "missing_input":
        inputs = folder / "none.npy"
    elif case == "wrong_width":
        np.save(inputs, np.zeros((30, 1), np.uint8))
    elif case == "not_binary":
        np.save(inputs, np.full(spikes.shape, 3, np.int8))
    elif case == "float_input":
        np.save(inputs, spikes.astype(float))
    elif case == "backend":
        extra = ["--backend", "spice"]
    args = [network, "-o", folder / "out.npz", *extra]
    if case != "no_input_option":
        args += ["--input", inputs]
    status, out, err = simulate(capsys, *args)
    assert status == 2 and out == ""
    assert err.count("\n") == 1
    assert err.startswith("spikeforge: error: ")
    assert re.match(message, err[len("spikeforge: error: ") :]), err
    assert not (folder / "out.npz").exists()


class FakeTerminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_is_shown_on_a_terminal_only(files, capsys, monkeypatch):
    net, spikes, folder = files
    monkeypatch.setitem(
        backends.BACKENDS,
        "fake",
        lambda net, spikes, trace, **options: run_network(net, spikes, trace),
    )
    args = [folder / "net.json", "--input", folder / "in.npy", "--backend", "fake"]
    args += ["-o", folder / "hw.npz", "--plot", folder / "hw.png"]
    assert simulate(capsys, *args)[::2] == (0, "")
    terminal = FakeTerminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert simulate(capsys, *args)[0] == 0
    text = terminal.getvalue()
    # The run, the golden run drawn under it; a newline at the end.
    assert text.startswith(f"\rsimulate {folder / 'net.json'}: [") and text.endswith("\n")
    assert text.count("\n") == 1
    assert re.findall(r"\] (\d/\d) ([a-z -]+) \(", text) == [
        ("0/2", "fake back-end"),
        ("1/2", "golden model for the plot"),
        ("2/2", "done"),
    ]
