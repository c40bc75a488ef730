"""Build a bitstream for a supported board and report its size and speed.

``build(top, "icebreaker", "build/ice")`` runs Amaranth's own flow for the board (Yosys, nextpnr,
the packer; all YoWASP wheels from PyPI) and returns the figures of
:func:`spikeforge.boards.report.parse_report`. A caller that knows the design adds its own
fields (``neurons``, ``synapses``) to the returned dictionary.
"""

import dataclasses
import json
import os
import re
import subprocess

from ..spec.errors import SpikeforgeError, ToolError
from ..spec.files import atomic_write
from .pll import PLLTop, pll_for
from .registry import get_board
from .report import REPORT_FIELDS, check_report, load_report, parse_report
from .toolchain import tool_environment

__all__ = ["BuildError", "build", "default_build_dir", "DEFAULT_BUILD_DIR"]

# Where `spikeforge build --board NAME` puts its output unless told otherwise, and where
# `spikeforge flash` looks for the bitstream.
DEFAULT_BUILD_DIR = os.path.join("build", "{board}")
NAME = "top"
LOG_NAME = "build.log"
REPORT_NAME = "report.json"

# nextpnr's "Device utilisation" lines, e.g. "Info:          ICESTORM_LC:  6491/  5280   122%".
_UTILISATION_LINE = re.compile(r"^Info:\s+(\S+):\s+(\d+)/\s*(\d+)\s+\d+%", re.MULTILINE)


class BuildError(ToolError):
    """A tool of the flow failed; the message names the step and the first error line."""


def default_build_dir(board):
    """``build/BOARD``: the build folder of ``board`` (a name or a Board) unless told otherwise."""
    board = get_board(board) if isinstance(board, str) else board
    return DEFAULT_BUILD_DIR.format(board=board.name)


def _read(path):
    try:
        with open(path, encoding="utf-8", errors="replace") as file:
            return file.read()
    except FileNotFoundError:
        return ""


def _explain_failure(board, build_dir):
    # Amaranth's script runs Yosys (log top.rpt), then nextpnr (log top.tim), then the packer;
    # the last log that exists says which step stopped.
    log_path = os.path.join(build_dir, LOG_NAME)
    pnr_log = _read(os.path.join(build_dir, f"{NAME}.tim"))
    # Himbaechel-gowin lists cell types the device has none of as used anyway (e.g. "TBUF:
    # 3/ 0" in a build that succeeds): those are packed away later, not a lack of room.
    over = [
        (cell, int(used), int(available))
        for cell, used, available in _UTILISATION_LINE.findall(pnr_log)
        if int(used) > int(available) > 0
    ]
    if over:
        cell, used, available = over[0]
        return (
            f"design does not fit the {board.device} of {board.name}: {used} {cell} used, "
            f"{available} available ({used - available} over, "
            f"{100 * used // available}%)"
        )
    if pnr_log:
        step, text = "nextpnr", pnr_log
    else:
        step, text = "yosys", _read(os.path.join(build_dir, f"{NAME}.rpt"))
    # Every tool's build output (and a WebAssembly trap, which prints no ERROR line) is in the
    # combined log too.
    for candidate in (text, _read(log_path)):
        for line in candidate.splitlines():
            if line.startswith("ERROR") or "Error:" in line:
                return f"{step} failed for {board.name}: {line.strip()} (log: {log_path})"
    # No error line (a full disk, a killed tool): the log's last line says the most.
    last = next(
        (line.strip() for line in reversed(_read(log_path).splitlines()) if line.strip()), ""
    )
    if last:
        return f"{step} failed for {board.name}: {last} (log: {log_path})"
    return f"{step} failed for {board.name} without an error message (log: {log_path})"


def build(top, board, build_dir, *, clock_mhz=None, check_timing=True, extra=None):
    """Synthesise, place and route ``top`` for ``board``, and write the bitstream.

    Parameters
    ----------
    top : amaranth.hdl.Elaboratable
        The board top: requests its pins from the platform it is elaborated for. Its ``sync``
        domain runs from the board clock unless it defines one itself.
    board : str or Board
        A name from :data:`spikeforge.boards.registry.BOARDS`.
    build_dir : str or os.PathLike
        Output folder (created); any path works, including ones under ``/tmp``, because the
        tools run inside it with relative paths.
    clock_mhz : float, optional
        The ``sync`` clock; default: the board clock. Any other frequency is made by a PLL
        (see :mod:`spikeforge.boards.pll`), within 1%, and the report's
        ``clock_mhz`` is the frequency the PLL really makes.
    check_timing : bool
        Raise :class:`~spikeforge.boards.report.ReportError` when fmax is below ``clock_mhz``
        (the bitstream and ``report.json`` are written first). When false, nextpnr is told to
        finish a design that misses ``clock_mhz`` too, so that measurements can constrain
        above what they expect and still get the report.
    extra : dict, optional
        Design fields (``neurons``, ``synapses``, ...) added to the report before it is saved;
        they may not replace a field of the build.

    Returns
    -------
    dict
        The figures of :func:`~spikeforge.boards.report.parse_report` plus ``pll`` (the PLL
        settings, or None), also written to ``build_dir/report.json``.

    Raises
    ------
    SpikeforgeError
        Unknown board, or a clock no PLL can make.
    ToolError
        A tool of the flow is not installed.
    BuildError
        A tool failed; says which, and by how much the design is too big if it does not fit.
    """
    if not hasattr(board, "platform"):
        board = get_board(board)
    if clock_mhz is None:
        clock_mhz = board.clock_mhz
    if (
        not isinstance(clock_mhz, (int, float))
        or isinstance(clock_mhz, bool)
        or not 0 < clock_mhz <= 1000
    ):
        raise SpikeforgeError(
            f"clock_mhz must be a frequency in MHz in (0, 1000], not {clock_mhz!r}"
        )
    pll = None
    if clock_mhz != board.clock_mhz:
        pll = pll_for(board, clock_mhz)
        top = PLLTop(top, pll)
        clock_mhz = round(pll.f_out_mhz, 6)
    extra = dict(extra or {})
    clash = sorted(set(extra) & set(REPORT_FIELDS))
    if clash:
        raise SpikeforgeError(
            f"extra report fields must not replace build fields, not {', '.join(clash)}"
        )
    build_dir = os.path.abspath(os.fspath(build_dir))
    env = tool_environment(board.family, build_dir)
    # The report JSON is the machine-readable source of the figures. Gowin's place-and-route
    # does not read the clock constraint from the .cst, so it is given the target directly.
    nextpnr_opts = [f"--report {NAME}.report.json"]
    if board.family == "gowin":
        nextpnr_opts.append(f"--freq {clock_mhz:g}")
    if not check_timing:
        # Measurements (the benchmarks) constrain above what they expect and want the report
        # of a design that misses it, not a failed build.
        nextpnr_opts.append("--timing-allow-fail")
    plan = board.platform().build(
        top, name=NAME, do_build=False, nextpnr_opts=" ".join(nextpnr_opts)
    )
    try:
        plan.extract(build_dir)
        with open(os.path.join(build_dir, LOG_NAME), "wb") as log:
            # Our own run of Amaranth's script (plan.execute_local would check for the
            # programmer too and print every tool's output on the terminal).
            status = subprocess.run(
                ["sh", f"{plan.script}.sh"],
                cwd=build_dir,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            ).returncode
    except OSError as error:
        # A full disk or a folder that went away: the tools cannot run, whatever the design.
        raise BuildError(
            f"build for {board.name} failed in {build_dir}: {error.strerror or error}"
        ) from None
    if status != 0:
        raise BuildError(_explain_failure(board, build_dir))
    report = parse_report(
        load_report(os.path.join(build_dir, f"{NAME}.report.json")),
        _read(os.path.join(build_dir, f"{NAME}.rpt")),
        board=board,
        clock_mhz=clock_mhz,
        bitstream=os.path.join(build_dir, board.bitstream),
    )
    report["pll"] = None if pll is None else dataclasses.asdict(pll)
    report.update(extra)
    with atomic_write(os.path.join(build_dir, REPORT_NAME)) as file:
        json.dump(report, file, indent=2, sort_keys=True)
        file.write("\n")
    if check_timing:
        check_report(report)
    return report
