"""The native Verilator harness (spikeforge.sim.native) against the golden model, bit for bit.

Random networks with traces, with and without back-pressure, batches, runtime weights, and the
waveform dump. Each distinct design is one Verilator build (10 to 30 s, then cached under
``$SPIKEFORGE_CACHE``): this file builds five, so the designs are shared by module fixtures.
"""

import numpy as np
import pytest
from network_cases import random_network, random_spikes, synaptic_network

from spikeforge.cli.main import main
from spikeforge.gen.network import save_network
from spikeforge.sim import native_build
from spikeforge.sim.array_amaranth import run_array_amaranth
from spikeforge.sim.backends import simulate
from spikeforge.sim.native import NativeArray, parse_steps, waves_format
from spikeforge.sim.native_build import native_binary
from spikeforge.sim.native_icarus import IcarusArray
from spikeforge.sim.network_golden import run_network
from spikeforge.spec.errors import SpikeforgeError, ToolError


def assert_same(got, want, where):
    for name in want.spikes:
        bad = np.argwhere(got.spikes[name] != want.spikes[name])
        assert bad.size == 0, f"{where}: spikes of {name} differ first at {tuple(bad[0])}"
    for name in want.v:
        bad = np.argwhere(got.v[name] != want.v[name])
        assert bad.size == 0, f"{where}: trace of {name} differs first at {tuple(bad[0])}"
    assert got.cycles is not None and (got.cycles > 0).all()


@pytest.fixture(scope="module")
def recurrent():
    """A random recurrent network on 2 lanes with traces, its program and inputs of 3 runs."""
    rng = np.random.default_rng(31)
    net = random_network(rng, recurrent=True, max_size=40)
    return net, NativeArray(net, lanes=2, stages=3, trace=True), random_spikes(rng, net, 12, 3)


@pytest.mark.parametrize("out_stall, seed", [(0.0, 0), (0.3, 1), (0.7, 2)])
def test_recurrent_batch_matches_golden(recurrent, out_stall, seed):
    net, native, spikes = recurrent
    got = native.run(spikes, out_stall=out_stall, seed=seed)
    assert_same(got, run_network(net, spikes, trace=True), f"stall {out_stall}")
    assert got.cycles.shape == spikes.shape[:2]


def test_cycles_equal_the_amaranth_simulation(recurrent):
    """Without back-pressure the harness drives the ports as the other back-ends do, so every
    step takes the same number of cycles."""
    net, native, spikes = recurrent
    want = run_array_amaranth(net, spikes[:2], lanes=2, stages=3)
    assert (native.run(spikes[:2]).cycles == want.cycles).all()


def test_one_run_without_batch_axis(recurrent):
    net, native, spikes = recurrent
    got = native.run(spikes[1])
    assert got.cycles.shape == (spikes.shape[1],)
    assert_same(got, run_network(net, spikes[1], trace=True), "unbatched")


def test_runtime_weights_through_cfg():
    """Weights loaded through ``cfg`` before the first step (wide cfg words, 4 lanes), a
    current-based population, back-pressure."""
    rng = np.random.default_rng(32)
    net = synaptic_network(rng, max_size=24)
    spikes = random_spikes(rng, net, 8, 2)
    native = NativeArray(net, lanes=4, trace=True, runtime_weights=True)
    want = run_network(net, spikes, trace=True)
    assert_same(native.run(spikes, out_stall=0.3, seed=5), want, "runtime weights")
    amaranth = run_array_amaranth(net, spikes, lanes=4, runtime_weights=True)
    assert (native.run(spikes).cycles == amaranth.cycles).all()


@pytest.mark.parametrize("out_stall", [0.0, 0.5])
def test_icarus_testbench(recurrent, out_stall):
    """The Verilog testbench under Icarus: the same results, and the same cycles as the C++
    harness without back-pressure."""
    net, native, spikes = recurrent
    got = IcarusArray(net, lanes=2, stages=3, trace=True).run(spikes, out_stall=out_stall, seed=6)
    assert_same(got, run_network(net, spikes, trace=True), f"icarus stall {out_stall}")
    if not out_stall:
        assert (got.cycles == native.run(spikes).cycles).all()


def test_icarus_runtime_weights_and_window(tmp_path):
    """Weights loaded through ``cfg`` on 16 lanes (the lane field's top bit), and a window of
    the waveforms."""
    rng = np.random.default_rng(32)
    net = synaptic_network(rng, max_size=24)
    spikes = random_spikes(rng, net, 8, 2)
    icarus = IcarusArray(net, lanes=16, trace=True, runtime_weights=True, waves=tmp_path / "w.vcd")
    got = icarus.run(spikes, out_stall=0.3, seed=5, waves_steps=(9, 11))
    assert_same(got, run_network(net, spikes, trace=True), "icarus runtime weights")
    whole = IcarusArray(net, lanes=16, trace=True, runtime_weights=True, waves=tmp_path / "a.vcd")
    whole.run(spikes, out_stall=0.3, seed=5)
    assert 0 < (tmp_path / "w.vcd").stat().st_size < (tmp_path / "a.vcd").stat().st_size / 3


@pytest.fixture(scope="module")
def small():
    rng = np.random.default_rng(33)
    net = random_network(rng, n_lif=1, max_size=12, recurrent=False)
    return net, random_spikes(rng, net, 6, 2, activity=0.5)


def test_waves_fst(small, tmp_path):
    # Icarus writes FST with nothing more installed (Verilator's writer needs the LZ4 and zlib
    # headers, which are not on every machine: test_waves_fst_needs_lz4).
    net, spikes = small
    path = tmp_path / "run.fst"
    got = IcarusArray(net, waves=path).run(spikes)
    assert_same(got, run_network(net, spikes), "fst")
    # An FST file starts with a header block: type 0, then its length (329) in 8 bytes.
    assert path.read_bytes()[:9] == bytes([0]) + (329).to_bytes(8, "big")


def test_waves_fst_needs_lz4(small, tmp_path, monkeypatch):
    # A C++ compiler that cannot find <lz4.h>: refused in one line before any build.
    net, _ = small
    monkeypatch.setenv("SPIKEFORGE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(native_build, "_HEADER_PROBE", "#include <spikeforge_no_such.h>\n")
    with pytest.raises(ToolError) as info:
        NativeArray(net, waves=tmp_path / "run.fst")
    assert str(info.value) == (
        "--waves: Verilator writes FST only with the LZ4 and zlib C headers (Debian: "
        "liblz4-dev, zlib1g-dev); write a .vcd file, or FST with --backend icarus"
    )
    assert not (tmp_path / "run.fst").exists()


def test_waves_vcd_window(small, tmp_path):
    net, spikes = small
    native = NativeArray(net, waves=tmp_path / "all.vcd")
    native.run(spikes)
    whole = (tmp_path / "all.vcd").read_text()
    windowed = NativeArray(net, waves=tmp_path / "part.vcd")
    windowed.run(spikes, waves_steps=(7, 9))
    part = (tmp_path / "part.vcd").read_text()
    assert "spike_in__valid" in part
    times = [int(line[1:]) for line in part.splitlines() if line.startswith("#")]
    assert times and len(part) < len(whole) / 3
    # Step 7 is the second run's second step: the dump starts well after the first run.
    assert min(times) > max(int(t[1:]) for t in whole.splitlines() if t.startswith("#")) / 3


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda: waves_format("x.ghw"), SpikeforgeError, "must end in .fst or .vcd, not 'x.ghw'"),
        (lambda: parse_steps("5:2"), SpikeforgeError, "A:B with integers 0 <= A < B, not '5:2'"),
        (lambda: parse_steps("a"), SpikeforgeError, "A:B with integers 0 <= A < B, not 'a'"),
    ],
)
def test_option_errors(call, error, message):
    with pytest.raises(error, match=message):
        call()


@pytest.mark.parametrize(
    "options, message",
    [
        ({"out_stall": 1.0}, r"^out_stall must be a number in \[0, 1\), not 1.0$"),
        ({"seed": -1}, r"^seed must be a non-negative integer, not -1$"),
        ({"waves_steps": (3, 3)}, r"^waves_steps must be \(A, B\) with 0 <= A < B, not \(3, 3\)$"),
    ],
)
def test_run_argument_errors(recurrent, options, message):
    net, native, spikes = recurrent
    with pytest.raises(TypeError, match=message):
        native.run(spikes, **options)


def test_failed_build_names_the_error(tmp_path, monkeypatch):
    monkeypatch.setenv("SPIKEFORGE_CACHE", str(tmp_path))
    broken = "module top(input clk);\n  wire x = ;\nendmodule\n"
    with pytest.raises(ToolError, match=r"^Verilator could not build tb: %Error: .*top.v:2"):
        native_binary("tb", {"top.v": broken, "tb.cpp": "int main() { return 0; }\n"}, "top")


def test_backend_verilator_is_native(small):
    net, spikes = small
    assert_same(simulate(net, spikes, "verilator"), run_network(net, spikes), "backend")


def test_cli_waves(small, tmp_path, capsys):
    net, spikes = small
    save_network(net, tmp_path / "net.json")
    np.save(tmp_path / "in.npy", spikes)
    common = ["simulate", str(tmp_path / "net.json"), "--input", str(tmp_path / "in.npy")]
    out = ["-o", str(tmp_path / "out.npz")]
    waves = ["--waves", str(tmp_path / "w.vcd"), "--waves-steps", "2:4"]
    assert main([*common, "--backend", "verilator", *out, *waves]) == 0
    assert (tmp_path / "w.vcd").stat().st_size > 0
    assert main([*common, *out, *waves]) == 2
    assert "--waves needs the verilator or icarus back-end, not 'golden'" in capsys.readouterr().err
    bad = ["--waves", str(tmp_path / "w.txt")]
    assert main([*common, "--backend", "verilator", *out, *bad]) == 2
    assert "the file must end in .fst or .vcd" in capsys.readouterr().err
