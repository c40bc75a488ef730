"""NIR export (``docs/nir.md``): import(export(net)) equals ``net``, in memory and through
``.nir`` files and the CLI, and the exported graph means in NIR what the network does.
Runtime about 8 s."""

import json

import nir
import numpy as np
import pytest
from network_cases import random_network, random_spikes

from spikeforge.cli.main import main
from spikeforge.gen.network import Network, load_network, save_network
from spikeforge.gen.nir_export import export_network, export_nir
from spikeforge.gen.nir_import import import_graph, import_nir
from spikeforge.sim.network_golden import run_network
from spikeforge.sim.quant_report import simulate_float
from spikeforge.spec.errors import SpikeforgeError
from spikeforge.spec.params import decay_value

EXAMPLE = {
    "format": "spikeforge-network/1",
    "v_width": 16,
    "w_width": 8,
    "acc_width": 12,
    "populations": [
        {"name": "in", "kind": "input", "size": 3},
        {
            "name": "hid",
            "kind": "lif",
            "size": 2,
            "v_th": 100,
            "v_reset": -3,
            "v_rest": 2,
            "v_peak": 200,
            "t_ref": 1,
            "decay": [3, -6],
            "reset_mode": "subtract",
            "bias": [0, 5],
        },
        {
            "name": "flat",
            "kind": "lif",
            "size": 1,
            "v_th": 12,
            "v_reset": 0,
            "v_rest": 0,
            "v_peak": 60,
            "t_ref": 0,
            "decay": [],
            "reset_mode": "zero",
            "bias": 0,
        },
        {
            "name": "lonely",
            "kind": "lif",
            "size": 2,
            "v_th": 9,
            "v_reset": 0,
            "v_rest": 0,
            "v_peak": 9,
            "t_ref": 0,
            "decay": [1],
            "reset_mode": "zero",
            "bias": 4,
        },
        {
            "name": "out",
            "kind": "lif",
            "size": 1,
            "v_th": 32767,
            "v_reset": 0,
            "v_rest": -7,
            "v_peak": 32767,
            "t_ref": 0,
            "decay": [4],
            "reset_mode": "zero",
            "bias": 0,
        },
    ],
    "projections": [
        {"from": "hid", "to": "out", "weights": [[40], [30]]},
        {"from": "in", "to": "hid", "weights": [[60, 10], [60, 20], [-5, 127]]},
        {"from": "out", "to": "hid", "weights": [[-2, 3]]},
        {"from": "in", "to": "flat", "weights": [[7], [-8], [9]]},
    ],
}


def test_export_encoding():
    net = Network.from_dict(EXAMPLE)
    g = export_network(net)
    kinds = {name: type(node).__name__ for name, node in g.nodes.items()}
    assert kinds == {
        "in": "Input",
        "hid": "LIF",
        "hid:out": "Output",
        "flat": "IF",
        "flat:out": "Output",
        "lonely": "LIF",
        "lonely:out": "Output",
        "lonely:bias": "Affine",
        "out": "LIF",
        "out:out": "Output",
        "hid->out": "Affine",
        "in->hid": "Affine",
        "out->hid": "Linear",
        "in->flat": "Affine",
    }
    assert g.metadata["dt"] == 1.0 and g.metadata["spikeforge_order"] == "in,hid,flat,lonely,out"
    assert g.metadata["spikeforge_projections"] == "hid>out,in>hid,out>hid,in>flat"
    assert g.metadata["spikeforge_acc_width"] == 12
    hid = g.nodes["hid"]
    # decay [3, -6] = 7/64: tau = r = 64/7, so dt/tau = 7/64 and dt r / tau = 1.
    assert hid.tau.tolist() == [64 / 7] * 2 and (hid.r == hid.tau).all()
    assert hid.v_leak.tolist() == [2, 2] and hid.v_threshold.tolist() == [100, 100]
    assert hid.metadata["spikeforge_decay"] == "[3, -6]"
    # NIR's weight is (out, in); the first incoming projection carries the bias.
    assert g.nodes["in->hid"].weight.tolist() == [[60, 60, -5], [10, 20, 127]]
    assert g.nodes["in->hid"].bias.tolist() == [0, 5]
    # v_th = v_peak = the largest value and no outgoing projection: a population that never
    # fires, so an LI readout would be exact; "out" feeds "hid", so it stays an LIF.
    assert type(g.nodes["out"]).__name__ == "LIF"


def test_li_readout_export():
    d = json.loads(json.dumps(EXAMPLE))
    d["projections"] = [p for p in d["projections"] if p["from"] != "out"]
    net = Network.from_dict(d)
    g = export_network(net)
    assert type(g.nodes["out"]).__name__ == "LI"
    assert import_graph(g).network == net


def test_example_round_trip_and_float_semantics(tmp_path):
    net = Network.from_dict(EXAMPLE)
    export_nir(net, tmp_path / "g.nir")
    model = import_nir(tmp_path / "g.nir")
    assert model.network == net
    assert model.network.network_hash() == net.network_hash()
    # An exported network is integer-valued at scale 1: its float model, run from the same
    # state, matches the fixed-point network on the IF population fed by the inputs (no leak,
    # no saturation).
    inputs = random_spikes(np.random.default_rng(0), net, 30, activity=0.5)
    flt_s, _ = simulate_float(model, inputs)
    want = run_network(net, inputs)
    assert want.spikes["flat"].sum() > 0
    assert (flt_s["flat"] == want.spikes["flat"]).all()


@pytest.mark.parametrize("seed", range(60))
def test_random_round_trip(seed):
    net = random_network(np.random.default_rng(seed), max_size=20)
    back = import_graph(export_network(net)).network
    assert back == net
    assert back.to_dict() == net.to_dict()


@pytest.mark.parametrize("seed", range(100, 106))
def test_random_round_trip_through_files(seed, tmp_path):
    net = random_network(np.random.default_rng(seed), max_size=20)
    export_nir(net, tmp_path / "g.nir")
    assert import_nir(tmp_path / "g.nir").network == net


def test_cli_round_trip(tmp_path, capsys):
    net = Network.from_dict(EXAMPLE)
    save_network(net, tmp_path / "a.json")
    assert main(["export", str(tmp_path / "a.json"), "-o", str(tmp_path / "g.nir")]) == 0
    assert main(["import", str(tmp_path / "g.nir"), "-o", str(tmp_path / "b.json")]) == 0
    assert (tmp_path / "a.json").read_text() == (tmp_path / "b.json").read_text()
    assert load_network(tmp_path / "b.json") == net
    out = capsys.readouterr().out
    assert f"wrote {tmp_path / 'g.nir'}: 5 populations, 4 projections" in out


def test_exported_file_is_plain_nir(tmp_path):
    export_nir(Network.from_dict(EXAMPLE), tmp_path / "g.nir")
    g = nir.read(tmp_path / "g.nir", type_check=False)
    assert sorted(g.nodes) == sorted(export_network(Network.from_dict(EXAMPLE)).nodes)
    assert ("in->hid", "hid") in g.edges


def _per_neuron_thresholds(rng):
    """A random network with per-neuron ``v_th``, ``v_reset`` and ``v_rest`` in its first LIF
    population, of two neurons or more, each list with distinct values (a list of equal values
    imports as the one value)."""
    while True:
        d = random_network(rng, max_size=20, v_width=16).to_dict()
        pop = next(p for p in d["populations"] if p["kind"] == "lif")
        if pop["size"] >= 2 and pop["v_peak"] - pop["v_reset"] > 2 * pop["size"]:
            break
    size = pop["size"]
    low = pop["v_reset"] + 1
    v_th = rng.choice(np.arange(low, pop["v_peak"] + 1), size, replace=False)
    pop["v_th"] = [int(x) for x in v_th]
    pop["v_reset"] = [int(x) - 1 for x in v_th]
    if decay_value(pop["decay"]) != 0:
        # An IF population (no leak) exports to NIR's IF, which has no v_leak.
        pop["v_rest"] = [j - size // 2 for j in range(size)]
    return Network.from_dict(d)


@pytest.mark.parametrize("seed", range(200, 212))
def test_per_neuron_thresholds_round_trip(seed):
    """Per-neuron thresholds, resets and rests go out as NIR arrays and come back per neuron."""
    rng = np.random.default_rng(seed)
    net = _per_neuron_thresholds(rng)
    back = import_graph(export_network(net)).network
    assert back == net
    assert back.to_dict() == net.to_dict()


@pytest.mark.parametrize("seed", range(220, 226))
def test_per_neuron_decays_round_trip(seed):
    """Per-neuron decays (and synaptic decays) go out as per-neuron time constants with their
    shift terms in the metadata, and come back exactly."""
    rng = np.random.default_rng(seed)
    d = _per_neuron_thresholds(rng).to_dict()
    pop = next(p for p in d["populations"] if p["kind"] == "lif")
    choices = [[3], [2, -5], [1], [4, 6]]
    pop["decay"] = [choices[j % 4] for j in range(pop["size"])]
    if seed % 2:
        pop["syn_decay"] = [choices[(j + 1) % 4] for j in range(pop["size"])]
    net = Network.from_dict(d)
    back = import_graph(export_network(net)).network
    assert back == net
    assert back.to_dict() == net.to_dict()


def test_export_refuses_decays_mixing_leak_and_none():
    d = Network.from_dict(EXAMPLE).to_dict()
    pop = next(p for p in d["populations"] if p["kind"] == "lif")
    pop["decay"] = [[3] if j % 2 else [] for j in range(pop["size"])]
    with pytest.raises(SpikeforgeError) as info:
        export_network(Network.from_dict(d))
    assert str(info.value) == (
        f"population {pop['name']!r}: its per-neuron decays mix leaky neurons and neurons "
        "without leak, which no one NIR node holds; split the population"
    )
