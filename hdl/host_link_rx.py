"""The receiver of the host link: bytes in, checked frames out.

:class:`FrameReceiver` takes the bytes of frames (``docs/host-link.md``) and offers each frame to
the executor (:mod:`spikeforge.hdl.host_link_exec`) only once it is checked completely: sync,
command code, length, STEP indices (below ``n_inputs``, strictly ascending), CRC. A frame that
fails is offered with its error code instead (a bad CRC, an unknown command, a wrong length, a
bad STEP index, a byte timeout inside the frame, a UART error). After a header or CRC error the
receiver first waits for the line to stay quiet for ``timeout`` cycles, so that the rest of a
broken frame is not read as new frames.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, unsigned
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from ..spec import protocol as p
from ..spec.limits import check_int
from ._validate import validating
from .arith import bits_for
from .host_link_crc import crc16_byte, crc16_register
from .host_link_fsm import OneHotFSM

__all__ = [
    "FrameReceiver",
    "FrameLayout",
    "CfgLayout",
    "HeaderChecks",
    "TIMEOUT_RANGE",
    "MAX_INPUTS",
    "MAX_DATA_BYTES",
    "STEPS_BUFFER",
    "buffer_shape",
    "FRAME_STATES",
    "RX_STATES",
]

# The byte timeout: long enough for the gaps of a USB-serial bridge, short enough to fit 32 bits.
TIMEOUT_RANGE = (16, (1 << 32) - 1)
# The 16-bit LEN field: a STEP frame carries its timestep and 2 bytes per input index.
MAX_INPUTS = (0xFFFF - 2) // 2
# The identity reports cfg_data_width in a byte: at most 255 bits of CFG data.
MAX_DATA_BYTES = 32
# Entries of the STEPS buffer (at least; the STEP index buffer, when deeper, gives it more): one
# iCE40 block RAM of bytes, and a frame of bitmaps as long as the UART's receive FIFO.
STEPS_BUFFER = 512


def buffer_shape(n_inputs, steps):
    """Depth and width of the receiver's index buffer: a STEP's indices, and with ``steps``
    the entries of a STEPS frame (bitmap bytes, or indices with an end-mark bit above them)."""
    index_width = bits_for(max(n_inputs - 1, 0))
    if steps:
        return max(n_inputs, STEPS_BUFFER), max(index_width + 1, 8)
    return max(n_inputs, 1), index_width


# The states inside a frame, where a byte timeout or a UART error ends the frame.
FRAME_STATES = ("CODE", "LEN0", "LEN1", "PAYLOAD", "CRC0", "CRC1")
# Every state of the receiver: between frames (HUNT), receiving (to CHECK), dropping the rest of
# a broken frame (FLUSH), a frame on offer to the executor (HOLD).
RX_STATES = ("HUNT", *FRAME_STATES, "LEN_CHECK", "CRC_FOLD", "CHECK", "FLUSH", "HOLD")


def _at_most(length, limit):
    """``length <= limit`` for a 16-bit ``length``, compared a byte at a time: as one 16-bit
    comparison it became a chain of 7 LUTs on the iCE40, in front of the registered header
    checks (its critical path, 41.1 MHz at 39.75). No comparison that is constant (Verilator
    refuses them)."""
    if limit >= 0xFFFF:
        return Const(1)
    hi, lo = length[8:16], length[:8]
    hi_limit, lo_limit = limit >> 8, limit & 0xFF
    within = hi == hi_limit
    if lo_limit != 0xFF:
        within = within & (lo <= lo_limit)
    return within | (hi < hi_limit) if hi_limit else within


class CfgLayout(data.StructLayout):
    """The payload of a CFG frame: memory code, lane, address and data, little-endian.

    Parameters
    ----------
    data_bytes : int
        Bytes of ``data``.
    """

    def __init__(self, data_bytes):
        super().__init__({"mem": 8, "lane": 8, "addr": 16, "data": 8 * data_bytes})


class HeaderChecks(data.Struct):
    """The checks of a frame's header: the code is a command (``known``), LEN fits it
    (``ok``), LEN is 0 (``empty``)."""

    known: 1
    ok: 1
    empty: 1


class FrameLayout(data.StructLayout):
    """A frame as :class:`FrameReceiver` offers it.

    Fields: ``code``, the command byte (0 when the frame ended before it); ``error``, 0 for a
    frame that passed every check, else its error code (``spikeforge.spec.protocol.ERR_*``);
    ``count``, of a STEP frame, the number of input indices in the receiver's index buffer;
    ``seq``, of a STEP or STEPS frame, the timestep it is for (low 16 bits); ``cfg``, of a CFG
    frame, its payload (:class:`CfgLayout`); of a STEPS frame, ``steps``, ``lists`` (flag bit
    0) and ``report`` (a bit per population).

    Parameters
    ----------
    n_inputs : int
    data_bytes : int
        As :class:`FrameReceiver`.
    populations : int
        Populations of the network (bits of ``report``).
    """

    def __init__(self, n_inputs, data_bytes, populations=1):
        super().__init__(
            {
                "code": 8,
                "error": unsigned(bits_for(max(p.ERRORS))),
                "count": range(n_inputs + 1),
                "seq": 16,
                "cfg": CfgLayout(data_bytes),
                "steps": 8,
                "lists": 1,
                "report": max(populations, 1),
            }
        )


class FrameReceiver(wiring.Component):
    """Receives and checks the frames of the host link.

    Parameters
    ----------
    n_inputs : int
        Inputs of the network: a STEP frame carries at most this many indices, each below it.
    data_bytes : int
        Data bytes of a CFG frame (``ceil(cfg_data_width / 8)`` of the array).
    timeout : int
        Clock cycles without a byte after which a started frame counts as truncated, and the
        quiet time that ends the flush after an error.
    populations : int
        Populations of the network (the STEPS report mask).
    steps : bool
        Take STEPS frames: their inputs go to the index buffer, made deep enough for
        :data:`STEPS_BUFFER` entries and one bit wider (the end mark of an index list).

    Attributes
    ----------
    rx : In(stream.Signature(8))
        Bytes from the host. Taken in every cycle while a frame arrives, except the one after
        ``LEN``; none while a frame is on offer.
    rx_error : In(1)
        Strobe: a byte was lost or garbled on the line (UART framing error or overrun).
    frame : Out(stream.Signature(FrameLayout(n_inputs, data_bytes)))
        The frame received, offered until the executor takes it, when its answer is out: the
        receiver takes no byte meanwhile, and the payload (the indices, the CFG write) stays.
        A frame that passed every check is offered from the cycle its CRC is checked, so that
        the executor, acting in the first cycle of an offer, can register the array's ``start``
        for the next cycle; an error from the cycle after it was found (after the flush when
        the header or the CRC was bad).
    indices : Out(memory.ReadPort.Signature(...))
        The index buffer: the indices of the STEP frame on offer at addresses 0 to ``count -
        1``, or the entries of the STEPS frame on offer from address 0 (a bitmap byte, or an
        index with the end mark in the bit above it); read data one cycle after the address.
    steps_buffer : int
        Entries a STEPS frame may take (0 without ``steps``).
    probes : dict
        Set by ``elaborate``: internal registers by name, and ``state``, a dict from each name
        of :data:`RX_STATES` to a signal that is high in that state; with ``steps`` also
        ``kinds`` (the registered frame kinds) and ``steps_ready`` (a STEPS entry to store);
        for formal harnesses (:mod:`spikeforge.sim.formal_host_link`).
    """

    def __init__(self, n_inputs, data_bytes, *, timeout=4096, populations=1, steps=False):
        with validating(self):
            check_int("n_inputs", n_inputs, 0, MAX_INPUTS)
            check_int("data_bytes", data_bytes, 1, MAX_DATA_BYTES)
            check_int("timeout", timeout, *TIMEOUT_RANGE)
            check_int("populations", populations, 1, 0xFF)
            if not isinstance(steps, bool):
                raise TypeError(f"steps must be True or False, not {steps!r}")
        self.n_inputs = n_inputs
        self.data_bytes = data_bytes
        self.timeout = timeout
        self.populations = populations
        self.steps = steps
        # The width of the array's input index: enough for every index below n_inputs.
        self.index_width = bits_for(max(n_inputs - 1, 0))
        self.cfg_length = 4 + data_bytes
        self.buffer_depth, self.buffer_width = buffer_shape(n_inputs, steps)
        self.steps_buffer = self.buffer_depth if steps else 0
        self.steps_head = p.steps_head_length(populations) if steps else 0
        super().__init__(
            {
                "rx": In(stream.Signature(8)),
                "rx_error": In(1),
                "frame": Out(stream.Signature(FrameLayout(n_inputs, data_bytes, populations))),
                "indices": Out(
                    memory.ReadPort.Signature(
                        addr_width=bits_for(self.buffer_depth - 1),
                        shape=unsigned(self.buffer_width),
                    )
                ),
            }
        )

    def elaborate(self, platform):
        m = Module()
        n_in = self.n_inputs

        crc, byte_reg, fold = crc16_register(m)  # `byte_reg`: the byte received last
        crc_zero = Signal()  # in CHECK: `crc` is 0

        code = Signal(8)
        # Payload bytes still to come; a LEN that passed the length check fits.
        left = Signal(
            range(max(2 * n_in + 2, self.cfg_length, self.steps_head + 2 * self.steps_buffer) + 1)
        )
        timer = Signal(range(self.timeout + 1))
        timed_out = Signal()  # `timer` is at the timeout
        err_code = Signal(range(max(p.ERRORS) + 1))
        line_bad = Signal()
        half = Signal()
        lo_byte = Signal(8)  # the low byte of LEN, of a STEP's timestep or of a STEP index
        seq = Signal(16)  # a STEP frame's timestep
        seq_next = Signal()  # the STEP's next two bytes are its timestep, not an index
        n_idx = Signal(range(n_in + 1))
        bad_payload = Signal()
        cfg = Signal(CfgLayout(self.data_bytes))
        m.d.comb += [
            self.frame.payload.code.eq(code),
            self.frame.payload.error.eq(err_code),
            self.frame.payload.count.eq(n_idx),
            self.frame.payload.seq.eq(seq),
            self.frame.payload.cfg.eq(cfg),
        ]
        with m.If(self.rx_error):
            m.d.sync += line_bad.eq(1)
        index_ready, new_frame, idx_wr = self._index_buffer(
            m, lo_byte, byte_reg, n_idx, bad_payload
        )

        byte = self.rx.payload
        # A byte is taken: every state that looks at this takes any byte offered, so it is
        # `valid` alone (with `ready`, decoded from the state, it was the iCE40's critical path).
        got = self.rx.valid
        # Every cycle, the header checks of `code`, `lo_byte` and the byte on offer as LEN's
        # high byte: in LEN_CHECK they are those of the header received.
        # Whether the frame is a STEP (or STEPS) frame, registered: valid from LEN0 on (the
        # decode of `code` in front of the payload registers' enables was the iCE40's
        # critical path).
        # (Without STEPS the decode stays: the formal harness's invariants are about `code`.)
        is_step = code == p.CMD_STEP
        kinds = None
        if self.steps:
            is_step = Signal()
            m.d.sync += is_step.eq(code == p.CMD_STEP)
            is_steps = Signal()
            m.d.sync += is_steps.eq(code == p.CMD_STEPS)
            # And the other kinds, for the header checks alone.
            is_bare = Signal()  # a command without payload
            m.d.sync += is_bare.eq(
                (code == p.CMD_IDENTIFY)
                | (code == p.CMD_STATUS)
                | (code == p.CMD_RESET)
                | (code == p.CMD_LAST)
            )
            is_cfg = Signal()
            m.d.sync += is_cfg.eq(code == p.CMD_CFG)
            kinds = (is_bare, is_cfg, is_step, is_steps)
        checked = Signal(HeaderChecks)
        m.d.sync += checked.eq(self.header_checks(m, code, Cat(lo_byte, byte), kinds))

        def fail(error, flush):
            m.d.sync += err_code.eq(error)
            fsm.goto("FLUSH" if flush else "HOLD")

        def in_frame(state_body):
            # Common to the states inside a frame: UART errors, the byte timeout, the CRC.
            m.d.comb += self.rx.ready.eq(1)
            with m.If(line_bad):
                m.d.sync += line_bad.eq(0)
                fail(p.ERR_LINE, flush=True)
            with m.Elif(got):
                m.d.sync += [byte_reg.eq(byte), fold.eq(1)]
                if self.steps:
                    m.d.sync += byte_prev.eq(byte_reg)
                state_body()
            with m.Elif(timed_out):
                fail(p.ERR_TIMEOUT, flush=False)

        def goto(state, *statements):
            # The body of a state that only stores the byte (or not) and moves on.
            def body():
                m.d.sync += statements
                fsm.goto(state)

            return body

        if self.steps:
            # The byte received before `byte_reg`: a STEPS index's low byte when its high
            # byte is in `byte_reg` (taken into `lo_byte` as a STEP index's is, its enable had
            # the STEPS head and encoding in front of it: the GW1NR-9's critical path, 109 MHz
            # at 111).
            byte_prev = Signal(8)
            steps_byte, steps_end, steps_seq = self._steps_input(
                m, byte, byte_prev, byte_reg, new_frame, bad_payload, idx_wr
            )
            m.d.comb += self.frame.payload.seq.eq(Mux(is_steps, steps_seq, seq))

        with OneHotFSM(m, RX_STATES) as fsm:
            with fsm.state("HUNT"):
                m.d.comb += self.rx.ready.eq(1)
                # Set whatever comes: none is used here, and the received byte then only
                # chooses the next state, not also the enables of these registers. A frame
                # that passes its checks is offered with error 0.
                m.d.sync += [crc.eq(p.CRC_INIT), code.eq(0), err_code.eq(0)]
                with m.If(line_bad):
                    m.d.sync += line_bad.eq(0)
                    fail(p.ERR_LINE, flush=True)
                with m.Elif(got & (byte == p.SYNC)):
                    fsm.goto("CODE")

            with fsm.state("CODE"):
                in_frame(goto("LEN0", code.eq(byte)))

            with fsm.state("LEN0"):
                in_frame(goto("LEN1", lo_byte.eq(byte)))

            with fsm.state("LEN1"):
                in_frame(goto("LEN_CHECK"))

            with fsm.state("LEN_CHECK"):
                # The header's checks were registered as its last byte arrived (`checked`), so
                # that this state acts on registers alone (the comparisons before the state
                # and error logic were the iCE40's critical path).
                m.d.sync += [left.eq(Cat(lo_byte, byte_reg)), half.eq(0), seq_next.eq(1)]
                m.d.comb += new_frame.eq(1)
                with m.If(~checked.known):
                    fail(p.ERR_COMMAND, flush=True)
                with m.Elif(~checked.ok):
                    fail(p.ERR_LENGTH, flush=True)
                with m.Elif(checked.empty):
                    fsm.goto("CRC0")
                with m.Else():
                    fsm.goto("PAYLOAD")

            with fsm.state("PAYLOAD"):

                def body():
                    m.d.sync += left.eq(left - 1)
                    with m.If(is_step):
                        m.d.sync += half.eq(~half)
                        with m.If(~half):
                            m.d.sync += lo_byte.eq(byte)
                        with m.Elif(seq_next):
                            m.d.sync += [seq.eq(Cat(lo_byte, byte)), seq_next.eq(0)]
                        with m.Else():
                            m.d.sync += index_ready.eq(1)
                    if self.steps:
                        with m.Elif(is_steps):
                            steps_byte()
                    with m.Else():
                        m.d.sync += cfg.as_value().eq(Cat(cfg.as_value()[8:], byte))
                    with m.If(left == 1):
                        fsm.goto("CRC0")

                in_frame(body)

            with fsm.state("CRC0"):
                in_frame(goto("CRC1"))

            with fsm.state("CRC1"):
                in_frame(goto("CRC_FOLD"))

            with fsm.state("CRC_FOLD"):
                # The CRC folds in the frame's last byte (and the last STEP index is checked);
                # whether it comes out 0 is registered beside it, so that CHECK's offer to the
                # executor starts from a register.
                m.d.sync += crc_zero.eq(crc16_byte(crc, byte_reg) == 0)
                if self.steps:
                    # A STEPS frame's inputs for other than `steps` steps, registered with the
                    # CRC (its last entry was stored by now).
                    with m.If(is_steps & steps_end):
                        m.d.sync += bad_payload.eq(1)
                fsm.goto("CHECK")

            with fsm.state("CHECK"):
                # Over the whole frame the CRC leaves 0.
                with m.If(~crc_zero):
                    fail(p.ERR_CRC, flush=True)
                with m.Elif(bad_payload):
                    fail(p.ERR_PAYLOAD, flush=False)
                with m.Else():
                    m.d.comb += self.frame.valid.eq(1)
                    with m.If(self.frame.ready):
                        fsm.goto("HUNT")
                    with m.Else():
                        fsm.goto("HOLD")

            with fsm.state("FLUSH"):
                # Drop bytes until the line has been quiet for `timeout` cycles.
                m.d.comb += self.rx.ready.eq(1)
                m.d.sync += line_bad.eq(0)
                with m.If(~(got | line_bad | self.rx_error) & timed_out):
                    fsm.goto("HOLD")

            with fsm.state("HOLD"):
                m.d.comb += self.frame.valid.eq(1)
                with m.If(self.frame.ready):
                    fsm.goto("HUNT")

            states = {name: fsm.ongoing(name) for name in RX_STATES}
        # (`got` only counts where `ready` is high: the states that count.)
        self._timer(m, states, timer, timed_out, got | line_bad | self.rx_error)
        self.probes = dict(
            state=states,
            timer=timer,
            timed_out=timed_out,
            line_bad=line_bad,
            code=code,
            err_code=err_code,
            lo_byte=lo_byte,
            byte_reg=byte_reg,
            fold=fold,
            crc=crc,
            left=left,
            half=half,
            seq_next=seq_next,
            n_idx=n_idx,
            index_ready=index_ready,
            bad_payload=bad_payload,
            checked=checked,
            crc_zero=crc_zero,
        )
        if self.steps:
            self.probes.update(kinds=kinds, steps_ready=self._steps_ready)
        return m

    def _timer(self, m, states, timer, timed_out, restart):
        """The byte timer: cycles without a byte (and without a UART error) inside a frame or
        the flush after an error, 0 elsewhere; ``timed_out`` when it is at the timeout.

        Outside the state machine, so that its enable is the few terms of ``restart`` and not
        every way out of every state (that was the iCE40's critical path), and the comparison
        registered, so that none is in front of the states' timeout (a critical path of the
        GW1NR-9). A UART error inside a frame fails it in the next cycle, from a timer at 0.
        """
        counting = Const(0)
        for name in (*FRAME_STATES, "FLUSH"):
            counting = counting | states[name]
        count = Signal()
        m.d.comb += count.eq(counting & ~restart)
        m.d.sync += [
            timer.eq(Mux(count, timer + 1, 0)),
            timed_out.eq(count & (timer == self.timeout - 1)),
        ]

    def header_checks(self, m, code, length, kinds=None):
        """The checks of a header with ``code`` and ``length``, as a :class:`HeaderChecks`
        value made in ``m`` (also used by the formal harness). With ``steps``, ``kinds`` are
        the registers that say the code is one without payload, CFG, STEP and STEPS
        (registered from it), which then replace its decode."""
        checks = Signal(HeaderChecks)
        empty = length == 0
        m.d.comb += checks.empty.eq(empty)
        # The timestep (2 bytes), then 2 bytes per index: an even LEN, not 0 (the term `empty`
        # has anyway, not another comparison: the GW1NR-9's critical path).
        step_ok = ~length[0] & ~empty & _at_most(length, 2 * self.n_inputs + 2)
        cfg_ok = length == self.cfg_length
        if kinds is None:
            with m.Switch(code):
                with m.Case(p.CMD_IDENTIFY, p.CMD_STATUS, p.CMD_RESET, p.CMD_LAST):
                    m.d.comb += [checks.known.eq(1), checks.ok.eq(empty)]
                with m.Case(p.CMD_CFG):
                    m.d.comb += [checks.known.eq(1), checks.ok.eq(cfg_ok)]
                with m.Case(p.CMD_STEP):
                    m.d.comb += [checks.known.eq(1), checks.ok.eq(step_ok)]
            return checks
        # From the registered kinds, an AND-OR: the decode of `code` in front of `checked`
        # (with STEPS's case in it) was the GW1NR-9's critical path (84 MHz at 111), and
        # then, as a chain of choices, the iCE40's (42.9 MHz at 39.75).
        bare, cfg, step, steps = kinds
        # The head, then at most two bytes per buffer entry (the exact count depends on the
        # encoding: checked as the entries arrive).
        head = self.steps_head
        steps_ok = ~_at_most(length, head - 1) & _at_most(length, head + 2 * self.steps_buffer)
        m.d.comb += [
            checks.known.eq(bare | cfg | step | steps),
            checks.ok.eq((bare & empty) | (cfg & cfg_ok) | (step & step_ok) | (steps & steps_ok)),
        ]
        return checks

    def _steps_input(self, m, byte, byte_prev, byte_reg, new_frame, bad_payload, idx_wr):
        """The payload of a STEPS frame: the head taken as it arrives, the entries checked and
        stored in the buffer in the cycle after their (last) byte came.

        Returns the body for a payload byte (called as it is taken, in PAYLOAD), the signal,
        valid from the cycle after the frame's last payload byte was processed, that says its
        inputs do not make ``steps`` whole steps, and the frame's timestep.
        """
        n_in = self.n_inputs
        head = self.steps_head
        width = (n_in + 7) // 8  # bytes of a step's bitmap
        index_width = self.index_width
        depth = self.buffer_depth
        frame = self.frame.payload
        # The head, shifted in from the top byte by byte: timestep, steps, flags, report mask.
        # Its fields are registers, and which byte comes next is `hleft` alone (a decode of a
        # head position in front of the fields' enables was the iCE40's critical path).
        head_reg = Signal(8 * head)
        hleft = Signal(range(head + 1))  # head bytes still to come
        in_head = Signal()  # `hleft` is not 0
        steps = head_reg[16:24]
        flags = head_reg[24:32]
        report = head_reg[32:]
        data_ready = Signal()  # `byte_reg` holds a bitmap byte to store
        index_ready = Signal()  # `byte_prev`, `byte_reg` hold an index or end mark to store
        half = Signal()  # a list's low byte came
        wpos = Signal(range(depth + 1))  # entries stored
        bpos = Signal(range(max(width, 1)))  # a bitmap's byte within its step
        steps_got = Signal(range(depth + 1))  # whole steps stored
        open_step = Signal()  # a list's step has an index and no end mark yet
        prev = Signal(index_width)
        full = Signal()  # `wpos` is at the buffer's end
        m.d.comb += full.eq(wpos == depth)
        m.d.comb += [
            frame.steps.eq(steps),
            frame.lists.eq(flags[0]),
            frame.report.eq(report[: self.populations]),
        ]
        m.d.sync += [data_ready.eq(0), index_ready.eq(0)]
        self._steps_ready = (data_ready, index_ready)

        def body():
            with m.If(in_head):
                m.d.sync += [head_reg.eq(Cat(head_reg[8:], byte)), hleft.eq(hleft - 1)]
                with m.If(hleft == 1):
                    m.d.sync += in_head.eq(0)
            with m.Elif(~flags[0]):
                m.d.sync += data_ready.eq(1)
            with m.Else():
                m.d.sync += half.eq(~half)
                with m.If(half):
                    m.d.sync += index_ready.eq(1)

        with m.If(new_frame):
            m.d.sync += [
                hleft.eq(head),
                in_head.eq(1),
                head_reg.eq(0),
                half.eq(0),
                wpos.eq(0),
                bpos.eq(0),
                steps_got.eq(0),
                open_step.eq(0),
            ]
        # From registers, as the STEP indices. An entry is stored whether it is good or not
        # (a bad one fails the frame), so that no check is in front of the buffer's write.
        end = (byte_prev == 0xFF) & (byte_reg == 0xFF)
        index = Cat(byte_prev, byte_reg)
        with m.If(data_ready):
            pad = ~((1 << (n_in - 8 * (width - 1))) - 1) & 0xFF
            last_byte = bpos == width - 1
            m.d.comb += [idx_wr.addr.eq(wpos), idx_wr.data.eq(byte_reg), idx_wr.en.eq(~full)]
            m.d.sync += wpos.eq(wpos + ~full)
            with m.If(full | (last_byte & ((byte_reg & pad) != 0))):
                m.d.sync += bad_payload.eq(1)
            with m.If(last_byte):
                m.d.sync += [bpos.eq(0), steps_got.eq(steps_got + 1)]
            with m.Else():
                m.d.sync += bpos.eq(bpos + 1)
        with m.Elif(index_ready):
            m.d.comb += [
                idx_wr.addr.eq(wpos),
                idx_wr.data.eq(Mux(end, 1 << index_width, index[:index_width])),
                idx_wr.en.eq(~full),
            ]
            m.d.sync += wpos.eq(wpos + ~full)
            with m.If(
                full | (~end & ((index >= n_in) | (open_step & (index[:index_width] <= prev))))
            ):
                m.d.sync += bad_payload.eq(1)
            with m.If(end):
                m.d.sync += [steps_got.eq(steps_got + 1), open_step.eq(0)]
            with m.Else():
                m.d.sync += [open_step.eq(1), prev.eq(index)]

        # The head whole, no flag but bit 0, 1 or more steps, and exactly `steps` of them
        # stored (no list left open, no half entry, no part of a bitmap).
        wrong = Signal()
        m.d.comb += wrong.eq(
            in_head
            | ((flags & 0xFE) != 0)
            | (steps == 0)
            | (steps_got != steps)
            | Mux(flags[0], open_step | half, bpos != 0)
        )
        return body, wrong, head_reg[:16]

    def _index_buffer(self, m, lo_byte, byte_reg, n_idx, bad_payload):
        """The STEP indices: checked and stored in the cycle after their high byte came.

        Returns the register that says so (``index_ready``, set with the high byte), the
        strobe that empties the buffer for a new frame (``new_frame``) and the buffer's write
        port (the STEPS entries use it too).
        """
        n_in = self.n_inputs
        index_width = self.index_width
        idx_mem = memory.Memory(shape=unsigned(self.buffer_width), depth=self.buffer_depth, init=[])
        m.submodules.idx_mem = idx_mem
        idx_wr = idx_mem.write_port()
        idx_rd = idx_mem.read_port()
        m.d.comb += [
            idx_rd.addr.eq(self.indices.addr),
            idx_rd.en.eq(self.indices.en),
            self.indices.data.eq(idx_rd.data),
        ]

        prev = Signal(index_width)
        have_prev = Signal()
        new_frame = Signal()
        index_ready = Signal()
        m.d.sync += index_ready.eq(0)
        with m.If(new_frame):
            m.d.sync += [n_idx.eq(0), have_prev.eq(0), bad_payload.eq(0)]
        # From registers: `lo_byte` and `byte_reg` (a next byte can only change `lo_byte` at
        # the end of this cycle).
        with m.Elif(index_ready):
            index = Cat(lo_byte, byte_reg)
            # An index below n_in fits `prev`, so comparing the low bits is enough when the
            # first term is false.
            with m.If((index >= n_in) | (have_prev & (index[:index_width] <= prev))):
                m.d.sync += bad_payload.eq(1)
            m.d.comb += [idx_wr.addr.eq(n_idx), idx_wr.data.eq(index), idx_wr.en.eq(1)]
            m.d.sync += [n_idx.eq(n_idx + 1), prev.eq(index), have_prev.eq(1)]
        return index_ready, new_frame, idx_wr
