"""``spikeforge emulate`` served on a real pseudo-terminal, and ``spikeforge run`` against it.

Every run goes through pyserial, the driver, the frames and the board's gateware compiled by
Verilator, and equals the golden model: a feed-forward and a recurrent network with weights in
block RAM, and one with runtime weights (SPRAM, which ``run`` loads first); the same with 1 % of
the bytes on the virtual wire dropped, flipped or delayed, both directions. One test runs the
command itself at bit level (the board's real UART divisor) with a waveform window and stops it
with SIGINT; the others use byte level. Most of the time is Verilator compiling four designs
(about 25 s each on two shared cores, cached by content afterwards).
"""

import os
import re
import signal
import subprocess
import sys

import numpy as np
import pytest
from host_link_cases import small_network
from network_cases import random_spikes

from spikeforge.boards.emulate import Emulator, emulated_design
from spikeforge.boards.registry import BOARDS
from spikeforge.boards.top import LED_ROLES, default_baud
from spikeforge.cli.main import main
from spikeforge.gen.network import save_network
from spikeforge.sim.network_golden import run_network
from spikeforge.spec.errors import EXIT_INTERRUPTED

# name: (network seed, recurrent, weight store)
NETWORKS = {
    "dense": (21, False, "bram"),
    "recurrent": (20, True, "bram"),
    "spram": (23, True, "spram"),
}
FAULTS = re.compile(r"(\d+) dropped, (\d+) flipped, (\d+) delayed")


@pytest.fixture(scope="module")
def cases(tmp_path_factory):
    """Per network: the network, its file, input spikes (2 runs of 6 steps) and their file."""
    folder = tmp_path_factory.mktemp("emulate")
    made = {}
    for name, (seed, recurrent, _) in NETWORKS.items():
        net = small_network(seed, max_size=8, recurrent=recurrent)
        save_network(net, folder / f"{name}.json")
        spikes = random_spikes(np.random.default_rng(seed), net, 6, batch=2, activity=0.5)
        np.save(folder / f"{name}_in.npy", spikes)
        made[name] = (net, folder / f"{name}.json", spikes, folder / f"{name}_in.npy")
    return made


@pytest.fixture(scope="module")
def designs(cases):
    """Byte-level designs of the networks on the iCEBreaker, 2 lanes."""
    return {
        name: emulated_design(
            cases[name][0], "icebreaker", lanes=2, weights=weights, byte_level=True
        )
        for name, (_, _, weights) in NETWORKS.items()
    }


def run_and_check(cases, name, port, capsys, tmp_path):
    """``spikeforge run`` on ``port``: outputs equal to the golden model; its output line."""
    net, net_file, spikes, in_file = cases[name]
    out_file = tmp_path / f"{name}_out.npz"
    status = main(
        [
            "run",
            str(net_file),
            "--board",
            "icebreaker",
            "--port",
            port,
            "--input",
            str(in_file),
            "-o",
            str(out_file),
        ]
    )
    out, err = capsys.readouterr()
    assert (status, err) == (0, ""), err
    golden = run_network(net, spikes)
    with np.load(out_file) as archive:
        for population, expected in golden.spikes.items():
            np.testing.assert_array_equal(archive[f"spikes_{population}"], expected)
        assert archive["cycles"].shape == (2, 6) and (archive["cycles"] > 0).all()
    return out


def test_recurrent_case_is_recurrent(cases):
    for name in ("recurrent", "spram"):
        net = cases[name][0]
        order = [p.name for p in net.populations]
        assert any(order.index(q.source) >= order.index(q.target) for q in net.projections)


@pytest.mark.parametrize("name", list(NETWORKS))
def test_run_on_emulated_board(cases, designs, name, capsys, tmp_path):
    design = designs[name]
    assert design.weights == NETWORKS[name][2]
    with Emulator(design) as emulator:
        assert re.fullmatch(r"/dev/pts/\d+", emulator.port)
        out = run_and_check(cases, name, emulator.port, capsys, tmp_path)
        # A board with runtime weights holds none after configuration: `run` loads them.
        assert ("(weights loaded)" in out) == (name == "spram")
        assert out.endswith("; 0 retried commands\n")
        # A second client on the same port finds the board where the first left it (`run`
        # loads runtime weights again: the board cannot tell a finished load from a broken one).
        out = run_and_check(cases, name, emulator.port, capsys, tmp_path)
        assert ("(weights loaded)" in out) == (name == "spram")
    assert FAULTS.findall(emulator.summary) == [("0", "0", "0")] * 2


@pytest.mark.parametrize("name", list(NETWORKS))
def test_run_through_faults(cases, designs, name, capsys, tmp_path):
    with Emulator(designs[name], faults=0.01, seed=5) as emulator:
        out = run_and_check(cases, name, emulator.port, capsys, tmp_path)
    faults = [int(n) for counts in FAULTS.findall(emulator.summary) for n in counts]
    assert len(faults) == 6 and sum(faults) > 0, emulator.summary
    retried = int(re.search(r"; (\d+) retried commands", out)[1])
    assert retried > 0, (out, emulator.summary)


def test_emulate_command_at_bit_level(cases, capsys, tmp_path):
    _, net_file, _, _ = cases["dense"]
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "spikeforge.cli.main",
            "emulate",
            str(net_file),
            "--board",
            "icebreaker",
            "--lanes",
            "2",
            "--waves",
            str(tmp_path / "run.vcd"),
            "--waves-steps",
            "7:9",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "AMARANTH_USE_YOSYS": "builtin"},
    )
    try:
        port = process.stdout.readline().strip()
        assert re.fullmatch(r"/dev/pts/\d+", port), process.stderr.read()
        out = run_and_check(cases, "dense", port, capsys, tmp_path)
        assert out.endswith("; 0 retried commands\n")
    finally:
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
    assert process.returncode == EXIT_INTERRUPTED
    assert "Traceback" not in err
    lines = err.splitlines()
    assert lines[0].startswith(
        f"emulating {net_file} on icebreaker at 12 MHz, weights in bram, 2 lanes, host link at "
        "3000000 baud (bit level, divisor 4); "
    )
    assert re.fullmatch(r"emulator: \d+ cycles, 12 steps, \d+ bytes to the board, .*", lines[-1])
    # Steps count from the emulator's start: the two runs of 6 steps are steps 0 to 11, and the
    # dump goes from the start of step 7 to the start of step 9.
    text = (tmp_path / "run.vcd").read_text()
    assert "$timescale 1ps $end" in text and " step $end" in text and " uart_rx $end" in text
    times = [int(line[1:]) for line in text.splitlines() if line.startswith("#")]
    # A rising edge every 83,333 ps (12 MHz), starting well after the first steps.
    assert times[0] > 7 * 500 * 83333 and times[1] - times[0] == 83333 // 2 + 1


def _ignore_sigint():
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
def test_emulate_stops_on_sigterm(cases, stop):
    # As on Ctrl-C: the harness's summary, exit status 130, no traceback. Started as a shell
    # script's background job would be, with SIGINT ignored: `kill -INT` still stops it.
    _, net_file, _, _ = cases["dense"]
    process = subprocess.Popen(
        [sys.executable, "-m", "spikeforge.cli.main", "emulate", str(net_file)]
        + ["--board", "icebreaker", "--byte-level"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "AMARANTH_USE_YOSYS": "builtin"},
        preexec_fn=_ignore_sigint,
    )
    try:
        assert re.fullmatch(r"/dev/pts/\d+", process.stdout.readline().strip())
    finally:
        process.send_signal(stop)
        _, err = process.communicate(timeout=30)
    assert process.returncode == EXIT_INTERRUPTED and "Traceback" not in err
    assert re.fullmatch(
        r"emulator: \d+ cycles, 0 steps, 0 bytes to the board, .*", err.splitlines()[-1]
    )


def test_every_board_converts(cases):
    # Each board's top, the pins it uses as ports whatever the board calls them (an RGB LED's
    # colours are single LEDs), with the board's clock and UART divisor.
    net = cases["dense"][0]
    for name, board in BOARDS.items():
        design = emulated_design(net, name)
        ports = re.search(r"module board\((.*)\);", design.verilog)[1].split(", ")
        leds = [f"led_{i}" for i in range(min(len(board.leds), len(LED_ROLES)))]
        assert sorted(ports) == sorted(["clk", "rst", "busy", "step", "uart_rx", "uart_tx", *leds])
        # The rate `spikeforge build` would take at the board clock.
        assert design.baud == default_baud(board, board.clock_mhz)
        assert design.divisor == round(board.clock_mhz * 1e6 / design.baud)


def test_emulate_errors(cases, capsys):
    _, net_file, _, _ = cases["dense"]
    cases_ = [
        (["--board", "arty"], "unknown board 'arty': supported boards are "),
        (
            ["--board", "icebreaker", "--faults", "1.5"],
            "--faults must be a rate in [0, 1], not 1.5",
        ),
        (
            ["--board", "icebreaker", "--waves-steps", "3:4"],
            "--waves-steps needs --waves FILE",
        ),
        (
            ["--board", "icebreaker", "--waves", "w.fst", "--waves-steps", "4:3"],
            "--waves-steps must be A:B with integers 0 <= A < B, not '4:3'",
        ),
        (
            ["--board", "ulx3s-85f", "--weights", "spram"],
            "--weights spram needs an iCE40 UltraPlus board (SPRAM), not ulx3s-85f",
        ),
    ]
    for extra, message in cases_:
        status = main(["emulate", str(net_file), *extra])
        out, err = capsys.readouterr()
        assert status == 2 and out == "" and err.count("\n") == 1, err
        assert err.startswith(f"spikeforge: error: {message}"), err
    status = main(["emulate", str(net_file), "--board", "icebreaker", "--faults", "x"])
    out, err = capsys.readouterr()
    assert status == 2 and out == "" and err.count("\n") == 1, err
    assert err.startswith("spikeforge: error: ") and "--faults: invalid float value: 'x'" in err
    status = main(["emulate", str(net_file) + ".missing", "--board", "icebreaker"])
    out, err = capsys.readouterr()
    assert status == 2 and out == "" and err.count("\n") == 1, err
