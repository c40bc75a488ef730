"""The CRC of the host link's frames as gateware: CRC-16/CCITT-FALSE, one byte a cycle.

The receiver (:mod:`spikeforge.hdl.host_link_rx`) and the transmitter
(:mod:`spikeforge.hdl.host_link_tx`) each keep one (:func:`crc16_register`); the bitwise
reference is :func:`spikeforge.spec.protocol.crc16_byte`.
"""

from amaranth.hdl import Cat, Signal

from ..spec import protocol as p

__all__ = ["crc16_byte", "crc16_register"]


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


def crc16_byte(crc, byte):
    """CRC-16/CCITT-FALSE of one byte as gateware: an XOR of input bits per output bit.

    Parameters
    ----------
    crc : Value
        The CRC so far, 16 bits.
    byte : Value
        The byte to fold in, 8 bits.

    Returns
    -------
    Value
        The CRC after ``byte``, 16 bits.
    """
    inputs = Cat(crc, byte)
    return Cat(*(Cat(*(inputs[n] for n in bits)).xor() for bits in _CRC16_TERMS))


def crc16_register(m):
    """A running CRC in ``m`` that folds in the byte of a register, a cycle after it got there.

    So the CRC's input is two registers, not the logic that chose the byte (a received byte's
    select, a response's byte multiplexer).

    Parameters
    ----------
    m : Module

    Returns
    -------
    crc : Signal(16)
        The CRC so far; the caller starts it with ``crc.eq(CRC_INIT)``.
    byte_reg : Signal(8)
        The byte to fold in; the caller sets it.
    fold : Signal()
        Set it (``sync``) with ``byte_reg`` to fold that byte in, in the next cycle; it falls
        back to 0 by itself.
    """
    crc = Signal(16, init=p.CRC_INIT)
    byte_reg = Signal(8)
    fold = Signal()
    crc_next = Signal(16)
    m.d.comb += crc_next.eq(crc16_byte(crc, byte_reg))
    m.d.sync += fold.eq(0)
    with m.If(fold):
        m.d.sync += crc.eq(crc_next)
    return crc, byte_reg, fold
