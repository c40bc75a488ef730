"""The ``amaranth`` back-end: the neuron array in Amaranth's simulator, driven step by step."""

import numpy as np
from amaranth.sim import Simulator

from ..gen.compile import compile_network
from ..gen.spike_io import check_input_spikes
from ..hdl.array import NeuronArray
from .network_golden import NetworkRun

__all__ = ["run_array_amaranth", "ArrayRecorder", "collect_runs", "max_wait_cycles"]


class ArrayRecorder:
    """Turns the array's output events back into the arrays of a :class:`NetworkRun`.

    Shared by every hardware back-end so that they decode the streams identically.
    """

    def __init__(self, plan, n_steps):
        self.plan = plan
        self.spikes = {p.name: np.zeros((n_steps, p.size), np.uint8)
                       for p in plan.populations if not p.is_input}
        self.v = {p.name: np.zeros((n_steps, p.size), np.int64)
                  for p in plan.populations if not p.is_input}
        self.cycles = np.zeros(n_steps, np.int64)
        self.errors = []

    def spike(self, t, population, index):
        pop = self.plan.populations[population]
        if pop.is_input or index >= pop.size or self.spikes[pop.name][t, index]:
            # Recorded, not raised: the comparison against the golden model reports it.
            self.errors.append(f"step {t}: unexpected spike event ({population}, {index})")
            return
        self.spikes[pop.name][t, index] = 1

    def trace(self, t, population, row, mask, values):
        pop = self.plan.populations[population]
        for lane, value in enumerate(values):
            if mask >> lane & 1:
                self.v[pop.name][t, row * self.plan.lanes + lane] = value


def max_wait_cycles(plan, stages, out_stall):
    """Cycles a driver waits for ``ready`` or ``done`` before it calls the design stuck."""
    return int(plan.max_step_cycles(stages) / (1 - min(out_stall, 0.9))) + 1000


def input_events(step_spikes):
    """Indices of the input neurons that spike in one step, ascending."""
    return [int(i) for i in np.flatnonzero(step_spikes)]


def run_array_amaranth(net, spikes, trace=False, *, lanes=1, stages=4, out_stall=0.0, seed=0):
    """Run ``net`` on the neuron array in Amaranth's simulator.

    Parameters
    ----------
    net : Network
    spikes : array of 0/1, shape (T, n_in) or (B, T, n_in)
    trace : bool
        Record membrane traces through the array's ``trace_out`` stream.
    lanes, stages : int
        Array configuration.
    out_stall : float
        Probability that the output consumers hold ``ready`` low in a cycle (back-pressure).
    seed : int
        Seed of the back-pressure pattern.

    Returns
    -------
    NetworkRun
        With ``cycles`` per timestep.
    """
    inputs = check_input_spikes(spikes, net.n_inputs)
    batched = inputs.ndim == 3
    if not batched:
        inputs = inputs[np.newaxis]
    plan = compile_network(net, lanes)
    runs = []
    for b in range(inputs.shape[0]):
        dut = NeuronArray(plan, stages=stages, trace=trace)
        rec = ArrayRecorder(plan, inputs.shape[1])
        _simulate(dut, inputs[b], rec, out_stall, np.random.default_rng([seed, b]))
        if rec.errors:
            raise AssertionError("; ".join(rec.errors[:5]))
        runs.append(rec)
    return collect_runs(runs, batched, trace)


def collect_runs(runs, batched, trace):
    """Stack per-batch recorders into one :class:`NetworkRun`."""
    def stack(get):
        arrays = [get(r) for r in runs]
        return np.stack(arrays) if batched else arrays[0]
    names = list(runs[0].spikes)
    return NetworkRun(
        spikes={n: stack(lambda r, n=n: r.spikes[n]) for n in names},
        v={n: stack(lambda r, n=n: r.v[n]) for n in names} if trace else {},
        cycles=stack(lambda r: r.cycles))


def _simulate(dut, inputs, rec, out_stall, rng):
    n_steps = inputs.shape[0]
    step = {"t": 0, "finished": False}

    async def driver(ctx):
        for t in range(n_steps):
            step["t"] = t
            ctx.set(dut.start, 1)
            await ctx.tick()
            ctx.set(dut.start, 0)
            for index in input_events(inputs[t]):
                ctx.set(dut.spike_in.payload, {"index": index, "end": 0})
                ctx.set(dut.spike_in.valid, 1)
                await ctx.tick().until(dut.spike_in.ready)
            ctx.set(dut.spike_in.payload, {"index": 0, "end": 1})
            ctx.set(dut.spike_in.valid, 1)
            await ctx.tick().until(dut.spike_in.ready)
            ctx.set(dut.spike_in.valid, 0)
            await ctx.tick().until(dut.done)
            rec.cycles[t] = ctx.get(dut.cycles)
        step["finished"] = True

    def consumer(port, record):
        async def process(ctx):
            while not step["finished"]:
                ready = int(rng.random() >= out_stall)
                ctx.set(port.ready, ready)
                _, _, valid, payload = await ctx.tick().sample(port.valid, port.payload)
                if ready and valid:
                    record(payload)
        return process

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(driver)
    sim.add_testbench(consumer(
        dut.spike_out, lambda p: rec.spike(step["t"], p.population, p.index)), background=True)
    if dut.trace:
        sim.add_testbench(consumer(
            dut.trace_out,
            lambda p: rec.trace(step["t"], p.population, p.slot, p.mask, list(p.v))),
            background=True)
    sim.run()
