"""Arrays without a bias memory (``ArrayPlan.bias_memory``, docs/array.md): where every
population's biases are one value, the parameter rows carry them.

Golden model against the array (Amaranth, and one Icarus case) for uniform nonzero, zero and
mixed biases; runtime loads through the host link, including the refused one; the block RAM
model. About 25 s of CPU.
"""

import numpy as np
import pytest
from amaranth.hdl import Fragment
from network_cases import random_spikes
from test_array import assert_same
from test_host_link import _assert_same

from spikeforge.bench.networks import capacity_network
from spikeforge.boards import resources
from spikeforge.boards.host import HostDriver, SimulatedBoard
from spikeforge.gen.compile import compile_network, runtime_writes
from spikeforge.gen.network import Network
from spikeforge.hdl.array import NeuronArray
from spikeforge.hdl.array_ports import CfgMemory
from spikeforge.sim.array_amaranth import run_array_amaranth
from spikeforge.sim.array_rtl import run_array_rtl
from spikeforge.sim.network_golden import run_network
from spikeforge.sim.rtl import require_or_skip
from spikeforge.spec import protocol as p
from spikeforge.spec.errors import SpikeforgeError


def bias_network(seed, h_bias, o_bias):
    """Inputs ``x`` (6) into ``h`` (7) into ``o`` (5), with the given biases (a value or one per
    neuron); weights drawn from ``seed``, the layout the same for every seed."""
    rng = np.random.default_rng(seed)
    lif = {
        "kind": "lif",
        "v_th": 60,
        "v_reset": 0,
        "v_rest": 0,
        "v_peak": 2000,
        "t_ref": 1,
        "decay": [2],
        "reset_mode": "subtract",
    }
    return Network.from_dict(
        {
            "format": "spikeforge-network/1",
            "v_width": 12,
            "w_width": 6,
            "acc_width": 12,  # every seed's, so that the layouts match
            "populations": [
                {"name": "x", "kind": "input", "size": 6},
                {**lif, "name": "h", "size": 7, "bias": h_bias},
                {**lif, "name": "o", "size": 5, "bias": o_bias},
            ],
            "projections": [
                {"from": "x", "to": "h", "weights": rng.integers(-8, 31, (6, 7)).tolist()},
                {"from": "h", "to": "o", "weights": rng.integers(-8, 31, (7, 5)).tolist()},
            ],
        }
    )


# (h bias, o bias, bias memory): uniform nonzero (a list of equal values is uniform too),
# zero, and mixed (h uniform, o not).
CASES = {
    "uniform": (5, [-3] * 5, False),
    "zero": (0, 0, False),
    "mixed": (4, [-6, 2, 0, 9, -1], True),
}


@pytest.mark.parametrize("case", CASES)
def test_plan_and_rows(case):
    h_bias, o_bias, bias_memory = CASES[case]
    plan = compile_network(bias_network(0, h_bias, o_bias), 2)
    assert plan.bias_memory is bias_memory
    array = NeuronArray(plan)
    Fragment.get(array, None)
    assert len(array.bias_mem) == (2 if bias_memory else 0)
    rows = [array.param_mem.init[k]["bias"] for k in range(2)]
    params = [w for w in runtime_writes(plan) if w[0] == CfgMemory.PARAMS]
    bias_writes = [w for w in runtime_writes(plan) if w[0] == CfgMemory.BIAS]
    if bias_memory:
        assert rows == [0, 0] and len(bias_writes) == 2 * plan.slots
    else:
        assert rows == [h_bias, o_bias if np.isscalar(o_bias) else o_bias[0]]
        assert bias_writes == []
    # The PARAMS writes are the rows the array was built with.
    layout = array.param_layout
    assert [data for _, _, _, data in params] == [
        layout.const(array.param_mem.init[k]).as_value().value for k in range(2)
    ]


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("lanes", [1, 2])
def test_array_matches_golden(case, lanes):
    h_bias, o_bias, _ = CASES[case]
    net = bias_network(1, h_bias, o_bias)
    spikes = random_spikes(np.random.default_rng(2), net, 6, activity=0.4)
    want = run_network(net, spikes, trace=True)
    assert want.spikes["h"].sum() > 0 and want.spikes["o"].sum() > 0
    got = run_array_amaranth(net, spikes, trace=True, lanes=lanes, stages=2)
    assert_same(got, want, case)


def test_icarus_matches_golden(tmp_path):
    """Uniform nonzero biases through the generated Verilog (no bias memory in it)."""
    require_or_skip("icarus")
    net = bias_network(3, -2, 7)
    spikes = random_spikes(np.random.default_rng(4), net, 5, activity=0.5)
    want = run_network(net, spikes, trace=True)
    got = run_array_rtl(
        net, spikes, trace=True, simulator="icarus", build_root=tmp_path, lanes=2, stages=4
    )
    assert_same(got, want, "icarus")


def test_layout_hash_covers_the_bias_memory():
    uniform = compile_network(bias_network(0, 5, 0), 2)
    other_uniform = compile_network(bias_network(9, -4, 3), 2)
    differing = compile_network(bias_network(0, 5, [0, 0, 0, 0, 1]), 2)
    assert uniform.layout_hash() == other_uniform.layout_hash()
    assert uniform.layout_hash() != differing.layout_hash()


def test_runtime_load_of_uniform_biases():
    """Other weights and other uniform biases load through the PARAMS rows (no BIAS frame);
    biases that differ within a population need a bias memory: refused by the layout hash; a
    CFG write to the BIAS memory the array does not have is out of range."""
    net, other = bias_network(5, 3, -2), bias_network(6, -5, 8)
    plan, other_plan = compile_network(net, 2), compile_network(other, 2)
    spikes = random_spikes(np.random.default_rng(7), net, 6, activity=0.5)
    golden, golden_other = run_network(net, spikes), run_network(other, spikes)
    assert (golden.spikes["h"] != golden_other.spikes["h"]).any()
    board = SimulatedBoard(plan)
    driver = HostDriver(board)
    _assert_same(driver.run(spikes, plan), golden)
    driver.load(other_plan)
    _assert_same(driver.run(spikes, other_plan), golden_other)
    with pytest.raises(
        SpikeforgeError,
        match=r"^the board's design has another layout than the network: layout_hash "
        r"[0-9a-f]{16} \(network: [0-9a-f]{16}: other decays, projections, t_ref range or "
        r"per-neuron biases\); rebuild with spikeforge build$",
    ):
        driver.load(compile_network(bias_network(6, [-5] * 6 + [1], 8), 2))
    frame = p.encode_frame(p.CMD_CFG, p.encode_cfg(CfgMemory.BIAS, 0, 0, 1, board.link.data_bytes))
    board.write(frame)
    decoder = p.FrameDecoder()
    frames = []
    while not frames:
        frames = decoder.feed(board.read(1))
    assert frames[0] == (p.RSP_ERROR, bytes([p.ERR_PAYLOAD, p.CMD_CFG]))
    # Nothing changed.
    _assert_same(driver.run(spikes, other_plan), golden_other)


def test_memory_model_of_the_2048_neuron_board_top():
    """capacity_network(2048) at P = 2 with SPRAM weights: no bias memory, so the array's
    memories take 21 EBRs (accumulators 4 and state 5 per lane, spike FIFO 3; as built), 29
    with a bias memory (as built before)."""
    plan = compile_network(capacity_network(2048), 2)
    assert not plan.bias_memory
    _, memories = resources.memory_model(plan, "ice40", runtime_weights=True)
    assert {m["name"]: m["blocks"] for m in memories} == {
        "acc0": 4,
        "state0": 5,
        "acc1": 4,
        "state1": 5,
        "spike_fifo": 3,
        "out_fifo": 0,
    }
    plan.bias[1, 5] = 1
    assert plan.bias_memory
    assert resources.memory_model(plan, "ice40", runtime_weights=True)[0] == 29
