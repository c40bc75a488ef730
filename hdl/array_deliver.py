"""Spike delivery of the neuron array: the event source, the decode stage and the walker.

Each function adds one unit to the module of :meth:`~spikeforge.hdl.array.NeuronArray.elaborate`
(``docs/array.md``): ``m`` is the module, ``array`` the component, and ``s`` the namespace of
the signals that the units share. A unit reads from ``s`` what earlier units put there and adds
what later ones use.
"""

from amaranth.hdl import Cat, Const, Mux, Signal
from amaranth.lib import fifo

from .arith import bits_for, mul_const

__all__ = ["acc_bank_base", "mux_table", "event_source", "decode", "walker"]


def acc_bank_base(plan, bank):
    """The first accumulator word of bank ``bank`` (a 1-bit value): ``plan.slots`` for bank 1
    of two, else 0 (``plan.acc_banks``: one bank without a recurrent projection)."""
    return Mux(bank, plan.slots, 0) if plan.acc_banks == 2 else Const(0)


def mux_table(index, values, shape):
    """``values[index]`` for a list of constants, as a chain of multiplexers.

    Not ``Array``: Yosys writes an ``Array`` of constants as an ``always @*`` block that reads
    only ``index``, and Icarus never evaluates such a block while ``index`` keeps its initial
    value, so the table would read as ``x``.
    """
    result = Const(values[-1], shape)
    for n in reversed(range(len(values) - 1)):
        result = Mux(index == n, Const(values[n], shape), result)
    return result


def event_source(m, array, s):
    """The events to deliver: the input stream in the INPUT phase, or the spikes of population
    ``k`` in its DELIVER phase, read back from the spike FIFO one lane of a spike word at a time.
    """
    plan = array.plan
    lanes = plan.lanes
    pops = plan.populations
    lifs = plan.lif_populations
    s.ev_valid = Signal()
    s.ev_src = Signal(range(max(len(pops), 2)))
    s.ev_j = Signal(array.index_width)
    s.ev_out = Signal()  # a LIF spike, to be reported on spike_out
    s.ev_ready = Signal()

    s.in_phase = Signal()
    s.deliver_phase = Signal()
    s.input_ended = Signal()

    payload = array.spike_in.payload
    with m.If(s.in_phase & ~s.input_ended & array.spike_in.valid):
        with m.If(payload.end):
            m.d.comb += array.spike_in.ready.eq(1)
            m.d.sync += s.input_ended.eq(1)
        with m.Else():
            matched = Const(0)
            for index, pop in enumerate(pops):
                if not pop.is_input:
                    continue
                hit = payload.index < pop.input_offset + pop.size
                if pop.input_offset:
                    hit &= payload.index >= pop.input_offset
                matched = matched | hit
                with m.If(hit):
                    m.d.comb += [s.ev_src.eq(index), s.ev_j.eq(payload.index - pop.input_offset)]
            # An index past the input vector has no synapses: it is consumed and dropped.
            m.d.comb += [s.ev_valid.eq(matched), array.spike_in.ready.eq(s.ev_ready | ~matched)]

    # Spike words: (row within the population, lane mask) of each update cycle with a spike.
    s.spike_fifo = spike_fifo = fifo.SyncFIFOBuffered(
        width=array.row_width + lanes, depth=max(p.rows for p in lifs) + 1
    )
    m.submodules.spike_fifo = spike_fifo
    s.word_valid = word_valid = Signal()
    word_row = Signal(array.row_width)
    word_mask = Signal(lanes)
    # The lowest set lane of word_mask, kept in a register beside it, so that the priority
    # encoder sits before the register and not in front of the decode stage's adders.
    lowest = Signal(range(max(lanes, 2)))

    def lowest_of(mask):
        result = Const(0, lowest.shape())
        for l in reversed(range(lanes)):
            result = Mux(mask[l], l, result)
        return result

    remaining = Signal(lanes)
    m.d.comb += remaining.eq(word_mask & ~(1 << lowest))
    s.pop_index_of_k = mux_table(s.k, [pops.index(p) for p in lifs], range(max(len(pops), 2)))
    # A plain assignment, not one under the If below. The state registers drive ev_out
    # directly, and Icarus never runs the process of a conditional assignment whose inputs
    # keep their initial values: ev_out would stay x until the first DELIVER phase. The
    # same holds for the other outputs of the schedule's registers that feed no register.
    m.d.comb += s.ev_out.eq(s.deliver_phase & word_valid)
    with m.If(s.deliver_phase & word_valid):
        m.d.comb += [
            s.ev_valid.eq(1),
            s.ev_src.eq(s.pop_index_of_k),
            s.ev_j.eq(Cat(lowest, word_row) if lanes > 1 else word_row),
        ]
    # A word is read from the FIFO only into an empty word register (one bubble cycle per
    # spike word), so that the FIFO's read enable does not hang at the end of the ready
    # chain of the decode stage and the walker.
    with m.If(s.deliver_phase & s.ev_ready & word_valid):
        m.d.sync += [word_mask.eq(remaining), lowest.eq(lowest_of(remaining))]
        with m.If(remaining == 0):
            m.d.sync += word_valid.eq(0)
    # (Assigned outside the If for Icarus, like ev_out above.)
    m.d.comb += spike_fifo.r_en.eq(s.deliver_phase & ~word_valid)
    with m.If(~word_valid):
        m.d.sync += word_valid.eq(s.deliver_phase & spike_fifo.r_rdy)
        m.d.sync += [
            word_row.eq(spike_fifo.r_data[lanes:]),
            word_mask.eq(spike_fifo.r_data[:lanes]),
            lowest.eq(lowest_of(spike_fifo.r_data[:lanes])),
        ]


def decode(m, array, s):
    """One registered stage computing, for an event, the row address of each projection."""
    plan = array.plan
    pops = plan.populations
    projs = plan.projections
    s.d_valid = Signal()
    s.d_src = Signal.like(s.ev_src)
    s.d_j = Signal.like(s.ev_j)
    s.d_out = Signal()
    s.d_base = [
        Signal(bits_for(max(plan.weight_words - 1, 0)), name=f"d_base{n}")
        for n in range(len(projs))
    ]
    s.take = Signal()
    m.d.comb += s.ev_ready.eq(~s.d_valid | s.take)
    with m.If(s.ev_ready):
        m.d.sync += [
            s.d_valid.eq(s.ev_valid),
            s.d_src.eq(s.ev_src),
            s.d_j.eq(s.ev_j),
            s.d_out.eq(s.ev_out),
        ]
        for n, proj in enumerate(projs):
            rows = pops[proj.target].rows
            m.d.sync += s.d_base[n].eq(proj.weight_base + mul_const(s.ev_j, rows))


def walker(m, array, s):
    """The fan-out walk of the decoded event: one weight word per cycle, all lanes in step,
    through the rows of every projection of the event's source; a LIF spike also leaves on
    ``spike_out`` when the walk is taken.
    """
    plan = array.plan
    pops = plan.populations
    projs = plan.projections
    first_proj = {}
    for n, proj in enumerate(projs):
        first_proj.setdefault(proj.source, n)
    s.out_fifo = out_fifo = fifo.SyncFIFOBuffered(
        width=array.pop_width + array.index_width, depth=4
    )
    m.submodules.out_fifo = out_fifo
    m.d.comb += [
        array.spike_out.valid.eq(out_fifo.r_rdy),
        array.spike_out.payload.eq(out_fifo.r_data),
        out_fifo.r_en.eq(array.spike_out.ready),
    ]

    s.active = active = Signal()
    p_cur = Signal(range(max(len(projs), 2)))
    col = Signal(array.row_width)
    s.w_ptr = w_ptr = Signal(bits_for(max(plan.weight_words - 1, 0)))
    s.a_ptr = a_ptr = Signal(bits_for(plan.acc_banks * plan.slots - 1))
    bases = [Signal.like(b, name=f"w_base{n}") for n, b in enumerate(s.d_base)]

    if projs:
        proj_last_col = mux_table(p_cur, [pops[q.target].rows - 1 for q in projs], array.row_width)

    def acc_base(proj):
        # The target's slot base in the right bank; the bank flips for recurrent deliveries.
        bank = ~s.parity if proj.recurrent else s.parity
        return acc_bank_base(plan, bank) + pops[proj.target].slot_base

    # The walker knows a cycle ahead when it walks an event's last word: `last` is a
    # register, so that the ready chain back to the spike FIFO and the input stream starts
    # at flip-flops instead of behind the column compare.
    last = Signal()
    words_left = Signal(
        bits_for(
            max(
                [sum(pops[q.target].rows for q in plan.projections_from(src)) for src in first_proj]
                + [1]
            )
        )
    )
    at_end = Signal()
    m.d.comb += at_end.eq(~active | last)
    m.d.comb += s.take.eq(at_end & s.d_valid & (out_fifo.w_rdy | ~s.d_out))
    out_word = Signal(array.spike_out.payload.shape())
    m.d.comb += [
        out_word.population.eq(s.d_src),
        out_word.index.eq(s.d_j),
        out_fifo.w_data.eq(out_word.as_value()),
    ]
    with m.If(s.take & s.d_out):
        m.d.comb += out_fifo.w_en.eq(1)

    with m.If(active):
        m.d.sync += [
            col.eq(col + 1),
            w_ptr.eq(w_ptr + 1),
            a_ptr.eq(a_ptr + 1),
            words_left.eq(words_left - 1),
            last.eq(words_left == 2),
        ]
        with m.If(last):
            m.d.sync += active.eq(0)
        with m.Elif(col == proj_last_col):
            # Not the event's last word, so the source has a next projection.
            m.d.sync += [p_cur.eq(p_cur + 1), col.eq(0)]
            with m.Switch(p_cur):
                for n, proj in enumerate(projs):
                    if n + 1 < len(projs) and projs[n + 1].source == proj.source:
                        with m.Case(n):
                            m.d.sync += [
                                w_ptr.eq(bases[n + 1]),
                                a_ptr.eq(acc_base(projs[n + 1])),
                            ]
    with m.If(s.take):
        m.d.sync += [bases[n].eq(s.d_base[n]) for n in range(len(projs))]
        m.d.sync += [active.eq(0), col.eq(0)]
        with m.Switch(s.d_src):
            for src, n in first_proj.items():
                words = sum(pops[q.target].rows for q in plan.projections_from(src))
                with m.Case(src):
                    m.d.sync += [
                        active.eq(1),
                        p_cur.eq(n),
                        w_ptr.eq(s.d_base[n]),
                        a_ptr.eq(acc_base(projs[n])),
                        words_left.eq(words),
                        last.eq(words == 1),
                    ]
