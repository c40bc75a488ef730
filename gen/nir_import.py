"""NIR graphs to spikeforge networks (``docs/nir.md``).

:func:`import_graph` maps a NIR graph (``nir`` package, version 1.0) onto a
:class:`~spikeforge.gen.network.Network`: every Input and neuron node becomes a population, every
linear path between them (:class:`~spikeforge.gen.nir_graph.Topology`) a projection, integrated
with forward Euler and the graph's ``dt`` and quantized by
:class:`~spikeforge.gen.nir_quantize.Quantizer`. It also keeps the float64 description of the graph
(:class:`~spikeforge.gen.nir_model.FloatModel`) for the quantization report.

Anything the mapping cannot represent is a one-line :class:`SpikeforgeError` naming the node.
"""

import math
import os
import re

import nir
import numpy as np

from ..spec.errors import SpikeforgeError
from ..spec.limits import RESET_MODES, V_WIDTH_RANGE, W_WIDTH_RANGE, check_int
from .network import FORMAT, Network
from .nir_graph import (
    CUBA,
    NEURONS,
    READOUTS,
    SUPPORTED_TEXT,
    Topology,
    meta_float,
    meta_int,
    metadata,
    uniform,
)
from .nir_model import FloatModel, FloatPopulation, FloatProjection
from .nir_quantize import Quantizer

__all__ = ["import_graph", "import_nir", "read_graph"]

_NAME_BAD = re.compile(r"[^A-Za-z0-9_]")


def read_graph(path):
    """Read a ``.nir`` file; any failure is one line naming the file."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise SpikeforgeError(f"NIR file {path!r} not found")
    try:
        # Our own checks are stricter than nir's type check and name the node.
        graph = nir.read(path, type_check=False)
    except Exception as error:  # h5py, nir's asserts and constructors raise anything
        detail = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise SpikeforgeError(f"{path}: cannot read as a NIR graph ({detail})") from None
    return graph


def import_nir(path, **options):
    """:func:`import_graph` of the ``.nir`` file ``path``."""
    return import_graph(read_graph(path), **options)


def import_graph(
    graph, *, v_width=None, w_width=None, dt=None, reset_mode=None, weight_percentile=100.0
):
    """Map a NIR graph onto a spikeforge network (``docs/nir.md``).

    Parameters
    ----------
    graph : nir.NIRGraph
    v_width, w_width : int, optional
        Widths of the network; by default the graph's ``spikeforge_v_width`` /
        ``spikeforge_w_width`` metadata, else 16 and 8.
    dt : float, optional
        Forward-Euler step in seconds; by default the graph's ``dt`` metadata.
    reset_mode : {"zero", "subtract"}, optional
        Reset of every spiking population; by default a node's ``spikeforge_reset_mode``
        metadata, else ``"zero"`` (NIR's reset to ``v_reset``).
    weight_percentile : float
        The scale maps this percentile of the absolute nonzero effective weights to the largest
        weight; larger weights are clipped (and counted). 100 clips nothing.

    Returns
    -------
    FloatModel
        ``.network`` is the :class:`Network`.

    Raises
    ------
    SpikeforgeError
        An unsupported node, a shape mismatch or a value that cannot be represented.
    """
    # Parameters near the float64 limits must not turn into inf or nan silently.
    with np.errstate(over="raise", invalid="raise", divide="raise", under="ignore"):
        try:
            return _Importer(graph, v_width, w_width, dt, reset_mode, weight_percentile).run()
        except FloatingPointError as error:
            raise SpikeforgeError(
                f"NIR graph: parameters beyond float64 arithmetic ({error})"
            ) from None


def _population_names(nodes):
    """Valid, unique spikeforge names for NIR node names, in the given order."""
    out = {}
    used = set()
    for node in nodes:
        base = _NAME_BAD.sub("_", node)[:60] or "n"
        if base[0].isdigit():
            base = f"n_{base}"[:60]
        name, k = base, 2
        while name in used:
            name, k = f"{base}_{k}", k + 1
        used.add(name)
        out[node] = name
    return out


class _Importer:
    """One import: the checked options, the graph's topology and the populations built."""

    def __init__(self, graph, v_width, w_width, dt, reset_mode, weight_percentile):
        if not isinstance(graph, nir.NIRGraph):
            raise SpikeforgeError(
                f"expected a NIR graph (nir.NIRGraph), not {type(graph).__name__}"
            )
        if not isinstance(graph.nodes, dict) or not isinstance(graph.edges, (list, tuple)):
            raise SpikeforgeError("NIR graph: nodes must be a dict and edges a list")
        self.meta = metadata(graph)
        v_width = self._width("v_width", v_width, V_WIDTH_RANGE, 16)
        w_width = self._width("w_width", w_width, W_WIDTH_RANGE, 8)
        if reset_mode is not None and reset_mode not in RESET_MODES:
            raise SpikeforgeError(f"reset mode must be one of zero, subtract, not {reset_mode!r}")
        self.reset_mode = reset_mode
        if (
            not isinstance(weight_percentile, (int, float))
            or isinstance(weight_percentile, bool)
            or not 0 < weight_percentile <= 100
        ):
            raise SpikeforgeError(
                f"weight percentile must be a number in (0, 100], not {weight_percentile!r}"
            )
        self.quantizer = Quantizer(v_width, w_width, float(weight_percentile))
        self.graph = Topology(graph.nodes, graph.edges, self.meta)
        self.dt = self._dt(dt)
        # Per neuron node: the input gain dt r / tau (per neuron); per population: its node's
        # metadata.
        self._gain = {}
        self._meta = {}

    def _width(self, key, value, bounds, default):
        """The option ``key``, else the graph's metadata, else ``default``, checked."""
        if value is None:
            value = self.meta.get(f"spikeforge_{key}", default)
        return check_int(key, value, *bounds, error=SpikeforgeError)

    def _dt(self, dt):
        """The forward-Euler step: the option, else the graph's metadata."""
        if dt is None:
            dt = self.meta.get("dt")
            if dt is None:
                raise SpikeforgeError(
                    "the NIR graph has no dt in its metadata: give the "
                    "forward-Euler step in seconds (--dt), the one the "
                    "exporting framework assumed"
                )
        if (
            not isinstance(dt, (int, float))
            or isinstance(dt, bool)
            or not math.isfinite(dt)
            or dt <= 0
        ):
            raise SpikeforgeError(f"dt must be a positive finite number of seconds, not {dt!r}")
        return float(dt)

    # -- the network -----------------------------------------------------------------------------

    def run(self):
        """The :class:`FloatModel` of the graph, with its quantized network."""
        graph = self.graph
        graph.check_connections()
        order = graph.order()
        if not any(graph.kind(n) in NEURONS for n in order):
            raise SpikeforgeError(
                f"NIR graph: has no neuron node (LIF, IF, LI, CubaLIF or "
                f"CubaLI); supported are {SUPPORTED_TEXT}"
            )
        names = _population_names(order)
        pops, incoming = [], {}
        for n in order:
            if graph.kind(n) == "Input":
                pops.append(FloatPopulation(names[n], n, "Input", graph.size(n)))
            else:
                incoming[n] = graph.input_sum(n, graph.size(n))
                pops.append(self.neuron(n, names[n]))
        projections = self.projections(order, names, incoming)
        net = Network.from_dict(self._network_dict(pops, projections, incoming))
        return FloatModel(
            network=net, dt=self.dt, populations=pops, projections=projections, nodes=names
        )

    def _network_dict(self, pops, projections, incoming):
        """The network file of the quantized populations and projections."""
        pop_dicts, proj_dicts = [], []
        by_name = {p.name: p for p in pops}
        for pop in pops:
            if pop.kind == "Input":
                pop_dicts.append({"name": pop.name, "kind": "input", "size": pop.size})
                continue
            const = incoming[pop.node][1]
            pop.bias = const * self._gain[pop.node]
            into = [p for p in projections if p.target == pop.name]
            pop_dicts.append(self.quantizer.population(pop, self._meta[pop.name], into))
        for proj in projections:
            target = by_name[proj.target]
            weights = self.quantizer.weights(target, self._meta[target.name], proj)
            proj_dicts.append({"from": proj.source, "to": proj.target, "weights": weights})
        d = {
            "format": FORMAT,
            "v_width": self.quantizer.v_width,
            "w_width": self.quantizer.w_width,
            "populations": pop_dicts,
            "projections": proj_dicts,
        }
        acc = self.meta.get("spikeforge_acc_width")
        if acc is not None:
            d["acc_width"] = acc
        return d

    def projections(self, order, names, incoming):
        """One :class:`FloatProjection` per (source, target) pair with a linear path, ordered by
        target then source (or as the graph's ``spikeforge_projections`` metadata lists them)."""
        index = {n: i for i, n in enumerate(order)}
        pairs = sorted(
            ((index[src], index[dst]) for dst, (terms, _) in incoming.items() for src in terms),
            key=lambda p: (p[1], p[0]),
        )
        given = self.meta.get("spikeforge_projections")
        if given is not None:
            try:
                listed = (
                    [
                        tuple(index[n] for n in item.split(">", 1))
                        for item in given.split(",")
                        if item
                    ]
                    if isinstance(given, str)
                    else None
                )
            except KeyError:
                listed = None
            if listed is None or sorted(listed) != sorted(pairs) or len(set(listed)) != len(listed):
                raise SpikeforgeError(
                    f"NIR graph: metadata spikeforge_projections must list "
                    f"every source>target pair once, not {given!r}"
                )
            pairs = listed
        out = []
        for i, j in pairs:
            src, dst = order[i], order[j]
            m = incoming[dst][0][src]
            out.append(FloatProjection(names[src], names[dst], (m * self._gain[dst][:, None]).T))
        return out

    # -- one neuron population -------------------------------------------------------------------

    def neuron(self, name, pop_name):
        """The :class:`FloatPopulation` of neuron node ``name`` (without its bias yet)."""
        graph = self.graph
        kind = graph.kind(name)
        where = graph.label(name)
        meta = metadata(graph.nodes[name])
        size = graph.size(name)
        p = {k: np.broadcast_to(v, (size,)) for k, v in graph.params(name).items()}
        tau_key = "tau_mem" if kind in CUBA else "tau"
        if kind == "IF":
            ratio = 0.0
            self._gain[name] = self.dt * p["r"]
        else:
            ratio, tau = self._ratio(where, tau_key, p[tau_key])
            self._gain[name] = self.dt * (p["r"] / tau)
        decay = self.quantizer.decay(where, meta, "spikeforge_decay", tau_key, ratio)
        pop = FloatPopulation(pop_name, name, kind, size, ratio=ratio, decay=decay)
        if kind in CUBA:
            # The input enters the current with dt w_in / tau_syn, the current the membrane
            # with dt r / tau_mem: one gain g for both, folded into the weights and bias.
            pop.syn_ratio, tau_syn = self._ratio(where, "tau_syn", p["tau_syn"])
            pop.syn_decay = self.quantizer.decay(
                where, meta, "spikeforge_syn_decay", "tau_syn", pop.syn_ratio
            )
            self._gain[name] = self._gain[name] * (self.dt * p["w_in"] / tau_syn)
        pop.v_leak = (
            uniform(where, "v_leak", p["v_leak"])
            if "v_leak" in p
            else (meta_float(where, meta, "spikeforge_v_rest") or 0.0)
        )
        if kind in READOUTS:
            pop.v_threshold, pop.v_reset = math.inf, 0.0
        else:
            self._spiking(pop, where, meta, p)
        self._meta[pop_name] = meta
        return pop

    def _spiking(self, pop, where, meta, p):
        """Threshold, reset and refractory period of a spiking population."""
        pop.v_threshold = uniform(where, "v_threshold", p["v_threshold"])
        pop.v_reset = uniform(where, "v_reset", p["v_reset"])
        mode = self.reset_mode or meta.get("spikeforge_reset_mode", "zero")
        if mode not in RESET_MODES:
            raise SpikeforgeError(
                f"{where}: metadata spikeforge_reset_mode must be one of "
                f"zero, subtract, not {mode!r}"
            )
        pop.reset_mode = mode
        pop.t_ref = meta_int(where, meta, "spikeforge_t_ref", 0, 65535, 0)

    def _ratio(self, where, key, tau):
        """``(dt / tau, tau)`` of a time constant that must be one nonzero value."""
        if (tau == 0).any():
            raise SpikeforgeError(f"{where}: {key} must not be zero")
        return self.dt / uniform(where, key, tau), tau
