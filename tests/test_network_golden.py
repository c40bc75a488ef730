"""The golden network model against a naive reference and against ``run_population``."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from network_cases import random_network, random_spikes, synaptic_network

from spikeforge.gen.network import FORMAT, Network
from spikeforge.sim import golden, network_golden
from spikeforge.sim.golden import run_population
from spikeforge.sim.network_golden import run_network
from spikeforge.spec.limits import v_range, w_range
from spikeforge.spec.params import NeuronParams


def naive_run(net, spikes):
    """One neuron at a time in plain Python ints, from docs/network.md and docs/neuron.md.

    Returns ``(spikes, traces)`` as dicts of ``(T, size)`` lists.
    """
    lo, hi = v_range(net.v_width)
    sat = lambda x: min(max(x, lo), hi)  # noqa: E731
    state = {
        p.name: ([q.v_rest for q in p.neuron_params()], [0] * p.size) for p in net.lif_populations
    }
    current_state = {p.name: [0] * p.size for p in net.lif_populations}
    out = {p.name: [] for p in net.lif_populations}
    traces = {p.name: [] for p in net.lif_populations}
    previous = {p.name: [0] * p.size for p in net.populations}
    for t in range(len(spikes)):
        current = {}
        column = 0
        for pi, pop in enumerate(net.populations):
            if pop.kind == "input":
                current[pop.name] = [int(s) for s in spikes[t][column : column + pop.size]]
                column += pop.size
                continue
            v, r = state[pop.name]
            fired, trace = [], []
            for n, p in enumerate(pop.neuron_params()):
                total = int(pop.bias[n])
                for proj in net.projections:
                    if proj.target != pop.name:
                        continue
                    # The timing rule: an earlier population's spikes of this step, else the
                    # spikes of the previous step.
                    src_index = net.index(proj.source)
                    seen = current[proj.source] if src_index < pi else previous[proj.source]
                    for j, s in enumerate(seen):
                        if s:
                            total += int(proj.weights[j][n])
                if p.syn_decay is not None:
                    # Current-based: the input goes into i, which the membrane integrates.
                    i = current_state[pop.name]
                    decayed = 0
                    for k in p.syn_decay:
                        decayed += (i[n] >> abs(k)) if k >= 0 else -(i[n] >> abs(k))
                    i[n] = sat(i[n] - decayed + total)
                    total = i[n]
                if r[n] > 0:
                    r[n] -= 1
                    fired.append(0)
                    trace.append(v[n])
                    continue
                leak = 0
                for k in p.decay:
                    step = (v[n] - p.v_rest) >> abs(k)
                    leak += step if k >= 0 else -step
                v_prime = sat(v[n] - leak + total)
                if v_prime > p.v_th:
                    v[n] = p.v_reset if p.reset_mode == "zero" else sat(v_prime - p.v_th)
                    r[n] = p.t_ref
                    fired.append(1)
                    trace.append(p.v_peak)
                else:
                    v[n] = v_prime
                    fired.append(0)
                    trace.append(v_prime)
            current[pop.name] = fired
            out[pop.name].append(fired)
            traces[pop.name].append(trace)
        previous = current
    return out, traces


def test_timing_rule_example():
    """One input spike at t=2 through every kind of projection (docs/network.md example)."""
    relay = {
        "kind": "lif",
        "size": 1,
        "v_th": 0,
        "v_reset": 0,
        "v_rest": 0,
        "v_peak": 9,
        "t_ref": 0,
        "decay": [],
        "reset_mode": "zero",
        "bias": 0,
    }
    net = Network.from_dict(
        {
            "format": "spikeforge-network/1",
            "v_width": 8,
            "w_width": 4,
            "populations": [
                {"name": "y", **relay},
                {"name": "in", "kind": "input", "size": 1},
                {"name": "x", **relay},
                {"name": "a", **relay},
                {"name": "b", **relay},
            ],
            "projections": [
                {"from": "in", "to": "y", "weights": [[1]]},  # later input: next step
                {"from": "in", "to": "a", "weights": [[1]]},  # earlier: same step
                {"from": "a", "to": "b", "weights": [[1]]},  # earlier: same step
                {"from": "a", "to": "x", "weights": [[1]]},  # later: next step
                {"from": "b", "to": "b", "weights": [[1]]},
            ],
        }
    )  # self: next step
    spikes = np.zeros((6, 1), np.uint8)
    spikes[2, 0] = 1
    run = run_network(net, spikes, trace=True)
    when = {name: np.nonzero(s[:, 0])[0].tolist() for name, s in run.spikes.items()}
    # b keeps itself firing through its self-loop from t=2 on.
    assert when == {"y": [3], "x": [3], "a": [2], "b": [2, 3, 4, 5]}
    assert run.v["a"][:, 0].tolist() == [0, 0, 9, 0, 0, 0]
    assert [p.recurrent for p in net.projections] == [True, False, False, True, True]
    assert run.cycles is None


@pytest.mark.parametrize("seed", range(24))
def test_against_naive_reference(seed):
    rng = np.random.default_rng(seed)
    net = random_network(rng, max_size=10, recurrent=seed % 2 == 0)
    check_against_naive(rng, net)


@pytest.mark.parametrize("seed", range(12))
def test_current_based_against_naive_reference(seed):
    rng = np.random.default_rng([seed, 5])
    net = synaptic_network(rng, max_size=10, recurrent=seed % 2 == 0)
    check_against_naive(rng, net)


@pytest.mark.parametrize("seed", range(12))
def test_per_neuron_against_naive_reference(seed):
    """Per-neuron v_th, v_reset, v_rest, decay and syn_decay: each neuron with its own."""
    rng = np.random.default_rng([seed, 17])
    while True:
        net = random_network(
            rng, max_size=10, recurrent=seed % 2 == 0, synaptic=0.3, per_neuron=0.8
        )
        if any(p.per_neuron for p in net.lif_populations):
            break
    check_against_naive(rng, net)


def check_against_naive(rng, net):
    spikes = random_spikes(rng, net, 25, activity=rng.uniform(0.05, 0.6))
    run = run_network(net, spikes, trace=True)
    expected, traces = naive_run(net, spikes.tolist())
    for pop in net.lif_populations:
        assert run.spikes[pop.name].dtype == np.uint8
        assert run.spikes[pop.name].tolist() == expected[pop.name], pop.name
        assert run.v[pop.name].tolist() == traces[pop.name], pop.name


def check_batch_against_naive(net, spikes, layers=True):
    run = run_network(net, spikes, trace=True, layers=layers)
    for b in range(len(spikes)):
        expected, traces = naive_run(net, spikes[b].tolist())
        for pop in net.lif_populations:
            assert run.spikes[pop.name][b].tolist() == expected[pop.name], pop.name
            assert run.v[pop.name][b].tolist() == traces[pop.name], pop.name


@pytest.mark.parametrize("fraction", [0.0, 1.0])
@pytest.mark.parametrize("seed", range(6))
def test_event_and_dense_sums_against_naive_reference(seed, fraction, monkeypatch):
    """Both ways of summing the weights (per spike event, dense product) on a batch whose
    entries have different activities, so the busiest-first event order is exercised."""
    monkeypatch.setattr(network_golden, "EVENT_FRACTION", fraction)
    rng = np.random.default_rng(100 + seed)
    net = random_network(rng, max_size=10, recurrent=seed % 2 == 0)
    spikes = np.stack([random_spikes(rng, net, 15, activity=a) for a in (0.05, 0.6, 0.0, 0.3)])
    check_batch_against_naive(net, spikes)


def test_batch_equals_separate_runs():
    rng = np.random.default_rng(99)
    net = random_network(rng, n_lif=3, recurrent=True, max_size=64)
    spikes = random_spikes(rng, net, 30, batch=4, activity=0.3)
    run = run_network(net, spikes, trace=True)
    assert not run_network(net, spikes).v
    for b in range(4):
        single = run_network(net, spikes[b], trace=True)
        for pop in net.lif_populations:
            assert run.spikes[pop.name].shape == (4, 30, pop.size)
            assert np.array_equal(run.spikes[pop.name][b], single.spikes[pop.name])
            assert np.array_equal(run.v[pop.name][b], single.v[pop.name])


@pytest.mark.parametrize("widen", ["state", "rows"])
def test_narrow_integer_types_agree_with_int64(widen, monkeypatch):
    """int32 state and sums, and int16 weight rows, where they fit, give what int64 gives."""
    rng = np.random.default_rng(5)
    nets = [random_network(rng, recurrent=True, w_width=w, max_size=128) for w in (4, 8, 16)]
    inputs = [
        random_spikes(rng, net, 20, batch=3, activity=a) for net, a in zip(nets, (0.5, 0.05, 0.2))
    ]
    assert golden.work_dtype(nets[0].v_width, nets[0].required_acc_width()) == np.int32
    assert network_golden._row_dtype(nets[0].projections[0].weights, np.int32) == np.int16
    narrow = [run_network(n, s, trace=True) for n, s in zip(nets, inputs)]
    if widen == "state":
        monkeypatch.setattr(golden, "work_dtype", lambda v_width, acc_width: np.int64)
    else:
        monkeypatch.setattr(network_golden, "_row_dtype", lambda weights, dtype: dtype)
    for net, spikes, expected in zip(nets, inputs, narrow):
        got = run_network(net, spikes, trace=True)
        for pop in net.lif_populations:
            assert np.array_equal(got.spikes[pop.name], expected.spikes[pop.name])
            assert np.array_equal(got.v[pop.name], expected.v[pop.name])


@pytest.mark.parametrize("layers", [True, False])
def test_event_lists_built_in_chunks(monkeypatch, layers):
    """The run goes a chunk of steps at a time (layer by layer, or step by step with the
    input spikes' event lists built per chunk); a run longer than several chunks, with
    next-step projections from an input and from a later population (which take the previous
    step's spikes, also across a chunk's start), equals the naive reference."""
    monkeypatch.setattr(network_golden, "_CHUNK_STEPS", 4)
    rng = np.random.default_rng(8)
    net = Network.from_dict(
        {
            "format": FORMAT,
            "v_width": 12,
            "w_width": 6,
            "populations": [
                {
                    "name": "a",
                    "kind": "lif",
                    "size": 5,
                    "v_th": 20,
                    "v_reset": 0,
                    "v_rest": 0,
                    "v_peak": 100,
                    "t_ref": 0,
                    "decay": [2],
                    "reset_mode": "zero",
                    "bias": 0,
                },
                {"name": "inp", "kind": "input", "size": 6},
                {
                    "name": "b",
                    "kind": "lif",
                    "size": 3,
                    "v_th": 10,
                    "v_reset": -3,
                    "v_rest": 0,
                    "v_peak": 100,
                    "t_ref": 1,
                    "decay": [],
                    "reset_mode": "subtract",
                    "bias": 2,
                },
            ],
            "projections": [
                {"from": "inp", "to": "a", "weights": rng.integers(-8, 31, (6, 5))},
                {"from": "b", "to": "a", "weights": rng.integers(-8, 31, (3, 5))},
                {"from": "inp", "to": "b", "weights": rng.integers(-8, 31, (6, 3))},
            ],
        }
    )
    assert any(proj.recurrent and proj.source == "inp" for proj in net.projections)
    spikes = np.stack([random_spikes(rng, net, 18, activity=a) for a in (0.1, 0.5, 0.0)])
    check_batch_against_naive(net, spikes, layers)


@st.composite
def single_population(draw):
    v_width = draw(st.integers(2, 32))
    w_width = draw(st.integers(2, 16))
    lo, hi = v_range(v_width)
    n_in, size, steps = draw(st.integers(1, 8)), draw(st.integers(1, 8)), draw(st.integers(1, 20))
    values = st.integers(lo, hi)
    v_reset, v_th, v_peak = sorted(draw(st.lists(values, min_size=3, max_size=3)))
    params = NeuronParams(
        v_width=v_width,
        v_th=v_th,
        v_reset=v_reset,
        v_peak=v_peak,
        v_rest=draw(values),
        t_ref=draw(st.sampled_from([0, 1, 2, 7, 65535])),
        reset_mode=draw(st.sampled_from(["zero", "subtract"])),
        decay=tuple(
            draw(
                st.lists(
                    st.integers(-(v_width - 1), v_width - 1).filter(bool) | st.just(0), max_size=4
                )
            )
        ),
    )
    bias = draw(st.one_of(values, st.lists(values, min_size=size, max_size=size)))
    w_lo, w_hi = w_range(w_width)
    weights = np.array(
        draw(st.lists(st.integers(w_lo, w_hi), min_size=n_in * size, max_size=n_in * size))
    ).reshape(n_in, size)
    spikes = np.array(
        draw(st.lists(st.integers(0, 1), min_size=steps * n_in, max_size=steps * n_in)), np.uint8
    ).reshape(steps, n_in)
    return v_width, w_width, params, bias, weights, spikes


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(single_population())
def test_single_population_equals_run_population(case):
    v_width, w_width, params, bias, weights, spikes = case
    spec = {
        "name": "pop",
        "kind": "lif",
        "size": weights.shape[1],
        "v_th": params.v_th,
        "v_reset": params.v_reset,
        "v_rest": params.v_rest,
        "v_peak": params.v_peak,
        "t_ref": params.t_ref,
        "decay": list(params.decay),
        "reset_mode": params.reset_mode,
        "bias": bias,
    }
    net = Network.from_dict(
        {
            "format": "spikeforge-network/1",
            "v_width": v_width,
            "w_width": w_width,
            "populations": [{"name": "in", "kind": "input", "size": weights.shape[0]}, spec],
            "projections": [{"from": "in", "to": "pop", "weights": weights.tolist()}],
        }
    )
    biases = bias if isinstance(bias, list) else [bias] * weights.shape[1]
    per_neuron = [NeuronParams(**{**params.__dict__, "bias": b}) for b in biases]
    expected = run_population(per_neuron, spikes.astype(np.int64) @ weights, trace=True)
    got = run_network(net, spikes, trace=True)
    assert np.array_equal(got.spikes["pop"], expected.spikes)
    assert np.array_equal(got.v["pop"], expected.trace)
