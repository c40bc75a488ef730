"""cocotb test of the neuron core's generated Verilog against golden-model results.

Runs inside the simulator process started by ``spikeforge.sim.rtl.run_cocotb``. The top level is
a bank of cores side by side (one simulator build covers several configurations), core ``c0``
with ports ``c0_v``, ``c0_acc``, ..., all on one clock. The pytest side
(``test_neuron_core_cocotb.py``) names a JSON file in ``SPIKEFORGE_CASES`` that maps each port
prefix to an ``.npz`` file of cases and golden results:

- ``v``, ``r``, ``acc``: the inputs of each case;
- ``params_hex`` (one packed ``params`` port value per distinct parameter set, in hex, since the
  packed vector is wider than 64 bits), ``params_index`` (which one each case uses) and
  ``params_text`` (a readable description of each set, for failure messages);
- ``idle``: cycles with ``in_valid`` low before each case, to check that ``out_valid`` follows;
- ``latency``: the expected pipeline latency in cycles;
- ``v_next``, ``r_next``, ``spike``, ``v_trace``: the golden results;
- ``i`` and ``i_next``: only for a synaptic core, the current in and its golden result;
- ``pending`` and ``pending_next``: only for a ``delayed_reset`` core, the reset due in and its
  golden result;
- ``config``: the core's parameters, for failure messages.
"""

import json
import os

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge

OUTPUTS = ("v_next", "r_next", "spike", "v_trace")
SIGNED = {
    "v_next": True,
    "r_next": False,
    "spike": False,
    "v_trace": True,
    "i_next": True,
    "pending_next": False,
}


class Lane:
    """Input driver and output monitor of one core, whose ports are named ``<prefix>_<port>``.

    Inputs change and outputs are sampled on the falling clock edge, half a cycle away from the
    rising edge that registers them, so neither simulator's event ordering can race them.
    """

    def __init__(self, dut, prefix, cases):
        self.prefix = prefix
        self.cases = cases
        self.clk = dut.clk
        self.synaptic = "i" in cases
        self.delayed = "pending" in cases
        self.names = OUTPUTS + (("i_next",) if self.synaptic else ())
        self.names += ("pending_next",) if self.delayed else ()
        port = {
            name: getattr(dut, f"{prefix}_{name}")
            for name in ("in_valid", "v", "r", "acc", "params", "out_valid", *self.names)
            + (("i",) if self.synaptic else ())
            + (("pending",) if self.delayed else ())
        }
        self.port = port
        port["in_valid"].value = 0
        # Cycle of each accepted input and each observed output, to measure the latency. The
        # driver and the monitor count falling edges separately from the same start, so the
        # order in which the simulator wakes them on one edge does not matter.
        self.in_cycles = []
        self.out_cycles = []
        self.outputs = {name: [] for name in self.names}

    async def drive(self):
        """Present each case for one cycle after its idle cycles, then hold ``in_valid`` low."""
        port, cases = self.port, self.cases
        params = [int(text, 16) for text in cases["params_hex"]]
        # A plain core has no current: a column of zeros that is never driven.
        currents = cases["i"].tolist() if self.synaptic else [0] * len(cases["v"])
        # Likewise a core without delayed_reset has no pending reset.
        pending = cases["pending"].tolist() if self.delayed else [0] * len(cases["v"])
        columns = (
            cases["idle"].tolist(),
            cases["v"].tolist(),
            cases["r"].tolist(),
            cases["acc"].tolist(),
            cases["params_index"].tolist(),
            currents,
            pending,
        )
        cycle = 0
        for idle, v, r, acc, index, i, due in zip(*columns):
            if idle:
                port["in_valid"].value = 0
                await ClockCycles(self.clk, idle, rising=False)
                cycle += idle
            port["in_valid"].value = 1
            port["v"].value = v
            port["r"].value = r
            port["acc"].value = acc
            port["params"].value = params[index]
            if self.synaptic:
                port["i"].value = i
            if self.delayed:
                port["pending"].value = due
            self.in_cycles.append(cycle)
            await FallingEdge(self.clk)
            cycle += 1
        port["in_valid"].value = 0

    async def monitor(self):
        """Sample the outputs on every falling edge, keeping those with ``out_valid`` high."""
        port = self.port
        cycle = 0
        while True:
            await FallingEdge(self.clk)
            cycle += 1
            if port["out_valid"].value:
                self.out_cycles.append(cycle)
                for name in self.names:
                    value = port[name].value
                    # One-bit ports give a Logic, which has int() but no to_unsigned().
                    self.outputs[name].append(value.to_signed() if SIGNED[name] else int(value))

    def check(self):
        """Assert that every case came out once, after the latency, equal to the golden one."""
        n = len(self.cases["v"])
        latency = int(self.cases["latency"])
        assert len(self.out_cycles) == n, (
            f"{self.prefix}: {len(self.out_cycles)} outputs for {n} inputs"
        )
        delays = set(np.subtract(self.out_cycles, self.in_cycles).tolist())
        assert delays == {latency}, (
            f"{self.prefix}: output delays {sorted(delays)} cycles, want {latency}"
        )
        got = {name: np.array(values, np.int64) for name, values in self.outputs.items()}
        problem = first_mismatch(self.cases, got, self.names)
        assert problem is None, f"{self.prefix} ({self.cases['config']}): {problem}"


class TB:
    """Clock and reset of a bank of cores, and one :class:`Lane` per core."""

    def __init__(self, dut, lanes):
        self.dut = dut
        self.lanes = [Lane(dut, prefix, cases) for prefix, cases in lanes.items()]
        Clock(dut.clk, 10, unit="ns").start()
        dut.rst.value = 0

    async def reset(self):
        self.dut.rst.value = 1
        await ClockCycles(self.dut.clk, 2, rising=False)
        self.dut.rst.value = 0
        await FallingEdge(self.dut.clk)

    async def run(self):
        """Drive all lanes at once and wait until the last output has left the pipelines."""
        monitors = [cocotb.start_soon(lane.monitor()) for lane in self.lanes]
        drivers = [cocotb.start_soon(lane.drive()) for lane in self.lanes]
        for driver in drivers:
            await driver
        latency = max(int(lane.cases["latency"]) for lane in self.lanes)
        await ClockCycles(self.dut.clk, latency + 2, rising=False)
        for monitor in monitors:
            monitor.cancel()


def first_mismatch(cases, got, names=OUTPUTS):
    """Describe the first case whose outputs ``names`` differ from the golden ones, or return
    None."""
    bad = {name: np.flatnonzero(got[name] != cases[name]) for name in names}
    bad = {name: idx for name, idx in bad.items() if idx.size}
    if not bad:
        return None
    i = min(int(idx[0]) for idx in bad.values())
    diffs = ", ".join(
        f"{name} got {got[name][i]} want {cases[name][i]}"
        for name in names
        if got[name][i] != cases[name][i]
    )
    counts = ", ".join(f"{name} in {idx.size}" for name, idx in bad.items())
    return (
        f"mismatches ({counts} of {len(got['spike'])} cases); first: case {i} "
        f"v={cases['v'][i]} r={cases['r'][i]} acc={cases['acc'][i]} "
        f"{cases['params_text'][cases['params_index'][i]]}: {diffs}"
    )


@cocotb.test()
async def neuron_core_matches_golden(dut):
    with open(os.environ["SPIKEFORGE_CASES"]) as f:
        manifest = json.load(f)
    lanes = {}
    for prefix, path in manifest.items():
        with np.load(path) as data:
            lanes[prefix] = {name: data[name] for name in data.files}
    tb = TB(dut, lanes)
    await tb.reset()
    await tb.run()
    for lane in tb.lanes:
        lane.check()
