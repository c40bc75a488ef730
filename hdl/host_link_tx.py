"""The transmitter of the host link: response frames out, with their CRC.

:class:`FrameTransmitter` takes a response's code and length (``header``), then its payload
bytes (``payload``), and sends the frame (``docs/host-link.md``): ``SYNC``, the code, ``LEN``,
the payload, the CRC. Each byte is chosen into a register while ``tx`` is empty and offered
from the next cycle: two cycles a byte at most, far quicker than the UART, and no multiplexer in
front of ``tx`` or the CRC.
"""

from amaranth.hdl import Const, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from ..spec import protocol as p
from .host_link_crc import crc16_register
from .host_link_fsm import OneHotFSM

__all__ = ["FrameTransmitter", "HeaderLayout", "TX_STATES"]

# The states of the transmitter, one per part of the frame; TX_IDLE sends SYNC when a header
# comes.
TX_STATES = (
    "TX_IDLE",
    "TX_CODE",
    "TX_LEN0",
    "TX_LEN1",
    "TX_PAYLOAD",
    "TX_CRC0",
    "TX_CRC1",
    "TX_END",
)


class HeaderLayout(data.Struct):
    """A response to send: its code byte and its payload length (``LEN``)."""

    code: 8
    length: 16


class FrameTransmitter(wiring.Component):
    """Sends the response frames of the host link.

    Attributes
    ----------
    header : In(stream.Signature(HeaderLayout))
        The response to send next; taken when the frame starts (``SYNC``).
    payload : In(stream.Signature(8))
        Its payload bytes, ``length`` of them, taken one at a time while the frame is sent.
    tx : Out(stream.Signature(8))
        Bytes to the host.
    done : Out(1)
        Strobe: the frame's last byte was taken.
    probes : dict
        Set by ``elaborate``: internal registers by name, and ``state``, a dict from each name
        of :data:`TX_STATES` to a signal that is high in that state; for formal harnesses
        (:mod:`spikeforge.sim.formal_host_link`).
    """

    header: In(stream.Signature(HeaderLayout))
    payload: In(stream.Signature(8))
    tx: Out(stream.Signature(8))
    done: Out(1)

    def elaborate(self, platform):
        m = Module()

        crc, byte_reg, fold = crc16_register(m)  # `byte_reg`: the byte on offer to `tx`

        code = Signal(8)
        t_len = Signal(16)  # LEN, then the payload bytes still to send
        t_full = Signal()  # `byte_reg` holds a byte for `tx`
        m.d.comb += [self.tx.valid.eq(t_full), self.tx.payload.eq(byte_reg)]
        # `t_len` is 0 or 1, registered: the comparisons in front of the state register's
        # enable were the iCE40's critical path. `t_len` changes only as a byte is chosen, and
        # the next byte is chosen no sooner than the cycle after next (it waits for `t_full` to
        # fall), so they are current whenever `t_full` is low.
        t_zero = Signal(init=1)
        t_one = Signal()
        m.d.sync += [t_zero.eq(t_len == 0), t_one.eq(t_len == 1)]
        with m.If(self.tx.valid & self.tx.ready):
            m.d.sync += t_full.eq(0)

        load = Signal()  # a byte is chosen for `byte_reg`
        choices = []  # each state's byte, by state

        def send(value, crc_it):
            # Called under `~t_full`: the byte goes to `tx` from the next cycle on. Which byte
            # is an AND-OR of the states' choices, after the state machine (one-hot): set in
            # each state, it became a chain of choices, in front of `byte_reg` from every
            # state's condition (the iCE40's critical path).
            m.d.comb += load.eq(1)
            m.d.sync += [t_full.eq(1), fold.eq(crc_it)]
            choices.append((fsm.here, value))

        with OneHotFSM(m, TX_STATES) as fsm:
            with fsm.state("TX_IDLE"):
                m.d.comb += self.header.ready.eq(~t_full)
                with m.If(self.header.valid & ~t_full):
                    m.d.sync += [
                        code.eq(self.header.payload.code),
                        t_len.eq(self.header.payload.length),
                        crc.eq(p.CRC_INIT),
                    ]
                    send(p.SYNC, crc_it=0)
                    fsm.goto("TX_CODE")

            with fsm.state("TX_CODE"):
                with m.If(~t_full):
                    send(code, crc_it=1)
                    fsm.goto("TX_LEN0")

            with fsm.state("TX_LEN0"):
                with m.If(~t_full):
                    send(t_len[:8], crc_it=1)
                    fsm.goto("TX_LEN1")

            with fsm.state("TX_LEN1"):
                with m.If(~t_full):
                    send(t_len[8:], crc_it=1)
                    with m.If(t_zero):
                        fsm.goto("TX_CRC0")
                    with m.Else():
                        fsm.goto("TX_PAYLOAD")

            with fsm.state("TX_CRC0"):
                # The last payload byte was folded in while it waited for `tx`.
                with m.If(~t_full):
                    send(crc[8:], crc_it=0)
                    fsm.goto("TX_CRC1")

            with fsm.state("TX_CRC1"):
                with m.If(~t_full):
                    send(crc[:8], crc_it=0)
                    fsm.goto("TX_END")

            with fsm.state("TX_END"):
                with m.If(~t_full):
                    m.d.comb += self.done.eq(1)
                    fsm.goto("TX_IDLE")

            # Last, so that its byte is the last choice in front of `byte_reg` (the states are
            # one-hot: the order changes nothing else): the payload byte comes from the
            # executor's multiplexers, on the iCE40's critical path.
            with fsm.state("TX_PAYLOAD"):
                m.d.comb += self.payload.ready.eq(~t_full)
                with m.If(self.payload.valid & ~t_full):
                    send(self.payload.payload, crc_it=1)
                    m.d.sync += t_len.eq(t_len - 1)
                    with m.If(t_one):
                        fsm.goto("TX_CRC0")

            states = {name: fsm.ongoing(name) for name in TX_STATES}
        chosen = Const(0, 8)
        for name, value in choices:
            chosen = chosen | Mux(states[name], value, 0)
        with m.If(load):
            m.d.sync += byte_reg.eq(chosen)
        self.probes = dict(
            state=states,
            byte_reg=byte_reg,
            crc=crc,
            t_len=t_len,
            t_full=t_full,
            t_zero=t_zero,
            t_one=t_one,
        )
        return m
