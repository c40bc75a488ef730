"""The neuron array against the golden model on every hardware back-end, bit for bit.

Random feed-forward and recurrent networks (1 to 4 LIF populations, up to 256 neurons), lanes 1, 2
and 4, saturating and refractory cases, bursts of input, and output back-pressure. The default run
checks 54 networks: 40 in Amaranth's simulator, 10 under Icarus and 4 under Verilator (each RTL
network is a new build); ``--slow`` adds many more.
"""

import numpy as np
import pytest
from amaranth.sim import Simulator
from network_cases import random_network, random_spikes, synaptic_network

from spikeforge.gen.compile import Capacity, compile_network, runtime_writes
from spikeforge.gen.network import Network
from spikeforge.gen.output import array_source
from spikeforge.hdl.array import NeuronArray
from spikeforge.sim.array_amaranth import ArrayRecorder, input_events, run_array_amaranth
from spikeforge.sim.array_rtl import run_array_rtl
from spikeforge.sim.network_golden import run_network
from spikeforge.sim.rtl import require_or_skip
from spikeforge.spec.errors import SpikeforgeError

LANE_CHOICES = (1, 2, 4)


def draw_case(seed, max_size, synaptic=False):
    """A network, its inputs and the array options of one random case; with ``synaptic`` the
    network has a current-based population."""
    rng = np.random.default_rng(seed)
    net = (
        synaptic_network(rng, max_size=max_size)
        if synaptic
        else random_network(rng, max_size=max_size)
    )
    burst = rng.random() < 0.25
    spikes = random_spikes(
        rng, net, int(rng.integers(3, 8)), activity=1.0 if burst else float(rng.uniform(0.1, 0.5))
    )
    options = dict(
        lanes=LANE_CHOICES[seed % 3],
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


@pytest.mark.parametrize("seed", range(40))
def test_amaranth_matches_golden(seed):
    net, spikes, options = draw_case(seed, max_size=24)
    want = run_network(net, spikes, trace=True)
    got = run_array_amaranth(net, spikes, trace=True, **options)
    assert_same(got, want, f"seed {seed} {options}")


@pytest.mark.parametrize("seed", range(300, 310))
def test_amaranth_matches_golden_synaptic(seed):
    net, spikes, options = draw_case(seed, max_size=24, synaptic=True)
    want = run_network(net, spikes, trace=True)
    got = run_array_amaranth(net, spikes, trace=True, **options)
    assert_same(got, want, f"seed {seed} {options}")


@pytest.mark.parametrize(
    "seed, simulator", [(400, "icarus"), pytest.param(401, "verilator", marks=pytest.mark.slow)]
)
def test_rtl_matches_golden_synaptic(seed, simulator, tmp_path):
    require_or_skip(simulator)
    net, spikes, options = draw_case(seed, max_size=32, synaptic=True)
    batch = spikes[np.newaxis].repeat(2, axis=0)  # the second run checks that reset clears i
    want = run_network(net, batch, trace=True)
    got = run_array_rtl(net, batch, trace=True, simulator=simulator, build_root=tmp_path, **options)
    assert_same(got, want, f"seed {seed} {options}")


@pytest.mark.parametrize("seed", range(100, 110))
def test_icarus_matches_golden(seed, tmp_path):
    require_or_skip("icarus")
    net, spikes, options = draw_case(seed, max_size=32)
    want = run_network(net, spikes[np.newaxis].repeat(2, axis=0), trace=True)
    got = run_array_rtl(
        net,
        spikes[np.newaxis].repeat(2, axis=0),
        trace=True,
        simulator="icarus",
        build_root=tmp_path,
        **options,
    )
    assert_same(got, want, f"seed {seed} {options}")


@pytest.mark.parametrize("seed, max_size", [(200, 16), (201, 48), (202, 64), (203, 256)])
def test_verilator_matches_golden(seed, max_size, tmp_path):
    require_or_skip("verilator")
    net, spikes, options = draw_case(seed, max_size=max_size)
    want = run_network(net, spikes, trace=True)
    got = run_array_rtl(
        net, spikes, trace=True, simulator="verilator", build_root=tmp_path, **options
    )
    assert_same(got, want, f"seed {seed} {options}")


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(1000, 1300))
def test_amaranth_matches_golden_long(seed):
    net, spikes, options = draw_case(seed, max_size=64)
    assert_same(
        run_array_amaranth(net, spikes, trace=True, **options),
        run_network(net, spikes, trace=True),
        f"seed {seed} {options}",
    )


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(2000, 2020))
@pytest.mark.parametrize("simulator", ["icarus", "verilator"])
def test_rtl_matches_golden_long(seed, simulator, tmp_path):
    require_or_skip(simulator)
    net, spikes, options = draw_case(seed, max_size=256)
    assert_same(
        run_array_rtl(net, spikes, trace=True, simulator=simulator, build_root=tmp_path, **options),
        run_network(net, spikes, trace=True),
        f"seed {seed} {options}",
    )


def _recurrent_pair(syn_decays=(None, None)):
    """Two networks of one layout with different weights and thresholds, both lively; with
    ``syn_decays`` the hidden population is current-based with these decays."""
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
                    ctx.set(dut.cfg.payload, {"mem": mem, "lane": lane, "addr": addr, "data": word})
                    ctx.set(dut.cfg.valid, 1)
                    await ctx.tick().until(dut.cfg.ready)
                ctx.set(dut.cfg.valid, 0)
            else:
                box["rec"] = action[1]
                for t in range(spikes.shape[0]):
                    box["t"] = t
                    ctx.set(dut.start, 1)
                    await ctx.tick()
                    ctx.set(dut.start, 0)
                    for index in input_events(spikes[t]) + [None]:
                        end = index is None
                        ctx.set(dut.spike_in.payload, {"index": 0 if end else index, "end": end})
                        ctx.set(dut.spike_in.valid, 1)
                        await ctx.tick().until(dut.spike_in.ready)
                    ctx.set(dut.spike_in.valid, 0)
                    await ctx.tick().until(dut.done)

    async def consumer(ctx):
        ctx.set(dut.spike_out.ready, 1)
        while True:
            _, _, valid, payload = await ctx.tick().sample(
                dut.spike_out.valid, dut.spike_out.payload
            )
            if valid:
                box["rec"].spike(box["t"], payload.population, payload.index)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(driver)
    sim.add_testbench(consumer, background=True)
    sim.run()


@pytest.mark.parametrize(
    "syn_decays", [(None, None), ([2, -4], [2, -4])], ids=["plain", "current-based"]
)
def test_runtime_loading_and_reset(syn_decays):
    net_a, net_b = _recurrent_pair(syn_decays)
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


def test_cycles_are_reported_per_step():
    net_a, _ = _recurrent_pair()
    spikes = random_spikes(np.random.default_rng(4), net_a, 4, activity=0.5)
    run = run_array_amaranth(net_a, spikes, lanes=2)
    plan = compile_network(net_a, 2)
    # At least the update of every slot, at most the documented bound.
    assert (run.cycles >= plan.slots).all()
    assert (run.cycles <= plan.max_step_cycles()).all()


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
    with pytest.raises(SpikeforgeError, match=r"^lanes must be one of 1, 2, 4, 8, not 3$"):
        compile_network(net_a, 3)


def test_array_parameter_errors():
    plan = compile_network(_recurrent_pair()[0], 1)
    with pytest.raises(TypeError, match=r"^stages must be an integer in \[1, 4\], not 5$"):
        NeuronArray(plan, stages=5)
    plan.lanes = 3
    with pytest.raises(TypeError, match=r"^lanes must be one of 1, 2, 4, 8, not 3$"):
        NeuronArray(plan)
