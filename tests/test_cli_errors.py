"""The exit status says what kind of failure it was (spec/errors.py, docs/architecture.md), and
bad input gives one line: broken network files, options that do not apply, unknown options."""

import json

import numpy as np
import pytest

from spikeforge.cli import cmd_generate
from spikeforge.cli.main import build_parser, main
from spikeforge.spec.errors import (
    EXIT_BAD_INPUT,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_TOOL,
    SpikeforgeError,
    ToolError,
)


def _replace_generate(monkeypatch, effect):
    def run(args):
        raise effect

    monkeypatch.setattr(cmd_generate, "run", run)


def test_exit_statuses_are_distinct():
    assert len({EXIT_OK, 1, EXIT_BAD_INPUT, EXIT_TOOL, EXIT_INTERRUPTED}) == 5
    assert not issubclass(ToolError, SpikeforgeError)
    assert not issubclass(SpikeforgeError, (TypeError, ValueError))


@pytest.mark.parametrize(
    "effect, status, line",
    [
        (SpikeforgeError("v_th: must be an integer"), EXIT_BAD_INPUT, "v_th: must be an integer"),
        (ToolError("nextpnr failed for icebreaker: ERROR"), EXIT_TOOL, "nextpnr failed"),
        (FileNotFoundError(2, "No such file or directory", "x.json"), EXIT_BAD_INPUT, "x.json"),
    ],
    ids=["bad-input", "tool", "file"],
)
def test_expected_failures_are_one_line(monkeypatch, capsys, effect, status, line):
    _replace_generate(monkeypatch, effect)
    assert main(["generate", "core", "-o", "x.v"]) == status
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and err.startswith("spikeforge: error: ") and line in err


@pytest.mark.parametrize("bug", [TypeError("bad operand"), ValueError("not enough values")])
def test_a_bug_is_not_reported_as_bad_input(monkeypatch, bug):
    # A built-in exception from inside a command is a bug: it propagates, and Python prints
    # its traceback and exits with status 1.
    _replace_generate(monkeypatch, bug)
    with pytest.raises(type(bug), match=str(bug)):
        main(["generate", "core", "-o", "x.v"])


def test_interrupt(monkeypatch):
    _replace_generate(monkeypatch, KeyboardInterrupt())
    assert main(["generate", "core", "-o", "x.v"]) == EXIT_INTERRUPTED


def test_debug_shows_the_traceback(monkeypatch):
    _replace_generate(monkeypatch, SpikeforgeError("bad"))
    monkeypatch.setenv("SPIKEFORGE_DEBUG", "1")
    with pytest.raises(SpikeforgeError, match="^bad$"):
        main(["generate", "core", "-o", "x.v"])


# -- bad input in the files and on the command line: one line, no traceback (issue 14) ---------

SMALL = {
    "format": "spikeforge-network/1",
    "v_width": 8,
    "w_width": 4,
    "populations": [
        {"name": "inp", "kind": "input", "size": 3},
        {"name": "out", "kind": "lif", "size": 2, "v_th": 3, "v_reset": 0, "v_rest": 0},
    ],
    "projections": [{"from": "inp", "to": "out", "weights": [[2, 1], [1, 2], [3, 3]]}],
}


@pytest.fixture
def folder(tmp_path):
    (tmp_path / "net.json").write_text(json.dumps(SMALL))
    np.save(tmp_path / "in.npy", np.zeros((4, 3), np.uint8))
    return tmp_path


def cli(capsys, *args):
    status = main([*map(str, args)])
    out, err = capsys.readouterr()
    return status, out, err


# Every command that reads a network, with NET for it and its other arguments.
NETWORK_COMMANDS = {
    "generate": ["generate", "NET", "-o", "OUT/o.v"],
    "simulate": ["simulate", "NET", "--input", "OUT/in.npy", "-o", "OUT/o.npz"],
    "export": ["export", "NET", "-o", "OUT/o.nir"],
    "build": ["build", "NET", "--board", "icebreaker", "-o", "OUT/build"],
    "emulate": ["emulate", "NET", "--board", "icebreaker"],
}


def network_command(name, folder, network):
    return [
        str(network) if a == "NET" else a.replace("OUT", str(folder))
        for a in NETWORK_COMMANDS[name]
    ]


def bad_network(folder, case):
    """The network file of ``case`` and the message that names it."""
    path = folder / f"{case}.json"
    if case == "deep":
        # 100,000 levels: deeper than Python's recursion limit.
        path.write_text("[" * 100_000 + "]" * 100_000)
        return path, f"{path}: invalid JSON (nested too deeply; a network is at most 5 levels deep)"
    if case == "huge-integer":
        path.write_text(json.dumps(SMALL).replace('"v_width": 8', '"v_width": ' + "9" * 5000))
        return path, (
            f"{path}: v_width: an integer of 5,000 digits is too long for any field (at most 40)"
        )
    path.mkdir()
    return path, f"network file '{path}' is a folder, not a file"


@pytest.mark.parametrize("case", ["deep", "huge-integer", "folder"])
@pytest.mark.parametrize("command", NETWORK_COMMANDS)
def test_bad_network_files_are_one_line(folder, capsys, command, case):
    network, message = bad_network(folder, case)
    status, out, err = cli(capsys, *network_command(command, folder, network))
    assert (status, out, err) == (EXIT_BAD_INPUT, "", f"spikeforge: error: {message}\n")


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["generate", "NET", "--decay", "1", "--v-th", "5", "-o", "OUT/o.v"],
            "--v-th, --decay do not apply to a network (only to the core: the network file sets "
            "them)",
        ),
        (
            ["generate", "NET", "--runtime-params", "-o", "OUT/o.v"],
            "--runtime-params does not apply to a network (only to the core: the network file "
            "sets them)",
        ),
        (
            ["generate", "core", "--lanes", "2", "--trace", "-o", "OUT/o.v"],
            "--lanes, --trace do not apply to the core (only to a network)",
        ),
        (
            ["generate", "core", "--memory-init", "readmemh", "-o", "OUT/o.v"],
            "--memory-init does not apply to the core (only to a network)",
        ),
        (
            ["generate", "NET", "--format", "rtlil", "--memory-init", "readmemh", "-o", "OUT/o.il"],
            "--memory-init readmemh needs --format verilog",
        ),
        (
            ["simulate", "NET", "--input", "OUT/in.npy", "--lanes", "8", "--backend", "golden"]
            + ["-o", "OUT/o.npz"],
            "--lanes configures the array of the hardware back-ends (amaranth, verilator, "
            "icarus); the golden model has none",
        ),
        (
            ["simulate", "NET", "--input", "OUT/in.npy", "--stages", "2", "-o", "OUT/o.npz"],
            "--stages configures the array of the hardware back-ends (amaranth, verilator, "
            "icarus); the golden model has none",
        ),
        (
            ["simulate", "NET", "--input", "OUT/in.npy", "--waves", "OUT/w.vcd", "-o", "OUT/o.npz"],
            "--waves needs the verilator or icarus back-end, not 'golden'",
        ),
        (
            ["simulate", "NET", "--input", "OUT/in.npy", "--waves-steps", "1:2", "-o", "OUT/o.npz"],
            "--waves-steps needs --waves",
        ),
    ],
)
def test_options_that_do_not_apply_are_refused(folder, capsys, args, message):
    args = [str(folder / "net.json") if a == "NET" else a.replace("OUT", str(folder)) for a in args]
    before = sorted(folder.iterdir())
    status, out, err = cli(capsys, *args)
    assert (status, out, err) == (EXIT_BAD_INPUT, "", f"spikeforge: error: {message}\n")
    assert sorted(folder.iterdir()) == before


@pytest.mark.parametrize(
    "args, message",
    [
        (["--frob"], "unknown option --frob"),
        (["--frob", "generate", "core", "-o", "x.v"], "unknown option --frob"),
        (["generate", "core", "--frob", "-o", "x.v"], "generate: unknown option --frob"),
        (["generate", "core", "-o", "x.v", "--a=1", "-z"], "generate: unknown options --a=1, -z"),
        (["generate", "core", "-o", "x.v", "extra"], "generate: unexpected argument extra"),
        ([], "missing command: one of " + ", ".join(build_parser().commands)),
        (["generate"], "generate: the following arguments are required: target, -o/--output"),
        (
            ["generate", "core", "-o", "x.v", "--stages", "x"],
            "generate: argument --stages: invalid int value: 'x'",
        ),
        (
            ["generate", "x.txt", "-o", "x.v"],
            "generate: target must be 'core' or a network .json file, not 'x.txt'",
        ),
    ],
)
def test_the_prefix_is_never_doubled(tmp_path, capsys, monkeypatch, args, message):
    # main() writes "spikeforge: error: ", a subcommand's parser adds its own name, once.
    monkeypatch.chdir(tmp_path)
    status, out, err = cli(capsys, *args)
    assert (status, out, err) == (EXIT_BAD_INPUT, "", f"spikeforge: error: {message}\n")
    assert not list(tmp_path.iterdir())
