"""Simulation speed of the golden model and of every hardware back-end, in LIF neuron-steps per
second, and the time to generate the array's Verilog."""

import numpy as np

from ..gen.compile import compile_network
from ..gen.output import convert
from ..hdl.array import NeuronArray
from ..sim.backends import get_backend
from ..sim.network_golden import run_network
from .networks import benchmark_cases, network_label, poisson_inputs
from .timing import timed

__all__ = ["measure_speeds"]


def measure_speeds(
    quick=False,
    repeat=3,
    backends=("golden", "amaranth", "verilator", "icarus"),
    lanes=1,
    log=print,
):
    """Simulation speed of every back-end in LIF neuron-steps per second on the benchmark networks.

    The golden model runs batch 1 and batch 64; the hardware back-ends one run of ``lanes`` lanes
    (the RTL simulators after a first, untimed run that compiles and caches the model; their
    compile time is reported separately as ``first_run_s``). ``verilog_s`` is the time to
    generate the array's Verilog.
    """
    results = []
    for name, net, inputs in benchmark_cases(quick):
        if quick:
            inputs = inputs[:2]
        entry = {
            "case": name,
            "network": network_label(net),
            "steps": int(inputs.shape[0]),
            "lanes": lanes,
        }
        if "golden" in backends:
            batch = poisson_inputs(inputs.shape[0], net.n_inputs, 0.2, seed=12, batch=64)
            for label, x, n in (("golden_b1", inputs, 10 * repeat), ("golden_b64", batch, repeat)):
                _, spread = timed(n, run_network, net, x)
                entry[label] = _rate(net, x, spread)
        _, entry["verilog_s"] = timed(repeat, _verilog, net, lanes)
        for backend in backends:
            if backend == "golden":
                continue
            run = get_backend(backend)
            rtl = backend != "amaranth"
            if rtl:
                _, entry[f"{backend}_first_run_s"] = timed(1, run, net, inputs, lanes=lanes)
            _, spread = timed(repeat if rtl else 1, run, net, inputs, lanes=lanes)
            entry[backend] = _rate(net, inputs, spread)
        results.append(entry)
        log(
            f"speed {name}: "
            + ", ".join(
                f"{k} {v['neuron_steps_per_s']['median']:.3g}"
                for k, v in entry.items()
                if isinstance(v, dict) and "neuron_steps_per_s" in v
            )
            + " neuron-steps/s"
        )
    return results


def _verilog(net, lanes):
    """The Verilog of the array of ``net`` on ``lanes`` lanes (what ``verilog_s`` times)."""
    return convert(NeuronArray(compile_network(net, lanes)), name="array", fmt="verilog")


def _rate(net, inputs, spread):
    """Neuron-steps per second of one timed run of ``net`` on ``inputs`` (batched or not)."""
    work = sum(p.size for p in net.lif_populations) * int(np.prod(inputs.shape[:-1]))
    return {
        "wall_s": spread,
        "neuron_steps": work,
        "neuron_steps_per_s": {
            "median": work / spread["median"],
            "min": work / spread["max"],
            "max": work / spread["min"],
            "n": spread["n"],
        },
    }
