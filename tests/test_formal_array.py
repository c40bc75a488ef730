# amaranth: UnusedElaboratable=no
# (The argument checks raise before a harness or design is elaborated.)
"""Bounded model checks of the neuron array (SymbiYosys + yices) and planted bugs for each.

The array of ``formal_array.small_network()`` (3 inputs, LIF populations of 3 and 4 neurons,
2 lanes, 1 stage) under free input events and free output back-pressure; see
``docs/verification.md``. Default run: the update and output properties to depth 25 (a whole
step without input events takes 17 cycles) and a planted bug for update, acc and output,
about 2 minutes on two loaded cores. ``--slow`` adds the acc property, bounded liveness to
depth 58 and its planted hang (about 20 minutes more).
"""

import dataclasses
import functools
import types

import pytest
from amaranth.hdl import Module, Signal
from amaranth.lib import fifo, wiring
from amaranth.lib.wiring import In, Out

import spikeforge.hdl.array as array
from spikeforge.gen.compile import compile_network
from spikeforge.gen.network import Network
from spikeforge.sim.formal import prove
from spikeforge.sim.formal_array import PROPERTIES, ArrayHarness, small_network

from formal_checks import assert_fails_with_trace, assert_passes

LIVE = dict(ready_every=2, input_within=2, done_within=56)


# --- the properties hold -------------------------------------------------------------------

@pytest.mark.parametrize("prop", ["update", "output"])
def test_property_holds(formal, tmp_path, prop):
    harness = ArrayHarness(small_network(), check=[prop])
    assert_passes(prove(harness, prop, mode="bmc", depth=25, build_dir=tmp_path))


@pytest.mark.slow
def test_acc_holds(formal, tmp_path):
    harness = ArrayHarness(small_network(), check=["acc"])
    assert_passes(prove(harness, "acc", mode="bmc", depth=25, build_dir=tmp_path))


@pytest.mark.slow
def test_done_within_bound(formal, tmp_path):
    harness = ArrayHarness(small_network(), check=["live"], **LIVE)
    assert_passes(prove(harness, "live", mode="bmc", depth=58, build_dir=tmp_path))


# --- each property catches a planted bug ---------------------------------------------------

class PatchedFIFO(wiring.Component):
    """A ``SyncFIFOBuffered`` with a bug: ``stale_pop`` pops only when ``r_en`` was high the
    cycle before too (a transfer right after a stall is repeated); ``level_offset`` is added to
    the reported level (the FIFO never looks empty)."""

    def __init__(self, *, width, depth, stale_pop=False, level_offset=0):
        self.inner = fifo.SyncFIFOBuffered(width=width, depth=depth)
        self.stale_pop = stale_pop
        self.level_offset = level_offset
        super().__init__({"w_data": In(width), "w_en": In(1), "w_rdy": Out(1),
                          "r_data": Out(width), "r_en": In(1), "r_rdy": Out(1),
                          "level": Out(range(depth + 2))})

    def elaborate(self, platform):
        m = Module()
        m.submodules.inner = inner = self.inner
        pop = self.r_en
        if self.stale_pop:
            last = Signal()
            m.d.sync += last.eq(self.r_en)
            pop = self.r_en & last
        m.d.comb += [
            inner.w_data.eq(self.w_data), inner.w_en.eq(self.w_en), self.w_rdy.eq(inner.w_rdy),
            self.r_data.eq(inner.r_data), self.r_rdy.eq(inner.r_rdy), inner.r_en.eq(pop),
            self.level.eq(inner.level + self.level_offset),
        ]
        return m


def patch_fifo(monkeypatch, **bug):
    monkeypatch.setattr(array, "fifo", types.SimpleNamespace(
        SyncFIFOBuffered=functools.partial(PatchedFIFO, **bug)))


def test_update_catches_overlapping_populations(formal, tmp_path):
    # Population B starts one slot early: A's second row is updated twice, B's last never.
    net = small_network()
    plan = compile_network(net, 2)
    pops = [dataclasses.replace(p, slot_base=1) if p.name == "B" else p
            for p in plan.populations]
    harness = ArrayHarness(net, check=["update"],
                           dut_plan=dataclasses.replace(plan, populations=pops))
    assert_fails_with_trace(prove(harness, "update_bug", mode="bmc", depth=25,
                                  build_dir=tmp_path), tmp_path)


def test_acc_catches_a_wrong_weight(formal, tmp_path):
    # One weight word of the plan differs from the network: input 0 to A[0] is -1, not 3.
    net = small_network()
    plan = compile_network(net, 2)
    weights = plan.weights.copy()
    assert weights[0, 0] == 3
    weights[0, 0] = -1
    harness = ArrayHarness(net, check=["acc"],
                           dut_plan=dataclasses.replace(plan, weights=weights))
    assert_fails_with_trace(prove(harness, "acc_bug", mode="bmc", depth=12,
                                  build_dir=tmp_path), tmp_path)


def test_output_catches_a_repeating_fifo(formal, tmp_path, monkeypatch):
    patch_fifo(monkeypatch, stale_pop=True)
    harness = ArrayHarness(small_network(), check=["output"])
    assert_fails_with_trace(prove(harness, "output_bug", mode="bmc", depth=25,
                                  build_dir=tmp_path), tmp_path)


@pytest.mark.slow
def test_live_catches_a_hang(formal, tmp_path, monkeypatch):
    # The FIFOs never report empty: the step never finishes.
    patch_fifo(monkeypatch, level_offset=1)
    harness = ArrayHarness(small_network(), check=["live"], **LIVE)
    assert_fails_with_trace(prove(harness, "live_bug", mode="bmc", depth=58,
                                  build_dir=tmp_path), tmp_path)


def test_harness_rejects_bad_arguments():
    with pytest.raises(TypeError, match=r"^check must name some of update, acc, output, live, "
                                        r"not \('spikes',\)$"):
        ArrayHarness(small_network(), check=["spikes"])
    recurrent = small_network().to_dict()
    recurrent["projections"].append({"from": "B", "to": "A",
                                     "weights": [[1, 1, 1]] * 4})
    with pytest.raises(ValueError, match=r"^the acc property needs a feed-forward network$"):
        ArrayHarness(Network.from_dict(recurrent), check=["acc"])
    assert PROPERTIES == ("update", "acc", "output", "live")
