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
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from ..spec import protocol as p
from ..spec.limits import check_int
from ._validate import validating
from .arith import bits_for, ceil_div
from .array import CfgMemory
from .array_ports import LANE_WIDTH
from .host_link_fsm import OneHotFSM
from .host_link_rx import MAX_INPUTS, FrameLayout
from .host_link_tx import HeaderLayout

__all__ = [
    "CommandExecutor",
    "CommandLayout",
    "ResponseLayout",
    "decode_command",
    "MAX_NEURONS",
    "RESPONSES",
    "EXEC_STATES",
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
_STATUS_LENGTH = struct.calcsize(p.STATUS_FORMAT)


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
        of :data:`EXEC_STATES` to a signal that is high in that state; for formal harnesses
        (:mod:`spikeforge.sim.formal_host_link`).
    """

    def __init__(self, plan, array, *, identity, runtime_weights=False):
        neurons = sum(q.size for q in plan.lif_populations)
        with validating(self):
            if not isinstance(identity, bytes) or not 1 <= len(identity) <= 0xFF:
                raise TypeError(f"identity must be 1 to 255 bytes, not {identity!r}")
            if not isinstance(runtime_weights, bool):
                raise TypeError(f"runtime_weights must be True or False, not {runtime_weights!r}")
            check_int("n_inputs", plan.n_inputs, 0, MAX_INPUTS)
            check_int("neurons", neurons, 1, MAX_NEURONS)
        self.plan = plan
        self.neurons = neurons
        self.identity = identity
        self.runtime_weights = runtime_weights
        self.pop_width = array.pop_width
        self.spike_width = array.pop_width + array.index_width
        index_width = bits_for(max(plan.n_inputs - 1, 0))
        super().__init__(
            {
                "frame": In(
                    stream.Signature(FrameLayout(plan.n_inputs, ceil_div(array.cfg_data_width, 8)))
                ),
                "indices": In(
                    memory.ReadPort.Signature(
                        addr_width=bits_for(max(plan.n_inputs, 1) - 1),
                        shape=unsigned(index_width),
                    )
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

        n_spk, spk_rd = self._collect(m)
        feed = Signal(range(plan.n_inputs + 1))
        last = Signal()  # `feed` is past the frame's last index
        command = Signal(CommandLayout)  # the frame's command, decoded when it is taken on
        offer = Signal()  # in FEED: an input event (or the end) is on offer to the array
        m.d.comb += self.indices.addr.eq(feed)
        # The error answered: the receiver's, or one found here (its frame passed the
        # receiver's checks, error 0): a STEP for another timestep, a CFG write out of range.
        error = Mux(
            frame.error != 0, frame.error, Mux(command.stale, p.ERR_SEQUENCE, p.ERR_PAYLOAD)
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
        self._header(m, chosen, n_spk)
        restart, payload_probes = self._payload(m, chosen, spk_rd, status, error)

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

        with OneHotFSM(m, EXEC_STATES) as fsm:
            with fsm.state("IDLE"):
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
                    m.d.sync += [n_spk.eq(0), feed.eq(0)]
                    fsm.goto("FEED_WAIT")
                with m.Elif(command.stale):
                    fsm.goto("ERROR")

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
                m.d.sync += [last.eq(feed == frame.count), offer.eq(1)]
                fsm.goto("FEED")

            with fsm.state("FEED"):
                # `offer` is high in this state, a register of its own instead of a decode of
                # the state; the array ignores `index` in the `end` item.
                m.d.comb += [
                    array.spike_in.valid.eq(offer),
                    array.spike_in.payload.end.eq(last),
                    array.spike_in.payload.index.eq(self.indices.data),
                ]
                with m.If(array.spike_in.ready):
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

            with fsm.state("ANSWER"):
                # One cycle: the transmitter is idle and takes the header at once.
                m.d.comb += [self.header.valid.eq(1), restart.eq(1)]
                with m.If(self.header.ready):
                    m.d.comb += counted.eq(chosen.ERROR)
                    fsm.goto("SEND")

            with fsm.state("SEND"):
                m.d.comb += self.payload.valid.eq(1)
                with m.If(self.sent):
                    # The frame is done with: the receiver hunts for the next.
                    m.d.comb += self.frame.ready.eq(1)
                    fsm.goto("IDLE")

            states = {name: fsm.ongoing(name) for name in EXEC_STATES}
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

    def _collect(self, m):
        """The output spikes of a step, collected whenever the array produces them.

        They go to a block RAM, at most one per LIF neuron and step. The identity sits past
        them, one byte per entry: in the block RAM the spikes take anyway rather than in a
        multiplexer of constants; unless the spikes take more than one 256-word block and the
        identity would take the RAM past the power of two of words they round up to. Then it
        is a memory of its own, read at the same address: past the 2,048 spikes of the
        2,048-neuron iCE40 board top it made 2,115 words, which Yosys built of 256 x 16 blocks
        stacked in depth, and the read multiplexer over them was that top's critical path
        (2,048 x 12 take six 2048 x 2 blocks side by side, read without one; the identity went
        to logic). Returns the spike count, the read port of the spikes, that of the identity
        (None when it is in the spikes' RAM) and the address of its first byte.
        """
        array = self.array
        neurons = self.neurons
        apart = neurons > 256 and neurons + len(self.identity) > 1 << bits_for(neurons - 1)
        ident_base = 0 if apart else neurons
        spk_mem = memory.Memory(
            shape=unsigned(self.spike_width if apart else max(self.spike_width, 8)),
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
        n_spk = Signal(range(self.neurons + 1))
        m.d.comb += [
            array.spike_out.ready.eq(1),
            spk_wr.addr.eq(n_spk),
            spk_wr.data.eq(array.spike_out.payload.as_value()),
            # (The array sends each neuron's spike at most once a step; the guard keeps even a
            # faulty one off the identity.)
            spk_wr.en.eq(array.spike_out.valid & (n_spk != self.neurons)),
            self.spike.eq(array.spike_out.valid),
            self.busy.eq(array.busy),
        ]
        with m.If(array.spike_out.valid):
            m.d.sync += n_spk.eq(n_spk + 1)
        return n_spk, (spk_rd, ident_rd, ident_base)

    def _header(self, m, chosen, n_spk):
        """The header offered for the response ``chosen``: its code and payload length."""
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
        m.d.comb += [self.header.payload.code.eq(code), self.header.payload.length.eq(length)]

    def _payload(self, m, chosen, spk_rd, status, error):
        """The payload byte on offer for the response ``chosen``, and its position.

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

        out = self.payload.payload
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

        with m.If(self.payload.valid & self.payload.ready):
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
