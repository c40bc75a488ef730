"""The neuron core in Amaranth's simulator against the golden model, bit for bit."""

import numpy as np
import pytest
from amaranth.hdl import Fragment
from amaranth.sim import Simulator
from neuron_cases import random_cases

from spikeforge.hdl.neuron import NeuronCore, pack_params

# (v_width, acc_width, t_ref_max, stages, cases): every stage count, extreme widths, and together
# more than 100,000 neuron-steps.
CONFIGS = [
    (16, 16, 15, 1, 20_000),
    (16, 16, 15, 2, 20_000),
    (16, 18, 255, 3, 20_000),
    (16, 16, 15, 4, 30_000),
    (8, 12, 0, 4, 6_000),
    (2, 2, 1, 2, 2_000),
    (32, 40, 65535, 4, 6_000),
]


def run_core(core, cases, packed=None):
    """Drive every case through ``core`` and return its outputs in order.

    ``packed`` maps each parameter set to its port value, for a core whose port is not the
    default layout of ``pack_params``.
    """
    layout = core.params.shape()
    # Parameters repeat across cases; building a layout constant is the slow part.
    unique = packed or {
        p: layout.const(
            pack_params(
                p,
                synaptic=core.synaptic,
                delayed_reset=core.delayed_reset,
                at_threshold=core.at_threshold,
            )
        )
        .as_value()
        .value
        for p in set(cases.params)
    }
    packed = [unique[p] for p in cases.params]
    n = len(packed)
    got = {"v_next": [], "r_next": [], "spike": [], "v_trace": []}
    if core.synaptic:
        got["i_next"] = []
    if core.delayed_reset:
        got["pending_next"] = []

    async def producer(ctx):
        for i in range(n):
            ctx.set(core.in_valid, 1)
            ctx.set(core.v, int(cases.v[i]))
            ctx.set(core.r, int(cases.r[i]))
            ctx.set(core.acc, int(cases.acc[i]))
            if core.synaptic:
                ctx.set(core.i, int(cases.i[i]))
            if core.delayed_reset:
                ctx.set(core.pending, int(cases.pending[i]))
            ctx.set(core.params.as_value(), packed[i])
            await ctx.tick()
        ctx.set(core.in_valid, 0)

    async def consumer(ctx):
        while len(got["spike"]) < n:
            await ctx.tick()
            if ctx.get(core.out_valid):
                for name in got:
                    got[name].append(ctx.get(getattr(core, name)))

    sim = Simulator(core)
    sim.add_clock(1e-6)
    sim.add_testbench(producer)
    sim.add_testbench(consumer)
    sim.run()
    return {name: np.array(values, np.int64) for name, values in got.items()}


@pytest.mark.parametrize("v_width, acc_width, t_ref_max, stages, n", CONFIGS)
def test_core_matches_golden(v_width, acc_width, t_ref_max, stages, n):
    rng = np.random.default_rng([v_width, acc_width, t_ref_max, stages])
    cases = random_cases(rng, n, v_width=v_width, acc_width=acc_width, t_ref_max=t_ref_max)
    core = NeuronCore(v_width=v_width, acc_width=acc_width, t_ref_max=t_ref_max, stages=stages)
    got = run_core(core, cases)
    v, r, spike, trace = cases.expected()
    for name, want in (("v_next", v), ("r_next", r), ("spike", spike), ("v_trace", trace)):
        bad = np.flatnonzero(got[name] != want)
        assert bad.size == 0, (
            f"{name} differs in {bad.size} of {n} cases; first: case {bad[0]} "
            f"v={cases.v[bad[0]]} r={cases.r[bad[0]]} acc={cases.acc[bad[0]]} "
            f"{cases.params[bad[0]]}: got {got[name][bad[0]]}, want {want[bad[0]]}"
        )
    # The extremes were really exercised, not just drawn.
    assert spike.any() and (~spike).any() and (cases.r > 0).any() and (cases.r == 0).any()


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(4))
def test_core_matches_golden_long(seed):
    rng = np.random.default_rng(1000 + seed)
    cases = random_cases(rng, 100_000, v_width=16, acc_width=20, t_ref_max=1000)
    core = NeuronCore(v_width=16, acc_width=20, t_ref_max=1000, stages=1 + seed % 4)
    got = run_core(core, cases)
    v, r, spike, trace = cases.expected()
    assert (got["v_next"] == v).all() and (got["r_next"] == r).all()
    assert (got["spike"] == spike).all() and (got["v_trace"] == trace).all()


# (v_width, acc_width, t_ref_max, stages, cases) of the synaptic core: current-based and plain
# parameters mixed, every stage count, the extreme widths. About 25 s together.
SYNAPTIC_CONFIGS = [
    (16, 16, 15, 1, 2_000),
    (16, 18, 15, 2, 2_000),
    (16, 16, 255, 3, 2_000),
    (16, 20, 15, 4, 3_000),
    (2, 2, 1, 2, 1_000),
    (32, 40, 65535, 4, 1_500),
]


@pytest.mark.parametrize("v_width, acc_width, t_ref_max, stages, n", SYNAPTIC_CONFIGS)
def test_synaptic_core_matches_golden(v_width, acc_width, t_ref_max, stages, n):
    rng = np.random.default_rng([v_width, acc_width, t_ref_max, stages, 1])
    cases = random_cases(
        rng, n, v_width=v_width, acc_width=acc_width, t_ref_max=t_ref_max, synaptic=True
    )
    core = NeuronCore(
        v_width=v_width, acc_width=acc_width, t_ref_max=t_ref_max, stages=stages, synaptic=True
    )
    got = run_core(core, cases)
    v, r, spike, trace, i = cases.expected()
    for name, want in (
        ("v_next", v),
        ("r_next", r),
        ("spike", spike),
        ("v_trace", trace),
        ("i_next", i),
    ):
        bad = np.flatnonzero(got[name] != want)
        assert bad.size == 0, (
            f"{name} differs in {bad.size} of {n} cases; first: case {bad[0]} "
            f"v={cases.v[bad[0]]} i={cases.i[bad[0]]} r={cases.r[bad[0]]} "
            f"acc={cases.acc[bad[0]]} {cases.params[bad[0]]}: got {got[name][bad[0]]}, "
            f"want {want[bad[0]]}"
        )
    synaptic = np.array([p.synaptic for p in cases.params])
    # Both kinds of population ran, spiking and refractory, and the current saturated.
    assert synaptic.any() and (~synaptic).any() and spike[synaptic].any()
    assert (cases.r[synaptic] > 0).any()
    assert (np.abs(i[synaptic]) == (1 << (v_width - 1)) - 1).any() or v_width == 2


def test_synaptic_parameter_errors():
    from spikeforge.spec.params import NeuronParams

    cuba = NeuronParams(v_th=100, syn_decay=(2,))
    core = NeuronCore()
    with pytest.raises(
        ValueError,
        match=r"^params has a syn_decay, which needs a core built "
        r"with synaptic=True$",
    ):
        core.with_constant_params(cuba)
    Fragment.get(core, None)  # elaborated, so that it is not reported as unused
    with pytest.raises(
        ValueError,
        match=r"^params has a syn_decay, which needs a synaptic "
        r"parameter port$",
    ):
        pack_params(cuba, synaptic=False)
    with pytest.raises(TypeError, match=r"^synaptic must be a bool, not 1$"):
        NeuronCore(synaptic=1)
    with pytest.raises(ValueError, match=r"^syn_decay_sets needs synaptic=True$"):
        NeuronCore(syn_decay_sets=[(1,)])
    with pytest.raises(
        ValueError,
        match=r"^syn_decay \[2\] is not one the core was built for: "
        r"\[1\], \[3, -5\]$",
    ):
        pack_params(cuba, synaptic=True, syn_decay_sets=((1,), (3, -5)))


@pytest.mark.parametrize(
    "decay_sets,error,message",
    [
        (4, TypeError, r"^decay_sets must be a list of decays, not 4$"),
        (
            [4],
            TypeError,
            r"^decay_sets must be a list of decays \(lists of shift terms\), not \[4\]$",
        ),
        ([(1, 2, 3, 4, 5)], ValueError, r"^a decay has at most 4 terms, not \[1, 2, 3, 4, 5\]$"),
        ([(16,)], TypeError, r"^decay term must be an integer in \[-15, 15\], not 16$"),
        ([], ValueError, r"^decay_sets must hold at least one decay$"),
    ],
)
def test_decay_sets_errors(decay_sets, error, message):
    with pytest.raises(error, match=message):
        NeuronCore(v_width=16, decay_sets=decay_sets)


def test_decay_not_built_in_is_refused():
    from spikeforge.spec.params import NeuronParams

    with pytest.raises(
        ValueError,
        match=r"^decay \[2\] is not one the core was built for: "
        r"\[1\], \[3, -5\]$",
    ):
        pack_params(NeuronParams(v_th=100, decay=(2,)), ((1,), (3, -5)))


def test_core_with_built_in_synaptic_decays_matches_golden():
    """The array's kind of synaptic core: membrane and current decays built in, selected per
    population (plain populations mixed in)."""
    rng = np.random.default_rng(77)
    cases = random_cases(rng, 1_500, v_width=16, acc_width=18, t_ref_max=15, synaptic=True)
    # Ten parameter sets, as in a network of ten populations: a core is built for few decays.
    pool = list(dict.fromkeys(cases.params))[:10]
    cases.params = [pool[k] for k in rng.integers(0, len(pool), len(cases.params))]
    assert {p.synaptic for p in pool} == {True, False}
    decay_sets = tuple(sorted({p.decay for p in cases.params}))
    syn_sets = tuple(sorted({p.syn_decay for p in cases.params if p.synaptic}))
    core = NeuronCore(
        v_width=16,
        acc_width=18,
        t_ref_max=15,
        stages=3,
        synaptic=True,
        decay_sets=decay_sets,
        syn_decay_sets=syn_sets,
    )
    layout = core.params.shape()
    packed = {
        p: layout.const(pack_params(p, decay_sets, synaptic=True, syn_decay_sets=syn_sets))
        for p in set(cases.params)
    }
    got = run_core(core, cases, packed={p: c.as_value().value for p, c in packed.items()})
    for name, want in zip(("v_next", "r_next", "spike", "v_trace", "i_next"), cases.expected()):
        assert (got[name] == want).all(), name


# (v_width, acc_width, t_ref_max, stages, synaptic, delayed_reset, at_threshold, cases) of the
# cores for reset_timing "next" and threshold_compare ">=": both of each mixed, with a random
# pending reset and v' landing on v_th, every stage count, the extreme widths.
OPTION_CONFIGS = [
    (16, 16, 15, 1, False, True, False, 3_000),
    (16, 18, 15, 2, True, True, False, 2_000),
    (16, 16, 255, 3, False, True, True, 2_000),
    (16, 20, 15, 4, True, True, True, 3_000),
    (16, 16, 0, 4, False, True, False, 2_000),
    (16, 16, 15, 2, False, False, True, 3_000),
    (16, 16, 15, 4, True, False, True, 2_000),
    (2, 2, 1, 2, False, True, True, 1_000),
    (32, 40, 65535, 4, True, True, True, 1_500),
]


@pytest.mark.parametrize(
    "v_width, acc_width, t_ref_max, stages, synaptic, delayed, at_threshold, n", OPTION_CONFIGS
)
def test_core_options_match_golden(
    v_width, acc_width, t_ref_max, stages, synaptic, delayed, at_threshold, n
):
    rng = np.random.default_rng([v_width, acc_width, t_ref_max, stages, 2, delayed, at_threshold])
    widths = dict(v_width=v_width, acc_width=acc_width, t_ref_max=t_ref_max)
    options = dict(synaptic=synaptic, delayed=delayed, at_threshold=at_threshold)
    cases = random_cases(rng, n, **widths, **options)
    core = NeuronCore(
        **widths,
        stages=stages,
        synaptic=synaptic,
        delayed_reset=delayed,
        at_threshold=at_threshold,
    )
    got = run_core(core, cases)
    v, r, spike, trace, *i = cases.expected()
    want = {"v_next": v, "r_next": r, "spike": spike, "v_trace": trace}
    if delayed:
        want["pending_next"] = cases.expected_pending(spike)
    if synaptic:
        want["i_next"] = i[0]
    for name, value in want.items():
        bad = np.flatnonzero(got[name] != value)
        assert bad.size == 0, (
            f"{name} differs in {bad.size} of {n} cases; first: case {bad[0]} "
            f"v={cases.v[bad[0]]} r={cases.r[bad[0]]} acc={cases.acc[bad[0]]} "
            f"pending={None if cases.pending is None else cases.pending[bad[0]]} "
            f"{cases.params[bad[0]]}: got {got[name][bad[0]]}, want {value[bad[0]]}"
        )
    if delayed:
        # A reset was due in live and refractory steps of delayed neurons of both reset modes.
        late = np.array([p.delayed_reset for p in cases.params])
        subtract = np.array([p.reset_mode == "subtract" for p in cases.params])
        due = late & cases.pending
        for mode in (subtract, ~subtract):
            assert (due & mode & (cases.r == 0)).any()
            assert (due & mode & (cases.r > 0)).any() or t_ref_max == 0
        assert spike[late].any() and spike[~late].any()
    if at_threshold:
        # v' landed exactly on v_th in live steps under both tests: no spike with '>', a
        # spike with '>='.
        ge = np.array([p.fires_at_threshold for p in cases.params])
        v_th = np.array([p.v_th for p in cases.params])
        assert ((v == v_th) & (cases.r == 0) & ~spike & ~ge).any()
        assert (spike & ge & (cases.r == 0)).any()


def test_option_parameter_errors():
    from spikeforge.spec.params import NeuronParams

    delayed = NeuronParams(v_th=100, reset_timing="next")
    core = NeuronCore()
    with pytest.raises(
        ValueError,
        match=r"^params has reset_timing 'next', which needs a core built "
        r"with delayed_reset=True$",
    ):
        core.with_constant_params(delayed)
    Fragment.get(core, None)  # elaborated, so that it is not reported as unused
    with pytest.raises(
        ValueError, match=r"^params has reset_timing 'next', which needs a delayed_reset port$"
    ):
        pack_params(delayed, delayed_reset=False)
    with pytest.raises(TypeError, match=r"^delayed_reset must be a bool, not 1$"):
        NeuronCore(delayed_reset=1)
    with pytest.raises(TypeError, match=r"^at_threshold must be a bool, not 1$"):
        NeuronCore(at_threshold=1)
    at_threshold = NeuronParams(v_th=100, threshold_compare=">=")
    with pytest.raises(
        ValueError, match=r"^params has threshold_compare '>=', which needs an at_threshold port$"
    ):
        pack_params(at_threshold, at_threshold=False)
    with pytest.raises(TypeError, match=r"^threshold_compare must be one of '>', '>=', not '=>'$"):
        NeuronParams(v_th=100, threshold_compare="=>")
    with pytest.raises(
        TypeError, match=r"^reset_timing must be one of 'same', 'next', not 'later'$"
    ):
        NeuronParams(v_th=100, reset_timing="later")
