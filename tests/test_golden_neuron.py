"""The golden model against the worked examples of docs/neuron.md and its own properties."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spikeforge.sim.golden import cuba_lif_step, lif_step, param_arrays, run_population
from spikeforge.spec.limits import v_range
from spikeforge.spec.params import NeuronParams, decay_from_ratio, decay_value

BASE = dict(v_th=100, v_reset=0, v_rest=0, v_peak=200, t_ref=2, bias=0, decay=(4,))

# (v, r, I, parameter changes) -> (v, r, spike, trace): the table of docs/neuron.md.
WORKED = [
    ((50, 0, 10, {}), (57, 0, 0, 57)),
    ((-100, 0, 0, {}), (-93, 0, 0, -93)),
    ((15, 0, 0, {}), (15, 0, 0, 15)),
    ((95, 0, 20, {}), (0, 2, 1, 200)),
    ((95, 0, 20, {"reset_mode": "subtract"}), (10, 2, 1, 200)),
    ((0, 2, 999, {}), (0, 1, 0, 0)),
    ((32000, 0, 2000, {"decay": (15,), "v_th": 32767, "v_peak": 32767}), (32767, 0, 0, 32767)),
    ((64, 0, 0, {"decay": (3, -6)}), (57, 0, 0, 57)),
    ((100, 0, 0, {}), (94, 0, 0, 94)),
]


@pytest.mark.parametrize("before, after", WORKED)
def test_worked_examples(before, after):
    v, r, current, changes = before
    got = lif_step(v, r, current, param_arrays(NeuronParams(**{**BASE, **changes})))
    assert tuple(int(x) for x in got) == after


NEXT = {**BASE, "reset_timing": "next", "t_ref": 0, "reset_mode": "subtract"}
MIN = {"v_th": -32768, "v_reset": -32768, "decay": (), "reset_mode": "subtract"}

# (v, r, s, I, parameters) -> (v, r, spike, trace): the reset timing table of docs/neuron.md
# (the pending reset after the step is the spike).
RESET_TIMING_WORKED = [
    ((95, 0, 0, 20, NEXT), (110, 0, 1, 200)),
    ((110, 0, 1, 20, NEXT), (24, 0, 0, 24)),
    ((250, 0, 1, 0, NEXT), (135, 0, 1, 200)),
    ((110, 0, 1, 20, {**NEXT, "reset_mode": "zero"}), (20, 0, 0, 20)),
    ((110, 2, 1, 999, {**NEXT, "t_ref": 2}), (10, 1, 0, 10)),
    ((110, 0, 0, 0, NEXT), (104, 0, 1, 200)),
    ((95, 0, 0, 10, {**BASE, "threshold_compare": ">="}), (0, 2, 1, 200)),
    ((95, 0, 0, 10, BASE), (100, 0, 0, 100)),
    ((-32768, 0, 0, -5000, {**BASE, **MIN, "threshold_compare": ">="}), (0, 2, 1, 200)),
]


@pytest.mark.parametrize("before, after", RESET_TIMING_WORKED)
def test_reset_timing_worked_examples(before, after):
    v, r, pending, current, params = before
    got = lif_step(v, r, current, param_arrays(NeuronParams(**params)), np.array(bool(pending)))
    assert tuple(int(x) for x in got) == after


@pytest.mark.parametrize("mode", ["subtract", "zero"])
def test_reset_timing_next_is_snntorch_delayed_reset(mode):
    """snnTorch's Leaky with reset_delay=True (snntorch/_neurons/leaky.py, see docs/neuron.md)
    with ``beta U`` replaced by the integer ``U - (U >> 2)``: the same spikes and membranes as
    ``reset_timing = "next"``; ``"same"`` differs in subtract mode."""
    x = np.random.default_rng(5).integers(-20, 60, (300, 16))
    runs = {
        timing: run_population(
            NeuronParams(v_th=100, decay=(2,), reset_mode=mode, reset_timing=timing),
            x,
            trace=True,
        )
        for timing in ("next", "same")
    }
    mem, spikes, mems = np.zeros(16, np.int64), [], []
    for t in range(len(x)):
        reset = mem - 100 > 0  # mem_reset of the stored, unreset membrane
        if mode == "subtract":  # _base_sub
            mem = mem - (mem >> 2) + x[t] - reset * 100
        else:  # _base_zero
            mem = (1 - reset) * (mem - (mem >> 2)) + x[t]
        spikes.append(mem - 100 > 0)  # fire
        mems.append(mem)
    spikes = np.array(spikes)
    assert spikes.sum() > 100
    assert (runs["next"].spikes == spikes).all()
    assert (runs["next"].v == mem).all()
    # The trace shows v_peak on a spiking step, and otherwise the stored membrane.
    assert (runs["next"].trace[~spikes] == np.array(mems)[~spikes]).all()
    assert (runs["same"].spikes != spikes).any() == (mode == "subtract")


CUBA = {**BASE, "syn_decay": (2,)}

# (v, i, r, I, parameter changes) -> (v, i, r, spike, trace): the current-based table of
# docs/neuron.md.
CUBA_WORKED = [
    ((50, 40, 0, 10, {}), (87, 40, 0, 0, 87)),
    ((95, 20, 0, 0, {}), (0, 15, 2, 1, 200)),
    ((0, 15, 2, 999, {}), (0, 1011, 1, 0, 0)),
    ((0, -7, 0, 0, {}), (-5, -5, 0, 0, -5)),
    (
        (0, 32000, 0, 2000, {"syn_decay": (15,), "v_th": 32767, "v_peak": 32767}),
        (32767, 32767, 0, 0, 32767),
    ),
    ((10, 5, 0, 3, {"syn_decay": ()}), (18, 8, 0, 0, 18)),
    ((0, 64, 0, 0, {"syn_decay": (1, -3)}), (40, 40, 0, 0, 40)),
]


@pytest.mark.parametrize("before, after", CUBA_WORKED)
def test_cuba_worked_examples(before, after):
    v, i, r, current, changes = before
    got = cuba_lif_step(v, i, r, current, param_arrays(NeuronParams(**{**CUBA, **changes})))
    assert tuple(int(x) for x in got) == after


@settings(max_examples=150, deadline=None)
@given(
    st.integers(2, 32).flatmap(
        lambda w: st.tuples(
            st.just(w),
            st.lists(st.integers(-(w - 1), w - 1), max_size=4),
            st.lists(st.integers(-(w - 1), w - 1), max_size=4),
            st.lists(st.integers(-(1 << 20), 1 << 20), min_size=40, max_size=40),
            st.integers(0, 5),
            st.sampled_from(["zero", "subtract"]),
        )
    )
)
def test_cuba_current_rules(case):
    """The current saturates, keeps integrating while refractory and is never reset; with
    ``syn_decay = [0]`` and inputs inside the V range the neuron is the plain LIF neuron."""
    v_width, decay, syn_decay, acc, t_ref, mode = case
    lo, hi = v_range(v_width)
    params = NeuronParams(
        v_width=v_width,
        v_th=hi // 4,
        v_peak=hi,
        v_reset=lo // 4,
        t_ref=t_ref,
        reset_mode=mode,
        decay=tuple(decay),
        syn_decay=tuple(syn_decay),
    )
    p = param_arrays(params)
    acc = np.array(acc, np.int64).reshape(20, 2)
    v = np.zeros(2, np.int64)
    i = np.zeros(2, np.int64)
    r = np.zeros(2, np.int64)
    for t in range(acc.shape[0]):
        v_next, i_next, r_next, spike, _ = cuba_lif_step(v, i, r, acc[t], p)
        shifted = sum((1 if k >= 0 else -1) * (i >> abs(k)) for k in syn_decay)
        assert (i_next == np.clip(i - shifted + acc[t], lo, hi)).all()
        refractory = r > 0
        assert (v_next[refractory] == v[refractory]).all() and not spike[refractory].any()
        v, i, r = v_next, i_next, r_next
    plain = NeuronParams(
        v_width=v_width,
        v_th=hi // 4,
        v_peak=hi,
        v_reset=lo // 4,
        t_ref=t_ref,
        reset_mode=mode,
        decay=tuple(decay),
    )
    inside = np.clip(acc, lo, hi)
    cuba = run_population(NeuronParams(**{**plain.__dict__, "syn_decay": (0,)}), inside, trace=True)
    lif = run_population(plain, inside, trace=True)
    assert (cuba.trace == lif.trace).all() and (cuba.spikes == lif.spikes).all()
    assert (cuba.i == inside[-1]).all() and lif.i is None


def test_cuba_mixed_with_plain_is_refused():
    with pytest.raises(
        ValueError,
        match=r"^params must be all plain LIF \(syn_decay None\) or "
        r"all current-based$",
    ):
        param_arrays([NeuronParams(v_th=1), NeuronParams(v_th=1, syn_decay=())])


@st.composite
def populations(draw):
    v_width = draw(st.integers(2, 32))
    lo, hi = v_range(v_width)
    v_reset, v_th, v_peak = sorted(draw(st.lists(st.integers(lo, hi), min_size=3, max_size=3)))
    decay = draw(
        st.lists(
            st.integers(-(v_width - 1), v_width - 1).filter(lambda k: k != 0) | st.just(0),
            max_size=4,
        )
    )
    params = NeuronParams(
        v_width=v_width,
        v_th=v_th,
        v_reset=v_reset,
        v_peak=v_peak,
        v_rest=draw(st.integers(lo, hi)),
        t_ref=draw(st.integers(0, 20)),
        bias=draw(st.integers(lo, hi)),
        decay=tuple(decay),
        reset_mode=draw(st.sampled_from(["zero", "subtract"])),
    )
    n = draw(st.integers(1, 6))
    steps = draw(st.integers(1, 30))
    acc = np.array(
        draw(st.lists(st.integers(-(1 << 20), 1 << 20), min_size=n * steps, max_size=n * steps))
    ).reshape(steps, n)
    return params, acc


@settings(max_examples=200, deadline=None)
@given(populations())
def test_membrane_stays_in_range_and_refractory_holds(case):
    params, acc = case
    lo, hi = v_range(params.v_width)
    run = run_population(params, acc, trace=True)
    p = param_arrays(params)
    v = np.full(acc.shape[1], params.v_rest)
    r = np.zeros(acc.shape[1], np.int64)
    for t in range(acc.shape[0]):
        v_next, r_next, spike, trace = lif_step(v, r, acc[t], p)
        assert ((lo <= v_next) & (v_next <= hi)).all()
        assert (r_next <= params.t_ref).all()
        refractory = r > 0
        # Refractory steps leave v unchanged, count down by one and never spike.
        assert (v_next[refractory] == v[refractory]).all()
        assert (r_next[refractory] == r[refractory] - 1).all()
        assert not spike[refractory].any()
        assert (trace[spike] == params.v_peak).all()
        assert (trace[~spike] == v_next[~spike]).all()
        v, r = v_next, r_next
    assert (run.v == v).all() and (run.r == r).all()


@settings(max_examples=200, deadline=None)
@given(
    st.integers(4, 16).flatmap(
        lambda w: st.tuples(
            st.just(w),
            st.integers(*v_range(w)),
            st.integers(*v_range(w)),
            st.integers(1, min(6, w - 1)),
        )
    )
)
def test_no_input_decays_toward_rest(case):
    v_width, v_rest, v0, shift = case
    lo, hi = v_range(v_width)
    params = NeuronParams(
        v_width=v_width, v_th=hi, v_peak=hi, v_reset=lo, v_rest=v_rest, decay=(shift,)
    )
    # Each step removes at least 1/2**shift of the distance (or 1 LSB below rest): enough steps
    # to get from any start to the end state.
    steps = (v_width + 2) << shift
    run = run_population(params, np.zeros((steps, 1), np.int64), v0=[v0], trace=True)
    distance = np.abs(np.concatenate([[v0], run.trace[:, 0]]) - v_rest)
    # Never moves away from rest; from below it reaches rest exactly, from above it stops in
    # the floor-shift dead band of docs/neuron.md.
    assert (np.diff(distance) <= 0).all()
    assert 0 <= run.v[0] - v_rest < (1 << shift)
    if v0 <= v_rest:
        assert run.v[0] == v_rest


def test_batch_equals_separate_runs():
    rng = np.random.default_rng(0)
    params = NeuronParams(v_th=50, t_ref=1, decay=(2, -5))
    acc = rng.integers(-30, 60, (3, 20, 7))
    batch = run_population(params, acc)
    for b in range(3):
        assert (run_population(params, acc[b]).spikes == batch.spikes[b]).all()


@pytest.mark.parametrize("ratio, terms", [(1 / 8 - 1 / 64, (3, -6)), (1.0, (0,)), (0.0, ())])
def test_decay_from_ratio_exact_cases(ratio, terms):
    assert decay_from_ratio(ratio) == terms


def test_decay_from_ratio_is_close():
    for ratio in np.linspace(0.001, 0.999, 200):
        assert abs(decay_value(decay_from_ratio(ratio)) - ratio) <= ratio / 16 + 2**-15


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"v_th": 40000}, TypeError, r"^v_th must be an integer in \[-32768, 32767\], not 40000$"),
        ({"v_th": 1.5}, TypeError, r"^v_th must be an integer in \[-32768, 32767\], not 1.5$"),
        ({"v_th": True}, TypeError, r"^v_th must be an integer in \[-32768, 32767\], not True$"),
        ({"v_th": 0, "v_width": 1}, TypeError, r"^v_width must be an integer in \[2, 32\], not 1$"),
        (
            {"v_th": 0, "t_ref": -1},
            TypeError,
            r"^t_ref must be an integer in \[0, 65535\], not -1$",
        ),
        (
            {"v_th": 0, "reset_mode": "hard"},
            TypeError,
            r"^reset_mode must be one of 'zero', 'subtract', not 'hard'$",
        ),
        (
            {"v_th": 0, "decay": (1, 2, 3, 4, 5)},
            TypeError,
            r"^decay must be a list of 0 to 4 shift terms, not 5 terms$",
        ),
        (
            {"v_th": 0, "decay": "4"},
            TypeError,
            r"^decay must be a list of 0 to 4 shift terms, not '4'$",
        ),
        (
            {"v_th": 0, "decay": (16,)},
            TypeError,
            r"^decay term must be an integer in \[-15, 15\], not 16$",
        ),
        ({"v_th": 0, "bias": -40000}, TypeError, r"^bias must be an integer in \[-32768, 32767\]"),
        (
            {"v_th": 0, "syn_decay": (16,)},
            TypeError,
            r"^syn_decay term must be an integer in \[-15, 15\], not 16$",
        ),
        (
            {"v_th": 0, "syn_decay": 4},
            TypeError,
            r"^syn_decay must be a list of 0 to 4 shift terms, not 4$",
        ),
        (
            {"v_th": 0, "syn_decay": (1, 1, 1, 1, 1)},
            TypeError,
            r"^syn_decay must be a list of 0 to 4 shift terms, not 5 terms$",
        ),
        (
            {"v_th": 10, "v_reset": 20},
            ValueError,
            r"^parameters must satisfy v_reset <= v_th <= v_peak, not v_reset=20, v_th=10, v_peak=32767$",
        ),
        (
            {"v_th": 10, "v_peak": 5},
            ValueError,
            r"^parameters must satisfy v_reset <= v_th <= v_peak",
        ),
    ],
)
def test_parameter_errors(kwargs, error, message):
    with pytest.raises(error, match=message):
        NeuronParams(**kwargs)


def test_decay_from_ratio_error():
    with pytest.raises(TypeError, match=r"^dt/tau must be a number in \[0, 1\], not 2$"):
        decay_from_ratio(2)
