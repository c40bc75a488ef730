"""The golden model on the NIR paper's CNN (``docs/performance.md``, "Convolutions").

The architecture of the NIR paper's N-MNIST CNN (neuromorphs/NIR ``paper/02_cnn``) with random
weights: 2x34x34 -> conv 16 5x5 s2 p1 -> IF -> conv 16 3x3 p1 -> IF -> sum pool 2 -> conv 8
3x3 p1 -> IF -> sum pool 2 -> flatten -> 128 -> 256 IF -> 256 -> 10 IF, Sinabs' IAF
(threshold, reset by subtraction). The inputs are Bernoulli events at N-MNIST's rate, and the
weights are drawn so that every layer fires at a rate typical of trained N-MNIST networks; the
rates reached are reported with the speed.
"""

import time

import numpy as np

from ..gen.compile import compile_network
from ..gen.network import FORMAT, Network
from ..sim.golden_conv_native import conv_path
from ..sim.native import run_array_native
from ..sim.network_golden import run_network

__all__ = ["nir_cnn_dict", "measure_conv", "step_cycle_bounds", "measure_conv_cycles"]

# N-MNIST has about 4,000 events per 300 ms sample on 2x34x34 pixels: 0.6 % per pixel and 1 ms
# step.
INPUT_RATE = 0.006
# (name, kind, geometry, weight range); the ranges set each layer's firing rate.
_LAYERS = (
    ("c1", dict(out_channels=16, kernel=5, stride=2, padding=1), (-60, 100)),
    ("c2", dict(out_channels=16, kernel=3, stride=1, padding=1), (-120, 100)),
    ("c3", dict(out_channels=8, kernel=3, stride=1, padding=1, pool=2), (-120, 100)),
)


def _if_population(name, shape, v_th):
    """Sinabs' IAF as a spikeforge population: no leak, reset by subtraction."""
    pop = {"name": name, "kind": "lif", "size": int(np.prod(shape))}
    if len(shape) > 1:
        pop["shape"] = list(shape)
    pop.update(
        v_th=v_th,
        v_reset=0,
        v_rest=0,
        v_peak=v_th + 1,
        t_ref=0,
        decay=[],
        reset_mode="subtract",
        bias=0,
    )
    return pop


def nir_cnn_dict(rng, v_th=127):
    """The network file (dict) of the NIR paper's CNN with random weights (``w_width`` 8)."""
    pops = [{"name": "inp", "kind": "input", "size": 2 * 34 * 34, "shape": [2, 34, 34]}]
    projs = []
    shape = (2, 34, 34)
    for name, geo, (lo, hi) in _LAYERS:
        pool = geo.get("pool", 1)
        k, s, p = geo["kernel"], geo["stride"], geo["padding"]
        side = (shape[1] // pool + 2 * p - k) // s + 1
        out = (geo["out_channels"], side, side)
        kernel = rng.integers(lo, hi + 1, (out[0], shape[0], k, k))
        pops.append(_if_population(name, out, v_th))
        projs.append(
            {"from": pops[-2]["name"], "to": name, "kind": "conv2d", **geo, "weights": kernel}
        )
        shape = out
    # Sum pool 2 then flatten: a pooled dense projection from the 8x8x8 layer.
    pops.append(_if_population("d1", (256,), v_th))
    projs.append(
        {
            "from": "c3",
            "to": "d1",
            "kind": "dense",
            "pool": 2,
            "weights": rng.integers(-128, 81, (128, 256)),
        }
    )
    pops.append(_if_population("d2", (10,), v_th))
    projs.append({"from": "d1", "to": "d2", "weights": rng.integers(-128, 91, (256, 10))})
    return {
        "format": FORMAT,
        "v_width": 16,
        "w_width": 8,
        "populations": pops,
        "projections": projs,
    }


def measure_conv(batch=64, steps=300, batches=3, seed=0, log=print):
    """Samples per second of the golden model on the NIR CNN architecture.

    Runs ``batches`` batches of ``batch`` samples of ``steps`` steps and reports the median
    batch's rate, by the wall clock and by the process's CPU time (these machines are shared:
    the CPU time is what the run itself cost), and the mean firing rate of every population
    (spikes per neuron and step).
    """
    rng = np.random.default_rng(seed)
    net = Network.from_dict(nir_cnn_dict(rng))
    wall, cpu = [], []
    for _ in range(batches):
        spikes = rng.random((batch, steps, net.n_inputs)) < INPUT_RATE
        start, start_cpu = time.perf_counter(), time.process_time()
        run = run_network(net, spikes)
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    rates = {"inp": float(spikes.mean())}
    rates.update({name: float(s.mean()) for name, s in run.spikes.items()})
    result = {
        "network": "NIR paper CNN (2x34x34, 8,970 neurons), random weights",
        "batch": batch,
        "steps": steps,
        "batches": batches,
        "seconds": float(np.median(wall)),
        "samples_per_s": batch / float(np.median(wall)),
        "cpu_seconds": float(np.median(cpu)),
        "cpu_samples_per_s": batch / float(np.median(cpu)),
        "rates": rates,
        # The compiled conv sums, or the NumPy reference and why (sim/golden_conv_native.py).
        "conv_path": conv_path(),
    }
    log(
        f"conv: golden NIR CNN ({result['conv_path']} conv sums), batch {batch} x {steps} "
        f"steps, median of {batches}: "
        f"{result['samples_per_s']:.1f} samples/s ({result['cpu_samples_per_s']:.1f} by CPU "
        "time); rates " + ", ".join(f"{k} {v:.2%}" for k, v in rates.items())
    )
    return result


def step_cycle_bounds(plan, net, spikes, run):
    """``plan.cycle_bound`` (the bound ``L`` of ``docs/array.md``) of every step of one run:
    ``spikes`` its input ``(T, n_in)``, ``run`` its golden :class:`NetworkRun` (unbatched)."""
    bounds = []
    for t in range(spikes.shape[0]):
        events = {}
        for index, pop in enumerate(net.populations):
            if pop.is_input:
                events[index] = np.flatnonzero(spikes[t][net.input_slice(pop.name)])
            else:
                events[index] = np.flatnonzero(run.spikes[pop.name][t])
        bounds.append(plan.cycle_bound(events))
    return np.array(bounds)


def measure_conv_cycles(lanes=2, steps=30, seed=0, log=print):
    """Cycles per step of the array (its Verilog on Verilator) on the NIR CNN against the bound
    ``L``, for one random sample of ``steps`` steps, and whether it is bit-exact with golden."""
    rng = np.random.default_rng(seed)
    net = Network.from_dict(nir_cnn_dict(rng))
    spikes = (rng.random((steps, net.n_inputs)) < INPUT_RATE).astype(np.uint8)
    want = run_network(net, spikes)
    got = run_array_native(net, spikes, lanes=lanes)
    bounds = step_cycle_bounds(compile_network(net, lanes), net, spikes, want)
    ratio = bounds / got.cycles
    result = {
        "lanes": lanes,
        "steps": steps,
        "bit_exact": all(bool((got.spikes[k] == want.spikes[k]).all()) for k in want.spikes),
        "cycles_median": float(np.median(got.cycles)),
        "bound_median": float(np.median(bounds)),
        "bound_over_cycles_median": float(np.median(ratio)),
        "bound_over_cycles_min": float(ratio.min()),
        "rates": {k: float(v.mean()) for k, v in want.spikes.items()},
    }
    log(
        f"conv array: NIR CNN on {lanes} lanes (Verilator), {steps} steps: bit-exact "
        f"{result['bit_exact']}, cycles per step median {result['cycles_median']:.0f}, L median "
        f"{result['bound_median']:.0f}, L/cycles median {result['bound_over_cycles_median']:.3f} "
        f"(min {result['bound_over_cycles_min']:.3f})"
    )
    return result
