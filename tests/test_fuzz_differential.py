"""Differential fuzzing: the neuron array in Amaranth's simulator against the golden model.

Hypothesis draws small networks (as ``spikeforge-network/1`` dicts) and input spikes, runs
both, and demands identical spikes and membrane traces. The strategy is built so that a
disagreement shrinks to a small network: fewer and smaller populations, narrower widths, zero
weights, zero bias, no decay, ``t_ref`` 0, one lane, one stage, no back-pressure are where
every draw shrinks to (and plain LIF populations: about half are current-based, with a
``syn_decay``). Default: 25 examples, about 60-90 s on two loaded cores (Amaranth's
simulator dominates); ``--slow``: 300 examples.
"""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spikeforge.gen.network import Network
from spikeforge.sim.array_amaranth import run_array_amaranth
from spikeforge.sim.network_golden import run_network
from spikeforge.spec.limits import v_range, w_range

FUZZ = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@st.composite
def lif_params(draw, v_width, size):
    lo, hi = v_range(v_width)
    v_rest = draw(st.integers(lo, hi))
    v_th = draw(st.integers(lo, hi))
    v_reset = draw(st.integers(lo, v_th))
    v_peak = draw(st.integers(v_th, hi))
    shifts = st.integers(1, v_width - 1).flatmap(lambda s: st.sampled_from([s, -s]))
    decay = draw(st.lists(shifts, max_size=2))
    bias_values = st.integers(max(lo, -8), min(hi, 8))
    bias = draw(st.one_of(bias_values, st.lists(bias_values, min_size=size, max_size=size)))
    spec = {
        "v_th": v_th,
        "v_reset": v_reset,
        "v_rest": v_rest,
        "v_peak": v_peak,
        "t_ref": draw(st.integers(0, 3)),
        "decay": decay,
        "reset_mode": draw(st.sampled_from(["zero", "subtract"])),
        "bias": bias,
    }
    if draw(st.booleans()):
        spec["syn_decay"] = draw(st.lists(shifts | st.just(0), max_size=2))
    return spec


@st.composite
def network_dicts(draw):
    """A valid network dict: 1 or 2 input populations, 1 to 3 LIF populations, sizes 1 to 9."""
    v_width = draw(st.sampled_from([4, 8, 6, 16]))
    w_width = draw(st.sampled_from([2, 4, 8]))
    n_input = draw(st.integers(1, 2))
    n_lif = draw(st.integers(1, 3))
    kinds = ["input"] * n_input + ["lif"] * n_lif
    if n_input == 2 and draw(st.booleans()):
        # A later input population: its projections are recurrent.
        kinds = ["input", "lif", "input"] + ["lif"] * (n_lif - 1)
    pops = []
    for i, kind in enumerate(kinds):
        spec = {"name": f"{kind}{i}", "kind": kind, "size": draw(st.integers(1, 9))}
        if kind == "lif":
            spec.update(draw(lif_params(v_width, spec["size"])))
        pops.append(spec)

    w_lo, w_hi = w_range(w_width)
    # Mostly excitatory weights so that spikes propagate; 0 is where shrinking goes.
    weight = st.integers(w_lo // 2, w_hi) | st.integers(w_lo, w_hi)

    def matrix(rows, cols):
        return draw(
            st.lists(st.lists(weight, min_size=cols, max_size=cols), min_size=rows, max_size=rows)
        )

    projections = []
    for j, dst in enumerate(pops):
        if dst["kind"] != "lif":
            continue
        earlier = list(range(j))
        sources = {draw(st.sampled_from(earlier))} if earlier else set()
        # More sources, recurrent ones (same or later population) included.
        sources |= set(draw(st.lists(st.integers(0, len(pops) - 1), max_size=2)))
        for i in sorted(sources):
            projections.append(
                {
                    "from": pops[i]["name"],
                    "to": dst["name"],
                    "weights": matrix(pops[i]["size"], dst["size"]),
                }
            )
    d = {
        "format": "spikeforge-network/1",
        "v_width": v_width,
        "w_width": w_width,
        "populations": pops,
        "projections": projections,
    }
    if draw(st.booleans()):
        # An explicit accumulator wider than needed.
        d["acc_width"] = Network.from_dict(d).required_acc_width() + draw(st.integers(0, 3))
    return d


@st.composite
def cases(draw):
    d = draw(network_dicts())
    net = Network.from_dict(d)
    steps = draw(st.integers(1, 4))
    bits = draw(
        st.lists(st.booleans(), min_size=steps * net.n_inputs, max_size=steps * net.n_inputs)
    )
    spikes = np.array(bits, np.uint8).reshape(steps, net.n_inputs)
    config = dict(
        lanes=draw(st.sampled_from([1, 2, 4])),
        stages=draw(st.integers(1, 4)),
        out_stall=draw(st.sampled_from([0.0, 0.5])),
    )
    return d, spikes, config


def check_case(d, spikes, config):
    net = Network.from_dict(d)
    want = run_network(net, spikes, trace=True)
    got = run_array_amaranth(net, spikes, trace=True, **config)
    for name in want.spikes:
        assert np.array_equal(got.spikes[name], want.spikes[name]), f"spikes of {name}"
        assert np.array_equal(got.v[name], want.v[name]), f"trace of {name}"


@settings(max_examples=25, **FUZZ)
@given(cases())
def test_array_matches_golden(case):
    check_case(*case)


@pytest.mark.slow
@settings(max_examples=300, **FUZZ)
@given(cases())
def test_array_matches_golden_long(case):
    check_case(*case)


def test_strategy_draws_valid_varied_networks():
    # The strategy itself: every draw is a valid network, and the space is covered (recurrent
    # and feed-forward, both reset modes, several sizes), without running the slow simulator.
    seen = {"recurrent": set(), "reset_mode": set(), "sizes": set(), "lanes": set()}

    @settings(max_examples=60, database=None, **FUZZ)
    @given(cases())
    def collect(case):
        d, spikes, config = case
        net = Network.from_dict(d)
        assert spikes.shape[1] == net.n_inputs and set(np.unique(spikes)) <= {0, 1}
        seen["recurrent"].add(any(p.recurrent for p in net.projections))
        seen["reset_mode"] |= {p["reset_mode"] for p in d["populations"] if p["kind"] == "lif"}
        seen["sizes"] |= {p["size"] for p in d["populations"]}
        seen["lanes"].add(config["lanes"])

    collect()
    assert seen["recurrent"] == {False, True}
    assert seen["reset_mode"] == {"zero", "subtract"}
    assert len(seen["sizes"]) >= 5 and seen["lanes"] == {1, 2, 4}


def test_a_disagreement_shrinks_to_a_small_network():
    # A stand-in check that fails whenever some weight is nonzero: hypothesis must find it and
    # shrink to one input neuron, one LIF neuron, one projection.
    failing = []

    def check(d):
        weights = [w for p in d["projections"] for row in p["weights"] for w in row]
        if any(weights):
            failing.append(d)
            raise AssertionError("planted")

    @settings(max_examples=200, database=None, **FUZZ)
    @given(network_dicts())
    def search(d):
        check(d)

    with pytest.raises(AssertionError, match="planted"):
        search()
    smallest = failing[-1]
    assert [p["size"] for p in smallest["populations"]] == [1, 1]
    assert len(smallest["projections"]) == 1
    assert smallest["v_width"] == 4 and smallest["w_width"] == 2
