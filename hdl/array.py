"""The time-multiplexed neuron array: a whole network served by ``P`` pipelined lanes.

One timestep (``docs/network.md`` for the timing, ``spikeforge.hdl.plan`` for the memory layout):

1. ``start``; the input spike events of the step arrive on ``spike_in``, closed by an ``end`` item.
   Each event walks the fan-out rows of its population's projections: one synaptic addition per
   cycle per lane, back to back, with no stall between events.
2. For every LIF population in evaluation order: the *update* phase streams its slots through the
   lanes' neuron cores (one neuron per cycle per lane), then the *deliver* phase walks the fan-out
   of the spikes it produced, which also leave on ``spike_out``.
3. ``done`` pulses; ``cycles`` holds the step's cycle count.

Synaptic read-modify-write is pipelined (accumulator and weight read, registered, then add and
write back) and the two writes still in flight are forwarded, so back-to-back additions to one
word see each other without a stall, one per cycle per lane. Feed-forward deliveries add into the bank of the current step,
recurrent ones into the other bank, which the next step reads.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, enum, fifo, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from ..spec.limits import LANES, STAGES_RANGE, check_int
from ._validate import validating
from .arith import bits_for, mul_const
from .neuron import NeuronCore, pack_params, params_layout
from .spram import WeightStore

__all__ = ["NeuronArray", "state_layout", "CfgMemory"]


class CfgMemory(enum.IntEnum, shape=unsigned(2)):
    """The memory that a write of the ``cfg`` port goes to (``docs/array.md``).

    An integer enumeration: the host link carries the same codes in its CFG frames
    (``docs/host-link.md``).
    """

    WEIGHTS = 0
    BIAS = 1
    STATE = 2
    PARAMS = 3


# The states of the array's schedule (see the module docstring); IDLE is the initial one.
SCHEDULE_STATES = (
    "IDLE",
    "RESET_ACC",
    "RESET_PARAMS",
    "RESET_STATE",
    "INPUT",
    "PARAMS",
    "UPDATE",
    "UPDATE_DRAIN",
    "DELIVER",
    "FINISH",
)


def state_layout(v_width, t_ref_width, synaptic=False):
    """Row of a lane's state memory: membrane, refractory counter and, in an array with a
    current-based population, the synaptic current ``i``."""
    fields = {"v": signed(v_width), "r": unsigned(t_ref_width)}
    if synaptic:
        fields["i"] = signed(v_width)
    return data.StructLayout(fields)


def _table(index, values, shape):
    """``values[index]`` for a list of constants, as a chain of multiplexers.

    Not ``Array``: Yosys writes an ``Array`` of constants as an ``always @*`` block that reads
    only ``index``, and Icarus never evaluates such a block while ``index`` keeps its initial
    value, so the table would read as ``x``.
    """
    result = Const(values[-1], shape)
    for n in reversed(range(len(values) - 1)):
        result = Mux(index == n, Const(values[n], shape), result)
    return result


class NeuronArray(wiring.Component):
    """A network on ``plan.lanes`` neuron-core lanes with all state in block RAM.

    Parameters
    ----------
    plan : ArrayPlan
        Layout and initial memory contents (``spikeforge.gen.compile.compile_network``).
    stages : int
        Pipeline stages of each lane's neuron core, 1 to 4.
    trace : bool
        Add ``trace_out``: the membrane trace of every neuron of every step.
    runtime_weights : bool
        Keep the weights in a :class:`~spikeforge.hdl.spram.WeightStore` (one port, no initial
        contents; SPRAM on an iCE40 UltraPlus) instead of block RAM initialised from the
        bitstream: the weights are zero in simulation and undefined on a board until they are
        loaded through ``cfg``. ``plan.weights`` is then not used.

    Attributes
    ----------
    spike_in : In(stream.Signature({index, end}))
        Input events of the current step by index into the input vector; ``end`` closes the step.
    spike_out : Out(stream.Signature({population, index}))
        Spikes of LIF populations, ``population`` being the index in the network's population list.
    trace_out : Out(stream.Signature({population, slot, mask, v}))
        Only with ``trace``: per update cycle, ``v[l]`` is the trace of neuron
        ``slot * lanes + l`` where ``mask`` bit ``l`` is set.
    cfg : In(stream.Signature({mem, lane, addr, data}))
        Runtime loading while idle: writes ``data`` to word ``addr`` of memory ``mem`` (one of
        :class:`CfgMemory`) of lane
        ``lane`` (parameters are shared by all lanes). Layouts as in ``spikeforge.hdl.plan``.
        With ``runtime_weights`` a weight item writes :attr:`weight_burst` words, ``addr``
        onwards, weight ``n`` in data bits ``[n * w_width, (n + 1) * w_width)``, one a cycle
        (``cfg.ready`` is low meanwhile, and a ``start`` waits for the last one).
    reset_state : In(1)
        While idle, a pulse restarts the network: every membrane to its population's ``v_rest``,
        refractory counters, synaptic currents and both accumulator banks to 0, ``timestep`` to 0.
    start : In(1)
        Starts a timestep when ``busy`` is low.
    busy, done : Out(1)
        ``done`` pulses for one cycle at the end of a step.
    cycles : Out(32)
        Cycles from ``start`` to ``done`` of the last step.
    timestep : Out(32)
        Steps completed since reset.
    """

    def __init__(self, plan, *, stages=4, trace=False, runtime_weights=False):
        with validating(self):
            if not isinstance(runtime_weights, bool):
                raise TypeError(f"runtime_weights must be True or False, not {runtime_weights!r}")
            if plan.lanes not in LANES:
                raise TypeError(
                    f"lanes must be one of {', '.join(map(str, LANES))}, not {plan.lanes!r}"
                )
            check_int("stages", stages, *STAGES_RANGE)
            if not plan.lif_populations:
                raise ValueError("the network has no LIF population to run")
        self.plan = plan
        self.stages = stages
        self.trace = trace
        self.runtime_weights = runtime_weights
        lanes = plan.lanes
        self.t_ref_width = bits_for(plan.t_ref_max)
        self.slot_width = bits_for(plan.slots - 1)
        self.pop_width = bits_for(len(plan.populations) - 1)
        self.index_width = bits_for(plan.max_size - 1)
        self.row_width = bits_for(max(p.rows for p in plan.lif_populations) - 1)

        # Only an array with a current-based population has the synaptic current (its decays
        # built in like the membrane's); a plain LIF network keeps the cores and memories it had
        # without it.
        synaptic = dict(
            synaptic=plan.synaptic, syn_decay_sets=plan.syn_decay_sets if plan.synaptic else None
        )
        self.cores = [
            NeuronCore(
                v_width=plan.v_width,
                acc_width=plan.acc_width,
                t_ref_max=plan.t_ref_max,
                stages=stages,
                decay_sets=plan.decay_sets,
                **synaptic,
            )
            for _ in range(lanes)
        ]
        self.param_layout = params_layout(
            plan.v_width, self.t_ref_width, plan.decay_sets, **synaptic
        )
        self.state_layout = state_layout(plan.v_width, self.t_ref_width, plan.synaptic)
        if runtime_weights:
            self.weight_mem = None
            self.weight_store = WeightStore(plan.weight_words, lanes, plan.w_width)
        else:
            self.weight_mem = [
                memory.Memory(
                    shape=signed(plan.w_width),
                    depth=plan.weight_words,
                    init=[int(x) for x in plan.weights[l]],
                )
                for l in range(lanes)
            ]
        self.acc_mem = [
            memory.Memory(shape=signed(plan.acc_width), depth=2 * plan.slots, init=[])
            for _ in range(lanes)
        ]
        self.state_mem = [
            memory.Memory(
                shape=self.state_layout,
                depth=plan.slots,
                init=[{"v": int(v), "r": 0} for v in plan.v_init[l]],
            )
            for l in range(lanes)
        ]
        self.bias_mem = [
            memory.Memory(
                shape=signed(plan.v_width), depth=plan.slots, init=[int(b) for b in plan.bias[l]]
            )
            for l in range(lanes)
        ]
        # The array reads each neuron's bias from bias_mem; the population row carries 0.
        param_rows = []
        for pop in plan.lif_populations:
            row = pack_params(pop.params, plan.decay_sets, **synaptic)
            row["bias"] = 0
            param_rows.append(row)
        # At least two rows (and two words in every memory): a one-word memory would have a
        # zero-width address, which Verilator rejects.
        # The parameter rows are few and wide (over 100 bits): as block RAM they would take
        # seven iCE40 EBRs for two rows, so they are kept in logic.
        self.param_mem = memory.Memory(
            shape=self.param_layout,
            depth=max(len(param_rows), 2),
            init=param_rows,
            attrs={"ram_style": "logic"},
        )

        self.cfg_addr_width = bits_for(max(plan.weight_words, plan.slots, len(param_rows)) - 1)
        self.cfg_data_width = max(
            plan.w_width, plan.v_width, self.state_layout.size, self.param_layout.size
        )
        # Weights per cfg weight item: as many as the data field holds with runtime weights.
        self.weight_burst = self.cfg_data_width // plan.w_width if runtime_weights else 1
        members = {
            "spike_in": In(
                stream.Signature(
                    data.StructLayout(
                        {"index": unsigned(bits_for(max(plan.n_inputs - 1, 0))), "end": unsigned(1)}
                    )
                )
            ),
            "spike_out": Out(
                stream.Signature(
                    data.StructLayout(
                        {
                            "population": unsigned(self.pop_width),
                            "index": unsigned(self.index_width),
                        }
                    )
                )
            ),
            "cfg": In(
                stream.Signature(
                    data.StructLayout(
                        {
                            "mem": unsigned(2),
                            "lane": unsigned(3),
                            "addr": unsigned(self.cfg_addr_width),
                            "data": unsigned(self.cfg_data_width),
                        }
                    )
                )
            ),
            "reset_state": In(1),
            "start": In(1),
            "busy": Out(1),
            "done": Out(1),
            "cycles": Out(32),
            "timestep": Out(32),
        }
        if trace:
            members["trace_out"] = Out(
                stream.Signature(
                    data.StructLayout(
                        {
                            "population": unsigned(self.pop_width),
                            "slot": unsigned(self.row_width),
                            "mask": unsigned(lanes),
                            "v": data.ArrayLayout(signed(plan.v_width), lanes),
                        }
                    )
                )
            )
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        plan = self.plan
        lanes = plan.lanes
        pops = plan.populations
        lifs = plan.lif_populations
        projs = plan.projections
        latency = self.stages
        synaptic = plan.synaptic

        for l in range(lanes):
            m.submodules[f"core{l}"] = self.cores[l]
            if not self.runtime_weights:
                m.submodules[f"weights{l}"] = self.weight_mem[l]
            m.submodules[f"acc{l}"] = self.acc_mem[l]
            m.submodules[f"state{l}"] = self.state_mem[l]
            m.submodules[f"bias{l}"] = self.bias_mem[l]
        m.submodules.params = self.param_mem
        if self.runtime_weights:
            m.submodules.weights = store = self.weight_store

        if not self.runtime_weights:
            w_rd = [mem.read_port() for mem in self.weight_mem]
        acc_wr = [mem.write_port() for mem in self.acc_mem]
        acc_rd = [mem.read_port() for mem in self.acc_mem]
        st_rd = [mem.read_port() for mem in self.state_mem]
        st_wr = [mem.write_port() for mem in self.state_mem]
        b_rd = [mem.read_port() for mem in self.bias_mem]
        p_rd = self.param_mem.read_port()
        # Written only by the cfg port; the state and accumulator memories share the port of
        # the datapath, which is idle while cfg writes are accepted.
        if not self.runtime_weights:
            w_wr = [mem.write_port() for mem in self.weight_mem]
        b_wr = [mem.write_port() for mem in self.bias_mem]
        p_wr = self.param_mem.write_port()

        # --- Timestep bookkeeping --------------------------------------------------------------
        parity = Signal()  # accumulator bank of the current step
        k = Signal(range(max(len(lifs), 2)))  # LIF population being updated / delivered
        cycle_count = Signal(32)
        with m.If(self.busy):
            m.d.sync += cycle_count.eq(cycle_count + 1)

        cur_bank_base = Mux(parity, plan.slots, 0)

        # --- Event source: input stream (INPUT phase) or the spike words of population k --------
        ev_valid = Signal()
        ev_src = Signal(range(max(len(pops), 2)))
        ev_j = Signal(self.index_width)
        ev_out = Signal()  # a LIF spike, to be reported on spike_out
        ev_ready = Signal()

        in_phase = Signal()
        deliver_phase = Signal()
        input_ended = Signal()

        payload = self.spike_in.payload
        with m.If(in_phase & ~input_ended & self.spike_in.valid):
            with m.If(payload.end):
                m.d.comb += self.spike_in.ready.eq(1)
                m.d.sync += input_ended.eq(1)
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
                        m.d.comb += [ev_src.eq(index), ev_j.eq(payload.index - pop.input_offset)]
                # An index past the input vector has no synapses: it is consumed and dropped.
                m.d.comb += [ev_valid.eq(matched), self.spike_in.ready.eq(ev_ready | ~matched)]

        # Spike words: (row within the population, lane mask) of each update cycle with a spike.
        spike_fifo = fifo.SyncFIFOBuffered(
            width=self.row_width + lanes, depth=max(p.rows for p in lifs) + 1
        )
        m.submodules.spike_fifo = spike_fifo
        word_valid = Signal()
        word_row = Signal(self.row_width)
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
        pop_index_of_k = _table(k, [pops.index(p) for p in lifs], range(max(len(pops), 2)))
        # A plain assignment, not one under the If below. The state registers drive ev_out
        # directly, and Icarus never runs the process of a conditional assignment whose inputs
        # keep their initial values: ev_out would stay x until the first DELIVER phase. The
        # same holds for the other outputs of the schedule's registers that feed no register.
        m.d.comb += ev_out.eq(deliver_phase & word_valid)
        with m.If(deliver_phase & word_valid):
            m.d.comb += [
                ev_valid.eq(1),
                ev_src.eq(pop_index_of_k),
                ev_j.eq(Cat(lowest, word_row) if lanes > 1 else word_row),
            ]
        # A word is read from the FIFO only into an empty word register (one bubble cycle per
        # spike word), so that the FIFO's read enable does not hang at the end of the ready
        # chain of the decode stage and the walker.
        with m.If(deliver_phase & ev_ready & word_valid):
            m.d.sync += [word_mask.eq(remaining), lowest.eq(lowest_of(remaining))]
            with m.If(remaining == 0):
                m.d.sync += word_valid.eq(0)
        # (Assigned outside the If for Icarus, like ev_out above.)
        m.d.comb += spike_fifo.r_en.eq(deliver_phase & ~word_valid)
        with m.If(~word_valid):
            m.d.sync += word_valid.eq(deliver_phase & spike_fifo.r_rdy)
            m.d.sync += [
                word_row.eq(spike_fifo.r_data[lanes:]),
                word_mask.eq(spike_fifo.r_data[:lanes]),
                lowest.eq(lowest_of(spike_fifo.r_data[:lanes])),
            ]

        # --- Decode: one registered stage computing each projection's row address ---------------
        d_valid = Signal()
        d_src = Signal.like(ev_src)
        d_j = Signal.like(ev_j)
        d_out = Signal()
        d_base = [
            Signal(bits_for(max(plan.weight_words - 1, 0)), name=f"d_base{n}")
            for n in range(len(projs))
        ]
        take = Signal()
        m.d.comb += ev_ready.eq(~d_valid | take)
        with m.If(ev_ready):
            m.d.sync += [d_valid.eq(ev_valid), d_src.eq(ev_src), d_j.eq(ev_j), d_out.eq(ev_out)]
            for n, proj in enumerate(projs):
                rows = pops[proj.target].rows
                m.d.sync += d_base[n].eq(proj.weight_base + mul_const(ev_j, rows))

        # --- Walker: one fan-out word per cycle, all lanes in step -------------------------------
        first_proj = {}
        for n, proj in enumerate(projs):
            first_proj.setdefault(proj.source, n)
        out_fifo = fifo.SyncFIFOBuffered(width=self.pop_width + self.index_width, depth=4)
        m.submodules.out_fifo = out_fifo
        m.d.comb += [
            self.spike_out.valid.eq(out_fifo.r_rdy),
            self.spike_out.payload.eq(out_fifo.r_data),
            out_fifo.r_en.eq(self.spike_out.ready),
        ]

        active = Signal()
        p_cur = Signal(range(max(len(projs), 2)))
        col = Signal(self.row_width)
        w_ptr = Signal(bits_for(max(plan.weight_words - 1, 0)))
        a_ptr = Signal(bits_for(2 * plan.slots - 1))
        bases = [Signal.like(b, name=f"w_base{n}") for n, b in enumerate(d_base)]

        if projs:
            proj_last_col = _table(p_cur, [pops[q.target].rows - 1 for q in projs], self.row_width)

        def acc_base(proj):
            # The target's slot base in the right bank; the bank flips for recurrent deliveries.
            bank = ~parity if proj.recurrent else parity
            return Mux(bank, plan.slots, 0) + pops[proj.target].slot_base

        # The walker knows a cycle ahead when it walks an event's last word: `last` is a
        # register, so that the ready chain back to the spike FIFO and the input stream starts
        # at flip-flops instead of behind the column compare.
        last = Signal()
        words_left = Signal(
            bits_for(
                max(
                    [
                        sum(pops[q.target].rows for q in plan.projections_from(src))
                        for src in first_proj
                    ]
                    + [1]
                )
            )
        )
        at_end = Signal()
        m.d.comb += at_end.eq(~active | last)
        m.d.comb += take.eq(at_end & d_valid & (out_fifo.w_rdy | ~d_out))
        out_word = Signal(self.spike_out.payload.shape())
        m.d.comb += [
            out_word.population.eq(d_src),
            out_word.index.eq(d_j),
            out_fifo.w_data.eq(out_word.as_value()),
        ]
        with m.If(take & d_out):
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
        with m.If(take):
            m.d.sync += [bases[n].eq(d_base[n]) for n in range(len(projs))]
            m.d.sync += [active.eq(0), col.eq(0)]
            with m.Switch(d_src):
                for src, n in first_proj.items():
                    words = sum(pops[q.target].rows for q in plan.projections_from(src))
                    with m.Case(src):
                        m.d.sync += [
                            active.eq(1),
                            p_cur.eq(n),
                            w_ptr.eq(d_base[n]),
                            a_ptr.eq(acc_base(projs[n])),
                            words_left.eq(words),
                            last.eq(words == 1),
                        ]

        # --- Update issue ----------------------------------------------------------------------
        upd_issue = Signal()
        upd_row = Signal(self.row_width)
        slot_base_k = _table(k, [p.slot_base for p in lifs], self.slot_width)
        rows_k = _table(k, [p.rows for p in lifs], self.row_width + 1)
        last_mask_k = _table(k, [(1 << (p.size - (p.rows - 1) * lanes)) - 1 for p in lifs], lanes)
        # The row's slot and accumulator address are counters beside upd_row rather than sums,
        # so the memory addresses come straight from flip-flops.
        upd_slot = Signal(self.slot_width)
        upd_acc_addr = Signal(bits_for(2 * plan.slots - 1))

        # Likewise "this is the population's last row" and "k is the last LIF population" are
        # flags kept beside their counters, not compares in front of the state register.
        row_is_last = Signal()
        k_is_last = Signal()

        def first_row():
            return [
                upd_row.eq(0),
                upd_slot.eq(slot_base_k),
                upd_acc_addr.eq(cur_bank_base + slot_base_k),
                row_is_last.eq(rows_k == 1),
            ]

        def next_row():
            return [
                upd_row.eq(upd_row + 1),
                upd_slot.eq(upd_slot + 1),
                upd_acc_addr.eq(upd_acc_addr + 1),
                row_is_last.eq(upd_row + 2 == rows_k),
            ]

        def first_population():
            return [k.eq(0), k_is_last.eq(len(lifs) == 1)]

        def next_population():
            return [k.eq(k + 1), k_is_last.eq(k + 2 == len(lifs))]

        # --- Memory addressing: the delivery walker or the update issue -------------------------
        m.d.comb += p_rd.addr.eq(k)
        issue_valid_d = Signal()
        acc_addr_d = Signal.like(a_ptr)
        upd_valid_d = Signal()
        upd_row_d = Signal.like(upd_row)
        upd_slot_d = Signal.like(upd_slot)
        upd_mask_d = Signal(lanes)
        for l in range(lanes):
            if not self.runtime_weights:
                m.d.comb += w_rd[l].addr.eq(w_ptr)
            m.d.comb += [
                acc_rd[l].addr.eq(Mux(upd_issue, upd_acc_addr, a_ptr)),
                st_rd[l].addr.eq(upd_slot),
                b_rd[l].addr.eq(upd_slot),
            ]
        m.d.sync += [
            issue_valid_d.eq(active),
            acc_addr_d.eq(Mux(upd_issue, upd_acc_addr, a_ptr)),
            upd_valid_d.eq(upd_issue),
            upd_row_d.eq(upd_row),
            upd_slot_d.eq(upd_slot),
            upd_mask_d.eq(Mux(row_is_last, last_mask_k, (1 << lanes) - 1)),
        ]
        # Every block RAM output goes straight into a register (the read stage "_q"): a block
        # RAM's clock-to-output time is most of a cycle at the target clocks, so it must not
        # be followed by an adder in the same cycle.
        issue_valid_q = Signal()
        upd_valid_q = Signal()
        acc_addr_q = Signal.like(acc_addr_d)
        upd_row_q = Signal.like(upd_row)
        upd_slot_q = Signal.like(upd_slot)
        upd_mask_q = Signal(lanes)
        m.d.sync += [
            issue_valid_q.eq(issue_valid_d),
            upd_valid_q.eq(upd_valid_d),
            acc_addr_q.eq(acc_addr_d),
            upd_row_q.eq(upd_row_d),
            upd_slot_q.eq(upd_slot_d),
            upd_mask_q.eq(upd_mask_d),
        ]
        # The state reset clears the accumulators through the write port of the datapath.
        reset_acc = Signal()
        reset_addr = Signal.like(a_ptr)
        # "reset_addr is the last accumulator word", a flag kept beside the counter like
        # row_is_last, not a compare in front of the state register.
        reset_addr_last = Signal()
        # Synaptic read-modify-write over three cycles: read, register, add and write. The two
        # writes still in flight when a word is read are forwarded from their registers (the
        # newer first), so back-to-back additions to one word see each other without a stall.
        wrote1 = Signal()
        wrote2 = Signal()
        addr1 = Signal.like(acc_addr_d)
        addr2 = Signal.like(acc_addr_d)
        hit1 = Signal()
        hit2 = Signal()
        m.d.sync += [
            wrote1.eq(issue_valid_q | upd_valid_q),
            addr1.eq(acc_addr_q),
            wrote2.eq(wrote1),
            addr2.eq(addr1),
            hit1.eq((issue_valid_q | upd_valid_q) & (acc_addr_d == acc_addr_q)),
            hit2.eq(wrote1 & (acc_addr_d == addr1)),
        ]
        acc_q, w_q, v_q, r_q, bias_q, i_q = [], [], [], [], [], []
        for l in range(lanes):
            acc_q.append(Signal(signed(plan.acc_width), name=f"acc_q{l}"))
            w_q.append(Signal(signed(plan.w_width), name=f"w_q{l}"))
            v_q.append(Signal(signed(plan.v_width), name=f"v_q{l}"))
            r_q.append(Signal(self.t_ref_width, name=f"r_q{l}"))
            bias_q.append(Signal(signed(plan.v_width), name=f"bias_q{l}"))
            if self.runtime_weights:
                w_word = store.rd_data[l * plan.w_width : (l + 1) * plan.w_width]
            else:
                w_word = w_rd[l].data
            m.d.sync += [
                acc_q[l].eq(acc_rd[l].data),
                w_q[l].eq(w_word),
                v_q[l].eq(st_rd[l].data.v),
                r_q[l].eq(st_rd[l].data.r),
                bias_q[l].eq(b_rd[l].data),
            ]
            if synaptic:
                i_q.append(Signal(signed(plan.v_width), name=f"i_q{l}"))
                m.d.sync += i_q[l].eq(st_rd[l].data.i)
            sum1 = Signal(signed(plan.acc_width), name=f"acc_sum1_{l}")
            sum2 = Signal(signed(plan.acc_width), name=f"acc_sum2_{l}")
            operand = Mux(hit1, sum1, Mux(hit2, sum2, acc_q[l]))
            # A synaptic add (exact: acc_width covers every partial sum), or the clear that the
            # update of a neuron leaves behind.
            written = Signal(signed(plan.acc_width), name=f"acc_written{l}")
            # Or the clear of the state reset (one plain assignment each, for Icarus, see
            # ev_out).
            m.d.comb += [
                written.eq(Mux(upd_valid_q, 0, operand + w_q[l])),
                acc_wr[l].addr.eq(Mux(reset_acc, reset_addr, acc_addr_q)),
                acc_wr[l].data.eq(Mux(reset_acc, 0, written)),
                acc_wr[l].en.eq(reset_acc | issue_valid_q | upd_valid_q),
            ]
            m.d.sync += [sum1.eq(written), sum2.eq(sum1)]

        # --- Lanes: the neuron cores -------------------------------------------------------------
        # No synaptic write is in flight during an update phase (the schedule drains the
        # deliveries first), so the cores take the registered read data as it is.
        for l, core in enumerate(self.cores):
            m.d.comb += [
                core.in_valid.eq(upd_valid_q & upd_mask_q[l]),
                core.v.eq(v_q[l]),
                core.r.eq(r_q[l]),
                core.acc.eq(acc_q[l]),
                core.params.eq(p_rd.data),
                core.params.bias.eq(bias_q[l]),
            ]
            if synaptic:
                m.d.comb += core.i.eq(i_q[l])
        # Slot, row and lane mask travel beside the cores' pipelines.
        out_slot, out_row, out_mask, out_valid = upd_slot_q, upd_row_q, upd_mask_q, upd_valid_q
        for n in range(latency):
            nxt = [
                Signal.like(out_slot, name=f"pipe{n}_slot"),
                Signal.like(out_row, name=f"pipe{n}_row"),
                Signal.like(out_mask, name=f"pipe{n}_mask"),
                Signal(name=f"pipe{n}_valid"),
            ]
            m.d.sync += [
                nxt[0].eq(out_slot),
                nxt[1].eq(out_row),
                nxt[2].eq(out_mask),
                nxt[3].eq(out_valid),
            ]
            out_slot, out_row, out_mask, out_valid = nxt
        spikes = Signal(lanes)
        m.d.comb += spikes.eq(Cat(core.spike for core in self.cores) & out_mask)
        # Every memory write except the accumulator's read-modify-write is registered (the write
        # ports are driven from flip-flops): their enables and data come from several sources
        # (the cores, runtime loading, state reset), whose multiplexers would otherwise sit in
        # front of the memories' write setup. A write lands one cycle late, which no reader
        # notices: the state of a slot is read again only in the next timestep, and a ``cfg``
        # write taken in the cycle of ``start`` lands before the step's first read.
        for l, core in enumerate(self.cores):
            m.d.sync += [
                st_wr[l].addr.eq(out_slot),
                st_wr[l].data.v.eq(core.v_next),
                st_wr[l].data.r.eq(core.r_next),
                st_wr[l].en.eq(core.out_valid),
            ]
            if synaptic:
                m.d.sync += st_wr[l].data.i.eq(core.i_next)
        with m.If(out_valid & (spikes != 0)):
            m.d.comb += [spike_fifo.w_en.eq(1), spike_fifo.w_data.eq(Cat(spikes, out_row))]

        trace_room = Const(1)
        if self.trace:
            depth = latency + 5
            trace_fifo = fifo.SyncFIFOBuffered(
                width=len(self.trace_out.payload.as_value()), depth=depth
            )
            m.submodules.trace_fifo = trace_fifo
            trace_word = Signal(self.trace_out.payload.shape())
            m.d.comb += [
                trace_word.population.eq(pop_index_of_k),
                trace_word.slot.eq(out_row),
                trace_word.mask.eq(out_mask),
            ]
            for l, core in enumerate(self.cores):
                m.d.comb += trace_word.v[l].eq(core.v_trace)
            m.d.comb += [
                trace_fifo.w_en.eq(out_valid),
                trace_fifo.w_data.eq(trace_word.as_value()),
                self.trace_out.valid.eq(trace_fifo.r_rdy),
                self.trace_out.payload.eq(trace_fifo.r_data),
                trace_fifo.r_en.eq(self.trace_out.ready),
            ]
            # Issue only while every update in flight still finds room in the trace FIFO.
            trace_room = trace_fifo.level <= depth - (latency + 4)

        # --- Runtime loading and state reset (idle only) -----------------------------------------
        reset_state_row = Signal()
        # An accepted cfg item is registered before it is decoded into write enables, so the
        # path from the state register (ready) to the memories' write ports has a register in
        # it; the write lands two cycles after acceptance, before any read of a step started in
        # the same cycle can reach the memory (the first weight read comes three cycles later).
        cfg = Signal.like(self.cfg.payload)
        cfg_write = Signal()
        m.d.sync += [cfg.eq(self.cfg.payload), cfg_write.eq(self.cfg.valid & self.cfg.ready)]
        m.d.sync += [
            p_wr.addr.eq(cfg.addr),
            p_wr.data.eq(cfg.data),
            p_wr.en.eq(cfg_write & (cfg.mem == CfgMemory.PARAMS)),
        ]
        if self.runtime_weights:
            # A weight item is a burst: `weight_burst` consecutive words of one lane, written
            # one a cycle (those past the end are dropped), so that loading takes a fraction
            # of the frames. The store's one port takes the address from the walker, which is
            # idle then: neither a cfg item nor `start` is taken until the burst has landed.
            w = plan.w_width
            burst = self.weight_burst
            b_addr = Signal(bits_for(plan.weight_words + burst))
            b_data = Signal(burst * w)
            b_left = Signal(range(burst + 1))
            b_lane = Signal(lanes)
            with m.If(cfg_write & (cfg.mem == CfgMemory.WEIGHTS)):
                # A lane past the last one is no lane: 1 << lane is cut to `lanes` bits.
                m.d.sync += [
                    b_addr.eq(cfg.addr),
                    b_data.eq(cfg.data),
                    b_left.eq(burst),
                    b_lane.eq(1 << cfg.lane),
                ]
            with m.Elif(b_left != 0):
                m.d.sync += [b_addr.eq(b_addr + 1), b_data.eq(b_data >> w), b_left.eq(b_left - 1)]
            # Registered, so that the store's address and enables come from flip-flops.
            st_addr = Signal.like(store.addr)
            st_data = Signal(w)
            st_en = Signal(lanes)
            m.d.sync += [
                st_addr.eq(b_addr),
                st_data.eq(b_data[:w]),
                st_en.eq(Mux((b_left != 0) & (b_addr < plan.weight_words), b_lane, 0)),
            ]
            m.d.comb += [
                store.addr.eq(Mux(st_en.any(), st_addr, w_ptr)),
                store.wr_data.eq(st_data.replicate(lanes)),
                store.wr_en.eq(st_en),
            ]
            weights_busy = Signal()
            start_pending = Signal()
            m.d.comb += weights_busy.eq(cfg_write | (b_left != 0) | st_en.any())
            cfg_ready = ~weights_busy
            # A start that meets a burst (or a weight item taken in the same cycle) waits.
            take_start = (self.start | start_pending) & ~weights_busy & ~self.cfg.valid
        else:
            take_start = self.start
        for l in range(lanes):
            lane_write = cfg_write & (cfg.lane == l)
            if not self.runtime_weights:
                m.d.sync += [
                    w_wr[l].addr.eq(cfg.addr),
                    w_wr[l].data.eq(cfg.data),
                    w_wr[l].en.eq(lane_write & (cfg.mem == CfgMemory.WEIGHTS)),
                ]
            m.d.sync += [
                b_wr[l].addr.eq(cfg.addr),
                b_wr[l].data.eq(cfg.data),
                b_wr[l].en.eq(lane_write & (cfg.mem == CfgMemory.BIAS)),
            ]
            with m.If(lane_write & (cfg.mem == CfgMemory.STATE)):
                m.d.sync += [
                    st_wr[l].addr.eq(cfg.addr),
                    st_wr[l].data.eq(cfg.data),
                    st_wr[l].en.eq(1),
                ]
            with m.If(reset_state_row):
                m.d.sync += [
                    st_wr[l].addr.eq(upd_slot),
                    st_wr[l].data.v.eq(p_rd.data.v_rest),
                    st_wr[l].data.r.eq(0),
                    st_wr[l].en.eq(1),
                ]
                if synaptic:
                    m.d.sync += st_wr[l].data.i.eq(0)

        # --- The schedule ------------------------------------------------------------------------
        drain = Signal(range(latency + 3))
        # No event source is tested here: the input stream offers none once input_ended is set
        # (the only time INPUT looks at this), and the spike words are word_valid itself, which
        # `delivered` tests. Leaving ev_valid out keeps the stream's decode out of the state
        # registers' input.
        delivery_idle = Signal()
        m.d.comb += delivery_idle.eq(~d_valid & ~active & ~issue_valid_d & ~issue_valid_q)

        # The end conditions of the deliver and finish phases are registered (one cycle later,
        # once per population and step): a FIFO's level is a sum, too slow to feed the state
        # register directly. Both stay true once true, as nothing refills the FIFOs then.
        delivered = Signal()
        sent = Signal()
        finishing = Signal()
        out_empty = out_fifo.level == 0
        if self.trace:
            out_empty = out_empty & (trace_fifo.level == 0)
        m.d.sync += [
            delivered.eq(deliver_phase & (spike_fifo.level == 0) & ~word_valid & delivery_idle),
            sent.eq(finishing & out_empty & ~sent),
        ]

        # The state machine is one-hot, one register per state: each register's next value
        # then depends on its own few transitions only. An encoded state register puts every
        # transition of every state in front of each of its bits, and its decoders in front of
        # everything the state drives; on the GW1NR-9 that was the longest path of the array.
        state = {
            name: Signal(init=int(name == "IDLE"), name=f"state_{name}") for name in SCHEDULE_STATES
        }

        def goto(here, there):
            return [state[here].eq(0), state[there].eq(1)]

        m.d.comb += [
            self.busy.eq(~state["IDLE"]),
            self.cfg.ready.eq(state["IDLE"] & cfg_ready if self.runtime_weights else state["IDLE"]),
            reset_acc.eq(state["RESET_ACC"]),
            reset_state_row.eq(state["RESET_STATE"]),
            in_phase.eq(state["INPUT"]),
            deliver_phase.eq(state["DELIVER"]),
            finishing.eq(state["FINISH"]),
            upd_issue.eq(state["UPDATE"] & trace_room),
        ]
        with m.If(state["IDLE"]):
            with m.If(self.reset_state):
                m.d.sync += [
                    *first_population(),
                    reset_addr.eq(0),
                    reset_addr_last.eq(0),
                    *goto("IDLE", "RESET_ACC"),
                ]
            with m.Elif(take_start):
                m.d.sync += [
                    cycle_count.eq(1),
                    input_ended.eq(0),
                    *first_population(),
                    *goto("IDLE", "INPUT"),
                ]
                if self.runtime_weights:
                    m.d.sync += start_pending.eq(0)
            if self.runtime_weights:
                with m.Elif(self.start):
                    m.d.sync += start_pending.eq(1)
        with m.If(state["RESET_ACC"]):
            m.d.sync += [
                reset_addr.eq(reset_addr + 1),
                reset_addr_last.eq(reset_addr + 2 == 2 * plan.slots),
            ]
            with m.If(reset_addr_last):
                m.d.sync += goto("RESET_ACC", "RESET_PARAMS")
        with m.If(state["RESET_PARAMS"]):
            m.d.sync += [*first_row(), *goto("RESET_PARAMS", "RESET_STATE")]
        with m.If(state["RESET_STATE"]):
            # One row of population k per cycle, to its v_rest from the parameter memory.
            m.d.sync += next_row()
            with m.If(row_is_last):
                with m.If(k_is_last):
                    m.d.sync += [parity.eq(0), self.timestep.eq(0), *goto("RESET_STATE", "IDLE")]
                with m.Else():
                    m.d.sync += [*next_population(), *goto("RESET_STATE", "RESET_PARAMS")]
        with m.If(state["INPUT"]):
            with m.If(input_ended & delivery_idle):
                m.d.sync += goto("INPUT", "PARAMS")
        with m.If(state["PARAMS"]):
            # The parameter memory read of population k lands this cycle.
            m.d.sync += [*first_row(), *goto("PARAMS", "UPDATE")]
        with m.If(upd_issue):
            m.d.sync += next_row()
            with m.If(row_is_last):
                # The last core output and its spike word land latency + 2 cycles on.
                m.d.sync += [drain.eq(latency + 2), *goto("UPDATE", "UPDATE_DRAIN")]
        with m.If(state["UPDATE_DRAIN"]):
            m.d.sync += drain.eq(drain - 1)
            with m.If(drain == 0):
                m.d.sync += goto("UPDATE_DRAIN", "DELIVER")
        with m.If(state["DELIVER"]):
            with m.If(delivered):
                with m.If(k_is_last):
                    m.d.sync += goto("DELIVER", "FINISH")
                with m.Else():
                    m.d.sync += [*next_population(), *goto("DELIVER", "PARAMS")]
        # Every spike of the step has left before done, so a host can stop reading at done.
        m.d.comb += self.done.eq(state["FINISH"] & sent)
        with m.If(self.done):
            m.d.sync += [
                self.cycles.eq(cycle_count),
                self.timestep.eq(self.timestep + 1),
                parity.eq(~parity),
                *goto("FINISH", "IDLE"),
            ]
        return m
