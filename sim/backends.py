"""Simulation back-ends of a whole network, by name.

Every back-end is a callable ``(net, spikes, trace) -> NetworkRun`` with the arguments of
:func:`~.network_golden.run_network` and the same result type; hardware back-ends also fill in
``cycles``. ``spikeforge simulate --backend NAME`` picks one from :data:`BACKENDS`.

``verilator`` and ``icarus`` run the array's Verilog under a testbench with no Python per cycle
(:mod:`.native`, :mod:`.native_icarus`: the whole batch in one simulator process); the cocotb
test of :mod:`.array_rtl` stays for tests that interact with the array cycle by cycle.
"""

from ..spec.errors import SpikeforgeError
from .array_amaranth import run_array_amaranth
from .native import run_array_native
from .native_icarus import run_array_icarus
from .network_golden import run_network

__all__ = ["BACKENDS", "HARDWARE_BACKENDS", "WAVES_BACKENDS", "get_backend", "simulate"]


def _amaranth(net, spikes, trace=False, **options):
    return run_array_amaranth(net, spikes, trace, **options)


# name -> callable(net, spikes, trace, **options) -> NetworkRun. The hardware back-ends take the
# array options `lanes` and `stages`.
BACKENDS = {
    "golden": run_network,
    "amaranth": _amaranth,
    "verilator": run_array_native,
    "icarus": run_array_icarus,
}
HARDWARE_BACKENDS = ("amaranth", "verilator", "icarus")
# The back-ends that take `waves` (a .fst or .vcd path) and `waves_steps`.
WAVES_BACKENDS = ("verilator", "icarus")


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

    ``options`` (``lanes``, ``stages``) configure the array of the hardware back-ends; those of
    :data:`WAVES_BACKENDS` also take ``waves`` and ``waves_steps``.
    """
    if backend == "golden":
        return get_backend(backend)(net, spikes, trace)
    return get_backend(backend)(net, spikes, trace, **options)
