"""What can go wrong, in three kinds with three exit statuses of the ``spikeforge`` command.

=====  ==================================================================================
exit   meaning
=====  ==================================================================================
0      success
1      a bug in spikeforge: Python's traceback, to be reported (never a user's fault)
2      bad input (:class:`SpikeforgeError`): a file, an argument, a graph, a board name or a
       frame; one line names the thing and what is allowed
3      a tool or a board failed (:class:`ToolError`): synthesis, place and route, a timing
       goal, a programmer, a simulator, the host link; one line names the step
130    interrupted (Ctrl-C)
=====  ==================================================================================

Components in :mod:`spikeforge.hdl` raise ``TypeError``/``ValueError`` for bad parameters, as
Amaranth's own do; the layers that take user input (:mod:`spikeforge.gen`'s loader and compiler,
the command line) check that input first and raise :class:`SpikeforgeError`. A built-in
exception that still reaches the command line is a bug, and shows its traceback.
"""

__all__ = [
    "SpikeforgeError",
    "ToolError",
    "EXIT_OK",
    "EXIT_BUG",
    "EXIT_BAD_INPUT",
    "EXIT_TOOL",
    "EXIT_INTERRUPTED",
]

EXIT_OK = 0
EXIT_BUG = 1
EXIT_BAD_INPUT = 2
EXIT_TOOL = 3
EXIT_INTERRUPTED = 130


class SpikeforgeError(Exception):
    """Bad input from a user: a file, an argument, a graph, a board name or a frame.

    The message is one line that names what is wrong and what is allowed. The CLI prints it and
    exits with status 2.
    """

    exit_code = EXIT_BAD_INPUT


class ToolError(Exception):
    """A tool or a board failed on good input: a build, a timing goal, a flash, a simulator run,
    or the host link.

    The message is one line that names the step and the tool's first error. The CLI prints it and
    exits with status 3.
    """

    exit_code = EXIT_TOOL
