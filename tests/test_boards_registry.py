"""The board registry, the tool environment, the Gowin wrapper and `spikeforge boards`."""

import os
import subprocess
import sys

import pytest
from host_link_cases import small_network

from spikeforge.boards.gowin_nextpnr import translate_args
from spikeforge.boards.registry import BOARDS, board_names, get_board
from spikeforge.boards.toolchain import GOWIN_WRAPPER_NAME, find_tool, tool_environment
from spikeforge.boards.top import BoardTop
from spikeforge.cli.main import main
from spikeforge.gen.compile import compile_network
from spikeforge.spec.errors import SpikeforgeError, ToolError


def test_registry_has_one_board_per_family_and_two_ice40():
    families = [board.family for board in BOARDS.values()]
    assert families.count("ice40") == 2 and "ecp5" in families and "gowin" in families
    assert board_names() == ["icebreaker", "icesugar", "ulx3s-85f", "orangecrab", "tangnano9k"]


@pytest.mark.parametrize("name", list(BOARDS))
def test_entry_matches_its_platform(name):
    board = get_board(name)
    platform = board.platform()
    # Clock, part and resources in the registry are those of the amaranth-boards platform.
    assert platform.default_clk_frequency == board.clock_mhz * 1e6
    part = getattr(platform, "part", None) or (
        f"{platform.device}-{platform.package}"
        + (f"-{platform.speed}" if board.family == "ecp5" else "")
    )
    assert part == board.device
    if board.uart:
        platform.lookup(*board.uart)
    for resource, number, subsignal in board.leds:
        led = platform.lookup(resource, number)
        if subsignal:
            assert subsignal in [sub.name for sub in led.ios]
    assert board.programmer.count("{bitstream}") == 1
    assert board.bitstream.startswith("top.")


@pytest.mark.parametrize("name", ["nope", "ICEBREAKER", "", None])
def test_unknown_board(name):
    with pytest.raises(
        SpikeforgeError,
        match=r"^unknown board .*: supported boards are "
        r"icebreaker, icesugar, ulx3s-85f, orangecrab, "
        r"tangnano9k$",
    ):
        get_board(name)


def test_orangecrab_top_uses_header_uart_and_rgb_led():
    # The OrangeCrab has no USB-serial bridge: the board top's link is on the Feather header
    # (0 = RX on N17, 1 = TX on M18), its LEDs are the three colours of the one RGB LED.
    board = get_board("orangecrab")
    top = BoardTop(board, compile_network(small_network(33, max_size=4), 1))
    lpf = board.platform().build(top, name="top", do_build=False).files["top.lpf"]
    for port, site in [
        ("uart_0__rx__io", "N17"),
        ("uart_0__tx__io", "M18"),
        ("rgb_led_0__r__io", "K4"),
        ("rgb_led_0__g__io", "M3"),
        ("rgb_led_0__b__io", "J3"),
    ]:
        assert f'LOCATE COMP "{port}" SITE "{site}";' in lpf
    assert "header pins 0 (RX) and 1 (TX)" in board.summary()


def test_cli_boards_lists_every_board(capsys):
    assert main(["boards"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == list(BOARDS)
    assert "openFPGALoader -b ulx3s" in lines[2]


def test_tool_environment_sets_absolute_tools(tmp_path):
    env = tool_environment(
        "ice40", str(tmp_path), base={"PATH": os.environ["PATH"], "YOSYS": "/usr/bin/yosys"}
    )
    assert env["AMARANTH_USE_YOSYS"] == "builtin"
    # The parent's choice is overridden: builds do not depend on the shell.
    for variable in ("YOSYS", "NEXTPNR_ICE40", "ICEPACK"):
        assert os.path.isabs(env[variable]) and "yowasp" in os.path.basename(env[variable])
    gowin = tool_environment("gowin", str(tmp_path / "new"))
    wrapper = gowin["NEXTPNR_GOWIN"]
    assert wrapper == str(tmp_path / "new" / GOWIN_WRAPPER_NAME)
    assert os.access(wrapper, os.X_OK)
    assert os.path.basename(gowin["GOWIN_PACK"]) == "gowin_pack"


def test_tool_environment_errors(tmp_path):
    with pytest.raises(
        SpikeforgeError,
        match=r"^FPGA family must be one of ice40, ecp5, gowin, "
        r"not 'xilinx'$",
    ):
        tool_environment("xilinx", str(tmp_path))
    with pytest.raises(
        ToolError,
        match=r"^no-such-tool not found: install it with "
        r"'pip install some-package'$",
    ):
        find_tool("no-such-tool", "some-package")


def test_gowin_wrapper_translates_legacy_options():
    args = [
        "--log",
        "top.tim",
        "--device",
        "GW1NR-LV9QN88PC6/I5",
        "--family",
        "GW1N-9C",
        "--json",
        "top.syn.json",
        "--cst=top.cst",
        "--write",
        "top.pnr.json",
    ]
    assert translate_args(args) == [
        "--log",
        "top.tim",
        "--device",
        "GW1NR-LV9QN88PC6/I5",
        "--vopt",
        "family=GW1N-9C",
        "--json",
        "top.syn.json",
        "--vopt",
        "cst=top.cst",
        "--write",
        "top.pnr.json",
    ]
    with pytest.raises(ValueError, match=r"^nextpnr-gowin option --cst needs a value$"):
        translate_args(["--cst"])


def test_gowin_wrapper_runs_himbaechel():
    # The module is what the build's wrapper script runs; a bad option ends in one line.
    result = subprocess.run(
        [sys.executable, "-m", "spikeforge.boards.gowin_nextpnr", "--family"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert result.stderr == (
        "spikeforge-nextpnr-gowin: error: nextpnr-gowin option --family needs a value\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "spikeforge.boards.gowin_nextpnr", "--version"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0 and "nextpnr" in (result.stdout + result.stderr)
