"""Simulation back-ends of a whole network, by name.

Every back-end is a callable ``(net, spikes, trace) -> NetworkRun`` with the arguments of
:func:`~.network_golden.run_network` and the same result type; hardware back-ends also fill in
``cycles``. ``spikeforge simulate --backend NAME`` picks one from :data:`BACKENDS`.
"""

from ..spec.errors import SpikeforgeError
from .array_amaranth import run_array_amaranth
from .array_rtl import run_array_rtl
from .network_golden import run_network

__all__ = ["BACKENDS", "HARDWARE_BACKENDS", "get_backend", "simulate"]


def _amaranth(net, spikes, trace=False, **options):
    return run_array_amaranth(net, spikes, trace, **options)


def _rtl(simulator):
    def run(net, spikes, trace=False, **options):
        return run_array_rtl(net, spikes, trace, simulator=simulator, **options)

    return run


# name -> callable(net, spikes, trace, **options) -> NetworkRun. The hardware back-ends take the
# array options `lanes` and `stages`; they import lazily so that `golden` needs neither Amaranth's
# simulator nor cocotb.
BACKENDS = {
    "golden": run_network,
    "amaranth": _amaranth,
    "verilator": _rtl("verilator"),
    "icarus": _rtl("icarus"),
}
HARDWARE_BACKENDS = ("amaranth", "verilator", "icarus")


def get_backend(name):
    """The back-end called ``name``; an unknown name is a one-line :class:`SpikeforgeError`."""
    try:
        return BACKENDS[name]
    except (KeyError, TypeError):
        raise SpikeforgeError(
            f"backend must be one of {', '.join(BACKENDS)}, not {name!r}"
        ) from None


def simulate(net, spikes, backend="golden", trace=False, **options):
    """Run ``net`` on ``spikes`` with the back-end called ``backend``.

    ``options`` (``lanes``, ``stages``) configure the array of the hardware back-ends.
    """
    if backend == "golden":
        return get_backend(backend)(net, spikes, trace)
    return get_backend(backend)(net, spikes, trace, **options)
