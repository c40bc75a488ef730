"""`spikeforge flash`: commands per board, dry run, missing programmer, no board attached."""

import shlex
import stat

import pytest

from spikeforge.boards.flash import (
    FlashError,
    default_bitstream,
    dfu_suffix,
    flash,
    programmer_command,
)
from spikeforge.cli.main import main
from spikeforge.spec.errors import EXIT_TOOL

EXPECTED = {
    "icebreaker": "iceprog b/top.bin",
    "icesugar": "icesprog b/top.bin",
    "ulx3s-85f": "openFPGALoader -b ulx3s -m b/top.bit",
    "orangecrab": "dfu-util -a 0 -D b/top.dfu",
    "tangnano9k": "openFPGALoader -b tangnano9k b/top.fs",
}


def _fake_programmer(folder, name, exit_status, output):
    # Stands in for the real programmer: records its arguments, prints, exits.
    path = folder / name
    path.write_text(
        f'#!/bin/sh\necho "$@" > {folder}/args\necho {shlex.quote(output)}\nexit {exit_status}\n'
    )
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


@pytest.fixture
def bitstreams(tmp_path):
    for extension in ("bin", "bit", "fs"):
        (tmp_path / f"top.{extension}").write_bytes(b"\xff\x00bitstream")
    return tmp_path


@pytest.mark.parametrize("board", list(EXPECTED))
def test_dry_run_prints_the_command(board, capsys):
    bitstream = "b/" + default_bitstream(board).split("/")[-1]
    assert main(["flash", "--board", board, "--dry-run", bitstream]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == EXPECTED[board]


def test_dry_run_default_bitstream(capsys):
    assert main(["flash", "--board", "tangnano9k", "--dry-run"]) == 0
    assert capsys.readouterr().out == "openFPGALoader -b tangnano9k build/tangnano9k/top.fs\n"
    assert programmer_command("icebreaker", "x.bin") == ["iceprog", "x.bin"]


def test_missing_programmer(bitstreams, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(bitstreams))
    assert main(["flash", "--board", "icebreaker", str(bitstreams / "top.bin")]) == EXIT_TOOL
    assert capsys.readouterr().err == (
        "spikeforge: error: iceprog not found: the programmer of icebreaker is needed to flash "
        "it (apt-get install fpga-icestorm)\n"
    )


@pytest.mark.parametrize(
    "board, tool, message",
    [
        (
            "icebreaker",
            "iceprog",
            "Can't find iCE FTDI USB device (vendor_id 0x0403, device_id 0x6010 or 0x6014).",
        ),
        ("ulx3s-85f", "openFPGALoader", "unable to open ftdi device: -3 (device not found)"),
        ("orangecrab", "dfu-util", "dfu-util: No DFU capable USB device available"),
    ],
)
def test_no_board_attached(board, tool, message, bitstreams, monkeypatch, capsys):
    # The messages the real programmers print on Debian 12 with nothing plugged in (recorded
    # once: the programmers are Debian packages, which a fresh install from PyPI lacks).
    _fake_programmer(bitstreams, tool, 1, message)
    monkeypatch.setenv("PATH", str(bitstreams))
    bitstream = bitstreams / default_bitstream(board).split("/")[-1]
    assert main(["flash", "--board", board, str(bitstream)]) == EXIT_TOOL
    err = capsys.readouterr().err
    assert err.startswith(f"spikeforge: error: no {board} found on USB ({tool}: ")
    assert len(err.splitlines()) == 1 and f"{tool}: {tool}" not in err


def test_programmer_other_failure(bitstreams, monkeypatch):
    _fake_programmer(bitstreams, "iceprog", 3, "flash ID mismatch")
    monkeypatch.setenv("PATH", str(bitstreams))
    with pytest.raises(FlashError, match=r"^iceprog failed with exit status 3: flash ID mismatch$"):
        flash("icebreaker", str(bitstreams / "top.bin"), out=lambda line: None)


def test_flash_success_runs_programmer(bitstreams, monkeypatch):
    _fake_programmer(bitstreams, "openFPGALoader", 0, "done")
    monkeypatch.setenv("PATH", str(bitstreams))
    lines = []
    flash("tangnano9k", str(bitstreams / "top.fs"), out=lines.append)
    assert (bitstreams / "args").read_text() == f"-b tangnano9k {bitstreams}/top.fs\n"
    assert lines == [f"flashed {bitstreams}/top.fs to tangnano9k with openFPGALoader"]


def test_orangecrab_gets_dfu_suffix(bitstreams, monkeypatch):
    _fake_programmer(bitstreams, "dfu-util", 0, "done")
    monkeypatch.setenv("PATH", str(bitstreams))
    flash("orangecrab", str(bitstreams / "top.bit"), out=lambda line: None)
    data = (bitstreams / "top.dfu").read_bytes()
    assert data == dfu_suffix(b"\xff\x00bitstream", 0x1209, 0x5AF0)
    assert (bitstreams / "args").read_text() == f"-a 0 -D {bitstreams}/top.dfu\n"


def test_dfu_suffix_layout():
    data = bytes(range(256)) * 4
    suffix = dfu_suffix(data, 0x1209, 0x5AF0)[len(data) :]
    # bcdDevice ffff, idProduct 5af0, idVendor 1209, bcdDFU 0100, "UFD", bLength 16, then the
    # CRC that dfu-suffix 0.11 (Debian dfu-util) computed for this input.
    assert suffix == bytes.fromhex("fffff05a091200015546441046148b73")


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["flash", "--board", "icebreaker", "x.bit"],
            "bitstream for icebreaker must be a .bin file, not 'x.bit'",
        ),
        (
            ["flash", "--board", "icebreaker", "missing/top.bin"],
            "bitstream missing/top.bin not found: build it first with 'spikeforge build NETWORK.json "
            "--board icebreaker'",
        ),
        (
            ["flash", "--board", "pynq"],
            "unknown board 'pynq': supported boards are icebreaker, "
            "icesugar, ulx3s-85f, orangecrab, tangnano9k",
        ),
        (["flash", "x.bin"], "flash: the following arguments are required: --board"),
    ],
)
def test_flash_bad_input(args, message, capsys):
    assert main(args) == 2
    assert capsys.readouterr().err == f"spikeforge: error: {message}\n"


def test_empty_bitstream(tmp_path, capsys):
    (tmp_path / "top.fs").write_bytes(b"")
    assert main(["flash", "--board", "tangnano9k", str(tmp_path / "top.fs")]) == 2
    assert capsys.readouterr().err == f"spikeforge: error: bitstream {tmp_path}/top.fs is empty\n"
