"""A tool that fails under a command ends in one line naming the step and the tool's last log
line, exit status 3 (cli/tools.py): Yosys errors, WebAssembly traps and a disk that fills up."""

import errno

import pytest
import wasmtime
from amaranth.back.verilog import YosysError
from amaranth.hdl import Fragment

from spikeforge.cli import cmd_generate
from spikeforge.cli.main import main
from spikeforge.spec.errors import EXIT_TOOL


def _raising(error):
    def convert(design, *args, **kwargs):
        # Elaborated first, as the real back-end does before Yosys fails, so that no part is
        # left "created but never used".
        Fragment.get(design, None)
        raise error

    return convert


@pytest.mark.parametrize(
    "error, line",
    [
        (
            YosysError("-- Running command ...\nERROR: Can't open output file `x.v'\n"),
            "ERROR: Can't open output file `x.v'",
        ),
        (wasmtime.WasmtimeError("out of memory\n"), "out of memory"),
        (OSError(errno.ENOSPC, "No space left on device"), "No space left on device"),
        (OSError(errno.EFBIG, "File too large"), "File too large"),
    ],
)
def test_generate_tool_failure(tmp_path, capsys, monkeypatch, error, line):
    monkeypatch.setattr(cmd_generate, "convert", _raising(error))
    out = tmp_path / "core.v"
    out.write_text("the previous result\n")
    status = main(["generate", "core", "-o", str(out)])
    captured = capsys.readouterr()
    assert (status, captured.out) == (EXIT_TOOL, "")
    assert captured.err == f"spikeforge: error: generate (verilog back-end) failed: {line}\n"
    # The previous result is left as it was.
    assert out.read_text() == "the previous result\n"


def test_other_os_errors_are_bad_input(tmp_path, capsys, monkeypatch):
    # Only the machine's limits are a tool failure; a refused file is the user's input (exit 2).
    error = PermissionError(errno.EACCES, "Permission denied", str(tmp_path / "x"))
    monkeypatch.setattr(cmd_generate, "convert", _raising(error))
    status = main(["generate", "core", "-o", str(tmp_path / "core.v")])
    assert (status, capsys.readouterr().err) == (
        2,
        f"spikeforge: error: [Errno 13] Permission denied: '{tmp_path / 'x'}'\n",
    )
