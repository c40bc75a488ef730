"""Inductive invariants of the neuron array's schedule, for :class:`~.formal_array.ArrayHarness`.

:class:`Schedule` reads the schedule's registers out of the elaborated array (FSM state,
population ``k``, row, drain count, the issue stage and the pipeline beside the cores) and
derives, per neuron, whether its row has been issued this step and where it is on its way to the
core. :func:`schedule_invariants` asserts that these registers agree with each other and that
the ``update`` property's count of each neuron is a function of them. They are written for one
pipeline stage per core.
"""

from amaranth.hdl import Cat, Const, Mux, Signal

from spikeforge.hdl.array import SCHEDULE_STATES, acc_bank_base

from .formal import lookup, total
from .formal_array_model import READ_DELAY

__all__ = ["RUN_STATES", "Schedule", "schedule_invariants"]

# The FSM states the schedule can reach without reset_state (which the harness keeps low).
RUN_STATES = ("IDLE", "INPUT", "PARAMS", "UPDATE", "UPDATE_DRAIN", "DELIVER", "FINISH")


class Schedule:
    """The schedule registers of an elaborated array, and what the invariants derive from them.

    Parameters
    ----------
    m : amaranth.hdl.Module
        The harness's module; the derived signals go there.
    inside : Inside
        The elaborated array.
    model : StepModel
        The harness's model (its plan, array and neurons).

    Attributes
    ----------
    fsm : dict of str to Signal
        The one-hot state registers, by :data:`~spikeforge.hdl.array.SCHEDULE_STATES` name.
    k, upd_row, drain, parity : Signal
        The LIF population being updated or delivered, its row being issued, the drain count
        and the bank parity.
    rows_k, base_k, pop_k : Value
        Rows, first slot and population index of LIF population ``k``.
    stages : list of tuple
        ``(valid, row, slot, mask)`` of each stage from the issue register on: the read stage,
        its register, then the pipeline beside the cores.
    issuing : Value
        In ``UPDATE`` or ``UPDATE_DRAIN``.
    lif_of : dict of int to int
        The value of ``k`` of each LIF population, by population index.
    issued, inflight, reading : dict
        Per ``(population index, neuron index)``: its row went to the cores this step; it is in
        one of :attr:`stages`; it is in one of the first :data:`READ_DELAY` (issued, not yet at
        the core).
    """

    def __init__(self, m, inside, model):
        plan = model.plan
        lanes, pops, lifs = plan.lanes, plan.populations, plan.lif_populations
        self.m, self.inside, self.plan = m, inside, plan
        # The schedule is one-hot: a register per state.
        self.fsm = {name: inside[f"state_{name}"] for name in SCHEDULE_STATES}
        k, upd_row, drain, parity = (
            inside["k"],
            inside["upd_row"],
            inside["drain"],
            inside["parity"],
        )
        self.k, self.upd_row, self.drain, self.parity = k, upd_row, drain, parity
        self.rows_k = lookup(k, [p.rows for p in lifs], range(plan.slots + 1))
        self.base_k = lookup(k, [p.slot_base for p in lifs], range(plan.slots + 1))
        self.pop_k = lookup(k, [pops.index(p) for p in lifs], range(len(pops)))
        self._masks = [
            [sum(1 << l for l in range(lanes) if r * lanes + l < p.size) for r in range(p.rows)]
            for p in lifs
        ]

        # The issue register, the read stage and the pipeline beside the cores, then the
        # registered state write: in UPDATE, row upd_row is issued this cycle, so stage n holds
        # row upd_row - 1 - n; UPDATE_DRAIN, which starts with the drain count at the number of
        # stages, continues the count where the issue stopped.
        self.stages = [
            tuple(inside[f"upd_{x}_{d}"] for x in ("valid", "row", "slot", "mask"))
            for d in ("d", "q")
        ]
        for n in range(model.dut.stages):
            self.stages.append(
                tuple(inside[f"pipe{n}_{x}"] for x in ("valid", "row", "slot", "mask"))
            )
        depth = len(self.stages)
        self.tick = Signal(range(plan.slots + depth + 3), name="inv_tick")
        m.d.comb += self.tick.eq(Mux(self.state("UPDATE"), upd_row, self.rows_k + depth - drain))
        self.issuing = self.state("UPDATE", "UPDATE_DRAIN")

        self.lif_of = {pops.index(p): n for n, p in enumerate(lifs)}
        self.issued, self.inflight, self.reading = {}, {}, {}
        for l, s, kp, i in model.neurons:
            kn, rn = self.lif_of[kp], i // lanes
            self.issued[(kp, i)] = (
                self.state("FINISH")
                | (self.state("UPDATE_DRAIN", "DELIVER") & (k >= kn))
                | (self.state("PARAMS") & (k > kn))
                | (self.state("UPDATE") & ((k > kn) | ((k == kn) & (upd_row > rn))))
            )
            self.inflight[(kp, i)] = Cat(
                *(v & (sl == s) & mk[l] for v, _, sl, mk in self.stages)
            ).any()
            # Issued but not yet counted: between the issue and the core's input, or at it.
            self.reading[(kp, i)] = Cat(
                *(v & (sl == s) & mk[l] for v, _, sl, mk in self.stages[:READ_DELAY])
            ).any()

    def state(self, *names):
        """Whether the schedule is in one of the states ``names``."""
        return Cat(*(self.fsm[s] for s in names)).any()

    def mask_of(self, row):
        """The lanes that hold a neuron in row ``row`` of LIF population ``k``."""
        lanes = self.plan.lanes
        result = Const(0, lanes)
        for kk in reversed(range(len(self._masks))):
            result = Mux(self.k == kk, lookup(row, self._masks[kk], lanes), result)
        return result

    def stage_at(self, n):
        """``(valid, row)`` of the row issued ``n + 1`` cycles ago."""
        depth = len(self.stages)
        row = Signal(range(self.plan.slots + depth + 3), name=f"inv_row{n}")
        self.m.d.comb += row.eq(self.tick - (n + 1))
        return self.issuing & (self.tick >= n + 1) & (self.tick < self.rows_k + n + 1), row


def schedule_invariants(inv, sched, model):
    """Add to ``inv`` (:class:`~.formal.Invariants`) what holds of the schedule ``sched``.

    The registers are in range and agree with each other, each stage holds the row issued that
    many cycles ago, each lane's core, read address and state write follow the stages, and
    (with ``update``) each neuron's count of updates is a function of the schedule.
    """
    plan, dut, inside = model.plan, model.dut, sched.inside
    pops, lifs = plan.populations, plan.lif_populations
    state, k, upd_row = sched.state, sched.k, sched.upd_row
    rows_k, base_k = sched.rows_k, sched.base_k
    depth = len(sched.stages)
    upd_slot, upd_acc_addr = inside["upd_slot"], inside["upd_acc_addr"]
    inv.add(
        "schedule: state, population, row, drain in range",
        state(*RUN_STATES),
        total(sched.fsm.values(), range(len(sched.fsm) + 1)) == 1,
        k < len(lifs),
        ~state("UPDATE") | (upd_row < rows_k),
        ~state("UPDATE_DRAIN") | (sched.drain <= depth),
        ~state("INPUT") | (k == 0),
        inside["k_is_last"] == (k == len(lifs) - 1),
        ~state("UPDATE") | (inside["row_is_last"] == (upd_row == rows_k - 1)),
        ~state("UPDATE")
        | (
            (upd_slot == base_k + upd_row)
            & (
                upd_acc_addr
                == (acc_bank_base(plan, sched.parity) + base_k + upd_row)[: len(upd_acc_addr)]
            )
        ),
    )
    for n, (valid, row, slot, mask) in enumerate(sched.stages):
        expect_valid, expect_row = sched.stage_at(n)
        inv.add(
            f"schedule: update stage {n} holds the row issued {n + 1} cycles ago",
            valid == expect_valid,
            ~valid | ((row == expect_row) & (slot == base_k + row) & (mask == sched.mask_of(row))),
        )
    last_valid, _, _, last_mask = sched.stages[-1]
    write_valid, write_row = sched.stage_at(depth)
    for l in range(plan.lanes):
        wr = dut.state_mem[l].write_ports[0]
        inv.add(
            f"schedule: lane {l} core, read address and state write follow the stages",
            *(reg == sched.stages[n][2] for n, reg in enumerate(model.in_slots[l])),
            dut.cores[l].out_valid == (last_valid & last_mask[l]),
            wr.en == (write_valid & sched.mask_of(write_row)[l]),
            ~wr.en | (wr.addr == base_k + write_row),
            ~model.fired[l] | wr.en,
        )

    for (kp, i), count in model.counts.items():
        inv.add(
            f"update: count of {pops[kp].name}[{i}] follows the schedule",
            Mux(
                state("IDLE"),
                count <= 1,
                count + sched.reading[(kp, i)] == sched.issued[(kp, i)],
            ),
        )
