"""The ``icarus`` back-end without Python per cycle: the array under a Verilog testbench.

:class:`IcarusArray` is :class:`~.native.NativeArray` with Icarus in place of Verilator: the
testbench ``native_array_tb.v`` (package data) reads the same input words (as hexadecimal
text, with ``$fscanf`` while it runs) and writes one line per output event, which this module
turns into the output words of the Verilator harness. ``iverilog`` compiles the design once per
content into ``$SPIKEFORGE_CACHE/native/icarus-<hash>/sim.vvp``; ``vvp`` runs the whole batch.
Waveforms: VCD, or FST through ``vvp -fst``.
"""

import hashlib
import importlib.resources
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from ..gen.output import ARRAY_TOP
from ..spec.errors import ToolError
from .native import NativeArray, _check_exit
from .native_build import cache_root
from .rtl import check_simulator

__all__ = ["TESTBENCH", "IcarusArray", "run_array_icarus"]

TESTBENCH = "native_array_tb.v"
_TOP = "spikeforge_native_tb"


class IcarusArray(NativeArray):
    """The array's program under Icarus; the parameters and :meth:`run` of
    :class:`~.native.NativeArray`."""

    def _program(self, fmt):
        check_simulator("icarus")
        self.fmt = fmt
        testbench = importlib.resources.files(__package__).joinpath(TESTBENCH).read_text("utf-8")
        array = self.array
        defines = {
            "SPIKE_IN_W": len(array.spike_in.payload.as_value()),
            "SPIKE_OUT_W": len(array.spike_out.payload.as_value()),
            "CFG_W": len(array.cfg.payload.as_value()),
        }
        if self.trace:
            defines.update(TRACE=1, TRACE_W=len(array.trace_out.payload.as_value()))
        flags = ["-g2012", *(f"-D{name}={value}" for name, value in sorted(defines.items()))]
        digest = hashlib.sha256()
        for part in (testbench, self.verilog, " ".join(flags)):
            digest.update(hashlib.sha256(part.encode()).digest())
        folder = cache_root() / f"icarus-{digest.hexdigest()[:24]}"
        program = folder / "sim.vvp"
        if program.is_file():
            return program
        folder.parent.mkdir(parents=True, exist_ok=True)
        build = Path(tempfile.mkdtemp(prefix=f"{folder.name}.build-", dir=folder.parent))
        (build / TESTBENCH).write_text(testbench)
        (build / f"{ARRAY_TOP}.v").write_text(self.verilog)
        result = subprocess.run(
            ["iverilog", *flags, "-s", _TOP, "-o", "sim.vvp", TESTBENCH, f"{ARRAY_TOP}.v"],
            cwd=build,
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode:
            lines = (result.stderr + result.stdout).strip().splitlines() or ["no output"]
            raise ToolError(f"Icarus could not compile the array: {lines[0]} (in {build})")
        try:
            build.rename(folder)
        except OSError:
            # Another process compiled the same design first.
            shutil.rmtree(build, ignore_errors=True)
        return program

    def _simulate(self, words, folder):
        in_path, out_path = folder / "in.hex", folder / "out.txt"
        in_path.write_text("".join(f"{w:x}\n" for w in words.view(np.uint64).tolist()))
        command = ["vvp", "-n", str(self.program)]
        if self.fmt == "fst":
            command.append("-fst")
        command += [f"+in={in_path}", f"+out={out_path}"]
        if self.waves is not None:
            command.append(f"+waves={self.waves}")
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        _check_exit(result)
        return self._words(out_path.read_text().split("\n"))

    def _words(self, lines):
        """The testbench's lines as the words of the Verilator harness's output file."""
        lanes, v_width = self.array.plan.lanes, self.array.plan.v_width
        rows = {"S": [], "T": [], "C": []}
        for line in lines:
            if line:
                rows[line[0]].append(line[2:].split())
        spikes = np.array(rows["S"], np.int64).reshape(-1, 4)
        traces = np.array(rows["T"], np.int64).reshape(-1, 5 + lanes)
        # The testbench writes the raw bits of the membranes.
        v = traces[:, 5:]
        traces[:, 5:] = np.where(v >> (v_width - 1) & 1, v - (1 << v_width), v)
        cycles = np.array(rows["C"], np.int64).reshape(-1, 3)[:, 2]
        head = np.array([len(spikes), len(traces), lanes], np.int64)
        return np.concatenate([head, spikes.reshape(-1), traces.reshape(-1), cycles])


def run_array_icarus(
    net,
    spikes,
    trace=False,
    *,
    lanes=1,
    stages=4,
    out_stall=0.0,
    seed=0,
    runtime_weights=False,
    waves=None,
    waves_steps=None,
):
    """:func:`~.native.run_array_native` under Icarus."""
    icarus = IcarusArray(
        net, lanes=lanes, stages=stages, trace=trace, runtime_weights=runtime_weights, waves=waves
    )
    return icarus.run(spikes, out_stall=out_stall, seed=seed, waves_steps=waves_steps)
