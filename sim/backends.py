"""Simulation back-ends of a whole network, by name.

Every back-end is a callable ``(net, spikes, trace) -> NetworkRun`` with the arguments of
:func:`~.network_golden.run_network` and the same result type; hardware back-ends also fill in
``cycles``. ``spikeforge simulate --backend NAME`` picks one from :data:`BACKENDS`.
"""

from ..gen.errors import SpikeforgeError
from .network_golden import run_network

__all__ = ["BACKENDS", "get_backend", "simulate"]

# name -> callable(net, spikes, trace) -> NetworkRun
BACKENDS = {
    "golden": run_network,
}


def get_backend(name):
    """The back-end called ``name``; an unknown name is a one-line :class:`SpikeforgeError`."""
    try:
        return BACKENDS[name]
    except (KeyError, TypeError):
        raise SpikeforgeError(f"backend must be one of {', '.join(BACKENDS)}, "
                              f"not {name!r}") from None


def simulate(net, spikes, backend="golden", trace=False):
    """Run ``net`` on ``spikes`` with the back-end called ``backend``."""
    return get_backend(backend)(net, spikes, trace)
