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

The neurons are identified through the array's own memory ports: the address of a lane's state
read port two cycles before its core's ``in_valid`` (the memory's read register, then the
array's read stage), and the address of its (registered) state write port one cycle after its
core's ``out_valid``.

With ``inductive=True`` the harness also asserts auxiliary invariants, so that k-induction
(``prove(..., mode="prove")``) closes for ``update``, ``acc`` and ``output``: the schedule's
registers (FSM state, population, row, drain count, the issue stage and pipeline beside the
cores) agree with each other; each neuron's "updated" status is a function of the schedule;
the weight memories hold the plan; the read, read-stage and forwarding registers of the
accumulator read-modify-write give the word as it is now, and in the update phase its last two
writes are the clears of the rows issued three and four cycles before (so that an induction of
length 1 closes for ``acc``); every synaptic addition still in
flight (input event or spike word in the decode stage, the fan-out walker, the two
read-modify-write stages, the spike FIFO and the word being split) is accounted for, so that
the reference equals the accumulator word plus what is in flight; and every spike is in
exactly one place (spike FIFO, word register, decode stage, output FIFO) from its production
until it is sent. These name the array's internal registers, found in the elaborated design by
name (the array has no formal hooks), so a renamed register fails the harness's elaboration
with a message naming it. They are written for one pipeline stage per core. Where the solver
stalls on every assertion at once, ``focus`` proves them in parts (see :class:`ArrayHarness`).
"""

from typing import NamedTuple

from amaranth.asserts import AnySeq
from amaranth.hdl import (
    Assert,
    Assume,
    Cat,
    Const,
    Fragment,
    MemoryInstance,
    Module,
    Mux,
    Signal,
    Value,
    signed,
)
from amaranth.lib import fifo, wiring
from amaranth.utils import ceil_log2

from spikeforge.gen.compile import compile_network
from spikeforge.gen.network import Network
from spikeforge.hdl.array import SCHEDULE_STATES, NeuronArray

from .formal_neuron import _no_reset

__all__ = ["PROPERTIES", "ArrayHarness", "small_network"]

PROPERTIES = ("update", "acc", "output", "live")

# The FSM states the schedule can reach without reset_state (which the harness keeps low).
# Cycles from a state read's address to the core's in_valid: the memory's read register and the
# array's read stage.
_READ_DELAY = 2

_RUN_STATES = ("IDLE", "INPUT", "PARAMS", "UPDATE", "UPDATE_DRAIN", "DELIVER", "FINISH")


def small_network():
    """The network the array proofs run on: 3 inputs, LIF populations of 3 and 4 neurons.

    Feed-forward, 4-bit membranes and 3-bit weights. With two lanes, population ``A`` leaves a
    padding slot (3 neurons on 2 rows) and ``B`` fills its rows; the inputs feed both
    populations, so one event walks two projections, and the input index has a fourth value
    past the input vector, which the array must drop.
    """
    lif = dict(
        kind="lif", v_reset=0, v_rest=0, v_peak=6, t_ref=1, decay=[1], reset_mode="zero", bias=0
    )
    return Network.from_dict(
        {
            "format": "spikeforge-network/1",
            "v_width": 4,
            "w_width": 3,
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
        }
    )


def _check_properties(check):
    check = tuple(check)
    unknown = [c for c in check if c not in PROPERTIES]
    if unknown or not check:
        raise TypeError(f"check must name some of {', '.join(PROPERTIES)}, not {check!r}")
    return check


def _lookup(index, values, shape):
    """``values[index]`` for a list of constants, 0 past its end, as a chain of multiplexers."""
    result = Const(0, shape)
    for n in reversed(range(len(values))):
        result = Mux(index == n, Const(values[n], shape), result)
    return result


def _sum(terms, shape):
    return sum(terms, Const(0, shape))


class _Inside:
    """The registers and memories of one elaborated fragment, by name.

    Only names that occur once among the signals the fragment's own statements read or write
    are offered; a missing one raises, naming it, so that a change to the array shows up here
    rather than as a proof about the wrong signal.
    """

    def __init__(self, fragment, what):
        self.fragment = fragment
        self.what = what
        found = {}
        for stmts in fragment.statements.values():
            for stmt in stmts:
                # Amaranth 0.5 has no public walk over a fragment's signals.
                for sig in [*stmt._lhs_signals(), *stmt._rhs_signals()]:
                    found.setdefault(sig.name, {})[id(sig)] = sig
        self.signals = {
            name: next(iter(sigs.values())) for name, sigs in found.items() if len(sigs) == 1
        }
        self.subs = {name: sub for sub, name, _ in fragment.subfragments}

    def __getitem__(self, name):
        if name not in self.signals:
            raise ValueError(
                f"{self.what} has no single register named {name!r}; the "
                f"inductive invariants must follow the change"
            )
        return self.signals[name]

    def sub(self, name):
        if name not in self.subs:
            raise ValueError(
                f"{self.what} has no submodule named {name!r}; the inductive "
                f"invariants must follow the change"
            )
        return self.subs[name]


def _peek(m, memory, depth, addr, shape, name):
    """The word at ``addr`` of ``memory`` (a :class:`MemoryInstance`), read combinationally by a
    port added for the proof; the design's own ports are untouched."""
    assert isinstance(memory, MemoryInstance)
    addr_sig = Signal(ceil_log2(depth), name=f"{name}_addr")
    data = Signal(shape, name=name)
    m.d.comb += addr_sig.eq(addr)
    memory.read_port(domain="comb", addr=addr_sig, data=data, en=Const(1), transparent_for=())
    return data


class _Claim(NamedTuple):
    """An assertion of the harness before it becomes an ``Assert``: ``focus`` picks by
    ``message``."""

    expr: Value
    message: str


class _Invariants:
    """Labelled auxiliary invariants, each asserted under its own message."""

    def __init__(self):
        self.items = []

    def add(self, label, *exprs):
        for n, expr in enumerate(exprs):
            self.items.append((label if len(exprs) == 1 else f"{label} ({n})", expr))

    def claims(self):
        return [_Claim(expr, f"invariant: {label}") for label, expr in self.items]


class _FifoView:
    """The entries of a ``SyncFIFOBuffered`` inside the array, oldest first, with their
    occupancy, and the invariants of its pointers."""

    def __init__(self, m, inside, name):
        frag = inside.sub(name)
        objs = [o for o in (frag.origins or ()) if isinstance(o, fifo.SyncFIFOBuffered)]
        if not objs:
            raise ValueError(
                f"the array's {name} is not a SyncFIFOBuffered; the inductive "
                f"invariants must follow the change"
            )
        self.fifo = obj = objs[0]
        own = _Inside(frag, f"the array's {name}")
        depth = obj.depth - 1  # the storage memory; the output register holds one more
        consume, produce, inner = own["consume"], own["produce"], own["inner_level"]
        storage = own.sub("storage")
        self.invariants = [
            inner <= depth,
            consume < depth,
            produce < depth,
            produce == Mux(consume + inner >= depth, consume + inner - depth, consume + inner),
        ]
        # (occupied, word): the output register, then the storage from the consume pointer.
        self.entries = [(obj.r_rdy, obj.r_data)]
        for n in range(depth):
            addr = Mux(consume + n >= depth, consume + n - depth, consume + n)
            word = _peek(m, storage, depth, addr, obj.width, f"{name}_entry{n}")
            self.entries.append((inner > n, word))
        self.level = obj.level


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
        and says whether to assert it; the others are assumed to have held one cycle earlier.
        A k-induction then proves the focused assertions given that all held before, and
        proofs whose focuses together cover every message prove them all (each base case
        checks its own assertions from the initial state, assuming the others only for
        earlier cycles, so the argument is an induction over the cycles). For a solver that
        stalls on the whole set at once; see ``docs/verification.md``.
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
        self.check = _check_properties(check)
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
        m.submodules.dut = frag = Fragment.get(dut, platform)
        neurons = list(self._neurons())
        real = {(l, s) for l, s, _, _ in neurons}

        m.d.comb += [
            dut.cfg.valid.eq(0),
            dut.reset_state.eq(0),
            dut.start.eq(AnySeq(1)),
            dut.spike_out.ready.eq(AnySeq(1)),
        ]
        begin = Signal()  # the cycle that starts a step
        m.d.comb += begin.eq(dut.start & ~dut.busy)

        # --- the producer: free, under the stream protocol --------------------------------------
        sin = dut.spike_in
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

        # --- which neuron each core takes in and gives out --------------------------------------
        # A core takes in the neuron whose state was read _READ_DELAY cycles before its
        # in_valid; the neuron it gives out is stored by the (registered) state write one cycle
        # after its out_valid.
        in_slots, fired = [], []
        for l in range(lanes):
            addr = dut.state_mem[l].read_ports[0].addr
            chain = []
            for n in range(_READ_DELAY):
                reg = Signal.like(addr, name=f"in_slot{l}_{n}")
                m.d.sync += reg.eq(chain[-1] if chain else addr)
                chain.append(reg)
            in_slots.append(chain)
            spiked = Signal(name=f"spiked{l}")
            m.d.sync += spiked.eq(dut.cores[l].out_valid & dut.cores[l].spike)
            fired.append(spiked)
        in_slot = [chain[-1] for chain in in_slots]

        def updating(l, s):
            return dut.cores[l].in_valid & (in_slot[l] == s)

        def spiking(l, s):
            wr = dut.state_mem[l].write_ports[0]
            return fired[l] & wr.en & (wr.addr == s)

        claims = []
        counts, refs, pendings, spike_adds = {}, {}, {}, {}
        if "update" in self.check:
            for l in range(lanes):
                known = Const(0)
                for s in range(plan.slots):
                    if (l, s) in real:
                        known = known | (in_slot[l] == s)
                claims.append(
                    _Claim(
                        ~dut.cores[l].in_valid | known,
                        f"update: lane {l} updated a slot without a neuron",
                    )
                )
            for l, s, k, i in neurons:
                count = counts[(k, i)] = Signal(range(3), name=f"updates_{l}_{s}")
                with m.If(begin):
                    m.d.sync += count.eq(0)
                with m.Elif(updating(l, s) & (count != 2)):
                    m.d.sync += count.eq(count + 1)
                name = f"{plan.populations[k].name}[{i}]"
                claims += [
                    _Claim(~updating(l, s) | (count == 0), f"update: {name} updated twice"),
                    _Claim(~dut.done | (count == 1), f"update: {name} not updated by done"),
                ]

        if "acc" in self.check:
            # Modulo 2**acc_width, as the accumulator adds.
            width = signed(plan.acc_width)
            for l, s, k, i in neurons:
                if self.track is None or (plan.populations[k].name, i) in self.track:
                    refs[(k, i)] = Signal(width, name=f"ref_acc_{plan.populations[k].name}_{i}")
            adds = {key: [] for key in refs}
            spike_adds = {key: [] for key in refs}
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
                        if w and (proj.target_index, i) in adds:
                            adds[(proj.target_index, i)].append(Mux(event, w, 0))
                            if not src.is_input:
                                spike_adds[(proj.target_index, i)].append(Mux(event, w, 0))
            for l, s, k, i in neurons:
                if (k, i) not in refs:
                    continue
                r = refs[(k, i)]
                total = _sum(adds[(k, i)], width)
                with m.If(updating(l, s)):
                    m.d.sync += r.eq(total)
                with m.Else():
                    m.d.sync += r.eq(r + total)
                claims.append(
                    _Claim(
                        ~updating(l, s) | (dut.cores[l].acc == r),
                        f"acc: {plan.populations[k].name}[{i}] got a wrong sum",
                    )
                )

        if "output" in self.check:
            out = dut.spike_out
            sent = out.valid & out.ready
            known = Const(0)
            for l, s, k, i in neurons:
                pending = pendings[(k, i)] = Signal(name=f"unsent_{plan.populations[k].name}_{i}")
                this = sent & (out.payload.population == k) & (out.payload.index == i)
                known = known | this
                with m.If(spiking(l, s)):
                    m.d.sync += pending.eq(1)
                with m.Elif(this):
                    m.d.sync += pending.eq(0)
                name = f"{plan.populations[k].name}[{i}]"
                claims += [
                    _Claim(~this | pending, f"output: {name} sent without a spike or twice"),
                    _Claim(~dut.done | ~pending, f"output: {name} spiked but was not sent"),
                ]
            claims.append(_Claim(~sent | known, "output: event names no LIF neuron"))

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
            claims.append(
                _Claim(
                    ~dut.busy | (since <= self.done_within),
                    f"live: busy for more than {self.done_within} cycles",
                )
            )

        if self.inductive:
            claims += self._invariants(
                m, frag, neurons, in_slots, fired, spiking, counts, refs, spike_adds, pendings
            )
        if self.focus is None:
            m.d.comb += [Assert(c.expr, c.message) for c in claims]
            return m
        focused, others = [], []
        for c in claims:
            (focused if self.focus(c.message) else others).append(c)
        if not focused:
            raise ValueError("focus selects none of the harness's assertions")
        # The others are assumed one cycle late: a register of their conjunction, true from
        # the initial state on, so that the assumption is always about an earlier cycle.
        held = Signal(init=1, name="others_held")
        m.d.sync += held.eq(Cat(*(c.expr.bool() for c in others)).all())
        m.d.comb += [Assume(held), *(Assert(c.expr, c.message) for c in focused)]
        return m

    def _invariants(
        self, m, frag, neurons, in_slots, fired, spiking, counts, refs, spike_adds, pendings
    ):
        """The auxiliary invariants of ``inductive`` (asserted, so proven, not assumed)."""
        plan, dut = self.plan, self.dut
        lanes, pops, projs = plan.lanes, plan.populations, plan.projections
        lifs = plan.lif_populations
        latency = self.dut.stages
        inside = _Inside(frag, "the array")
        inv = _Invariants()

        # --- the schedule ---------------------------------------------------------------------
        # The schedule is one-hot: a register per state.
        fsm = {name: inside[f"state_{name}"] for name in SCHEDULE_STATES}

        def state(*names):
            return Cat(*(fsm[s] for s in names)).any()

        k, upd_row, drain, parity = (
            inside["k"],
            inside["upd_row"],
            inside["drain"],
            inside["parity"],
        )
        rows_k = _lookup(k, [p.rows for p in lifs], range(plan.slots + 1))
        base_k = _lookup(k, [p.slot_base for p in lifs], range(plan.slots + 1))
        pop_k = _lookup(k, [pops.index(p) for p in lifs], range(len(pops)))

        masks = [
            [sum(1 << l for l in range(lanes) if r * lanes + l < p.size) for r in range(p.rows)]
            for p in lifs
        ]

        def mask_of(row):
            result = Const(0, lanes)
            for kk in reversed(range(len(lifs))):
                result = Mux(k == kk, _lookup(row, masks[kk], lanes), result)
            return result

        # The issue register, the read stage and the pipeline beside the cores, then the
        # registered state write: in UPDATE, row upd_row is issued this cycle, so stage n holds
        # row upd_row - 1 - n; UPDATE_DRAIN, which starts with the drain count at the number of
        # stages, continues the count where the issue stopped.
        stages = [
            tuple(inside[f"upd_{x}_{d}"] for x in ("valid", "row", "slot", "mask"))
            for d in ("d", "q")
        ]
        for n in range(latency):
            stages.append(tuple(inside[f"pipe{n}_{x}"] for x in ("valid", "row", "slot", "mask")))
        depth = len(stages)
        upd_slot, upd_acc_addr = inside["upd_slot"], inside["upd_acc_addr"]
        inv.add(
            "schedule: state, population, row, drain in range",
            state(*_RUN_STATES),
            _sum(fsm.values(), range(len(fsm) + 1)) == 1,
            k < len(lifs),
            ~state("UPDATE") | (upd_row < rows_k),
            ~state("UPDATE_DRAIN") | (drain <= depth),
            ~state("INPUT") | (k == 0),
            inside["k_is_last"] == (k == len(lifs) - 1),
            ~state("UPDATE") | (inside["row_is_last"] == (upd_row == rows_k - 1)),
            ~state("UPDATE")
            | (
                (upd_slot == base_k + upd_row)
                & (
                    upd_acc_addr
                    == (Mux(parity, plan.slots, 0) + base_k + upd_row)[: len(upd_acc_addr)]
                )
            ),
        )
        tick = Signal(range(plan.slots + depth + 3), name="inv_tick")
        m.d.comb += tick.eq(Mux(state("UPDATE"), upd_row, rows_k + depth - drain))
        issuing = state("UPDATE", "UPDATE_DRAIN")

        def stage_at(n):
            # (valid, row) of the row issued n + 1 cycles ago.
            row = Signal(range(plan.slots + depth + 3), name=f"inv_row{n}")
            m.d.comb += row.eq(tick - (n + 1))
            return issuing & (tick >= n + 1) & (tick < rows_k + n + 1), row

        for n, (valid, row, slot, mask) in enumerate(stages):
            expect_valid, expect_row = stage_at(n)
            inv.add(
                f"schedule: update stage {n} holds the row issued {n + 1} cycles ago",
                valid == expect_valid,
                ~valid | ((row == expect_row) & (slot == base_k + row) & (mask == mask_of(row))),
            )
        last_valid, _, _, last_mask = stages[-1]
        write_valid, write_row = stage_at(depth)
        for l in range(lanes):
            wr = dut.state_mem[l].write_ports[0]
            inv.add(
                f"schedule: lane {l} core, read address and state write follow the stages",
                *(reg == stages[n][2] for n, reg in enumerate(in_slots[l])),
                dut.cores[l].out_valid == (last_valid & last_mask[l]),
                wr.en == (write_valid & mask_of(write_row)[l]),
                ~wr.en | (wr.addr == base_k + write_row),
                ~fired[l] | wr.en,
            )

        # Per neuron: issued (its row went to the cores this step) and in flight.
        lif_of = {pops.index(p): n for n, p in enumerate(lifs)}
        issued, inflight, reading = {}, {}, {}
        for l, s, kp, i in neurons:
            kn, rn = lif_of[kp], i // lanes
            issued[(kp, i)] = (
                state("FINISH")
                | (state("UPDATE_DRAIN", "DELIVER") & (k >= kn))
                | (state("PARAMS") & (k > kn))
                | (state("UPDATE") & ((k > kn) | ((k == kn) & (upd_row > rn))))
            )
            inflight[(kp, i)] = Cat(*(v & (sl == s) & mk[l] for v, _, sl, mk in stages)).any()
            # Issued but not yet counted: between the issue and the core's input, or at it.
            reading[(kp, i)] = Cat(
                *(v & (sl == s) & mk[l] for v, _, sl, mk in stages[:_READ_DELAY])
            ).any()

        for (kp, i), count in counts.items():
            l, s = i % lanes, pops[kp].slot_base + i // lanes
            inv.add(
                f"update: count of {pops[kp].name}[{i}] follows the schedule",
                Mux(state("IDLE"), count <= 1, count + reading[(kp, i)] == issued[(kp, i)]),
            )

        if refs:
            # The accumulator's last two writes in the update phase: the clears of the rows
            # issued three and four cycles ago (a row is cleared in its read stage's cycle, and
            # the forwarding flags record a write one and two cycles later), and in PARAMS the
            # last synaptic write is at least two cycles old. Without these, only an induction
            # of length 3 sees that no forwarded write can supersede an update's read.
            bank = Mux(parity, plan.slots, 0)
            for n, name in enumerate(["1", "2"]):
                wrote, addr = inside[f"wrote{name}"], inside[f"addr{name}"]
                valid, row = stage_at(2 + n)
                inv.add(
                    f"acc: the write {n + 1} cycle(s) ago in the update phase is a clear",
                    ~issuing | (wrote == valid),
                    ~(issuing & wrote) | (addr == (bank + base_k + row)[: len(addr)]),
                )
            inv.add("acc: no write one cycle ago in PARAMS", ~state("PARAMS") | ~inside["wrote1"])

        if not refs and not pendings:
            return inv.claims()

        # --- the delivery path ------------------------------------------------------------------
        d_valid, d_src, d_j, d_out = (
            inside["d_valid"],
            inside["d_src"],
            inside["d_j"],
            inside["d_out"],
        )
        word_valid, word_row, word_mask = (
            inside["word_valid"],
            inside["word_row"],
            inside["word_mask"],
        )
        inputs = [n for n, p in enumerate(pops) if p.is_input]
        lif_pops = [pops.index(p) for p in lifs]
        spike_fifo = _FifoView(m, inside, "spike_fifo")
        inv.add("spike FIFO pointers", *spike_fifo.invariants)

        def entry_ok(row, mask):
            # A spike word of population k: a row of it, and only lanes holding a neuron.
            return (row < rows_k) & (mask != 0) & ((mask & ~mask_of(row)) == 0)

        def lowest_lane(mask):
            result = Const(0, range(max(lanes, 2)))
            for l in reversed(range(lanes)):
                result = Mux(mask[l], l, result)
            return result

        row_width = len(word_row)
        for occupied, word in spike_fifo.entries:
            inv.add(
                "spike FIFO entry is a row of population k",
                ~occupied | entry_ok(word[lanes : lanes + row_width], word[:lanes]),
            )
        inflight_rows = _sum([v for v, _, _, _ in stages], range(latency + 2))
        inv.add(
            "delivery: spike FIFO, word and decode stage belong to their phase",
            (spike_fifo.level == 0) | issuing | state("DELIVER"),
            # Room for every row still to come: the array writes the spike FIFO unchecked.
            ~issuing
            | (
                spike_fifo.level + inflight_rows + Mux(state("UPDATE"), rows_k - upd_row, 0)
                <= rows_k
            ),
            ~word_valid
            | (
                state("DELIVER")
                & entry_ok(word_row, word_mask)
                & (inside["lowest"] == lowest_lane(word_mask))
            ),
            ~d_valid
            | Mux(
                d_out,
                state("DELIVER")
                & (d_src == pop_k)
                & (d_j < _lookup(k, [p.size for p in lifs], range(plan.max_size + 1))),
                state("INPUT") & Cat(*((d_src == n) & (d_j < pops[n].size) for n in inputs)).any(),
            ),
        )
        quiet = ~d_valid & ~inside["active"] & ~inside["issue_valid_d"] & ~inside["issue_valid_q"]
        inv.add(
            "delivery: the registered end of a deliver phase",
            ~inside["delivered"]
            | (
                state("DELIVER", "PARAMS", "FINISH") & (spike_fifo.level == 0) & ~word_valid & quiet
            ),
        )
        for n, proj in enumerate(projs):
            base = inside[f"d_base{n}"]
            inv.add(
                f"delivery: decode stage base {n} is the event's row",
                ~d_valid | (base == (proj.weight_base + d_j * pops[proj.target].rows)[: len(base)]),
            )

        def spike_word_holds(row, mask, kp, i):
            # The spike word (row, mask) of population k names neuron i of population kp.
            return (k == lif_of[kp]) & (row == i // lanes) & mask[i % lanes]

        if pendings:
            out_fifo = _FifoView(m, inside, "out_fifo")
            inv.add("output FIFO pointers", *out_fifo.invariants)
            payload_shape = dut.spike_out.payload.shape()
            names_neuron = []
            for occupied, word in out_fifo.entries:
                ev = payload_shape(word)
                names_neuron.append((occupied, ev))
                inv.add(
                    "output FIFO entry names a LIF neuron",
                    ~occupied
                    | Cat(
                        *((ev.population == kp) & (ev.index < pops[kp].size) for kp in lif_pops)
                    ).any(),
                )
            sent = inside["sent"]
            inv.add(
                "output FIFO empty before the updates and once sent",
                (out_fifo.level == 0) | ~state("IDLE", "INPUT"),
                ~sent | (state("FINISH") & (out_fifo.level == 0)),
            )
            for (kp, i), pending in pendings.items():
                places = [
                    Mux(
                        occ & spike_word_holds(w[lanes : lanes + row_width], w[:lanes], kp, i), 1, 0
                    )
                    for occ, w in spike_fifo.entries
                ]
                places.append(Mux(word_valid & spike_word_holds(word_row, word_mask, kp, i), 1, 0))
                places.append(Mux(d_valid & d_out & (d_src == kp) & (d_j == i), 1, 0))
                places += [
                    Mux(occ & (ev.population == kp) & (ev.index == i), 1, 0)
                    for occ, ev in names_neuron
                ]
                where = Signal(range(len(places) + 1), name=f"inv_places_{kp}_{i}")
                m.d.comb += where.eq(_sum(places, range(len(places) + 1)))
                inv.add(
                    f"output: an unsent spike of {pops[kp].name}[{i}] is in one place",
                    where == pending + spiking(i % lanes, pops[kp].slot_base + i // lanes),
                    ~pending | (issued[(kp, i)] & ~inflight[(kp, i)]),
                    ~state("IDLE", "INPUT") | ~pending,
                )

        if refs:
            self._acc_invariants(
                m,
                inv,
                inside,
                neurons,
                reading,
                refs,
                spike_adds,
                issued,
                state,
                spike_fifo,
                row_width,
                pop_k,
                k,
                parity,
            )
        return inv.claims()

    def _acc_invariants(
        self,
        m,
        inv,
        inside,
        neurons,
        reading,
        refs,
        spike_adds,
        issued,
        state,
        spike_fifo,
        row_width,
        pop_k,
        k,
        parity,
    ):
        plan, net, dut = self.plan, self.net, self.dut
        lanes, pops, projs = plan.lanes, plan.populations, plan.projections
        width = signed(plan.acc_width)
        d_valid, d_src, d_j = inside["d_valid"], inside["d_src"], inside["d_j"]
        word_valid, word_row, word_mask = (
            inside["word_valid"],
            inside["word_row"],
            inside["word_mask"],
        )
        active, p_cur, col = inside["active"], inside["p_cur"], inside["col"]
        w_ptr, a_ptr = inside["w_ptr"], inside["a_ptr"]
        issue_valid_d, acc_addr_d = inside["issue_valid_d"], inside["acc_addr_d"]
        bases = [inside[f"w_base{n}"] for n in range(len(projs))]
        weights = {(p.source_index, p.target_index): p.weights for p in net.projections}

        issue_valid_q, acc_addr_q = inside["issue_valid_q"], inside["acc_addr_q"]
        upd_valid_d, upd_valid_q = inside["upd_valid_d"], inside["upd_valid_q"]
        # The walker's word of one and two cycles ago (projection, column, weight address): the
        # read-modify-write reads it, registers it, then adds and writes.
        prev = []
        for n in range(2):
            regs = (
                Signal.like(p_cur, name=f"inv_rmw{n}_p"),
                Signal.like(col, name=f"inv_rmw{n}_col"),
                Signal.like(w_ptr, name=f"inv_rmw{n}_w_ptr"),
            )
            src = prev[-1] if prev else (p_cur, col, w_ptr)
            m.d.sync += [r.eq(v) for r, v in zip(regs, src)]
            prev.append(regs)
        g_j = Signal.like(d_j, name="inv_walk_j")
        with m.If(inside["take"]):
            m.d.sync += g_j.eq(d_j)
        # The weight memories hold the plan; the read register and the read stage hold the
        # words of the walker's last two cycles.
        plan_w = [[int(x) for x in plan.weights[l]] for l in range(lanes)]
        w_d = [dut.weight_mem[l].read_ports[0].data for l in range(lanes)]
        w_q = [inside[f"w_q{l}"] for l in range(lanes)]
        for l in range(lanes):
            mem = inside.sub(f"weights{l}")
            for a, w in enumerate(plan_w[l]):
                inv.add(
                    f"acc: weight word {a} of lane {l} is the plan's",
                    _peek(m, mem, plan.weight_words, a, signed(plan.w_width), f"inv_w{l}_{a}") == w,
                )
            inv.add(
                f"acc: lane {l} weight read register and read stage",
                ~issue_valid_d | (w_d[l] == _lookup(prev[0][2], plan_w[l], signed(plan.w_width))),
                ~issue_valid_q | (w_q[l] == _lookup(prev[1][2], plan_w[l], signed(plan.w_width))),
            )
        # The accumulator read-modify-write: the read register and the read stage hold the word
        # as it was read, the forwarding registers the last two writes, and together they give
        # the word as it is now (the memory cannot: its read is two cycles old).
        wrote1, wrote2, addr1, addr2 = (
            inside["wrote1"],
            inside["wrote2"],
            inside["addr1"],
            inside["addr2"],
        )
        hit1, hit2 = inside["hit1"], inside["hit2"]
        inv.add(
            "acc: forwarding flags name the last two writes to the read stage's word",
            hit1 == (wrote1 & (acc_addr_q == addr1)),
            hit2 == (wrote2 & (acc_addr_q == addr2)),
        )
        for l in range(lanes):
            mem = inside.sub(f"acc{l}")

            def now(addr, name):
                return _peek(m, mem, 2 * plan.slots, addr, width, f"inv_acc_{name}{l}")

            sum1, sum2 = inside[f"acc_sum1_{l}"], inside[f"acc_sum2_{l}"]
            inv.add(
                f"acc: lane {l} read-modify-write registers",
                ~wrote1 | (sum1 == now(addr1, "w1")),
                ~(wrote2 & ~(wrote1 & (addr1 == addr2))) | (sum2 == now(addr2, "w2")),
                ~((issue_valid_d | upd_valid_d) & ~(wrote1 & (addr1 == acc_addr_d)))
                | (dut.acc_mem[l].read_ports[0].data == now(acc_addr_d, "d")),
                ~((issue_valid_q | upd_valid_q) & ~hit1 & ~hit2)
                | (inside[f"acc_q{l}"] == now(acc_addr_q, "q")),
            )

        # The walker: on a projection of the phase's source, on a column of it, its pointers
        # at that column of the event's row, the bases of the source's later projections at
        # the same event's rows.
        src_of = [q.source for q in projs]
        same_src = {
            n: [q for q in range(len(projs)) if src_of[q] == src_of[n]] for n in range(len(projs))
        }
        inputs = [n for n, p in enumerate(pops) if p.is_input]

        def acc_base(n):
            return Mux(parity, plan.slots, 0) + pops[projs[n].target].slot_base

        def on_phase(p):
            return Cat(
                *(
                    (p == n)
                    & (
                        state("INPUT")
                        if src_of[n] in inputs
                        else state("DELIVER") & (pop_k == src_of[n])
                    )
                    for n in range(len(projs))
                )
            ).any()

        walker = [on_phase(p_cur)]
        for n, proj in enumerate(projs):
            rows = pops[proj.target].rows
            here = [
                col < rows,
                w_ptr == (bases[n] + col)[: len(w_ptr)],
                a_ptr == (acc_base(n) + col)[: len(a_ptr)],
                g_j < pops[proj.source].size,
            ]
            here += [
                bases[q]
                == (projs[q].weight_base + g_j * pops[projs[q].target].rows)[: len(bases[q])]
                for q in same_src[n]
            ]
            walker.append((p_cur != n) | Cat(*here).all())
        inv.add("acc: walker on a column of its event's rows", ~active | Cat(*walker).all())
        # The walker's count of the event's words still to add, and its last-word flag.
        words_left, last = inside["words_left"], inside["last"]
        left = [
            (p_cur == n)
            & (
                words_left
                == pops[proj.target].rows
                - col
                + sum(pops[projs[q].target].rows for q in same_src[n] if q > n)
            )
            for n, proj in enumerate(projs)
        ]
        inv.add(
            "acc: walker's count of words left",
            ~active | Cat(*left).any(),
            ~active | (last == (words_left == 1)),
        )
        for n, (addr, valid, upd) in enumerate(
            [(acc_addr_d, issue_valid_d, upd_valid_d), (acc_addr_q, issue_valid_q, upd_valid_q)]
        ):
            p_w, col_w = prev[n][0], prev[n][1]
            writer = [on_phase(p_w)]
            for q, proj in enumerate(projs):
                writer.append(
                    (p_w != q)
                    | (
                        (col_w < pops[proj.target].rows)
                        & (addr == (acc_base(q) + col_w)[: len(addr)])
                    )
                )
            inv.add(
                f"acc: read-modify-write stage {n} adds into a column of the phase's projections",
                ~valid | Cat(*writer).all(),
                ~(valid & upd),
            )
        for addr, upd, slot in [
            (acc_addr_d, upd_valid_d, inside["upd_slot_d"]),
            (acc_addr_q, upd_valid_q, inside["upd_slot_q"]),
        ]:
            inv.add(
                "acc: an update reads and clears its neuron's word in the step's bank",
                ~upd | (addr == (Mux(parity, plan.slots, 0) + slot)[: len(addr)]),
            )

        for l, s, kp, i in neurons:
            if (kp, i) not in refs:
                continue
            n_row = i // lanes
            mem = inside.sub(f"acc{l}")
            word = Mux(parity, plan.slots, 0) + s
            cur = _peek(m, mem, 2 * plan.slots, word, width, f"inv_acc_{kp}_{i}")
            other = _peek(
                m,
                mem,
                2 * plan.slots,
                Mux(parity, 0, plan.slots) + s,
                width,
                f"inv_acc_other_{kp}_{i}",
            )
            pend = []
            # The read-modify-write stages adding into this word.
            pend += [
                Mux(issue_valid_d & (acc_addr_d == word), w_d[l], 0),
                Mux(issue_valid_q & (acc_addr_q == word), w_q[l], 0),
            ]
            # The walker's words still to come for this neuron (plan weights, as it reads them).
            for n, proj in enumerate(projs):
                if proj.target != kp:
                    continue
                later = (
                    Cat(*(p_cur == q for q in same_src[n] if q < n)).any()
                    if any(q < n for q in same_src[n])
                    else Const(0)
                )
                left = active & (((p_cur == n) & (col <= n_row)) | later)
                # The word at bases[n] + n_row, through the walker invariant a lookup by the
                # event's row (a few words, not the whole memory).
                rows = pops[proj.target].rows
                words = [
                    plan_w[l][proj.weight_base + j * rows + n_row]
                    for j in range(pops[proj.source].size)
                ]
                pend.append(Mux(left, _lookup(g_j, words, width), 0))
            # The event in the decode stage (network weights).
            for src in range(len(pops)):
                w = weights.get((src, kp))
                if w is None:
                    continue
                pend.append(
                    Mux(d_valid & (d_src == src), _lookup(d_j, [int(x) for x in w[:, i]], width), 0)
                )
            # Spike words of population k: the word being split and the spike FIFO.
            for kk, lif in enumerate(plan.lif_populations):
                w = weights.get((pops.index(lif), kp))
                if w is None:
                    continue
                column = [int(x) for x in w[:, i]]

                def word_sum(row, mask, present):
                    terms = [
                        Mux(present & (k == kk) & mask[b], _lookup(row, column[b::lanes], width), 0)
                        for b in range(lanes)
                    ]
                    return _sum(terms, width)

                pend.append(word_sum(word_row, word_mask, word_valid))
                for occ, wd in spike_fifo.entries:
                    pend.append(word_sum(wd[lanes : lanes + row_width], wd[:lanes], occ))
            ref = refs[(kp, i)]
            owed = Signal(width, name=f"inv_owed_{kp}_{i}")
            # A spike stored this cycle is in the spike FIFO already, in the reference next cycle.
            m.d.comb += owed.eq(ref + _sum(spike_adds[(kp, i)], width) - _sum(pend, width))
            inv.add(
                f"acc: {pops[kp].name}[{i}] word plus in-flight additions is the reference",
                owed == cur,
                other == 0,
                ~(issued[(kp, i)] & ~reading[(kp, i)]) | ((ref == 0) & (cur == 0)),
            )
