"""The model of one step that :class:`~.formal_array.ArrayHarness` keeps beside the array.

:class:`StepModel` follows which neuron each core takes in and gives out, through the array's
own memory ports: the address of a lane's state read port :data:`READ_DELAY` cycles before its
core's ``in_valid`` (the memory's read register, then the array's read stage), and the address
of its (registered) state write port one cycle after its core's ``out_valid``. On that it builds
the registers and the claims of the properties ``update``, ``acc`` and ``output`` (see
:mod:`.formal_array`); the inductive invariants read the same registers.
"""

from amaranth.hdl import Const, Mux, Signal, signed

from .formal import Claim, total

__all__ = ["READ_DELAY", "StepModel"]

# Cycles from a state read's address to the core's in_valid: the memory's read register and the
# array's read stage.
READ_DELAY = 2


class StepModel:
    """Which neuron each core of ``dut`` works on, and the harness's registers per property.

    Parameters
    ----------
    m : amaranth.hdl.Module
        The harness's module; the registers go there.
    plan : ArrayPlan
        The plan of ``net`` the model follows (not necessarily the one ``dut`` was built from).
    net : Network
        Source of the weights of the ``acc`` reference.
    dut : NeuronArray
        Elaborated already, so that its memory ports exist.
    begin, accepted : Value
        High in the cycle that starts a step, and when an input event (not ``end``) is
        accepted.

    Attributes
    ----------
    neurons : list of (int, int, int, int)
        Lane, slot, population index and neuron index of every LIF neuron.
    in_slots : list of list of Signal
        Per lane, the state read address 1 to :data:`READ_DELAY` cycles ago.
    fired : list of Signal
        Per lane, whether the core gave out a spike last cycle.
    counts : dict
        ``update``: per ``(population index, neuron index)``, the updates this step (0 to 2).
    refs : dict
        ``acc``: per tracked neuron, the reference sum of its synaptic input.
    spike_adds : dict
        ``acc``: per tracked neuron, the terms of that sum that come from spikes of the array.
    pendings : dict
        ``output``: per neuron, whether it spiked this step and has not been sent yet.
    """

    def __init__(self, m, plan, net, dut, begin, accepted):
        self.m, self.plan, self.net, self.dut = m, plan, net, dut
        self.begin, self.accepted = begin, accepted
        self.neurons = [
            (i % plan.lanes, pop.slot_base + i // plan.lanes, k, i)
            for k, pop in enumerate(plan.populations)
            if not pop.is_input
            for i in range(pop.size)
        ]
        self.in_slots, self.fired = [], []
        for l in range(plan.lanes):
            addr = dut.state_mem[l].read_ports[0].addr
            chain = []
            for n in range(READ_DELAY):
                reg = Signal.like(addr, name=f"in_slot{l}_{n}")
                m.d.sync += reg.eq(chain[-1] if chain else addr)
                chain.append(reg)
            self.in_slots.append(chain)
            spiked = Signal(name=f"spiked{l}")
            m.d.sync += spiked.eq(dut.cores[l].out_valid & dut.cores[l].spike)
            self.fired.append(spiked)
        self.counts, self.refs, self.spike_adds, self.pendings = {}, {}, {}, {}

    def _name(self, k, i):
        return f"{self.plan.populations[k].name}[{i}]"

    def updating(self, l, s):
        """Whether lane ``l``'s core takes in the neuron of slot ``s`` this cycle."""
        return self.dut.cores[l].in_valid & (self.in_slots[l][-1] == s)

    def spiking(self, l, s):
        """Whether the state write of lane ``l`` stores a spike of slot ``s`` this cycle."""
        wr = self.dut.state_mem[l].write_ports[0]
        return self.fired[l] & wr.en & (wr.addr == s)

    def update_claims(self):
        """The claims of ``update``; fills :attr:`counts`."""
        m, plan, dut = self.m, self.plan, self.dut
        real = {(l, s) for l, s, _, _ in self.neurons}
        claims = []
        for l in range(plan.lanes):
            known = Const(0)
            for s in range(plan.slots):
                if (l, s) in real:
                    known = known | (self.in_slots[l][-1] == s)
            claims.append(
                Claim(
                    ~dut.cores[l].in_valid | known,
                    f"update: lane {l} updated a slot without a neuron",
                )
            )
        for l, s, k, i in self.neurons:
            count = self.counts[(k, i)] = Signal(range(3), name=f"updates_{l}_{s}")
            with m.If(self.begin):
                m.d.sync += count.eq(0)
            with m.Elif(self.updating(l, s) & (count != 2)):
                m.d.sync += count.eq(count + 1)
            name = self._name(k, i)
            claims += [
                Claim(~self.updating(l, s) | (count == 0), f"update: {name} updated twice"),
                Claim(~dut.done | (count == 1), f"update: {name} not updated by done"),
            ]
        return claims

    def acc_claims(self, track):
        """The claims of ``acc`` for the neurons named in ``track`` (``None``: all).

        Fills :attr:`refs` and :attr:`spike_adds`.
        """
        m, plan, dut = self.m, self.plan, self.dut
        pops = plan.populations
        # Modulo 2**acc_width, as the accumulator adds.
        width = signed(plan.acc_width)
        for _, _, k, i in self.neurons:
            if track is None or (pops[k].name, i) in track:
                self.refs[(k, i)] = Signal(width, name=f"ref_acc_{pops[k].name}_{i}")
        adds = {key: [] for key in self.refs}
        index = dut.spike_in.payload.index
        self.spike_adds = {key: [] for key in self.refs}
        for proj in self.net.projections:
            src = pops[proj.source_index]
            for j in range(src.size):
                if src.is_input:
                    event = self.accepted & (index == src.input_offset + j)
                else:
                    event = self.spiking(j % plan.lanes, src.slot_base + j // plan.lanes)
                for i in range(proj.weights.shape[1]):
                    w = int(proj.weights[j, i])
                    if w and (proj.target_index, i) in adds:
                        adds[(proj.target_index, i)].append(Mux(event, w, 0))
                        if not src.is_input:
                            self.spike_adds[(proj.target_index, i)].append(Mux(event, w, 0))
        claims = []
        for l, s, k, i in self.neurons:
            if (k, i) not in self.refs:
                continue
            r = self.refs[(k, i)]
            added = total(adds[(k, i)], width)
            with m.If(self.updating(l, s)):
                m.d.sync += r.eq(added)
            with m.Else():
                m.d.sync += r.eq(r + added)
            claims.append(
                Claim(
                    ~self.updating(l, s) | (dut.cores[l].acc == r),
                    f"acc: {self._name(k, i)} got a wrong sum",
                )
            )
        return claims

    def output_claims(self):
        """The claims of ``output``; fills :attr:`pendings`."""
        m, dut = self.m, self.dut
        out = dut.spike_out
        sent = out.valid & out.ready
        known = Const(0)
        claims = []
        for l, s, k, i in self.neurons:
            pending = self.pendings[(k, i)] = Signal(
                name=f"unsent_{self.plan.populations[k].name}_{i}"
            )
            this = sent & (out.payload.population == k) & (out.payload.index == i)
            known = known | this
            with m.If(self.spiking(l, s)):
                m.d.sync += pending.eq(1)
            with m.Elif(this):
                m.d.sync += pending.eq(0)
            name = self._name(k, i)
            claims += [
                Claim(~this | pending, f"output: {name} sent without a spike or twice"),
                Claim(~dut.done | ~pending, f"output: {name} spiked but was not sent"),
            ]
        claims.append(Claim(~sent | known, "output: event names no LIF neuron"))
        return claims
