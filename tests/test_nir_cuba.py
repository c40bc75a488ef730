"""NIR's current-based neurons, CubaLIF and CubaLI (``docs/nir.md``): the mapping numbers, the float
semantics against snnTorch's ``Synaptic`` recurrence, float-vs-fixed agreement in the report, an
imported graph on the golden model and on the array in Amaranth's simulator, export round trips
and the export error. Graphs are built with the ``nir`` package. Runtime about 9 s."""

import json
import re

import nir
import numpy as np
import pytest
from network_cases import synaptic_network

from spikeforge.cli.main import main
from spikeforge.gen.network import Network, load_network
from spikeforge.gen.nir_export import export_network
from spikeforge.gen.nir_import import import_graph
from spikeforge.sim.array_amaranth import run_array_amaranth
from spikeforge.sim.network_golden import run_network
from spikeforge.sim.quant_report import quantization_report, simulate_float
from spikeforge.spec.errors import SpikeforgeError
from spikeforge.spec.params import decay_value


def graph(nodes, edges, **meta):
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=meta, type_check=False)


def cuba(
    n,
    tau_syn=4e-3,
    tau_mem=2e-3,
    r=None,
    w_in=None,
    v_leak=0.0,
    v_threshold=1.0,
    v_reset=0.0,
    dt=1e-3,
    readout=False,
):
    # snnTorch's convention: r = tau_mem/dt and w_in = tau_syn/dt, so that the gain is 1 and an
    # input of one unit raises the current by one unit.
    full = lambda x: np.full(n, float(x))  # noqa: E731
    p = dict(
        tau_syn=full(tau_syn),
        tau_mem=full(tau_mem),
        r=full(tau_mem / dt if r is None else r),
        v_leak=full(v_leak),
        w_in=full(tau_syn / dt) if w_in is None else np.asarray(w_in, float),
    )
    if readout:
        return nir.CubaLI(**p)
    return nir.CubaLIF(v_threshold=full(v_threshold), v_reset=full(v_reset), **p)


def spikes(seed, steps, n, rate=0.3):
    return (np.random.default_rng(seed).random((steps, n)) < rate).astype(np.uint8)


def test_cubalif_mapping_numbers():
    g = graph(
        {
            "in": nir.Input(np.array([2])),
            "fc": nir.Affine(np.eye(2) * 0.6, np.zeros(2)),
            "c": cuba(2, w_in=[4.0, 1.0]),
            "o": nir.Output(np.array([2])),
        },
        [("in", "fc"), ("fc", "c"), ("c", "o")],
    )
    model = import_graph(g, dt=1e-3)
    pop = model.network.population("c")
    # dt/tau_mem = 0.5 = [1], dt/tau_syn = 0.25 = [2]; gains (dt r/tau_mem)(dt w_in/tau_syn) are
    # 1 and 1/4; the largest effective weight 0.6 maps to 127.
    assert pop.params.decay == (1,) and pop.params.syn_decay == (2,)
    q = 0.6 / 127
    assert model.population("c").scale == pytest.approx(q)
    assert model.population("c").syn_ratio == 0.25
    assert (pop.params.v_th, pop.params.v_rest, pop.params.v_reset) == (212, 0, 0)
    assert model.network.projections[0].weights.tolist() == [[127, 0], [0, 32]]
    assert model.network.to_dict()["populations"][1]["syn_decay"] == [2]


def test_float_semantics_is_snntorch_synaptic_recurrence():
    """With dt = 1e-4, tau = dt/(1 - alpha or beta), r = tau_mem/dt and w_in = tau_syn/dt, the
    float model is syn = alpha syn + W x, mem = beta mem + syn, reset to v_reset on a spike."""
    dt, alpha, beta, thr = 1e-4, 0.75, 0.5, 1.5
    w = np.array([[0.5, 0.25, -0.25], [1.0, 0.0, 0.5]])  # (out=2, in=3)
    node = cuba(2, tau_syn=dt / (1 - alpha), tau_mem=dt / (1 - beta), v_threshold=thr, dt=dt)
    g = graph(
        {"in": nir.Input(np.array([3])), "fc": nir.Linear(w), "c": node},
        [("in", "fc"), ("fc", "c")],
    )
    model = import_graph(g, dt=dt)
    x = spikes(1, 40, 3, rate=0.5)
    got_s, got_v = simulate_float(model, x)
    syn, mem = np.zeros(2), np.zeros(2)
    for t in range(40):
        syn = alpha * syn + w @ x[t]
        mem = beta * mem + syn
        fired = mem > thr
        mem = np.where(fired, 0.0, mem)
        assert (got_s["c"][t] == fired).all()
        assert got_v["c"][t] == pytest.approx(mem, abs=1e-12)
    assert got_s["c"].sum() > 3


def test_report_agrees_and_hardware_matches_golden(capsys):
    # Exact power-of-two ratios and weights on a 1/64 grid: the fixed-point network follows the
    # float model closely; a recurrent CubaLIF layer feeds a CubaLI readout.
    rng = np.random.default_rng(3)
    w_in = np.round(rng.uniform(-0.3, 1.0, (6, 4)) * 64) / 64
    w_rec = np.round(rng.uniform(-0.3, 0.2, (6, 6)) * 64) / 64
    w_out = np.round(rng.uniform(-0.5, 1.0, (2, 6)) * 64) / 64
    g = graph(
        {
            "in": nir.Input(np.array([4])),
            "fc": nir.Affine(w_in, np.full(6, 0.125)),
            "c": cuba(6, v_threshold=2.0),
            "rec": nir.Linear(w_rec),
            "out": nir.Linear(w_out),
            "ro": cuba(2, readout=True),
            "o": nir.Output(np.array([2])),
        },
        [
            ("in", "fc"),
            ("fc", "c"),
            ("c", "rec"),
            ("rec", "c"),
            ("c", "out"),
            ("out", "ro"),
            ("ro", "o"),
        ],
        dt=1e-3,
    )
    model = import_graph(g)
    net = model.network
    assert [p.kind for p in model.populations] == ["Input", "CubaLIF", "CubaLI"]
    inputs = spikes(4, 60, 4, rate=0.4)
    report = quantization_report(model, inputs, "test")
    c, ro = report["populations"]
    assert (c["syn_dt_over_tau"], c["syn_decay"], c["syn_decay_error"]) == (0.25, [2], 0.0)
    assert c["syn_decay_relative_error"] == 0.0 and c["decay_error"] == 0.0
    # Measured: 168 spikes each, per-neuron counts off by at most one (rounding of the weights
    # to the scale 0.969/127), the readout within 6 % of its range.
    assert c["spikes"]["float"] > 100
    assert abs(c["spikes"]["float"] - c["spikes"]["fixed"]) <= 2
    # Per sample (measured: Jaccard 0.942 at worst, rate error 0.0056 spikes per step).
    assert c["agreement"]["jaccard"]["min"] >= 0.9
    assert c["agreement"]["rate_error"]["max"] <= 0.01
    assert ro["syn_decay"] == [2] and "readout" in ro
    assert ro["readout"]["max_abs_error"] < 0.1 * ro["readout"]["float_range"]

    want = run_network(net, inputs[:12], trace=True)
    got = run_array_amaranth(net, inputs[:12], trace=True, lanes=2, stages=3)
    for name in want.spikes:
        assert (got.spikes[name] == want.spikes[name]).all(), name
        assert (got.v[name] == want.v[name]).all(), name
    assert want.spikes["c"].any()


def test_cli_import_of_a_cubalif_graph(tmp_path, capsys):
    g = graph(
        {"in": nir.Input(np.array([3])), "fc": nir.Linear(np.full((2, 3), 0.5)), "c": cuba(2)},
        [("in", "fc"), ("fc", "c")],
        dt=1e-3,
    )
    nir.write(tmp_path / "g.nir", g)
    assert (
        main(
            [
                "import",
                str(tmp_path / "g.nir"),
                "-o",
                str(tmp_path / "n.json"),
                "-r",
                str(tmp_path / "r.json"),
                "--steps",
                "30",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "c (CubaLIF, 2): " in out and "dt/tau_syn 0.25 ~ [2] = 0.25 (error +0)" in out
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["populations"][0]["syn_decay"] == [2]
    assert load_network(tmp_path / "n.json").neuron_params("c").syn_decay == (2,)


def _exportable(net):
    return all(
        decay_value(p.params.decay) and decay_value(p.params.syn_decay)
        for p in net.lif_populations
        if p.params.synaptic
    )


@pytest.mark.parametrize("seed", range(30))
def test_random_round_trip_or_export_error(seed):
    """Export then import gives the network back exactly; a current-based population without
    leak (decay value 0) has no CubaLIF and is refused in one line."""
    net = synaptic_network(np.random.default_rng([seed, 9]), max_size=12)
    if _exportable(net):
        back = import_graph(export_network(net)).network
        assert back == net and back.to_dict() == net.to_dict()
    else:
        with pytest.raises(
            SpikeforgeError,
            match=r"^population '\w+': (syn_)?decay \[[-0-9, ]*\] "
            r"has the value 0, which NIR's CubaLIF cannot "
            r"express \(it needs a finite tau_(mem|syn)\)$",
        ):
            export_network(net)


def _net(hid_extra, out_extra):
    lif = {
        "kind": "lif",
        "v_reset": 0,
        "v_rest": 3,
        "t_ref": 2,
        "reset_mode": "subtract",
        "bias": 0,
    }
    readout = {
        "kind": "lif",
        "v_th": 32767,
        "v_peak": 32767,
        "v_reset": 0,
        "v_rest": -4,
        "t_ref": 0,
        "reset_mode": "zero",
        "bias": [1, -2],
    }
    return Network.from_dict(
        {
            "format": "spikeforge-network/1",
            "v_width": 16,
            "w_width": 8,
            "populations": [
                {"name": "x", "kind": "input", "size": 3},
                {"name": "hid", "size": 2, "v_th": 90, "v_peak": 200, **lif, **hid_extra},
                {"name": "out", "size": 2, **readout, **out_extra},
            ],
            "projections": [
                {"from": "x", "to": "hid", "weights": [[50, 9], [-7, 60], [30, 30]]},
                {"from": "hid", "to": "out", "weights": [[20, -5], [4, 40]]},
                {"from": "hid", "to": "hid", "weights": [[0, -9], [-9, 0]]},
            ],
        }
    )


def test_export_encoding_and_cubali_readout(tmp_path):
    net = _net({"decay": [2, -5], "syn_decay": [1, 3]}, {"decay": [3], "syn_decay": [0]})
    g = export_network(net)
    hid, out = g.nodes["hid"], g.nodes["out"]
    assert type(hid).__name__ == "CubaLIF" and type(out).__name__ == "CubaLI"
    d, d_syn = 1 / 4 - 1 / 32, 1 / 2 + 1 / 8
    assert hid.tau_mem == pytest.approx(np.full(2, 1 / d))
    assert hid.tau_syn == pytest.approx(np.full(2, 1 / d_syn))
    assert (hid.r == hid.tau_mem).all() and (hid.w_in == hid.tau_syn).all()
    assert hid.metadata["spikeforge_syn_decay"] == "[1, 3]"
    assert out.metadata["spikeforge_syn_decay"] == "[0]"
    assert import_graph(g).network == net
    # Through a file and the command line, as a user would.
    from spikeforge.gen.network import save_network

    save_network(net, tmp_path / "n.json")
    assert main(["export", str(tmp_path / "n.json"), "-o", str(tmp_path / "g.nir")]) == 0
    assert (
        main(["import", str(tmp_path / "g.nir"), "-o", str(tmp_path / "back.json"), "--steps", "5"])
        == 0
    )
    assert load_network(tmp_path / "back.json") == net


@pytest.mark.parametrize(
    "hid_extra, message",
    [
        (
            {"decay": [], "syn_decay": [1]},
            "population 'hid': decay [] has the value 0, which NIR's CubaLIF cannot express "
            "(it needs a finite tau_mem)",
        ),
        (
            {"decay": [2], "syn_decay": [3, -3]},
            "population 'hid': syn_decay [3, -3] has the value 0, which NIR's CubaLIF cannot "
            "express (it needs a finite tau_syn)",
        ),
    ],
)
def test_export_error_without_leak(hid_extra, message, tmp_path, capsys):
    net = _net(hid_extra, {"decay": [3]})
    with pytest.raises(SpikeforgeError, match=f"^{re.escape(message)}$"):
        export_network(net)
    from spikeforge.gen.network import save_network

    save_network(net, tmp_path / "n.json")
    assert main(["export", str(tmp_path / "n.json"), "-o", str(tmp_path / "g.nir")]) == 2
    assert capsys.readouterr().err == f"spikeforge: error: {message}\n"
