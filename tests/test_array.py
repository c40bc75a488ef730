"""The neuron array against the golden model on every hardware back-end, bit for bit.

Random feed-forward and recurrent networks (1 to 4 LIF populations, up to 256 neurons), lanes 1, 2
and 4 (16 on three small networks), saturating and refractory cases, current-based populations,
bursts of input, and output back-pressure, all in one table (:data:`CASES`). The default run checks 83 networks: 64 in
Amaranth's simulator, 14 under Icarus and 5 under Verilator (each RTL network is a new build);
``--slow`` adds 341 more.
"""

from typing import NamedTuple

import numpy as np
import pytest
from amaranth.hdl import Fragment
from amaranth.sim import Simulator
from network_cases import (
    distinct_decays,
    many_decays_network,
    option_network,
    per_neuron_network,
    random_network,
    random_spikes,
    synaptic_network,
)
from streams import stream_get, stream_put

from spikeforge.gen.compile import Capacity, compile_network, runtime_writes
from spikeforge.gen.network import Network
from spikeforge.gen.output import array_source
from spikeforge.hdl.array import NeuronArray
from spikeforge.hdl.plan import DECAY_TREES_MAX
from spikeforge.sim.array_amaranth import ArrayRecorder, input_events, run_array_amaranth
from spikeforge.sim.array_rtl import run_array_rtl
from spikeforge.sim.network_golden import run_network
from spikeforge.sim.rtl import require_or_skip
from spikeforge.spec.errors import SpikeforgeError

LANE_CHOICES = (1, 2, 4)


def draw_case(seed, max_size, synaptic=False, neuron_options=False, per_neuron=False, lanes=None):
    """A network, its inputs and the array options of one random case; with ``synaptic`` the
    network has a current-based population, with ``neuron_options`` populations of
    ``reset_timing = "next"`` and ``threshold_compare = ">="``, with ``per_neuron`` one with
    per-neuron parameters; ``lanes`` replaces the lane count drawn from :data:`LANE_CHOICES`."""
    rng = np.random.default_rng(seed)
    if per_neuron:
        net = per_neuron_network(rng, max_size=max_size)
    elif neuron_options:
        net = option_network(rng, max_size=max_size)
    elif synaptic:
        net = synaptic_network(rng, max_size=max_size)
    else:
        net = random_network(rng, max_size=max_size)
    burst = rng.random() < 0.25
    spikes = random_spikes(
        rng, net, int(rng.integers(3, 8)), activity=1.0 if burst else float(rng.uniform(0.1, 0.5))
    )
    options = dict(
        lanes=lanes or LANE_CHOICES[seed % 3],
        stages=int(rng.integers(1, 4, endpoint=True)),
        out_stall=float(rng.choice([0.0, 0.3, 0.7])),
        seed=seed,
    )
    return net, spikes, options


def assert_same(got, want, where):
    for name in want.spikes:
        bad = np.argwhere(got.spikes[name] != want.spikes[name])
        assert bad.size == 0, f"{where}: spikes of {name} differ first at (t, i)={tuple(bad[0])}"
    for name in want.v:
        bad = np.argwhere(got.v[name] != want.v[name])
        assert bad.size == 0, (
            f"{where}: trace of {name} differs first at (t, i)={tuple(bad[0])}: "
            f"{got.v[name][tuple(bad[0])]} != {want.v[name][tuple(bad[0])]}"
        )
    assert got.cycles is not None and (got.cycles > 0).all()


class Case(NamedTuple):
    """One random network on one back-end.

    ``batch`` 2 runs the inputs twice on one array, which checks that ``reset_state`` between
    the runs clears all state (the synaptic current ``i`` and the pending reset ``s`` too).
    ``lanes``, when set, replaces the drawn lane count.
    """

    backend: str
    seed: int
    max_size: int
    synaptic: bool = False
    batch: int = 1
    neuron_options: bool = False
    per_neuron: bool = False
    lanes: int | None = None


def cases(
    backends,
    seeds,
    max_size,
    *,
    synaptic=False,
    batch=1,
    slow=False,
    neuron_options=False,
    per_neuron=False,
    lanes=None,
):
    """``pytest.param``s of :class:`Case` for every back-end and seed, slow ones marked."""
    marks = [pytest.mark.slow] if slow else []
    kind = "-options" if neuron_options else "-synaptic" if synaptic else ""
    kind = "-per-neuron" if per_neuron else kind
    twice = f"-batch{batch}" if batch > 1 else ""
    wide = f"-p{lanes}" if lanes else ""
    return [
        pytest.param(
            Case(backend, seed, max_size, synaptic, batch, neuron_options, per_neuron, lanes),
            marks=marks,
            id=f"{backend}{kind}-max{max_size}{twice}{wide}-seed{seed}",
        )
        for backend in backends
        for seed in seeds
    ]


CASES = [
    # (back-ends, seeds, largest population): every seed on every back-end listed.
    *cases(["amaranth"], range(40), 24),
    *cases(["amaranth"], range(300, 310), 24, synaptic=True),
    *cases(["icarus"], [400], 32, synaptic=True, batch=2),
    *cases(["verilator"], [401], 32, synaptic=True, batch=2, slow=True),
    *cases(["icarus"], range(100, 110), 32, batch=2),
    # reset_timing "next" and threshold_compare ">=" (beside the defaults, some current-based).
    *cases(["amaranth"], range(500, 512), 24, neuron_options=True),
    *cases(["icarus"], [600, 601], 32, batch=2, neuron_options=True),
    *cases(["verilator"], [602], 32, batch=2, neuron_options=True),
    # Per-neuron v_th, v_reset, v_rest, decay and syn_decay (beside populations without).
    *cases(["amaranth"], range(700, 706), 24, per_neuron=True),
    *cases(["icarus"], [710], 32, batch=2, per_neuron=True),
    *cases(["verilator"], [711], 32, batch=2, slow=True, per_neuron=True),
    # One Verilator build per network, so few networks, of growing size.
    *cases(["verilator"], [200], 16),
    *cases(["verilator"], [201], 48),
    *cases(["verilator"], [202], 64),
    *cases(["verilator"], [203], 256),
    # 16 lanes: populations both narrower and wider than the lanes.
    *cases(["amaranth"], [706, 773], 40, lanes=16),
    *cases(["icarus"], [743], 40, batch=2, lanes=16),
    *cases(["amaranth"], range(1000, 1300), 64, slow=True),
    *cases(["amaranth"], range(1500, 1560), 64, slow=True, per_neuron=True),
    *cases(["icarus", "verilator"], range(2000, 2020), 256, slow=True),
]


@pytest.mark.parametrize("case", CASES)
def test_array_matches_golden(case, tmp_path):
    if case.backend != "amaranth":
        require_or_skip(case.backend)
    net, spikes, options = draw_case(
        case.seed,
        case.max_size,
        case.synaptic,
        case.neuron_options,
        case.per_neuron,
        case.lanes,
    )
    if case.batch > 1:
        spikes = spikes[np.newaxis].repeat(case.batch, axis=0)
    want = run_network(net, spikes, trace=True)
    if case.backend == "amaranth":
        got = run_array_amaranth(net, spikes, trace=True, **options)
    else:
        got = run_array_rtl(
            net, spikes, trace=True, simulator=case.backend, build_root=tmp_path, **options
        )
    assert_same(got, want, f"seed {case.seed} {options}")


def _recurrent_pair(syn_decays=(None, None), per_neuron=False):
    """Two networks of one layout with different weights and thresholds, both lively; with
    ``syn_decays`` the hidden population is current-based with these decays, with
    ``per_neuron`` its ``v_th``, ``v_rest`` and ``decay`` are per neuron (the same decays in
    both, which the layout fixes)."""
    rng = np.random.default_rng(7)
    w1 = rng.integers(-20, 60, (6, 10))
    w2 = rng.integers(-30, 40, (10, 10))
    pop = {
        "name": "hidden",
        "kind": "lif",
        "size": 10,
        "v_th": 100,
        "v_reset": 0,
        "v_rest": 0,
        "v_peak": 300,
        "t_ref": 1,
        "decay": [3],
        "reset_mode": "subtract",
        "bias": 2,
    }

    def net(scale, v_th, syn_decay):
        hidden = {**pop, "v_th": v_th}
        if per_neuron:
            hidden["v_th"] = [v_th + 7 * j for j in range(10)]
            hidden["v_rest"] = [(-1) ** j * v_th // (j + 2) for j in range(10)]
            hidden["decay"] = [[3] if j % 3 else [2, -5] for j in range(10)]
        if syn_decay is not None:
            hidden["syn_decay"] = syn_decay
        return Network.from_dict(
            {
                "format": "spikeforge-network/1",
                "v_width": 16,
                "w_width": 8,
                "acc_width": 14,
                "populations": [{"name": "x", "kind": "input", "size": 6}, hidden],
                "projections": [
                    {"from": "x", "to": "hidden", "weights": (w1 * scale).tolist()},
                    {"from": "hidden", "to": "hidden", "weights": w2.tolist()},
                ],
            }
        )

    return net(1, 100, syn_decays[0]), net(2, 60, syn_decays[1])


def _run_session(dut, spikes, actions):
    """Run ``actions`` (("steps", recorder) / ("reset",) / ("load", writes)) on one array."""
    box = {"rec": None, "t": 0}

    async def driver(ctx):
        for action in actions:
            if action[0] == "reset":
                ctx.set(dut.reset_state, 1)
                await ctx.tick()
                ctx.set(dut.reset_state, 0)
                await ctx.tick().until(~dut.busy)
            elif action[0] == "load":
                for mem, lane, addr, word in action[1]:
                    write = {"mem": mem, "lane": lane, "addr": addr, "data": word}
                    await stream_put(ctx, dut.cfg, write)
            else:
                box["rec"] = action[1]
                for t in range(spikes.shape[0]):
                    box["t"] = t
                    ctx.set(dut.start, 1)
                    await ctx.tick()
                    ctx.set(dut.start, 0)
                    for index in input_events(spikes[t]):
                        await stream_put(ctx, dut.spike_in, {"index": index, "end": 0})
                    await stream_put(ctx, dut.spike_in, {"index": 0, "end": 1})
                    await ctx.tick().until(dut.done)

    async def consumer(ctx):
        while True:
            payload = await stream_get(ctx, dut.spike_out)
            box["rec"].spike(box["t"], payload.population, payload.index)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(driver)
    sim.add_testbench(consumer, background=True)
    sim.run()


@pytest.mark.parametrize(
    "syn_decays, per_neuron",
    [((None, None), False), (([2, -4], [2, -4]), False), (([2, -4], [2, -4]), True)],
    ids=["plain", "current-based", "per-neuron"],
)
def test_runtime_loading_and_reset(syn_decays, per_neuron):
    net_a, net_b = _recurrent_pair(syn_decays, per_neuron)
    spikes = random_spikes(np.random.default_rng(3), net_a, 8, activity=0.4)
    want_a, want_b = run_network(net_a, spikes), run_network(net_b, spikes)
    assert (want_a.spikes["hidden"] != want_b.spikes["hidden"]).any()
    assert want_a.spikes["hidden"].sum() > 5 and want_b.spikes["hidden"].sum() > 5

    plan_a = compile_network(net_a, 2)
    dut = NeuronArray(plan_a, stages=2)
    recs = [ArrayRecorder(plan_a, spikes.shape[0]) for _ in range(3)]
    _run_session(
        dut,
        spikes,
        [
            ("steps", recs[0]),
            ("reset",),
            ("steps", recs[1]),
            ("load", list(runtime_writes(compile_network(net_b, 2)))),
            ("reset",),
            ("steps", recs[2]),
        ],
    )
    for rec, want, what in zip(
        recs, (want_a, want_a, want_b), ("first run", "after reset", "after loading B")
    ):
        assert not rec.errors
        assert (rec.spikes["hidden"] == want.spikes["hidden"]).all(), what


def test_layout_hash_covers_the_synaptic_layout():
    """A current-based population, and its synaptic decays, are part of the array's layout."""
    plain, _ = _recurrent_pair()
    cuba, same = _recurrent_pair(([2, -4], [2, -4]))
    other, _ = _recurrent_pair(([1], [1]))
    hashes = [compile_network(net, 2).layout_hash() for net in (plain, cuba, same, other)]
    assert hashes[1] == hashes[2]
    assert len({hashes[0], hashes[1], hashes[3]}) == 3


@pytest.mark.parametrize(
    "size, synaptic",
    [(40, False), (40, True), (DECAY_TREES_MAX, True)],
    ids=["lif", "current-based", "runtime-decay-syn-trees"],
)
def test_many_distinct_decays_run_on_runtime_shifts(size, synaptic):
    """``size`` neurons with as many different decays (plus the output's): the bias words carry
    the shift terms and every core shifts at run time, bit-exact against the golden model; the
    synaptic decays likewise, or with at most ``DECAY_TREES_MAX`` of them still as trees."""
    net = many_decays_network(size, synaptic)
    plan = compile_network(net, 4)
    assert len(plan.decay_sets) == size + 1 and plan.runtime_decay
    assert plan.runtime_syn_decay == (synaptic and size > DECAY_TREES_MAX)
    spikes = random_spikes(np.random.default_rng(5), net, 6, activity=0.4)
    want = run_network(net, spikes, trace=True)
    assert want.spikes["h"].sum() > 10 and want.spikes["o"].sum() > 0
    got = run_array_amaranth(net, spikes, trace=True, lanes=4, stages=3)
    assert_same(got, want, f"size={size} synaptic={synaptic}")


def test_many_distinct_decays_on_icarus(tmp_path):
    """The runtime shift terms through the generated Verilog, bit-exact, current-based."""
    require_or_skip("icarus")
    net = many_decays_network(40, synaptic=True)
    spikes = random_spikes(np.random.default_rng(5), net, 6, activity=0.4)
    want = run_network(net, spikes, trace=True)
    got = run_array_rtl(
        net, spikes, trace=True, simulator="icarus", build_root=tmp_path, lanes=4, stages=4
    )
    assert_same(got, want, "icarus")


@pytest.mark.parametrize("size", [2, DECAY_TREES_MAX - 1, DECAY_TREES_MAX, 40, 128])
def test_leak_trees_are_bounded(size):
    """However many distinct decays the neurons have, a core builds at most
    ``DECAY_TREES_MAX`` leak trees (past it none: runtime shift terms), for the membrane and
    for the synaptic current; below the bound the decays stay trees."""
    plan = compile_network(many_decays_network(size, synaptic=True), 2)
    array = NeuronArray(plan, stages=2)
    Fragment.get(array, None)  # elaborates: the bias words of either kind are built
    distinct = len(plan.decay_sets)
    for core in array.cores:
        for sets, runtime in (
            (core.decay_sets, plan.runtime_decay),
            (core.syn_decay_sets, plan.runtime_syn_decay),
        ):
            assert (sets is None) == runtime
            assert sets is None or len(sets) <= DECAY_TREES_MAX
    assert plan.runtime_decay == (distinct > DECAY_TREES_MAX)
    fields = array.bias_shape.members
    assert ("decay" in fields) == plan.runtime_decay
    assert ("decay_sel" in fields) != plan.runtime_decay


def test_runtime_decays_load_at_run_time():
    """With runtime shift terms the decays leave the layout: a plan with other decays (and
    weights) loads into the array through ``cfg`` and runs bit-exact."""
    net_a = many_decays_network(40)
    d = net_a.to_dict()
    d["populations"][1]["decay"] = distinct_decays(40, offset=50)
    net_b = Network.from_dict(d)
    plan_a, plan_b = compile_network(net_a, 2), compile_network(net_b, 2)
    assert plan_a.decay_sets != plan_b.decay_sets
    assert plan_a.layout_hash() == plan_b.layout_hash()
    spikes = random_spikes(np.random.default_rng(6), net_a, 6, activity=0.4)
    want_a, want_b = run_network(net_a, spikes), run_network(net_b, spikes)
    assert (want_a.spikes["h"] != want_b.spikes["h"]).any()
    dut = NeuronArray(plan_a, stages=2)
    recs = [ArrayRecorder(plan_a, spikes.shape[0]) for _ in range(2)]
    _run_session(
        dut,
        spikes,
        [
            ("steps", recs[0]),
            ("load", list(runtime_writes(plan_b))),
            ("reset",),
            ("steps", recs[1]),
        ],
    )
    for rec, want in zip(recs, (want_a, want_b)):
        assert not rec.errors
        assert (rec.spikes["h"] == want.spikes["h"]).all()
        assert (rec.spikes["o"] == want.spikes["o"]).all()


def test_cycles_are_reported_per_step():
    net_a, _ = _recurrent_pair()
    spikes = random_spikes(np.random.default_rng(4), net_a, 4, activity=0.5)
    run = run_array_amaranth(net_a, spikes, lanes=2)
    plan = compile_network(net_a, 2)
    # At least the update of every slot, at most the documented bound.
    assert (run.cycles >= plan.slots).all()
    assert (run.cycles <= plan.max_step_cycles()).all()


def test_one_accumulator_bank_without_recurrent_projection():
    """A feed-forward network's array has one accumulator bank (``docs/array.md``), which every
    step reads, clears and refills: bit-exact over steps and a ``reset_state``, on two lanes
    with runtime weights as the iCE40UP5K's 2,048-neuron build has them."""
    rng = np.random.default_rng(7)
    net = random_network(rng, n_lif=3, max_size=24, recurrent=False, v_width=16, w_width=8)
    plan = compile_network(net, 2)
    for layout, banks in ((plan, 1), (compile_network(_recurrent_pair()[0], 2), 2)):
        array = NeuronArray(layout, runtime_weights=True)
        Fragment.get(array, None)
        assert layout.acc_banks == banks
        assert [m.depth for m in array.acc_mem] == [banks * layout.slots] * 2
    spikes = random_spikes(rng, net, 5, activity=0.5)[np.newaxis].repeat(2, axis=0)
    got = run_array_amaranth(net, spikes, trace=True, lanes=2, runtime_weights=True)
    assert_same(got, run_network(net, spikes, trace=True), "one accumulator bank")


def test_generated_verilog_is_deterministic():
    net_a, _ = _recurrent_pair()
    first, _ = array_source(net_a, lanes=2)
    second, _ = array_source(_recurrent_pair()[0], lanes=2)
    assert first == second
    assert f"network = {net_a.network_hash()}" in first


def test_capacity_errors_name_the_memory():
    net_a, _ = _recurrent_pair()
    with pytest.raises(
        SpikeforgeError,
        match=r"^network needs 160 weight words per lane, the "
        r"target holds 100 \(lanes=1\)",
    ):
        compile_network(net_a, 1, Capacity(weight_words=100))
    with pytest.raises(
        SpikeforgeError,
        match=r"^network needs 5 neuron slots per lane, the "
        r"target holds 4 \(lanes=2\)",
    ):
        compile_network(net_a, 2, Capacity(slots=4))
    with pytest.raises(SpikeforgeError, match=r"^lanes must be one of 1, 2, 4, 8, 16, not 3$"):
        compile_network(net_a, 3)


def test_array_parameter_errors():
    plan = compile_network(_recurrent_pair()[0], 1)
    with pytest.raises(TypeError, match=r"^stages must be an integer in \[1, 4\], not 5$"):
        NeuronArray(plan, stages=5)
    plan.lanes = 3
    with pytest.raises(TypeError, match=r"^lanes must be one of 1, 2, 4, 8, 16, not 3$"):
        NeuronArray(plan)
