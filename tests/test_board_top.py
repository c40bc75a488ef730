"""A real bitstream of the board top (array + UART host link + LEDs) for the iCEBreaker, built
through ``spikeforge build``, and the top elaborated for the other boards with a UART. Runtime
about 90 s of CPU (160 s on two shared cores) once YoWASP has compiled its WebAssembly."""

import json
import os

import pytest
from amaranth.hdl import Module, Signal
from amaranth.sim import Simulator
from host_link_cases import small_network

from spikeforge.boards.registry import get_board
from spikeforge.boards.report import REPORT_FIELDS
from spikeforge.boards.top import LED_ROLES, BoardTop, byte_timeout
from spikeforge.cli.main import main
from spikeforge.gen.compile import compile_network
from spikeforge.gen.network import save_network


def test_byte_timeout():
    # 20 ms of the clock, but never under 64 byte times.
    assert byte_timeout(12_000_000, 104) == 240_000
    assert byte_timeout(1_000_000, 1000) == 640_000
    assert LED_ROLES[:2] == ("heartbeat", "activity")


def test_build_command_icebreaker(tmp_path, capsys):
    net = small_network(31, max_size=8, v_width=16, w_width=8)
    save_network(net, tmp_path / "net.json")
    build_dir = tmp_path / "build"
    status = main(
        [
            "build",
            str(tmp_path / "net.json"),
            "--board",
            "icebreaker",
            "--lanes",
            "2",
            "--clock",
            "12",
            "--report",
            str(tmp_path / "r.json"),
            "-o",
            str(build_dir),
        ]
    )
    out, err = capsys.readouterr()
    assert (status, err) == (0, ""), err
    with open(tmp_path / "r.json") as file:
        report = json.load(file)
    with open(build_dir / "report.json") as file:
        assert json.load(file) == report
    assert set(report) == set(REPORT_FIELDS) | {
        "neurons",
        "synapses",
        "lanes",
        "stages",
        "network_hash",
        "weights",
        "step_cycles",
        "baud",
        "clock_runs",
        "timesteps_per_s",
        "steps",
    }
    assert report["weights"] == "bram" and report["sprams"] == 0 and report["steps"] is True
    neurons = sum(p.size for p in net.lif_populations)
    synapses = sum(int((proj.weights != 0).sum()) for proj in net.projections)
    assert (report["neurons"], report["synapses"], report["lanes"], report["stages"]) == (
        neurons,
        synapses,
        2,
        4,
    )
    assert report["network_hash"] == net.network_hash()
    assert report["board"] == "icebreaker" and report["clock_mhz"] == 12.0
    assert report["dsps"] == 0 and report["timing_met"] is True
    assert report["brams"] > 0 and 0 < report["luts"] < report["luts_available"]
    assert os.path.getsize(report["bitstream"]) > 0
    lines = out.splitlines()
    assert lines[0].startswith("icebreaker (iCE40UP5K-SG48): ") and len(lines) == 2
    assert lines[1].startswith(
        f"{tmp_path / 'net.json'}: {neurons} neurons, {synapses} "
        f"synapses on 2 lanes; host link at 3000000 baud; report "
    )


@pytest.mark.parametrize("name", ["icesugar", "ulx3s-85f", "tangnano9k"])
def test_board_top_elaborates_for_other_boards(name):
    # Pins and LEDs of every board with a UART; the iCEBreaker is built for real above.
    board = get_board(name)
    plan = compile_network(small_network(32, max_size=4), 1)
    top = BoardTop(board, plan, clock_mhz=board.clock_mhz)
    files = board.platform().build(top, name="top", do_build=False).files
    rtlil = files["top.il"]
    rtlil = rtlil if isinstance(rtlil, str) else rtlil.decode()
    # One LED buffer per role, as far as the board has LEDs, and the link with the array.
    roles = LED_ROLES[: len(board.leds)]
    assert all(f"cell \\top.led_{role} " in rtlil for role in roles)
    assert "cell \\top.link.link.array " in rtlil
    assert top.link.link.clock_hz == round(board.clock_mhz * 1e6)


def test_led_stretch():
    # A one-cycle strobe lights its LED until the given number of ticks have passed; a new
    # strobe restarts it.
    m = Module()
    strobe = Signal()
    tick = Signal()
    lit = Signal()
    m.d.comb += lit.eq(BoardTop._stretch(m, strobe, tick, 2, "test"))
    levels = []

    async def bench(ctx):
        for n in range(16):
            ctx.set(strobe, n in (1, 9))
            ctx.set(tick, n % 3 == 0)
            await ctx.tick()
            levels.append(ctx.get(lit))

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert levels == [0, 1, 1, 1, 1, 1, 0, 0, 0, 1, 1, 1, 1, 1, 1, 0]
