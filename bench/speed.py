"""Simulation speed of the golden model and of every hardware back-end, in LIF neuron-steps and
simulated clock cycles per second, the time to generate the array's Verilog, and the goals of
the native Verilator harness (``docs/performance.md``)."""

import time
from functools import partial

import numpy as np

from ..gen.compile import compile_network
from ..gen.output import convert
from ..hdl.array import NeuronArray
from ..sim.array_rtl import run_array_rtl
from ..sim.backends import get_backend
from ..sim.native import NativeArray
from ..sim.native_icarus import IcarusArray
from ..sim.network_golden import run_network
from .networks import benchmark_cases, brian_network, network_label, poisson_inputs
from .timing import spread_of, timed

__all__ = ["SPEED_BACKENDS", "GOALS", "measure_speeds", "measure_goals"]

# "verilator" is the native harness, "cocotb" the same Verilog driven from cocotb under
# Verilator, "icarus" the Verilog testbench of the native harness under Icarus.
SPEED_BACKENDS = ("golden", "amaranth", "verilator", "cocotb", "icarus")
# The goals of the native harness (issue 15): native / cocotb on the demo network, simulated
# cycles per second on a 1,024-neuron network, the demo's RTL seconds for its 360 digits.
GOALS = {"ratio_digits": 50.0, "cycles_per_s_1024": 1e6, "demo_seconds": 10.0}


_PROGRAMS = {"verilator": NativeArray, "icarus": IcarusArray}


def _runner(backend):
    if backend == "cocotb":
        return partial(run_array_rtl, simulator="verilator")
    return get_backend(backend)


def measure_speeds(quick=False, repeat=3, backends=SPEED_BACKENDS, lanes=1, demo=None, log=print):
    """Simulation speed of every back-end on the benchmark networks.

    The golden model runs batch 1 and batch 64; the hardware back-ends one run of ``lanes``
    lanes (the RTL simulators after a first, untimed run that compiles and caches the model;
    their compile time is reported separately as ``first_run_s``; the runs of the native
    harnesses exclude the Verilog generation, which cocotb's include), with their simulated cycles
    per second. The golden model's ``cycles_per_s`` counts the cycles the array takes for the
    same inputs, for comparison. ``verilog_s`` is the time to generate the array's Verilog.
    Given the ``demo`` workload and with both ``verilator`` and ``cocotb`` among ``backends``,
    the list ends with the entry of :func:`measure_goals`.
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
        cycles = None
        for backend in backends:
            if backend == "golden":
                continue
            rtl = backend != "amaranth"
            if backend in _PROGRAMS:
                # Built (or found in the cache) once; the runs are simulation only.
                native, entry[f"{backend}_first_run_s"] = timed(
                    1, _PROGRAMS[backend], net, lanes=lanes
                )
                result, spread = timed(repeat, native.run, inputs)
                entry[backend] = _rate(net, inputs, spread, int(result.cycles.sum()))
                continue
            run = _runner(backend)
            if rtl:
                _, entry[f"{backend}_first_run_s"] = timed(1, run, net, inputs, lanes=lanes)
            result, spread = timed(repeat if rtl else 1, run, net, inputs, lanes=lanes)
            cycles = int(result.cycles.sum())
            entry[backend] = _rate(net, inputs, spread, cycles)
        if "golden" in backends:
            batch = poisson_inputs(inputs.shape[0], net.n_inputs, 0.2, seed=12, batch=64)
            _, spread = timed(10 * repeat, run_network, net, inputs)
            entry["golden_b1"] = _rate(net, inputs, spread, cycles)
            _, spread = timed(repeat, run_network, net, batch)
            entry["golden_b64"] = _rate(net, batch, spread)
        _, entry["verilog_s"] = timed(repeat, _verilog, net, lanes)
        results.append(entry)
        log(
            f"speed {name}: "
            + ", ".join(
                f"{k} {v['neuron_steps_per_s']['median']:.3g}"
                + (f" ({v['cycles_per_s']['median']:.3g} cycles/s)" if "cycles_per_s" in v else "")
                for k, v in entry.items()
                if isinstance(v, dict) and "neuron_steps_per_s" in v
            )
            + " neuron-steps/s"
        )
    if demo is not None and "verilator" in backends and "cocotb" in backends:
        results.append(measure_goals(demo, quick, repeat, lanes, log))
    return results


def measure_goals(demo, quick=False, repeat=3, lanes=2, log=print):
    """The native harness against its goals: the entry ``{"case": "native-goals", ...}``.

    ``demo`` is ``(network, spikes)``: the demo's digit network and its test digits as spikes,
    ``(360, T, 64)`` (``spikeforge.cli.demo.demo_workload``; the command layer provides it).

    - ``digits``: native and cocotb Verilator on the shipped digit network (the demo's), a few
      digits (cocotb is slow), cycles per second of each and their ratio;
    - ``lif_1024``: native cycles per second on the 1,024-neuron network of the Brian2
      comparison (256 Poisson inputs at 20%);
    - ``demo``: the demo's RTL part, every test digit in batches of 40 as ``spikeforge demo``
      runs them, build excluded.
    """
    net, spikes = demo
    # Enough digits that cocotb's Verilog generation (about 1 s a call) is a small part.
    few = spikes[: 2 if quick else 40]
    native = NativeArray(net, lanes=lanes)
    native.run(few[:1])
    entry = {"case": "native-goals", "lanes": lanes, "goals": dict(GOALS)}
    digits = {"digits": len(few), "neurons": sum(p.size for p in net.lif_populations)}
    for label, run in (
        ("native", native.run),
        ("cocotb", partial(run_array_rtl, net, simulator="verilator", lanes=lanes)),
    ):
        run(few[:1])
        result, spread = timed(repeat, run, few)
        digits[label] = _rate(net, few, spread, int(result.cycles.sum()))
    digits["ratio"] = (
        digits["native"]["cycles_per_s"]["median"] / digits["cocotb"]["cycles_per_s"]["median"]
    )
    entry["digits"] = digits

    big = brian_network(1024, 256)
    inputs = poisson_inputs(10 if quick else 100, big.n_inputs, 0.2, seed=13)
    big_native = NativeArray(big, lanes=lanes)
    result, spread = timed(repeat, big_native.run, inputs)
    entry["lif_1024"] = {
        "steps": len(inputs),
        **_rate(big, inputs, spread, int(result.cycles.sum())),
    }

    all_digits = spikes[:40] if quick else spikes
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        for start in range(0, len(all_digits), 40):
            native.run(all_digits[start : start + 40])
        times.append(time.perf_counter() - began)
    entry["demo"] = {"digits": len(all_digits), "wall_s": spread_of(times)}
    log(
        f"native goals: digits native/cocotb {digits['ratio']:.0f}x (goal >= 50), "
        f"1,024 neurons {entry['lif_1024']['cycles_per_s']['median']:.3g} cycles/s "
        f"(goal >= 1e6), demo {len(all_digits)} digits "
        f"{entry['demo']['wall_s']['median']:.2f} s (goal <= 10)"
    )
    return entry


def _verilog(net, lanes):
    """The Verilog of the array of ``net`` on ``lanes`` lanes (what ``verilog_s`` times)."""
    return convert(NeuronArray(compile_network(net, lanes)), name="array", fmt="verilog")


def _per_s(amount, spread):
    return {
        "median": amount / spread["median"],
        "min": amount / spread["max"],
        "max": amount / spread["min"],
        "n": spread["n"],
    }


def _rate(net, inputs, spread, cycles=None):
    """Neuron-steps (and, given the array's ``cycles``, cycles) per second of one timed run of
    ``net`` on ``inputs`` (batched or not)."""
    work = sum(p.size for p in net.lif_populations) * int(np.prod(inputs.shape[:-1]))
    rate = {"wall_s": spread, "neuron_steps": work, "neuron_steps_per_s": _per_s(work, spread)}
    if cycles is not None:
        rate.update(cycles=cycles, cycles_per_s=_per_s(cycles, spread))
    return rate
