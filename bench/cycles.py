"""Cycles per timestep of the neuron array against the cycle bound ``L`` (issue 3).

The bound of one timestep on ``P`` lanes is

    L = sum over delivered events e of
            sum over projections q from e's population of ceil(|target q| / P)
      + sum over LIF populations k of ceil(|k| / P)

(an event of a population without outgoing projections contributes 0). :func:`lower_bound`
computes it from a golden run; :func:`measure_cycles` runs the array and reports
``L / cycles`` per case.
"""

import numpy as np

from ..hdl.arith import ceil_div
from ..sim.backends import get_backend
from ..sim.network_golden import run_network
from ..spec.errors import SpikeforgeError
from ..spec.limits import LANES
from .networks import benchmark_cases, network_label

__all__ = ["fanout_cycles", "lower_bound", "synaptic_ops", "measure_cycles"]


def fanout_cycles(net, lanes):
    """Per population (by name), the walk cycles of one of its events on ``lanes`` lanes."""
    if lanes not in LANES:
        raise SpikeforgeError(f"lanes must be one of {', '.join(map(str, LANES))}, not {lanes!r}")
    cycles = {pop.name: 0 for pop in net.populations}
    for proj in net.projections:
        cycles[proj.source] += ceil_div(net.population(proj.target).size, lanes)
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
        bound += ceil_div(pop.size, lanes)
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


def measure_cycles(quick=False, lanes=(1, 2, 4), stages=4, backend="verilator", log=print):
    """Cycles per timestep against ``L`` for the benchmark networks on ``lanes``.

    Returns a list of dicts: case, network, lanes, stages, steps, cycles and bound per step,
    their sums, ``ratio`` = sum L / sum cycles, overhead cycles per step, synaptic ops per step.
    """
    results = []
    for name, net, inputs in benchmark_cases(quick):
        golden = run_network(net, inputs)
        ops = synaptic_ops(net, inputs, golden)
        for p in lanes:
            run = get_backend(backend)(net, inputs, lanes=p, stages=stages)
            for pop in net.lif_populations:
                if not np.array_equal(run.spikes[pop.name], golden.spikes[pop.name]):
                    raise AssertionError(
                        f"{backend} differs from the golden model on {name}, "
                        f"lanes={p}, population {pop.name}"
                    )
            bound = lower_bound(net, p, inputs, golden)
            cycles = np.asarray(run.cycles, np.int64)
            entry = {
                "case": name,
                "network": network_label(net),
                "lanes": p,
                "stages": stages,
                "backend": backend,
                "steps": int(inputs.shape[0]),
                "cycles": cycles.tolist(),
                "bound": bound.tolist(),
                "ratio": float(bound.sum() / cycles.sum()),
                "overhead_per_step": float((cycles - bound).mean()),
                "synaptic_ops_per_step": float(ops.mean()),
                "neurons": sum(pop.size for pop in net.lif_populations),
            }
            results.append(entry)
            log(
                f"cycles {name} P={p}: L/cycles = {entry['ratio']:.3f} "
                f"(overhead {entry['overhead_per_step']:.1f} cycles/step)"
            )
    return results
