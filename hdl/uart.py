"""8N1 UART receiver and transmitter with byte streams, for the host link.

Both take ``divisor``: clock cycles per bit (``uart_divisor(12e6, 115200) == 104``). The line
idles high; a frame is a low start bit, eight data bits LSB first, and a high stop bit.
"""

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from ..spec.limits import check_int

__all__ = ["DIVISOR_RANGE", "MAX_BAUD_ERROR", "baud_error", "uart_divisor", "UARTRx", "UARTTx"]

# At least 4 cycles per bit so the receiver can sample in the middle of a bit after its
# two-flip-flop synchroniser; 2**24 covers 300 baud from a 5 GHz clock.
DIVISOR_RANGE = (4, 1 << 24)
# Sampling in the middle of the bit tolerates about 5% over a 10-bit frame at both ends; keep
# each end well inside half of that.
MAX_BAUD_ERROR = 0.02


def baud_error(clock_hz, baud):
    """Relative error of ``baud`` made from a ``clock_hz`` clock by the rounded divisor; 1.0
    (refused) when that divisor is outside ``DIVISOR_RANGE``."""
    divisor = round(clock_hz / baud)
    if not DIVISOR_RANGE[0] <= divisor <= DIVISOR_RANGE[1]:
        return 1.0
    return abs(clock_hz / divisor - baud) / baud


def uart_divisor(clock_hz, baud):
    """Cycles per bit for ``baud`` from a ``clock_hz`` clock, rounded.

    Raises
    ------
    ValueError
        The rounded divisor misses ``baud`` by more than 2%, or is outside ``DIVISOR_RANGE``.
    """
    if not clock_hz > 0 or not baud > 0:
        raise ValueError(f"clock_hz and baud must be positive, not {clock_hz!r} and {baud!r}")
    divisor = round(clock_hz / baud)
    if not DIVISOR_RANGE[0] <= divisor <= DIVISOR_RANGE[1]:
        raise ValueError(
            f"baud {baud:g} from a {clock_hz / 1e6:g} MHz clock needs {divisor} "
            f"cycles per bit, outside [{DIVISOR_RANGE[0]}, {DIVISOR_RANGE[1]}]"
        )
    error = abs(clock_hz / divisor - baud) / baud
    if error > MAX_BAUD_ERROR:
        raise ValueError(
            f"baud {baud:g} from a {clock_hz / 1e6:g} MHz clock is "
            f"{100 * error:.1f}% off (at most {100 * MAX_BAUD_ERROR:g}%)"
        )
    return divisor


def _check_divisor(component, divisor):
    try:
        return check_int("divisor", divisor, *DIVISOR_RANGE)
    except TypeError:
        # A component refused by its constructor was never usable; without this Amaranth
        # would also warn, when it is collected, that it was "created but never used".
        component._MustUse__silence = True
        raise


class UARTRx(wiring.Component):
    """8N1 receiver: the ``rx`` line in, received bytes out as a stream.

    A serial line cannot be paused, so a byte that arrives while the previous one still waits
    for ``data.ready`` is dropped and ``overflow`` pulses for one cycle. A frame whose stop bit
    is low is dropped, ``error`` pulses, and the receiver waits for the line to go high again
    (a break holds it low).

    Parameters
    ----------
    divisor : int
        Clock cycles per bit, in ``DIVISOR_RANGE``.

    Attributes
    ----------
    rx : In(1)
        The serial line (asynchronous; synchronised inside).
    data : Out(stream.Signature(8))
    error : Out(1)
        Framing error strobe.
    overflow : Out(1)
        Dropped-byte strobe.
    """

    def __init__(self, divisor):
        self.divisor = _check_divisor(self, divisor)
        super().__init__(
            {
                "rx": In(1, init=1),
                "data": Out(stream.Signature(8)),
                "error": Out(1),
                "overflow": Out(1),
            }
        )

    def elaborate(self, platform):
        m = Module()
        # Two flip-flops against metastability; idle high so reset does not look like a start.
        sync_0 = Signal(init=1)
        line = Signal(init=1)
        m.d.sync += [sync_0.eq(self.rx), line.eq(sync_0)]

        timer = Signal(range(self.divisor))
        # `timer` is not 0, registered beside it: the comparison in front of the timer's enable
        # was the GW1NR-9's critical path. Every load is at least 1 (the divisor is at least 4).
        wait = Signal()

        def load(cycles):
            m.d.sync += [timer.eq(cycles), wait.eq(1)]

        def count():
            m.d.sync += [timer.eq(timer - 1), wait.eq(timer != 1)]

        bit = Signal(range(8))
        shift = Signal(8)
        m.d.sync += [self.error.eq(0), self.overflow.eq(0)]
        with m.If(self.data.valid & self.data.ready):
            m.d.sync += self.data.valid.eq(0)

        with m.FSM():
            with m.State("idle"):
                with m.If(~line):
                    # Half a bit to the middle of the start bit.
                    load(self.divisor // 2 - 1)
                    m.next = "start"
            with m.State("start"):
                with m.If(wait):
                    count()
                with m.Elif(line):
                    m.next = "idle"  # a glitch, not a start bit
                with m.Else():
                    load(self.divisor - 1)
                    m.d.sync += bit.eq(0)
                    m.next = "data"
            with m.State("data"):
                with m.If(wait):
                    count()
                with m.Else():
                    # LSB first: each bit enters at the top and moves down.
                    load(self.divisor - 1)
                    m.d.sync += [shift.eq(Cat(shift[1:], line)), bit.eq(bit + 1)]
                    with m.If(bit == 7):
                        m.next = "stop"
            with m.State("stop"):
                with m.If(wait):
                    count()
                with m.Elif(~line):
                    m.d.sync += self.error.eq(1)
                    m.next = "break"
                with m.Else():
                    with m.If(self.data.valid & ~self.data.ready):
                        m.d.sync += self.overflow.eq(1)
                    with m.Else():
                        m.d.sync += [self.data.payload.eq(shift), self.data.valid.eq(1)]
                    m.next = "idle"
            with m.State("break"):
                with m.If(line):
                    m.next = "idle"
        return m


class UARTTx(wiring.Component):
    """8N1 transmitter: bytes in as a stream, the ``tx`` line out.

    ``data.ready`` is high only between frames, so a producer is held off while a byte is on the
    line.

    Parameters
    ----------
    divisor : int
        Clock cycles per bit, in ``DIVISOR_RANGE``.

    Attributes
    ----------
    data : In(stream.Signature(8))
    tx : Out(1)
        The serial line; high when idle.
    """

    def __init__(self, divisor):
        self.divisor = _check_divisor(self, divisor)
        super().__init__(
            {
                "data": In(stream.Signature(8)),
                "tx": Out(1, init=1),
            }
        )

    def elaborate(self, platform):
        m = Module()
        timer = Signal(range(self.divisor))
        # Start bit, 8 data bits, stop bit; shifted out LSB first, refilled with ones (idle).
        frame = Signal(10, init=(1 << 10) - 1)
        left = Signal(range(11))

        m.d.comb += self.data.ready.eq(left == 0)
        m.d.comb += self.tx.eq(frame[0])
        with m.If(left == 0):
            with m.If(self.data.valid):
                m.d.sync += [
                    frame.eq(Cat(0, self.data.payload, 1)),
                    left.eq(10),
                    timer.eq(self.divisor - 1),
                ]
        with m.Elif(timer != 0):
            m.d.sync += timer.eq(timer - 1)
        with m.Else():
            m.d.sync += [frame.eq(Cat(frame[1:], 1)), left.eq(left - 1), timer.eq(self.divisor - 1)]
        return m
