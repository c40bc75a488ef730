"""Inductive invariants of the neuron array's synaptic accumulation, for the ``acc`` property.

For :class:`~.formal_array.ArrayHarness` with ``inductive=True``. The weight memories hold the
plan; the read, read-stage and forwarding registers of the accumulator read-modify-write give
the word as it is now, and in the update phase its last two writes are the clears of the rows
issued three and four cycles before (:func:`update_phase_invariants`, so that an induction of
length 1 closes); the fan-out walker is on a column of its event's rows; and every synaptic
addition still in flight (input event or spike word in the decode stage, the walker, the two
read-modify-write stages, the spike FIFO and the word being split) is accounted for, so that the
model's reference equals the accumulator word plus what is in flight (:func:`acc_invariants`).
"""

from amaranth.hdl import Cat, Const, Mux, Signal, signed

from spikeforge.hdl.array import acc_bank_base

from .formal import lookup, total
from .formal_array_delivery import DeliveryRegisters
from .formal_inside import peek

__all__ = ["update_phase_invariants", "acc_invariants"]


def update_phase_invariants(inv, sched):
    """Add to ``inv`` the accumulator's last two writes in the update phase and in ``PARAMS``.

    They are the clears of the rows issued three and four cycles ago (a row is cleared in its
    read stage's cycle, and the forwarding flags record a write one and two cycles later), and
    in ``PARAMS`` the last synaptic write is at least two cycles old. Without these, only an
    induction of length 3 sees that no forwarded write can supersede an update's read.
    """
    inside = sched.inside
    bank = acc_bank_base(sched.plan, sched.parity)
    for n, name in enumerate(["1", "2"]):
        wrote, addr = inside[f"wrote{name}"], inside[f"addr{name}"]
        valid, row = sched.stage_at(2 + n)
        inv.add(
            f"acc: the write {n + 1} cycle(s) ago in the update phase is a clear",
            ~sched.issuing | (wrote == valid),
            ~(sched.issuing & wrote) | (addr == (bank + sched.base_k + row)[: len(addr)]),
        )
    inv.add("acc: no write one cycle ago in PARAMS", ~sched.state("PARAMS") | ~inside["wrote1"])


def acc_invariants(m, inv, sched, model, spike_fifo):
    """Add to ``inv`` what the ``acc`` induction needs of the accumulation path.

    Parameters
    ----------
    m : amaranth.hdl.Module
    inv : Invariants
    sched : Schedule
    model : StepModel
        Its :attr:`~.formal_array_model.StepModel.refs` name the neurons tracked.
    spike_fifo : FifoView
    """
    path = _AccPath(m, sched, model)
    path.weight_invariants(inv)
    path.read_modify_write_invariants(inv)
    path.walker_invariants(inv)
    path.neuron_invariants(inv, spike_fifo)


class _AccPath:
    """The registers of the accumulation path, and the model's copies of its recent past."""

    def __init__(self, m, sched, model):
        self.m, self.sched, self.model = m, sched, model
        self.plan = plan = model.plan
        self.inside = inside = sched.inside
        lanes, projs = plan.lanes, plan.projections
        self.width = signed(plan.acc_width)
        self.d_valid, self.d_src, self.d_j = inside["d_valid"], inside["d_src"], inside["d_j"]
        self.active, self.p_cur, self.col = inside["active"], inside["p_cur"], inside["col"]
        self.w_ptr, self.a_ptr = inside["w_ptr"], inside["a_ptr"]
        self.issue_valid_d, self.acc_addr_d = inside["issue_valid_d"], inside["acc_addr_d"]
        self.issue_valid_q, self.acc_addr_q = inside["issue_valid_q"], inside["acc_addr_q"]
        self.upd_valid_d, self.upd_valid_q = inside["upd_valid_d"], inside["upd_valid_q"]
        self.bases = [inside[f"w_base{n}"] for n in range(len(projs))]
        # The walker's word of one and two cycles ago (projection, column, weight address): the
        # read-modify-write reads it, registers it, then adds and writes.
        self.prev = []
        for n in range(2):
            regs = (
                Signal.like(self.p_cur, name=f"inv_rmw{n}_p"),
                Signal.like(self.col, name=f"inv_rmw{n}_col"),
                Signal.like(self.w_ptr, name=f"inv_rmw{n}_w_ptr"),
            )
            src = self.prev[-1] if self.prev else (self.p_cur, self.col, self.w_ptr)
            m.d.sync += [r.eq(v) for r, v in zip(regs, src, strict=True)]
            self.prev.append(regs)
        # The input index of the event the walker works on.
        self.g_j = Signal.like(self.d_j, name="inv_walk_j")
        with m.If(inside["take"]):
            m.d.sync += self.g_j.eq(self.d_j)
        self.plan_w = [[int(x) for x in plan.weights[l]] for l in range(lanes)]
        self.w_d = [model.dut.weight_mem[l].read_ports[0].data for l in range(lanes)]
        self.w_q = [inside[f"w_q{l}"] for l in range(lanes)]
        # Which projections share a source (the walker takes them in order for one event).
        src_of = [q.source for q in projs]
        self.same_src = {
            n: [q for q in range(len(projs)) if src_of[q] == src_of[n]] for n in range(len(projs))
        }

    def _acc_word(self, l, addr, name):
        """The word at ``addr`` of lane ``l``'s accumulator memory, as it is now."""
        mem = self.inside.sub(f"acc{l}")
        return peek(self.m, mem, self.plan.acc_banks * self.plan.slots, addr, self.width, name)

    def _acc_base(self, n):
        """The accumulator address of the first row of projection ``n``'s target this step."""
        plan = self.plan
        target = plan.populations[plan.projections[n].target]
        return acc_bank_base(plan, self.sched.parity) + target.slot_base

    def _on_phase(self, p):
        """Whether projection ``p`` has the source of the schedule's phase."""
        pops, projs, state = self.plan.populations, self.plan.projections, self.sched.state
        return Cat(
            *(
                (p == n)
                & (
                    state("INPUT")
                    if pops[proj.source].is_input
                    else state("DELIVER") & (self.sched.pop_k == proj.source)
                )
                for n, proj in enumerate(projs)
            )
        ).any()

    def weight_invariants(self, inv):
        """The weight memories hold the plan; the read register and the read stage hold the
        words of the walker's last two cycles."""
        plan, prev = self.plan, self.prev
        w_shape = signed(plan.w_width)
        for l in range(plan.lanes):
            mem = self.inside.sub(f"weights{l}")
            for a, w in enumerate(self.plan_w[l]):
                inv.add(
                    f"acc: weight word {a} of lane {l} is the plan's",
                    peek(self.m, mem, plan.weight_words, a, w_shape, f"inv_w{l}_{a}") == w,
                )
            inv.add(
                f"acc: lane {l} weight read register and read stage",
                ~self.issue_valid_d | (self.w_d[l] == lookup(prev[0][2], self.plan_w[l], w_shape)),
                ~self.issue_valid_q | (self.w_q[l] == lookup(prev[1][2], self.plan_w[l], w_shape)),
            )

    def read_modify_write_invariants(self, inv):
        """The read register and the read stage hold the word as it was read, the forwarding
        registers the last two writes, and together they give the word as it is now (the
        memory cannot: its read is two cycles old)."""
        inside = self.inside
        acc_addr_d, acc_addr_q = self.acc_addr_d, self.acc_addr_q
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
        for l in range(self.plan.lanes):
            sum1, sum2 = inside[f"acc_sum1_{l}"], inside[f"acc_sum2_{l}"]
            inv.add(
                f"acc: lane {l} read-modify-write registers",
                ~wrote1 | (sum1 == self._acc_word(l, addr1, f"inv_acc_w1{l}")),
                ~(wrote2 & ~(wrote1 & (addr1 == addr2)))
                | (sum2 == self._acc_word(l, addr2, f"inv_acc_w2{l}")),
                ~((self.issue_valid_d | self.upd_valid_d) & ~(wrote1 & (addr1 == acc_addr_d)))
                | (
                    self.model.dut.acc_mem[l].read_ports[0].data
                    == self._acc_word(l, acc_addr_d, f"inv_acc_d{l}")
                ),
                ~((self.issue_valid_q | self.upd_valid_q) & ~hit1 & ~hit2)
                | (inside[f"acc_q{l}"] == self._acc_word(l, acc_addr_q, f"inv_acc_q{l}")),
            )

    def walker_invariants(self, inv):
        """The walker is on a projection of the phase's source, on a column of it, its pointers
        at that column of the event's row, the bases of the source's later projections at the
        same event's rows; the read-modify-write stages add into such columns, or clear the
        word of the neuron being updated."""
        pops, projs = self.plan.populations, self.plan.projections
        p_cur, col, bases, same_src = self.p_cur, self.col, self.bases, self.same_src
        walker = [self._on_phase(p_cur)]
        for n, proj in enumerate(projs):
            rows = pops[proj.target].rows
            here = [
                col < rows,
                self.w_ptr == (bases[n] + col)[: len(self.w_ptr)],
                self.a_ptr == (self._acc_base(n) + col)[: len(self.a_ptr)],
                self.g_j < pops[proj.source].size,
            ]
            here += [
                bases[q]
                == (projs[q].weight_base + self.g_j * pops[projs[q].target].rows)[: len(bases[q])]
                for q in same_src[n]
            ]
            walker.append((p_cur != n) | Cat(*here).all())
        inv.add("acc: walker on a column of its event's rows", ~self.active | Cat(*walker).all())
        # The walker's count of the event's words still to add, and its last-word flag.
        words_left, last = self.inside["words_left"], self.inside["last"]
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
            ~self.active | Cat(*left).any(),
            ~self.active | (last == (words_left == 1)),
        )
        rmw_stages = [
            (self.acc_addr_d, self.issue_valid_d, self.upd_valid_d),
            (self.acc_addr_q, self.issue_valid_q, self.upd_valid_q),
        ]
        for n, (addr, valid, upd) in enumerate(rmw_stages):
            p_w, col_w = self.prev[n][0], self.prev[n][1]
            writer = [self._on_phase(p_w)]
            for q, proj in enumerate(projs):
                writer.append(
                    (p_w != q)
                    | (
                        (col_w < pops[proj.target].rows)
                        & (addr == (self._acc_base(q) + col_w)[: len(addr)])
                    )
                )
            inv.add(
                f"acc: read-modify-write stage {n} adds into a column of the phase's projections",
                ~valid | Cat(*writer).all(),
                ~(valid & upd),
            )
        for addr, upd, slot in [
            (self.acc_addr_d, self.upd_valid_d, self.inside["upd_slot_d"]),
            (self.acc_addr_q, self.upd_valid_q, self.inside["upd_slot_q"]),
        ]:
            inv.add(
                "acc: an update reads and clears its neuron's word in the step's bank",
                ~upd | (addr == (acc_bank_base(self.plan, self.sched.parity) + slot)[: len(addr)]),
            )

    def _walker_pending(self, l, kp, n_row):
        """The walker's words still to come for neuron row ``n_row`` of population ``kp`` in
        lane ``l`` (plan weights, as it reads them)."""
        pops, projs, same_src = self.plan.populations, self.plan.projections, self.same_src
        pend = []
        for n, proj in enumerate(projs):
            if proj.target != kp:
                continue
            later = (
                Cat(*(self.p_cur == q for q in same_src[n] if q < n)).any()
                if any(q < n for q in same_src[n])
                else Const(0)
            )
            left = self.active & (((self.p_cur == n) & (self.col <= n_row)) | later)
            # The word at bases[n] + n_row, through the walker invariant a lookup by the
            # event's row (a few words, not the whole memory).
            rows = pops[proj.target].rows
            words = [
                self.plan_w[l][proj.weight_base + j * rows + n_row]
                for j in range(pops[proj.source].size)
            ]
            pend.append(Mux(left, lookup(self.g_j, words, self.width), 0))
        return pend

    def _word_sum(self, row, mask, present, kk, column):
        """What the spike word ``(row, mask)`` of LIF population ``kk``, if ``present``, adds
        to a neuron whose weights from that population are ``column``."""
        lanes = self.plan.lanes
        terms = [
            Mux(
                present & (self.sched.k == kk) & mask[b],
                lookup(row, column[b::lanes], self.width),
                0,
            )
            for b in range(lanes)
        ]
        return total(terms, self.width)

    def neuron_invariants(self, inv, spike_fifo):
        """Per tracked neuron: its accumulator word plus what is in flight for it is the
        model's reference; once issued, both are 0. The network is feed-forward, so the array
        has one accumulator bank (``ArrayPlan.acc_banks``) and no other word to check."""
        m, plan, model, sched, inside = self.m, self.plan, self.model, self.sched, self.inside
        lanes, pops, width = plan.lanes, plan.populations, self.width
        weights = {(p.source_index, p.target_index): p.weights for p in model.net.projections}
        regs = DeliveryRegisters.of(inside)
        for l, s, kp, i in model.neurons:
            if (kp, i) not in model.refs:
                continue
            word = acc_bank_base(plan, sched.parity) + s
            cur = self._acc_word(l, word, f"inv_acc_{kp}_{i}")
            # The read-modify-write stages adding into this word.
            pend = [
                Mux(self.issue_valid_d & (self.acc_addr_d == word), self.w_d[l], 0),
                Mux(self.issue_valid_q & (self.acc_addr_q == word), self.w_q[l], 0),
            ]
            pend += self._walker_pending(l, kp, i // lanes)
            # The event in the decode stage (network weights).
            for src in range(len(pops)):
                w = weights.get((src, kp))
                if w is None:
                    continue
                column = [int(x) for x in w[:, i]]
                pend.append(
                    Mux(self.d_valid & (self.d_src == src), lookup(self.d_j, column, width), 0)
                )
            # Spike words of population k: the word being split and the spike FIFO.
            for kk, lif in enumerate(plan.lif_populations):
                w = weights.get((pops.index(lif), kp))
                if w is None:
                    continue
                column = [int(x) for x in w[:, i]]
                pend.append(
                    self._word_sum(regs.word_row, regs.word_mask, regs.word_valid, kk, column)
                )
                for occ, wd in spike_fifo.entries:
                    pend.append(self._word_sum(*regs.spike_word(wd), occ, kk, column))
            ref = model.refs[(kp, i)]
            owed = Signal(width, name=f"inv_owed_{kp}_{i}")
            # A spike stored this cycle is in the spike FIFO already, in the reference next cycle.
            m.d.comb += owed.eq(ref + total(model.spike_adds[(kp, i)], width) - total(pend, width))
            inv.add(
                f"acc: {pops[kp].name}[{i}] word plus in-flight additions is the reference",
                owed == cur,
                ~(sched.issued[(kp, i)] & ~sched.reading[(kp, i)]) | ((ref == 0) & (cur == 0)),
            )
