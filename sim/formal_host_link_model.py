"""The environment of the host-link proofs: a tiny network and a model of the array.

:class:`FreeArray` stands in for the :class:`~spikeforge.hdl.array.NeuronArray` inside the
:class:`~spikeforge.hdl.host_link.HostLink` that :mod:`spikeforge.sim.formal_host_link` proves
things about: the array's own proofs are in :mod:`spikeforge.sim.formal_array`; here it only
matters that a step, a reset and a configuration write end, within bounds.
"""

from amaranth.asserts import AnySeq
from amaranth.hdl import Assume, Fragment, Module, Signal
from amaranth.lib import wiring

from spikeforge.gen.compile import compile_network
from spikeforge.hdl.host_link import HostLink

from .formal import proof_network

__all__ = ["tiny_network", "FreeArray", "free_link"]


def tiny_network():
    """The network of the host-link proofs: 2 inputs, one LIF neuron, 4-bit membranes."""
    return proof_network(2, [("A", 1, 1)], [("inp", "A", [[3], [-2]])])


class FreeArray(wiring.Component):
    """The interface of a :class:`~spikeforge.hdl.array.NeuronArray` with free timing.

    Like the array: ``busy`` is low only when idle; while idle, ``reset_state`` starts a reset
    and else ``start`` starts a step; ``cfg.ready`` is ``~busy``; a step takes input events
    until one with ``end``, then pulses ``done`` in its last busy cycle; output spikes come
    only during a step, at most ``neurons`` of them, each of a LIF population (``spiking``;
    ``docs/array.md``: input populations have no spikes out). Free, within bounds: when ``spike_in``
    is ready (at the latest after ``in_stall`` cycles of an offered event), when ``done``
    comes (at the latest ``done_within`` cycles after ``end`` was taken), how long a reset
    takes (at most ``reset_within`` + 1 cycles), the spikes and their payload, ``cycles`` and
    ``timestep``.

    Parameters
    ----------
    array : NeuronArray
        The array replaced: its signature and widths are copied.
    neurons : int
    spiking : sequence of int
        The numbers of the LIF populations.
    in_stall, done_within, reset_within : int
    """

    def __init__(self, array, *, neurons, spiking, in_stall, done_within, reset_within):
        self.pop_width = array.pop_width
        self.index_width = array.index_width
        self.cfg_data_width = array.cfg_data_width
        self.cfg_addr_width = array.cfg_addr_width
        self.neurons = neurons
        self.spiking = tuple(spiking)
        self.in_stall = in_stall
        self.done_within = done_within
        self.reset_within = reset_within
        super().__init__(dict(array.signature.members))
        self.running = Signal()
        self.ended = Signal()  # the step's `end` was taken
        self.resetting = Signal()
        self.spikes = Signal(range(neurons + 1))
        self.stalled = Signal(range(in_stall + 1))  # cycles an event waited so far
        self.since_end = Signal(range(done_within + 1))
        self.reset_cycles = Signal(range(reset_within + 1))

    def elaborate(self, platform):
        m = Module()
        busy = Signal()
        m.d.comb += [
            busy.eq(self.running | self.resetting),
            self.busy.eq(busy),
            self.cfg.ready.eq(~busy),
            self.cycles.eq(AnySeq(32)),
            self.timestep.eq(AnySeq(32)),
        ]

        with m.If(~busy & self.reset_state):
            m.d.sync += [self.resetting.eq(1), self.reset_cycles.eq(0)]
        with m.Elif(~busy & self.start):
            m.d.sync += [self.running.eq(1), self.ended.eq(0), self.spikes.eq(0)]

        with m.If(self.resetting):
            finish = Signal()
            m.d.comb += finish.eq(AnySeq(1) | (self.reset_cycles == self.reset_within))
            with m.If(finish):
                m.d.sync += self.resetting.eq(0)
            with m.Else():
                m.d.sync += self.reset_cycles.eq(self.reset_cycles + 1)

        sin = self.spike_in
        m.d.comb += sin.ready.eq(AnySeq(1) & self.running & ~self.ended)
        with m.If(sin.valid & ~sin.ready):
            m.d.sync += self.stalled.eq(self.stalled + 1)
        with m.Else():
            m.d.sync += self.stalled.eq(0)
        m.d.comb += Assume(
            ~sin.valid | sin.ready | (self.stalled != self.in_stall) | ~self.running | self.ended
        )
        with m.If(sin.valid & sin.ready & sin.payload.end):
            m.d.sync += [self.ended.eq(1), self.since_end.eq(0)]

        m.d.comb += self.done.eq(
            self.running & self.ended & (AnySeq(1) | (self.since_end == self.done_within))
        )
        with m.If(self.done):
            m.d.sync += self.running.eq(0)
        with m.Elif(self.running & self.ended):
            m.d.sync += self.since_end.eq(self.since_end + 1)

        out = self.spike_out
        m.d.comb += [
            out.valid.eq(AnySeq(1) & self.running & (self.spikes != self.neurons)),
            out.payload.as_value().eq(AnySeq(len(out.payload.as_value()))),
        ]
        lif = 0
        for number in self.spiking:
            lif = lif | (out.payload.population == number)
        m.d.comb += Assume(~out.valid | lif)
        with m.If(out.valid):
            m.d.sync += self.spikes.eq(self.spikes + 1)
        return m


def free_link(net, *, timeout, steps, in_stall, done_within, reset_within):
    """A :class:`~spikeforge.hdl.host_link.HostLink` of ``net`` (1 lane, 1 stage) whose array
    is a :class:`FreeArray` with the bounds given; returns the link and its plan."""
    plan = compile_network(net, 1)
    link = HostLink(plan, stages=1, timeout=timeout, steps=steps)
    real = link.array
    # Only its signature and widths are used. Elaborating it once marks it and its parts as
    # used, which Amaranth warns about otherwise.
    Fragment.get(real, None)
    link.array = FreeArray(
        real,
        neurons=link.neurons,
        spiking=[n for n, q in enumerate(plan.populations) if not q.is_input],
        in_stall=in_stall,
        done_within=done_within,
        reset_within=reset_within,
    )
    return link, plan
