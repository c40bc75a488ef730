"""The executor of the host link: a checked frame in, the command done, the response chosen.

:class:`CommandExecutor` acts on the frames that :class:`~spikeforge.hdl.host_link_rx.
FrameReceiver` offers (``docs/host-link.md``): a STEP feeds the frame's input indices to the
neuron array and collects its output spikes, a CFG writes the array's ``cfg`` port (after a
range check), RESET resets the array's state, IDENTIFY, STATUS and LAST only answer; an error
frame is answered and counted. Each response goes out through
:class:`~spikeforge.hdl.host_link_tx.FrameTransmitter`: its code and length, then its payload a
byte at a time, chosen here.
"""

import struct

from amaranth.hdl import Cat, Const, Module, Mux, Signal, unsigned
from amaranth.lib import data, fifo, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from ..spec import protocol as p
from ..spec.limits import check_int
from ._validate import validating
from .arith import bits_for, ceil_div
from .array import CfgMemory
from .array_ports import LANE_WIDTH
from .host_link_fsm import OneHotFSM
from .host_link_rx import MAX_INPUTS, FrameLayout, buffer_shape
from .host_link_tx import HeaderLayout

__all__ = [
    "CommandExecutor",
    "CommandLayout",
    "ResponseLayout",
    "decode_command",
    "MAX_NEURONS",
    "RESPONSES",
    "EXEC_STATES",
    "STEPS_STATES",
    "STREAM_STATES",
]

# The 16-bit LEN field: a STEP response carries 8 bytes and 3 per output spike.
MAX_NEURONS = (0xFFFF - 8) // 3

# The responses, by the index the executor keeps while answering.
RESPONSES = ("ERROR", "IDENTIFY", "STATUS", "STEP", "CFG", "RESET")
# The same, one-hot.
ResponseLayout = data.StructLayout(dict.fromkeys(RESPONSES, 1))
# The states of the executor: waiting for a frame (IDLE), executing (EXEC to STEP_DONE, ERROR
# for a CFG write out of range or a STEP out of sequence), answering (ANSWER: the response's header; SEND: its payload).
EXEC_STATES = (
    "IDLE",
    "EXEC",
    "ERROR",
    "RESET_WAIT",
    "CFG_WRITE",
    "FEED_WAIT",
    "FEED",
    "STEP_WAIT",
    "STEP_DONE",
    "ANSWER",
    "SEND",
)
# The executor's states for a STEPS frame (with `steps`): a step started (S_NEXT), its inputs
# read from the buffer (S_READ, S_GOT; a bitmap byte's bits in S_BITS) and offered (S_OFFER),
# the step run (S_WAIT, S_DONE: its record held for the sender), the last responses sent (S_DRAIN).
STEPS_STATES = ("S_NEXT", "S_READ", "S_GOT", "S_BITS", "S_OFFER", "S_WAIT", "S_DONE", "S_DRAIN")
# The states of the sender of STEPS responses, beside: waiting for a step record, the header,
# the payload.
STREAM_STATES = ("R_IDLE", "R_HEAD", "R_SEND")
_STATUS_LENGTH = struct.calcsize(p.STATUS_FORMAT)
# A STEPS response: timestep u8 and cycles u24, then 2 bytes per spike.
_STEPS_HEAD = 4


# The commands an executed frame can carry, by the field of CommandLayout that names each; a
# STEP is `step` when it is for the array's timestep, `stale` when not.
_COMMANDS = {
    "identify": p.CMD_IDENTIFY,
    "status": p.CMD_STATUS,
    "last": p.CMD_LAST,
    "reset": p.CMD_RESET,
    "cfg": p.CMD_CFG,
    "step": p.CMD_STEP,
    "stale": p.CMD_STEP,
}
CommandLayout = data.StructLayout(dict.fromkeys(_COMMANDS, 1))


def decode_command(code, in_sequence):
    """A command code as a one-hot :data:`CommandLayout` value (all 0 for an unknown one); a
    STEP is ``step`` with ``in_sequence`` high, ``stale`` with it low."""
    return Cat(
        *(code == value for name, value in _COMMANDS.items() if name not in ("step", "stale")),
        (code == p.CMD_STEP) & in_sequence,
        (code == p.CMD_STEP) & ~in_sequence,
    )


class CommandExecutor(wiring.Component):
    """Executes the commands of the host link on a neuron array.

    Parameters
    ----------
    plan : ArrayPlan
        The network of the array; the limits of CFG addresses and STEP indices come from it.
    array : NeuronArray
        The array driven (or a model of its interface): its signature and widths are used.
    identity : bytes
        The IDENTIFY response's payload (``spikeforge.spec.protocol.IDENTITY_FORMAT``).
    runtime_weights : bool
        The array's weights have no initial contents; STATUS says so (flag bit 2).
    steps : bool
        Execute STEPS frames (the receiver's ``steps``).

    Attributes
    ----------
    frame : In(stream.Signature(FrameLayout(n_inputs, data_bytes)))
        The frames from the receiver. Acted on in the first cycle offered; taken when the
        answer is out.
    indices : In(memory.ReadPort.Signature(...))
        The receiver's index buffer.
    array : Out(array.signature.flip())
        The array's ports.
    header : Out(stream.Signature(HeaderLayout))
        The response's code and length, to the transmitter.
    payload : Out(stream.Signature(8))
        The response's payload bytes, to the transmitter.
    sent : In(1)
        Strobe from the transmitter: the response is out.
    frame_ok, frame_error, spike : Out(1)
        Strobes for LEDs: a command executed, an error frame started, an output spike.
    busy : Out(1)
        The array is running a step.
    probes : dict
        Set by ``elaborate``: internal registers by name, and ``state``, a dict from each name
        of :data:`EXEC_STATES` (and with ``steps`` :data:`STEPS_STATES`) to a signal that is
        high in that state; with ``steps`` also ``sender`` (the same for
        :data:`STREAM_STATES`), ``streaming``, ``ring``, ``record``, the two header offers
        (``main_header_valid``, ``sender_header_valid``), the sender's registers
        (``sender_regs``) and the step's (``run``), ``sending``, the decoded STEPS
        command (``steps_go``, ``steps_stale``, ``in_sequence``), ``settled`` and the input
        FIFO (``in_fifo``); for formal harnesses
        (:mod:`spikeforge.sim.formal_host_link`).
    """

    def __init__(self, plan, array, *, identity, runtime_weights=False, steps=False):
        neurons = sum(q.size for q in plan.lif_populations)
        with validating(self):
            if not isinstance(identity, bytes) or not 1 <= len(identity) <= 0xFF:
                raise TypeError(f"identity must be 1 to 255 bytes, not {identity!r}")
            if not isinstance(runtime_weights, bool):
                raise TypeError(f"runtime_weights must be True or False, not {runtime_weights!r}")
            if not isinstance(steps, bool):
                raise TypeError(f"steps must be True or False, not {steps!r}")
            check_int("n_inputs", plan.n_inputs, 0, MAX_INPUTS)
            check_int("neurons", neurons, 1, MAX_NEURONS)
        self.plan = plan
        self.neurons = neurons
        self.identity = identity
        self.runtime_weights = runtime_weights
        self.steps = steps
        self.pop_width = array.pop_width
        self.spike_width = array.pop_width + array.index_width
        self.index_width = bits_for(max(plan.n_inputs - 1, 0))
        depth, width = buffer_shape(plan.n_inputs, steps)
        populations = len(plan.populations)
        super().__init__(
            {
                "frame": In(
                    stream.Signature(
                        FrameLayout(plan.n_inputs, ceil_div(array.cfg_data_width, 8), populations)
                    )
                ),
                "indices": In(
                    memory.ReadPort.Signature(addr_width=bits_for(depth - 1), shape=unsigned(width))
                ),
                "array": Out(array.signature.flip()),
                "header": Out(stream.Signature(HeaderLayout)),
                "payload": Out(stream.Signature(8)),
                "sent": In(1),
                "frame_ok": Out(1),
                "frame_error": Out(1),
                "spike": Out(1),
                "busy": Out(1),
            }
        )

    def elaborate(self, platform):
        m = Module()
        plan = self.plan
        array = self.array
        frame = self.frame.payload

        # Set while a STEPS frame runs: the spikes go to the ring, the sender answers.
        streaming = Signal()
        self.streaming_reg = streaming
        n_spk, spk_rd, ring = self._collect(m, streaming)
        feed_in = self._feed(m)
        feed = Signal(range(plan.n_inputs + 1))
        last = Signal()  # `feed` is past the frame's last index
        command = Signal(CommandLayout)  # the frame's command, decoded when it is taken on
        offer = Signal()  # in FEED: an input event (or the end) is on offer to the array
        m.d.comb += self.indices.addr.eq(feed)
        entry = None
        if self.steps:
            # The buffer's read data, registered every cycle before it is used: from a DP16KD's
            # output (5.8 ns) through the choice of the input FIFO's data, or through the
            # decode of a STEPS entry, it was the ECP5's critical path (112 to 121 MHz at
            # 120). A STEP's index then takes one cycle more (`settled`, in FEED: not another term in front of FEED_WAIT); a STEPS entry does
            # not (S_GOT comes three cycles after `rpos` moves).
            entry = Signal.like(self.indices.data)
            settled = Signal()
            m.d.sync += entry.eq(self.indices.data)
        # A STEPS frame, for the array's timestep (`steps_go`) or not (`steps_stale`).
        steps_go = Signal()
        steps_stale = Signal()
        # The error answered: the receiver's, or one found here (its frame passed the
        # receiver's checks, error 0): a STEP for another timestep, a CFG write out of range.
        error = Mux(
            frame.error != 0,
            frame.error,
            Mux(command.stale | steps_stale, p.ERR_SEQUENCE, p.ERR_PAYLOAD),
        )
        modified = Signal()  # a CFG write since configuration: the weights may differ
        counted = Signal()  # an error frame starts
        status = self._status(m, modified, counted, error)

        # The response to send, an index into RESPONSES; ANSWER offers its code and length, so
        # that the many ways into an answer set only this. The same one-hot (`chosen`) is what
        # the logic uses: a decode of `resp` in front of the payload's registers was the
        # iCE40's critical path.
        resp = Signal(range(len(RESPONSES)))
        chosen = Signal(ResponseLayout, init={"ERROR": 1})
        R = {name: n for n, name in enumerate(RESPONSES)}
        # The executor's own response; the sender of STEPS responses has another.
        main_header = Signal(HeaderLayout)
        main_header_valid = Signal()
        main_byte = Signal(8)
        main_payload_valid = Signal()
        self._header(m, chosen, n_spk, main_header)
        restart, payload_probes = self._payload(
            m, chosen, spk_rd, status, error, main_byte, main_payload_valid
        )

        def respond(name):
            m.d.sync += [resp.eq(R[name]), chosen.as_value().eq(1 << R[name])]
            fsm.goto("ANSWER")

        cfg = frame.cfg
        cfg_ok = self._cfg_in_range(m, cfg)
        # The CFG write on offer to the array whenever a frame is (`valid` says when it is
        # one): gated by the state, its 100-odd bits took as many LUTs.
        m.d.comb += [
            array.cfg.payload.mem.eq(cfg.mem[:2]),
            array.cfg.payload.lane.eq(cfg.lane[:LANE_WIDTH]),
            array.cfg.payload.addr.eq(cfg.addr),
            array.cfg.payload.data.eq(cfg.data),
        ]
        # A STEP frame is for the array's timestep: compared every cycle into a register, as the
        # frame's `seq` came at least three cycles before its offer and the timestep holds still
        # between steps.
        in_sequence = Signal()
        m.d.sync += in_sequence.eq(frame.seq == array.timestep[:16])

        # The array's `start` and `reset_state`, high in EXEC for a STEP or RESET: set when the
        # frame is first offered, so that they come straight from a register into the array.
        start = Signal()
        reset = Signal()
        m.d.sync += [start.eq(0), reset.eq(0)]
        m.d.comb += [array.start.eq(start), array.reset_state.eq(reset)]

        with OneHotFSM(m, EXEC_STATES + (STEPS_STATES if self.steps else ())) as fsm:
            with fsm.state("IDLE"):
                # A STEP's first index is at 0: set here, where nothing else sets `feed`, not
                # behind EXEC's decode of the command (in front of `feed`'s register, that was
                # the GW1NR-9's critical path, 114 MHz at 111).
                m.d.sync += feed.eq(0)
                with m.If(self.frame.valid):
                    with m.If(frame.error != 0):
                        m.d.comb += self.frame_error.eq(1)
                        respond("ERROR")
                    with m.Else():
                        m.d.sync += [
                            start.eq((frame.code == p.CMD_STEP) & in_sequence),
                            reset.eq(frame.code == p.CMD_RESET),
                            command.eq(decode_command(frame.code, in_sequence)),
                        ]
                        if self.steps:
                            is_steps = frame.code == p.CMD_STEPS
                            m.d.sync += [
                                steps_go.eq(is_steps & in_sequence),
                                steps_stale.eq(is_steps & ~in_sequence),
                            ]
                        fsm.goto("EXEC")

            with fsm.state("EXEC"):
                # On the command decoded into a register: the decoder in front of this
                # state's next-state logic was the iCE40's critical path.
                m.d.comb += self.frame_ok.eq(1)
                with m.If(command.identify):
                    respond("IDENTIFY")
                with m.Elif(command.status):
                    respond("STATUS")
                with m.Elif(command.last):
                    respond("STEP")
                with m.Elif(command.reset):
                    m.d.sync += n_spk.eq(0)
                    fsm.goto("RESET_WAIT")
                with m.Elif(command.cfg):
                    with m.If(cfg_ok):
                        fsm.goto("CFG_WRITE")
                    with m.Else():
                        fsm.goto("ERROR")
                with m.Elif(command.step):
                    m.d.sync += n_spk.eq(0)
                    fsm.goto("FEED_WAIT")
                with m.Elif(command.stale | steps_stale):
                    fsm.goto("ERROR")
                if self.steps:
                    with m.Elif(steps_go):
                        # LAST then answers this frame's last step, with no spikes.
                        m.d.sync += [
                            n_spk.eq(0),
                            streaming.eq(1),
                            ring["rpos"].eq(0),
                            ring["steps_left"].eq(frame.steps),
                        ]
                        fsm.goto("S_NEXT")

            with fsm.state("ERROR"):
                m.d.comb += self.frame_error.eq(1)
                respond("ERROR")

            with fsm.state("RESET_WAIT"):
                with m.If(~array.busy):
                    respond("RESET")

            with fsm.state("CFG_WRITE"):
                m.d.comb += array.cfg.valid.eq(1)
                with m.If(array.cfg.ready):
                    m.d.sync += modified.eq(1)
                    respond("CFG")

            with fsm.state("FEED_WAIT"):
                # The index buffer's read of address `feed` lands in the next cycle; whether
                # it is past the last index is registered meanwhile, so that the array's
                # intake starts from registers (it was the iCE40's critical path).
                m.d.sync += last.eq(feed == frame.count)
                if self.steps:
                    # `entry` holds the read in FEED's second cycle: `offer` rises then.
                    m.d.sync += settled.eq(1)
                else:
                    m.d.sync += offer.eq(1)
                fsm.goto("FEED")

            with fsm.state("FEED"):
                # `offer` is high in this state, a register of its own instead of a decode of
                # the state; the array ignores `index` in the `end` item.
                m.d.comb += [
                    feed_in.valid.eq(offer),
                    feed_in.payload.end.eq(last),
                    feed_in.payload.index.eq(self.indices.data if entry is None else entry),
                ]
                if self.steps:
                    with m.If(settled):
                        m.d.sync += [settled.eq(0), offer.eq(1)]
                with m.If(offer & feed_in.ready):
                    m.d.sync += offer.eq(0)
                    with m.If(last):
                        fsm.goto("STEP_WAIT")
                    with m.Else():
                        m.d.sync += feed.eq(feed + 1)
                        fsm.goto("FEED_WAIT")

            with fsm.state("STEP_WAIT"):
                with m.If(array.done):
                    fsm.goto("STEP_DONE")

            with fsm.state("STEP_DONE"):
                # `cycles` and `timestep` of the array are updated now.
                respond("STEP")

            if self.steps:
                self._run_steps(m, fsm, start, streaming, ring, feed_in, entry)

            with fsm.state("ANSWER"):
                # One cycle: the transmitter is idle and takes the header at once.
                m.d.comb += [main_header_valid.eq(1), restart.eq(1)]
                with m.If(self.header.ready):
                    m.d.comb += counted.eq(chosen.ERROR)
                    fsm.goto("SEND")

            with fsm.state("SEND"):
                m.d.comb += main_payload_valid.eq(1)
                with m.If(self.sent):
                    # The frame is done with: the receiver hunts for the next.
                    m.d.comb += self.frame.ready.eq(1)
                    fsm.goto("IDLE")

            states = {
                name: fsm.ongoing(name)
                for name in EXEC_STATES + (STEPS_STATES if self.steps else ())
            }
        steps_probes = {}
        if self.steps:
            # The sender of STEPS responses shares the transmitter: it has it while a STEPS
            # frame runs, the executor's own answers all other times.
            header, byte, h_valid = self._stream(m, ring, spk_rd[0])
            # The payload is on offer from the header's handshake until the response is out,
            # in SEND and R_SEND alike: a register of its own, not a multiplexer of the two
            # states, since it goes through the transmitter's choice of its byte register
            # (the iCE40's critical path, 41.6 MHz at 39.75).
            sending = Signal()
            m.d.sync += sending.eq(
                Mux(self.sent, 0, sending | (self.header.valid & self.header.ready))
            )
            m.d.comb += [
                self.header.payload.eq(Mux(streaming, header, main_header)),
                # An OR, not a multiplexer on `streaming`: the sender offers a header only
                # while a STEPS frame runs and ANSWER never comes then, and this goes into the
                # first of the transmitter's choices for its byte register (the iCE40's
                # critical path, 40.1 MHz at 39.75, through one gate less).
                self.header.valid.eq(h_valid | main_header_valid),
                self.payload.payload.eq(Mux(streaming, byte, main_byte)),
                self.payload.valid.eq(sending),
            ]
            steps_probes = dict(
                steps_go=steps_go,
                steps_stale=steps_stale,
                in_sequence=in_sequence,
                settled=settled,
                sending=sending,
                in_fifo=self._in_fifo,
                streaming=streaming,
                sender=self._sender_states,
                sender_regs=self._sender_regs,
                run=self._run_regs,
                ring=ring,
                record=self._record_regs,
                main_header_valid=main_header_valid,
                sender_header_valid=h_valid,
            )
        else:
            m.d.comb += [
                self.header.payload.eq(main_header),
                self.header.valid.eq(main_header_valid),
                self.payload.payload.eq(main_byte),
                self.payload.valid.eq(main_payload_valid),
            ]
        self.probes = dict(
            state=states,
            feed=feed,
            n_spk=n_spk,
            resp=resp,
            chosen=chosen,
            start=start,
            reset=reset,
            last=last,
            command=command,
            offer=offer,
            **payload_probes,
            **steps_probes,
        )
        return m

    def _status(self, m, modified, counted, error):
        """The STATUS payload as one word, and its counters.

        A frame is counted good in EXEC (``frame_ok``), an error frame by its ``error`` when
        it starts (``counted``): once per error frame, and the counters' enables then depend
        on registers, not on every way into an error.
        """
        frames = Signal(32)
        crc_errors = Signal(16)
        timeouts = Signal(16)
        errors = Signal(16)
        with m.If(self.frame_ok):
            m.d.sync += frames.eq(frames + 1)
        with m.If(counted):
            with m.Switch(error):
                with m.Case(p.ERR_CRC):
                    m.d.sync += crc_errors.eq(crc_errors + 1)
                with m.Case(p.ERR_TIMEOUT):
                    m.d.sync += timeouts.eq(timeouts + 1)
                with m.Default():
                    m.d.sync += errors.eq(errors + 1)
        # Flag bit 2: runtime weights; with `modified` low the host knows that they hold
        # nothing loaded yet.
        flags = Cat(self.array.busy, modified, Const(int(self.runtime_weights), 1), Const(0, 5))
        array = self.array
        return Cat(flags, array.timestep, array.cycles, frames, crc_errors, timeouts, errors)

    def _cfg_in_range(self, m, cfg):
        """Whether the CFG write ``cfg`` names a lane and an address that exist, registered.

        The frame's payload stays unchanged while it is offered, and EXEC uses this one cycle
        after the offer began.
        """
        plan = self.plan
        cfg_ok = Signal()
        m.d.sync += cfg_ok.eq(
            (cfg.lane < plan.lanes)
            & (
                ((cfg.mem == CfgMemory.WEIGHTS) & (cfg.addr < plan.weight_words))
                | ((cfg.mem == CfgMemory.STATE) & (cfg.addr < plan.slots))
                # An array without a bias memory has no BIAS address.
                | ((cfg.mem == CfgMemory.BIAS) & (cfg.addr < plan.slots) & plan.bias_memory)
                | ((cfg.mem == CfgMemory.PARAMS) & (cfg.addr < len(plan.lif_populations)))
            )
        )
        return cfg_ok

    def _collect(self, m, streaming):
        """The output spikes of a step, collected whenever the array produces them.

        They go to a block RAM, at most one per LIF neuron and step. The identity sits past
        them, one byte per entry: in the block RAM the spikes take anyway rather than in a
        multiplexer of constants; unless the spikes take more than one 256-word block and the
        identity would take the RAM past the power of two of words they round up to. Then it
        is a memory of its own, read at the same address: past the 2,048 spikes of the
        2,048-neuron iCE40 board top it made 2,115 words, which Yosys built of 256 x 16 blocks
        stacked in depth, and the read multiplexer over them was that top's critical path
        (2,048 x 12 take six 2048 x 2 blocks side by side, read without one; the identity went
        to logic). While a STEPS frame runs (``streaming``) the spike entries are a ring: the
        reported spikes as neuron numbers, from `wpos` on, read by the sender from `rp` on; a
        step starts only while it has room for all its spikes. Returns the spike count of a
        STEP; the read port of the spikes, that of the identity (None when it is in the
        spikes' RAM) and the address of its first byte; and the ring's registers by name
        (None without ``steps``).
        """
        array = self.array
        neurons = self.neurons
        apart = neurons > 256 and neurons + len(self.identity) > 1 << bits_for(neurons - 1)
        ident_base = 0 if apart else neurons
        flat_width = bits_for(max(neurons - 1, 0))
        width = max(self.spike_width, flat_width)
        spk_mem = memory.Memory(
            shape=unsigned(width if apart else max(width, 8)),
            depth=neurons if apart else ident_base + len(self.identity),
            init=[] if apart else [0] * ident_base + list(self.identity),
        )
        m.submodules.spk_mem = spk_mem
        spk_wr = spk_mem.write_port()
        spk_rd = spk_mem.read_port()
        ident_rd = None
        if apart:
            ident_mem = memory.Memory(
                shape=unsigned(8), depth=len(self.identity), init=list(self.identity)
            )
            m.submodules.ident_mem = ident_mem
            ident_rd = ident_mem.read_port()
        ports = (spk_rd, ident_rd, ident_base)
        n_spk = Signal(range(neurons + 1))
        out = array.spike_out
        m.d.comb += [
            self.spike.eq(out.valid),
            self.busy.eq(array.busy),
        ]
        if not self.steps:
            m.d.comb += [
                out.ready.eq(1),
                spk_wr.addr.eq(n_spk),
                spk_wr.data.eq(out.payload.as_value()),
                # (The array sends each neuron's spike at most once a step; the guard keeps
                # even a faulty one off the identity.)
                spk_wr.en.eq(out.valid & (n_spk != neurons)),
            ]
            with m.If(out.valid):
                m.d.sync += n_spk.eq(n_spk + 1)
            return n_spk, ports, None

        depth, _ = buffer_shape(self.plan.n_inputs, True)
        ring = dict(
            wpos=Signal(range(neurons)),
            rp=Signal(range(neurons)),
            count=Signal(range(neurons + 1)),  # entries in the ring
            cur=Signal(range(neurons + 1)),  # reported spikes of the step running
            advance=Signal(),  # strobe from the sender: the entry at `rp` is sent
            rpos=Signal(range(depth + 1)),  # the STEPS buffer's entry to read next
            steps_left=Signal(8),
        )
        # The neuron number of a spike: its index plus the LIF neurons of the populations
        # before its own (a constant per population).
        base = Signal(flat_width)
        first = 0
        with m.Switch(out.payload.population):
            for number, population in enumerate(self.plan.populations):
                if not population.is_input:
                    with m.Case(number):
                        m.d.comb += base.eq(first)
                    first += population.size
        flat = base + out.payload.index
        keep = self.frame.payload.report.bit_select(out.payload.population, 1)
        # The ring never holds the array off (`spike_out.ready` is 1: held off, the array's
        # input and deliver logic was the iCEBreaker's critical path): a step starts only
        # while the ring has room for a spike of every reported neuron (`room`, below).
        wrote = Signal()
        m.d.comb += [
            out.ready.eq(1),
            spk_wr.addr.eq(Mux(streaming, ring["wpos"], n_spk)),
            spk_wr.data.eq(Mux(streaming, flat, out.payload.as_value())),
            wrote.eq(streaming & out.valid & keep),
            spk_wr.en.eq(Mux(streaming, wrote, out.valid & (n_spk != neurons))),
        ]
        with m.If(out.valid & ~streaming):
            m.d.sync += n_spk.eq(n_spk + 1)
        with m.If(wrote):
            m.d.sync += [
                ring["wpos"].eq(Mux(ring["wpos"] == neurons - 1, 0, ring["wpos"] + 1)),
                ring["cur"].eq(ring["cur"] + 1),
            ]
        count = ring["count"] + wrote - ring["advance"]
        m.d.sync += ring["count"].eq(count)
        # The reported neurons of the frame on offer (its mask holds still while it runs), and
        # whether the ring has room for a spike of each, both registered: a step starts only
        # then, and the ring's count only falls while the executor waits to start one.
        reported = Signal(range(neurons + 1))
        total = Const(0)
        for number, population in enumerate(self.plan.populations):
            if not population.is_input:
                total = total + Mux(self.frame.payload.report[number], population.size, 0)
        ring["room"] = Signal()
        ring["reported"] = reported
        m.d.sync += [reported.eq(total), ring["room"].eq(ring["count"] + reported <= neurons)]
        return n_spk, ports, ring

    def _feed(self, m):
        """The stream of input events into the array. With ``steps`` it goes through a FIFO
        of two: the array's `spike_in.ready` depends on its output FIFO, and once the ring
        can hold `spike_out` off, that path through the executor's feeding logic was the
        iCEBreaker's critical path; the FIFO's `w_rdy` comes from its level register."""
        array = self.array
        feed_in = stream.Signature(array.spike_in.payload.shape()).flip().create()
        if not self.steps:
            m.d.comb += [
                array.spike_in.valid.eq(feed_in.valid),
                array.spike_in.payload.eq(feed_in.payload),
                feed_in.ready.eq(array.spike_in.ready),
            ]
            return feed_in
        width = len(array.spike_in.payload.as_value())
        # Unbuffered: the array's `ready` then only steps the FIFO's level and read pointer;
        # through the buffered FIFO's output register logic into its inner level's enable it
        # was the iCEBreaker's critical path (42.1 MHz at 39.75).
        m.submodules.in_fifo = in_fifo = fifo.SyncFIFO(width=width, depth=2)
        self._in_fifo = in_fifo
        m.d.comb += [
            in_fifo.w_en.eq(feed_in.valid),
            in_fifo.w_data.eq(feed_in.payload),
            feed_in.ready.eq(in_fifo.w_rdy),
            array.spike_in.valid.eq(in_fifo.r_rdy),
            array.spike_in.payload.eq(in_fifo.r_data),
            in_fifo.r_en.eq(array.spike_in.ready),
        ]
        return feed_in

    def _run_steps(self, m, fsm, start, streaming, ring, feed_in, entry):
        """The states of a STEPS frame: each step started, its inputs read from the buffer
        and offered to the array, its record held for the sender; the frame taken when the
        last record is sent."""
        array = self.array
        frame = self.frame.payload
        index_width = self.index_width
        width = (self.plan.n_inputs + 7) // 8  # bytes of a step's bitmap
        rpos = ring["rpos"]
        steps_left = ring["steps_left"]
        bits = Signal(8)  # the bitmap byte's inputs not offered yet
        bcount = Signal(range(max(width, 1)))  # the byte in the step's bitmap
        item = Signal(index_width)
        item_end = Signal()
        offer = Signal()
        with m.If(streaming):
            m.d.comb += self.indices.addr.eq(rpos)
        record = self._record(m, ring)
        # `entry` is the buffer's read data, registered: `rpos` moves only in S_GOT and S_GOT
        # comes at least three cycles after it (S_GOT, S_OFFER or S_BITS, S_READ), so `entry`
        # holds the entry at `rpos` by then.

        with fsm.state("S_NEXT"):
            with m.If(~array.busy & ~record["full"] & ring["room"]):
                m.d.sync += [start.eq(1), bcount.eq(0)]
                fsm.goto("S_READ")

        with fsm.state("S_READ"):
            # `entry` is the entry at `rpos` in the next cycle.
            fsm.goto("S_GOT")

        with fsm.state("S_GOT"):
            m.d.sync += rpos.eq(rpos + 1)
            with m.If(frame.lists):
                m.d.sync += [
                    item.eq(entry[:index_width]),
                    item_end.eq(entry[index_width]),
                    offer.eq(1),
                ]
                fsm.goto("S_OFFER")
            with m.Else():
                m.d.sync += bits.eq(entry[:8])
                fsm.goto("S_BITS")

        with fsm.state("S_BITS"):
            with m.If(bits == 0):
                with m.If(bcount == width - 1):
                    m.d.sync += [item_end.eq(1), offer.eq(1)]
                    fsm.goto("S_OFFER")
                with m.Else():
                    m.d.sync += bcount.eq(bcount + 1)
                    fsm.goto("S_READ")
            with m.Else():
                # The lowest bit set: its input (the byte's first input, `8 * bcount`, plus
                # the bit, with no adder), and the byte without it.
                low = Signal(3)
                for bit in reversed(range(8)):
                    with m.If(bits[bit]):
                        m.d.comb += low.eq(bit)
                m.d.sync += [
                    item.eq(Cat(low, bcount)),
                    item_end.eq(0),
                    offer.eq(1),
                    bits.eq(bits & (bits - 1)),
                ]
                fsm.goto("S_OFFER")

        with fsm.state("S_OFFER"):
            m.d.comb += [
                feed_in.valid.eq(offer),
                feed_in.payload.end.eq(item_end),
                feed_in.payload.index.eq(item),
            ]
            with m.If(feed_in.ready):
                m.d.sync += offer.eq(0)
                with m.If(item_end):
                    fsm.goto("S_WAIT")
                with m.Elif(frame.lists):
                    fsm.goto("S_READ")
                with m.Else():
                    fsm.goto("S_BITS")

        with fsm.state("S_WAIT"):
            with m.If(array.done):
                fsm.goto("S_DONE")

        with fsm.state("S_DONE"):
            # `cycles` and `timestep` of the array are updated now.
            cycles = Mux(array.cycles[24:] != 0, 0xFFFFFF, array.cycles[:24])
            m.d.comb += [
                record["push"].eq(1),
                record["new"].eq(Cat(array.timestep[:8], cycles, ring["cur"])),
            ]
            m.d.sync += [ring["cur"].eq(0), steps_left.eq(steps_left - 1)]
            with m.If(steps_left == 1):
                fsm.goto("S_DRAIN")
            with m.Else():
                fsm.goto("S_NEXT")

        with fsm.state("S_DRAIN"):
            with m.If(~record["full"] & record["sender_idle"]):
                # Every response is out: the receiver hunts for the next frame.
                m.d.comb += self.frame.ready.eq(1)
                m.d.sync += streaming.eq(0)
                fsm.goto("IDLE")
        self._ring = ring
        self._record_regs = record
        self._run_regs = dict(offer=offer, item_end=item_end, bits=bits, steps_left=steps_left)

    def _record(self, m, ring):
        """The record of the step run last and not taken by the sender yet: ``new`` is held
        on ``push`` (``full`` then), dropped on ``pop``, when the sender copies it into its own
        registers. With that copy, one register does what a queue of two records did: the
        next step runs while a response goes out and the one after waits for it (43 fewer
        flip-flops and their multiplexers than the queue)."""
        width = 8 + 24 + len(ring["cur"])
        record = dict(
            new=Signal(width),
            push=Signal(),
            pop=Signal(),
            held=Signal(width),
            full=Signal(),
            sender_idle=Signal(),  # the sender is between responses
        )
        with m.If(record["push"]):
            m.d.sync += [record["held"].eq(record["new"]), record["full"].eq(1)]
        with m.Elif(record["pop"]):
            m.d.sync += record["full"].eq(0)
        return record

    def _stream(self, m, ring, spk_rd):
        """The sender of STEPS responses: for each record taken a frame (code 0x87) of the
        step's timestep (low byte), cycles (24 bits) and its spikes from the ring, 2 bytes
        each. Returns its header, its payload byte and the header's valid."""
        record = self._record_regs
        held = record["held"]
        count = held[32:]
        header = Signal(HeaderLayout)
        h_valid = Signal()
        snap = Signal(32)  # the response's head bytes, sent from the low byte
        left = Signal(range(_STEPS_HEAD + 1))  # head bytes still to send
        in_spikes = Signal()
        hi = Signal()  # the next byte is the high byte of the entry at `rp`
        length = Signal(16)
        neurons = self.neurons
        rp = ring["rp"]
        m.d.comb += [header.code.eq(p.RESPONSE | p.CMD_STEPS), header.length.eq(length)]
        entry = Cat(spk_rd.data, Const(0, 16))
        byte = Mux(in_spikes, Mux(hi, entry[8:16], entry[:8]), snap[:8])
        with m.If(self.streaming_reg):
            m.d.comb += spk_rd.addr.eq(rp)
        with OneHotFSM(m, STREAM_STATES) as fsm:
            with fsm.state("R_IDLE"):
                m.d.comb += record["sender_idle"].eq(1)
                with m.If(self.streaming_reg & record["full"]):
                    m.d.comb += record["pop"].eq(1)
                    m.d.sync += [
                        snap.eq(held[:32]),
                        left.eq(_STEPS_HEAD),
                        in_spikes.eq(0),
                        hi.eq(0),
                        length.eq(_STEPS_HEAD + (count << 1)),
                    ]
                    fsm.goto("R_HEAD")
            with fsm.state("R_HEAD"):
                m.d.comb += h_valid.eq(1)
                with m.If(self.header.ready):
                    fsm.goto("R_SEND")
            with fsm.state("R_SEND"):
                # (The payload's `valid` is the executor's `sending`.)
                with m.If(self.payload.ready):
                    with m.If(~in_spikes):
                        m.d.sync += [snap.eq(snap[8:]), left.eq(left - 1)]
                        with m.If(left == 1):
                            m.d.sync += in_spikes.eq(1)
                    with m.Elif(~hi):
                        m.d.sync += hi.eq(1)
                    with m.Else():
                        # The next entry's read lands before its first byte is chosen.
                        m.d.comb += ring["advance"].eq(1)
                        m.d.sync += [
                            hi.eq(0),
                            rp.eq(Mux(rp == neurons - 1, 0, rp + 1)),
                        ]
                with m.If(self.sent):
                    fsm.goto("R_IDLE")
            self._sender_states = {name: fsm.ongoing(name) for name in STREAM_STATES}
        self._sender_regs = dict(length=length, left=left, in_spikes=in_spikes, hi=hi)
        return header, byte, h_valid

    def _header(self, m, chosen, n_spk, header):
        """The header (``header``) for the response ``chosen``: its code and payload length."""
        lengths = {
            "ERROR": 2,
            "IDENTIFY": len(self.identity),
            "STATUS": _STATUS_LENGTH,
            "STEP": 8 + n_spk + (n_spk << 1),
            "CFG": 0,
            "RESET": 0,
        }
        code = length = Const(0)
        # One-hot: an OR of the choices rather than a priority chain.
        for name in RESPONSES:
            value = p.RSP_ERROR if name == "ERROR" else p.RESPONSE | getattr(p, f"CMD_{name}")
            code = code | Mux(chosen[name], value, 0)
            length = length | Mux(chosen[name], lengths[name], 0)
        m.d.comb += [header.code.eq(code), header.length.eq(length)]

    def _payload(self, m, chosen, spk_rd, status, error, out, valid):
        """The payload byte (``out``) for the response ``chosen``, and its position.

        Identity bytes come from the spike RAM, the spikes three bytes an entry, the rest
        from a shift register loaded from the status word (or the error and its frame's
        code) when the response starts: the 8-byte head of a STEP response is ``cycles``,
        then ``timestep``. Returns the strobe that starts a response (``restart``) and the
        registers that choose the byte, by name (probes for the formal harness).

        Everything that chooses the byte or moves on to the next is a register set when the
        response starts, so that the transmitter's handshake enables them through a gate or
        two: the decode of ``resp`` and a byte counter in front of those enables were the
        critical path of the GW1NR-9 and the ECP5.
        """
        restart = Signal()
        # The response is an identity (`ident`), or a STEP (`step`), past its 8-byte head
        # when `head[0]` is low, then at byte `sp_j` of the spike entry at `rd_addr`.
        ident = Signal()
        step = Signal()
        head = Signal(8)
        # `step & ~head[0]`, a register of its own: the byte multiplexer then starts from
        # registers (that decode in front of it was the GW1NR-9's critical path).
        in_spikes = Signal()
        sp_j = Signal(2)
        # The RAM's address: the identity byte or the spike entry.
        spk_rd, ident_rd, ident_base = spk_rd
        rd_addr = Signal(range(max(ident_base + len(self.identity), self.neurons)))
        m.d.comb += spk_rd.addr.eq(rd_addr)
        ident_data = spk_rd.data[:8]
        if ident_rd is not None:
            m.d.comb += ident_rd.addr.eq(rd_addr)
            ident_data = ident_rd.data
        # The status-like payloads are read a byte at a time from the status word into `cur`,
        # a byte ahead of the transmitter: a multiplexer over the word straight in front of the
        # transmitter was the iCE40's critical path, and a shift register loaded from the word
        # (152 flip-flops, each behind a multiplexer of three sources) took about 300 cells of
        # the 2,048-neuron iCE40 board top. A response's first byte is chosen from three
        # (status byte 0, byte 5 for a STEP, the error); `src` is the byte of `word` that
        # `cur` takes next: the 8-byte head of a STEP response is bytes 5 to 8 (`cycles`),
        # then 1 to 4 (`timestep`), an error response the error, then its frame's code (byte
        # 20). The status word and the frame hold still while a response goes out.
        word = Cat(status, Const(0, 8), self.frame.payload.code)
        src = Signal(range(_STATUS_LENGTH + 3))
        cur = Signal(8)
        with m.If(restart):
            m.d.sync += [
                ident.eq(chosen.IDENTIFY),
                step.eq(chosen.STEP),
                head.eq(0xFF),
                in_spikes.eq(0),
                sp_j.eq(0),
                rd_addr.eq(Mux(chosen.IDENTIFY, ident_base, 0)),
                cur.eq(Mux(chosen.STEP, status[40:48], Mux(chosen.ERROR, error, status[:8]))),
                src.eq(Mux(chosen.STEP, 6, Mux(chosen.ERROR, _STATUS_LENGTH + 1, 1))),
            ]

        entry = spk_rd.data
        with m.If(ident):
            m.d.comb += out.eq(ident_data)
        with m.Elif(in_spikes):
            # The payload layout of spike_out: population, then index.
            pop = entry[: self.pop_width]
            index = Cat(entry[self.pop_width : self.spike_width], Const(0, 16))
            with m.Switch(sp_j):
                with m.Case(0):
                    m.d.comb += out.eq(pop)
                with m.Case(1):
                    m.d.comb += out.eq(index[:8])
                with m.Case(2):
                    m.d.comb += out.eq(index[8:16])
        with m.Else():
            m.d.comb += out.eq(cur)

        with m.If(valid & self.payload.ready):
            with m.If(~in_spikes):
                m.d.sync += [
                    cur.eq(word.word_select(src, 8)),
                    src.eq(Mux(step & (src == 8), 1, src + 1)),
                    head.eq(head[1:]),
                    in_spikes.eq(step & ~head[1]),
                ]
                with m.If(ident):
                    m.d.sync += rd_addr.eq(rd_addr + 1)
            with m.Elif(sp_j == 2):
                # The next entry's read lands before its first byte is chosen: that is at
                # least two cycles away.
                m.d.sync += [sp_j.eq(0), rd_addr.eq(rd_addr + 1)]
            with m.Else():
                m.d.sync += sp_j.eq(sp_j + 1)
        return restart, dict(step=step, head=head, in_spikes=in_spikes)
