"""The exit status says what kind of failure it was (spec/errors.py, docs/architecture.md)."""

import pytest

from spikeforge.cli import cmd_generate
from spikeforge.cli.main import main
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
