"""PLLs that run a board top's ``sync`` domain at another frequency than the board clock.

The divider searches give the same settings as the Project IceStorm / Trellis tools
(``icepll``, ``ecppll``; the YoWASP wheels ship both); the tests pin their outputs.
"""

from dataclasses import dataclass

from amaranth.hdl import ClockDomain, Elaboratable, Instance, Module, Signal
from amaranth.lib import io
from amaranth.lib.cdc import ResetSynchronizer

from ..gen.errors import SpikeforgeError

__all__ = ["ICE40PLL", "ECP5PLL", "ice40_pll", "ecp5_pll", "PLLTop", "pll_for"]


@dataclass(frozen=True)
class ICE40PLL:
    """``SB_PLL40`` settings, simple feedback: f_out = f_in·(divf+1) / ((divr+1)·2^divq)."""

    divr: int
    divf: int
    divq: int
    filter_range: int
    f_in_mhz: float
    f_out_mhz: float


@dataclass(frozen=True)
class ECP5PLL:
    """``EHXPLLL`` settings, feedback from CLKOP: f_out = f_in·clkfb_div / clki_div."""

    clki_div: int
    clkfb_div: int
    clkop_div: int
    f_in_mhz: float
    f_out_mhz: float
    f_vco_mhz: float


def ice40_pll(f_in_mhz, f_out_mhz):
    """The ``SB_PLL40`` dividers whose output is closest to ``f_out_mhz`` (as ``icepll``).

    The phase detector must run at 10–133 MHz and the VCO at 533–1066 MHz (iCE40 data sheet);
    of equally close settings the first in (divr, divf, divq) order wins.
    """
    best = None
    for divr in range(16):
        f_pfd = f_in_mhz / (divr + 1)
        if not 10 <= f_pfd <= 133:
            continue
        for divf in range(128):
            f_vco = f_pfd * (divf + 1)
            if not 533 <= f_vco <= 1066:
                continue
            for divq in range(1, 7):
                f_out = f_vco / (1 << divq)
                if best is None or abs(f_out - f_out_mhz) < abs(best[3] - f_out_mhz):
                    best = (divr, divf, divq, f_out, f_pfd)
    if best is None:
        raise SpikeforgeError(f"no iCE40 PLL setting takes {f_in_mhz:g} MHz in")
    divr, divf, divq, f_out, f_pfd = best
    # Loop filter by phase-detector frequency, as icepll chooses it.
    filter_range = 1 + sum(f_pfd >= edge for edge in (17, 26, 44, 66, 101))
    return ICE40PLL(divr, divf, divq, filter_range, f_in_mhz, f_out)


def ecp5_pll(f_in_mhz, f_out_mhz):
    """The ``EHXPLLL`` dividers whose CLKOP is closest to ``f_out_mhz`` (as ``ecppll``).

    Phase detector 3.125–400 MHz, VCO 400–800 MHz; of equally close settings the one with the
    VCO nearest 600 MHz wins, then the first in (clki, clkfb, clkop) order.
    """
    best = None
    for clki_div in range(1, 129):
        f_pfd = f_in_mhz / clki_div
        if not 3.125 <= f_pfd <= 400:
            continue
        for clkfb_div in range(1, 81):
            f_out = f_pfd * clkfb_div
            for clkop_div in range(1, 129):
                f_vco = f_out * clkop_div
                if not 400 <= f_vco <= 800:
                    continue
                key = (abs(f_out - f_out_mhz), abs(f_vco - 600))
                if best is None or key < best[0]:
                    best = (key, clki_div, clkfb_div, clkop_div, f_out, f_vco)
    if best is None:
        raise SpikeforgeError(f"no ECP5 PLL setting takes {f_in_mhz:g} MHz in")
    _, clki_div, clkfb_div, clkop_div, f_out, f_vco = best
    return ECP5PLL(clki_div, clkfb_div, clkop_div, f_in_mhz, f_out, f_vco)


# Largest relative miss of the requested clock that is accepted without complaint.
MAX_CLOCK_ERROR = 0.01


def pll_for(board, clock_mhz):
    """PLL settings that make ``clock_mhz`` from ``board``'s clock, within 1%.

    Raises
    ------
    SpikeforgeError
        The family has no PLL support here, or no setting comes within 1%.
    """
    if board.family == "ice40":
        pll = ice40_pll(board.clock_mhz, clock_mhz)
    elif board.family == "ecp5":
        pll = ecp5_pll(board.clock_mhz, clock_mhz)
    else:
        raise SpikeforgeError(f"clock_mhz must be the {board.clock_mhz:g} MHz board clock of "
                              f"{board.name}: no {board.family} PLL support yet, not {clock_mhz!r}")
    if abs(pll.f_out_mhz - clock_mhz) > MAX_CLOCK_ERROR * clock_mhz:
        raise SpikeforgeError(f"clock_mhz {clock_mhz:g} cannot be made from the "
                              f"{board.clock_mhz:g} MHz clock of {board.name}: the closest PLL "
                              f"output is {pll.f_out_mhz:.3f} MHz (more than 1% off)")
    return pll


class PLLTop(Elaboratable):
    """Runs ``top`` with its ``sync`` domain on a PLL output from the board clock pin.

    ``sync`` is held in reset until the PLL locks (released synchronously).

    Parameters
    ----------
    top : Elaboratable
        The board top, added as a submodule.
    pll : ICE40PLL or ECP5PLL
    """

    def __init__(self, top, pll):
        self.top = top
        self.pll = pll

    def elaborate(self, platform):
        m = Module()
        m.domains.sync = sync = ClockDomain("sync")
        lock = Signal()
        pin = platform.request(platform.default_clk, dir="-")
        pll = self.pll
        if isinstance(pll, ICE40PLL):
            # The _PAD variant takes the clock straight from the pin (the PLL input pad of the
            # iCEBreaker and iCESugar), with no global buffer in between.
            m.submodules.pll = Instance(
                "SB_PLL40_PAD", p_FEEDBACK_PATH="SIMPLE", p_DIVR=pll.divr, p_DIVF=pll.divf,
                p_DIVQ=pll.divq, p_FILTER_RANGE=pll.filter_range,
                i_PACKAGEPIN=pin.io, i_RESETB=1, i_BYPASS=0,
                o_PLLOUTGLOBAL=sync.clk, o_LOCK=lock)
        else:
            m.submodules.clk_buffer = clk_buffer = io.Buffer("i", pin)
            m.submodules.pll = Instance(
                "EHXPLLL",
                a_FREQUENCY_PIN_CLKI=f"{pll.f_in_mhz:g}", a_FREQUENCY_PIN_CLKOP=f"{pll.f_out_mhz:g}",
                a_ICP_CURRENT="12", a_LPF_RESISTOR="8", a_MFG_ENABLE_FILTEROPAMP="1",
                a_MFG_GMCREF_SEL="2",
                p_PLLRST_ENA="DISABLED", p_INTFB_WAKE="DISABLED", p_STDBY_ENABLE="DISABLED",
                p_DPHASE_SOURCE="DISABLED", p_OUTDIVIDER_MUXA="DIVA",
                p_CLKI_DIV=pll.clki_div, p_CLKFB_DIV=pll.clkfb_div,
                p_CLKOP_ENABLE="ENABLED", p_CLKOP_DIV=pll.clkop_div,
                # Zero phase: Lattice's convention is CPHASE = DIV - 1.
                p_CLKOP_CPHASE=pll.clkop_div - 1, p_CLKOP_FPHASE=0, p_FEEDBK_PATH="CLKOP",
                i_CLKI=clk_buffer.i, i_CLKFB=sync.clk, i_RST=0, i_STDBY=0, i_PHASESEL0=0,
                i_PHASESEL1=0, i_PHASEDIR=1, i_PHASESTEP=1, i_PHASELOADREG=1,
                i_PLLWAKESYNC=0, i_ENCLKOP=0, o_CLKOP=sync.clk, o_LOCK=lock)
        platform.add_clock_constraint(sync.clk, pll.f_out_mhz * 1e6)
        m.submodules.reset = ResetSynchronizer(~lock, domain="sync")
        m.submodules.top = self.top
        return m
