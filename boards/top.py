"""The board top: a network's neuron array behind the UART host link, with status LEDs.

One top serves every board of :mod:`spikeforge.boards.registry`: the board entry names the UART
and LED resources, and :func:`spikeforge.boards.build.build` supplies the clock (a PLL when
``clock_mhz`` is not the board clock) and the power-on reset of the ``sync`` domain. Everything
but the pins is :class:`spikeforge.hdl.host_link.HostLinkUART`, which is simulated without a
board.
"""

from amaranth.hdl import Elaboratable, Module, Signal
from amaranth.lib import io

from ..hdl.arith import bits_for
from ..hdl.host_link import HostLinkUART
from ..hdl.uart import uart_divisor
from ..spec.errors import SpikeforgeError
from .host import DEFAULT_BAUD
from .registry import get_board

__all__ = ["BoardTop", "LED_ROLES", "byte_timeout"]

# What the LEDs show, in the order of the board's LED list (boards with fewer LEDs show the
# first ones): a ~1 Hz blink (the design is clocked and configured), host-link traffic or output
# spikes, an error frame sent (lit for about half a second), a timestep running.
LED_ROLES = ("heartbeat", "activity", "error", "busy")
# Byte timeout of the link: a USB-serial bridge moves host bytes in USB packets, with gaps of
# a few milliseconds between them at worst.
TIMEOUT_SECONDS = 0.02


def byte_timeout(clock_hz, divisor):
    """The host link's byte timeout in cycles: 20 ms, and at least 64 byte times."""
    return max(int(clock_hz * TIMEOUT_SECONDS), 640 * divisor)


class BoardTop(Elaboratable):
    """The board top of a network.

    Parameters
    ----------
    board : str or Board
    plan : ArrayPlan
    stages : int
        Neuron pipeline stages.
    clock_mhz : float, optional
        The ``sync`` clock the design runs at (pass the same value to ``build``); default the
        board clock.
    baud : int
        UART speed.
    runtime_weights : bool
        Weights in SPRAM (iCE40 UltraPlus) or another store without initial contents, loaded
        by the host after configuration (``NeuronArray(runtime_weights=True)``).

    Raises
    ------
    SpikeforgeError
        The board has no USB-serial UART, or the baud rate cannot be made from the clock.
    """

    def __init__(
        self, board, plan, *, stages=4, clock_mhz=None, baud=DEFAULT_BAUD, runtime_weights=False
    ):
        try:
            board = get_board(board) if isinstance(board, str) else board
            if board.uart is None:
                raise SpikeforgeError(
                    f"board {board.name} has no USB-serial UART for the host link"
                )
            self.clock_mhz = board.clock_mhz if clock_mhz is None else clock_mhz
            clock_hz = round(self.clock_mhz * 1e6)
            try:
                divisor = uart_divisor(clock_hz, baud)
            except ValueError as error:
                raise SpikeforgeError(f"--baud: {error}") from None
        except SpikeforgeError:
            # A refused top was never usable; without this Amaranth warns, when it is
            # collected, that it was "created but never used".
            self._MustUse__silence = True
            raise
        self.board = board
        self.link = HostLinkUART(
            plan,
            divisor,
            stages=stages,
            clock_hz=clock_hz,
            timeout=byte_timeout(clock_hz, divisor),
            runtime_weights=runtime_weights,
        )
        self.clock_hz = clock_hz

    def elaborate(self, platform):
        m = Module()
        m.submodules.link = link = self.link
        pins = platform.request(*self.board.uart, dir="-")
        m.submodules.rx_buffer = rx_buffer = io.Buffer("i", pins.rx)
        m.submodules.tx_buffer = tx_buffer = io.Buffer("o", pins.tx)
        m.d.comb += [link.rx.eq(rx_buffer.i), tx_buffer.o.eq(link.tx)]

        heartbeat = Signal(bits_for(self.clock_hz) - 1)
        m.d.sync += heartbeat.eq(heartbeat + 1)
        activity = self._stretch(m, link.frame_ok | link.spike, self.clock_hz // 20, "activity")
        error = self._stretch(m, link.frame_error, self.clock_hz // 2, "error")
        values = {
            "heartbeat": heartbeat[-1],
            "activity": activity,
            "error": error,
            "busy": link.busy,
        }
        # An RGB LED is one resource with a subsignal per colour: requested once.
        requested = {}
        for (resource, number, subsignal), role in zip(self.board.leds, LED_ROLES):
            if (resource, number) not in requested:
                requested[resource, number] = platform.request(resource, number, dir="-")
            pin = requested[resource, number]
            if subsignal is not None:
                pin = getattr(pin, subsignal)
            m.submodules[f"led_{role}"] = led = io.Buffer("o", pin)
            m.d.comb += led.o.eq(values[role])
        return m

    @staticmethod
    def _stretch(m, strobe, cycles, name):
        # Hold a one-cycle strobe for `cycles` cycles, so that a LED shows it.
        left = Signal(range(cycles + 1), name=f"{name}_left")
        with m.If(strobe):
            m.d.sync += left.eq(cycles)
        with m.Elif(left != 0):
            m.d.sync += left.eq(left - 1)
        return left != 0
