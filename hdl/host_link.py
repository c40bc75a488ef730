"""The host link: framed commands over a byte stream, executed on a neuron array.

:class:`HostLink` receives frames (``docs/host-link.md``; constants and CRC in
:mod:`spikeforge.spec.protocol`) on a byte stream, checks them completely, and only then acts:
a STEP starts the array only after its whole frame passed the length, index and CRC checks, a CFG
write reaches the array's ``cfg`` port only after its CRC checked out. Anything else (a bad CRC, an
unknown command, a wrong length, a frame that stops arriving, a UART error) is answered with an
error frame and leaves the network untouched. After a header or CRC error the receiver first waits
for the line to stay quiet for ``timeout`` cycles, so that the rest of a broken frame is not read
as new frames, then answers.

:class:`HostLinkUART` puts the 8N1 UART of :mod:`spikeforge.hdl.uart` in front: serial ``rx`` and
``tx`` lines instead of byte streams.
"""

import struct

from amaranth.hdl import Cat, Const, Module, Mux, Signal, unsigned
from amaranth.lib import fifo, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from ..spec import protocol as p
from ..spec.limits import check_int
from .arith import bits_for
from .array import CfgMemory, NeuronArray
from .uart import UARTRx, UARTTx

__all__ = [
    "HostLink",
    "HostLinkUART",
    "TIMEOUT_RANGE",
    "MAX_INPUTS",
    "MAX_NEURONS",
    "STATES",
    "RX_STATES",
    "TX_STATES",
    "RESPONSES",
]

# The byte timeout: long enough for the gaps of a USB-serial bridge, short enough to fit 32 bits.
TIMEOUT_RANGE = (16, (1 << 32) - 1)
# The 16-bit LEN field: a STEP frame carries 2 bytes per input index, its response 8 + 3 bytes
# per output spike.
MAX_INPUTS = 0xFFFF // 2
MAX_NEURONS = (0xFFFF - 8) // 3

# The states of HostLink's one state machine. Receiving a frame: HUNT (between frames) to
# CHECK; dropping the rest of a broken frame: FLUSH; executing: ERROR, EXEC to STEP_DONE;
# answering: TX_SYNC to TX_END.
RX_STATES = ("CODE", "LEN0", "LEN1", "PAYLOAD", "CRC0", "CRC1")
TX_STATES = (
    "TX_SYNC",
    "TX_CODE",
    "TX_LEN0",
    "TX_LEN1",
    "TX_PAYLOAD",
    "TX_CRC0",
    "TX_CRC1",
    "TX_END",
)
# The responses, by the index HostLink keeps while answering.
RESPONSES = ("ERROR", "IDENTIFY", "STATUS", "STEP", "CFG", "RESET")
STATES = (
    "HUNT",
    *RX_STATES,
    "LEN_CHECK",
    "CRC_FOLD",
    "CHECK",
    "FLUSH",
    "ERROR",
    "EXEC",
    "RESET_WAIT",
    "CFG_WRITE",
    "FEED_WAIT",
    "FEED",
    "STEP_WAIT",
    "STEP_DONE",
    *TX_STATES,
)


def _crc16_terms():
    # The byte-wise CRC is linear over GF(2): run the bitwise algorithm on sets of input bits
    # (crc bits 0..15, then byte bits 16..23) once, so that each output bit is one flat XOR.
    value = [{n} for n in range(16)]
    for n in range(8):
        value[8 + n] = value[8 + n] ^ {16 + n}
    for _ in range(8):
        top = value[15]
        value = [set()] + value[:15]
        for n in range(16):
            if 0x1021 >> n & 1:
                value[n] = value[n] ^ top
    return [sorted(bits) for bits in value]


_CRC16_TERMS = _crc16_terms()


def _crc16_byte(crc, byte):
    """CRC-16/CCITT-FALSE of one byte as gateware: an XOR of input bits per output bit."""
    inputs = Cat(crc, byte)
    return Cat(*(Cat(*(inputs[n] for n in bits)).xor() for bits in _CRC16_TERMS))


class HostLink(wiring.Component):
    """The command engine of the host link around a :class:`NeuronArray`.

    Parameters
    ----------
    plan : ArrayPlan
        The network (``spikeforge.gen.compile.compile_network``); at most 65535 inputs, 255
        populations and 65535 LIF neurons (the frame fields are 8 and 16 bits).
    stages : int
        Pipeline stages of the array's neuron cores.
    timeout : int
        Clock cycles without a byte after which a started frame counts as truncated, and the
        quiet time that ends the flush after an error.
    clock_hz : int
        Reported by IDENTIFY (0 when unknown).
    runtime_weights : bool
        The array keeps its weights in a store without initial contents
        (``NeuronArray(runtime_weights=True)``, CFG weight writes are bursts); STATUS says so
        (flag bit 2).

    Attributes
    ----------
    rx : In(stream.Signature(8))
        Bytes from the host.
    tx : Out(stream.Signature(8))
        Bytes to the host.
    rx_error : In(1)
        Strobe: a byte was lost or garbled on the line (UART framing error or overrun).
    frame_ok, frame_error, spike : Out(1)
        Strobes for LEDs: a command executed, an error frame sent, an output spike.
    busy : Out(1)
        The array is running a step.
    array : NeuronArray
        The array (for back-door reads in tests).
    probes : dict
        Set by ``elaborate``: internal registers by name, and ``state``, a dict from each name
        of :data:`STATES` to a signal that is high in that state; for formal harnesses
        (:mod:`spikeforge.sim.formal_host_link`).
    """

    def __init__(self, plan, *, stages=4, timeout=4096, clock_hz=0, runtime_weights=False):
        neurons = sum(q.size for q in plan.lif_populations)
        try:
            check_int("timeout", timeout, *TIMEOUT_RANGE)
            check_int("clock_hz", clock_hz, 0, (1 << 32) - 1)
            if plan.n_inputs > MAX_INPUTS or len(plan.populations) > 0xFF or neurons > MAX_NEURONS:
                raise ValueError(
                    f"the host link carries at most {MAX_INPUTS} inputs, 255 "
                    f"populations and {MAX_NEURONS} LIF neurons, not "
                    f"{plan.n_inputs}, {len(plan.populations)} and {neurons}"
                )
            self.array = NeuronArray(plan, stages=stages, runtime_weights=runtime_weights)
        except (TypeError, ValueError):
            # A refused component was never usable; without this Amaranth warns, when it is
            # collected, that it was "created but never used".
            self._MustUse__silence = True
            raise
        self.plan = plan
        self.stages = stages
        # Kept here, not read from the array: the formal harness replaces the array by a model.
        self.runtime_weights = runtime_weights
        self.timeout = timeout
        self.clock_hz = clock_hz
        self.neurons = neurons
        self.data_bytes = (self.array.cfg_data_width + 7) // 8
        self.identity = struct.pack(
            p.IDENTITY_FORMAT,
            p.MAGIC,
            p.VERSION,
            plan.lanes,
            stages,
            plan.v_width,
            plan.w_width,
            plan.acc_width,
            self.array.cfg_addr_width,
            self.array.cfg_data_width,
            len(plan.populations),
            plan.n_inputs,
            plan.slots,
            plan.weight_words,
            neurons,
            clock_hz,
            bytes.fromhex(plan.network_hash or "00" * 32),
            bytes.fromhex(plan.layout_hash()),
        )
        super().__init__(
            {
                "rx": In(stream.Signature(8)),
                "tx": Out(stream.Signature(8)),
                "rx_error": In(1),
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
        m.submodules.array = array
        n_in = plan.n_inputs
        cfg_len = 4 + self.data_bytes
        index_width = len(array.spike_in.payload.index)

        # Input indices of a STEP frame, and the output spikes of the last step.
        idx_mem = memory.Memory(shape=unsigned(index_width), depth=max(n_in, 1), init=[])
        spk_width = array.pop_width + array.index_width
        # The identity sits past the spike entries, one byte per entry: in the block RAM the
        # spikes take anyway rather than in a multiplexer of constants.
        ident_base = self.neurons
        spk_mem = memory.Memory(
            shape=unsigned(max(spk_width, 8)),
            depth=ident_base + len(self.identity),
            init=[0] * ident_base + list(self.identity),
        )
        m.submodules.idx_mem = idx_mem
        m.submodules.spk_mem = spk_mem
        idx_wr = idx_mem.write_port()
        idx_rd = idx_mem.read_port()
        spk_wr = spk_mem.write_port()
        spk_rd = spk_mem.read_port()

        # --- The CRC, shared by receiver and transmitter (they never run at once) --------------
        # It folds in the byte held in `byte_reg` one cycle after the byte got there, so that
        # its input is two registers: the receiver's byte select and the transmitter's byte
        # multiplexer end in `byte_reg`, not in the CRC.
        crc = Signal(16, init=p.CRC_INIT)
        byte_reg = Signal(8)  # the last byte received, or the byte being sent
        fold = Signal()
        crc_next = Signal(16)
        m.d.comb += crc_next.eq(_crc16_byte(crc, byte_reg))
        m.d.sync += fold.eq(0)
        with m.If(fold):
            m.d.sync += crc.eq(crc_next)

        # --- Receiver registers ------------------------------------------------------------------
        code = Signal(8)
        # Payload bytes still to come; a LEN that passed the length check fits.
        left = Signal(range(max(2 * n_in, cfg_len) + 1))
        timer = Signal(range(self.timeout + 1))
        err_code = Signal(range(max(p.ERRORS) + 1))
        line_bad = Signal()
        half = Signal()
        lo_byte = Signal(8)  # the low byte of LEN, or of a STEP index
        n_idx = Signal(range(n_in + 1))
        prev = Signal(index_width)
        have_prev = Signal()
        bad_payload = Signal()
        cfg_buf = Signal(8 * cfg_len)
        feed = Signal(range(n_in + 1))
        # Status counters.
        frames = Signal(32)
        crc_errors = Signal(16)
        timeouts = Signal(16)
        errors = Signal(16)
        modified = Signal()  # a CFG write since configuration: the weights may differ

        byte = self.rx.payload
        got = Signal()
        m.d.comb += got.eq(self.rx.valid & self.rx.ready)
        with m.If(self.rx_error):
            m.d.sync += line_bad.eq(1)

        # --- Output spikes, collected whenever the array produces them ------------------------
        # At most one per LIF neuron and step.
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

        # --- Transmitter registers ---------------------------------------------------------------
        # The response to send, an index into RESPONSES; TX_SYNC loads the rest from it, so
        # that the many ways into an answer set only this.
        resp = Signal(range(len(RESPONSES)))
        R = {name: n for n, name in enumerate(RESPONSES)}
        t_len = Signal(16)  # LEN, then the payload bytes still to send
        # Position in an identity, status or error payload. The 8-byte head of a STEP response
        # (cycles, timestep) is bytes 5 to 8, then 1 to 4 of the status, which share its
        # multiplexer; `t_spikes` then says "in the spikes".
        t_idx = Signal(bits_for(max(len(self.identity), _status_length()) - 1))
        t_spikes = Signal()
        sp_i = Signal(range(self.neurons + 1))
        sp_j = Signal(2)
        t_full = Signal()  # `byte_reg` holds a byte for `tx`
        m.d.comb += [self.tx.valid.eq(t_full), self.tx.payload.eq(byte_reg)]
        with m.If(self.tx.valid & self.tx.ready):
            m.d.sync += t_full.eq(0)
        m.d.comb += spk_rd.addr.eq(Mux(resp == R["IDENTIFY"], ident_base + t_idx, sp_i))
        m.d.comb += idx_rd.addr.eq(feed)

        def respond(name):
            m.d.sync += resp.eq(R[name])
            m.next = "TX_SYNC"

        def send(value, crc_it):
            # Called under `~t_full`: the byte goes to `tx` from the next cycle on.
            m.d.sync += [byte_reg.eq(value), t_full.eq(1), fold.eq(crc_it)]

        def fail(code_value, flush):
            # Counted in ERROR, which every error passes once: the counters' enables then
            # depend on two registers, not on every way into an error.
            m.d.sync += [err_code.eq(code_value), timer.eq(0)]
            m.next = "FLUSH" if flush else "ERROR"

        def in_frame(state_body):
            # Common to the states inside a frame: UART errors, the byte timeout, the CRC.
            with m.If(line_bad):
                m.d.sync += line_bad.eq(0)
                fail(p.ERR_LINE, flush=True)
            with m.Elif(got):
                m.d.sync += [timer.eq(0), byte_reg.eq(byte), fold.eq(1)]
                state_body()
            with m.Elif(timer == self.timeout):
                fail(p.ERR_TIMEOUT, flush=False)
            with m.Else():
                m.d.sync += timer.eq(timer + 1)

        # A STEP index is checked and stored in the cycle after its high byte came, from
        # registers: `lo_byte` and `byte_reg` (a next byte can only change `lo_byte` at the end
        # of this cycle).
        index_ready = Signal()
        m.d.sync += index_ready.eq(0)
        with m.If(index_ready):
            index = Cat(lo_byte, byte_reg)
            # An index below n_in fits `prev`, so comparing the low bits is enough when the
            # first term is false.
            with m.If((index >= n_in) | (have_prev & (index[:index_width] <= prev))):
                m.d.sync += bad_payload.eq(1)
            m.d.comb += [idx_wr.addr.eq(n_idx), idx_wr.data.eq(index), idx_wr.en.eq(1)]
            m.d.sync += [n_idx.eq(n_idx + 1), prev.eq(index), have_prev.eq(1)]

        # The range check of a CFG write, registered: `cfg_buf` is still from the frame's last
        # payload byte, four cycles before EXEC uses this.
        cfg_ok = Signal()
        mem, lane, addr = cfg_buf[:8], cfg_buf[8:16], cfg_buf[16:32]
        m.d.sync += cfg_ok.eq(
            (lane < plan.lanes)
            & (
                ((mem == CfgMemory.WEIGHTS) & (addr < plan.weight_words))
                | (((mem == CfgMemory.BIAS) | (mem == CfgMemory.STATE)) & (addr < plan.slots))
                | ((mem == CfgMemory.PARAMS) & (addr < len(plan.lif_populations)))
            )
        )

        # The array's `start` and `reset_state`, high in EXEC for a STEP or RESET: set by
        # CHECK, so that they come straight from a register into the array's control.
        start = Signal()
        reset = Signal()
        m.d.sync += [start.eq(0), reset.eq(0)]
        m.d.comb += [array.start.eq(start), array.reset_state.eq(reset)]

        receiving = Signal()
        m.d.comb += self.rx.ready.eq(receiving)

        with m.FSM() as fsm:
            with m.State("HUNT"):
                m.d.comb += receiving.eq(1)
                # Set whatever comes: none is used here, and the received byte then only
                # chooses the next state, not also the enables of these registers.
                m.d.sync += [crc.eq(p.CRC_INIT), timer.eq(0), code.eq(0)]
                with m.If(line_bad):
                    m.d.sync += line_bad.eq(0)
                    fail(p.ERR_LINE, flush=True)
                with m.Elif(got & (byte == p.SYNC)):
                    m.next = "CODE"

            with m.State("CODE"):
                m.d.comb += receiving.eq(1)

                def body():
                    m.d.sync += code.eq(byte)
                    m.next = "LEN0"

                in_frame(body)

            with m.State("LEN0"):
                m.d.comb += receiving.eq(1)

                def body():
                    m.d.sync += lo_byte.eq(byte)
                    m.next = "LEN1"

                in_frame(body)

            with m.State("LEN1"):
                m.d.comb += receiving.eq(1)

                def body():
                    m.next = "LEN_CHECK"

                in_frame(body)

            with m.State("LEN_CHECK"):
                # The header is checked from registers (LEN's high byte is in `byte_reg`), a
                # cycle after it arrived, so that the UART's byte is not the start of this path.
                new_length = Cat(lo_byte, byte_reg)
                m.d.sync += [
                    left.eq(new_length),
                    half.eq(0),
                    n_idx.eq(0),
                    have_prev.eq(0),
                    bad_payload.eq(0),
                ]
                ok = Signal()
                known = Signal()
                with m.Switch(code):
                    with m.Case(p.CMD_IDENTIFY, p.CMD_STATUS, p.CMD_RESET, p.CMD_LAST):
                        m.d.comb += [known.eq(1), ok.eq(new_length == 0)]
                    with m.Case(p.CMD_CFG):
                        m.d.comb += [known.eq(1), ok.eq(new_length == cfg_len)]
                    with m.Case(p.CMD_STEP):
                        m.d.comb += [known.eq(1), ok.eq(~new_length[0] & (new_length <= 2 * n_in))]
                with m.If(~known):
                    fail(p.ERR_COMMAND, flush=True)
                with m.Elif(~ok):
                    fail(p.ERR_LENGTH, flush=True)
                with m.Elif(new_length == 0):
                    m.next = "CRC0"
                with m.Else():
                    m.next = "PAYLOAD"

            with m.State("PAYLOAD"):
                m.d.comb += receiving.eq(1)

                def body():
                    m.d.sync += left.eq(left - 1)
                    with m.If(code == p.CMD_STEP):
                        m.d.sync += half.eq(~half)
                        with m.If(~half):
                            m.d.sync += lo_byte.eq(byte)
                        with m.Else():
                            m.d.sync += index_ready.eq(1)
                    with m.Else():
                        m.d.sync += cfg_buf.eq(Cat(cfg_buf[8:], byte))
                    with m.If(left == 1):
                        m.next = "CRC0"

                in_frame(body)

            with m.State("CRC0"):
                m.d.comb += receiving.eq(1)

                def body():
                    m.next = "CRC1"

                in_frame(body)

            with m.State("CRC1"):
                m.d.comb += receiving.eq(1)

                def body():
                    m.next = "CRC_FOLD"

                in_frame(body)

            with m.State("CRC_FOLD"):
                # The CRC folds in the frame's last byte (and the last STEP index is checked).
                m.next = "CHECK"

            with m.State("CHECK"):
                # Over the whole frame the CRC leaves 0.
                with m.If(crc != 0):
                    fail(p.ERR_CRC, flush=True)
                with m.Elif(bad_payload):
                    fail(p.ERR_PAYLOAD, flush=False)
                with m.Else():
                    m.d.sync += [start.eq(code == p.CMD_STEP), reset.eq(code == p.CMD_RESET)]
                    m.next = "EXEC"

            with m.State("FLUSH"):
                # Drop bytes until the line has been quiet for `timeout` cycles.
                m.d.comb += receiving.eq(1)
                m.d.sync += line_bad.eq(0)
                with m.If(got | line_bad | self.rx_error):
                    m.d.sync += timer.eq(0)
                with m.Elif(timer == self.timeout):
                    m.next = "ERROR"
                with m.Else():
                    m.d.sync += timer.eq(timer + 1)

            with m.State("ERROR"):
                m.d.comb += self.frame_error.eq(1)
                with m.Switch(err_code):
                    with m.Case(p.ERR_CRC):
                        m.d.sync += crc_errors.eq(crc_errors + 1)
                    with m.Case(p.ERR_TIMEOUT):
                        m.d.sync += timeouts.eq(timeouts + 1)
                    with m.Default():
                        m.d.sync += errors.eq(errors + 1)
                respond("ERROR")

            with m.State("EXEC"):
                m.d.comb += self.frame_ok.eq(1)
                m.d.sync += frames.eq(frames + 1)
                with m.Switch(code):
                    with m.Case(p.CMD_IDENTIFY):
                        respond("IDENTIFY")
                    with m.Case(p.CMD_STATUS):
                        respond("STATUS")
                    with m.Case(p.CMD_LAST):
                        respond("STEP")
                    with m.Case(p.CMD_RESET):
                        m.d.sync += n_spk.eq(0)
                        m.next = "RESET_WAIT"
                    with m.Case(p.CMD_CFG):
                        with m.If(cfg_ok):
                            m.next = "CFG_WRITE"
                        with m.Else():
                            fail(p.ERR_PAYLOAD, flush=False)
                    with m.Case(p.CMD_STEP):
                        m.d.sync += [n_spk.eq(0), feed.eq(0)]
                        m.next = "FEED_WAIT"

            with m.State("RESET_WAIT"):
                with m.If(~array.busy):
                    respond("RESET")

            with m.State("CFG_WRITE"):
                m.d.comb += [
                    array.cfg.valid.eq(1),
                    array.cfg.payload.mem.eq(cfg_buf[:2]),
                    array.cfg.payload.lane.eq(cfg_buf[8:11]),
                    array.cfg.payload.addr.eq(cfg_buf[16:32]),
                    array.cfg.payload.data.eq(cfg_buf[32:]),
                ]
                with m.If(array.cfg.ready):
                    m.d.sync += modified.eq(1)
                    respond("CFG")

            with m.State("FEED_WAIT"):
                # The index memory's read of address `feed` lands in the next cycle.
                m.next = "FEED"

            with m.State("FEED"):
                m.d.comb += array.spike_in.valid.eq(1)
                last = feed == n_idx
                with m.If(last):
                    m.d.comb += array.spike_in.payload.end.eq(1)
                with m.Else():
                    m.d.comb += array.spike_in.payload.index.eq(idx_rd.data)
                with m.If(array.spike_in.ready):
                    with m.If(last):
                        m.next = "STEP_WAIT"
                    with m.Else():
                        m.d.sync += feed.eq(feed + 1)
                        m.next = "FEED_WAIT"

            with m.State("STEP_WAIT"):
                with m.If(array.done):
                    m.next = "STEP_DONE"

            with m.State("STEP_DONE"):
                # `cycles` and `timestep` of the array are updated now.
                respond("STEP")

            # The response, one state per part of the frame. Each byte is chosen into
            # `byte_reg` while `tx` is empty and offered from the next cycle: two cycles a
            # byte at most, far quicker than the UART, and no multiplexer in front of `tx`
            # or the CRC.
            with m.State("TX_SYNC"):
                # Entered with `tx` empty: one cycle.
                m.d.sync += [
                    t_idx.eq(Mux(resp == R["STEP"], 5, 0)),
                    t_spikes.eq(0),
                    crc.eq(p.CRC_INIT),
                    sp_i.eq(0),
                    sp_j.eq(0),
                ]
                with m.Switch(resp):
                    for name, length in [
                        ("ERROR", 2),
                        ("IDENTIFY", len(self.identity)),
                        ("STATUS", _status_length()),
                        ("STEP", 8 + n_spk + (n_spk << 1)),
                        ("CFG", 0),
                        ("RESET", 0),
                    ]:
                        with m.Case(R[name]):
                            m.d.sync += t_len.eq(length)
                with m.If(~t_full):
                    send(p.SYNC, crc_it=0)
                    m.next = "TX_CODE"

            with m.State("TX_CODE"):
                t_code = Signal(8)
                with m.Switch(resp):
                    for name in RESPONSES:
                        with m.Case(R[name]):
                            m.d.comb += t_code.eq(
                                p.RSP_ERROR
                                if name == "ERROR"
                                else p.RESPONSE | getattr(p, f"CMD_{name}")
                            )
                with m.If(~t_full):
                    send(t_code, crc_it=1)
                    m.next = "TX_LEN0"

            with m.State("TX_LEN0"):
                with m.If(~t_full):
                    send(t_len[:8], crc_it=1)
                    m.next = "TX_LEN1"

            with m.State("TX_LEN1"):
                with m.If(~t_full):
                    send(t_len[8:], crc_it=1)
                    with m.If(t_len == 0):
                        m.next = "TX_CRC0"
                    with m.Else():
                        m.next = "TX_PAYLOAD"

            with m.State("TX_PAYLOAD"):
                out = Signal(8)
                spikes = resp == R["STEP"]
                in_spikes = spikes & t_spikes
                if self.runtime_weights:
                    # Flag bit 2: runtime weights; with `modified` low the host knows that
                    # they hold nothing loaded yet.
                    flags = Cat(array.busy, modified, Const(1), Const(0, 5))
                else:
                    flags = Cat(array.busy, modified, Const(0, 6))
                status = Cat(
                    flags, array.timestep, array.cycles, frames, crc_errors, timeouts, errors
                )
                entry = spk_rd.data
                with m.If(resp == R["IDENTIFY"]):
                    m.d.comb += out.eq(entry[:8])
                with m.Elif(resp == R["ERROR"]):
                    m.d.comb += out.eq(Mux(t_idx[0], code, err_code))
                with m.Elif(in_spikes):
                    # The payload layout of spike_out: population, then index.
                    pop = entry[: array.pop_width]
                    index = Cat(entry[array.pop_width : spk_width], Const(0, 16))
                    with m.Switch(sp_j):
                        with m.Case(0):
                            m.d.comb += out.eq(pop)
                        with m.Case(1):
                            m.d.comb += out.eq(index[:8])
                        with m.Case(2):
                            m.d.comb += out.eq(index[8:16])
                with m.Else():
                    m.d.comb += out.eq(
                        status.word_select(t_idx[: bits_for(_status_length() - 1)], 8)
                    )
                with m.If(~t_full):
                    send(out, crc_it=1)
                    m.d.sync += t_len.eq(t_len - 1)
                    with m.If(spikes & ~t_spikes & (t_idx == 8)):
                        m.d.sync += t_idx.eq(1)
                    with m.Elif(spikes & ~t_spikes & (t_idx == 4)):
                        m.d.sync += t_spikes.eq(1)
                    with m.Elif(~in_spikes):
                        m.d.sync += t_idx.eq(t_idx + 1)
                    with m.Elif(sp_j == 2):
                        # The next entry's read lands before its first byte is chosen: that
                        # is at least two cycles away.
                        m.d.sync += [sp_j.eq(0), sp_i.eq(sp_i + 1)]
                    with m.Else():
                        m.d.sync += sp_j.eq(sp_j + 1)
                    with m.If(t_len == 1):
                        m.next = "TX_CRC0"

            with m.State("TX_CRC0"):
                # The last payload byte was folded in while it waited for `tx`.
                with m.If(~t_full):
                    send(crc[8:], crc_it=0)
                    m.next = "TX_CRC1"

            with m.State("TX_CRC1"):
                with m.If(~t_full):
                    send(crc[:8], crc_it=0)
                    m.next = "TX_END"

            with m.State("TX_END"):
                # No new frame before the answer is out.
                with m.If(~t_full):
                    m.next = "HUNT"

            states = {name: fsm.ongoing(name) for name in STATES}
        self.probes = dict(
            state=states,
            timer=timer,
            line_bad=line_bad,
            code=code,
            lo_byte=lo_byte,
            byte_reg=byte_reg,
            fold=fold,
            crc=crc,
            left=left,
            half=half,
            n_idx=n_idx,
            index_ready=index_ready,
            bad_payload=bad_payload,
            feed=feed,
            n_spk=n_spk,
            resp=resp,
            t_len=t_len,
            t_full=t_full,
            start=start,
            reset=reset,
        )
        return m


def _status_length():
    return struct.calcsize(p.STATUS_FORMAT)


class HostLinkUART(wiring.Component):
    """:class:`HostLink` behind an 8N1 UART: the serial lines of a board's USB-serial bridge.

    Parameters
    ----------
    plan : ArrayPlan
    divisor : int
        Clock cycles per bit (``spikeforge.hdl.uart.uart_divisor``).
    stages : int
    timeout : int, optional
        Byte timeout in cycles; default 64 byte times.
    clock_hz : int
    runtime_weights : bool
        As :class:`HostLink`.

    Attributes
    ----------
    rx : In(1)
        Serial line from the host (idle high).
    tx : Out(1)
        Serial line to the host (idle high).
    frame_ok, frame_error, spike, busy : Out(1)
        As :class:`HostLink`.
    link : HostLink
    """

    def __init__(self, plan, divisor, *, stages=4, timeout=None, clock_hz=0, runtime_weights=False):
        self.uart_rx = UARTRx(divisor)
        self.uart_tx = UARTTx(divisor)
        self.link = HostLink(
            plan,
            stages=stages,
            clock_hz=clock_hz,
            runtime_weights=runtime_weights,
            timeout=640 * divisor if timeout is None else timeout,
        )
        super().__init__(
            {
                "rx": In(1, init=1),
                "tx": Out(1, init=1),
                "frame_ok": Out(1),
                "frame_error": Out(1),
                "spike": Out(1),
                "busy": Out(1),
            }
        )

    def elaborate(self, platform):
        m = Module()
        m.submodules.uart_rx = self.uart_rx
        m.submodules.uart_tx = self.uart_tx
        m.submodules.link = link = self.link
        # Two bytes of buffer between the receiver and the link: the link's `ready` is decoded
        # from its state register and the receiver's overrun logic feeds the link's error input,
        # so a direct connection would close a combinational loop through both state machines
        # (the iCE40 critical path). Bytes arrive every 10 bit times, so the buffer never fills
        # unless the link is busy, as the receiver's single register did before.
        m.submodules.rx_fifo = rx_fifo = fifo.SyncFIFOBuffered(width=8, depth=2)
        m.d.comb += [
            rx_fifo.w_data.eq(self.uart_rx.data.payload),
            rx_fifo.w_en.eq(self.uart_rx.data.valid),
            self.uart_rx.data.ready.eq(rx_fifo.w_rdy),
            link.rx.valid.eq(rx_fifo.r_rdy),
            link.rx.payload.eq(rx_fifo.r_data),
            rx_fifo.r_en.eq(link.rx.ready),
        ]
        wiring.connect(m, link.tx, self.uart_tx.data)
        m.d.comb += [
            self.uart_rx.rx.eq(self.rx),
            self.tx.eq(self.uart_tx.tx),
            link.rx_error.eq(self.uart_rx.error | self.uart_rx.overflow),
            self.frame_ok.eq(link.frame_ok),
            self.frame_error.eq(link.frame_error),
            self.spike.eq(link.spike),
            self.busy.eq(link.busy),
        ]
        return m
