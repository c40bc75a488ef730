"""The quantization report (``docs/nir.md``): its float reference runs each framework's
convention (checked against the frameworks' own spikes in ``tests/data/frameworks/``), reset
timing and threshold test included; convolutional networks; the per-sample figures; and the
warnings of a silent layer, zeroed weights and saturation; the narrowest widths that reach a
target agreement (``--w-width auto``). No torch; about 5 s."""

import importlib.util
import json
import os

import nir
import numpy as np
import pytest
from test_nir_conv import nir_cnn_graph, sinabs_iaf

from spikeforge.cli.main import main
from spikeforge.gen.network import Network, load_network
from spikeforge.gen.nir_export import export_nir
from spikeforge.gen.nir_import import import_graph, import_nir
from spikeforge.sim.network_golden import run_network
from spikeforge.sim.quant_report import (
    AUTO,
    format_report,
    hidden_agreement,
    quantization_report,
    simulate_float,
    smallest_widths,
)
from spikeforge.spec.errors import SpikeforgeError
from spikeforge.spec.params import decay_value

_TOOL = os.path.join(os.path.dirname(__file__), os.pardir, "tools", "framework_agreement.py")
_spec = importlib.util.spec_from_file_location("framework_agreement", _TOOL)
agreement = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(agreement)

# snnTorch's reset_delay=False guard is no preset's convention (docs/nir.md, snnTorch 1.0.0).
GUARDED = ("snntorch_leaky_nodelay", "snntorch_rleaky_nodelay")


def fixture_model(name):
    """The fixture's data and its graph imported with its preset and options."""
    data, settings = agreement.load_fixture(name)
    path = os.path.join(agreement.FIXTURES, f"{name}.nir")
    return data, settings, import_nir(path, preset=settings["preset"], **settings["options"])


@pytest.mark.parametrize("name", [n for n in agreement.fixture_names() if n not in GUARDED])
def test_float_reference_is_the_framework(name):
    # Gains, decays, reset timing, ">=" and several spikes per step (Sinabs' MultiSpike,
    # Rockpool): the float reference gives every spike count the framework gave.
    data, settings, model = fixture_model(name)
    spikes = settings["options"].get("spikes")
    multi = None if spikes is None else spikes == "multi"
    got, _ = simulate_float(model, data["input"], multi)
    for k, node in enumerate(data["layers"]):
        want = data[f"spikes_{k}"]
        assert want.sum() > 0
        assert (got[model.nodes[str(node)]] == want).all(), (name, node)


def network(reset_timing, reset_mode, threshold_compare):
    """Integer weights at scale 1 and the whole membrane leaking every step (``decay = [0]``, so
    that the two reset timings differ, exactly in float): the float model is the fixed-point
    network."""
    rng = np.random.default_rng(4)
    lif = dict(kind="lif", v_reset=0, v_rest=0, v_peak=100, t_ref=0, decay=[], bias=0)
    return Network.from_dict(
        {
            "format": "spikeforge-network/1",
            "v_width": 16,
            "w_width": 8,
            "populations": [
                {"name": "x", "kind": "input", "size": 5},
                {
                    "name": "a",
                    "size": 6,
                    "v_th": 20,
                    "reset_mode": reset_mode,
                    "reset_timing": reset_timing,
                    "threshold_compare": threshold_compare,
                    **lif,
                    "decay": [0],
                },
                {"name": "b", "size": 3, "v_th": 10, "reset_mode": "zero", **lif},
            ],
            "projections": [
                {"from": "x", "to": "a", "weights": rng.integers(-2, 12, (5, 6)).tolist()},
                {"from": "a", "to": "b", "weights": rng.integers(0, 5, (6, 3)).tolist()},
            ],
        }
    )


@pytest.mark.parametrize("reset_mode", ["subtract", "zero"])
def test_float_reference_keeps_reset_timing_and_threshold_compare(tmp_path, reset_mode):
    inputs = (np.random.default_rng(5).random((3, 40, 5)) < 0.5).astype(np.uint8)
    runs = {}
    for timing in ("same", "next"):
        for compare in (">", ">="):
            net = network(timing, reset_mode, compare)
            export_nir(net, tmp_path / "g.nir")
            model = import_nir(tmp_path / "g.nir")
            got, _ = simulate_float(model, inputs)
            want = run_network(net, inputs)
            assert want.spikes["a"].sum() > 20
            for name in ("a", "b"):
                assert (got[name] == want.spikes[name]).all(), (timing, compare, name)
            runs[timing, compare] = got["a"]
            report = quantization_report(model, inputs, "test")
            assert report["populations"][0]["reset_timing"] == timing
            assert report["populations"][0]["threshold_compare"] == compare
            assert report["populations"][0]["agreement"]["jaccard"]["samples"] == [1.0] * 3
    # Each option changes the spikes, so each is honoured, not merely matched.
    assert (runs["same", ">"] != runs["same", ">="]).any()
    if reset_mode == "subtract":
        assert (runs["same", ">"] != runs["next", ">"]).any()


def test_report_is_per_sample():
    data, _, model = fixture_model("snntorch_leaky_delay")
    report = quantization_report(model, data["input"], "fixture")
    assert report["preset"] == "snntorch" and report["runs"] == 4 and report["warnings"] == []
    hidden = report["populations"][0]
    a = hidden["agreement"]
    for key in ("jaccard", "equal", "rate_error", "v_rms_error"):
        assert len(a[key]["samples"]) == 4
        assert a[key]["mean"] == pytest.approx(np.mean(a[key]["samples"]))
    assert a["jaccard"]["min"] == min(a["jaccard"]["samples"])
    # docs/nir.md's agreement table at the default widths: hidden 0.949, output 0.857.
    assert a["jaccard"]["mean"] == pytest.approx(0.949, abs=5e-4)
    assert report["populations"][1]["agreement"]["jaccard"]["mean"] == pytest.approx(
        0.857, abs=5e-4
    )
    assert 0.99 < a["equal"]["mean"] < 1 and 0 < a["rate_error"]["max"] < 0.01
    # The membrane error is in the graph's units, a small fraction of the threshold 1.
    assert 0 < a["v_rms_error"]["max"] < 0.1
    text = format_report(report)
    assert text.startswith("quantization against the snntorch float semantics: dt=0.0001 s")
    assert "spikes float 367 / fixed 368, Jaccard 0.949 [0.885], equal 99.34% [98.61%]" in text
    json.dumps(report)


def test_multi_spike_follows_the_option():
    data, _, model = fixture_model("sinabs_iaf")
    multi = quantization_report(model, data["input"], "fixture")
    single = quantization_report(model, data["input"], "fixture", multi_spike=False)
    assert multi["multi_spike"] and not single["multi_spike"]
    # The float model emits up to 3 spikes at once, the network one: fewer equal entries.
    hidden_multi, hidden_single = multi["populations"][0], single["populations"][0]
    assert hidden_multi["spikes"]["float"] == data["spikes_0"].sum() == 347
    assert hidden_multi["agreement"]["equal"]["mean"] < hidden_single["agreement"]["equal"]["mean"]
    assert "several spikes per step" in format_report(multi)


def dead_graph():
    """A LIF layer whose weights, 1e-5 of its threshold of 1, never make it fire."""
    return nir.NIRGraph(
        nodes={
            "in": nir.Input(np.array([3])),
            "fc": nir.Linear(np.full((2, 3), 1e-5)),
            "l": nir.LIF(
                tau=np.full(2, 2e-3),
                r=np.full(2, 2.0),
                v_leak=np.zeros(2),
                v_threshold=np.ones(2),
                v_reset=np.zeros(2),
            ),
        },
        edges=[("in", "fc"), ("fc", "l")],
        metadata={"dt": 1e-3},
        type_check=False,
    )


def test_dead_network_warns():
    # Weights 1e-5 of a threshold of 1 round to 0: nothing fires in either run, and the report
    # says so instead of calling the layer equal.
    model = import_graph(dead_graph())
    report = quantization_report(model, np.ones((2, 10, 3), np.uint8), "ones")
    entry = report["populations"][0]
    assert entry["spikes"] == {"float": 0, "fixed": 0}
    assert entry["agreement"]["jaccard"] == {"samples": [None, None], "mean": None, "min": None}
    assert report["warnings"] == [
        "l: silent in both runs, so its agreement says nothing",
        "in -> l: all 6 nonzero weights round to 0 at w_width=8",
    ]
    text = format_report(report)
    assert "Jaccard -, equal" in text and text.endswith("round to 0 at w_width=8")


def test_saturation_warns():
    # A readout driven far beyond its range at v_width 6.
    g = nir.NIRGraph(
        nodes={
            "in": nir.Input(np.array([4])),
            "fc": nir.Linear(np.ones((1, 4))),
            "li": nir.LI(tau=np.full(1, 8e-3), r=np.full(1, 8.0), v_leak=np.zeros(1)),
        },
        edges=[("in", "fc"), ("fc", "li")],
        metadata={"dt": 1e-3},
        type_check=False,
    )
    model = import_graph(g, v_width=6)
    report = quantization_report(model, np.ones((20, 4), np.uint8), "ones")
    (warning,) = report["warnings"]
    assert warning.startswith("li: the membrane saturates (at -32 or 31) in ")
    assert warning.endswith(" of 20 neuron-steps: raise --v-width")


def test_conv_network_report():
    rng = np.random.default_rng(16)
    graph = nir_cnn_graph(rng)
    model = import_graph(graph, dt=1.0, reset_mode="subtract")
    spikes = (rng.random((2, 8, 2 * 34 * 34)) < 0.05).astype(np.uint8)
    # The convolutions and pools in float: Sinabs' IAF as tests/test_nir_conv.py writes it.
    for multi in (False, True):
        got, _ = simulate_float(model, spikes, multi)
        for node, want in sinabs_iaf(graph, spikes, multi).items():
            assert (got[model.nodes[node]] == want).all(), (multi, node)
    report = quantization_report(model, spikes, "random")
    assert [p["node"] for p in report["populations"]] == ["1", "3", "6", "10", "12"]
    assert report["populations"][0]["agreement"]["jaccard"]["mean"] > 0.9


def test_cli_report_takes_the_spikes_option(tmp_path):
    data, _, _ = fixture_model("sinabs_iaf")
    np.save(tmp_path / "in.npy", data["input"])
    graph = os.path.join(agreement.FIXTURES, "sinabs_iaf.nir")
    for option, multi in (([], True), (["--spikes", "single"], False)):
        args = ["import", graph, "--from", "sinabs", "--input", str(tmp_path / "in.npy")]
        args += ["-o", str(tmp_path / f"n{multi}.json"), "-r", str(tmp_path / f"r{multi}.json")]
        assert main(args + option) == 0
        report = json.loads((tmp_path / f"r{multi}.json").read_text())
        assert report["multi_spike"] is multi and report["runs"] == 4


def fixture_loader(name):
    """The fixture's input and ``load(v_width, w_width)`` of its graph with its preset."""
    data, settings = agreement.load_fixture(name)
    path = os.path.join(agreement.FIXTURES, f"{name}.nir")

    def load(v_width, w_width):
        options = dict(settings["options"], v_width=v_width, w_width=w_width)
        return import_nir(path, preset=settings["preset"], **options)

    return data["input"], load


def test_smallest_widths_reach_the_target():
    inputs, load = fixture_loader("snntorch_leaky_delay")
    v_width, w_width, found, tried = smallest_widths(load, inputs, 0.95, AUTO, AUTO)
    # Measured: w_width 2 ... 7 at v_width 32, then v_width 2 ... 10 at w_width 7.
    assert (v_width, w_width, tried) == (10, 7, 15) and found >= 0.95
    model = load(v_width, w_width)
    assert hidden_agreement(model, quantization_report(model, inputs, "")) == found
    # One bit less of either falls short: the widths are the narrowest.
    for v, w in ((32, w_width - 1), (v_width - 1, w_width)):
        model = load(v, w)
        assert hidden_agreement(model, quantization_report(model, inputs, "")) < 0.95
    # A given width is kept.
    assert smallest_widths(load, inputs, 0.95, 16, AUTO)[:2] == (16, 7)


def test_smallest_widths_refuse(tmp_path):
    inputs, load = fixture_loader("snntorch_leaky_delay")
    with pytest.raises(
        SpikeforgeError,
        match=r"^no --w-width in \[2, 16\] reaches a hidden-layer Jaccard of 0.99 "
        r"\(at best 0\.\d+\): lower --target or give the widths$",
    ):
        smallest_widths(load, inputs, 0.99, 5, AUTO)
    with pytest.raises(
        SpikeforgeError,
        match=r"^at no --w-width in \[2, 16\] does a hidden layer fire on this input in either run",
    ):
        smallest_widths(
            lambda v, w: import_graph(dead_graph(), v_width=v, w_width=w),
            np.ones((2, 10, 3), np.uint8),
            0.95,
            16,
            AUTO,
        )


def test_cli_auto_widths(tmp_path, capsys):
    inputs, _ = fixture_loader("snntorch_leaky_delay")
    np.save(tmp_path / "in.npy", inputs)
    graph = os.path.join(agreement.FIXTURES, "snntorch_leaky_delay.nir")
    args = ["import", graph, "--from", "snntorch", "--input", str(tmp_path / "in.npy")]
    args += ["-o", str(tmp_path / "n.json")]
    assert main(args + ["--v-width", "auto", "--w-width", "auto"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("auto widths: v_width=10, w_width=7, hidden-layer Jaccard 0.951 >= 0.95")
    assert load_network(tmp_path / "n.json").w_width == 7
    assert main(args + ["--target", "0.9"]) == 2
    assert capsys.readouterr().err.endswith(
        "error: --target is the agreement --v-width/--w-width auto must reach\n"
    )
    assert main(args + ["--w-width", "auto", "--target", "1.5"]) == 2
    assert "--target must be a number in (0, 1], not 1.5" in capsys.readouterr().err


def test_report_of_learned_per_neuron_parameters():
    """learn_beta/learn_threshold: the report gives per-neuron thresholds as lists and the decay
    figures of the neuron whose shift terms are furthest from its dt/tau."""
    data, _, model = fixture_model("snntorch_leaky_learned")
    report = quantization_report(model, data["input"], "fixture")
    hidden = report["populations"][0]
    net_pop = model.network.population(hidden["name"])
    assert hidden["v_th"] == net_pop.column("v_th").tolist() and len(set(hidden["v_th"])) > 1
    assert hidden["decay_per_neuron"] is True
    ratios = model.population(hidden["name"]).ratio
    errors = [decay_value(d) - r for d, r in zip(net_pop.decays(), ratios)]
    assert hidden["decay_error"] == pytest.approx(max(errors, key=abs))
    assert "dt/tau (worst neuron) " in format_report(report)
    json.dumps(report)
