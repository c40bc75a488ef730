"""cocotb test module: drive the generated Verilog of the neuron array step by step.

Runs inside the simulator process started by :func:`spikeforge.sim.array_rtl.run_array_rtl`,
which names two files with environment variables:

- ``SPIKEFORGE_ARRAY_IN`` (``.npz``): ``inputs`` (B, T, n_in) 0/1, ``out_stall`` (probability of
  holding ``ready`` low), ``seed``, ``trace`` and the payload field widths ``pop_width``,
  ``index_width``, ``row_width``, ``lanes``, ``v_width``, ``in_index_width`` and ``max_wait``
  (cycles any one wait may take before the test fails);
- ``SPIKEFORGE_ARRAY_OUT`` (``.npz``): written here: ``spikes`` (run, step, population, index)
  rows, ``traces`` (run, step, population, row, mask, v_0 ... v_{lanes-1}) rows and ``cycles``
  (B, T).

The runs of a batch follow each other on one array; ``reset_state`` separates them.

Inputs change and outputs are sampled half a cycle away from the rising edge, so neither
simulator's event ordering can race them.
"""

import os

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge, First, ReadOnly, RisingEdge, Timer


def _field(word, offset, width, signed=False):
    value = (word >> offset) & ((1 << width) - 1)
    if signed and value >> (width - 1):
        value -= 1 << width
    return value


class TB:
    """Clock, reset, the input driver and the two output consumers of one array."""

    def __init__(self, dut, config):
        self.dut = dut
        self.cfg = config
        self.rng = np.random.default_rng(int(config["seed"]))
        self.run = 0
        self.step = 0
        self.spikes = []
        self.traces = []
        Clock(dut.clk, 10, unit="ns").start()
        dut.start.value = 0
        dut.spike_in__valid.value = 0
        dut.cfg__valid.value = 0
        dut.reset_state.value = 0
        dut.spike_out__ready.value = 0
        if int(config["trace"]):
            dut.trace_out__ready.value = 0

    async def reset(self):
        self.dut.rst.value = 1
        await ClockCycles(self.dut.clk, 2, rising=False)
        self.dut.rst.value = 0
        await FallingEdge(self.dut.clk)

    async def wait_for(self, signal, what):
        """Wait for a cycle with ``signal`` high; a bounded wait, so a stuck design fails."""
        for _ in range(int(self.cfg["max_wait"])):
            await ReadOnly()
            high = int(signal.value) == 1
            await FallingEdge(self.dut.clk)
            if high:
                return
        raise AssertionError(
            f"step {self.step}: no {what} within {int(self.cfg['max_wait'])} cycles"
        )

    async def wait_level(self, signal, level, what):
        """Sleep until ``signal`` settles at ``level``, without waking up every cycle; bounded.

        An edge only wakes the wait: combinational signals of the generated Verilog may glitch
        within a time step, so the level is confirmed once the step has settled. Returns at the
        next falling clock edge.
        """
        limit = int(self.cfg["max_wait"])
        edge = RisingEdge(signal) if level else FallingEdge(signal)
        for _ in range(limit):
            await ReadOnly()
            if int(signal.value) == level:
                await FallingEdge(self.dut.clk)
                return
            timeout = Timer(10 * limit, unit="ns")
            if await First(edge, timeout) is timeout:
                break
        raise AssertionError(f"step {self.step}: no {what} within {limit} cycles")

    async def put(self, payload):
        """Offer one ``spike_in`` item until a rising edge takes it."""
        self.dut.spike_in__payload.value = payload
        self.dut.spike_in__valid.value = 1
        await self.wait_for(self.dut.spike_in__ready, "spike_in ready")

    async def consume(self, valid, ready, payload, record):
        """Take items with random back-pressure until the test ends.

        Without back-pressure it sleeps while ``valid`` is low: waking up every cycle from Python
        would cost more than the simulation itself.
        """
        stall = float(self.cfg["out_stall"])
        while True:
            if not stall and not int(valid.value):
                ready.value = 1
                await RisingEdge(valid)
                await FallingEdge(self.dut.clk)
            ready.value = int(self.rng.random() >= stall)
            await ReadOnly()
            if int(valid.value) and int(ready.value):
                record(int(payload.value))
            await FallingEdge(self.dut.clk)

    def record_spike(self, word):
        pw = int(self.cfg["pop_width"])
        self.spikes.append(
            (
                self.run,
                self.step,
                _field(word, 0, pw),
                _field(word, pw, int(self.cfg["index_width"])),
            )
        )

    def record_trace(self, word):
        pw, rw = int(self.cfg["pop_width"]), int(self.cfg["row_width"])
        lanes, vw = int(self.cfg["lanes"]), int(self.cfg["v_width"])
        offset = pw + rw + lanes
        values = [_field(word, offset + l * vw, vw, signed=True) for l in range(lanes)]
        self.traces.append(
            (
                self.run,
                self.step,
                _field(word, 0, pw),
                _field(word, pw, rw),
                _field(word, pw + rw, lanes),
                *values,
            )
        )


@cocotb.test()
async def run_steps(dut):
    """Run every timestep of the input file and write the observed outputs."""
    with np.load(os.environ["SPIKEFORGE_ARRAY_IN"]) as data:
        config = {name: data[name] for name in data.files}
    tb = TB(dut, config)
    await tb.reset()
    cocotb.start_soon(
        tb.consume(
            dut.spike_out__valid, dut.spike_out__ready, dut.spike_out__payload, tb.record_spike
        )
    )
    if int(config["trace"]):
        cocotb.start_soon(
            tb.consume(
                dut.trace_out__valid, dut.trace_out__ready, dut.trace_out__payload, tb.record_trace
            )
        )
    inputs = config["inputs"]
    end_item = 1 << int(config["in_index_width"])
    cycles = np.zeros(inputs.shape[:2], np.int64)
    for b in range(inputs.shape[0]):
        if b:
            dut.reset_state.value = 1
            await FallingEdge(dut.clk)
            dut.reset_state.value = 0
            await tb.wait_level(dut.busy, 0, "end of reset_state")
        tb.run = b
        for t in range(inputs.shape[1]):
            tb.step = t
            dut.start.value = 1
            await FallingEdge(dut.clk)
            dut.start.value = 0
            for index in np.flatnonzero(inputs[b, t]):
                await tb.put(int(index))
            await tb.put(end_item)
            dut.spike_in__valid.value = 0
            await tb.wait_level(dut.done, 1, "done")
            # `cycles` is registered at the clock edge that ends the `done` cycle.
            await FallingEdge(dut.clk)
            cycles[b, t] = int(dut.cycles.value)
    lanes = int(config["lanes"])
    np.savez(
        os.environ["SPIKEFORGE_ARRAY_OUT"],
        spikes=np.array(tb.spikes, np.int64).reshape(-1, 4),
        traces=np.array(tb.traces, np.int64).reshape(-1, 5 + lanes),
        cycles=cycles,
    )
