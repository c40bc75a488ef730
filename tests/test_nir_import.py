"""NIR import (``docs/nir.md``): the mapping of every node type, chains, a recurrent graph, the
quantization report, and the imported networks on the golden model and on the array in Amaranth's
simulator. Graphs are built with the ``nir`` package; no torch. Runtime about 10 s."""

import json

import nir
import numpy as np
import pytest

from spikeforge.cli.main import main
from spikeforge.gen.network import load_network
from spikeforge.gen.nir_import import import_graph, import_nir
from spikeforge.sim.array_amaranth import run_array_amaranth
from spikeforge.sim.network_golden import run_network
from spikeforge.sim.quant_report import format_report, quantization_report, simulate_float


def graph(nodes, edges, **meta):
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=meta, type_check=False)


def lif(n, tau=2e-3, r=None, v_leak=0.0, v_threshold=1.0, v_reset=0.0, dt=1e-3):
    # r = tau/dt is snnTorch's convention: one unit of input raises v by one unit.
    r = tau / dt if r is None else r
    full = lambda x: np.full(n, float(x))  # noqa: E731
    return nir.LIF(
        tau=full(tau),
        r=full(r),
        v_leak=full(v_leak),
        v_threshold=full(v_threshold),
        v_reset=full(v_reset),
    )


def spikes(seed, steps, n, rate=0.3):
    return (np.random.default_rng(seed).random((steps, n)) < rate).astype(np.uint8)


def assert_hardware_matches(net, inputs):
    want = run_network(net, inputs, trace=True)
    got = run_array_amaranth(net, inputs, trace=True, lanes=2)
    for name in want.spikes:
        assert (got.spikes[name] == want.spikes[name]).all(), name
        assert (got.v[name] == want.v[name]).all(), name
    return want


def test_lif_mapping_numbers():
    g = graph(
        {
            "in": nir.Input(np.array([2])),
            "fc": nir.Affine(np.eye(2) * 0.6, np.zeros(2)),
            "l": lif(2),
            "o": nir.Output(np.array([2])),
        },
        [("in", "fc"), ("fc", "l"), ("l", "o")],
    )
    model = import_graph(g, dt=1e-3)
    pop = model.network.population("l")
    # dt/tau = 0.5 = [1]; gain dt r / tau = 1; the weights set the scale: 0.6 -> 127.
    assert pop.params.decay == (1,)
    assert model.population("l").scale == pytest.approx(0.6 / 127)
    assert (pop.params.v_th, pop.params.v_rest, pop.params.v_reset) == (212, 0, 0)
    assert pop.params.v_peak == 32767 and pop.params.reset_mode == "zero"
    assert model.network.projections[0].weights.tolist() == [[127, 0], [0, 127]]
    assert not pop.per_neuron_bias and pop.params.bias == 0


def test_affine_bias_and_r_per_neuron():
    w = np.array([[0.5, 0.25], [1.0, -0.5], [0.0, 0.75]])  # (out=3, in=2)
    node = nir.LIF(
        tau=np.full(3, 4e-3),
        r=np.array([4.0, 8.0, 4.0]),
        v_leak=np.full(3, 0.5),
        v_threshold=np.full(3, 2.0),
        v_reset=np.full(3, -0.5),
    )
    g = graph(
        {
            "in": nir.Input(np.array([2])),
            "fc": nir.Affine(w, np.array([0.25, 0, -0.25])),
            "l": node,
        },
        [("in", "fc"), ("fc", "l")],
        dt=1e-3,
    )
    model = import_graph(g, w_width=8)
    net = model.network
    # Gains dt r / tau = 1, 2, 1; the largest effective weight 2.0 maps to 127.
    q = 2.0 / 127
    assert model.population("l").scale == pytest.approx(q)
    want = np.round((w * np.array([1.0, 2.0, 1.0])[:, None]).T / q)
    assert (net.projections[0].weights == want).all()
    assert net.bias("l").tolist() == [round(0.25 / q), 0, round(-0.25 / q)]
    p = net.neuron_params("l")
    assert (p.v_rest, p.v_th, p.v_reset) == (round(0.5 / q), round(2.0 / q), round(-0.5 / q))
    assert p.decay == (2,)  # 1e-3 / 4e-3


def test_flatten_linear_if_li_chain_exact_and_on_hardware():
    # Weights are multiples of 1/128 and the IF has no leak: the float model and the fixed-point
    # network agree exactly, spike for spike.
    rng = np.random.default_rng(3)
    w1 = rng.integers(-40, 128, (5, 4)) / 128
    w2 = rng.integers(-60, 128, (3, 5)) / 128
    # The largest weight, 127/128, maps to 127: the scale is exactly 1/128.
    w1[0, 0] = w2[0, 0] = 127 / 128
    g = graph(
        {
            "in": nir.Input(np.array([4])),
            "flat": nir.Flatten(input_type=None),
            "w1": nir.Linear(w1),
            "if": nir.IF(r=np.ones(5), v_threshold=np.full(5, 1.0)),
            "w2": nir.Linear(w2),
            "li": nir.LI(tau=np.full(3, 2.0), r=np.full(3, 2.0), v_leak=np.zeros(3)),
            "out": nir.Output(np.array([3])),
        },
        [("in", "flat"), ("flat", "w1"), ("w1", "if"), ("if", "w2"), ("w2", "li"), ("li", "out")],
        dt=1.0,
    )
    model = import_graph(g)
    net = model.network
    assert [p.name for p in net.populations] == ["in", "if", "li"]
    assert net.neuron_params("if").decay == () and model.population("if").scale == 1 / 128
    li = net.neuron_params("li")
    assert li.v_th == li.v_peak == 32767 and li.decay == (1,)
    inputs = spikes(1, 24, 4, 0.5)
    flt_s, flt_v = simulate_float(model, inputs)
    want = assert_hardware_matches(net, inputs)
    assert want.spikes["if"].sum() > 5
    assert (want.spikes["if"] == flt_s["if"]).all()
    assert not want.spikes["li"].any()
    # The readout: the same leak up to the floor of the shift.
    q = model.population("li").scale
    assert np.abs(want.v["li"] * q - flt_v["li"]).max() < 0.1 * np.ptp(flt_v["li"])
    report = quantization_report(model, inputs, "test")
    by_name = {p["name"]: p for p in report["populations"]}
    agreement = by_name["if"]["agreement"]
    assert agreement["jaccard"]["samples"] == [1.0] and agreement["equal"]["min"] == 1.0
    assert agreement["rate_error"]["max"] == 0.0
    assert by_name["li"]["readout"]["max_abs_error"] < 0.1 * by_name["li"]["readout"]["float_range"]
    text = format_report(report)
    assert "  if (IF, 5): scale 0.007812/LSB" in text and "li (LI, 3)" in text
    assert "Jaccard 1.000 [1.000], equal 100.00% [100.00%]" in text
    assert "readout max error" in text


def test_flatten_and_multidimensional_input():
    g = graph(
        {
            "in": nir.Input(np.array([2, 3])),
            "flat": nir.Flatten(input_type={"input": np.array([2, 3])}, start_dim=0),
            "fc": nir.Linear(np.ones((2, 6))),
            "l": lif(2),
        },
        [("in", "flat"), ("flat", "fc"), ("fc", "l")],
        dt=1e-3,
    )
    net = import_graph(g).network
    assert net.n_inputs == 6 and net.projections[0].weights.shape == (6, 2)


def test_recurrent_graph_order_delay_and_hardware():
    rng = np.random.default_rng(7)
    g = graph(
        {
            "in": nir.Input(np.array([3])),
            "a_in": nir.Affine(rng.uniform(0, 1, (4, 3)), rng.uniform(-0.2, 0.2, 4)),
            "a": lif(4, v_threshold=1.5),
            "rec": nir.Linear(rng.uniform(-0.5, 1, (4, 4))),
            "a_b": nir.Linear(rng.uniform(0, 1, (2, 4))),
            "b": lif(2, v_threshold=1.0),
            "b_a": nir.Linear(rng.uniform(-1, 0, (4, 2))),
            "o": nir.Output(np.array([2])),
        },
        [
            ("in", "a_in"),
            ("a_in", "a"),
            ("a", "rec"),
            ("rec", "a"),
            ("a", "a_b"),
            ("a_b", "b"),
            ("b", "b_a"),
            ("b_a", "a"),
            ("b", "o"),
        ],
        dt=1e-3,
    )
    model = import_graph(g)
    net = model.network
    assert [p.name for p in net.populations] == ["in", "a", "b"]
    assert net.population("a").per_neuron_bias and net.bias("a").any()
    pairs = [(p.source, p.target, p.recurrent) for p in net.projections]
    assert pairs == [("in", "a", False), ("a", "a", True), ("b", "a", True), ("a", "b", False)]
    inputs = spikes(2, 20, 3, 0.5)
    want = assert_hardware_matches(net, inputs)
    assert want.spikes["a"].sum() > 0 and want.spikes["b"].sum() > 0
    report = quantization_report(model, spikes(5, 200, 3), "random")
    for entry in report["populations"]:
        # Rounding moves a spike here and there, over hundreds of steps, never many.
        s = entry["spikes"]
        assert s["float"] > 10 and abs(s["float"] - s["fixed"]) <= 0.1 * s["float"], entry
        assert entry["agreement"]["rate_error"]["max"] <= 0.01, entry


def test_identity_edges_and_metadata_order():
    # A neuron fed straight by an Input (identity weights) and by another neuron.
    g = graph(
        {"x": nir.Input(np.array([2])), "p": lif(2), "q": lif(2)},
        [("x", "p"), ("p", "q"), ("q", "p")],
        dt=1e-3,
        spikeforge_order="x,q,p",
    )
    net = import_graph(g).network
    assert [p.name for p in net.populations] == ["x", "q", "p"]
    assert [(p.source, p.target) for p in net.projections] == [("p", "q"), ("x", "p"), ("q", "p")]
    assert net.projections[1].weights.tolist() == [[127, 0], [0, 127]]


def test_names_are_sanitized():
    g = graph(
        {"0": nir.Input(np.array([1])), "layer.1": lif(1), "layer_1": lif(1)},
        [("0", "layer.1"), ("layer.1", "layer_1")],
        dt=1e-3,
    )
    model = import_graph(g)
    assert [p.name for p in model.network.populations] == ["n_0", "layer_1", "layer_1_2"]
    assert [p.node for p in model.populations] == ["0", "layer.1", "layer_1"]


def test_reset_mode_subtract_and_clipping():
    w = np.array([[0.05, 0.2, 4.0]])
    g = graph(
        {"in": nir.Input(np.array([3])), "fc": nir.Linear(w), "l": lif(1)},
        [("in", "fc"), ("fc", "l")],
        dt=1e-3,
    )
    model = import_graph(g, reset_mode="subtract", weight_percentile=50)
    assert model.network.neuron_params("l").reset_mode == "subtract"
    # The median 0.2 maps to 127: 0.05 -> 32 (rounded from 31.75), 4.0 -> 2540, clipped.
    assert model.network.projections[0].weights.ravel().tolist() == [32, 127, 127]
    assert model.population("l").clipped == 1
    report = quantization_report(model, spikes(0, 30, 3), "random")
    assert report["populations"][0]["weights"]["clipped"] == 1


def test_report_fields_and_decay_error():
    g = graph(
        {
            "in": nir.Input(np.array([2])),
            "fc": nir.Linear(np.full((2, 2), 0.7)),
            "l": lif(2, tau=3e-3),
        },
        [("in", "fc"), ("fc", "l")],
        dt=1e-3,
    )
    model = import_graph(g)
    report = quantization_report(model, spikes(0, 50, 2), "test")
    entry = report["populations"][0]
    assert entry["dt_over_tau"] == pytest.approx(1 / 3)
    assert entry["decay"] == [2, 4, 6, 8]  # 1/4 + 1/16 + 1/64 + 1/256
    assert entry["decay_error"] == pytest.approx(0.33203125 - 1 / 3)
    assert set(entry["spikes"]) == {"float", "fixed"}
    assert set(entry["agreement"]) == {"jaccard", "equal", "rate_error", "v_rms_error"}
    assert all(len(figure["samples"]) == 1 for figure in entry["agreement"].values())
    assert report["steps"] == 50 and report["runs"] == 1 and report["input"] == "test"
    json.dumps(report)


def test_cli_import_with_input_and_report(tmp_path, capsys):
    g = graph(
        {"in": nir.Input(np.array([2])), "fc": nir.Affine(np.eye(2), np.zeros(2)), "l": lif(2)},
        [("in", "fc"), ("fc", "l")],
    )
    nir.write(tmp_path / "g.nir", g)
    np.save(tmp_path / "in.npy", spikes(0, 40, 2, 0.5))
    assert (
        main(
            [
                "import",
                str(tmp_path / "g.nir"),
                "-o",
                str(tmp_path / "n.json"),
                "--dt",
                "1e-3",
                "--input",
                str(tmp_path / "in.npy"),
                "-r",
                str(tmp_path / "r.json"),
                "--v-width",
                "12",
                "--reset-mode",
                "subtract",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "l (LIF, 2): scale" in out and f"wrote {tmp_path / 'n.json'}" in out
    net = load_network(tmp_path / "n.json")
    assert net.v_width == 12 and net.neuron_params("l").reset_mode == "subtract"
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["input"] == str(tmp_path / "in.npy") and report["steps"] == 40
    assert report["network_hash"] == net.network_hash()


def test_import_nir_reads_files(tmp_path):
    g = graph({"in": nir.Input(np.array([1])), "l": lif(1)}, [("in", "l")], dt=1e-3)
    nir.write(tmp_path / "g.nir", g)
    assert import_nir(tmp_path / "g.nir").network == import_graph(g).network


def test_per_neuron_thresholds_resets_and_rests_import():
    """Learned thresholds (snnTorch's learn_threshold) and any per-neuron v_reset and v_leak
    come in per neuron, at the population's one scale."""
    w = np.full((2, 2), 0.5)
    lif = nir.LIF(
        tau=np.full(2, 2e-3),
        r=np.full(2, 2.0),
        v_leak=np.array([0.0, 0.25]),
        v_threshold=np.array([1.0, 2.0]),
        v_reset=np.array([0.0, 0.5]),
    )
    graph = nir.NIRGraph(
        nodes={
            "in": nir.Input(np.array([2])),
            "fc": nir.Linear(w),
            "l": lif,
            "out": nir.Output(np.array([2])),
        },
        edges=[("in", "fc"), ("fc", "l"), ("l", "out")],
    )
    model = import_graph(graph, dt=1e-3)
    pop = model.network.population("l")
    q = model.population("l").scale
    assert pop.column("v_th").tolist() == [round(1 / q), round(2 / q)]
    assert pop.column("v_reset").tolist() == [0, round(0.5 / q)]
    assert pop.column("v_rest").tolist() == [0, round(0.25 / q)]
