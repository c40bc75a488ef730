"""Convolutions on the neuron array (``docs/array.md``, "Convolutions"): the Python reference of
the kernel walk against the golden model's connectivity, and the array bit-exact with the golden
model on random convolutional networks."""

import numpy as np
import pytest
from conv_cases import draw_geometry, random_conv_network
from hypothesis import given, settings
from hypothesis import strategies as st

from spikeforge.gen.conv_walk import conv_walk, conv_weight_words, walk
from spikeforge.gen.network import Network
from spikeforge.sim.array_amaranth import run_array_amaranth
from spikeforge.sim.native import run_array_native
from spikeforge.sim.network_golden import run_network
from spikeforge.sim.rtl import require_or_skip


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_walk_reaches_exactly_the_synapses(seed):
    """For every source neuron, the walk's (weight, target) pairs are the synapses of the
    unrolled convolution (pool, stride, padding, dilation, groups), each once."""
    rng = np.random.default_rng(seed)
    net = Network.from_dict(random_conv_network(rng, draw_geometry, recurrent=False))
    for proj in net.projections[:2]:
        conv = conv_walk(proj.geometry)
        words = conv_weight_words(proj)
        dense = proj.dense()
        for j in range(dense.shape[0]):
            got = np.zeros(dense.shape[1], np.int64)
            steps = walk(conv, j)
            for w_addr, target in steps:
                got[target] += words[w_addr]
            np.testing.assert_array_equal(got, dense[j])
            # Each (tap, channel) once: no target twice from one tap word.
            assert len(set(steps)) == len(steps)
            assert conv.words(j) == max(len(steps), 1)


def small_conv_network(seed):
    """A random conv network of ``conv_cases`` shrunk so that a simulation takes seconds."""
    rng = np.random.default_rng(seed)
    return Network.from_dict(random_conv_network(rng, draw_geometry)), rng


@pytest.mark.parametrize("seed, lanes", [(3, 1), (4, 2)])
def test_array_equals_golden(seed, lanes):
    """Random conv (pool, stride, padding, dilation, groups), pooled dense and recurrent dense
    projections: the Amaranth array is bit-exact with the golden model, spikes and traces."""
    net, rng = small_conv_network(seed)
    spikes = (rng.random((4, net.n_inputs)) < 0.4).astype(np.uint8)
    want = run_network(net, spikes, trace=True)
    got = run_array_amaranth(net, spikes, trace=True, lanes=lanes)
    for name in want.spikes:
        np.testing.assert_array_equal(got.spikes[name], want.spikes[name])
        np.testing.assert_array_equal(got.v[name], want.v[name])


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
