"""The ``spikeforge`` command line.

Every subcommand lives in a module of its own that provides ``add_parser(subparsers)``; the
parser's ``func`` default does the work. A user error (:class:`SpikeforgeError`, or the
``TypeError``/``ValueError`` of a parameter check) ends as one line on stderr and exit status 2.
"""

import argparse
import importlib
import os
import sys

from ..spec.errors import SpikeforgeError
from ..spec.version import version

__all__ = ["main", "COMMANDS"]

# Modules that provide a subcommand, in the order `spikeforge --help` lists them.
COMMANDS = [
    "spikeforge.cli.cmd_demo",
    "spikeforge.cli.cmd_generate",
    "spikeforge.cli.cmd_simulate",
    "spikeforge.cli.cmd_train_digits",
    "spikeforge.cli.cmd_boards",
    "spikeforge.cli.cmd_build",
    "spikeforge.cli.cmd_nir",
    "spikeforge.cli.cmd_bench",
]


class _Parser(argparse.ArgumentParser):
    # argparse prints the usage and then the error on a second line; one line is the rule here.
    def error(self, message):
        raise SpikeforgeError(f"{self.prog}: {message}")


def build_parser():
    parser = _Parser(
        prog="spikeforge", description="Spiking neural networks to bit-exact FPGA hardware."
    )
    parser.add_argument("--version", action="version", version=f"spikeforge {version()}")
    subparsers = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for name in COMMANDS:
        importlib.import_module(name).add_parser(subparsers)
    return parser


def main(argv=None):
    """Run the CLI; returns the exit status (0 success, 2 bad input, 1 a failed tool)."""
    try:
        args = build_parser().parse_args(argv)
        return args.func(args) or 0
    except (SpikeforgeError, TypeError, ValueError, OSError) as error:
        if os.environ.get("SPIKEFORGE_DEBUG"):
            raise
        print(f"spikeforge: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
