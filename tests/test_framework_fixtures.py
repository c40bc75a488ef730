"""Framework fixtures: spikeforge against snnTorch, Norse, Sinabs and Rockpool's own spikes.

``tests/data/frameworks/`` holds small networks exported by each framework with its own output
spikes (``tools/make_framework_fixtures.py``, run outside CI). Each is imported with its preset,
run on the golden model with the stored input spikes and compared per layer (Jaccard, per sample)
by ``tools/framework_agreement.py``, which also prints the table of ``docs/nir.md``. No torch.
"""

import importlib.util
import os

import pytest

_TOOL = os.path.join(os.path.dirname(__file__), os.pardir, "tools", "framework_agreement.py")
_spec = importlib.util.spec_from_file_location("framework_agreement", _TOOL)
agreement = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(agreement)

# Issue 17's goal for a fixture whose convention spikeforge maps exactly: Jaccard on the hidden
# and on the output layer.
EXACT = (0.95, 0.9)
# The others: the measured (hidden, output) Jaccard, rounded down, as a lower bound, and why they
# are below the goal (docs/nir.md, "Framework conventions").
INEXACT = {
    "snntorch_leaky_nodelay": ((0.88, 0.61), "snnTorch's reset_delay=False double-reset guard"),
    "snntorch_rleaky_nodelay": ((0.80, 0.62), "snnTorch's reset_delay=False double-reset guard"),
    "sinabs_iaf": ((0.91, 0.67), "multi-spike"),
    "rockpool_lif": ((0.92, 0.52), "multi-spike, and exp(-dt/tau) decays in shift terms"),
}
EXACT_FIXTURES = (
    "norse_iaf",
    "norse_lif",
    "norse_lifbox",
    "sinabs_iaf_single",
    "snntorch_leaky_delay",
    # Trained with learn_beta and learn_threshold: per-neuron decays and thresholds.
    "snntorch_leaky_learned",
    "snntorch_rleaky",
    "snntorch_rsynaptic",
    "snntorch_synaptic_zero",
)


def test_every_fixture_is_classified():
    assert sorted(agreement.fixture_names()) == sorted(EXACT_FIXTURES + tuple(INEXACT))


@pytest.mark.parametrize("name", EXACT_FIXTURES)
def test_exact_conventions_reach_the_goal(name):
    rows, warnings = agreement.agreement(name)
    hidden, output = rows[0][1], rows[-1][1]
    assert hidden >= EXACT[0] and output >= EXACT[1], (name, hidden, output)
    # Exact: the import has nothing to warn of.
    assert warnings == []


@pytest.mark.parametrize("name", sorted(INEXACT))
def test_inexact_conventions_keep_their_measured_agreement(name):
    (hidden_min, output_min), _why = INEXACT[name]
    rows, warnings = agreement.agreement(name)
    hidden, output = rows[0][1], rows[-1][1]
    assert hidden >= hidden_min and output >= output_min, (name, hidden, output)
    # The import names the consequence in one line.
    assert warnings and all("\n" not in w for w in warnings)


def test_fixture_spikes_are_active():
    # Neither silent nor saturated: the comparison would say nothing otherwise.
    for name in agreement.fixture_names():
        data, _ = agreement.load_fixture(name)
        for k in range(len(data["layers"])):
            rate = float((data[f"spikes_{k}"] > 0).mean())
            assert 0.05 <= rate <= 0.35, (name, k, rate)


def test_fixtures_are_small():
    total = sum(
        os.path.getsize(os.path.join(agreement.FIXTURES, f)) for f in os.listdir(agreement.FIXTURES)
    )
    assert total < 1 << 20


# -- presets without fixtures: options, metadata and the command ----------------------------------


def _network(**extra):
    from spikeforge.gen.network import FORMAT, Network

    lif = dict(
        name="l",
        kind="lif",
        size=2,
        v_th=100,
        v_reset=0,
        v_rest=0,
        v_peak=32767,
        t_ref=0,
        decay=[3],
        reset_mode="subtract",
        bias=0,
        **extra,
    )
    return Network.from_dict(
        {
            "format": FORMAT,
            "v_width": 16,
            "w_width": 8,
            "populations": [{"name": "i", "kind": "input", "size": 2}, lif],
            "projections": [{"from": "i", "to": "l", "weights": [[10, 20], [30, 40]]}],
        }
    )


@pytest.mark.parametrize(
    "extra", [{"reset_timing": "next"}, {"threshold_compare": ">="}, {}], ids=str
)
def test_export_keeps_reset_timing_and_threshold_compare(extra):
    from spikeforge.gen.nir_export import export_network
    from spikeforge.gen.nir_import import import_graph

    net = _network(**extra)
    back = import_graph(export_network(net)).network
    assert back.network_hash() == net.network_hash()
    assert back.to_dict()["populations"][1] == net.to_dict()["populations"][1]


def test_preset_options_are_checked():
    from spikeforge.gen.nir_export import export_network
    from spikeforge.gen.nir_import import import_graph
    from spikeforge.spec.errors import SpikeforgeError

    graph = export_network(_network())
    for options, message in (
        ({"preset": "brian"}, "preset must be one of nir, snntorch, norse, sinabs, rockpool"),
        ({"reset_timing": "later"}, "reset timing must be one of same, next, not 'later'"),
        ({"spikes": "two"}, "spikes must be one of single, multi, not 'two'"),
    ):
        with pytest.raises(SpikeforgeError, match=message):
            import_graph(graph, **options)
    # A spikeforge export is read as NIR whatever the preset: it states every value.
    for preset in ("norse", "sinabs", "rockpool", "lava"):
        assert import_graph(graph, preset=preset).network.to_dict() == _network().to_dict()


def test_command_line_preset(tmp_path, capsys):
    from spikeforge.cli.main import main

    out = tmp_path / "n.json"
    graph = os.path.join(agreement.FIXTURES, "snntorch_leaky_nodelay.nir")
    assert (
        main(["import", graph, "--from", "snntorch", "--reset-timing", "same", "-o", str(out)]) == 0
    )
    err = capsys.readouterr().err
    assert err.count("warning: snntorch: with reset_delay=False") == 1
    assert main(["import", graph, "--from", "snntorch", "-o", str(tmp_path / "m.json")]) == 0
    assert "warning" not in capsys.readouterr().err


def test_bad_preset_metadata_is_one_line():
    import nir
    import numpy as np

    from spikeforge.gen.nir_import import import_graph
    from spikeforge.spec.errors import SpikeforgeError

    ones = np.ones(2)
    lif = nir.LIF(
        tau=ones / 100,
        r=ones,
        v_leak=0 * ones,
        v_threshold=ones,
        v_reset=0 * ones,
        metadata={"spikeforge_reset_timing": "later"},
    )
    graph = nir.NIRGraph(
        nodes={"i": nir.Input(np.array([2])), "l": lif, "o": nir.Output(np.array([2]))},
        edges=[("i", "l"), ("l", "o")],
    )
    message = (
        "node 'l' (LIF): metadata spikeforge_reset_timing must be one of same, next and "
        "spikeforge_threshold_compare one of >, >=, not 'later' and '>'"
    )
    with pytest.raises(SpikeforgeError) as error:
        import_graph(graph, dt=1e-3)
    assert str(error.value) == message


def test_learned_snntorch_net_runs_bit_exact_on_the_array():
    """The learn_beta/learn_threshold fixture at the default widths: per-neuron decays and
    thresholds through the array's bias words, spike for spike and trace for trace."""
    from spikeforge.gen.compile import compile_network
    from spikeforge.gen.nir_import import import_nir
    from spikeforge.sim.array_amaranth import run_array_amaranth
    from spikeforge.sim.network_golden import run_network

    name = "snntorch_leaky_learned"
    data, settings = agreement.load_fixture(name)
    model = import_nir(
        os.path.join(agreement.FIXTURES, f"{name}.nir"),
        preset=settings["preset"],
        **settings["options"],
    )
    net = model.network
    assert all({"decay", "v_th"} <= set(p.per_neuron) for p in net.lif_populations)
    assert compile_network(net, 4).per_neuron
    inputs = data["input"][0, :12]
    want = run_network(net, inputs, trace=True)
    got = run_array_amaranth(net, inputs, trace=True, lanes=4, stages=2)
    for pop in net.lif_populations:
        assert want.spikes[pop.name].sum() > 0
        assert (got.spikes[pop.name] == want.spikes[pop.name]).all(), pop.name
        assert (got.v[pop.name] == want.v[pop.name]).all(), pop.name
