"""The one error type a user sees: a single line naming the thing and the allowed range."""

__all__ = ["SpikeforgeError"]


class SpikeforgeError(ValueError):
    """Bad input from a user: a file, an argument, a graph, a board name or a frame.

    The message is one line that names what is wrong and what is allowed. The CLI prints it and
    exits with status 2.
    """
