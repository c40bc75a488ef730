"""The ``spikeforge`` command line.

Every subcommand lives in a module of its own that provides ``add_parser(subparsers)``; the
parser's ``func`` default does the work. The exit status tells the kind of failure
(:mod:`spikeforge.spec.errors`): 2 for bad input (:class:`SpikeforgeError`, or a file the
operating system refused), 3 for a failed tool or board (:class:`ToolError`), each as one line on
stderr; any other exception is a bug and shows its traceback (status 1).
"""

import argparse
import importlib
import os
import sys

from ..spec.errors import EXIT_BAD_INPUT, EXIT_INTERRUPTED, EXIT_OK, SpikeforgeError, ToolError
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
    "spikeforge.cli.cmd_emulate",
    "spikeforge.cli.cmd_nir",
    "spikeforge.cli.cmd_bench",
]


class _Parser(argparse.ArgumentParser):
    # argparse prints the usage and then the error on a second line; one line is the rule here.
    # main() puts "spikeforge: error: " in front, so only a subcommand names itself.
    def error(self, message):
        command = self.prog.partition(" ")[2]
        raise SpikeforgeError(f"{command}: {message}" if command else message)


def build_parser():
    parser = _Parser(
        prog="spikeforge", description="Spiking neural networks to bit-exact FPGA hardware."
    )
    parser.add_argument("--version", action="version", version=f"spikeforge {version()}")
    parser.add_argument(
        "--allow-outside-npz",
        action="store_true",
        help="let a network's {\"npz\": FILE} weights come from outside the network's folder",
    )
    # Not required here: argparse would report an unknown option before the command
    # ("spikeforge --frob") as a missing command; main() asks for the command itself.
    subparsers = parser.add_subparsers(dest="command", parser_class=_Parser)
    for name in COMMANDS:
        importlib.import_module(name).add_parser(subparsers)
    parser.commands = list(subparsers.choices)
    return parser


def _parse(argv):
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    args, extras = parser.parse_known_args(argv)
    if extras:
        _refuse_extras(argv, extras, args.command)
    if args.command is None:
        parser.error(f"missing command: one of {', '.join(parser.commands)}")
    return args


def _refuse_extras(argv, extras, command):
    """Refuse the arguments no parser took, naming the command when they came after it."""
    # The options before the command take no values, so the command is the first word that is
    # not an option; what the user typed before it is the top level's.
    words = [i for i, word in enumerate(argv) if not word.startswith("-")]
    top = set(argv[: words[0]] if words else argv)
    options = [word for word in extras if word.startswith("-")]
    if options:
        message = f"unknown option{'s' * (len(options) > 1)} {', '.join(options)}"
    else:
        message = f"unexpected argument{'s' * (len(extras) > 1)} {' '.join(extras)}"
    if command is not None and not set(extras) <= top:
        message = f"{command}: {message}"
    raise SpikeforgeError(message)


def main(argv=None):
    """Run the CLI and return its exit status (:mod:`spikeforge.spec.errors`)."""
    try:
        args = _parse(argv)
        return args.func(args) or EXIT_OK
    except (SpikeforgeError, ToolError) as error:
        if os.environ.get("SPIKEFORGE_DEBUG"):
            raise
        print(f"spikeforge: error: {error}", file=sys.stderr)
        return error.exit_code
    except OSError as error:
        # A file the user named that the system refused (missing, a folder, no permission,
        # a full disk): bad input, and the message names the file.
        if os.environ.get("SPIKEFORGE_DEBUG"):
            raise
        print(f"spikeforge: error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
