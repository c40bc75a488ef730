"""A test-only board top for the build tests (the real board top around the array is elsewhere)."""

from amaranth.hdl import Elaboratable, Module, Signal
from amaranth.lib import io, wiring

from spikeforge.hdl.uart import UARTRx, UARTTx, uart_divisor

__all__ = ["EchoBlink"]


class EchoBlink(Elaboratable):
    """Test-only board top: echo every UART byte, blink LED 0, toggle LED 1 per byte.

    ``clock_mhz`` is the ``sync`` frequency (a PLL output) when it is not the board clock.
    """

    def __init__(self, board, clock_mhz=None):
        self.board = board
        self.clock_mhz = board.clock_mhz if clock_mhz is None else clock_mhz

    def elaborate(self, platform):
        m = Module()
        divisor = uart_divisor(self.clock_mhz * 1e6, 115200)
        m.submodules.rx = rx = UARTRx(divisor)
        m.submodules.tx = tx = UARTTx(divisor)
        wiring.connect(m, rx.data, tx.data)
        pins = platform.request(*self.board.uart, dir="-")
        m.submodules.rx_buffer = rx_buffer = io.Buffer("i", pins.rx)
        m.submodules.tx_buffer = tx_buffer = io.Buffer("o", pins.tx)
        m.d.comb += [rx.rx.eq(rx_buffer.i), tx_buffer.o.eq(tx.tx)]

        counter = Signal(24)
        toggle = Signal()
        m.d.sync += counter.eq(counter + 1)
        with m.If(rx.data.valid & rx.data.ready):
            m.d.sync += toggle.eq(~toggle)
        for (resource, number, _), value in zip(self.board.leds, [counter[-1], toggle]):
            m.submodules[f"led{number}"] = led = io.Buffer(
                "o", platform.request(resource, number, dir="-")
            )
            m.d.comb += led.o.eq(value)
        return m
