"""The float64 model of an imported NIR graph (``docs/nir.md``).

:func:`~spikeforge.gen.nir_import.import_graph` returns a :class:`FloatModel`: the quantized
:class:`~spikeforge.gen.network.Network` together with the graph in float64, in the units of the
graph, which :mod:`spikeforge.sim.quant_report` simulates for the quantization report.
"""

from dataclasses import dataclass, field

import numpy as np

from .network import Network

__all__ = ["FloatPopulation", "FloatProjection", "FloatModel"]


@dataclass
class FloatPopulation:
    """One population of the float64 model, in the units of the NIR graph.

    Attributes
    ----------
    name : str
        The spikeforge population name.
    node : str
        The NIR node it came from.
    kind : str
        ``"Input"``, ``"LIF"``, ``"IF"``, ``"LI"``, ``"CubaLIF"`` or ``"CubaLI"``.
    size : int
    ratio : float or ndarray
        ``dt / tau`` (``dt / tau_mem`` for CubaLIF and CubaLI; 0 for IF; unused for inputs); an
        array of one per neuron where the neurons differ (learned time constants).
    decay : tuple of int, or tuple of such tuples
        Its shift-term approximation (one per neuron where they differ).
    syn_ratio : float, ndarray or None
        ``dt / tau_syn`` of CubaLIF and CubaLI; None for the others.
    syn_decay : tuple of int, tuple of such tuples, or None
        Its shift-term approximation.
    v_leak, v_threshold, v_reset : float or ndarray
        One value, or an array of one per neuron where the neurons differ (e.g. learned
        thresholds). ``v_threshold`` is ``inf`` for LI (it never fires).
    reset_mode : str
    reset_timing : str
        ``"same"`` or ``"next"`` (``docs/neuron.md``).
    threshold_compare : str
        ``">"`` or ``">="``.
    t_ref : int
    scale : float
        NIR units per membrane LSB, ``q``.
    bias : ndarray of float64, shape (size,)
        Input added every step, ``dt r / tau * b`` (``dt r b`` for IF, ``g b`` with the gain
        ``g`` of ``docs/nir.md`` for CubaLIF and CubaLI).
    clipped : int
        Weights and bias values that rounding put beyond the integer range and were clipped.
    zeroed : int
        Nonzero weights that rounded to zero.
    """

    name: str
    node: str
    kind: str
    size: int
    ratio: float = 0.0
    decay: tuple = ()
    syn_ratio: float | None = None
    syn_decay: tuple | None = None
    v_leak: float = 0.0
    v_threshold: float = 0.0
    v_reset: float = 0.0
    reset_mode: str = "zero"
    reset_timing: str = "same"
    threshold_compare: str = ">"
    t_ref: int = 0
    scale: float = 1.0
    bias: np.ndarray = None
    clipped: int = 0
    zeroed: int = 0


@dataclass
class FloatProjection:
    """Effective float weights ``(size of source, size of target)``: what one spike adds to the
    target's membrane (the NIR weight times ``dt r / tau``), or to its synaptic current (CubaLIF
    and CubaLI, times the gain ``g`` of ``docs/nir.md``)."""

    source: str
    target: str
    weights: np.ndarray


@dataclass
class FloatModel:
    """The imported graph in float64, aligned with the network it was quantized to.

    ``populations`` and ``projections`` are in the order of ``network.populations`` and
    ``network.projections``; ``nodes`` maps each Input and neuron node name to its population
    name. ``preset`` is the framework convention it was imported with (``docs/nir.md``) and
    ``warnings`` lists, one line each, what the network cannot run as that framework does.
    """

    network: Network
    dt: float
    populations: list
    projections: list
    nodes: dict = field(default_factory=dict)
    preset: str = "nir"
    warnings: list = field(default_factory=list)

    def population(self, name):
        """The :class:`FloatPopulation` called ``name``."""
        return next(p for p in self.populations if p.name == name)
