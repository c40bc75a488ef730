"""``spikeforge run`` against a simulated board, and the one-line errors of ``build`` and ``run``.

The real ``spikeforge build`` is exercised in test_board_top.py. Runtime about 10 s of CPU (20 s
on two shared cores).
"""

import errno
import os
from dataclasses import replace

import numpy as np
import pytest
from amaranth.hdl import Fragment
from host_link_cases import relayout_variant, small_network
from network_cases import random_spikes

from spikeforge.boards.host import SimulatedBoard
from spikeforge.boards.registry import BOARDS, get_board
from spikeforge.cli import cmd_build
from spikeforge.cli.main import main
from spikeforge.gen.compile import compile_network
from spikeforge.gen.network import save_network
from spikeforge.gen.spike_io import NetworkRun
from spikeforge.sim.network_golden import run_network
from spikeforge.spec.errors import EXIT_INTERRUPTED, EXIT_TOOL


@pytest.fixture
def files(tmp_path):
    net = small_network(21, max_size=8)
    save_network(net, tmp_path / "net.json")
    spikes = random_spikes(np.random.default_rng(21), net, 6, batch=2, activity=0.5)
    np.save(tmp_path / "in.npy", spikes)
    return net, spikes, tmp_path


def cli(capsys, *args):
    status = main([*map(str, args)])
    out, err = capsys.readouterr()
    return status, out, err


@pytest.mark.parametrize("preloaded", [True, False])
def test_run_on_simulated_board(files, capsys, monkeypatch, preloaded):
    net, spikes, folder = files
    # The board was built from this network, or from another of the same layout (then `run`
    # loads the network's weights and parameters first).
    built = net if preloaded else relayout_variant(net, 3)
    board = SimulatedBoard(compile_network(built, 2))
    opened = []
    monkeypatch.setattr(
        cmd_build, "open_port", lambda device, baud: opened.append((device, baud)) or board
    )
    # No build folder here: the board's own rate.
    monkeypatch.chdir(folder)
    status, out, err = cli(
        capsys,
        "run",
        folder / "net.json",
        "--board",
        "icebreaker",
        "--port",
        "/dev/ttyUSB1",
        "--input",
        folder / "in.npy",
        "-o",
        folder / "out.npz",
    )
    assert (status, err) == (0, "")
    assert opened == [("/dev/ttyUSB1", 3_000_000)]
    assert out.startswith(
        f"wrote {folder / 'out.npz'}: icebreaker on /dev/ttyUSB1 at 3000000 baud, 6 timesteps "
        "x 2 runs, spikes: "
    )
    assert ("(weights loaded)" in out) != preloaded
    golden = run_network(net, spikes)
    with np.load(folder / "out.npz") as archive:
        assert sorted(archive.files) == sorted(["cycles"] + [f"spikes_{n}" for n in golden.spikes])
        for name, expected in golden.spikes.items():
            np.testing.assert_array_equal(archive[f"spikes_{name}"], expected)
        assert archive["cycles"].shape == (2, 6) and (archive["cycles"] > 0).all()


@pytest.mark.parametrize(
    "failure, status, message",
    [
        (OSError(errno.EFBIG, "File too large"), 2, "-o OUT: cannot write: File too large\n"),
        (KeyboardInterrupt(), EXIT_INTERRUPTED, ""),
    ],
    ids=["write-fails", "ctrl-c"],
)
def test_run_keeps_the_previous_result(files, capsys, monkeypatch, failure, status, message):
    # A write that fails midway, or Ctrl-C in it: the previous result stays whole, and no
    # temporary file is left.
    net, _, folder = files
    board = SimulatedBoard(compile_network(net, 2))
    monkeypatch.setattr(cmd_build, "open_port", lambda device, baud: board)
    out = folder / "out.npz"
    out.write_bytes(b"the previous result")

    def half_then_fail(self, file, net=None):
        file.write(b"PK\x03\x04 half a zip")
        raise failure

    monkeypatch.setattr(NetworkRun, "save", half_then_fail)
    args = ["run", folder / "net.json", "--board", "icebreaker", "--port", "/dev/ttyUSB1"]
    got = cli(capsys, *args, "--input", folder / "in.npy", "-o", out)
    assert got == (status, "", message and f"spikeforge: error: {message.replace('OUT', str(out))}")
    assert out.read_bytes() == b"the previous result"
    assert sorted(p.name for p in folder.iterdir()) == ["in.npy", "net.json", "out.npz"]


@pytest.mark.parametrize(
    "failure, status, message",
    [
        (OSError(errno.ENOSPC, "No space left on device"), 2, "cannot write: No space left"),
        (KeyboardInterrupt(), EXIT_INTERRUPTED, ""),
    ],
    ids=["write-fails", "ctrl-c"],
)
def test_build_keeps_the_previous_report(files, capsys, monkeypatch, failure, status, message):
    from spikeforge.boards import flow

    net, _, folder = files
    monkeypatch.setattr(flow, "build", _fake_build)
    report = folder / "r.json"
    report.write_text("the previous report")
    real_dump = cmd_build.json.dump

    def half_then_fail(obj, file, **kwargs):
        real_dump({"half": 1}, file)
        # Only the --report file fails; the build folder's report.json is written.
        if os.path.basename(file.name).startswith(".r.tmp-"):
            raise failure

    monkeypatch.setattr(cmd_build.json, "dump", half_then_fail)
    args = ["build", folder / "net.json", "--board", "icebreaker", "--clock", "12"]
    status_, out, err = cli(capsys, *args, "--report", report, "-o", folder / "b")
    monkeypatch.undo()
    assert (status_, out) == (status, "")
    assert message in err and err.count("\n") == (1 if message else 0)
    assert report.read_text() == "the previous report"
    assert not [p for p in folder.iterdir() if ".tmp-" in p.name]


def _fake_build(top, board, build_dir, **kwargs):
    # Elaborated as the real flow would, so that no part is left "created but never used".
    Fragment.get(top, board.platform())
    os.makedirs(build_dir, exist_ok=True)
    fields = dict.fromkeys(("luts", "luts_available", "ffs", "brams", "sprams", "dsps"), 1)
    return {
        "board": board.name,
        "device": board.device,
        "clock_mhz": kwargs["clock_mhz"],
        "fmax_mhz": 50.0,
        "timing_met": True,
        "pll": None,
        "bitstream": "top.bin",
        **fields,
        **kwargs["extra"],
    }


def test_run_errors(files, capsys, monkeypatch):
    _, _, folder = files
    args = ["run", folder / "net.json", "--input", folder / "in.npy", "-o", folder / "out.npz"]
    status, out, err = cli(
        capsys, *args, "--board", "icebreaker", "--port", "/dev/spikeforge-no-such-port"
    )
    assert (status, out) == (2, "")
    assert err.startswith(
        "spikeforge: error: cannot open serial port '/dev/spikeforge-no-such-port': "
    )
    assert err.count("\n") == 1
    # Every registered board has a UART now; a board entry without one is refused up front.
    monkeypatch.setitem(BOARDS, "orangecrab", replace(get_board("orangecrab"), uart=None))
    status, out, err = cli(capsys, *args, "--board", "orangecrab", "--port", "/dev/ttyACM0")
    assert (status, err) == (
        2,
        "spikeforge: error: board orangecrab has no USB-serial UART for the host link\n",
    )


def test_run_takes_the_baud_of_the_build(files, capsys, monkeypatch):
    # A ULX3S built at its 25 MHz board clock talks at 1.5 Mbaud (3 Mbaud is 4.2% off there):
    # `run` reads that from the build folder's report.
    net, _, folder = files
    opened = []
    board = SimulatedBoard(compile_network(net, 2))
    monkeypatch.setattr(cmd_build, "open_port", lambda device, baud: opened.append(baud) or board)
    build = folder / "build" / "ulx3s-85f"
    build.mkdir(parents=True)
    (build / "report.json").write_text('{"board": "ulx3s-85f", "baud": 1500000}')
    monkeypatch.chdir(folder)
    args = ["run", "net.json", "--board", "ulx3s-85f", "--port", "/dev/ttyUSB0"]
    args += ["--input", "in.npy", "-o", "out.npz"]
    assert cli(capsys, *args)[0] == 0
    assert cli(capsys, *args, "--baud", "115200")[0] == 0
    (folder / "other").mkdir()
    assert cli(capsys, *args, "--build", "other")[0] == 0
    assert opened == [1_500_000, 115_200, 3_000_000]
    # A report that cannot be read is not silently ignored.
    (build / "report.json").write_text('{"board": "ulx3s-85f", "baud": "fast"}')
    assert cli(capsys, *args) == (
        2,
        "",
        "spikeforge: error: build report build/ulx3s-85f/report.json gives no baud rate; "
        "pass --baud\n",
    )
    (build / "report.json").write_text("{")
    status, out, err = cli(capsys, *args)
    assert (status, out, err.count("\n")) == (2, "", 1)
    assert err.startswith("spikeforge: error: build report build/ulx3s-85f/report.json is ")


def test_build_errors(files, capsys, monkeypatch):
    _, _, folder = files
    net = folder / "net.json"
    cases = [
        (["--board", "arty"], "unknown board 'arty': supported boards are "),
        (["--board", "icebreaker", "--lanes", "3"], "--lanes must be one of 1, 2, 4, 8, 16, not 3"),
        (
            ["--board", "icebreaker", "--stages", "5"],
            "--stages must be an integer in [1, 4], not 5",
        ),
        (
            ["--board", "icebreaker", "--clock", "12", "--baud", "4000000"],
            "--baud: baud 4e+06 from a 12 MHz clock needs 3 cycles per bit, outside [4, 16777216]",
        ),
        (
            ["--board", "icebreaker", "--clock", "-5"],
            "--clock must be a frequency in MHz in (0, 1000], not -5",
        ),
        (
            ["--board", "tangnano9k", "--clock", "700"],
            "clock_mhz 700 cannot be made from the 27 MHz clock of tangnano9k: the closest PLL "
            "output is 594.000 MHz, 15.1% off (at most 1%)\n",
        ),
    ]
    for extra, message in cases:
        status, out, err = cli(capsys, "build", net, *extra, "-o", folder / "b")
        assert status == 2 and out == "" and err.count("\n") == 1, err
        assert err.startswith(f"spikeforge: error: {message}"), err
    monkeypatch.setitem(BOARDS, "orangecrab", replace(get_board("orangecrab"), uart=None))
    status, out, err = cli(capsys, "build", net, "--board", "orangecrab", "-o", folder / "b")
    assert (status, out, err) == (
        2,
        "",
        "spikeforge: error: board orangecrab has no USB-serial UART for the host link\n",
    )


def test_build_clock_through_pll(files, capsys, monkeypatch):
    # The top's UART divisor is made for the clock the PLL really gives (39.75 MHz for 40).
    from spikeforge.boards import build as build_module
    from spikeforge.boards import flow

    seen = {}

    def fake_build(top, board, build_dir, *, clock_mhz, check_timing, extra):
        seen.update(top=top, clock_mhz=clock_mhz, check_timing=check_timing, extra=extra)
        raise build_module.BuildError("stopped before the tools")

    monkeypatch.setattr(flow, "build", fake_build)
    _, _, folder = files
    status, out, err = cli(
        capsys,
        "build",
        folder / "net.json",
        "--board",
        "icebreaker",
        "--clock",
        "40",
        "-o",
        folder / "b",
    )
    assert (status, err) == (EXIT_TOOL, "spikeforge: error: stopped before the tools\n")
    assert seen["clock_mhz"] == 39.75 and seen["top"].clock_mhz == 39.75
    assert seen["check_timing"] is True
    assert seen["top"].link.link.clock_hz == 39_750_000
    assert seen["top"].link.uart_rx.divisor == 13  # 39.75 MHz / 3 Mbaud, 1.9% fast
    assert seen["extra"]["lanes"] == 1 and seen["extra"]["stages"] == 4
    assert seen["extra"]["baud"] == 3_000_000
    # The top elaborates (and so its parts count as used).
    files = get_board("icebreaker").platform().build(seen["top"], do_build=False).files
    assert "top.il" in files


@pytest.mark.parametrize("flags, steps", [((), True), (("--no-steps",), False)])
def test_build_with_and_without_steps(files, capsys, monkeypatch, flags, steps):
    # `--no-steps` builds the host link without STEPS frames (fewer logic cells): the top's
    # link, its identity (steps_buffer 0 tells the driver to send STEP frames) and the report.
    from spikeforge.boards import build as build_module
    from spikeforge.boards import flow
    from spikeforge.spec import protocol as p

    seen = {}

    def fake_build(top, board, build_dir, *, clock_mhz, check_timing, extra):
        seen.update(top=top, extra=extra)
        raise build_module.BuildError("stopped before the tools")

    monkeypatch.setattr(flow, "build", fake_build)
    _, _, folder = files
    args = ("build", folder / "net.json", "--board", "icebreaker", "--clock", "12")
    status, _, err = cli(capsys, *args, *flags, "-o", folder / "b")
    assert (status, err) == (EXIT_TOOL, "spikeforge: error: stopped before the tools\n")
    link = seen["top"].link.link
    assert link.steps is steps and seen["extra"]["steps"] is steps
    identity = p.decode_identity(link.identity)
    assert (identity["steps_buffer"] > 0) is steps
    files = get_board("icebreaker").platform().build(seen["top"], do_build=False).files
    assert "top.il" in files


@pytest.mark.parametrize(
    "fmax, flags, noted",
    [
        (30.0, (), True),
        (30.0, ("--no-steps",), False),
        (50.0, (), False),
        (30.0, ("--clock", "24"), False),
    ],
)
def test_build_under_the_goal_suggests_no_steps(files, capsys, monkeypatch, fmax, flags, noted):
    # A default build that `--clock auto` left under the goal clock says what frees cells.
    from spikeforge.boards import flow

    def build(top, board, build_dir, **kwargs):
        report = _fake_build(top, board, build_dir, **kwargs)
        met = fmax >= kwargs["clock_mhz"]
        return dict(report, fmax_mhz=fmax, timing_met=met, luts=4495, luts_available=5280)

    monkeypatch.setattr(flow, "build", build)
    _, _, folder = files
    status, out, err = cli(
        capsys, "build", folder / "net.json", "--board", "icebreaker", *flags, "-o", folder / "b"
    )
    assert (status, err) == (0, "")
    note = (
        "note: 27.375 MHz is under the 40 MHz goal of icebreaker, with 85% of its logic cells "
        "used; --no-steps builds the host link without STEPS frames, in fewer cells\n"
    )
    assert (note in out) is noted, out


def test_emulate_without_steps(files, capsys, monkeypatch):
    # `spikeforge emulate --no-steps` serves the design `build --no-steps` makes.
    from spikeforge.cli import cmd_emulate
    from spikeforge.spec.errors import SpikeforgeError

    seen = {}

    def fake_design(net, board, **options):
        seen.update(options)
        raise SpikeforgeError("stopped before the emulator")

    monkeypatch.setattr(cmd_emulate, "emulated_design", fake_design)
    _, _, folder = files
    status, _, err = cli(
        capsys, "emulate", folder / "net.json", "--board", "icebreaker", "--no-steps"
    )
    assert (status, err) == (2, "spikeforge: error: stopped before the emulator\n")
    assert seen["steps"] is False
