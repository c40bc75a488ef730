"""The ``verilator`` and ``icarus`` back-ends: the array's generated Verilog under cocotb."""

import hashlib
import os
import tempfile
from pathlib import Path

import numpy as np

from ..gen.compile import compile_network
from ..gen.output import convert
from ..gen.spike_io import check_input_spikes
from ..hdl.array import NeuronArray
from .array_amaranth import ArrayRecorder, collect_runs, max_wait_cycles
from .rtl import run_cocotb

__all__ = ["run_array_rtl", "array_verilog", "TOPLEVEL"]

TOPLEVEL = "spikeforge_array"


def array_verilog(net, *, lanes=1, stages=4, trace=False):
    """Deterministic Verilog of ``net`` on the array, and the array component itself."""
    plan = compile_network(net, lanes)
    dut = NeuronArray(plan, stages=stages, trace=trace)
    header = [("network", plan.network_hash), ("lanes", lanes), ("stages", stages),
              ("trace", trace), ("v_width", plan.v_width), ("w_width", plan.w_width),
              ("acc_width", plan.acc_width), ("slots", plan.slots),
              ("weight_words", plan.weight_words)]
    return convert(dut, name=TOPLEVEL, parameters=header), dut


def run_array_rtl(net, spikes, trace=False, *, simulator, lanes=1, stages=4, out_stall=0.0,
                  seed=0, build_root=None):
    """Run ``net`` on the array's Verilog under ``simulator`` (``"verilator"`` or ``"icarus"``).

    The build is cached per design under ``build_root`` (default: a ``spikeforge`` folder in
    the temp directory), so repeated runs of one network only simulate. Each batch element runs
    in a fresh simulator process, which starts from the memories' initial contents.

    Returns
    -------
    NetworkRun
        With ``cycles`` per timestep.
    """
    inputs = check_input_spikes(spikes, net.n_inputs)
    batched = inputs.ndim == 3
    if not batched:
        inputs = inputs[np.newaxis]
    verilog, dut = array_verilog(net, lanes=lanes, stages=stages, trace=trace)
    key = hashlib.sha256(verilog.encode()).hexdigest()[:16]
    root = Path(build_root or Path(tempfile.gettempdir()) / "spikeforge")
    build_dir = root / f"{simulator}-{key}"
    runs = []
    for b in range(inputs.shape[0]):
        run_dir = build_dir / f"run{os.getpid()}-{b}"
        run_dir.mkdir(parents=True, exist_ok=True)
        np.savez(run_dir / "in.npz", inputs=inputs[b], out_stall=out_stall, seed=seed + b,
                 trace=int(trace), pop_width=dut.pop_width, index_width=dut.index_width,
                 row_width=dut.row_width, lanes=lanes, v_width=dut.plan.v_width,
                 in_index_width=len(dut.spike_in.payload.index),
                 max_wait=max_wait_cycles(dut.plan, stages, out_stall))
        run_cocotb(verilog, toplevel=TOPLEVEL, test_module="spikeforge.sim.cocotb_array",
                   build_dir=build_dir, test_dir=run_dir, simulator=simulator,
                   env={"SPIKEFORGE_ARRAY_IN": str(run_dir / "in.npz"),
                        "SPIKEFORGE_ARRAY_OUT": str(run_dir / "out.npz")})
        rec = ArrayRecorder(dut.plan, inputs.shape[1])
        with np.load(run_dir / "out.npz") as out:
            for t, population, index in out["spikes"]:
                rec.spike(int(t), int(population), int(index))
            for t, population, row, mask, *values in out["traces"]:
                rec.trace(int(t), int(population), int(row), int(mask), values)
            rec.cycles[:] = out["cycles"]
        if rec.errors:
            raise AssertionError("; ".join(rec.errors[:5]))
        runs.append(rec)
    return collect_runs(runs, batched, trace)
