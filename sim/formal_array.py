"""Formal harness of the neuron array (:class:`~spikeforge.hdl.array.NeuronArray`).

:class:`ArrayHarness` elaborates an array of a small network and drives it with free inputs:
``spike_in`` payload and ``valid`` are ``AnySeq`` under the stream protocol (``valid`` held
until ``ready``, payload stable meanwhile; each input index at most once per step, as a host
sends it), ``spike_out.ready`` and ``start`` are ``AnySeq``; ``cfg`` and ``reset_state`` are
idle. It keeps its own model of the step beside the array and asserts the properties named by
``check``:

``"update"``
    Every neuron is updated exactly once per timestep: a lane's core takes ``in_valid`` only
    for a slot holding a neuron of that lane, never twice for one slot between ``start`` and
    ``done``, and at ``done`` every neuron has been updated.
``"acc"``
    No synaptic input is lost or applied twice: a reference adds, per target neuron, the
    weight of every accepted input event and of every spike the cores produce (from the
    network's weight matrices, not from the array's memories), and when a core updates a
    neuron, the ``acc`` it receives equals that sum, which then starts again from 0.
    Feed-forward networks only (recurrent input belongs to the next step's bank).
``"output"``
    ``spike_out`` neither drops nor duplicates nor invents an event under back-pressure: every
    transfer is a spike a core produced this step and has not been sent yet, and at ``done``
    none is left unsent.
``"live"``
    Bounded liveness: if the consumer is ready at least once every ``ready_every`` cycles and
    the producer keeps ``valid`` high from cycle ``input_within`` of a step on (so that,
    sending each index at most once, it must send ``end``), ``busy`` lasts at most
    ``done_within`` cycles after the cycle that started the step.

The neurons are identified through the array's own memory ports: the address of a lane's state
read port one cycle before its core's ``in_valid``, and the address of its state write port
while its core's ``out_valid`` is high.
"""

from amaranth.asserts import AnySeq
from amaranth.hdl import Assert, Assume, Const, Fragment, Module, Mux, Signal, signed
from amaranth.lib import wiring

from spikeforge.gen.compile import compile_network
from spikeforge.gen.network import Network
from spikeforge.hdl.array import NeuronArray

from .formal_neuron import _no_reset

__all__ = ["PROPERTIES", "ArrayHarness", "small_network"]

PROPERTIES = ("update", "acc", "output", "live")


def small_network():
    """The network the array proofs run on: 3 inputs, LIF populations of 3 and 4 neurons.

    Feed-forward, 4-bit membranes and 3-bit weights. With two lanes, population ``A`` leaves a
    padding slot (3 neurons on 2 rows) and ``B`` fills its rows; the inputs feed both
    populations, so one event walks two projections, and the input index has a fourth value
    past the input vector, which the array must drop.
    """
    lif = dict(kind="lif", v_reset=0, v_rest=0, v_peak=6, t_ref=1, decay=[1],
               reset_mode="zero", bias=0)
    return Network.from_dict({
        "format": "spikeforge-network/1", "v_width": 4, "w_width": 3,
        "populations": [
            {"name": "inp", "kind": "input", "size": 3},
            dict(lif, name="A", size=3, v_th=1),
            dict(lif, name="B", size=4, v_th=2),
        ],
        "projections": [
            {"from": "inp", "to": "A", "weights": [[3, 1, -2], [1, 3, 2], [-4, 2, 3]]},
            {"from": "inp", "to": "B", "weights": [[1, 0, 2, -1], [2, 1, 0, 3], [0, -3, 1, 2]]},
            {"from": "A", "to": "B", "weights": [[2, 3, -1, 1], [3, -2, 2, 1], [1, 1, 3, 2]]},
        ],
    })


def _check_properties(check):
    check = tuple(check)
    unknown = [c for c in check if c not in PROPERTIES]
    if unknown or not check:
        raise TypeError(f"check must name some of {', '.join(PROPERTIES)}, not {check!r}")
    return check


class ArrayHarness(wiring.Component):
    """A :class:`NeuronArray` of ``net`` against a model of the step, under free inputs.

    Parameters
    ----------
    net : Network
        The network; the reference model reads its weights and layout from here.
    lanes, stages : int
        Array configuration.
    check : iterable of str
        Which of :data:`PROPERTIES` to assert.
    dut_plan : ArrayPlan, optional
        The plan the array is elaborated from (default: ``compile_network(net, lanes)``); a
        different one checks that the properties notice a wrong plan.
    ready_every, input_within, done_within : int
        The bounds of ``"live"`` (see the module docstring); assumed and asserted only when
        ``"live"`` is checked.
    """

    def __init__(self, net, *, lanes=2, stages=1, check=PROPERTIES, dut_plan=None,
                 ready_every=2, input_within=2, done_within=56):
        self.check = _check_properties(check)
        if "acc" in self.check and any(p.recurrent for p in net.projections):
            raise ValueError("the acc property needs a feed-forward network")
        self.net = net
        self.plan = compile_network(net, lanes)
        self.dut = NeuronArray(dut_plan if dut_plan is not None else self.plan, stages=stages)
        self.ready_every = ready_every
        self.input_within = input_within
        self.done_within = done_within
        super().__init__({})

    def _neurons(self):
        """(lane, slot, population index, neuron index) of every LIF neuron."""
        plan = self.plan
        for k, pop in enumerate(plan.populations):
            if pop.is_input:
                continue
            for i in range(pop.size):
                yield i % plan.lanes, pop.slot_base + i // plan.lanes, k, i

    def elaborate(self, platform):
        m = Module()
        _no_reset(m)
        plan, net, dut = self.plan, self.net, self.dut
        lanes = plan.lanes
        # Elaborated here, not left to the toolchain, so that the memory ports it creates exist
        # for the model to observe.
        m.submodules.dut = Fragment.get(dut, platform)
        neurons = list(self._neurons())
        real = {(l, s) for l, s, _, _ in neurons}

        m.d.comb += [dut.cfg.valid.eq(0), dut.reset_state.eq(0), dut.start.eq(AnySeq(1)),
                     dut.spike_out.ready.eq(AnySeq(1))]
        begin = Signal()       # the cycle that starts a step
        m.d.comb += begin.eq(dut.start & ~dut.busy)

        # --- the producer: free, under the stream protocol --------------------------------------
        sin = dut.spike_in
        m.d.comb += [sin.valid.eq(AnySeq(1)),
                     sin.payload.as_value().eq(AnySeq(len(sin.payload.as_value())))]
        held = Signal()
        last_payload = Signal.like(sin.payload.as_value())
        m.d.sync += [held.eq(sin.valid & ~sin.ready), last_payload.eq(sin.payload.as_value())]
        m.d.comb += Assume(~held | (sin.valid & (sin.payload.as_value() == last_payload)))
        n_index = 1 << len(sin.payload.index)
        seen = Signal(n_index)
        accepted = Signal()
        m.d.comb += accepted.eq(sin.valid & sin.ready & ~sin.payload.end)
        with m.If(begin):
            m.d.sync += seen.eq(0)
        with m.Elif(accepted):
            m.d.sync += seen.eq(seen | (1 << sin.payload.index))
        m.d.comb += Assume(~(sin.valid & ~sin.payload.end & seen.bit_select(sin.payload.index, 1)))

        # --- which neuron each core takes in and gives out --------------------------------------
        in_slot, out_slot = [], []
        for l in range(lanes):
            rd = dut.state_mem[l].read_ports[0]
            slot = Signal.like(rd.addr, name=f"in_slot{l}")
            m.d.sync += slot.eq(rd.addr)
            in_slot.append(slot)
            out_slot.append(dut.state_mem[l].write_ports[0].addr)

        def updating(l, s):
            return dut.cores[l].in_valid & (in_slot[l] == s)

        def spiking(l, s):
            core = dut.cores[l]
            return core.out_valid & core.spike & (out_slot[l] == s)

        asserts = []
        if "update" in self.check:
            for l in range(lanes):
                known = Const(0)
                for s in range(plan.slots):
                    if (l, s) in real:
                        known = known | (in_slot[l] == s)
                asserts.append(Assert(~dut.cores[l].in_valid | known,
                                      f"update: lane {l} updated a slot without a neuron"))
            for l, s, k, i in neurons:
                count = Signal(range(3), name=f"updates_{l}_{s}")
                with m.If(begin):
                    m.d.sync += count.eq(0)
                with m.Elif(updating(l, s) & (count != 2)):
                    m.d.sync += count.eq(count + 1)
                name = f"{plan.populations[k].name}[{i}]"
                asserts += [
                    Assert(~updating(l, s) | (count == 0), f"update: {name} updated twice"),
                    Assert(~dut.done | (count == 1), f"update: {name} not updated by done"),
                ]

        if "acc" in self.check:
            width = signed(plan.acc_width + 4)
            ref = {}
            for l, s, k, i in neurons:
                ref[(k, i)] = Signal(width, name=f"ref_acc_{plan.populations[k].name}_{i}")
            adds = {key: [] for key in ref}
            index = sin.payload.index
            for proj in net.projections:
                src = plan.populations[proj.source_index]
                for j in range(src.size):
                    if src.is_input:
                        event = accepted & (index == src.input_offset + j)
                    else:
                        l, s = j % lanes, src.slot_base + j // lanes
                        event = spiking(l, s)
                    for i in range(proj.weights.shape[1]):
                        w = int(proj.weights[j, i])
                        if w:
                            adds[(proj.target_index, i)].append(Mux(event, w, 0))
            for l, s, k, i in neurons:
                r = ref[(k, i)]
                total = sum(adds[(k, i)], Const(0, width))
                with m.If(updating(l, s)):
                    m.d.sync += r.eq(total)
                with m.Else():
                    m.d.sync += r.eq(r + total)
                asserts.append(Assert(~updating(l, s) | (dut.cores[l].acc == r),
                                      f"acc: {plan.populations[k].name}[{i}] got a wrong sum"))

        if "output" in self.check:
            out = dut.spike_out
            sent = out.valid & out.ready
            known = Const(0)
            for l, s, k, i in neurons:
                pending = Signal(name=f"unsent_{plan.populations[k].name}_{i}")
                this = sent & (out.payload.population == k) & (out.payload.index == i)
                known = known | this
                with m.If(spiking(l, s)):
                    m.d.sync += pending.eq(1)
                with m.Elif(this):
                    m.d.sync += pending.eq(0)
                name = f"{plan.populations[k].name}[{i}]"
                asserts += [
                    Assert(~this | pending, f"output: {name} sent without a spike or twice"),
                    Assert(~dut.done | ~pending, f"output: {name} spiked but was not sent"),
                ]
            asserts.append(Assert(~sent | known, "output: event names no LIF neuron"))

        if "live" in self.check:
            limit = self.done_within + 1
            since = Signal(range(limit + 1))
            with m.If(begin):
                m.d.sync += since.eq(1)
            with m.Elif(dut.busy & (since != limit)):
                m.d.sync += since.eq(since + 1)
            starved = Signal(range(self.ready_every + 1))
            with m.If(dut.spike_out.ready):
                m.d.sync += starved.eq(0)
            with m.Elif(starved != self.ready_every):
                m.d.sync += starved.eq(starved + 1)
            m.d.comb += [
                Assume((starved < self.ready_every - 1) | dut.spike_out.ready),
                Assume(~dut.busy | (since < self.input_within) | sin.valid),
            ]
            asserts.append(Assert(~dut.busy | (since <= self.done_within),
                                  f"live: busy for more than {self.done_within} cycles"))

        m.d.comb += asserts
        return m
