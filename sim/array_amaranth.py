"""The ``amaranth`` back-end: the neuron array in Amaranth's simulator, driven step by step."""

import numpy as np
from amaranth.sim import Simulator

from ..gen.compile import compile_network, runtime_writes
from ..gen.spike_io import NetworkRun, check_input_spikes
from ..hdl.array import NeuronArray

__all__ = ["run_array_amaranth", "ArrayRecorder", "as_batch", "collect_runs", "max_wait_cycles"]


class ArrayRecorder:
    """Turns the array's output events back into the arrays of a :class:`NetworkRun`.

    Shared by every hardware back-end so that they decode the streams identically.
    """

    def __init__(self, plan, n_steps):
        self.plan = plan
        self.spikes = {
            p.name: np.zeros((n_steps, p.size), np.uint8)
            for p in plan.populations
            if not p.is_input
        }
        self.v = {
            p.name: np.zeros((n_steps, p.size), np.int64)
            for p in plan.populations
            if not p.is_input
        }
        self.cycles = np.zeros(n_steps, np.int64)
        self.errors = []

    def spike(self, t, population, index):
        pops = self.plan.populations
        # A board's step response can name any population byte.
        pop = pops[population] if population < len(pops) else None
        if pop is None or pop.is_input or index >= pop.size or self.spikes[pop.name][t, index]:
            # Recorded, not raised: the comparison against the golden model reports it.
            self.errors.append(f"step {t}: unexpected spike event ({population}, {index})")
            return
        self.spikes[pop.name][t, index] = 1

    def trace(self, t, population, row, mask, values):
        pop = self.plan.populations[population]
        for lane, value in enumerate(values):
            if mask >> lane & 1:
                self.v[pop.name][t, pop.neuron(row * self.plan.lanes + lane)] = value


def as_batch(spikes, net):
    """Checked input spikes as a ``(B, T, n_in)`` array, and whether the input had a batch axis."""
    inputs = check_input_spikes(spikes, net.n_inputs)
    return (inputs, True) if inputs.ndim == 3 else (inputs[np.newaxis], False)


def max_wait_cycles(plan, stages, out_stall):
    """Cycles a driver waits for ``ready`` or ``done`` before it calls the design stuck."""
    return int(plan.max_step_cycles(stages) / (1 - min(out_stall, 0.9))) + 1000


def input_events(step_spikes):
    """Indices of the input neurons that spike in one step, ascending."""
    return [int(i) for i in np.flatnonzero(step_spikes)]


def run_array_amaranth(
    net, spikes, trace=False, *, lanes=1, stages=4, out_stall=0.0, seed=0, runtime_weights=False
):
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
    runtime_weights : bool
        Build the array with runtime weights (``NeuronArray(runtime_weights=True)``) and load
        the network's weights through its ``cfg`` port before the first step.

    All batch elements run on one simulated array, which ``reset_state`` returns to its initial
    state between them.

    Returns
    -------
    NetworkRun
        With ``cycles`` per timestep.
    """
    inputs, batched = as_batch(spikes, net)
    plan = compile_network(net, lanes)
    dut = NeuronArray(plan, stages=stages, trace=trace, runtime_weights=runtime_weights)
    runs = [ArrayRecorder(plan, inputs.shape[1]) for _ in range(inputs.shape[0])]
    # Every weight word, zeros too, in the array's bursts; the first step's start then meets
    # the last burst, which it has to wait for.
    writes = list(runtime_writes(plan, ("weights",), dut.weight_burst)) if runtime_weights else []
    _simulate(
        dut,
        inputs,
        runs,
        out_stall,
        np.random.default_rng(seed),
        max_wait_cycles(plan, stages, out_stall),
        writes,
    )
    errors = [error for rec in runs for error in rec.errors]
    if errors:
        raise AssertionError("; ".join(errors[:5]))
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
        cycles=stack(lambda r: r.cycles),
    )


async def _wait(ctx, signal, limit, what):
    # A bounded wait: a design that never answers fails the run instead of hanging it.
    for _ in range(limit):
        _, _, high = await ctx.tick().sample(signal)
        if high:
            return
    raise AssertionError(f"no {what} within {limit} cycles")


def _simulate(dut, inputs, recs, out_stall, rng, max_wait, writes=()):
    """Run every batch element of ``inputs`` on one array, with ``reset_state`` between them,
    after the ``cfg`` ``writes``."""
    where = {"rec": recs[0], "t": 0, "finished": False}

    async def driver(ctx):
        for mem, lane, addr, word in writes:
            ctx.set(dut.cfg.payload, {"mem": mem, "lane": lane, "addr": addr, "data": word})
            ctx.set(dut.cfg.valid, 1)
            await _wait(ctx, dut.cfg.ready, max_wait, "cfg ready")
        ctx.set(dut.cfg.valid, 0)
        for b, rec in enumerate(recs):
            if b:
                ctx.set(dut.reset_state, 1)
                await ctx.tick()
                ctx.set(dut.reset_state, 0)
                await _wait(ctx, ~dut.busy, max_wait, "end of reset_state")
            where["rec"] = rec
            for t in range(inputs.shape[1]):
                where["t"] = t
                ctx.set(dut.start, 1)
                await ctx.tick()
                ctx.set(dut.start, 0)
                for index in input_events(inputs[b, t]) + [None]:
                    end = index is None
                    ctx.set(dut.spike_in.payload, {"index": 0 if end else index, "end": end})
                    ctx.set(dut.spike_in.valid, 1)
                    await _wait(ctx, dut.spike_in.ready, max_wait, f"spike_in ready in step {t}")
                ctx.set(dut.spike_in.valid, 0)
                await _wait(ctx, dut.done, max_wait, f"done in step {t}")
                rec.cycles[t] = ctx.get(dut.cycles)
        where["finished"] = True

    def consumer(port, record):
        async def process(ctx):
            while not where["finished"]:
                ready = int(rng.random() >= out_stall)
                ctx.set(port.ready, ready)
                _, _, valid, payload = await ctx.tick().sample(port.valid, port.payload)
                if ready and valid:
                    record(payload)

        return process

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(driver)
    sim.add_testbench(
        consumer(dut.spike_out, lambda p: where["rec"].spike(where["t"], p.population, p.index)),
        background=True,
    )
    if dut.trace:
        sim.add_testbench(
            consumer(
                dut.trace_out,
                lambda p: where["rec"].trace(where["t"], p.population, p.slot, p.mask, list(p.v)),
            ),
            background=True,
        )
    sim.run()
