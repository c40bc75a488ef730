"""Inductive invariants of the neuron array's delivery path and spike output.

For :class:`~.formal_array.ArrayHarness` with ``inductive=True``: what the spike FIFO, the word
being split, the decode stage and the output FIFO can hold in each phase of the schedule
(:func:`delivery_invariants`), and that every spike is in exactly one of these places from its
production until it is sent (:func:`output_invariants`).
"""

from typing import NamedTuple

from amaranth.hdl import Cat, Const, Mux, Signal, Value

from .formal import lookup, total
from .formal_inside import FifoView

__all__ = ["DeliveryRegisters", "delivery_invariants", "output_invariants"]


class DeliveryRegisters(NamedTuple):
    """The registers of the array's delivery path, each named as in the array.

    ``d_*``: the decode stage (valid, source population, index, whether the event is a spike
    of the array); ``word_*``: the spike word being split into events (valid, row, lanes).
    """

    d_valid: Value
    d_src: Value
    d_j: Value
    d_out: Value
    word_valid: Value
    word_row: Value
    word_mask: Value

    @classmethod
    def of(cls, inside):
        """The registers of the array ``inside`` (an :class:`~.formal_inside.Inside`)."""
        return cls(*(inside[name] for name in cls._fields))

    def spike_word(self, word):
        """``(row, mask)`` of a spike FIFO entry: a row of population ``k``, its spiking lanes."""
        lanes = len(self.word_mask)
        return word[lanes : lanes + len(self.word_row)], word[:lanes]


def _lowest_lane(mask, lanes):
    """The lowest lane set in ``mask``."""
    result = Const(0, range(max(lanes, 2)))
    for l in reversed(range(lanes)):
        result = Mux(mask[l], l, result)
    return result


def delivery_invariants(m, inv, sched, model):
    """Add to ``inv`` what holds of the delivery path in each phase of the schedule ``sched``.

    Returns
    -------
    FifoView
        The spike FIFO, whose entries the output and ``acc`` invariants account for.
    """
    plan, inside = model.plan, sched.inside
    lanes, pops, projs = plan.lanes, plan.populations, plan.projections
    lifs = plan.lif_populations
    state, rows_k, mask_of = sched.state, sched.rows_k, sched.mask_of
    regs = DeliveryRegisters.of(inside)
    d_valid, d_src, d_j, d_out, word_valid, word_row, word_mask = regs
    inputs = [n for n, p in enumerate(pops) if p.is_input]
    spike_fifo = FifoView(m, inside, "spike_fifo")
    inv.add("spike FIFO pointers", *spike_fifo.invariants)

    def entry_ok(row, mask):
        # A spike word of population k: a row of it, and only lanes holding a neuron.
        return (row < rows_k) & (mask != 0) & ((mask & ~mask_of(row)) == 0)

    for occupied, word in spike_fifo.entries:
        inv.add(
            "spike FIFO entry is a row of population k",
            ~occupied | entry_ok(*regs.spike_word(word)),
        )
    # The stages are the read stage, its register and one per core stage: at most that many rows.
    inflight_rows = total([v for v, _, _, _ in sched.stages], range(len(sched.stages)))
    inv.add(
        "delivery: spike FIFO, word and decode stage belong to their phase",
        (spike_fifo.level == 0) | sched.issuing | state("DELIVER"),
        # Room for every row still to come: the array writes the spike FIFO unchecked.
        ~sched.issuing
        | (
            spike_fifo.level + inflight_rows + Mux(state("UPDATE"), rows_k - sched.upd_row, 0)
            <= rows_k
        ),
        ~word_valid
        | (
            state("DELIVER")
            & entry_ok(word_row, word_mask)
            & (inside["lowest"] == _lowest_lane(word_mask, lanes))
        ),
        ~d_valid
        | Mux(
            d_out,
            state("DELIVER")
            & (d_src == sched.pop_k)
            & (d_j < lookup(sched.k, [p.size for p in lifs], range(plan.max_size + 1))),
            state("INPUT") & Cat(*((d_src == n) & (d_j < pops[n].size) for n in inputs)).any(),
        ),
    )
    quiet = ~d_valid & ~inside["active"] & ~inside["issue_valid_d"] & ~inside["issue_valid_q"]
    inv.add(
        "delivery: the registered end of a deliver phase",
        ~inside["delivered"]
        | (state("DELIVER", "PARAMS", "FINISH") & (spike_fifo.level == 0) & ~word_valid & quiet),
    )
    for n, proj in enumerate(projs):
        base = inside[f"d_base{n}"]
        inv.add(
            f"delivery: decode stage base {n} is the event's row",
            ~d_valid | (base == (proj.weight_base + d_j * pops[proj.target].rows)[: len(base)]),
        )
    return spike_fifo


def output_invariants(m, inv, sched, model, spike_fifo):
    """Add to ``inv`` that every unsent spike is in exactly one place, from its production on.

    The places: the spike FIFO (``spike_fifo``), the word being split, the decode stage and the
    output FIFO; and what the output FIFO may hold in each phase.
    """
    plan, dut, inside = model.plan, model.dut, sched.inside
    lanes, pops = plan.lanes, plan.populations
    state = sched.state
    regs = DeliveryRegisters.of(inside)
    d_valid, d_src, d_j, d_out, word_valid, word_row, word_mask = regs
    lif_pops = [pops.index(p) for p in plan.lif_populations]

    def spike_word_holds(row, mask, kp, i):
        # The spike word (row, mask) of population k names neuron i of population kp.
        return (sched.k == sched.lif_of[kp]) & (row == i // lanes) & mask[i % lanes]

    out_fifo = FifoView(m, inside, "out_fifo")
    inv.add("output FIFO pointers", *out_fifo.invariants)
    payload_shape = dut.spike_out.payload.shape()
    names_neuron = []
    for occupied, word in out_fifo.entries:
        ev = payload_shape(word)
        names_neuron.append((occupied, ev))
        inv.add(
            "output FIFO entry names a LIF neuron",
            ~occupied
            | Cat(*((ev.population == kp) & (ev.index < pops[kp].size) for kp in lif_pops)).any(),
        )
    sent = inside["sent"]
    inv.add(
        "output FIFO empty before the updates and once sent",
        (out_fifo.level == 0) | ~state("IDLE", "INPUT"),
        ~sent | (state("FINISH") & (out_fifo.level == 0)),
    )
    for (kp, i), pending in model.pendings.items():
        places = [
            Mux(occ & spike_word_holds(*regs.spike_word(w), kp, i), 1, 0)
            for occ, w in spike_fifo.entries
        ]
        places.append(Mux(word_valid & spike_word_holds(word_row, word_mask, kp, i), 1, 0))
        places.append(Mux(d_valid & d_out & (d_src == kp) & (d_j == i), 1, 0))
        places += [
            Mux(occ & (ev.population == kp) & (ev.index == i), 1, 0) for occ, ev in names_neuron
        ]
        where = Signal(range(len(places) + 1), name=f"inv_places_{kp}_{i}")
        m.d.comb += where.eq(total(places, range(len(places) + 1)))
        inv.add(
            f"output: an unsent spike of {pops[kp].name}[{i}] is in one place",
            where == pending + model.spiking(i % lanes, pops[kp].slot_base + i // lanes),
            ~pending | (sched.issued[(kp, i)] & ~sched.inflight[(kp, i)]),
            ~state("IDLE", "INPUT") | ~pending,
        )
