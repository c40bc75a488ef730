# amaranth: UnusedElaboratable=no
# (A focus that selects no assertion raises in elaborate, leaving its Module unused.)
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
    neuron, the ``acc`` it receives equals that sum, which then starts again from 0. The sum
    wraps at ``acc_width`` bits as the accumulator does; with the network's required
    ``acc_width`` no partial sum wraps, so equal means exactly equal. Feed-forward networks
    only (recurrent input belongs to the next step's bank).
``"output"``
    ``spike_out`` neither drops nor duplicates nor invents an event under back-pressure: every
    transfer is a spike a core produced this step and has not been sent yet, and at ``done``
    none is left unsent.
``"live"``
    Bounded liveness: if the consumer is ready at least once every ``ready_every`` cycles and
    the producer keeps ``valid`` high from cycle ``input_within`` of a step on (so that,
    sending each index at most once, it must send ``end``), ``busy`` lasts at most
    ``done_within`` cycles after the cycle that started the step.

The neurons are identified through the array's own memory ports (see
:mod:`.formal_array_model`, which also builds the registers and claims of ``update``, ``acc``
and ``output``).

With ``inductive=True`` the harness also asserts auxiliary invariants, so that k-induction
(``prove(..., mode="prove")``) closes for ``update``, ``acc`` and ``output``: the schedule's
registers agree with each other and each neuron's "updated" status is a function of them
(:mod:`.formal_array_schedule`); every spike is in exactly one place from its production until
it is sent (:mod:`.formal_array_delivery`); every synaptic addition still in flight is accounted
for, so that the reference equals the accumulator word plus what is in flight
(:mod:`.formal_array_acc`). These name the array's internal registers, found in the elaborated
design by name (:mod:`.formal_inside`; the array has no formal hooks), so a renamed register
fails the harness's elaboration with a message naming it. They are written for one pipeline
stage per core. Where the solver stalls on every assertion at once, ``focus`` proves them in
parts (see :class:`ArrayHarness`).
"""

from amaranth.asserts import AnySeq
from amaranth.hdl import Assume, Fragment, Module, Signal
from amaranth.lib import wiring

from spikeforge.gen.compile import compile_network
from spikeforge.hdl.array import NeuronArray

from .formal import Claim, Invariants, assert_claims, check_properties, no_reset, proof_network
from .formal_array_acc import acc_invariants, update_phase_invariants
from .formal_array_delivery import delivery_invariants, output_invariants
from .formal_array_model import StepModel
from .formal_array_schedule import Schedule, schedule_invariants
from .formal_inside import Inside

__all__ = ["PROPERTIES", "ArrayHarness", "small_network"]

PROPERTIES = ("update", "acc", "output", "live")


def small_network():
    """The network the array proofs run on: 3 inputs, LIF populations of 3 and 4 neurons.

    Feed-forward, 4-bit membranes and 3-bit weights. With two lanes, population ``A`` leaves a
    padding slot (3 neurons on 2 rows) and ``B`` fills its rows; the inputs feed both
    populations, so one event walks two projections, and the input index has a fourth value
    past the input vector, which the array must drop.
    """
    return proof_network(
        3,
        [("A", 3, 1), ("B", 4, 2)],
        [
            ("inp", "A", [[3, 1, -2], [1, 3, 2], [-4, 2, 3]]),
            ("inp", "B", [[1, 0, 2, -1], [2, 1, 0, 3], [0, -3, 1, 2]]),
            ("A", "B", [[2, 3, -1, 1], [3, -2, 2, 1], [1, 1, 3, 2]]),
        ],
    )


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
    track : iterable of (str, int), optional
        The neurons whose ``acc`` is checked (default: all); one at a time keeps an
        inductive proof small.
    inductive : bool
        Also assert the auxiliary invariants that make k-induction close for ``update``,
        ``acc`` and ``output`` (see the module docstring); needs ``stages=1`` and no ``live``.
    focus : callable, optional
        Takes an assertion's message (``"acc: B[0] got a wrong sum"``, ``"invariant: ..."``)
        and says whether to assert it; the others are assumed to have held one cycle earlier
        (:func:`~.formal.assert_claims`, which says why proofs whose focuses together cover
        every message prove them all). For a solver that stalls on the whole set at once; see
        ``docs/verification.md``.
    """

    def __init__(
        self,
        net,
        *,
        lanes=2,
        stages=1,
        check=PROPERTIES,
        dut_plan=None,
        ready_every=2,
        input_within=2,
        done_within=56,
        inductive=False,
        track=None,
        focus=None,
    ):
        self.check = check_properties(check, PROPERTIES)
        if "acc" in self.check and any(p.recurrent for p in net.projections):
            raise ValueError("the acc property needs a feed-forward network")
        if inductive and (stages != 1 or "live" in self.check):
            raise ValueError(
                "the inductive invariants are written for stages 1 and the "
                "update, acc and output properties"
            )
        names = {(p.name, i) for p in net.populations if p.kind != "input" for i in range(p.size)}
        if track is not None:
            track = tuple(track)
            if not track or any(t not in names for t in track):
                raise ValueError(
                    f"track must name LIF neurons as (population, index) pairs, not {track!r}"
                )
        if focus is not None and not callable(focus):
            raise TypeError(f"focus must be None or a callable taking a message, not {focus!r}")
        self.focus = focus
        self.track = track
        self.net = net
        self.plan = compile_network(net, lanes)
        self.dut = NeuronArray(dut_plan if dut_plan is not None else self.plan, stages=stages)
        self.ready_every = ready_every
        self.input_within = input_within
        self.done_within = done_within
        self.inductive = inductive
        super().__init__({})

    def elaborate(self, platform):
        m = Module()
        no_reset(m)
        dut = self.dut
        # Elaborated here, not left to the toolchain, so that the memory ports it creates exist
        # for the model to observe.
        m.submodules.dut = frag = Fragment.get(dut, platform)

        m.d.comb += [
            dut.cfg.valid.eq(0),
            dut.reset_state.eq(0),
            dut.start.eq(AnySeq(1)),
            dut.spike_out.ready.eq(AnySeq(1)),
        ]
        begin = Signal()  # the cycle that starts a step
        m.d.comb += begin.eq(dut.start & ~dut.busy)
        accepted = self._produce(m, begin)
        model = StepModel(m, self.plan, self.net, dut, begin, accepted)

        claims = []
        if "update" in self.check:
            claims += model.update_claims()
        if "acc" in self.check:
            claims += model.acc_claims(self.track)
        if "output" in self.check:
            claims += model.output_claims()
        if "live" in self.check:
            claims += self._live_claims(m, begin)
        if self.inductive:
            claims += self._invariants(m, frag, model)
        assert_claims(m, claims, self.focus)
        return m

    def _produce(self, m, begin):
        """Drive ``spike_in`` freely under the stream protocol, each index at most once a step.

        Returns whether an input event (not ``end``) is accepted this cycle.
        """
        sin = self.dut.spike_in
        m.d.comb += [
            sin.valid.eq(AnySeq(1)),
            sin.payload.as_value().eq(AnySeq(len(sin.payload.as_value()))),
        ]
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
        return accepted

    def _live_claims(self, m, begin):
        """The claim of ``live``, under its assumptions on the consumer and the producer."""
        dut = self.dut
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
            Assume(~dut.busy | (since < self.input_within) | dut.spike_in.valid),
        ]
        return [
            Claim(
                ~dut.busy | (since <= self.done_within),
                f"live: busy for more than {self.done_within} cycles",
            )
        ]

    def _invariants(self, m, frag, model):
        """The auxiliary invariants of ``inductive`` (asserted, so proven, not assumed)."""
        inv = Invariants()
        sched = Schedule(m, Inside(frag, "the array"), model)
        schedule_invariants(inv, sched, model)
        if model.refs:
            update_phase_invariants(inv, sched)
        if model.refs or model.pendings:
            spike_fifo = delivery_invariants(m, inv, sched, model)
            if model.pendings:
                output_invariants(m, inv, sched, model, spike_fifo)
            if model.refs:
                acc_invariants(m, inv, sched, model, spike_fifo)
        return inv.claims()
