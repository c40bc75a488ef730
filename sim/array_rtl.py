"""The ``verilator`` and ``icarus`` back-ends: the array's generated Verilog under cocotb."""

import fcntl
import hashlib
import os
import tempfile
from pathlib import Path

import numpy as np

from ..gen.output import ARRAY_TOP, array_source, default_hex_name, weight_hex
from .array_amaranth import ArrayRecorder, as_batch, collect_runs, max_wait_cycles
from .rtl import run_cocotb

__all__ = ["run_array_rtl"]


def run_array_rtl(
    net,
    spikes,
    trace=False,
    *,
    simulator,
    lanes=1,
    stages=4,
    out_stall=0.0,
    seed=0,
    build_root=None,
    memory_init="inline",
):
    """Run ``net`` on the array's Verilog under ``simulator`` (``"verilator"`` or ``"icarus"``).

    The build is cached per design under ``build_root`` (default: a ``spikeforge`` folder in
    the temp directory), so repeated runs of one network only simulate. The batch runs in one
    simulator process, with ``reset_state`` between its elements. With ``memory_init``
    ``"readmemh"`` the weights are read from hex files in the simulator's working directory
    (``spikeforge.gen.output.array_source``).

    Returns
    -------
    NetworkRun
        With ``cycles`` per timestep.
    """
    inputs, batched = as_batch(spikes, net)
    verilog, dut = array_source(
        net, lanes=lanes, stages=stages, trace=trace, memory_init=memory_init
    )
    key = hashlib.sha256(verilog.encode()).hexdigest()[:16]
    root = Path(build_root or Path(tempfile.gettempdir()) / "spikeforge")
    build_dir = root / f"{simulator}-{key}"
    run_dir = build_dir / f"run{os.getpid()}"
    run_dir.mkdir(parents=True, exist_ok=True)
    if memory_init == "readmemh":
        # Read when the simulation starts, so not part of the build's key.
        for lane in range(lanes):
            (run_dir / default_hex_name(lane)).write_text(weight_hex(dut.plan, lane))
    np.savez(
        run_dir / "in.npz",
        inputs=inputs,
        out_stall=out_stall,
        seed=seed,
        trace=int(trace),
        pop_width=dut.pop_width,
        index_width=dut.index_width,
        row_width=dut.row_width,
        lanes=lanes,
        v_width=dut.plan.v_width,
        in_index_width=len(dut.spike_in.payload.index),
        max_wait=max_wait_cycles(dut.plan, stages, out_stall),
    )
    # Processes that simulate the same design share its build folder: one builds while the
    # others wait (two Verilator builds in one folder corrupt its precompiled headers).
    with open(build_dir / "build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        run_cocotb(
            verilog,
            toplevel=ARRAY_TOP,
            test_module="spikeforge.sim.cocotb_array",
            build_dir=build_dir,
            test_dir=run_dir,
            simulator=simulator,
            env={
                "SPIKEFORGE_ARRAY_IN": str(run_dir / "in.npz"),
                "SPIKEFORGE_ARRAY_OUT": str(run_dir / "out.npz"),
            },
        )
    runs = [ArrayRecorder(dut.plan, inputs.shape[1]) for _ in range(inputs.shape[0])]
    with np.load(run_dir / "out.npz") as out:
        for b, t, population, index in out["spikes"]:
            runs[b].spike(int(t), int(population), int(index))
        for b, t, population, row, mask, *values in out["traces"]:
            runs[b].trace(int(t), int(population), int(row), int(mask), values)
        for b, rec in enumerate(runs):
            rec.cycles[:] = out["cycles"][b]
    errors = [error for rec in runs for error in rec.errors]
    if errors:
        raise AssertionError("; ".join(errors[:5]))
    return collect_runs(runs, batched, trace)
