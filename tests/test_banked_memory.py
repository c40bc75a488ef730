"""Banked memories (``docs/array.md``, "Banked memories"): weight, state and bias memories
deeper than one block are split into banks of one block each, and the array stays bit-exact
with the golden model, in the same number of cycles with banked weights."""

import functools

import numpy as np
import pytest
from amaranth.hdl import Fragment
from network_cases import random_network, random_spikes

from spikeforge.bench.networks import feedforward_network
from spikeforge.boards import resources
from spikeforge.boards.registry import get_board
from spikeforge.gen.compile import compile_network, runtime_writes
from spikeforge.gen.network import Network
from spikeforge.hdl import array_banks
from spikeforge.hdl.array import NeuronArray
from spikeforge.sim import array_amaranth
from spikeforge.sim.network_golden import run_network


def _depths(memories):
    """Per lane, the depths of the banks of a memory of the elaborated array (one depth for a
    memory that is not banked)."""
    return [
        [bank.depth for bank in mem.banks]
        if isinstance(mem, array_banks.BankedMemory)
        else [mem.depth]
        for mem in memories
    ]


@pytest.mark.parametrize(
    ("family", "width", "depth"),
    [("ecp5", 8, 2048), ("gowin", 8, 2048), ("ice40", 8, 512), ("ice40", 16, 256)],
)
def test_bank_depth_is_one_block(family, width, depth):
    assert array_banks.bank_depth(family, width) == depth


@pytest.mark.parametrize(
    ("board", "banks"), [("ulx3s-85f", [2048] * 8 + [640]), ("tangnano9k", [2048] * 8 + [640])]
)
def test_deep_weights_are_banked_on_a_board(board, banks):
    """The 256-128-10 network at 2 lanes (17,024 weight words per lane) elaborated for a board's
    platform: each lane's weights in banks of one block, the last holding the rest."""
    plan = compile_network(feedforward_network(), 2)
    array = NeuronArray(plan)
    Fragment.get(array, get_board(board).platform())
    assert _depths(array.weight_mem) == [banks, banks]
    assert _depths(array.state_mem) == [[plan.slots]] * 2
    # Without a platform (simulators, Verilog generation) the memory is one.
    array = NeuronArray(plan)
    Fragment.get(array, None)
    assert _depths(array.weight_mem) == [[17024], [17024]]


@pytest.mark.parametrize("family", ["ecp5", "gowin"])
def test_memory_model_counts_the_banks(family):
    """The block RAM model maps each bank by itself: the 256-128-10 network at 2 lanes keeps 9
    blocks per lane for its weights (8 banks of 2,048 words and one of 640) and 18 in all (the
    network is feed-forward: each lane's one accumulator bank of 69 words is LUT RAM)."""
    total, memories = resources.memory_model(compile_network(feedforward_network(), 2), family)
    weights = [m for m in memories if m["name"].startswith("weights")]
    assert [(m["depth"], m["banks"], m["blocks"]) for m in weights] == [(17024, 9, 9)] * 2
    assert all(m["banks"] == 1 for m in memories if m not in weights)
    assert total == 18


def test_shallow_weights_are_not_banked():
    plan = compile_network(random_network(np.random.default_rng(0), max_size=8), 1)
    platform = get_board("ulx3s-85f").platform()
    array = NeuronArray(plan)
    assert array.memory_banks(platform) == {"weights": None, "state": None, "bias": None}
    Fragment.get(array, platform)
    assert _depths(array.weight_mem) == [[plan.weight_words]]


@pytest.mark.parametrize("seed", range(8))
def test_banked_array_matches_golden(seed, monkeypatch):
    """Random networks with the memories in banks of 4 to 32 words, on 1, 2 and 4 lanes: spikes
    and traces equal the golden model's (with output back-pressure). Banked weights take as
    many cycles as without banks, banked state and bias one more per LIF population and step
    (the update's drain; measured without back-pressure or trace, whose stalls depend on the
    cycle)."""
    rng = np.random.default_rng(seed)
    net = random_network(rng, max_size=24)
    spikes = random_spikes(rng, net, 5, activity=float(rng.uniform(0.2, 1.0)))
    options = dict(lanes=(1, 2, 4)[seed % 3], stages=1 + seed % 4, seed=seed)
    bank_depth = (4, 8, 16, 32)[seed % 4]
    plan = compile_network(net, options["lanes"])
    banked = NeuronArray(plan, bank_depth=bank_depth)
    banks = banked.memory_banks(None)
    assert banks["weights"] == bank_depth
    Fragment.get(banked, None)
    for name, depth, memories in (
        ("weights", plan.weight_words, banked.weight_mem),
        ("state", plan.slots, banked.state_mem),
        ("bias", plan.slots, banked.bias_mem),
    ):
        words = banks[name] or depth
        for got in _depths(memories):
            assert len(got) == -(-depth // words) and max(got) <= words and sum(got) >= depth
    want = run_network(net, spikes, trace=True)
    plain = array_amaranth.run_array_amaranth(net, spikes, **options)
    monkeypatch.setattr(
        array_amaranth, "NeuronArray", functools.partial(NeuronArray, bank_depth=bank_depth)
    )
    got = array_amaranth.run_array_amaranth(net, spikes, trace=True, out_stall=0.3, **options)
    for name in want.spikes:
        assert (got.spikes[name] == want.spikes[name]).all(), name
        assert (got.v[name] == want.v[name]).all(), name
    drain = len(plan.lif_populations) if banks["state"] else 0
    got = array_amaranth.run_array_amaranth(net, spikes, **options)
    assert (got.cycles == plain.cycles + drain).all()


def test_banked_weights_load_through_cfg():
    """Weights written through ``cfg`` into banked weight memories (one port per bank, the
    write's address while writing) are the ones the next steps use: an array of network A
    loaded with network B (the rows of every weight matrix reversed, so the same layout) runs
    B."""
    rng = np.random.default_rng(17)
    net_a = random_network(rng, max_size=16, recurrent=True)
    layout = net_a.to_dict()
    for proj in layout["projections"]:
        proj["weights"] = proj["weights"][::-1]
    net_b = Network.from_dict(layout)
    spikes = random_spikes(rng, net_a, 6, activity=0.5)
    want_a, want = run_network(net_a, spikes), run_network(net_b, spikes)
    assert any((want_a.spikes[n] != want.spikes[n]).any() for n in want.spikes)
    plan, plan_b = compile_network(net_a, 2), compile_network(net_b, 2)
    assert plan.layout_hash() == plan_b.layout_hash()
    dut = NeuronArray(plan, bank_depth=8)
    assert dut.memory_banks(None)["weights"] == 8
    rec = array_amaranth.ArrayRecorder(plan, spikes.shape[0])
    array_amaranth._simulate(
        dut,
        spikes[np.newaxis],
        [rec],
        0.0,
        np.random.default_rng(0),
        array_amaranth.max_wait_cycles(plan, 4, 0.0),
        list(runtime_writes(plan_b)),
    )
    assert not rec.errors
    for name in want.spikes:
        assert (rec.spikes[name] == want.spikes[name]).all(), name


def test_bank_depth_errors():
    plan = compile_network(random_network(np.random.default_rng(0), max_size=8), 1)
    with pytest.raises(ValueError, match=r"^bank_depth must be a power of two, not 6$"):
        NeuronArray(plan, bank_depth=6)
    with pytest.raises(TypeError, match=r"^bank_depth must be an integer in \[2, 16777216\]"):
        NeuronArray(plan, bank_depth=1)
