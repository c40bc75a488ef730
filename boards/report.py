"""Resource and timing figures of a finished build, from nextpnr's JSON report and Yosys's log.

nextpnr's ``--report`` JSON (written by :func:`spikeforge.boards.build.build`) has ``fmax``
(``achieved`` and ``constraint`` in MHz per clock net) and ``utilization`` (``used`` and
``available`` per cell type after packing). The Yosys log (``top.rpt``) gives the cell types
before placement; the flip-flop count of iCE40 comes from there because its logic cell holds a
LUT and a flip-flop together.
"""

import json
import re

from ..spec.errors import SpikeforgeError, ToolError

__all__ = [
    "REPORT_FIELDS",
    "ReportError",
    "yosys_cells",
    "parse_report",
    "check_report",
    "load_report",
    "format_report",
]

# Cell types of nextpnr's utilisation per family: what counts as a LUT, a flip-flop, a block
# RAM, a single-port RAM, a DSP. Gowin ALUs occupy LUT slots of the same slice, so they count.
_UTILISATION = {
    "ice40": {
        "luts": ("ICESTORM_LC",),
        "ffs": (),
        "brams": ("ICESTORM_RAM",),
        "sprams": ("ICESTORM_SPRAM",),
        "dsps": ("ICESTORM_DSP",),
    },
    "ecp5": {
        "luts": ("TRELLIS_COMB",),
        "ffs": ("TRELLIS_FF",),
        "brams": ("DP16KD",),
        "sprams": (),
        "dsps": ("MULT18X18D", "ALU54B"),
    },
    "gowin": {
        "luts": ("LUT4", "ALU"),
        "ffs": ("DFF",),
        "brams": ("BSRAM",),
        "sprams": (),
        "dsps": (
            "MULT9X9",
            "MULT18X18",
            "MULT36X36",
            "MULTALU18X18",
            "MULTALU36X18",
            "MULTADDALU18X18",
            "PADD9",
            "PADD18",
            "ALU54D",
            "DSP",
        ),
    },
}

# Cell-type lines of Yosys's `stat`, e.g. "       38   SB_LUT4" (counters of wires and ports
# use one space, cell types three).
_CELL_LINE = re.compile(r"^\s*(\d+)\s{3}(\S+)\s*$")
_PASS_HEADING = re.compile(r"^\d+(\.\d+)*\. ")


# The fields of a build report (build() adds "pll"); design fields come on top.
REPORT_FIELDS = (
    "board",
    "family",
    "device",
    "luts",
    "luts_available",
    "ffs",
    "brams",
    "sprams",
    "dsps",
    "fmax_mhz",
    "clock_mhz",
    "slack_mhz",
    "timing_met",
    "bitstream",
    "clocks",
    "utilization",
    "cells",
    "pll",
)


class ReportError(ToolError):
    """A build that finished but misses its clock; ``report`` holds the figures."""

    def __init__(self, message, report):
        super().__init__(message)
        self.report = report


def yosys_cells(log_text):
    """Cell counts of the final ``stat`` in a Yosys log (whole hierarchy).

    Parameters
    ----------
    log_text : str
        Contents of the Yosys log (Amaranth writes it as ``top.rpt``).

    Returns
    -------
    dict of str to int
        Cell type to count, e.g. ``{"SB_LUT4": 38, ...}``; empty if the log has no statistics.
    """
    start = max(log_text.rfind("=== design hierarchy ==="), log_text.rfind("=== top ==="))
    if start < 0:
        return {}
    cells = {}
    for line in log_text[start:].splitlines()[1:]:
        if _PASS_HEADING.match(line):
            break
        match = _CELL_LINE.match(line)
        if match:
            cells[match.group(2)] = int(match.group(1))
    return cells


def _clock_fmax(fmax):
    # The design's clock is Amaranth's `sync` domain; its net is named after it, with a prefix
    # on ECP5 ("$glbnet$cd_sync.clk").
    if not fmax:
        raise SpikeforgeError(
            "nextpnr reported no clock: the design has no clocked logic (timing cannot be checked)"
        )
    for net, figures in sorted(fmax.items()):
        if net.endswith("cd_sync.clk"):
            return figures["achieved"]
    return min(figures["achieved"] for figures in fmax.values())


def parse_report(nextpnr_report, yosys_log, *, board, clock_mhz, bitstream):
    """The report dictionary of one build.

    Parameters
    ----------
    nextpnr_report : dict
        The parsed ``--report`` JSON of nextpnr.
    yosys_log : str
        The Yosys log text.
    board : Board
        The board built for (gives name, family and device).
    clock_mhz : float
        The clock the design must run at.
    bitstream : str
        Path of the bitstream file.

    Returns
    -------
    dict
        ``board, family, device, luts, luts_available, ffs, brams, sprams, dsps, fmax_mhz,
        clock_mhz, slack_mhz, timing_met, bitstream, clocks, utilization, cells``. Callers may
        add design fields such as ``neurons`` and ``synapses``.
    """
    used = {cell: figures["used"] for cell, figures in nextpnr_report["utilization"].items()}
    available = {
        cell: figures["available"] for cell, figures in nextpnr_report["utilization"].items()
    }
    cells = yosys_cells(yosys_log)
    kinds = _UTILISATION[board.family]

    def count(kind):
        return sum(used.get(cell, 0) for cell in kinds[kind])

    if board.family == "ice40":
        ffs = sum(n for cell, n in cells.items() if cell.startswith("SB_DFF"))
    else:
        ffs = count("ffs")
    fmax = _clock_fmax(nextpnr_report["fmax"])
    return {
        "board": board.name,
        "family": board.family,
        "device": board.device,
        "luts": count("luts"),
        "luts_available": sum(available.get(cell, 0) for cell in kinds["luts"][:1]),
        "ffs": ffs,
        "brams": count("brams"),
        "sprams": count("sprams"),
        "dsps": count("dsps"),
        "fmax_mhz": round(fmax, 2),
        "clock_mhz": clock_mhz,
        "slack_mhz": round(fmax - clock_mhz, 2),
        "timing_met": fmax >= clock_mhz,
        "bitstream": bitstream,
        "clocks": {
            net: round(figures["achieved"], 2)
            for net, figures in sorted(nextpnr_report["fmax"].items())
        },
        "utilization": {cell: [used[cell], available[cell]] for cell in sorted(used)},
        "cells": dict(sorted(cells.items())),
    }


def check_report(report):
    """Raise :class:`ReportError` when the design misses its clock, saying by how much."""
    if not report["timing_met"]:
        short = report["clock_mhz"] - report["fmax_mhz"]
        raise ReportError(
            f"fmax {report['fmax_mhz']:.1f} MHz is {short:.1f} MHz short of the "
            f"{report['clock_mhz']:g} MHz clock on {report['board']}",
            report,
        )


def load_report(path):
    """Parse nextpnr's ``--report`` JSON file at ``path``."""
    with open(path, encoding="utf-8") as file:
        return json.load(file)


def format_report(report):
    """One line that sums up a build, for the CLI: resources, fmax against the clock, the
    timesteps (and inferences, of a classifier) a second at that clock when the report has
    them (``timesteps_per_s``, ``inferences_per_s``), file."""
    verdict = "met" if report["timing_met"] else "MISSED"
    pll = " (PLL)" if report.get("pll") else ""
    rate = ""
    if "timesteps_per_s" in report:
        rate = f"; at least {report['timesteps_per_s']:,} timesteps/s"
        if "inferences_per_s" in report:
            rate += f", {report['inferences_per_s']:,} inferences/s"
        rate += f" ({report['step_cycles']:,} cycles a step at most)"
    return (
        f"{report['board']} ({report['device']}): {report['luts']}/"
        f"{report['luts_available']} LUTs, {report['ffs']} FFs, {report['brams']} BRAMs, "
        f"{report['sprams']} SPRAMs, {report['dsps']} DSPs; fmax {report['fmax_mhz']:.1f} "
        f"MHz at {report['clock_mhz']:g} MHz{pll}: timing {verdict}{rate}; "
        f"{report['bitstream']}"
    )
