"""The shared limits (spec/limits.py): one definition, the same range wherever a value enters;
and the resource limits of the commands (cli/budget.py): refused before the work, one line."""

import json
from types import SimpleNamespace

import numpy as np
import pytest
from amaranth.hdl import Fragment

from spikeforge.bench.networks import recurrent_network
from spikeforge.cli import cmd_build, cmd_generate, cmd_nir, cmd_simulate
from spikeforge.cli.budget import (
    DEFAULT_MAX_MEMORY_MB,
    DEFAULT_MAX_OUTPUT_MB,
    check_budget,
    generate_estimate,
    simulate_estimate,
)
from spikeforge.cli.main import main
from spikeforge.gen import network
from spikeforge.gen.network import FORMAT, Network, save_network
from spikeforge.gen.nir_export import export_nir
from spikeforge.hdl.neuron import NeuronCore
from spikeforge.spec.errors import EXIT_BAD_INPUT, SpikeforgeError
from spikeforge.spec.limits import ACC_WIDTH_RANGE, LANES, check_int, check_lanes


def test_check_int():
    assert check_int("x", 3, 1, 4) == 3
    with pytest.raises(TypeError, match=r"^x must be an integer in \[1, 4\], not 5$"):
        check_int("x", 5, 1, 4)
    with pytest.raises(TypeError, match=r"^x must be an integer in \[0, 1\], not True$"):
        check_int("x", True, 0, 1)
    with pytest.raises(SpikeforgeError, match=r"^--x must be an integer in \[1, 4\], not 0$"):
        check_int("--x", 0, 1, 4, error=SpikeforgeError)


@pytest.mark.parametrize("lanes", LANES)
def test_check_lanes_accepts(lanes):
    assert check_lanes(lanes) == lanes


@pytest.mark.parametrize("lanes", [0, 3, 32, True, "2", 2.0])
def test_check_lanes_refuses(lanes):
    with pytest.raises(TypeError, match=rf"^lanes must be one of 1, 2, 4, 8, 16, not {lanes!r}$"):
        check_lanes(lanes)
    with pytest.raises(SpikeforgeError, match=r"^--lanes must be one of 1, 2, 4, 8, 16, not "):
        check_lanes(lanes, "--lanes", SpikeforgeError)


def _network(**top):
    lif = {"name": "out", "kind": "lif", "size": 1, "v_th": 5, "v_reset": 0, "v_rest": 0}
    lif.update(v_peak=100, t_ref=0, decay=[], reset_mode="zero", bias=0)
    return {
        "format": FORMAT,
        "v_width": 8,
        "w_width": 8,
        "populations": [{"name": "inp", "kind": "input", "size": 4}, lif],
        "projections": [{"from": "inp", "to": "out", "weights": [[-128], [-128], [127], [127]]}],
        **top,
    }


def test_acc_width_limit_is_the_cores():
    # The loader and the neuron core take the same widths.
    lo, hi = ACC_WIDTH_RANGE
    # Elaborated, so that Amaranth does not warn about a component created but never used.
    Fragment.get(NeuronCore(acc_width=hi), None)
    with pytest.raises(TypeError, match=rf"^acc_width must be an integer in \[{lo}, {hi}\]"):
        NeuronCore(acc_width=hi + 1)
    assert Network.from_dict(_network(acc_width=hi)).acc_width == hi
    with pytest.raises(
        SpikeforgeError, match=rf"^acc_width: must be an integer in \[{lo}, {hi}\], not 56$"
    ):
        Network.from_dict(_network(acc_width=56))


def test_implicit_acc_width_beyond_the_core(monkeypatch):
    # Without an explicit acc_width the loader sizes the accumulator from the weights; a
    # network whose sums need more than the core holds is refused there, naming the field.
    # (With the real limit of 48 bits such a network needs terabytes of weights: the limit
    # is lowered to 8 here, and these weight sums need 9 bits.)
    monkeypatch.setattr(network, "ACC_WIDTH_RANGE", (2, 8))
    with pytest.raises(
        SpikeforgeError,
        match=r"^acc_width: the worst-case weight sum range \[-256, 254\] needs 9 bits, the "
        r"neuron core holds at most 8; use fewer or narrower weights$",
    ):
        Network.from_dict(_network())


# -- resource limits of the commands (cli/budget.py, docs/architecture.md "Resource limits") ----


@pytest.fixture
def small(tmp_path):
    """A 4-weight network, its input spikes and its NIR graph."""
    (tmp_path / "net.json").write_text(json.dumps(_network()))
    np.save(tmp_path / "in.npy", np.zeros((4, 4), np.uint8))
    export_nir(Network.from_dict(_network()), tmp_path / "g.nir")
    return tmp_path


def _forbid(monkeypatch, module, attribute):
    def work(*args, **kwargs):
        raise AssertionError("the work started past the limit")

    monkeypatch.setattr(module, attribute, work)


# command -> (arguments, the work that must not start)
LIMITED = {
    "simulate": (["simulate", "NET", "--input", "IN", "-o", "OUT.npz"], (cmd_simulate, "simulate")),
    "generate": (["generate", "NET", "-o", "OUT.v"], (cmd_generate, "array_source")),
    "build": (["build", "NET", "--board", "icebreaker", "-o", "OUT"], (cmd_build, "build_network")),
    "import": (["import", "GRAPH", "-o", "OUT.json"], (cmd_nir, "quantization_report")),
}


@pytest.mark.parametrize(
    "command, limit, message",
    [
        (
            "simulate",
            ["--max-memory", "0.00005"],
            "simulate would need about 8.39e-05 MB of memory, more than --max-memory 5e-05 MB; "
            "raise --max-memory to allow it",
        ),
        (
            "simulate",
            ["--max-output", "0.00001"],
            "simulate would need about 3.43e-05 MB of output, more than --max-output 1e-05 MB; "
            "raise --max-output to allow it",
        ),
        (
            "generate",
            ["--max-memory", "100"],
            "generate would need about 200 MB of memory, more than --max-memory 100 MB; "
            "raise --max-memory to allow it",
        ),
        (
            "generate",
            ["--max-output", "0.5"],
            "generate would need about 1 MB of output, more than --max-output 0.5 MB; "
            "raise --max-output to allow it",
        ),
        (
            "build",
            ["--max-memory", "1"],
            "build would need about 200 MB of memory, more than --max-memory 1 MB; "
            "raise --max-memory to allow it",
        ),
        (
            "import",
            ["--max-memory", "0.001"],
            "import would need about 0.00311 MB of memory, more than --max-memory 0.001 MB; "
            "raise --max-memory to allow it",
        ),
        (
            "import",
            ["--max-output", "0.00001"],
            "import would need about 2.29e-05 MB of output, more than --max-output 1e-05 MB; "
            "raise --max-output to allow it",
        ),
        ("simulate", ["--max-memory", "0"], "--max-memory must be a positive number of MB, not 0"),
        (
            "generate",
            ["--max-output", "-1"],
            "--max-output must be a positive number of MB, not -1",
        ),
        (
            "import",
            ["--max-memory", "nan"],
            "--max-memory must be a positive number of MB, not nan",
        ),
    ],
)
def test_commands_refuse_past_their_limits(small, capsys, monkeypatch, command, limit, message):
    args, (module, work) = LIMITED[command]
    _forbid(monkeypatch, module, work)
    paths = {"NET": small / "net.json", "IN": small / "in.npy", "GRAPH": small / "g.nir"}
    args = [str(paths[a]) if a in paths else a.replace("OUT", str(small / "out")) for a in args]
    before = sorted(small.iterdir())
    status = main([*args, *limit])
    out, err = capsys.readouterr()
    assert (status, out, err) == (EXIT_BAD_INPUT, "", f"spikeforge: error: {message}\n")
    assert sorted(small.iterdir()) == before


def test_build_has_no_output_limit(small, capsys):
    status = main(["build", str(small / "net.json"), "--board", "icebreaker", "--max-output", "1"])
    assert status == EXIT_BAD_INPUT
    assert capsys.readouterr().err == ("spikeforge: error: build: unknown option --max-output\n")


def _shaped(*shapes):
    """A stand-in network with projections of ``shapes`` (no memory behind the weights)."""
    projections = [SimpleNamespace(weights=np.broadcast_to(np.int8(0), s)) for s in shapes]
    return SimpleNamespace(projections=projections, lif_populations=[])


DEFAULTS = SimpleNamespace(max_memory=DEFAULT_MAX_MEMORY_MB, max_output=DEFAULT_MAX_OUTPUT_MB)


@pytest.mark.parametrize(
    "shapes",
    [[(64, 4096), (4096, 4096)], [(1024, 16374), (16374, 10)]],
    ids=["recurrent-4096", "feedforward-16384"],
)
def test_the_big_generation_networks_pass_the_defaults(shapes):
    # docs/performance.md "Generation at scale": 16.8 M and 16.9 M weights as Verilog.
    check_budget(DEFAULTS, "generate", *generate_estimate(_shaped(*shapes)))


@pytest.mark.parametrize(
    "fmt, memory_init, shapes, message",
    [
        (
            "verilog",
            "inline",
            [(64, 5000), (5000, 5000)],
            "generate would need about 2,615 MB of memory, more than --max-memory 2048 MB",
        ),
        (
            "rtlil",
            "inline",
            [(64, 4096), (4096, 4096)],
            "generate would need about 6,700 MB of memory, more than --max-memory 2048 MB",
        ),
    ],
)
def test_what_the_defaults_refuse(fmt, memory_init, shapes, message):
    with pytest.raises(SpikeforgeError, match=f"^{message}; raise --max-memory to allow it$"):
        check_budget(DEFAULTS, "generate", *generate_estimate(_shaped(*shapes), fmt, memory_init))


def test_a_million_neurons_traced_for_a_thousand_steps_are_refused():
    # The run holds 9 bytes per step and neuron (1 GiB cells), the result file 5.
    net = SimpleNamespace(lif_populations=[SimpleNamespace(size=1 << 20)], projections=[])
    memory, output = simulate_estimate(net, (1000, 64), trace=True)
    with pytest.raises(SpikeforgeError, match=r"^simulate would need about 14,000 MB of memory"):
        check_budget(DEFAULTS, "simulate", memory, output)
    more_memory = SimpleNamespace(max_memory=16000, max_output=DEFAULT_MAX_OUTPUT_MB)
    with pytest.raises(SpikeforgeError, match=r"^simulate would need about 5,000 MB of output"):
        check_budget(more_memory, "simulate", memory, output)


@pytest.mark.parametrize("lanes", [1, 4])
@pytest.mark.parametrize("memory_init", ["inline", "readmemh"])
def test_verilog_estimate_bounds_the_generated_size(tmp_path, capsys, lanes, memory_init):
    # The measured bytes per weight (cli/budget.py): within the estimate and not far below it.
    net = recurrent_network(n_in=64, size=512)
    save_network(net, tmp_path / "net.json", npz=True)
    out = tmp_path / "net.v"
    args = ["generate", str(tmp_path / "net.json"), "--lanes", str(lanes), "-o", str(out)]
    assert main([*args, "--memory-init", memory_init]) == 0, capsys.readouterr().err
    written = sum(p.stat().st_size for p in tmp_path.iterdir() if p.suffix in (".v", ".hex"))
    estimate = generate_estimate(net, "verilog", memory_init)[1]
    assert written <= estimate < 3 * written
