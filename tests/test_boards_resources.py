"""The block RAM model of :mod:`spikeforge.boards.resources` on hand-computed cases: how Yosys
maps one memory per family, the memories of a small array, the array's real memories, the block
RAMs of builds measured on the boards, and the block count of every board's device."""

import numpy as np
import pytest
from amaranth.hdl import Fragment
from network_cases import random_network

from spikeforge.bench import networks
from spikeforge.boards import resources
from spikeforge.boards.registry import BOARDS
from spikeforge.gen.compile import compile_network
from spikeforge.hdl.array import NeuronArray
from spikeforge.spec.errors import SpikeforgeError


@pytest.mark.parametrize(
    "depth, width, family, expected",
    [
        # iCE40 EBR: 256x16, 512x8, 1024x4, 2048x2; a block costs 64, a bit of logic 1.
        (12288, 8, "ice40", ("block", 24)),  # 512x8: 24 deep
        (192, 18, "ice40", ("block", 2)),  # 256x16 twice wide (512x8 would need 3)
        (8, 9, "ice40", ("block", 1)),  # 72 bits of logic cost more than one block
        (3, 9, "ice40", ("logic", 0)),  # 27 bits
        # ECP5 / Gowin 18 kbit blocks cost 128; LUT RAM 16x4 cells cost 4 each.
        (11392, 14, "ecp5", ("block", 12)),  # 4096x4: 4 wide x 3 deep, the cheapest decoder
        # Measured on the OrangeCrab: 96,256 x 8 took 48 blocks of 16384x1 (6 deep, read mux cost
        # 0.5 x 5 x 8 = 20), not 47 of 2048x9 (mux 0.5 x 46 x 8 = 184 > one block's 128).
        (96256, 8, "ecp5", ("block", 48)),
        (94208, 8, "ecp5", ("block", 46)),  # 4096x4: 2 wide x 23 deep
        (43008, 8, "gowin", ("block", 21)),  # 2048x9: 21 deep
        (512, 36, "gowin", ("block", 1)),
        (70, 13, "gowin", ("distributed", 0)),  # 5 x 4 cells = 80 < 128: LUT RAM
        (3, 7, "ecp5", ("distributed", 0)),  # one 2-cell row (8) < 21 bits of logic
    ],
)
def test_map_memory_by_hand(depth, width, family, expected):
    assert resources.map_memory(depth, width, family) == expected


def test_memory_model_small_plan_by_hand():
    plan = compile_network(networks.capacity_network(16), 1)
    kinds = {
        m["name"]: (m["depth"], m["width"], m["kind"], m["blocks"])
        for m in resources.memory_model(plan, "ice40")[1]
    }
    # 64 x 16 weights of 8 bits; acc 1 bank (feed-forward) x 16 of 14 bits (64 8-bit weights);
    # state 16-bit v plus 2 refractory bits; spike FIFO: row (4 bits) + 1 lane bit; output FIFO
    # 1 + 6 bits. No bias memory: every bias is 0, which the parameter row carries.
    assert kinds == {
        "weights0": (1024, 8, "block", 2),
        "acc0": (16, 14, "block", 1),
        "state0": (16, 18, "block", 2),
        "spike_fifo": (16, 5, "block", 1),
        "out_fifo": (3, 7, "logic", 0),
    }
    assert resources.memory_model(plan, "ice40")[0] == 6
    # ECP5: the weights in one 2048x9 block, everything else in LUT RAM.
    assert resources.memory_model(plan, "ecp5")[0] == 1
    # Two lanes: every per-lane memory twice, half as deep.
    plan2 = compile_network(networks.capacity_network(16), 2)
    names = [m["name"] for m in resources.memory_model(plan2, "ice40")[1]]
    assert names == [
        "weights0",
        "acc0",
        "state0",
        "weights1",
        "acc1",
        "state1",
        "spike_fifo",
        "out_fifo",
    ]
    assert resources.memory_model(plan2, "ice40")[1][0]["depth"] == 512
    # A recurrent projection adds into the next step's bank: two banks of 16 words.
    recurrent = compile_network(networks.recurrent_network(8, 16), 1)
    (acc,) = [m for m in resources.memory_model(recurrent, "ice40")[1] if m["name"] == "acc0"]
    assert (recurrent.acc_banks, acc["depth"]) == (2, 32)


def _per_neuron_plan():
    """A plain LIF network with per-neuron parameters (its bias words are wider)."""
    net = random_network(np.random.default_rng(8), n_lif=2, max_size=12, per_neuron=1.0)
    assert any(p.per_neuron for p in net.lif_populations)
    return compile_network(net, 2)


@pytest.mark.parametrize(
    "make_plan",
    [lambda: compile_network(networks.capacity_network(10), 2), _per_neuron_plan],
    ids=["capacity", "per-neuron"],
)
def test_array_memories_match_the_array(make_plan):
    plan = make_plan()
    array = NeuronArray(plan)
    Fragment.get(array, None)
    model = {name: (depth, width) for name, depth, width in resources.array_memories(plan)}
    for lane in range(2):
        for name, mems in (
            ("weights", array.weight_mem),
            ("acc", array.acc_mem),
            ("state", array.state_mem),
            ("bias", array.bias_mem),
        ):
            if not mems:  # no bias memory: every population's biases one value
                assert f"{name}{lane}" not in model
                continue
            mem = mems[lane]
            width = mem.shape.size if hasattr(mem.shape, "size") else mem.shape.width
            assert model[f"{name}{lane}"] == (mem.depth, width)


def test_model_reproduces_measured_builds():
    # docs/performance.md: the 256-128-10 array took 20 DP16KD on the ECP5-85F at P = 1, 2, 4
    # and 20 BSRAM on the GW1NR-9 at P = 1, 2, with two accumulator banks. The network is
    # feed-forward, so the array now has one: at P = 2 each lane's 69 x 13 accumulator (138
    # words with two banks, a block) is LUT RAM, 18 blocks in all (18 DP16KD built). Those
    # arrays had a bias memory; its biases are all 0, so the array now keeps none, one block
    # fewer at P = 1 (at P = 2 and 4 the bias memories were LUT RAM).
    net = networks.feedforward_network()
    for family, lanes, blocks, without_bias in (
        ("ecp5", 1, 20, 19),
        ("ecp5", 2, 18, 18),
        ("ecp5", 4, 20, 20),
        ("gowin", 1, 20, 19),
        ("gowin", 2, 18, 18),
    ):
        plan = compile_network(net, lanes)
        assert resources.memory_model(plan, family)[0] == without_bias
        plan.bias[0, 0] = 1  # biases that differ: the measured arrays' bias memory
        assert resources.memory_model(plan, family)[0] == blocks


def test_device_blocks():
    assert {b.name: resources.device_blocks(b.device) for b in BOARDS.values()} == {
        "icebreaker": 30,
        "icesugar": 30,
        "ulx3s-85f": 208,
        "orangecrab": 56,
        "tangnano9k": 26,
    }
    with pytest.raises(
        SpikeforgeError,
        match=r"no block RAM count known for device 'XC7A35T': "
        r"known are iCE40UP5K, LFE5U-85F",
    ):
        resources.device_blocks("XC7A35T")
