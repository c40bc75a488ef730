"""The NIR paper's recurrent Braille network (``docs/nir.md``, "The NIR paper's recurrent
network"): the graph of ``tests/braille_rnn.py``, written with ``nir`` as snnTorch exports it, in
both of the paper's variants (zero reset with biases, subtract reset without), imported with
``--from snntorch``; its report at the default widths, its float reference against snnTorch's
equations, and the network bit-exact on the RTL back-ends. Runtime about 45 s, 30 s of it the
Verilator build (cached afterwards)."""

import json

import nir
import numpy as np
import pytest
from braille_rnn import DT, N_OUT, VARIANTS, braille_graph, input_spikes, snntorch_spikes

from spikeforge.cli.main import main
from spikeforge.gen.nir_import import import_nir
from spikeforge.sim.quant_report import simulate_float

# The report's input: 4 samples of 100 steps (the RTL runs take the first 3 x 30).
BATCH, STEPS = 4, 100


RESETS = sorted(VARIANTS)


@pytest.fixture(scope="module")
def variant(tmp_path_factory):
    """``variant(reset)``: the folder of that variant's graph ``g.nir`` and input ``in.npy``."""
    folders = {}

    def get(reset):
        if reset not in folders:
            folder = tmp_path_factory.mktemp(f"braille_{reset}")
            nir.write(folder / "g.nir", braille_graph(reset))
            np.save(folder / "in.npy", input_spikes(BATCH, STEPS, seed=1))
            folders[reset] = folder
        return folders[reset]

    return get


def run_import(capsys, reset, folder):
    status = main(
        [
            "import",
            str(folder / "g.nir"),
            "--from",
            "snntorch",
            "--reset-mode",
            reset,
            "--reset-timing",
            "same",
            "--input",
            str(folder / "in.npy"),
            "-o",
            str(folder / "net.json"),
            "-r",
            str(folder / "report.json"),
        ]
    )
    out, err = capsys.readouterr()
    assert status == 0, err
    return out, err, json.loads((folder / "report.json").read_text())


@pytest.mark.parametrize("reset", RESETS)
def test_graph_is_the_papers_architecture(reset, variant):
    folder = variant(reset)
    v = VARIANTS[reset]
    graph = nir.read(folder / "g.nir")
    kinds = {name: type(node).__name__ for name, node in graph.nodes.items()}
    linear = "Affine" if v["bias"] else "Linear"
    assert kinds == {
        "input": "Input",
        "fc1": linear,
        "lif1.lif": "CubaLIF",
        "lif1.w_rec": linear,
        "fc2": linear,
        "lif2": "CubaLIF",
        "output": "Output",
    }
    assert ("lif1.w_rec", "lif1.lif") in graph.edges and graph.metadata == {}
    model = import_nir(folder / "g.nir", preset="snntorch", reset_mode=reset, reset_timing="same")
    # snnTorch's export makes dt/tau = 1 - beta and dt/tau_syn = 1 - alpha at dt = 1e-4, and the
    # input gain 1: the effective weights are the graph's.
    assert model.dt == DT
    for k, name in enumerate(("lif1_lif", "lif2")):
        pop = model.population(name)
        assert pop.ratio == pytest.approx(1 - v["beta"][k], rel=1e-6)
        assert pop.syn_ratio == pytest.approx(1 - v["alpha"][k], rel=1e-6)
        assert (pop.reset_mode, pop.reset_timing, pop.size) == (
            reset,
            "same",
            (v["hidden"], N_OUT)[k],
        )
    weights = {(p.source, p.target): p.weights for p in model.projections}
    np.testing.assert_allclose(
        weights[("lif1_lif", "lif1_lif")], graph.nodes["lif1.w_rec"].weight.T, rtol=1e-6
    )
    net = model.network
    assert [(p.source, p.target, p.recurrent) for p in net.projections] == [
        ("input", "lif1_lif", False),
        ("lif1_lif", "lif1_lif", True),
        ("lif1_lif", "lif2", False),
    ]


@pytest.mark.parametrize("reset", RESETS)
def test_report_has_no_silent_layer_at_default_widths(reset, variant, capsys):
    folder = variant(reset)
    _, err, report = run_import(capsys, reset, folder)
    assert (report["v_width"], report["w_width"], report["runs"]) == (16, 8, BATCH)
    assert report["warnings"] == [] and "warning: lif" not in err
    # snnTorch's guard against a double reset (subtract only) is the one warning.
    assert ("reset_delay=False" in err) == (reset == "subtract")
    pops = {p["name"]: p for p in report["populations"]}
    assert list(pops) == ["lif1_lif", "lif2"]
    for name, p in pops.items():
        rate = p["spikes"]["float"] / (BATCH * STEPS * p["size"])
        # Every layer fires in every sample, at a few percent (hidden) to a quarter (output).
        assert (0.02 < rate < 0.1) if name == "lif1_lif" else (0.1 < rate < 0.3), (name, rate)
        assert None not in p["agreement"]["jaccard"]["samples"]
        assert abs(p["spikes"]["fixed"] - p["spikes"]["float"]) < 0.05 * p["spikes"]["float"]
    # The figures of docs/nir.md (0.654, 0.629; 0.864, 0.616) less a margin for the float
    # reference's summation order on other machines.
    floor = {"zero": (0.6, 0.55), "subtract": (0.8, 0.55)}[reset]
    assert pops["lif1_lif"]["agreement"]["jaccard"]["mean"] >= floor[0]
    assert pops["lif2"]["agreement"]["jaccard"]["mean"] >= floor[1]


@pytest.mark.parametrize("reset", RESETS)
def test_float_reference_is_snntorchs_equations(reset, variant):
    """The report's float reference runs snnTorch's equations of the same-step reset exactly;
    snnTorch's guard against a double reset (subtract) is what it leaves out."""
    folder = variant(reset)
    graph = nir.read(folder / "g.nir")
    x = input_spikes(BATCH, STEPS, seed=1)
    model = import_nir(folder / "g.nir", preset="snntorch", reset_mode=reset, reset_timing="same")
    got, _ = simulate_float(model, x)
    for guard in (False, True):
        hidden, output = snntorch_spikes(graph, reset, x, guard=guard)
        same = np.array_equal(got["lif1_lif"], hidden) and np.array_equal(got["lif2"], output)
        # After a zero reset the membrane is 0, so the guard never acts.
        assert same == (not guard or reset == "zero"), guard
    if reset == "subtract":
        both = (got["lif1_lif"] & hidden).sum() / (got["lif1_lif"] | hidden).sum()
        assert both > 0.8, both


# One Verilator build (about 30 s, then cached) is enough; Icarus runs both variants.
@pytest.mark.parametrize(
    "reset, backend", [("zero", "icarus"), ("subtract", "icarus"), ("subtract", "verilator")]
)
def test_rtl_is_bit_exact_with_golden(reset, backend, variant, capsys, tmp_path):
    folder = variant(reset)
    if not (folder / "net.json").exists():
        run_import(capsys, reset, folder)
    np.save(tmp_path / "in.npy", input_spikes(BATCH, STEPS, seed=1)[:3, :30])
    runs = {}
    for name in ("golden", backend):
        argv = ["simulate", str(folder / "net.json"), "--input", str(tmp_path / "in.npy")]
        assert main([*argv, "--backend", name, "-o", str(tmp_path / f"{name}.npz")]) == 0
        with np.load(tmp_path / f"{name}.npz") as archive:
            runs[name] = {k: archive[k] for k in archive.files if k.startswith("spikes_")}
    assert "30 timesteps x 3 runs" in capsys.readouterr().out
    assert sorted(runs["golden"]) == ["spikes_lif1_lif", "spikes_lif2"]
    for key, want in runs["golden"].items():
        assert want.shape[:2] == (3, 30) and want.sum() > 20, key
        assert np.array_equal(runs[backend][key], want), key
