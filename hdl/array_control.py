"""Control of the neuron array: runtime loading through ``cfg``, and the schedule of a step.

Each function adds one unit to the module of :meth:`~spikeforge.hdl.array.NeuronArray.elaborate`
(``docs/array.md``), with ``m``, ``array`` and ``s`` as in :mod:`.array_deliver`.
"""

from amaranth.hdl import Cat, Mux, Shape, Signal

from .arith import bits_for
from .array_ports import CfgLayout, CfgMemory

__all__ = ["SCHEDULE_STATES", "cfg_loader", "schedule"]

# The states of the array's schedule (see the module docstring of spikeforge.hdl.array); IDLE is
# the initial one.
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


def cfg_loader(m, array, s):
    """Runtime loading and state reset, both while idle: the ``cfg`` writes into the weight, bias
    (if the array has one), state and parameter memories (weight bursts with runtime weights),
    and the rows of the state reset. Sets ``s.take_start``, the ``start`` that the schedule may
    take.
    """
    plan = array.plan
    lanes = plan.lanes
    s.reset_state_row = Signal()
    # An accepted cfg item is registered before it is decoded into write enables, so the
    # path from the state register (ready) to the memories' write ports has a register in
    # it; the write lands two cycles after acceptance, before any read of a step started in
    # the same cycle can reach the memory (the first weight read comes three cycles later).
    # The wide registers (a register parameter row, a weight burst) load the data straight
    # from the port instead: the copy then carries only the bits its other writes use (on
    # the 2,048-neuron iCE40 board top 18 of 84, a copy of the row fewer).
    taken = array.cfg.valid & array.cfg.ready
    width = _copy_width(array, s)
    if width == array.cfg_data_width:
        cfg = Signal.like(array.cfg.payload)
        m.d.sync += cfg.eq(array.cfg.payload)
    else:
        cfg = Signal(CfgLayout(array.cfg_addr_width, width), name="cfg")
        m.d.sync += cfg.eq(array.cfg.payload.as_value()[: cfg.shape().size])
    cfg_write = Signal()
    m.d.sync += cfg_write.eq(taken)
    if s.p_wr is not None:
        m.d.sync += [
            s.p_wr.addr.eq(cfg.addr),
            s.p_wr.data.eq(cfg.data),
            s.p_wr.en.eq(cfg_write & (cfg.mem == CfgMemory.PARAMS)),
        ]
    else:
        # The one row is a register, written as the item is taken: two cycles earlier than a
        # memory's row would be, which no reader sees (the schedule reads it only after
        # PARAMS or RESET_PARAMS).
        item = array.cfg.payload
        with m.If(taken & (item.mem == CfgMemory.PARAMS) & (item.addr == 0)):
            m.d.sync += s.params.eq(item.data)
    if array.runtime_weights:
        _weight_bursts(m, array, s, cfg, cfg_write, taken)
    else:
        s.take_start = array.start
    reset_row, reset_slot = _reset_rows(m, array, s)
    for l in range(lanes):
        lane_write = cfg_write & (cfg.lane == l)
        if not array.runtime_weights:
            m.d.sync += [
                s.w_wr[l].addr.eq(cfg.addr),
                s.w_wr[l].data.eq(cfg.data),
                s.w_wr[l].en.eq(lane_write & (cfg.mem == CfgMemory.WEIGHTS)),
            ]
        if s.b_wr:
            m.d.sync += [
                s.b_wr[l].addr.eq(cfg.addr),
                s.b_wr[l].data.eq(cfg.data),
                s.b_wr[l].en.eq(lane_write & (cfg.mem == CfgMemory.BIAS)),
            ]
        with m.If(lane_write & (cfg.mem == CfgMemory.STATE)):
            m.d.sync += [
                s.st_wr[l].addr.eq(cfg.addr),
                s.st_wr[l].data.eq(cfg.data),
                s.st_wr[l].en.eq(1),
            ]
        with m.If(reset_row):
            m.d.sync += [
                s.st_wr[l].addr.eq(reset_slot),
                s.st_wr[l].data.v.eq(s.bias_q[l].v_rest if plan.per_neuron else s.params.v_rest),
                s.st_wr[l].data.r.eq(0),
                s.st_wr[l].en.eq(1),
            ]
            if plan.synaptic:
                m.d.sync += s.st_wr[l].data.i.eq(0)
            if plan.delayed_reset:
                m.d.sync += s.st_wr[l].data.s.eq(0)


def _copy_width(array, s):
    """Data bits of the registered copy of a cfg item: those of the writes that take it (the
    weight, bias, state and parameter memories' ports), all of them with a parameter memory."""
    if s.p_wr is not None:
        return array.cfg_data_width
    widths = [array.state_layout.size]
    if array.bias_shape is not None:
        widths.append(Shape.cast(array.bias_shape).width)
    if not array.runtime_weights:
        widths.append(array.plan.w_width)
    return max(widths)


def _reset_rows(m, array, s):
    """The row of the state reset to write now: ``(valid, slot)``.

    A row takes its ``v_rest`` from the parameter row of its population, or with per-neuron
    parameters from each neuron's bias word: that read goes through the update's read stage
    (``bias_q``), so the row is written ``2 + upd_banked`` cycles after the walk issues it, and
    ``s.reset_tail`` (held until the last such write) keeps ``cfg`` off the state write ports
    meanwhile.
    """
    s.reset_tail = None
    if not array.plan.per_neuron:
        return s.reset_state_row, s.upd_slot
    valid, slot = s.reset_state_row, s.upd_slot
    delay = 2 + int(s.upd_banked)
    tail = []
    for n in range(delay):
        valid_d = Signal(name=f"reset_row_d{n}")
        slot_d = Signal.like(s.upd_slot, name=f"reset_slot_d{n}")
        m.d.sync += [valid_d.eq(valid), slot_d.eq(slot)]
        valid, slot = valid_d, slot_d
        tail.append(valid)
    s.reset_tail = Signal()
    # Registered: high from the cycle after a row is issued until its write is taken.
    m.d.sync += s.reset_tail.eq(s.reset_state_row | Cat(*tail[:-1]).any())
    return valid, slot


def _weight_bursts(m, array, s, cfg, cfg_write, taken):
    """The weight items of ``cfg`` into the one-port weight store, a burst of words each.

    Sets ``s.cfg_ready`` and ``s.take_start``, both held off while a burst is landing, and
    ``s.start_pending``, a ``start`` that waits for it.
    """
    plan = array.plan
    lanes = plan.lanes
    store = s.store
    # A weight item is a burst: `weight_burst` consecutive words of one lane, written
    # one a cycle (those past the end are dropped), so that loading takes a fraction
    # of the frames. The store's one port takes the address from the walker, which is
    # idle then: neither a cfg item nor `start` is taken until the burst has landed.
    wd = plan.w_width
    burst = array.weight_burst
    b_addr = Signal(bits_for(plan.weight_words + burst))
    b_data = Signal(burst * wd)
    b_left = Signal(range(burst + 1))
    b_lane = Signal(lanes)
    with m.If(cfg_write & (cfg.mem == CfgMemory.WEIGHTS)):
        # A lane past the last one is no lane: 1 << lane is cut to `lanes` bits.
        m.d.sync += [b_addr.eq(cfg.addr), b_left.eq(burst), b_lane.eq(1 << cfg.lane)]
    with m.Elif(b_left != 0):
        m.d.sync += [b_addr.eq(b_addr + 1), b_data.eq(b_data >> wd), b_left.eq(b_left - 1)]
    # The burst's data straight from the port, a cycle before the rest (the copy of the item
    # need not be as wide): no burst is landing when an item is taken, so it holds until the
    # burst starts.
    item = array.cfg.payload
    with m.If(taken & (item.mem == CfgMemory.WEIGHTS)):
        m.d.sync += b_data.eq(item.data)
    # Registered, so that the store's address and enables come from flip-flops.
    st_addr = Signal.like(store.addr)
    st_data = Signal(wd)
    st_en = Signal(lanes)
    m.d.sync += [
        st_addr.eq(b_addr),
        st_data.eq(b_data[:wd]),
        st_en.eq(Mux((b_left != 0) & (b_addr < plan.weight_words), b_lane, 0)),
    ]
    m.d.comb += [
        store.addr.eq(Mux(st_en.any(), st_addr, s.w_ptr)),
        store.wr_data.eq(st_data.replicate(lanes)),
        store.wr_en.eq(st_en),
    ]
    weights_busy = Signal()
    s.start_pending = Signal()
    m.d.comb += weights_busy.eq(cfg_write | (b_left != 0) | st_en.any())
    s.cfg_ready = ~weights_busy
    # A start that meets a burst (or a weight item taken in the same cycle) waits.
    s.take_start = (array.start | s.start_pending) & ~weights_busy & ~array.cfg.valid


def schedule(m, array, s):
    """The one-hot state machine over :data:`SCHEDULE_STATES` that runs a step (or the state
    reset): it drives the phase signals of the other units and counts steps and cycles.
    """
    plan = array.plan
    # A row of banked state or bias memories takes a cycle more to reach the cores.
    latency = array.stages + int(s.upd_banked)
    drain = Signal(range(latency + 3))
    # No event source is tested here: the input stream offers none once input_ended is set
    # (the only time INPUT looks at this), and the spike words are word_valid itself, which
    # `delivered` tests. Leaving ev_valid out keeps the stream's decode out of the state
    # registers' input.
    delivery_idle = Signal()
    idle = ~s.d_valid
    for valid in s.decode_in_flight + s.walk_in_flight:
        idle = idle & ~valid
    m.d.comb += delivery_idle.eq(idle)

    # The end conditions of the deliver and finish phases are registered (one cycle later,
    # once per population and step): a FIFO's level is a sum, too slow to feed the state
    # register directly. Both stay true once true, as nothing refills the FIFOs then.
    delivered = Signal()
    sent = Signal()
    finishing = Signal()
    out_empty = s.out_fifo.level == 0
    if array.trace:
        out_empty = out_empty & (s.trace_fifo.level == 0)
    m.d.sync += [
        delivered.eq(s.deliver_phase & (s.spike_fifo.level == 0) & ~s.word_valid & delivery_idle),
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

    cfg_ready = state["IDLE"] & s.cfg_ready if array.runtime_weights else state["IDLE"]
    if s.reset_tail is not None:
        cfg_ready = cfg_ready & ~s.reset_tail
    m.d.comb += [
        array.busy.eq(~state["IDLE"]),
        array.cfg.ready.eq(cfg_ready),
        s.reset_acc.eq(state["RESET_ACC"]),
        s.reset_state_row.eq(state["RESET_STATE"]),
        s.in_phase.eq(state["INPUT"]),
        s.deliver_phase.eq(state["DELIVER"]),
        finishing.eq(state["FINISH"]),
        s.upd_issue.eq(state["UPDATE"] & s.trace_room),
    ]
    with m.If(state["IDLE"]):
        with m.If(array.reset_state):
            m.d.sync += [
                *s.first_population(),
                s.reset_addr.eq(0),
                s.reset_addr_last.eq(0),
                *goto("IDLE", "RESET_ACC"),
            ]
        with m.Elif(s.take_start):
            m.d.sync += [
                s.cycle_count.eq(1),
                s.input_ended.eq(0),
                *s.first_population(),
                *goto("IDLE", "INPUT"),
            ]
            if array.runtime_weights:
                m.d.sync += s.start_pending.eq(0)
        if array.runtime_weights:
            with m.Elif(array.start):
                m.d.sync += s.start_pending.eq(1)
    with m.If(state["RESET_ACC"]):
        m.d.sync += [
            s.reset_addr.eq(s.reset_addr + 1),
            s.reset_addr_last.eq(s.reset_addr + 2 == plan.acc_banks * plan.slots),
        ]
        with m.If(s.reset_addr_last):
            m.d.sync += goto("RESET_ACC", "RESET_PARAMS")
    with m.If(state["RESET_PARAMS"]):
        m.d.sync += [*s.first_row(), *goto("RESET_PARAMS", "RESET_STATE")]
    with m.If(state["RESET_STATE"]):
        # One row of population k per cycle, to its v_rest from the parameter memory.
        m.d.sync += s.next_row()
        with m.If(s.row_is_last):
            with m.If(s.k_is_last):
                m.d.sync += [s.parity.eq(0), array.timestep.eq(0), *goto("RESET_STATE", "IDLE")]
            with m.Else():
                m.d.sync += [*s.next_population(), *goto("RESET_STATE", "RESET_PARAMS")]
    with m.If(state["INPUT"]):
        with m.If(s.input_ended & delivery_idle):
            m.d.sync += goto("INPUT", "PARAMS")
    with m.If(state["PARAMS"]):
        # The parameter memory read of population k lands this cycle.
        m.d.sync += [*s.first_row(), *goto("PARAMS", "UPDATE")]
    with m.If(s.upd_issue):
        m.d.sync += s.next_row()
        with m.If(s.row_is_last):
            # The last core output and its spike word land latency + 2 cycles on.
            m.d.sync += [drain.eq(latency + 2), *goto("UPDATE", "UPDATE_DRAIN")]
    with m.If(state["UPDATE_DRAIN"]):
        m.d.sync += drain.eq(drain - 1)
        with m.If(drain == 0):
            m.d.sync += goto("UPDATE_DRAIN", "DELIVER")
    with m.If(state["DELIVER"]):
        with m.If(delivered):
            with m.If(s.k_is_last):
                m.d.sync += goto("DELIVER", "FINISH")
            with m.Else():
                m.d.sync += [*s.next_population(), *goto("DELIVER", "PARAMS")]
    # Every spike of the step has left before done, so a host can stop reading at done.
    m.d.comb += array.done.eq(state["FINISH"] & sent)
    with m.If(array.done):
        m.d.sync += [
            array.cycles.eq(s.cycle_count),
            array.timestep.eq(array.timestep + 1),
            s.parity.eq(~s.parity),
            *goto("FINISH", "IDLE"),
        ]
