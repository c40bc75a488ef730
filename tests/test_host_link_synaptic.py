"""A network with current-based populations through the host link (byte level, Amaranth's
simulator): the wider state and parameter words of a synaptic array travel the same protocol,
runs equal the golden model, also after runtime loading of another network of the layout.
Runtime about 30 s on two shared cores (13 s of CPU)."""

import numpy as np
from host_link_cases import relayout_variant, small_network
from network_cases import random_spikes

from spikeforge.boards.host import HostDriver, SimulatedBoard
from spikeforge.gen.compile import compile_network
from spikeforge.sim.network_golden import run_network


def _synaptic_network(seed):
    """A small, lively network with at least one current-based population."""
    while True:
        net = small_network(seed, synaptic=0.7)
        if any(p.params.synaptic for p in net.lif_populations):
            return net
        seed += 100


def _same(run, golden):
    for name in golden.spikes:
        np.testing.assert_array_equal(run.spikes[name], golden.spikes[name], err_msg=name)


def test_synaptic_network_runs_and_loads_as_golden_predicts():
    net = _synaptic_network(11)
    # Another network of the same layout (the synaptic decays are built into the cores, so they
    # stay): other weights and thresholds.
    other = relayout_variant(net, 11)
    plan, other_plan = compile_network(net, 2), compile_network(other, 2)
    assert plan.synaptic and plan.syn_decay_sets == other_plan.syn_decay_sets
    spikes = random_spikes(np.random.default_rng(11), net, 8, batch=2, activity=0.5)
    golden, golden_other = run_network(net, spikes), run_network(other, spikes)
    assert sum(int(s.sum()) for s in golden.spikes.values()) > 0
    assert any((golden.spikes[n] != golden_other.spikes[n]).any() for n in golden.spikes)

    driver = HostDriver(SimulatedBoard(plan))
    assert driver.check_plan(plan)["network_hash"] == net.network_hash()
    _same(driver.run(spikes), golden)
    driver.load(other_plan)
    _same(driver.run(spikes, other_plan), golden_other)
