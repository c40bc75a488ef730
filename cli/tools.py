"""Failures of the tools a command runs in-process or as a child, as one-line :class:`ToolError`.

Yosys (YoWASP, through Amaranth's Verilog back-end), a WebAssembly trap of a YoWASP tool, a child
process that exits with an error, and a disk that fills up under a tool all end in
``spikeforge: error: STEP failed: LAST LOG LINE`` with exit status 3, not in a traceback.
"""

import contextlib
import errno
import subprocess

import wasmtime
from amaranth.back.verilog import YosysError

from ..spec.errors import ToolError

__all__ = ["tool_failures"]

# A tool that stops on these has met the machine's limits, not a bad design.
_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def _last_line(error):
    text = ""
    if isinstance(error, subprocess.CalledProcessError):
        for stream in (error.stderr, error.output):
            if stream:
                text = stream.decode(errors="replace") if isinstance(stream, bytes) else stream
                break
    text = text or str(error)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else type(error).__name__


@contextlib.contextmanager
def tool_failures(step):
    """Turn a failed tool inside the ``with`` block into a :class:`ToolError` naming ``step``."""
    try:
        yield
    except (
        YosysError,
        wasmtime.WasmtimeError,
        wasmtime.Trap,
        subprocess.CalledProcessError,
    ) as error:
        raise ToolError(f"{step} failed: {_last_line(error)}") from None
    except OSError as error:
        if error.errno not in _FULL:
            raise
        raise ToolError(f"{step} failed: {error.strerror}") from None
