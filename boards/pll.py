"""PLLs that run a board top's ``sync`` domain at another frequency than the board clock.

The iCE40 and ECP5 divider searches give the same settings as the Project IceStorm / Trellis
tools (``icepll``, ``ecppll``; the YoWASP wheels ship both); the Gowin search reaches the same
frequencies as Apicula's ``gowin_pll`` (installed with the himbaechel wheel). The tests pin
their outputs.
"""

from dataclasses import dataclass

from amaranth.hdl import ClockDomain, Elaboratable, Instance, Module, Signal
from amaranth.lib import io
from amaranth.lib.cdc import ResetSynchronizer

from ..spec.errors import SpikeforgeError

__all__ = [
    "ICE40PLL",
    "ECP5PLL",
    "GowinPLL",
    "ice40_pll",
    "ecp5_pll",
    "gowin_pll",
    "PLLTop",
    "pll_for",
    "pll_outputs",
]


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


@dataclass(frozen=True)
class GowinPLL:
    """``rPLL`` settings, internal feedback: f_out = f_in·(fbdiv_sel+1) / (idiv_sel+1).

    The VCO runs at f_out·odiv_sel (``odiv_sel`` is the divider itself, not a code).
    """

    idiv_sel: int
    fbdiv_sel: int
    odiv_sel: int
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


# GW1N(R)-9 C6/I5 rPLL limits (Gowin DS117, GW1N series data sheet; the same as Apicula's
# gowin_pll and gowin_pack use for the GW1NR-9C of the Tang Nano 9K): phase detector 3-400 MHz,
# VCO 400-1200 MHz, CLKOUT above 3.125 and up to 600 MHz.
GOWIN_PFD_MHZ = (3, 400)
GOWIN_VCO_MHZ = (400, 1200)
GOWIN_CLKOUT_MHZ = (3.125, 600)
# The output dividers the rPLL has (UG286, Gowin clock user guide).
GOWIN_ODIVS = (2, 4, 8, 16, 32, 48, 64, 80, 96, 112, 128)


def gowin_pll(f_in_mhz, f_out_mhz):
    """The GW1N(R)-9 ``rPLL`` dividers whose CLKOUT is closest to ``f_out_mhz``.

    IDIV_SEL and FBDIV_SEL run over 0–63. Of equally close settings the one with the fastest
    phase detector wins (less jitter), then the one with the VCO nearest the middle of its
    range (800 MHz); ``gowin_pll`` takes the first in (IDIV, FBDIV, ODIV) order instead, so the
    two reach the same frequency with possibly other dividers.
    """
    best = None
    vco_middle = sum(GOWIN_VCO_MHZ) / 2
    for idiv_sel in range(64):
        f_pfd = f_in_mhz / (idiv_sel + 1)
        if not GOWIN_PFD_MHZ[0] <= f_pfd <= GOWIN_PFD_MHZ[1]:
            continue
        for fbdiv_sel in range(64):
            f_out = f_in_mhz * (fbdiv_sel + 1) / (idiv_sel + 1)
            if not GOWIN_CLKOUT_MHZ[0] < f_out <= GOWIN_CLKOUT_MHZ[1]:
                continue
            for odiv_sel in GOWIN_ODIVS:
                f_vco = f_out * odiv_sel
                if not GOWIN_VCO_MHZ[0] <= f_vco <= GOWIN_VCO_MHZ[1]:
                    continue
                # Rounded so that equal frequencies reached through other ratios tie exactly.
                key = (round(abs(f_out - f_out_mhz), 9), -f_pfd, abs(f_vco - vco_middle))
                if best is None or key < best[0]:
                    best = (key, idiv_sel, fbdiv_sel, odiv_sel, f_out, f_vco)
    if best is None:
        raise SpikeforgeError(f"no Gowin PLL setting takes {f_in_mhz:g} MHz in")
    _, idiv_sel, fbdiv_sel, odiv_sel, f_out, f_vco = best
    return GowinPLL(idiv_sel, fbdiv_sel, odiv_sel, f_in_mhz, f_out, f_vco)


# The divider search of each family in the registry. The Gowin one has the limits of the
# GW1N(R)-9, the part of the one Gowin board.
_SEARCHES = {"ice40": ice40_pll, "ecp5": ecp5_pll, "gowin": gowin_pll}

# Largest relative miss of the requested clock that is accepted without complaint.
MAX_CLOCK_ERROR = 0.01


def pll_for(board, clock_mhz):
    """PLL settings that make ``clock_mhz`` from ``board``'s clock, within 1%.

    Raises
    ------
    SpikeforgeError
        No setting comes within 1% (the message says how far the closest is).
    """
    pll = _SEARCHES[board.family](board.clock_mhz, clock_mhz)
    miss = abs(pll.f_out_mhz - clock_mhz) / clock_mhz
    if miss > MAX_CLOCK_ERROR:
        raise SpikeforgeError(
            f"clock_mhz {clock_mhz:g} cannot be made from the "
            f"{board.clock_mhz:g} MHz clock of {board.name}: the closest PLL "
            f"output is {pll.f_out_mhz:.3f} MHz, {100 * miss:.1f}% off "
            f"(at most 1%)"
        )
    return pll


def _ice40_outputs(f_in):
    for divr in range(16):
        f_pfd = f_in / (divr + 1)
        if 10 <= f_pfd <= 133:
            for divf in range(128):
                f_vco = f_pfd * (divf + 1)
                if 533 <= f_vco <= 1066:
                    yield from (f_vco / (1 << divq) for divq in range(1, 7))


def _ecp5_outputs(f_in):
    for clki_div in range(1, 129):
        f_pfd = f_in / clki_div
        if 3.125 <= f_pfd <= 400:
            for clkfb_div in range(1, 81):
                f_out = f_pfd * clkfb_div
                # Some CLKOP divider (1 to 128) must put the VCO in 400-800 MHz.
                if f_out <= 800 and f_out * 128 >= 400 and -(-400 // f_out) * f_out <= 800:
                    yield f_out


def _gowin_outputs(f_in):
    for idiv_sel in range(64):
        if GOWIN_PFD_MHZ[0] <= f_in / (idiv_sel + 1) <= GOWIN_PFD_MHZ[1]:
            for fbdiv_sel in range(64):
                f_out = f_in * (fbdiv_sel + 1) / (idiv_sel + 1)
                if GOWIN_CLKOUT_MHZ[0] < f_out <= GOWIN_CLKOUT_MHZ[1] and any(
                    GOWIN_VCO_MHZ[0] <= f_out * odiv <= GOWIN_VCO_MHZ[1] for odiv in GOWIN_ODIVS
                ):
                    yield f_out


_OUTPUTS = {"ice40": _ice40_outputs, "ecp5": _ecp5_outputs, "gowin": _gowin_outputs}


def pll_outputs(board):
    """Every frequency in MHz the PLL of ``board`` makes from its clock, ascending.

    The same divider ranges and limits as the searches of :func:`pll_for`, so each of them is
    the exact output of ``pll_for(board, f)`` (rounded to 1 Hz here).
    """
    return sorted({round(f, 6) for f in _OUTPUTS[board.family](board.clock_mhz)})


class PLLTop(Elaboratable):
    """Runs ``top`` with its ``sync`` domain on a PLL output from the board clock pin.

    ``sync`` is held in reset until the PLL locks (released synchronously).

    Parameters
    ----------
    top : Elaboratable
        The board top, added as a submodule.
    pll : ICE40PLL, ECP5PLL or GowinPLL
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
                "SB_PLL40_PAD",
                p_FEEDBACK_PATH="SIMPLE",
                p_DIVR=pll.divr,
                p_DIVF=pll.divf,
                p_DIVQ=pll.divq,
                p_FILTER_RANGE=pll.filter_range,
                i_PACKAGEPIN=pin.io,
                i_RESETB=1,
                i_BYPASS=0,
                o_PLLOUTGLOBAL=sync.clk,
                o_LOCK=lock,
            )
        elif isinstance(pll, GowinPLL):
            m.submodules.clk_buffer = clk_buffer = io.Buffer("i", pin)
            # Static dividers, internal feedback, only CLKOUT used. gowin_pack derives the
            # charge pump and loop filter from FCLKIN and the dividers, and checks the limits
            # of gowin_pll() again.
            m.submodules.pll = Instance(
                "rPLL",
                p_FCLKIN=f"{pll.f_in_mhz:g}",
                p_IDIV_SEL=pll.idiv_sel,
                p_FBDIV_SEL=pll.fbdiv_sel,
                p_ODIV_SEL=pll.odiv_sel,
                p_DYN_IDIV_SEL="false",
                p_DYN_FBDIV_SEL="false",
                p_DYN_ODIV_SEL="false",
                p_CLKFB_SEL="internal",
                p_CLKOUT_BYPASS="false",
                p_DEVICE="GW1NR-9C",
                i_CLKIN=clk_buffer.i,
                i_CLKFB=0,
                i_RESET=0,
                i_RESET_P=0,
                i_FBDSEL=0,
                i_IDSEL=0,
                i_ODSEL=0,
                i_PSDA=0,
                i_DUTYDA=0,
                i_FDLY=0,
                o_CLKOUT=sync.clk,
                o_LOCK=lock,
            )
        else:
            m.submodules.clk_buffer = clk_buffer = io.Buffer("i", pin)
            m.submodules.pll = Instance(
                "EHXPLLL",
                a_FREQUENCY_PIN_CLKI=f"{pll.f_in_mhz:g}",
                a_FREQUENCY_PIN_CLKOP=f"{pll.f_out_mhz:g}",
                a_ICP_CURRENT="12",
                a_LPF_RESISTOR="8",
                a_MFG_ENABLE_FILTEROPAMP="1",
                a_MFG_GMCREF_SEL="2",
                p_PLLRST_ENA="DISABLED",
                p_INTFB_WAKE="DISABLED",
                p_STDBY_ENABLE="DISABLED",
                p_DPHASE_SOURCE="DISABLED",
                p_OUTDIVIDER_MUXA="DIVA",
                p_CLKI_DIV=pll.clki_div,
                p_CLKFB_DIV=pll.clkfb_div,
                p_CLKOP_ENABLE="ENABLED",
                p_CLKOP_DIV=pll.clkop_div,
                # Zero phase: Lattice's convention is CPHASE = DIV - 1.
                p_CLKOP_CPHASE=pll.clkop_div - 1,
                p_CLKOP_FPHASE=0,
                p_FEEDBK_PATH="CLKOP",
                i_CLKI=clk_buffer.i,
                i_CLKFB=sync.clk,
                i_RST=0,
                i_STDBY=0,
                i_PHASESEL0=0,
                i_PHASESEL1=0,
                i_PHASEDIR=1,
                i_PHASESTEP=1,
                i_PHASELOADREG=1,
                i_PLLWAKESYNC=0,
                i_ENCLKOP=0,
                o_CLKOP=sync.clk,
                o_LOCK=lock,
            )
        platform.add_clock_constraint(sync.clk, pll.f_out_mhz * 1e6)
        m.submodules.reset = ResetSynchronizer(~lock, domain="sync")
        m.submodules.top = self.top
        return m
