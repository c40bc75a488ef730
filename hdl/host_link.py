"""The host link: framed commands over a byte stream, executed on a neuron array.

:class:`HostLink` receives frames (``docs/host-link.md``; constants and CRC in
:mod:`spikeforge.boards.protocol`) on a byte stream, checks them completely, and only then acts:
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

from amaranth.hdl import Cat, Const, Module, Signal, unsigned
from amaranth.lib import memory, stream, wiring
from amaranth.lib.wiring import In, Out

from ..boards import protocol as p
from ..sim.params import check_int
from .arith import bits_for
from .array import CFG_BIAS, CFG_PARAMS, CFG_STATE, CFG_WEIGHTS, NeuronArray
from .uart import UARTRx, UARTTx

__all__ = ["HostLink", "HostLinkUART", "TIMEOUT_RANGE", "MAX_INPUTS", "MAX_NEURONS"]

# The byte timeout: long enough for the gaps of a USB-serial bridge, short enough to fit 32 bits.
TIMEOUT_RANGE = (16, (1 << 32) - 1)
# The 16-bit LEN field: a STEP frame carries 2 bytes per input index, its response 8 + 3 bytes
# per output spike.
MAX_INPUTS = 0xFFFF // 2
MAX_NEURONS = (0xFFFF - 8) // 3


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
    """

    def __init__(self, plan, *, stages=4, timeout=4096, clock_hz=0):
        neurons = sum(q.size for q in plan.lif_populations)
        try:
            check_int("timeout", timeout, *TIMEOUT_RANGE)
            check_int("clock_hz", clock_hz, 0, (1 << 32) - 1)
            if (plan.n_inputs > MAX_INPUTS or len(plan.populations) > 0xFF
                    or neurons > MAX_NEURONS):
                raise ValueError(f"the host link carries at most {MAX_INPUTS} inputs, 255 "
                                 f"populations and {MAX_NEURONS} LIF neurons, not "
                                 f"{plan.n_inputs}, {len(plan.populations)} and {neurons}")
        except (TypeError, ValueError):
            # A refused component was never usable; without this Amaranth warns, when it is
            # collected, that it was "created but never used".
            self._MustUse__silence = True
            raise
        self.array = NeuronArray(plan, stages=stages)
        self.plan = plan
        self.stages = stages
        self.timeout = timeout
        self.clock_hz = clock_hz
        self.neurons = neurons
        self.data_bytes = (self.array.cfg_data_width + 7) // 8
        self.identity = struct.pack(
            p.IDENTITY_FORMAT, p.MAGIC, p.VERSION, plan.lanes, stages, plan.v_width,
            plan.w_width, plan.acc_width, self.array.cfg_addr_width, self.array.cfg_data_width,
            len(plan.populations), plan.n_inputs, plan.slots, plan.weight_words, neurons,
            clock_hz, bytes.fromhex(plan.network_hash or "00" * 32))
        super().__init__({
            "rx": In(stream.Signature(8)),
            "tx": Out(stream.Signature(8)),
            "rx_error": In(1),
            "frame_ok": Out(1),
            "frame_error": Out(1),
            "spike": Out(1),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        plan = self.plan
        array = self.array
        m.submodules.array = array
        n_in = plan.n_inputs
        cfg_len = 4 + self.data_bytes

        # Input indices of a STEP frame, and the output spikes of the last step.
        idx_mem = memory.Memory(shape=unsigned(16), depth=max(n_in, 1), init=[])
        spk_width = array.pop_width + array.index_width
        spk_mem = memory.Memory(shape=unsigned(spk_width), depth=max(self.neurons, 1), init=[])
        m.submodules.idx_mem = idx_mem
        m.submodules.spk_mem = spk_mem
        idx_wr = idx_mem.write_port()
        idx_rd = idx_mem.read_port()
        spk_wr = spk_mem.write_port()
        spk_rd = spk_mem.read_port()

        # --- Receiver registers ------------------------------------------------------------------
        code = Signal(8)
        length = Signal(16)
        count = Signal(16)
        crc = Signal(16, init=p.CRC_INIT)
        timer = Signal(range(self.timeout + 1))
        err_code = Signal(8)
        line_bad = Signal()
        half = Signal()
        idx_lo = Signal(8)
        n_idx = Signal(16)
        prev = Signal(16)
        have_prev = Signal()
        bad_payload = Signal()
        cfg_buf = Signal(8 * cfg_len)
        feed = Signal(16)
        # Status counters.
        frames = Signal(32)
        crc_errors = Signal(16)
        timeouts = Signal(16)
        errors = Signal(16)
        modified = Signal()     # a CFG write since configuration: the weights may differ

        byte = self.rx.payload
        got = Signal()
        m.d.comb += got.eq(self.rx.valid & self.rx.ready)
        crc_next = Signal(16)
        m.d.comb += crc_next.eq(_crc16_byte(crc, byte))
        with m.If(self.rx_error):
            m.d.sync += line_bad.eq(1)

        # --- Output spikes, collected whenever the array produces them ------------------------
        n_spk = Signal(16)
        m.d.comb += [
            array.spike_out.ready.eq(1),
            spk_wr.addr.eq(n_spk),
            spk_wr.data.eq(array.spike_out.payload.as_value()),
            spk_wr.en.eq(array.spike_out.valid),
            self.spike.eq(array.spike_out.valid),
            self.busy.eq(array.busy),
        ]
        with m.If(array.spike_out.valid):
            m.d.sync += n_spk.eq(n_spk + 1)

        # --- Transmitter registers ---------------------------------------------------------------
        KIND_NONE, KIND_IDENT, KIND_STATUS, KIND_SPIKES, KIND_ERROR = range(5)
        t_code = Signal(8)
        t_len = Signal(16)
        t_kind = Signal(range(5))
        t_pos = Signal(17)
        t_crc = Signal(16)
        # The CRC takes in each sent byte one cycle later (during TX_FETCH): folding it in the
        # cycle that selects the byte put the byte multiplexer and the CRC in one path, which set
        # the board's Fmax.
        crc_byte = Signal(8)
        crc_pending = Signal()
        with m.If(crc_pending):
            m.d.sync += [t_crc.eq(_crc16_byte(t_crc, crc_byte)), crc_pending.eq(0)]
        sp_i = Signal(16)
        sp_j = Signal(2)
        m.d.comb += spk_rd.addr.eq(sp_i)
        m.d.comb += idx_rd.addr.eq(feed)

        def respond(code_value, kind, length_value):
            m.d.sync += [t_code.eq(code_value), t_kind.eq(kind), t_len.eq(length_value),
                         t_pos.eq(0), t_crc.eq(p.CRC_INIT), sp_i.eq(0), sp_j.eq(0)]
            m.next = "TX_FETCH"

        def fail(code_value, flush):
            m.d.sync += [err_code.eq(code_value), timer.eq(0)]
            if code_value == p.ERR_CRC:
                m.d.sync += crc_errors.eq(crc_errors + 1)
            elif code_value == p.ERR_TIMEOUT:
                m.d.sync += timeouts.eq(timeouts + 1)
            else:
                m.d.sync += errors.eq(errors + 1)
            m.next = "FLUSH" if flush else "ERROR"

        def in_frame(state_body):
            # Common to the states inside a frame: UART errors, the byte timeout, the CRC.
            with m.If(line_bad):
                m.d.sync += line_bad.eq(0)
                fail(p.ERR_LINE, flush=True)
            with m.Elif(got):
                m.d.sync += [timer.eq(0), crc.eq(crc_next)]
                state_body()
            with m.Elif(timer == self.timeout):
                fail(p.ERR_TIMEOUT, flush=False)
            with m.Else():
                m.d.sync += timer.eq(timer + 1)

        receiving = Signal()
        m.d.comb += self.rx.ready.eq(receiving)

        with m.FSM():
            with m.State("HUNT"):
                m.d.comb += receiving.eq(1)
                with m.If(line_bad):
                    m.d.sync += [line_bad.eq(0), code.eq(0)]
                    fail(p.ERR_LINE, flush=True)
                with m.Elif(got & (byte == p.SYNC)):
                    m.d.sync += [crc.eq(p.CRC_INIT), timer.eq(0), code.eq(0)]
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
                    m.d.sync += length[:8].eq(byte)
                    m.next = "LEN1"
                in_frame(body)

            with m.State("LEN1"):
                m.d.comb += receiving.eq(1)
                new_length = Cat(length[:8], byte)

                def body():
                    m.d.sync += [length.eq(new_length), count.eq(0), half.eq(0), n_idx.eq(0),
                                 have_prev.eq(0), bad_payload.eq(0)]
                    ok = Signal()
                    known = Signal()
                    with m.Switch(code):
                        with m.Case(p.CMD_IDENTIFY, p.CMD_STATUS, p.CMD_RESET, p.CMD_LAST):
                            m.d.comb += [known.eq(1), ok.eq(new_length == 0)]
                        with m.Case(p.CMD_CFG):
                            m.d.comb += [known.eq(1), ok.eq(new_length == cfg_len)]
                        with m.Case(p.CMD_STEP):
                            m.d.comb += [known.eq(1),
                                         ok.eq(~new_length[0] & (new_length <= 2 * n_in))]
                    with m.If(~known):
                        fail(p.ERR_COMMAND, flush=True)
                    with m.Elif(~ok):
                        fail(p.ERR_LENGTH, flush=True)
                    with m.Elif(new_length == 0):
                        m.next = "CRC0"
                    with m.Else():
                        m.next = "PAYLOAD"
                in_frame(body)

            with m.State("PAYLOAD"):
                m.d.comb += receiving.eq(1)

                def body():
                    m.d.sync += count.eq(count + 1)
                    with m.If(code == p.CMD_STEP):
                        m.d.sync += half.eq(~half)
                        with m.If(~half):
                            m.d.sync += idx_lo.eq(byte)
                        with m.Else():
                            index = Cat(idx_lo, byte)
                            with m.If((index >= n_in) | (have_prev & (index <= prev))):
                                m.d.sync += bad_payload.eq(1)
                            m.d.comb += [idx_wr.addr.eq(n_idx), idx_wr.data.eq(index),
                                         idx_wr.en.eq(1)]
                            m.d.sync += [n_idx.eq(n_idx + 1), prev.eq(index), have_prev.eq(1)]
                    with m.Else():
                        m.d.sync += cfg_buf.eq(Cat(cfg_buf[8:], byte))
                    with m.If(count == length - 1):
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
                    with m.If(crc_next != 0):
                        fail(p.ERR_CRC, flush=True)
                    with m.Elif(bad_payload):
                        fail(p.ERR_PAYLOAD, flush=False)
                    with m.Else():
                        m.next = "EXEC"
                in_frame(body)

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
                respond(p.RSP_ERROR, KIND_ERROR, 2)

            with m.State("EXEC"):
                m.d.comb += self.frame_ok.eq(1)
                m.d.sync += frames.eq(frames + 1)
                with m.Switch(code):
                    with m.Case(p.CMD_IDENTIFY):
                        respond(p.RESPONSE | p.CMD_IDENTIFY, KIND_IDENT, len(self.identity))
                    with m.Case(p.CMD_STATUS):
                        respond(p.RESPONSE | p.CMD_STATUS, KIND_STATUS,
                                _status_length())
                    with m.Case(p.CMD_LAST):
                        respond(p.RESPONSE | p.CMD_STEP, KIND_SPIKES,
                                8 + n_spk + (n_spk << 1))
                    with m.Case(p.CMD_RESET):
                        m.d.comb += array.reset_state.eq(1)
                        m.d.sync += n_spk.eq(0)
                        m.next = "RESET_WAIT"
                    with m.Case(p.CMD_CFG):
                        mem, lane, addr = cfg_buf[:8], cfg_buf[8:16], cfg_buf[16:32]
                        depth = Signal(32)
                        with m.Switch(mem):
                            with m.Case(CFG_WEIGHTS):
                                m.d.comb += depth.eq(plan.weight_words)
                            with m.Case(CFG_BIAS, CFG_STATE):
                                m.d.comb += depth.eq(plan.slots)
                            with m.Case(CFG_PARAMS):
                                m.d.comb += depth.eq(len(plan.lif_populations))
                        with m.If((addr < depth) & (lane < plan.lanes)):
                            m.next = "CFG_WRITE"
                        with m.Else():
                            fail(p.ERR_PAYLOAD, flush=False)
                    with m.Case(p.CMD_STEP):
                        m.d.comb += array.start.eq(1)
                        m.d.sync += [n_spk.eq(0), feed.eq(0)]
                        m.next = "FEED_WAIT"

            with m.State("RESET_WAIT"):
                with m.If(~array.busy):
                    respond(p.RESPONSE | p.CMD_RESET, KIND_NONE, 0)

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
                    respond(p.RESPONSE | p.CMD_CFG, KIND_NONE, 0)

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
                respond(p.RESPONSE | p.CMD_STEP, KIND_SPIKES, 8 + n_spk + (n_spk << 1))

            with m.State("TX_FETCH"):
                # One cycle for the spike memory's read of entry `sp_i`.
                m.next = "TX"

            with m.State("TX"):
                payload_pos = Signal(17)
                m.d.comb += payload_pos.eq(t_pos - 4)
                out = Signal(8)
                in_payload = (t_pos >= 4) & (payload_pos < t_len)
                with m.If(t_pos == 0):
                    m.d.comb += out.eq(p.SYNC)
                with m.Elif(t_pos == 1):
                    m.d.comb += out.eq(t_code)
                with m.Elif(t_pos == 2):
                    m.d.comb += out.eq(t_len[:8])
                with m.Elif(t_pos == 3):
                    m.d.comb += out.eq(t_len[8:])
                with m.Elif(in_payload):
                    with m.Switch(t_kind):
                        with m.Case(KIND_IDENT):
                            ident = Const(int.from_bytes(self.identity, "little"),
                                          8 * len(self.identity))
                            m.d.comb += out.eq(ident.word_select(
                                payload_pos[:bits_for(len(self.identity) - 1)], 8))
                        with m.Case(KIND_STATUS):
                            status = Cat(array.busy, modified, Const(0, 6), array.timestep, array.cycles,
                                         frames, crc_errors, timeouts, errors)
                            m.d.comb += out.eq(status.word_select(
                                payload_pos[:bits_for(_status_length() - 1)], 8))
                        with m.Case(KIND_ERROR):
                            m.d.comb += out.eq(Cat(err_code, code).word_select(payload_pos[0], 8))
                        with m.Case(KIND_SPIKES):
                            with m.If(payload_pos < 8):
                                m.d.comb += out.eq(Cat(array.cycles, array.timestep)
                                                   .word_select(payload_pos[:3], 8))
                            with m.Else():
                                entry = spk_rd.data
                                # The payload layout of spike_out: population, then index.
                                pop = entry[:array.pop_width]
                                index = Cat(entry[array.pop_width:], Const(0, 16))
                                with m.Switch(sp_j):
                                    with m.Case(0):
                                        m.d.comb += out.eq(pop)
                                    with m.Case(1):
                                        m.d.comb += out.eq(index[:8])
                                    with m.Case(2):
                                        m.d.comb += out.eq(index[8:16])
                with m.Elif(payload_pos == t_len):
                    m.d.comb += out.eq(t_crc[8:])
                with m.Else():
                    m.d.comb += out.eq(t_crc[:8])
                m.d.comb += [self.tx.valid.eq(1), self.tx.payload.eq(out)]
                with m.If(self.tx.ready):
                    m.d.sync += t_pos.eq(t_pos + 1)
                    with m.If((t_pos != 0) & ((t_pos < 4) | in_payload)):
                        m.d.sync += [crc_byte.eq(out), crc_pending.eq(1)]
                    with m.If(in_payload & (t_kind == KIND_SPIKES) & (payload_pos >= 8)):
                        with m.If(sp_j == 2):
                            m.d.sync += [sp_j.eq(0), sp_i.eq(sp_i + 1)]
                        with m.Else():
                            m.d.sync += sp_j.eq(sp_j + 1)
                    with m.If(payload_pos == t_len + 1):
                        m.next = "HUNT"
                    with m.Else():
                        m.next = "TX_FETCH"
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

    def __init__(self, plan, divisor, *, stages=4, timeout=None, clock_hz=0):
        self.uart_rx = UARTRx(divisor)
        self.uart_tx = UARTTx(divisor)
        self.link = HostLink(plan, stages=stages, clock_hz=clock_hz,
                             timeout=640 * divisor if timeout is None else timeout)
        super().__init__({
            "rx": In(1, init=1),
            "tx": Out(1, init=1),
            "frame_ok": Out(1),
            "frame_error": Out(1),
            "spike": Out(1),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.uart_rx = self.uart_rx
        m.submodules.uart_tx = self.uart_tx
        m.submodules.link = link = self.link
        wiring.connect(m, self.uart_rx.data, link.rx)
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
