"""The neuron core's generated Verilog under Verilator and Icarus against the golden model.

The cocotb side is ``cocotb_neuron_core.py``. Compiling dominates under Verilator (40-80 s a
build on this 2-core machine, mostly its C++ runtime library; the 28,000 cases then take 3 s),
so the configurations of a run share one build: the top level is a bank of cores side by side,
driven at once; one of them is a synaptic core (the current-based neuron, current-based and
plain parameters mixed), one a synaptic core with ``delayed_reset`` and ``at_threshold`` (both
reset timings and threshold tests mixed). Default run: 15-25 s under Icarus, 45-85 s under Verilator on an idle
machine (with the synaptic core, measured while other jobs loaded both cores: 73 s and 171 s);
``--slow`` adds a second bank with 90,000 cases.
"""

import json

import numpy as np
import pytest
from amaranth.hdl import Module
from amaranth.lib import wiring
from neuron_cases import random_cases

from spikeforge.gen.output import convert
from spikeforge.hdl.neuron import NeuronCore, pack_params
from spikeforge.sim.rtl import RTLSimulationError, require_or_skip, run_cocotb

# (v_width, acc_width, t_ref_max, stages, cases[, synaptic[, options]]): every stage count,
# narrow and wide datapaths, a synaptic core, and one built for reset_timing "next" and
# threshold_compare ">=" (options).
CONFIGS = [
    (16, 16, 15, 1, 8_000),
    (8, 12, 0, 2, 6_000),
    (16, 18, 255, 3, 8_000),
    (32, 40, 65535, 4, 6_000),
    (16, 18, 15, 2, 6_000, True),
    (16, 18, 15, 4, 6_000, True, True),
]
SLOW_CONFIGS = [
    (16, 20, 1000, 4, 40_000),
    (2, 2, 1, 1, 20_000),
    (12, 24, 7, 2, 30_000),
]
SIMULATORS = ("verilator", "icarus")


class CoreBank(wiring.Component):
    """Cores side by side on one clock, the ports of core ``i`` prefixed with ``c<i>_``."""

    def __init__(self, cores):
        self.cores = cores
        super().__init__(
            {
                f"c{i}_{name}": member
                for i, core in enumerate(cores)
                for name, member in core.signature.members.items()
            }
        )

    def elaborate(self, platform):
        m = Module()
        for i, core in enumerate(self.cores):
            m.submodules[f"core{i}"] = core
            for name, member in core.signature.members.items():
                outer = getattr(self, f"c{i}_{name}")
                if member.flow == wiring.In:
                    m.d.comb += getattr(core, name).eq(outer)
                else:
                    m.d.comb += outer.eq(getattr(core, name))
        return m


def make_core(config):
    v_width, acc_width, t_ref_max, stages, _, *flags = config
    synaptic, options = (list(flags) + [False, False])[:2]
    return NeuronCore(
        v_width=v_width,
        acc_width=acc_width,
        t_ref_max=t_ref_max,
        stages=stages,
        synaptic=synaptic,
        delayed_reset=options,
        at_threshold=options,
    )


def write_cases(path, core, config, cases, *, rng, idle_fraction=0.1):
    """Write ``cases``, their golden results and some idle cycles for ``cocotb_neuron_core``."""
    layout = core.params.shape()
    unique = sorted(set(cases.params), key=repr)
    index = {p: i for i, p in enumerate(unique)}
    v_next, r_next, spike, trace, *i_next = cases.expected()
    n = len(cases.v)
    idle = np.where(rng.random(n) < idle_fraction, rng.integers(1, 4, n), 0)
    # A synaptic core's cases also have the current in and out, a delayed_reset core's the
    # pending reset.
    current = {"i": cases.i, "i_next": i_next[0]} if core.synaptic else {}
    if core.delayed_reset:
        current.update(pending=cases.pending, pending_next=cases.expected_pending(spike))
    options = dict(
        synaptic=core.synaptic, delayed_reset=core.delayed_reset, at_threshold=core.at_threshold
    )
    packed = [layout.const(pack_params(p, **options)).as_value().value for p in unique]
    np.savez(
        path,
        v=cases.v,
        r=cases.r,
        acc=cases.acc,
        params_hex=[f"{word:x}" for word in packed],
        params_index=[index[p] for p in cases.params],
        params_text=[repr(p) for p in unique],
        idle=idle,
        latency=core.latency,
        v_next=v_next,
        r_next=r_next,
        spike=spike.astype(np.int64),
        v_trace=trace,
        config="v_width={}, acc_width={}, t_ref_max={}, stages={}".format(*config[:4])
        + (", synaptic" if core.synaptic else "")
        + (", delayed_reset, at_threshold" if core.delayed_reset else ""),
        **current,
    )


def run_bank(build_root, tmp_path, simulator, configs, seed, plant=None):
    """Run random cases through a bank of ``configs`` and return each config's cases.

    ``plant`` = (lane, case) adds one to that golden ``v_trace`` value, to check that the test
    catches a wrong result.
    """
    cores = [make_core(config) for config in configs]
    manifest, all_cases = {}, []
    for i, (core, config) in enumerate(zip(cores, configs)):
        rng = np.random.default_rng([seed, i, *config])
        v_width, acc_width, t_ref_max, _, n = config[:5]
        cases = random_cases(
            rng,
            n,
            v_width=v_width,
            acc_width=acc_width,
            t_ref_max=t_ref_max,
            synaptic=core.synaptic,
            delayed=core.delayed_reset,
            at_threshold=core.at_threshold,
        )
        manifest[f"c{i}"] = str(tmp_path / f"c{i}.npz")
        write_cases(manifest[f"c{i}"], core, config, cases, rng=rng)
        all_cases.append(cases)
    if plant is not None:
        lane, case = plant
        with np.load(manifest[f"c{lane}"]) as data:
            planted = {name: data[name] for name in data.files}
        planted["v_trace"][case] += 1
        np.savez(manifest[f"c{lane}"], **planted)
    (tmp_path / "cases.json").write_text(json.dumps(manifest))
    # The Verilog is the same for the same configs, so one build directory per bank.
    bank = "_".join(
        "x".join(map(str, config[:4]))
        + ("s" if core.synaptic else "")
        + ("o" if core.delayed_reset else "")
        for config, core in zip(configs, cores)
    )
    result = run_cocotb(
        convert(CoreBank(cores), name="neuron_bank", fmt="verilog"),
        toplevel="neuron_bank",
        test_module="cocotb_neuron_core",
        simulator=simulator,
        test_dir=tmp_path,
        build_dir=build_root / f"{simulator}_{bank}",
        env={"SPIKEFORGE_CASES": str(tmp_path / "cases.json")},
    )
    assert result.tests == ("neuron_core_matches_golden",)
    assert result.sim_time_ns > 10 * max(config[4] for config in configs)
    return all_cases


@pytest.fixture(scope="session")
def build_root(tmp_path_factory):
    """Builds shared by the session: one directory per simulator and bank of configs."""
    return tmp_path_factory.mktemp("rtl_builds")


@pytest.mark.parametrize("simulator", SIMULATORS)
def test_core_rtl_matches_golden(build_root, tmp_path, simulator):
    require_or_skip(simulator)
    for cases in run_bank(build_root, tmp_path, simulator, CONFIGS, seed=1):
        spike = cases.expected()[2]
        # The extremes were really exercised, not just drawn.
        assert spike.any() and (~spike).any()
        assert (cases.r > 0).any() and (cases.r == 0).any()


@pytest.mark.slow
@pytest.mark.parametrize("simulator", SIMULATORS)
def test_core_rtl_matches_golden_long(build_root, tmp_path, simulator):
    require_or_skip(simulator)
    for cases in run_bank(build_root, tmp_path, simulator, SLOW_CONFIGS, seed=2):
        assert cases.expected()[2].any()


@pytest.mark.parametrize("simulator", SIMULATORS)
def test_mismatch_is_reported_with_its_case(build_root, tmp_path, simulator):
    # Same bank as the default test (same build), smaller runs, one planted wrong result.
    require_or_skip(simulator)
    configs = [(*config[:4], 50, *config[5:]) for config in CONFIGS]
    with pytest.raises(
        RTLSimulationError,
        match=r"neuron_core_matches_golden: .*c2 \(v_width=16, acc_width=18, "
        r"t_ref_max=255, stages=3\): mismatches \(v_trace in 1 of 50 "
        r"cases\); first: case 37 v=.* v_trace got",
    ):
        run_bank(build_root, tmp_path, simulator, configs, seed=3, plant=(2, 37))
