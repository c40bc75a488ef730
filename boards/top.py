"""The board top: a network's neuron array behind the UART host link, with status LEDs.

One top serves every board of :mod:`spikeforge.boards.registry`: the board entry names the UART
and LED resources, and :func:`spikeforge.boards.build.build` supplies the clock (a PLL when
``clock_mhz`` is not the board clock) and the power-on reset of the ``sync`` domain. Everything
but the pins is :class:`spikeforge.hdl.host_link.HostLinkUART`, which is simulated without a
board.
"""

from amaranth.hdl import Elaboratable, Module, Signal
from amaranth.lib import io

from ..hdl.arith import bits_for, ceil_div
from ..hdl.host_link import HostLinkUART
from ..hdl.uart import MAX_BAUD_ERROR, baud_error, uart_divisor
from ..spec.errors import SpikeforgeError
from .host import DEFAULT_BAUD
from .registry import get_board

__all__ = ["BoardTop", "LED_ROLES", "byte_timeout", "check_baud", "default_baud", "COMMON_BAUDS"]

# What the LEDs show, in the order of the board's LED list (boards with fewer LEDs show the
# first ones): a ~1 Hz blink (the design is clocked and configured), host-link traffic or output
# spikes, an error frame sent (lit for about half a second), a timestep running.
LED_ROLES = ("heartbeat", "activity", "error", "busy")
# Byte timeout of the link: a USB-serial bridge moves host bytes in USB packets, with gaps of
# a few milliseconds between them at worst.
TIMEOUT_SECONDS = 0.02


# The rates a host's serial port commonly offers from 115200 up: the ones a refused --baud
# suggests.
COMMON_BAUDS = (
    115_200,
    230_400,
    460_800,
    921_600,
    1_000_000,
    1_500_000,
    2_000_000,
    3_000_000,
)


def check_baud(baud, clock_mhz=None):
    """The UART divisor of ``baud`` at ``clock_mhz``, or a one-line error that names ``--baud``.

    Without ``clock_mhz`` only the number itself is checked (and None returned).

    Raises
    ------
    SpikeforgeError
        ``baud`` is not a positive integer, or the clock makes it more than 2% off (or needs
        fewer than 4 cycles a bit); the message lists the common rates the clock makes within
        2%.
    """
    if isinstance(baud, bool) or not isinstance(baud, int) or baud <= 0:
        raise SpikeforgeError(f"--baud must be a positive number of bits per second, not {baud!r}")
    if clock_mhz is None:
        return None
    clock_hz = round(clock_mhz * 1e6)
    try:
        return uart_divisor(clock_hz, baud)
    except ValueError as error:
        rates = [r for r in COMMON_BAUDS if baud_error(clock_hz, r) <= MAX_BAUD_ERROR]
        raise SpikeforgeError(
            f"--baud: {error}; common rates within {100 * MAX_BAUD_ERROR:g}% at "
            f"{clock_mhz:g} MHz: {', '.join(map(str, reversed(rates))) or 'none'}"
        ) from None


def default_baud(board, clock_mhz):
    """The host link speed of a build at ``clock_mhz`` that names no ``--baud``.

    The board's own rate (:attr:`Board.baud`) where the clock makes it within 2%, else the
    fastest common rate below it that the clock makes: a 25 MHz clock cannot divide down to
    3 Mbaud, but a board is still built rather than refused for a rate nobody asked for. The
    build report and the one-line summary say which rate it is.
    """
    clock_hz = round(clock_mhz * 1e6)
    for rate in [board.baud] + [r for r in reversed(COMMON_BAUDS) if r < board.baud]:
        try:
            uart_divisor(clock_hz, rate)
        except ValueError:
            continue
        return rate
    # Even the slowest common rate is out of reach: the error of the board's rate says why.
    check_baud(board.baud, clock_mhz)


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
    steps : bool
        The host link takes STEPS frames (``HostLink(steps=...)``, ``docs/host-link.md``):
        many timesteps a frame. Without them, STEP frames only and fewer logic cells.

    Raises
    ------
    SpikeforgeError
        The board has no USB-serial UART, or the baud rate cannot be made from the clock.
    """

    def __init__(
        self,
        board,
        plan,
        *,
        stages=4,
        clock_mhz=None,
        baud=DEFAULT_BAUD,
        runtime_weights=False,
        steps=True,
    ):
        try:
            board = get_board(board) if isinstance(board, str) else board
            if board.uart is None:
                raise SpikeforgeError(
                    f"board {board.name} has no USB-serial UART for the host link"
                )
            self.clock_mhz = board.clock_mhz if clock_mhz is None else clock_mhz
            clock_hz = round(self.clock_mhz * 1e6)
            divisor = check_baud(baud, self.clock_mhz)
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
            steps=steps,
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
        # The LEDs count time in ticks of 2**k cycles (about 1/64 s), so that their counters
        # are a few bits wide: a counter of cycles (20 bits at 40 MHz, loaded by a strobe) was
        # the iCE40's critical path.
        k = bits_for(self.clock_hz // 64) - 1
        tick = Signal()
        m.d.sync += tick.eq(heartbeat[:k].all())
        activity = self._stretch(
            m, link.frame_ok | link.spike, tick, ceil_div(self.clock_hz // 20, 1 << k), "activity"
        )
        error = self._stretch(
            m, link.frame_error, tick, ceil_div(self.clock_hz // 2, 1 << k), "error"
        )
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
    def _stretch(m, strobe, tick, ticks, name):
        # Hold a one-cycle strobe until `ticks` strobes of `tick` have passed (at least
        # `ticks - 1` tick periods), so that a LED shows it.
        left = Signal(range(ticks + 1), name=f"{name}_left")
        with m.If(strobe):
            m.d.sync += left.eq(ticks)
        with m.Elif(tick & (left != 0)):
            m.d.sync += left.eq(left - 1)
        return left != 0
