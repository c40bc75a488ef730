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
word see each other without a stall, one per cycle per lane. Feed-forward deliveries add into
the bank of the current step, recurrent ones into the other bank, which the next step reads; a
network without recurrent projections has one bank (``ArrayPlan.acc_banks``).

:meth:`NeuronArray.elaborate` builds the units one after another: the memories and the update
datapath here, the event source, decode stage and walker in :mod:`.array_deliver`, runtime
loading and the schedule in :mod:`.array_control`; the port payloads are in :mod:`.array_ports`,
memories deeper than one block RAM are banked by :mod:`.array_banks`.
"""

from types import SimpleNamespace

from amaranth.hdl import Cat, Const, Module, Mux, Shape, Signal, signed
from amaranth.lib import fifo, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from ..spec.limits import STAGES_RANGE, check_int, check_lanes
from ._validate import validating
from .arith import bits_for
from .array_banks import BankedMemory, bank_depth, platform_family
from .array_control import SCHEDULE_STATES, cfg_loader, schedule
from .array_deliver import acc_bank_base, decode, event_source, mux_table, walker
from .array_ports import (
    CfgLayout,
    CfgMemory,
    SpikeInLayout,
    SpikeOutLayout,
    TraceLayout,
    neuron_words,
    plan_word_layout,
    state_layout,
)
from .array_weights import ExternalWeights
from .neuron import NeuronCore, pack_params, params_layout
from .spram import WeightStore

__all__ = ["NeuronArray", "state_layout", "CfgMemory", "SCHEDULE_STATES", "acc_bank_base"]


class _Shared:
    """The signals that the units of one elaboration share, set by the unit that creates each.

    The row and population counters of the update issue are stepped by the schedule, with the
    statements that the methods return.
    """

    def first_row(self):
        """Point the update issue at the first row of population ``k``."""
        return [
            self.upd_row.eq(0),
            self.upd_slot.eq(self.slot_base_k),
            self.upd_acc_addr.eq(self.cur_bank_base + self.slot_base_k),
            self.row_is_last.eq(self.rows_k == 1),
        ]

    def next_row(self):
        """Step the update issue to the next row."""
        return [
            self.upd_row.eq(self.upd_row + 1),
            self.upd_slot.eq(self.upd_slot + 1),
            self.upd_acc_addr.eq(self.upd_acc_addr + 1),
            self.row_is_last.eq(self.upd_row + 2 == self.rows_k),
        ]

    def first_population(self):
        """Make ``k`` the first LIF population."""
        return [self.k.eq(0), self.k_is_last.eq(self.lif_count == 1)]

    def next_population(self):
        """Step ``k`` to the next LIF population."""
        return [self.k.eq(self.k + 1), self.k_is_last.eq(self.k + 2 == self.lif_count)]


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
    external_weights : str, optional
        Keep each lane's weights in an instance of the Verilog module ``<external_weights><lane>``
        (:mod:`.array_weights`) instead of a ``Memory``: for Verilog of networks too big for
        Amaranth to carry the contents; ``spikeforge.gen.output`` writes the modules.
        ``plan.weights`` is then not used here, and the array cannot be simulated by Amaranth.
    bank_depth : int, optional
        Words per bank (a power of two) of every weight, state and bias memory deeper than that
        (:class:`.array_banks.BankedMemory`: one more cycle of read latency, which the pipeline
        absorbs for the weights; banked state or bias add a cycle per LIF population and step).
        By default the block depth of the platform's family for each memory's width
        (:func:`.array_banks.bank_depth`, :meth:`memory_banks`); nothing is banked without a
        platform of a known family (the simulators, Verilog generation). Weights in SPRAM or
        external modules are not banked.

    Attributes
    ----------
    spike_in : In(stream.Signature(SpikeInLayout))
        Input events of the current step by index into the input vector; ``end`` closes the step.
    spike_out : Out(stream.Signature(SpikeOutLayout))
        Spikes of LIF populations, ``population`` being the index in the network's population list.
    trace_out : Out(stream.Signature(TraceLayout))
        Only with ``trace``: per update cycle, ``v[l]`` is the trace of neuron
        ``slot * lanes + l`` where ``mask`` bit ``l`` is set.
    cfg : In(stream.Signature(CfgLayout))
        Runtime loading while idle: writes ``data`` to word ``addr`` of memory ``mem`` (one of
        :class:`CfgMemory`) of lane ``lane`` (parameters are shared by all lanes). Layouts as in
        ``spikeforge.hdl.plan``; without a bias memory (``plan.bias_memory`` false) a bias item
        writes nothing, the parameter rows carry the biases.
        With ``runtime_weights`` a weight item writes :attr:`weight_burst` words, ``addr``
        onwards, weight ``n`` in data bits ``[n * w_width, (n + 1) * w_width)``, one a cycle
        (``cfg.ready`` is low meanwhile, and a ``start`` waits for the last one). With
        per-neuron parameters a bias item writes the whole word of
        :func:`.array_ports.neuron_word_layout`, and ``cfg.ready`` stays low for a few cycles
        after a state reset.
    reset_state : In(1)
        While idle, a pulse restarts the network: every membrane to its ``v_rest`` (its own
        with per-neuron parameters, else its population's), refractory counters, synaptic
        currents, pending resets and the accumulator banks to 0,
        ``timestep`` to 0.
    start : In(1)
        Starts a timestep when ``busy`` is low.
    busy, done : Out(1)
        ``done`` pulses for one cycle at the end of a step.
    cycles : Out(32)
        Cycles from ``start`` to ``done`` of the last step.
    timestep : Out(32)
        Steps completed since reset.
    """

    def __init__(
        self,
        plan,
        *,
        stages=4,
        trace=False,
        runtime_weights=False,
        external_weights=None,
        bank_depth=None,
    ):
        with validating(self):
            if not isinstance(runtime_weights, bool):
                raise TypeError(f"runtime_weights must be True or False, not {runtime_weights!r}")
            if external_weights is not None and not (
                isinstance(external_weights, str)
                and external_weights.isascii()
                and external_weights.isidentifier()
            ):
                raise TypeError(
                    f"external_weights must be a Verilog identifier or None, "
                    f"not {external_weights!r}"
                )
            if runtime_weights and external_weights is not None:
                raise ValueError("runtime_weights and external_weights exclude each other")
            check_lanes(plan.lanes)
            check_int("stages", stages, *STAGES_RANGE)
            if bank_depth is not None:
                check_int("bank_depth", bank_depth, 2, 1 << 24)
                if bank_depth & (bank_depth - 1):
                    raise ValueError(f"bank_depth must be a power of two, not {bank_depth}")
            if not plan.lif_populations:
                raise ValueError("the network has no LIF population to run")
        self.plan = plan
        self.stages = stages
        self.trace = trace
        self.runtime_weights = runtime_weights
        self.external_weights = external_weights
        self.bank_depth = bank_depth
        lanes = plan.lanes
        self.t_ref_width = bits_for(plan.t_ref_max)
        self.slot_width = bits_for(plan.slots - 1)
        self.pop_width = bits_for(len(plan.populations) - 1)
        self.index_width = bits_for(plan.max_size - 1)
        self.row_width = bits_for(max(p.rows for p in plan.lif_populations) - 1)

        # Only an array with a current-based population has the synaptic current (its decays
        # built in like the membrane's); a plain LIF network keeps the cores and memories it had
        # without it.
        synaptic = dict(synaptic=plan.synaptic, syn_decay_sets=plan.core_syn_decay_sets)
        # Likewise reset_timing "next" and threshold_compare ">=" (docs/neuron.md).
        synaptic.update(delayed_reset=plan.delayed_reset, at_threshold=plan.at_threshold)
        self.cores = [
            NeuronCore(
                v_width=plan.v_width,
                acc_width=plan.acc_width,
                t_ref_max=plan.t_ref_max,
                stages=stages,
                decay_sets=plan.core_decay_sets,
                **synaptic,
            )
            for _ in range(lanes)
        ]
        self.param_layout = params_layout(
            plan.v_width, self.t_ref_width, plan.core_decay_sets, **synaptic
        )
        self.state_layout = state_layout(
            plan.v_width, self.t_ref_width, plan.synaptic, plan.delayed_reset
        )
        # With per-neuron parameters each bias word carries them beside the bias
        # (docs/array.md); otherwise it is the bias alone, as before. Without a bias memory
        # (every population's biases one value) there are no bias words.
        self.bias_shape = None
        if plan.per_neuron:
            self.bias_shape = plan_word_layout(plan)
        elif plan.bias_memory:
            self.bias_shape = signed(plan.v_width)
        # The weight, state and bias memories are made at elaboration, banked or not by the
        # platform (memory_banks): the attributes hold those of the last elaboration.
        self.weight_mem = self.weight_ports = self.state_mem = self.bias_mem = None
        if runtime_weights:
            self.weight_store = WeightStore(plan.weight_words, lanes, plan.w_width)
        elif external_weights is not None:
            self.weight_ports = [
                ExternalWeights(f"{external_weights}{l}", plan.weight_words, plan.w_width)
                for l in range(lanes)
            ]
        self.acc_mem = [
            memory.Memory(shape=signed(plan.acc_width), depth=plan.acc_banks * plan.slots, init=[])
            for _ in range(lanes)
        ]
        # With a bias memory the array reads each neuron's bias from it and the population row
        # carries 0; without one the row carries the population's bias.
        param_rows = []
        for pop in plan.lif_populations:
            row = pack_params(pop.params, plan.core_decay_sets, **synaptic)
            row["bias"] = 0 if plan.bias_memory else plan.population_bias(pop)
            param_rows.append(row)
        # The parameter rows are few and wide (over 100 bits): as block RAM they would take
        # seven iCE40 EBRs for two rows, so they are kept in logic. One row (one LIF
        # population) is a register (`param_mem` None, `param_row` its contents): a memory
        # needs at least two words (a one-word memory would have a zero-width address, which
        # Verilator rejects), and the unused one, the read register and the write port's
        # registers were about 250 flip-flops of the 2,048-neuron iCE40 board top.
        self.param_row = param_rows[0] if len(param_rows) == 1 else None
        self.param_mem = None
        if self.param_row is None:
            self.param_mem = memory.Memory(
                shape=self.param_layout,
                depth=len(param_rows),
                init=param_rows,
                attrs={"ram_style": "logic"},
            )

        self.cfg_addr_width = bits_for(max(plan.weight_words, plan.slots, len(param_rows)) - 1)
        self.cfg_data_width = max(
            plan.w_width,
            Shape.cast(self.bias_shape).width if plan.bias_memory else 0,
            self.state_layout.size,
            self.param_layout.size,
        )
        # Weights per cfg weight item: as many as the data field holds with runtime weights.
        self.weight_burst = self.cfg_data_width // plan.w_width if runtime_weights else 1
        members = {
            "spike_in": In(stream.Signature(SpikeInLayout(bits_for(max(plan.n_inputs - 1, 0))))),
            "spike_out": Out(stream.Signature(SpikeOutLayout(self.pop_width, self.index_width))),
            "cfg": In(stream.Signature(CfgLayout(self.cfg_addr_width, self.cfg_data_width))),
            "reset_state": In(1),
            "start": In(1),
            "busy": Out(1),
            "done": Out(1),
            "cycles": Out(32),
            "timestep": Out(32),
        }
        if trace:
            members["trace_out"] = Out(
                stream.Signature(TraceLayout(self.pop_width, self.row_width, lanes, plan.v_width))
            )
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        s = _Shared()
        self._memories(m, s, platform)
        self._step_counters(m, s)
        event_source(m, self, s)
        decode(m, self, s)
        walker(m, self, s)
        self._update_issue(s)
        self._read_modify_write(m, s)
        self._lanes(m, s)
        self._trace(m, s)
        cfg_loader(m, self, s)
        schedule(m, self, s)
        return m

    def memory_banks(self, platform):
        """Words per bank of the weight, state and bias memories when elaborated for
        ``platform``: a dict by ``"weights"``, ``"state"`` and ``"bias"``, ``None`` for a memory
        that is not banked (no deeper than one bank, no known family, weights not in block
        RAM, or no bias memory)."""
        plan = self.plan
        family = platform_family(platform)
        memories = {
            "weights": (plan.weight_words, plan.w_width),
            "state": (plan.slots, self.state_layout.size),
        }
        if plan.bias_memory:
            memories["bias"] = (plan.slots, Shape.cast(self.bias_shape).width)
        banks = {}
        for name, (depth, width) in memories.items():
            words = self.bank_depth
            if words is None and family is not None:
                words = bank_depth(family, width)
            banks[name] = words if words is not None and depth > words else None
        banks.setdefault("bias", None)  # no bias memory: nothing to bank
        if self.runtime_weights or self.external_weights is not None:
            banks["weights"] = None
        return banks

    def _make_memories(self, banks):
        """The weight (in block RAM), state and bias memory (if the plan has one) of every lane:
        a ``Memory`` each, or a :class:`.array_banks.BankedMemory` where ``banks`` gives its
        words per bank."""
        plan = self.plan

        def make(shape, depth, init, words, one_port=False):
            if words is None:
                return memory.Memory(shape=shape, depth=depth, init=init)
            return BankedMemory(shape, depth, words, init, one_port)

        lanes = range(plan.lanes)
        if not self.runtime_weights and self.external_weights is None:
            self.weight_mem = [
                make(
                    signed(plan.w_width),
                    plan.weight_words,
                    [int(x) for x in plan.weights[l]],
                    banks["weights"],
                    # Written only while the walker is idle (cfg_loader).
                    one_port=True,
                )
                for l in lanes
            ]
        self.state_mem = [
            make(
                self.state_layout,
                plan.slots,
                [{"v": int(v), "r": 0} for v in plan.v_init[l]],
                banks["state"],
            )
            for l in lanes
        ]
        if not plan.bias_memory:
            self.bias_mem = []
            return
        if plan.per_neuron:
            bias_init = [neuron_words(plan, l) for l in lanes]
        else:
            bias_init = [[int(b) for b in plan.bias[l]] for l in lanes]
        self.bias_mem = [
            make(self.bias_shape, plan.slots, bias_init[l], banks["bias"]) for l in lanes
        ]

    def _memories(self, m, s, platform):
        """The cores and memories of the lanes as submodules, and the memories' ports."""
        lanes = self.plan.lanes
        banks = self.memory_banks(platform)
        self._make_memories(banks)
        # A banked memory reads in two cycles: the walker's weights, or the update's state or
        # bias (the other reads of the same word wait a cycle in registers, see _walk_issue).
        s.w_banked = banks["weights"] is not None
        s.upd_banked = banks["state"] is not None or banks["bias"] is not None
        s.st_banked = banks["state"] is not None
        s.b_banked = banks["bias"] is not None
        for l in range(lanes):
            m.submodules[f"core{l}"] = self.cores[l]
            if self.weight_mem is not None:
                m.submodules[f"weights{l}"] = self.weight_mem[l]
            elif self.weight_ports is not None:
                m.submodules[f"weights{l}"] = self.weight_ports[l].instance()
            m.submodules[f"acc{l}"] = self.acc_mem[l]
            m.submodules[f"state{l}"] = self.state_mem[l]
            if self.bias_mem:
                m.submodules[f"bias{l}"] = self.bias_mem[l]
        if self.param_mem is not None:
            m.submodules.params = self.param_mem
        if self.runtime_weights:
            m.submodules.weights = s.store = self.weight_store

        if self.weight_mem is not None:
            s.w_rd = [mem.read_port() for mem in self.weight_mem]
        elif self.weight_ports is not None:
            s.w_rd = [ports.read for ports in self.weight_ports]
        s.acc_wr = [mem.write_port() for mem in self.acc_mem]
        s.acc_rd = [mem.read_port() for mem in self.acc_mem]
        s.st_rd = [mem.read_port() for mem in self.state_mem]
        s.st_wr = [mem.write_port() for mem in self.state_mem]
        s.b_rd = [mem.read_port() for mem in self.bias_mem]
        # `s.params`: the parameter row of population `k` (with a memory, read a cycle after
        # `k` is set; the schedule waits for it in PARAMS and RESET_PARAMS).
        if self.param_mem is not None:
            s.p_rd = self.param_mem.read_port()
            s.params = s.p_rd.data
        else:
            s.params = Signal(self.param_layout, init=self.param_row, name="params")
        # Written only by the cfg port; the state and accumulator memories share the port of
        # the datapath, which is idle while cfg writes are accepted.
        if self.weight_mem is not None:
            s.w_wr = [mem.write_port() for mem in self.weight_mem]
        elif self.weight_ports is not None:
            s.w_wr = [ports.write for ports in self.weight_ports]
        s.b_wr = [mem.write_port() for mem in self.bias_mem]
        s.p_wr = None
        if self.param_mem is not None:
            s.p_wr = self.param_mem.write_port()

    def _step_counters(self, m, s):
        """The accumulator bank of the step, the LIF population ``k`` and the cycle count."""
        s.lif_count = len(self.plan.lif_populations)
        s.parity = Signal()  # accumulator bank of the current step
        s.k = Signal(range(max(s.lif_count, 2)))  # LIF population being updated / delivered
        s.cycle_count = Signal(32)
        with m.If(self.busy):
            m.d.sync += s.cycle_count.eq(s.cycle_count + 1)
        s.cur_bank_base = acc_bank_base(self.plan, s.parity)

    def _update_issue(self, s):
        """The row counters of the update phase: row, slot and accumulator address of the row of
        population ``k`` that enters the lanes next (stepped by :meth:`_Shared.next_row`)."""
        plan = self.plan
        lanes = plan.lanes
        lifs = plan.lif_populations
        s.upd_issue = Signal()
        s.upd_row = Signal(self.row_width)
        s.slot_base_k = mux_table(s.k, [p.slot_base for p in lifs], self.slot_width)
        s.rows_k = mux_table(s.k, [p.rows for p in lifs], self.row_width + 1)
        s.last_mask_k = mux_table(
            s.k, [(1 << (p.size - (p.rows - 1) * lanes)) - 1 for p in lifs], lanes
        )
        # The row's slot and accumulator address are counters beside upd_row rather than sums,
        # so the memory addresses come straight from flip-flops. With one LIF population (slot
        # base 0) the slot is the row, and with one accumulator bank so is the accumulator
        # address: the row counter itself (and the registers that carry them beside the read
        # stage and the cores are the row's, which Yosys merges), on the 2,048-neuron iCE40
        # board top about 80 flip-flops fewer.
        acc_addr_width = bits_for(plan.acc_banks * plan.slots - 1)
        one_row_counter = (
            len(lifs) == 1 and lifs[0].slot_base == 0 and self.slot_width == self.row_width
        )
        s.upd_slot = s.upd_row if one_row_counter else Signal(self.slot_width)
        s.upd_acc_addr = Signal(acc_addr_width)
        if one_row_counter and plan.acc_banks == 1 and acc_addr_width == self.row_width:
            s.upd_acc_addr = s.upd_row

        # Likewise "this is the population's last row" and "k is the last LIF population" are
        # flags kept beside their counters, not compares in front of the state register.
        s.row_is_last = Signal()
        s.k_is_last = Signal()

    def _read_modify_write(self, m, s):
        """The memory reads of the walker or the update issue, their read stage, and the
        synaptic read-modify-write of the accumulators, which also clears them on reset."""
        plan = self.plan
        lanes = plan.lanes
        if self.param_mem is not None:
            m.d.comb += s.p_rd.addr.eq(s.k)
        walk_valid, walk_addr = self._walk_issue(m, s)
        upd = self._upd_issue(m, s)
        s.issue_valid_d = issue_valid_d = Signal()
        acc_addr_d = Signal.like(s.a_ptr)
        upd_valid_d = Signal()
        upd_row_d = Signal.like(s.upd_row)
        upd_slot_d = Signal.like(s.upd_slot)
        upd_mask_d = Signal(lanes)
        for l in range(lanes):
            if not self.runtime_weights:
                m.d.comb += s.w_rd[l].addr.eq(s.w_ptr)
            m.d.comb += [
                s.acc_rd[l].addr.eq(Mux(upd.valid, upd.acc_addr, walk_addr)),
                s.st_rd[l].addr.eq(upd.state_addr),
            ]
            if s.b_rd:
                m.d.comb += s.b_rd[l].addr.eq(upd.bias_addr)
        # With convolutions a word may be for one lane only (walk_mask): the others add 0, so
        # that every lane's write and forwarding stay as they are.
        mask_d = None
        if plan.has_conv:
            mask_d = Signal(lanes)
            m.d.sync += mask_d.eq(s.walk_mask_issue)
        m.d.sync += [
            issue_valid_d.eq(walk_valid),
            acc_addr_d.eq(Mux(upd.valid, upd.acc_addr, walk_addr)),
            upd_valid_d.eq(upd.valid),
            upd_row_d.eq(upd.row),
            upd_slot_d.eq(upd.slot),
            upd_mask_d.eq(upd.mask),
        ]
        # Every block RAM output goes straight into a register (the read stage "_q"): a block
        # RAM's clock-to-output time is most of a cycle at the target clocks, so it must not
        # be followed by an adder in the same cycle.
        s.issue_valid_q = issue_valid_q = Signal()
        s.upd_valid_q = upd_valid_q = Signal()
        acc_addr_q = Signal.like(acc_addr_d)
        s.upd_row_q = Signal.like(s.upd_row)
        s.upd_slot_q = Signal.like(s.upd_slot)
        s.upd_mask_q = Signal(lanes)
        m.d.sync += [
            issue_valid_q.eq(issue_valid_d),
            upd_valid_q.eq(upd_valid_d),
            acc_addr_q.eq(acc_addr_d),
            s.upd_row_q.eq(upd_row_d),
            s.upd_slot_q.eq(upd_slot_d),
            s.upd_mask_q.eq(upd_mask_d),
        ]
        # The state reset clears the accumulators through the write port of the datapath.
        s.reset_acc = reset_acc = Signal()
        s.reset_addr = Signal.like(s.a_ptr)
        # "reset_addr is the last accumulator word", a flag kept beside the counter like
        # row_is_last, not a compare in front of the state register.
        s.reset_addr_last = Signal()
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
        # The walker's words still on their way to the accumulator write (the schedule ends a
        # phase once none is): the walker itself and the stages before the last. The last
        # stage's write lands in the cycle the phase ends, two cycles or more before the
        # update reads an accumulator.
        if s.w_banked:
            s.walk_in_flight = [s.active, walk_valid, issue_valid_d]
        else:
            s.walk_in_flight = [s.active, issue_valid_d, issue_valid_q]
        clear = Signal()
        m.d.comb += clear.eq(reset_acc | upd_valid_q)
        s.acc_q, w_q, s.v_q, s.r_q, s.bias_q, s.i_q = [], [], [], [], [], []
        s.pending_q = []
        for l in range(lanes):
            s.acc_q.append(Signal(signed(plan.acc_width), name=f"acc_q{l}"))
            w_q.append(Signal(signed(plan.w_width), name=f"w_q{l}"))
            s.v_q.append(Signal(signed(plan.v_width), name=f"v_q{l}"))
            s.r_q.append(Signal(self.t_ref_width, name=f"r_q{l}"))
            if self.runtime_weights:
                w_word = s.store.rd_data[l * plan.w_width : (l + 1) * plan.w_width]
            else:
                w_word = s.w_rd[l].data
            if mask_d is not None:
                w_word = Mux(mask_d[l], w_word, 0)
            m.d.sync += [
                s.acc_q[l].eq(s.acc_rd[l].data),
                w_q[l].eq(w_word),
                s.v_q[l].eq(s.st_rd[l].data.v),
                s.r_q[l].eq(s.st_rd[l].data.r),
            ]
            if s.b_rd:
                s.bias_q.append(Signal(self.bias_shape, name=f"bias_q{l}"))
                m.d.sync += s.bias_q[l].eq(s.b_rd[l].data)
            if plan.synaptic:
                s.i_q.append(Signal(signed(plan.v_width), name=f"i_q{l}"))
                m.d.sync += s.i_q[l].eq(s.st_rd[l].data.i)
            if plan.delayed_reset:
                s.pending_q.append(Signal(name=f"pending_q{l}"))
                m.d.sync += s.pending_q[l].eq(s.st_rd[l].data.s)
            sum1 = Signal(signed(plan.acc_width), name=f"acc_sum1_{l}")
            sum2 = Signal(signed(plan.acc_width), name=f"acc_sum2_{l}")
            operand = Mux(hit1, sum1, Mux(hit2, sum2, s.acc_q[l]))
            # A synaptic add (exact: acc_width covers every partial sum), or the clear that the
            # update of a neuron leaves behind.
            total = Signal(signed(plan.acc_width), name=f"acc_total{l}")
            written = Signal(signed(plan.acc_width), name=f"acc_written{l}")
            # The write port zeroes the sum for either clear, the update's or the state reset's,
            # in one gate behind the adder: zeroing `written` again (two gates in a row) was
            # the critical path at 16 lanes. (One plain assignment each, for Icarus, see
            # ev_out.)
            m.d.comb += [
                total.eq(operand + w_q[l]),
                written.eq(Mux(upd_valid_q, 0, total)),
                s.acc_wr[l].addr.eq(Mux(reset_acc, s.reset_addr, acc_addr_q)),
                s.acc_wr[l].data.eq(Mux(clear, 0, total)),
                s.acc_wr[l].en.eq(reset_acc | issue_valid_q | upd_valid_q),
            ]
            m.d.sync += [sum1.eq(written), sum2.eq(sum1)]

    def _walk_issue(self, m, s):
        """The walker's word as it enters the accumulator read: ``(valid, address)``, and with
        convolutions its lane mask ``s.walk_mask_issue``.

        With banked weights the weight read takes a cycle more, so the accumulator read of the
        same word waits for a cycle in registers ``_e`` and both land in the read stage
        together; the update phase, which reads no weight, keeps its timing.
        """
        if self.plan.has_conv:
            s.walk_mask_issue = s.walk_mask
        if not s.w_banked:
            return s.active, s.a_ptr
        issue_valid_e = Signal()
        a_ptr_e = Signal.like(s.a_ptr)
        m.d.sync += [issue_valid_e.eq(s.active), a_ptr_e.eq(s.a_ptr)]
        if self.plan.has_conv:
            s.walk_mask_issue = Signal.like(s.walk_mask)
            m.d.sync += s.walk_mask_issue.eq(s.walk_mask)
        return issue_valid_e, a_ptr_e

    def _upd_issue(self, m, s):
        """The update's row as it enters the accumulator read: a namespace of ``valid``,
        ``acc_addr``, ``row``, ``slot``, ``mask`` and the read addresses ``state_addr`` and
        ``bias_addr``.

        With banked state or bias memories their read takes a cycle more, so the row waits for
        a cycle in registers ``_e`` before the accumulator (and an unbanked one of state and
        bias) is read; the cores then see the row a cycle later, and the schedule's drain is a
        cycle longer.
        """
        lanes = self.plan.lanes
        mask = Mux(s.row_is_last, s.last_mask_k, (1 << lanes) - 1)
        if not s.upd_banked:
            slot = s.upd_slot
            return SimpleNamespace(
                valid=s.upd_issue,
                acc_addr=s.upd_acc_addr,
                row=s.upd_row,
                slot=slot,
                mask=mask,
                state_addr=slot,
                bias_addr=slot,
            )
        upd = SimpleNamespace(
            valid=Signal(name="upd_valid_e"),
            acc_addr=Signal.like(s.upd_acc_addr, name="upd_acc_addr_e"),
            row=Signal.like(s.upd_row, name="upd_row_e"),
            slot=Signal.like(s.upd_slot, name="upd_slot_e"),
            mask=Signal(lanes, name="upd_mask_e"),
        )
        m.d.sync += [
            upd.valid.eq(s.upd_issue),
            upd.acc_addr.eq(s.upd_acc_addr),
            upd.row.eq(s.upd_row),
            upd.slot.eq(s.upd_slot),
            upd.mask.eq(mask),
        ]
        upd.state_addr = s.upd_slot if s.st_banked else upd.slot
        upd.bias_addr = s.upd_slot if s.b_banked else upd.slot
        return upd

    def _lanes(self, m, s):
        """The neuron cores fed from the read stage, the slot, row and mask beside their
        pipelines, and the write-back of their state and spike words."""
        synaptic = self.plan.synaptic
        # No synaptic write is in flight during an update phase (the schedule drains the
        # deliveries first), so the cores take the registered read data as it is.
        for l, core in enumerate(self.cores):
            m.d.comb += [
                core.in_valid.eq(s.upd_valid_q & s.upd_mask_q[l]),
                core.v.eq(s.v_q[l]),
                core.r.eq(s.r_q[l]),
                core.acc.eq(s.acc_q[l]),
                core.params.eq(s.params),
            ]
            if self.plan.per_neuron:
                # The neuron's own values replace the population row's (docs/array.md).
                word = s.bias_q[l]
                fields = ["bias", "v_th", "v_reset", "v_rest"]
                fields.append("decay" if self.plan.runtime_decay else "decay_sel")
                if synaptic:
                    fields.append("syn_decay" if self.plan.runtime_syn_decay else "syn_decay_sel")
                m.d.comb += [getattr(core.params, f).eq(getattr(word, f)) for f in fields]
            elif self.plan.bias_memory:
                m.d.comb += core.params.bias.eq(s.bias_q[l])
            if synaptic:
                m.d.comb += core.i.eq(s.i_q[l])
            if self.plan.delayed_reset:
                m.d.comb += core.pending.eq(s.pending_q[l])
        # Slot, row and lane mask travel beside the cores' pipelines.
        out = s.upd_slot_q, s.upd_row_q, s.upd_mask_q, s.upd_valid_q
        out_slot, out_row, out_mask, out_valid = out
        for n in range(self.stages):
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
        s.out_row, s.out_mask, s.out_valid = out_row, out_mask, out_valid
        spikes = Signal(self.plan.lanes)
        m.d.comb += spikes.eq(Cat(core.spike for core in self.cores) & out_mask)
        # Every memory write except the accumulator's read-modify-write is registered (the write
        # ports are driven from flip-flops): their enables and data come from several sources
        # (the cores, runtime loading, state reset), whose multiplexers would otherwise sit in
        # front of the memories' write setup. A write lands one cycle late, which no reader
        # notices: the state of a slot is read again only in the next timestep, and a ``cfg``
        # write taken in the cycle of ``start`` lands before the step's first read.
        for l, core in enumerate(self.cores):
            m.d.sync += [
                s.st_wr[l].addr.eq(out_slot),
                s.st_wr[l].data.v.eq(core.v_next),
                s.st_wr[l].data.r.eq(core.r_next),
                s.st_wr[l].en.eq(core.out_valid),
            ]
            if synaptic:
                m.d.sync += s.st_wr[l].data.i.eq(core.i_next)
            if self.plan.delayed_reset:
                m.d.sync += s.st_wr[l].data.s.eq(core.pending_next)
        with m.If(out_valid & (spikes != 0)):
            m.d.comb += [s.spike_fifo.w_en.eq(1), s.spike_fifo.w_data.eq(Cat(spikes, out_row))]

    def _trace(self, m, s):
        """With ``trace``, the membrane traces of the lanes' outputs into ``trace_out`` through a
        FIFO; sets ``s.trace_room``, which holds the update issue while the FIFO could overflow
        (always true without ``trace``)."""
        if not self.trace:
            s.trace_room = Const(1)
            return
        # The rows in flight from the issue to the FIFO: the core's stages, the read stages and
        # a row of banked state or bias memories.
        latency = self.stages + int(s.upd_banked)
        depth = latency + 5
        s.trace_fifo = trace_fifo = fifo.SyncFIFOBuffered(
            width=len(self.trace_out.payload.as_value()), depth=depth
        )
        m.submodules.trace_fifo = trace_fifo
        trace_word = Signal(self.trace_out.payload.shape())
        m.d.comb += [
            trace_word.population.eq(s.pop_index_of_k),
            trace_word.slot.eq(s.out_row),
            trace_word.mask.eq(s.out_mask),
        ]
        for l, core in enumerate(self.cores):
            m.d.comb += trace_word.v[l].eq(core.v_trace)
        m.d.comb += [
            trace_fifo.w_en.eq(s.out_valid),
            trace_fifo.w_data.eq(trace_word.as_value()),
            self.trace_out.valid.eq(trace_fifo.r_rdy),
            self.trace_out.payload.eq(trace_fifo.r_data),
            trace_fifo.r_en.eq(self.trace_out.ready),
        ]
        # Issue only while every update in flight still finds room in the trace FIFO.
        s.trace_room = trace_fifo.level <= depth - (latency + 4)
