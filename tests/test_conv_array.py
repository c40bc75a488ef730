"""Convolutions on the neuron array (``docs/array.md``, "Convolutions"): the Python reference of
the kernel walk against the golden model's connectivity, and the array bit-exact with the golden
model on random convolutional networks."""

import functools

import numpy as np
import pytest
from conv_cases import draw_geometry, lif, random_conv_network
from hypothesis import given, settings
from hypothesis import strategies as st

from spikeforge.bench.conv import step_cycle_bounds
from spikeforge.gen.compile import compile_network
from spikeforge.gen.conv_walk import conv_walk, conv_weight_words, walk
from spikeforge.gen.network import FORMAT, Network
from spikeforge.gen.synth import coarse_stats, multiplier_cells
from spikeforge.hdl.array import NeuronArray
from spikeforge.hdl.plan import PopulationPlan
from spikeforge.sim import array_amaranth
from spikeforge.sim.array_amaranth import run_array_amaranth
from spikeforge.sim.native import run_array_native
from spikeforge.sim.native_icarus import run_array_icarus
from spikeforge.sim.network_golden import run_network
from spikeforge.sim.rtl import require_or_skip


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    lanes=st.sampled_from([1, 2, 4]),
    channel_minor=st.booleans(),
)
def test_walk_reaches_exactly_the_synapses(seed, lanes, channel_minor):
    """For every source neuron, the walk's (weight, target) pairs are the synapses of the
    unrolled convolution (pool, stride, padding, dilation, groups), each once, for both target
    layouts and lanes over output channels where they divide a group's."""
    rng = np.random.default_rng(seed)
    net = Network.from_dict(random_conv_network(rng, draw_geometry, recurrent=False))
    for proj in net.projections[:2]:
        conv = conv_walk(proj.geometry, lanes, channel_minor)
        words = conv_weight_words(proj, conv, lanes)
        target = PopulationPlan("t", proj.geometry.n_out, False)
        if channel_minor:
            target = PopulationPlan("t", proj.geometry.n_out, False, channels=proj.weights.shape[0])
        dense = proj.dense()
        for j in range(dense.shape[0]):
            got = np.zeros(dense.shape[1], np.int64)
            steps = walk(conv, j)
            for w_addr, place in steps:
                for lane in range(lanes):
                    if conv.vector:
                        got[target.neuron(place + lane)] += words[lane, w_addr]
                    elif place % lanes == lane:
                        got[target.neuron(place)] += words[lane, w_addr]
            np.testing.assert_array_equal(got, dense[j])
            assert len(set(steps)) == len(steps)
            assert conv.words(j) == max(len(steps), 1)


def small_conv_network(seed):
    """A random conv network of ``conv_cases`` shrunk so that a simulation takes seconds."""
    rng = np.random.default_rng(seed)
    return Network.from_dict(random_conv_network(rng, draw_geometry)), rng


@pytest.mark.parametrize(
    "seed, lanes, out_stall",
    [(3, 1, 0.0), (4, 2, 0.0)]
    + [
        pytest.param(s, (1, 2, 4)[s % 3], 0.3 * (s % 2), marks=pytest.mark.slow)
        for s in range(100, 160)
    ],
)
def test_array_equals_golden(seed, lanes, out_stall):
    """Random conv (pool, stride, padding, dilation, groups), pooled dense and recurrent dense
    projections: the Amaranth array is bit-exact with the golden model, spikes and traces (60
    more networks with ``--slow``, some with output back-pressure)."""
    net, rng = small_conv_network(seed)
    spikes = (rng.random((4, net.n_inputs)) < 0.4).astype(np.uint8)
    want = run_network(net, spikes, trace=True)
    got = run_array_amaranth(net, spikes, trace=True, lanes=lanes, out_stall=out_stall)
    for name in want.spikes:
        np.testing.assert_array_equal(got.spikes[name], want.spikes[name])
        np.testing.assert_array_equal(got.v[name], want.v[name])


def channel_net(rng):
    """in 2x6x6 -> conv 3x3 pad 1 -> c1 4x6x6 -> conv 3x3 stride 2 -> c2 4x2x2 -> out 3, with
    dense projections into and out of the channel-minor populations, recurrent too."""
    kernel1 = rng.integers(-10, 30, (4, 2, 3, 3))
    kernel2 = rng.integers(-10, 30, (4, 4, 3, 3))
    return Network.from_dict(
        {
            "format": FORMAT,
            "v_width": 16,
            "w_width": 8,
            "populations": [
                {"name": "inp", "kind": "input", "size": 72, "shape": [2, 6, 6]},
                lif("c1", [4, 6, 6], decay=[2], bias=3),
                lif("c2", [4, 2, 2]),
                lif("out", [3], reset_mode="zero"),
            ],
            "projections": [
                {
                    "from": "inp",
                    "to": "c1",
                    "kind": "conv2d",
                    "out_channels": 4,
                    "kernel": 3,
                    "padding": 1,
                    "weights": kernel1.tolist(),
                },
                {
                    "from": "c1",
                    "to": "c2",
                    "kind": "conv2d",
                    "out_channels": 4,
                    "kernel": 3,
                    "stride": 2,
                    "weights": kernel2.tolist(),
                },
                {"from": "inp", "to": "c2", "weights": rng.integers(-5, 9, (72, 16)).tolist()},
                {"from": "c2", "to": "out", "weights": rng.integers(-9, 30, (16, 3)).tolist()},
                {"from": "out", "to": "c1", "weights": rng.integers(-9, 9, (3, 144)).tolist()},
            ],
        }
    )


def test_feed_forward_conv_network_with_one_accumulator_bank():
    """Without a recurrent projection the array has one accumulator bank, which the kernel
    walk must address on every step (it once wrote odd steps past it): bit-exact with golden
    over 4 steps."""
    rng = np.random.default_rng(8)
    d = channel_net(rng).to_dict()
    d["projections"] = d["projections"][:-1]
    net = Network.from_dict(d)
    plan = compile_network(net, 2)
    assert plan.acc_banks == 1
    spikes = (rng.random((4, net.n_inputs)) < 0.3).astype(np.uint8)
    want = run_network(net, spikes)
    assert want.spikes["c1"][1::2].any()
    got = run_array_amaranth(net, spikes, lanes=2)
    for name in want.spikes:
        np.testing.assert_array_equal(got.spikes[name], want.spikes[name])


@pytest.mark.parametrize("lanes", [2, 4])
def test_lanes_over_output_channels(lanes):
    """Convolutions whose lanes run over output channels into channel-minor populations, with
    dense projections into and out of them: bit-exact with golden, and each event of a conv
    takes its valid taps times O / P cycles."""
    rng = np.random.default_rng(7)
    net = channel_net(rng)
    plan = compile_network(net, lanes)
    assert [p.channels for p in plan.lif_populations] == [4, 4, 0]
    assert all(q.conv.vector for q in plan.projections if q.conv is not None)
    spikes = (rng.random((4, net.n_inputs)) < 0.3).astype(np.uint8)
    want = run_network(net, spikes, trace=True)
    assert all(want.spikes[name].any() for name in want.spikes)
    got = run_array_amaranth(net, spikes, trace=True, lanes=lanes)
    for name in want.spikes:
        np.testing.assert_array_equal(got.spikes[name], want.spikes[name])
        np.testing.assert_array_equal(got.v[name], want.v[name])
    # The bound L holds, and what the array adds is the per-population and per-spike-word
    # overhead of docs/array.md (and here the trace FIFO's waits), not a cycle per kernel word.
    bounds = step_cycle_bounds(plan, net, spikes, want)
    assert (bounds <= got.cycles).all()
    assert (got.cycles - bounds < 60 * len(plan.lif_populations)).all()


def test_verilator_equals_golden():
    """The generated Verilog of a conv network on Verilator (the native harness), with
    back-pressure on the outputs, bit-exact with the golden model; cycles as in Amaranth."""
    require_or_skip("verilator")
    net, rng = small_conv_network(4)
    spikes = (rng.random((2, 4, net.n_inputs)) < 0.4).astype(np.uint8)
    want = run_network(net, spikes, trace=True)
    got = run_array_native(net, spikes, trace=True, lanes=2, out_stall=0.3, seed=1)
    for name in want.spikes:
        np.testing.assert_array_equal(got.spikes[name], want.spikes[name])
        np.testing.assert_array_equal(got.v[name], want.v[name])
    amaranth = run_array_amaranth(net, spikes[0], trace=True, lanes=2)
    native = run_array_native(net, spikes[0], trace=True, lanes=2)
    np.testing.assert_array_equal(native.cycles, amaranth.cycles)


@pytest.mark.parametrize("seed, lanes", [(5, 1), (6, 2)])
def test_icarus_equals_golden(seed, lanes):
    """Random conv networks (pooling, stride, padding, dilation, groups, dense and recurrent
    projections) through the generated Verilog under Icarus, with back-pressure, bit-exact
    with the golden model."""
    require_or_skip("icarus")
    net, rng = small_conv_network(seed)
    spikes = (rng.random((4, net.n_inputs)) < 0.4).astype(np.uint8)
    want = run_network(net, spikes, trace=True)
    assert any(want.spikes[name].any() for name in want.spikes)
    got = run_array_icarus(net, spikes, trace=True, lanes=lanes, out_stall=0.3, seed=2)
    for name in want.spikes:
        np.testing.assert_array_equal(got.spikes[name], want.spikes[name])
        np.testing.assert_array_equal(got.v[name], want.v[name])


def test_kernel_walk_has_no_multiplier():
    """The array with both kinds of kernel walk (lanes over channels, one lane at a time) and
    the place-to-neuron mapping has no product before mapping: constants only."""
    rng = np.random.default_rng(7)
    d = channel_net(rng).to_dict()
    # c2 in C order (3 channels are no multiple of 2 lanes): a one-lane walk too.
    d["populations"][2] = lif("c2", [3, 2, 2])
    d["projections"][1]["out_channels"] = 3
    d["projections"][1]["weights"] = rng.integers(-10, 30, (3, 4, 3, 3)).tolist()
    d["projections"][2]["weights"] = rng.integers(-5, 9, (72, 12)).tolist()
    d["projections"][3]["weights"] = rng.integers(-9, 30, (12, 3)).tolist()
    plan = compile_network(Network.from_dict(d), 2)
    assert [q.conv.vector for q in plan.projections if q.conv is not None] == [True, False]
    stats = coarse_stats(NeuronArray(plan))
    assert multiplier_cells(stats) == {}
    assert stats["$add"] > 0


def test_banked_weights_equal_golden(monkeypatch):
    """With the weights, state and bias in banks of 8 words (the walk's lane mask waits with
    the accumulator address for the banked weight read) and output back-pressure: bit-exact."""
    net, rng = small_conv_network(4)
    spikes = (rng.random((3, net.n_inputs)) < 0.4).astype(np.uint8)
    want = run_network(net, spikes, trace=True)
    monkeypatch.setattr(array_amaranth, "NeuronArray", functools.partial(NeuronArray, bank_depth=8))
    got = array_amaranth.run_array_amaranth(net, spikes, trace=True, lanes=2, out_stall=0.3)
    for name in want.spikes:
        np.testing.assert_array_equal(got.spikes[name], want.spikes[name])
        np.testing.assert_array_equal(got.v[name], want.v[name])


def test_runtime_weights_equal_golden():
    """Kernel words loaded through ``cfg`` into runtime weights (SPRAM on an UltraPlus) are the
    ones the walk reads."""
    net, rng = small_conv_network(4)
    spikes = (rng.random((3, net.n_inputs)) < 0.4).astype(np.uint8)
    want = run_network(net, spikes)
    got = run_array_amaranth(net, spikes, lanes=2, runtime_weights=True)
    for name in want.spikes:
        np.testing.assert_array_equal(got.spikes[name], want.spikes[name])


def test_per_neuron_parameters_in_channel_minor_population():
    """Per-neuron ``v_th``, ``v_rest`` and decays of a population whose slots hold its neurons
    channel-minor land at the places of their neurons: bit-exact with golden on 2 lanes."""
    rng = np.random.default_rng(11)
    spec = channel_net(rng).to_dict()
    c1 = spec["populations"][1]
    c1["v_th"] = rng.integers(30, 90, c1["size"]).tolist()
    c1["v_rest"] = rng.integers(-5, 6, c1["size"]).tolist()
    c1["decay"] = [[2] if n % 3 else [3] for n in range(c1["size"])]
    net = Network.from_dict(spec)
    plan = compile_network(net, 2)
    assert plan.lif_populations[0].channels == 4 and plan.neuron is not None
    spikes = (rng.random((4, net.n_inputs)) < 0.3).astype(np.uint8)
    want = run_network(net, spikes, trace=True)
    assert want.spikes["c1"].any()
    got = run_array_amaranth(net, spikes, trace=True, lanes=2)
    for name in want.spikes:
        np.testing.assert_array_equal(got.spikes[name], want.spikes[name])
        np.testing.assert_array_equal(got.v[name], want.v[name])
