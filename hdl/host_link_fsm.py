"""The state machines of the host link's units: one flip-flop per state.

:class:`OneHotFSM` replaces ``m.FSM()`` in the receiver, the executor and the transmitter
(:mod:`spikeforge.hdl.host_link`); their ``probes`` give each state's flip-flop by name.
"""

from contextlib import contextmanager

from amaranth.hdl import Signal
from amaranth.lib import data

__all__ = ["OneHotFSM"]


class OneHotFSM:
    """A state machine with a flip-flop per state, used like ``m.FSM()``.

    Each transition clears the flip-flop of the state it leaves and sets the one it enters,
    so that every flip-flop's next value depends on the few transitions into and out of its
    state only: with the states encoded in a few bits, the enable of that register took
    every condition of every state, and was the critical path of the GW1NR-9 (Yosys does
    not re-encode a state register that has an initial value, as Amaranth's have).

    Parameters
    ----------
    m : Module
    names : tuple of str
        The states; the first is the initial one.
    """

    def __init__(self, m, names):
        self._m = m
        self.bits = Signal(
            data.StructLayout(dict.fromkeys(names, 1)), init={names[0]: 1}, name="state"
        )
        self._here = None

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        return False

    @contextmanager
    def state(self, name):
        """The body of state ``name``: active while its flip-flop is set."""
        self._here = name
        with self._m.If(self.bits[name]):
            yield
        self._here = None

    @property
    def here(self):
        """The name of the state whose body is being described."""
        return self._here

    def goto(self, name):
        """In the body of a state: leave it for ``name`` in the next cycle."""
        self._m.d.sync += [self.bits[self._here].eq(0), self.bits[name].eq(1)]

    def ongoing(self, name):
        """High in state ``name``."""
        return self.bits[name]
