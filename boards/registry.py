"""The boards spikeforge builds for, on top of the ``amaranth-boards`` platforms."""

from dataclasses import dataclass

from amaranth.build import Attrs
from amaranth.vendor import LatticeECP5Platform
from amaranth_boards.icebreaker import ICEBreakerPlatform
from amaranth_boards.icesugar import ICESugarPlatform
from amaranth_boards.orangecrab_r0_2 import OrangeCrabR0_2_25FPlatform
from amaranth_boards.resources import UARTResource
from amaranth_boards.tang_nano_9k import TangNano9kPlatform
from amaranth_boards.ulx3s import ULX3S_85F_Platform

from ..spec.errors import SpikeforgeError

__all__ = ["Board", "BOARDS", "get_board", "board_names"]


class _OrangeCrabPlatform(OrangeCrabR0_2_25FPlatform):
    # The board's USB port goes straight to the FPGA, with no USB-serial bridge; the host link
    # uses the Feather header's UART pins instead (0 = RX, 1 = TX, 3.3 V) and an external
    # USB-serial adapter.
    resources = OrangeCrabR0_2_25FPlatform.resources + [
        UARTResource(0, rx="0", tx="1", conn=("io", 0), attrs=Attrs(IO_TYPE="LVCMOS33")),
    ]

    # The upstream platform runs dfu-suffix (Debian's dfu-util) inside the build only to tag
    # the bitstream for the USB bootloader. spikeforge adds that tag itself when it flashes
    # (boards/flash.py), so a build needs nothing beyond the YoWASP wheels.
    @property
    def required_tools(self):
        return LatticeECP5Platform.required_tools.fget(self)

    @property
    def command_templates(self):
        return LatticeECP5Platform.command_templates.fget(self)


@dataclass(frozen=True)
class Board:
    """One supported board.

    Attributes
    ----------
    name : str
        What ``--board`` takes.
    title : str
        Human name of the board.
    platform : type
        The Amaranth platform class; ``board.platform()`` makes a fresh instance.
    family : str
        ``"ice40"``, ``"ecp5"`` or ``"gowin"`` (selects the tools).
    device : str
        FPGA part.
    clock_mhz : float
        Frequency of the board clock (the platform's default clock).
    bitstream : str
        File name of the bitstream that a build named ``top`` writes.
    programmer : tuple of tuple of str
        The command that loads ``{bitstream}`` into the FPGA; ``programmer[0]`` is the tool.
    uart : tuple of (str, int) or None
        Resource of the host serial link, or None when the board has none.
    uart_note : str
        How the host reaches that UART (the USB-serial bridge, or what to wire).
    leds : tuple of (str, int, str or None)
        Single-bit LED outputs as (resource, number, subsignal).
    goal_mhz : float
        The clock the array of this FPGA is meant to reach: ``--clock auto`` places and routes
        for it first, then picks the clock from the Fmax it gets.
    baud : int
        The default host link speed: the highest the board's USB-serial bridge is known to
        run reliably (``docs/boards.md`` gives the sources), else 115200.
    """

    name: str
    title: str
    platform: type
    family: str
    device: str
    clock_mhz: float
    bitstream: str
    programmer: tuple
    uart: tuple | None
    leds: tuple
    goal_mhz: float
    baud: int = 115_200
    uart_note: str = "USB-serial bridge on the board"

    def summary(self):
        """One line for ``spikeforge boards``."""
        uart = (
            f"uart {self.uart[0]}#{self.uart[1]} at {self.baud} baud ({self.uart_note})"
            if self.uart
            else "no uart"
        )
        return (
            f"{self.name:<12} {self.title:<28} {self.family:<6} {self.device:<22} "
            f"{self.clock_mhz:g} MHz, {len(self.leds)} leds, {uart}, "
            f"flash: {' '.join(self.programmer)}"
        )


def _leds(name, count):
    return tuple((name, i, None) for i in range(count))


BOARDS = {
    board.name: board
    for board in [
        Board(
            name="icebreaker",
            title="1BitSquared iCEBreaker",
            platform=ICEBreakerPlatform,
            family="ice40",
            device="iCE40UP5K-SG48",
            clock_mhz=12.0,
            bitstream="top.bin",
            programmer=("iceprog", "{bitstream}"),
            uart=("uart", 0),
            leds=_leds("led", 2),
            goal_mhz=40.0,
            # FT2232H: 12 Mbaud at most (FTDI DS_FT2232H); 3 Mbaud is an exact divisor there.
            baud=3_000_000,
        ),
        Board(
            name="icesugar",
            title="MuseLab iCESugar",
            platform=ICESugarPlatform,
            family="ice40",
            device="iCE40UP5K-SG48",
            clock_mhz=12.0,
            bitstream="top.bin",
            programmer=("icesprog", "{bitstream}"),
            uart=("uart", 0),
            leds=_leds("led", 3),
            goal_mhz=40.0,
        ),
        Board(
            name="ulx3s-85f",
            title="Radiona ULX3S-85F",
            platform=ULX3S_85F_Platform,
            family="ecp5",
            device="LFE5U-85F-BG381-6",
            clock_mhz=25.0,
            bitstream="top.bit",
            # -m: load into SRAM (the flash keeps its design).
            programmer=("openFPGALoader", "-b", "ulx3s", "-m", "{bitstream}"),
            uart=("uart", 0),
            leds=_leds("led", 8),
            goal_mhz=120.0,
            # FT231X: 3 Mbaud at most (FTDI DS_FT231X).
            baud=3_000_000,
        ),
        Board(
            name="orangecrab",
            title="OrangeCrab r0.2 (25F)",
            platform=_OrangeCrabPlatform,
            family="ecp5",
            device="LFE5U-25F-MG285-8",
            clock_mhz=48.0,
            bitstream="top.bit",
            # USB bootloader (1209:5af0, entered by holding the button at power-up); the file is
            # a copy of the bitstream with the DFU suffix that the bootloader checks.
            programmer=("dfu-util", "-a", "0", "-D", "{bitstream}"),
            uart=("uart", 0),
            uart_note="header pins 0 (RX) and 1 (TX), through a 3.3 V USB-serial adapter",
            leds=tuple(("rgb_led", 0, colour) for colour in "rgb"),
            goal_mhz=120.0,
        ),
        Board(
            name="tangnano9k",
            title="Sipeed Tang Nano 9K",
            platform=TangNano9kPlatform,
            family="gowin",
            device="GW1NR-LV9QN88PC6/I5",
            clock_mhz=27.0,
            bitstream="top.fs",
            programmer=("openFPGALoader", "-b", "tangnano9k", "{bitstream}"),
            uart=("uart", 0),
            leds=_leds("led", 6),
            goal_mhz=110.0,
            # BL702 (an FT2232 look-alike): one user reports clean 3 Mbaud
            # (sipeed/TangNano-9K-example#7), others unreliable enumeration on Linux (#29);
            # not established enough for a default.
        ),
    ]
}


def board_names():
    """Names of the supported boards, in the order ``spikeforge boards`` lists them."""
    return list(BOARDS)


def get_board(name):
    """The :class:`Board` called ``name``, or a one-line error listing the supported ones."""
    try:
        return BOARDS[name]
    except (KeyError, TypeError):
        raise SpikeforgeError(
            f"unknown board {name!r}: supported boards are {', '.join(BOARDS)}"
        ) from None
