"""The array's weights in the generated Verilog: inline or in ``$readmemh`` files, bit-exact.

The Verilog of a network keeps each lane's weights in a module written by
``spikeforge.gen.output`` (not by Amaranth, which cannot carry millions of words); these tests
check that both ways of giving its contents hold the plan's weights and that the array read
from ``$readmemh`` files computes what the golden model does under both simulators.
"""

import re

import numpy as np
import pytest
from network_cases import random_network, random_spikes

from spikeforge.cli.main import main
from spikeforge.gen.compile import compile_network
from spikeforge.gen.network import load_network, save_network
from spikeforge.gen.output import array_source, weight_hex
from spikeforge.hdl.array import NeuronArray
from spikeforge.sim.array_rtl import run_array_rtl
from spikeforge.sim.network_golden import run_network
from spikeforge.sim.rtl import require_or_skip


def _inline_words(text, lane):
    """The ``mem[i] = W'hXX;`` values of lane ``lane``'s weight module, in address order."""
    start = text.index(f"module spikeforge_array_weights{lane}(")
    body = text[start : text.index("endmodule", start)]
    pairs = re.findall(r"mem\[(\d+)\] = \d+'h([0-9a-f]+);", body)
    assert [int(i) for i, _ in pairs] == list(range(len(pairs)))
    return [int(h, 16) for _, h in pairs]


def _unsigned(plan, lane):
    return [int(w) & ((1 << plan.w_width) - 1) for w in plan.weights[lane]]


@pytest.mark.parametrize("lanes", [1, 4])
def test_inline_and_hex_hold_the_plan_weights(lanes):
    net = random_network(np.random.default_rng(5), max_size=40, recurrent=True)
    plan = compile_network(net, lanes)
    text, _ = array_source(net, lanes=lanes)
    hexed, _ = array_source(net, lanes=lanes, memory_init="readmemh", hex_name=lambda l: f"w{l}.h")
    for lane in range(lanes):
        want = _unsigned(plan, lane)
        assert _inline_words(text, lane) == want
        lines = weight_hex(plan, lane).splitlines()
        assert [int(h, 16) for h in lines] == want
        assert f'$readmemh("w{lane}.h", mem);' in hexed
    # Apart from the weights' contents, the two texts are the same design.
    strip = re.compile(r"    mem\[\d+\] = .*\n|    \$readmemh.*\n|//   weights = .*\n")
    assert strip.sub("", text) == strip.sub("", hexed)


def test_cli_writes_hex_files_beside_the_verilog(tmp_path, capsys):
    net = random_network(np.random.default_rng(6), max_size=24)
    save_network(net, tmp_path / "net.json")
    out = tmp_path / "array.v"
    args = ["generate", str(tmp_path / "net.json"), "--lanes", "2", "-o", str(out)]
    assert main(args + ["--memory-init", "readmemh"]) == 0
    plan = compile_network(load_network(tmp_path / "net.json"), 2)
    text = out.read_text()
    for lane in range(2):
        assert f'$readmemh("array_weights{lane}.hex", mem);' in text
        assert (tmp_path / f"array_weights{lane}.hex").read_text() == weight_hex(plan, lane)
    inline = tmp_path / "inline.v"
    assert main(args[:-1] + [str(inline)]) == 0
    assert _inline_words(inline.read_text(), 1) == _unsigned(plan, 1)
    capsys.readouterr()


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--memory-init", "mif"], "--memory-init must be one of inline, readmemh, not 'mif'"),
        (["--memory-init", "readmemh", "--format", "rtlil"], "--memory-init readmemh needs"),
    ],
)
def test_cli_memory_init_errors(extra, message, tmp_path, capsys):
    net = random_network(np.random.default_rng(6), max_size=8)
    save_network(net, tmp_path / "net.json")
    args = ["generate", str(tmp_path / "net.json"), *extra, "-o", str(tmp_path / "x.v")]
    assert main(args) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "x.v").exists()


def test_external_weights_parameter_errors():
    plan = compile_network(random_network(np.random.default_rng(1), max_size=8), 1)
    with pytest.raises(TypeError, match="external_weights must be a Verilog identifier"):
        NeuronArray(plan, external_weights="1x")
    with pytest.raises(ValueError, match="exclude each other"):
        NeuronArray(plan, runtime_weights=True, external_weights="w")


@pytest.mark.parametrize("simulator, seed", [("icarus", 11), ("verilator", 12)])
def test_readmemh_array_matches_golden(simulator, seed, tmp_path):
    require_or_skip(simulator)
    rng = np.random.default_rng(seed)
    net = random_network(rng, max_size=48, recurrent=True)
    spikes = random_spikes(rng, net, 6, activity=0.4)
    want = run_network(net, spikes, trace=True)
    got = run_array_rtl(
        net,
        spikes,
        trace=True,
        simulator=simulator,
        lanes=4,
        build_root=tmp_path,
        memory_init="readmemh",
    )
    for name in want.spikes:
        assert np.array_equal(got.spikes[name], want.spikes[name]), name
    for name in want.v:
        assert np.array_equal(got.v[name], want.v[name]), name
