"""The golden model against Brian2 (the optional ``bench`` extra) on one 1,024-neuron LIF network
with Poisson inputs, at batch 1 and at a larger batch."""

import time

import numpy as np

from ..sim.network_golden import run_network
from .networks import brian_network, poisson_inputs
from .timing import ratio_spread, spread_of

__all__ = ["RATE_TOLERANCE", "brian_comparison"]

# The largest relative difference of the two mean firing rates that counts as agreement.
RATE_TOLERANCE = 0.02


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
        n_batch * pop.size,
        "v : 1\nacc : 1\nrc : 1\nok : 1",
        threshold=f"ok == 1 and v > {p.v_th}",
        reset=f"v = {p.v_reset}\nrc = {p.t_ref}",
        method="euler",
    )
    group.run_regularly(
        "ok = int(rc == 0)\n"
        f"v = ok * clip(v - floor(v / 16.0) + acc, {lo}, {hi}) + (1 - ok) * v\n"
        "rc = clip(rc - 1, 0, inf)\nacc = 0",
        when="before_thresholds",
    )
    syn = b2.Synapses(source, group, "w : 1", on_pre="acc += w")
    # Copy k's input a drives copy k's neuron n only.
    k, a, n = np.meshgrid(np.arange(n_batch), np.arange(n_in), np.arange(pop.size), indexing="ij")
    syn.connect(i=(k * n_in + a).ravel(), j=(k * pop.size + n).ravel())
    syn.w = np.broadcast_to(net.projections[0].weights, k.shape).ravel()
    monitor = b2.SpikeMonitor(group)
    wall, cpu = time.perf_counter(), time.process_time()
    b2.run(steps * b2.ms)
    run_s = {"wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu}
    counts = np.bincount(np.asarray(monitor.i), minlength=n_batch * pop.size)
    return counts.reshape(n_batch, pop.size), run_s


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
    agree when their relative difference is within :data:`RATE_TOLERANCE`. Without Brian2 the
    result says "not installed".
    """
    try:
        import brian2
    except ImportError:
        return {"status": "not installed"}
    net = brian_network()
    cases = {
        "1": poisson_inputs(steps, 256, 20e-3, seed=13, batch=1),
        str(batch): poisson_inputs(steps, 256, 20e-3, seed=14, batch=batch),
    }
    times, counts = _time_both(brian2, net, cases, repeat)
    result = {
        "status": "ok",
        "brian2": brian2.__version__,
        "steps": steps,
        "neurons": net.population("lif").size,
        "tolerance": RATE_TOLERANCE,
        "batches": {},
    }
    for key, inputs in cases.items():
        entry = _batch_entry(inputs.shape[0], result["neurons"], steps, times[key], *counts[key])
        result["batches"][key] = entry
        log(
            f"brian2 B={key}: golden {entry['golden_s']['median']:.3f} s, brian2 "
            f"{entry['brian2_s']['median']:.3f} s, ratio {entry['speedup']['median']:.1f}x, "
            f"rates {entry['golden_rate_hz']:.2f} / {entry['brian2_rate_hz']:.2f} Hz"
        )
    # Golden throughput at the batch against Brian2's batch-1 throughput (separate runs), per
    # repeat: (golden neuron-steps/s) / (Brian2 neuron-steps/s).
    big, one = times[str(batch)], times["1"]
    for suffix in ("", "_cpu"):
        result[f"vs_separate_runs{suffix}"] = ratio_spread(
            [batch * b for b in one[f"brian2{suffix}"]], big[f"golden{suffix}"]
        )
    result["rates_agree"] = all(e["rates_agree"] for e in result["batches"].values())
    return result


def _time_both(brian2, net, cases, repeat):
    """Time the golden model and Brian2 on every case, ``repeat`` times in turn.

    Returns
    -------
    times : dict
        Per case, the wall and CPU seconds of every repeat (``golden``, ``golden_cpu``,
        ``brian2``, ``brian2_cpu``).
    counts : dict
        Per case, the spike counts of every neuron of every batch element, (golden, Brian2).
    """
    times = {key: {"golden": [], "golden_cpu": [], "brian2": [], "brian2_cpu": []} for key in cases}
    counts = {}
    for _ in range(repeat):
        for key, inputs in cases.items():
            wall, cpu = time.perf_counter(), time.process_time()
            golden = run_network(net, inputs)
            times[key]["golden"].append(time.perf_counter() - wall)
            times[key]["golden_cpu"].append(time.process_time() - cpu)
            brian_counts, run_s = _brian_run(brian2, net, inputs)
            times[key]["brian2"].append(run_s["wall"])
            times[key]["brian2_cpu"].append(run_s["cpu"])
            counts[key] = (golden.spikes["lif"].sum(axis=1), brian_counts)
    return times, counts


def _batch_entry(batch, size, steps, t, golden_counts, brian_counts):
    """The figures of one batch: time spreads, throughputs, per-repeat ratios, mean rates."""
    work = size * batch * steps
    mean_g = float(golden_counts.mean()) / (steps * 1e-3)
    mean_b = float(brian_counts.mean()) / (steps * 1e-3)
    entry = {
        "batch": batch,
        "neuron_steps": work,
        "golden_s": spread_of(t["golden"]),
        "golden_cpu_s": spread_of(t["golden_cpu"]),
        "brian2_s": spread_of(t["brian2"]),
        "brian2_cpu_s": spread_of(t["brian2_cpu"]),
        "golden_neuron_steps_per_s": spread_of([work / x for x in t["golden"]]),
        "brian2_neuron_steps_per_s": spread_of([work / x for x in t["brian2"]]),
        "speedup": ratio_spread(t["brian2"], t["golden"]),
        "speedup_cpu": ratio_spread(t["brian2_cpu"], t["golden_cpu"]),
        "golden_rate_hz": mean_g,
        "brian2_rate_hz": mean_b,
        "rate_rel_diff": abs(mean_g - mean_b) / max(mean_g, 1e-9),
    }
    entry["rates_agree"] = entry["rate_rel_diff"] <= RATE_TOLERANCE
    return entry
