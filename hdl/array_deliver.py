"""Spike delivery of the neuron array: the event source, the decode stage and the walker.

Each function adds one unit to the module of :meth:`~spikeforge.hdl.array.NeuronArray.elaborate`
(``docs/array.md``): ``m`` is the module, ``array`` the component, and ``s`` the namespace of
the signals that the units share. A unit reads from ``s`` what earlier units put there and adds
what later ones use.
"""

from types import SimpleNamespace

from amaranth.hdl import Cat, Const, Mux, Signal
from amaranth.lib import fifo

from .arith import bits_for, div_const, mul_const

__all__ = ["acc_bank_base", "mux_table", "event_source", "decode", "walker", "kernel_walker"]


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
    place = Cat(lowest, word_row) if lanes > 1 else word_row
    with m.If(s.deliver_phase & word_valid):
        m.d.comb += [
            s.ev_valid.eq(1),
            s.ev_src.eq(s.pop_index_of_k),
            s.ev_j.eq(_neuron_of_place(s.k, place, lifs)),
        ]
    # A word is read from the FIFO only into an empty word register (one bubble cycle per
    # spike word), so that the FIFO's read enable does not hang at the end of the ready
    # chain of the decode stage and the walker.
    with m.If(s.deliver_phase & s.ev_ready & word_valid):
        m.d.sync += [word_mask.eq(remaining), lowest.eq(lowest_of(remaining))]
        with m.If(remaining == 0):
            m.d.sync += word_valid.eq(0)
    s.decode_in_flight = []
    fifo_valid, fifo_data = spike_fifo.r_rdy, spike_fifo.r_data
    # (Assigned outside the If for Icarus, like ev_out above.)
    if plan.has_conv:
        # A convolution's population has many rows, so the spike FIFO is a block RAM whose
        # read data comes late in the cycle: a register takes it before the lowest-lane
        # encoder (on the ECP5 the FIFO's clock-to-data time into `lowest` was the longest
        # path). It holds one word, and refills as the word register takes it.
        held = Signal(name="spike_held")
        held_data = Signal.like(spike_fifo.r_data, name="spike_held_data")
        s.decode_in_flight.append(held)
        m.d.comb += spike_fifo.r_en.eq(s.deliver_phase & (~held | ~word_valid))
        with m.If(spike_fifo.r_en & spike_fifo.r_rdy):
            m.d.sync += [held.eq(1), held_data.eq(spike_fifo.r_data)]
        with m.Elif(~word_valid):
            m.d.sync += held.eq(0)
        fifo_valid, fifo_data = held, held_data
    else:
        m.d.comb += spike_fifo.r_en.eq(s.deliver_phase & ~word_valid)
    with m.If(~word_valid):
        m.d.sync += word_valid.eq(s.deliver_phase & fifo_valid)
        m.d.sync += [
            word_row.eq(fifo_data[lanes:]),
            word_mask.eq(fifo_data[:lanes]),
            lowest.eq(lowest_of(fifo_data[:lanes])),
        ]


def _neuron_of_place(k, place, lifs):
    """The neuron (C order) at ``place`` of LIF population ``k``'s slots
    (``PopulationPlan.neuron``): ``place`` itself, or for a channel-minor population
    ``o * positions + position`` of ``(position, o) = divmod(place, channels)``, by constant
    division and multiplication."""
    result = place
    for index, pop in enumerate(lifs):
        if pop.channels:
            position, channel = div_const(place, pop.channels, pop.size - 1)
            neuron = mul_const(channel, pop.size // pop.channels) + position
            result = Mux(k == index, neuron, result)
    return result


def decode(m, array, s):
    """The registered stage computing, for an event, the start of each projection's walk: the
    row address of a dense projection, the kernel walk's start of a convolution.

    With convolutions the stage is the last of four (:func:`_conv_decode_stages`), so that the
    constant divisions, the tables and the constant multiplies each get a cycle of their own.
    """
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
    if plan.has_conv:
        head, ready = _conv_decode_stages(m, array, s)
    else:
        head = SimpleNamespace(valid=s.ev_valid, src=s.ev_src, j=s.ev_j, out=s.ev_out)
        ready = s.ev_ready
    m.d.comb += ready.eq(~s.d_valid | s.take)
    with m.If(ready):
        m.d.sync += [
            s.d_valid.eq(head.valid),
            s.d_src.eq(head.src),
            s.d_j.eq(head.j),
            s.d_out.eq(head.out),
        ]
        for n, proj in enumerate(projs):
            if proj.conv is not None:
                continue
            rows = pops[proj.target].rows
            m.d.sync += s.d_base[n].eq(proj.weight_base + mul_const(head.j, rows))
    s.d_conv = {}
    for n, proj in enumerate(projs):
        if proj.conv is not None:
            s.d_conv[n] = _decode_conv(m, array, ready, n, proj, head.split[n])


def _conv_decode_stages(m, array, s):
    """The three registered stages in front of the decode stage of an array with convolutions.

    The first registers the event (whose neuron index of a channel-minor population is itself a
    constant division); the second, for each convolution, the quotients ``j // (H W) = c`` and
    ``j // W = c H + y``; the third the remainders ``y`` and ``x`` and the channel's group.
    Each stage holds its event while the next is full and not taken, so events keep their
    order. Returns the last stage's registers (``split[n]``: ``(c, y, x, group)`` of
    convolution ``n``) and the ready signal that the decode stage drives.
    """
    plan = array.plan
    projs = plan.projections

    def stage(name):
        regs = SimpleNamespace(
            valid=Signal(name=f"{name}_valid"),
            src=Signal.like(s.ev_src, name=f"{name}_src"),
            j=Signal.like(s.ev_j, name=f"{name}_j"),
            out=Signal(name=f"{name}_out"),
            ready=Signal(name=f"{name}_ready"),
        )
        s.decode_in_flight.append(regs.valid)
        return regs

    def advance(into, source, ready):
        m.d.comb += ready.eq(~into.valid | into.ready)
        with m.If(ready):
            m.d.sync += [
                into.valid.eq(source.valid),
                into.src.eq(source.src),
                into.j.eq(source.j),
                into.out.eq(source.out),
            ]

    event = SimpleNamespace(valid=s.ev_valid, src=s.ev_src, j=s.ev_j, out=s.ev_out)
    a, b, c = stage("dec_a"), stage("dec_b"), stage("dec_c")
    advance(a, event, s.ev_ready)
    advance(b, a, a.ready)
    advance(c, b, b.ready)
    c.split = {}
    for n, proj in enumerate(projs):
        conv = proj.conv
        if conv is None:
            continue
        size = plan.populations[proj.source].size
        plane = conv.height * conv.width
        channels = size // plane
        quot_c, _ = div_const(a.j, plane, size - 1)
        quot_row, _ = div_const(a.j, conv.width, size - 1)
        b_c = Signal.like(quot_c, name=f"dec_b{n}_c")
        b_row = Signal.like(quot_row, name=f"dec_b{n}_row")
        with m.If(a.ready):
            m.d.sync += [b_c.eq(quot_c), b_row.eq(quot_row)]
        y = (b_row - mul_const(b_c, conv.height))[: bits_for(conv.height - 1)]
        x = (b.j - mul_const(b_row, conv.width))[: bits_for(conv.width - 1)]
        group = div_const(b_c, conv.group_channels, channels - 1)[0]
        split = SimpleNamespace(
            c=Signal.like(b_c, name=f"dec_c{n}_c"),
            y=Signal(bits_for(conv.height - 1), name=f"dec_c{n}_y"),
            x=Signal(bits_for(conv.width - 1), name=f"dec_c{n}_x"),
            group=Signal(bits_for(channels // conv.group_channels - 1), name=f"dec_c{n}_group"),
        )
        with m.If(b.ready):
            m.d.sync += [split.c.eq(b_c), split.y.eq(y), split.x.eq(x), split.group.eq(group)]
        c.split[n] = split
    return c, c.ready


def _conv_registers(array, proj, name):
    """The registers of a kernel walk's start: weight address ``w``, target place ``t``, taps
    per row and column less one (``ny_m1``, ``nx_m1``) and ``empty`` (no valid tap)."""
    plan = array.plan
    conv = proj.conv
    target = plan.populations[proj.target].size
    return SimpleNamespace(
        w=Signal(bits_for(plan.weight_words - 1), name=f"{name}_w"),
        t=Signal(bits_for(target - 1), name=f"{name}_t"),
        ny_m1=Signal(bits_for(max(r[0] for r in conv.rows)), name=f"{name}_ny_m1"),
        nx_m1=Signal(bits_for(max(c[0] for c in conv.cols)), name=f"{name}_nx_m1"),
        empty=Signal(name=f"{name}_empty"),
    )


def _decode_conv(m, array, ready, n, proj, split):
    """The start of the kernel walk of projection ``n``, registered when ``ready``.

    ``split`` holds the event's ``(c, y, x)`` of ``j = (c H + y) W + x`` and the group of ``c``
    (:func:`_conv_decode_stages`); the row and column tables give the first valid tap and the
    tap counts, and constant multiples of the channel and its group give the addresses
    (``docs/array.md``, "Convolutions").
    """
    conv = proj.conv
    y, x = split.y, split.x
    ny = mux_table(y, [r[0] for r in conv.rows], bits_for(max(r[0] for r in conv.rows)))
    wy = mux_table(y, [r[1] for r in conv.rows], bits_for(max(r[1] for r in conv.rows)))
    ty = mux_table(y, [r[2] for r in conv.rows], bits_for(max(r[2] for r in conv.rows)))
    nx = mux_table(x, [e[0] for e in conv.cols], bits_for(max(e[0] for e in conv.cols)))
    wx = mux_table(x, [e[1] for e in conv.cols], bits_for(max(e[1] for e in conv.cols)))
    tx = mux_table(x, [e[2] for e in conv.cols], bits_for(max(e[2] for e in conv.cols)))
    d = _conv_registers(array, proj, f"d_conv{n}")
    with m.If(ready):
        m.d.sync += [
            d.w.eq(proj.weight_base + mul_const(split.c, conv.channel_words) + wy + wx),
            d.t.eq(mul_const(split.group, conv.group_targets) + ty + tx),
            d.ny_m1.eq(ny - 1),
            d.nx_m1.eq(nx - 1),
            d.empty.eq((ny == 0) | (nx == 0)),
        ]
    return d


def walker(m, array, s):
    """The fan-out walk of the decoded event: one weight word per cycle, all lanes in step,
    through the rows of every projection of the event's source; a LIF spike also leaves on
    ``spike_out`` when the walk is taken.
    """
    if array.plan.has_conv:
        kernel_walker(m, array, s)
        return
    plan = array.plan
    pops = plan.populations
    projs = plan.projections
    first_proj = {}
    for n, proj in enumerate(projs):
        first_proj.setdefault(proj.source, n)
    out_fifo = _spike_out(m, array, s)

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
    _spike_out_write(m, array, s, out_fifo)

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


def _spike_out(m, array, s):
    """The FIFO in front of ``spike_out`` and its read side; :func:`_spike_out_write` writes it."""
    s.out_fifo = out_fifo = fifo.SyncFIFOBuffered(
        width=array.pop_width + array.index_width, depth=4
    )
    m.submodules.out_fifo = out_fifo
    m.d.comb += [
        array.spike_out.valid.eq(out_fifo.r_rdy),
        array.spike_out.payload.eq(out_fifo.r_data),
        out_fifo.r_en.eq(array.spike_out.ready),
    ]
    return out_fifo


def _spike_out_write(m, array, s, out_fifo):
    """A LIF spike enters ``out_fifo`` when its walk is taken.

    Apart from :func:`_spike_out` because the dense walker writes it after its ``take`` and the
    kernel walker before: the order of the statements numbers the anonymous signals of the
    Verilog, which ``tests/test_verilog_pinned.py`` pins.
    """
    out_word = Signal(array.spike_out.payload.shape())
    m.d.comb += [
        out_word.population.eq(s.d_src),
        out_word.index.eq(s.d_j),
        out_fifo.w_data.eq(out_word.as_value()),
    ]
    with m.If(s.take & s.d_out):
        m.d.comb += out_fifo.w_en.eq(1)


def kernel_walker(m, array, s):
    """The walker of an array with convolutions: dense projections as :func:`walker` walks
    them, and the kernel walk of each convolution (``docs/array.md``, "Convolutions").

    A convolution's word at target place ``t`` (row ``t // P``) goes to every lane, one output
    channel each (``ConvWalk.vector``), or to lane ``t % P`` only; ``s.walk_mask`` says which,
    and the other lanes add nothing. The walk steps through the words of a tap, then the valid
    taps of the row, then the rows, by constant additions only. An event with no valid tap
    spends one cycle that adds nothing.
    """
    plan = array.plan
    lanes = plan.lanes
    pops = plan.populations
    projs = plan.projections
    shift = (lanes - 1).bit_length()
    first_proj = {}
    for n, proj in enumerate(projs):
        first_proj.setdefault(proj.source, n)
    out_fifo = _spike_out(m, array, s)
    _spike_out_write(m, array, s, out_fifo)

    s.active = active = Signal()
    p_cur = Signal(range(max(len(projs), 2)))
    col = Signal(array.row_width)
    w_width = bits_for(max(plan.weight_words - 1, 0))
    a_width = bits_for(plan.acc_banks * plan.slots - 1)
    s.w_ptr = Signal(w_width)
    s.a_ptr = Signal(a_width)
    s.walk_mask = Signal(lanes)
    w_dense = Signal(w_width)
    # Whether col is the dense projection's last column, registered beside it (as the kernel
    # walk's zero flags), so that the take does not wait for the column compare.
    col_end = Signal()
    a_dense = Signal(a_width)
    # The kernel walk's registers (_conv_step); `empty`: the event reaches nothing.
    convs = [q.conv for q in projs if q.conv is not None]
    t_width = bits_for(max(pops[q.target].size for q in projs if q.conv is not None) - 1)
    r = SimpleNamespace(
        **{f"w_{k}": Signal(w_width, name=f"conv_w{k}") for k in "cxy"},
        **{f"t_{k}": Signal(t_width, name=f"conv_t{k}") for k in "cxy"},
        rem_o=Signal(bits_for(max(c.tap_words for c in convs) - 1)),
        rem_x=Signal(bits_for(max(e[0] for c in convs for e in c.cols))),
        rem_y=Signal(bits_for(max(e[0] for c in convs for e in c.rows))),
    )
    r.nx_m1 = Signal.like(r.rem_x)
    # Whether rem_o, rem_x and rem_y are 0, registered beside them (set from their next
    # values), so that the end-of-walk test and the take behind it start at flip-flops.
    r.zero_o, r.zero_x, r.zero_y = Signal(), Signal(), Signal()
    empty = Signal()

    # What the take latches: the start of every projection of the event.
    latched = {}
    for n, proj in enumerate(projs):
        if proj.conv is None:
            latched[n] = Signal.like(s.d_base[n], name=f"w_base{n}")
        else:
            latched[n] = _conv_registers(array, proj, f"conv{n}")

    def acc_base(proj):
        # The target's slot base in the right bank; the bank flips for recurrent deliveries.
        bank = ~s.parity if proj.recurrent else s.parity
        return acc_bank_base(plan, bank) + pops[proj.target].slot_base

    def load(n, start):
        """Point the walk at the first word of projection ``n`` (``start`` its decoded or
        latched start)."""
        proj = projs[n]
        if proj.conv is None:
            last_col = pops[proj.target].rows - 1
            return [
                col.eq(0),
                col_end.eq(last_col == 0),
                w_dense.eq(start),
                a_dense.eq(acc_base(proj)),
            ]
        return [
            *(getattr(r, f"w_{k}").eq(start.w) for k in "cxy"),
            *(getattr(r, f"t_{k}").eq(start.t) for k in "cxy"),
            r.rem_o.eq(proj.conv.tap_words - 1),
            r.rem_x.eq(start.nx_m1),
            r.nx_m1.eq(start.nx_m1),
            r.rem_y.eq(start.ny_m1),
            r.zero_o.eq(proj.conv.tap_words == 1),
            r.zero_x.eq(start.nx_m1 == 0),
            r.zero_y.eq(start.ny_m1 == 0),
            empty.eq(start.empty),
        ]

    is_conv = mux_table(p_cur, [int(q.conv is not None) for q in projs], 1)
    with m.If(is_conv):
        base = Signal(a_width)
        # A word for every lane (lanes over output channels), or for the lane of its target.
        lane_mask = Signal(lanes)
        lane_of_t = (1 << r.t_c[:shift]) if shift else Const(1, 1)
        with m.Switch(p_cur):
            for n, proj in enumerate(projs):
                if proj.conv is not None:
                    with m.Case(n):
                        m.d.comb += [
                            base.eq(acc_base(proj)),
                            lane_mask.eq((1 << lanes) - 1 if proj.conv.vector else lane_of_t),
                        ]
        m.d.comb += [
            s.w_ptr.eq(r.w_c),
            s.a_ptr.eq(base + r.t_c[shift:]),
            s.walk_mask.eq(Mux(empty, 0, lane_mask)),
        ]
    with m.Else():
        m.d.comb += [s.w_ptr.eq(w_dense), s.a_ptr.eq(a_dense), s.walk_mask.eq((1 << lanes) - 1)]

    last_col = mux_table(
        p_cur, [pops[q.target].rows - 1 if q.conv is None else 0 for q in projs], array.row_width
    )
    conv_end = empty | (r.zero_o & r.zero_x & r.zero_y)
    proj_end = Mux(is_conv, conv_end, col_end)
    proj_is_last = mux_table(
        p_cur,
        [int(n + 1 == len(projs) or projs[n + 1].source != q.source) for n, q in enumerate(projs)],
        1,
    )
    last = Signal()
    m.d.comb += last.eq(proj_end & proj_is_last)
    at_end = Signal()
    m.d.comb += at_end.eq(~active | last)
    m.d.comb += s.take.eq(at_end & s.d_valid & (out_fifo.w_rdy | ~s.d_out))

    with m.If(active):
        with m.If(last):
            m.d.sync += active.eq(0)
        with m.Elif(proj_end):
            m.d.sync += p_cur.eq(p_cur + 1)
            with m.Switch(p_cur):
                for n in range(len(projs) - 1):
                    if projs[n + 1].source == projs[n].source:
                        with m.Case(n):
                            m.d.sync += load(n + 1, latched[n + 1])
        with m.Elif(is_conv):
            with m.Switch(p_cur):
                for n, proj in enumerate(projs):
                    if proj.conv is not None:
                        with m.Case(n):
                            _conv_step(m, proj.conv, r)
        with m.Else():
            m.d.sync += [
                col.eq(col + 1),
                col_end.eq(col + 1 == last_col),
                w_dense.eq(w_dense + 1),
                a_dense.eq(a_dense + 1),
            ]
    with m.If(s.take):
        for n, proj in enumerate(projs):
            if proj.conv is None:
                m.d.sync += latched[n].eq(s.d_base[n])
            else:
                start, d = latched[n], s.d_conv[n]
                m.d.sync += [getattr(start, k).eq(getattr(d, k)) for k in vars(d)]
        m.d.sync += active.eq(0)
        with m.Switch(s.d_src):
            for src, n in first_proj.items():
                start = s.d_base[n] if projs[n].conv is None else s.d_conv[n]
                with m.Case(src):
                    m.d.sync += [active.eq(1), p_cur.eq(n), *load(n, start)]


def _conv_step(m, conv, r):
    """One step of a kernel walk of ``conv`` that is not at its last word: the next output
    channel, else the next tap of the row, else the first tap of the next row. ``r`` holds the
    walk's registers: the current word ``(w_c, t_c)``, the first word of the tap ``(w_x, t_x)``
    and of the row ``(w_y, t_y)``, the words, taps and rows left, and the taps of a row less
    one (``nx_m1``)."""
    w_c, w_x, w_y, t_c, t_x, t_y = r.w_c, r.w_x, r.w_y, r.t_c, r.t_x, r.t_y
    rem_o, rem_x, rem_y, nx_m1 = r.rem_o, r.rem_x, r.rem_y, r.nx_m1
    (w_col, t_col), (w_row, t_row) = conv.col_step, conv.row_step
    with m.If(~r.zero_o):
        m.d.sync += [
            rem_o.eq(rem_o - 1),
            r.zero_o.eq(rem_o == 1),
            w_c.eq(w_c + 1),
            t_c.eq(t_c + conv.word_targets),
        ]
    with m.Elif(~r.zero_x):
        m.d.sync += [
            rem_o.eq(conv.tap_words - 1),
            r.zero_o.eq(conv.tap_words == 1),
            rem_x.eq(rem_x - 1),
            r.zero_x.eq(rem_x == 1),
            w_c.eq(w_x + w_col),
            w_x.eq(w_x + w_col),
            t_c.eq(t_x + t_col),
            t_x.eq(t_x + t_col),
        ]
    with m.Else():
        m.d.sync += [
            rem_o.eq(conv.tap_words - 1),
            r.zero_o.eq(conv.tap_words == 1),
            rem_x.eq(nx_m1),
            r.zero_x.eq(nx_m1 == 0),
            rem_y.eq(rem_y - 1),
            r.zero_y.eq(rem_y == 1),
            w_c.eq(w_y + w_row),
            w_x.eq(w_y + w_row),
            w_y.eq(w_y + w_row),
            t_c.eq(t_y + t_row),
            t_x.eq(t_y + t_row),
            t_y.eq(t_y + t_row),
        ]
