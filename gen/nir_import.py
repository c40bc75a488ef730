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
from ..spec.limits import (
    RESET_MODES,
    RESET_TIMINGS,
    THRESHOLD_COMPARES,
    V_WIDTH_RANGE,
    W_WIDTH_RANGE,
    check_int,
)
from .network import FORMAT, Network
from .nir_conv import ConvChains
from .nir_flatten import flatten_graph
from .nir_graph import (
    CUBA,
    NEURONS,
    READOUTS,
    SUPPORTED_TEXT,
    Topology,
    meta_float,
    meta_int,
    metadata,
    per_neuron,
)
from .nir_model import FloatModel, FloatPopulation, FloatProjection
from .nir_presets import PRESET_NAMES, PRESETS
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
    graph,
    *,
    v_width=None,
    w_width=None,
    dt=None,
    reset_mode=None,
    weight_percentile=100.0,
    preset="nir",
    reset_timing=None,
    spikes=None,
):
    """Map a NIR graph onto a spikeforge network (``docs/nir.md``).

    Parameters
    ----------
    graph : nir.NIRGraph
    v_width, w_width : int, optional
        Widths of the network; by default the graph's ``spikeforge_v_width`` /
        ``spikeforge_w_width`` metadata, else 16 and 8.
    dt : float, optional
        Step in seconds; by default the graph's ``dt`` metadata, else the preset's.
    reset_mode : {"zero", "subtract"}, optional
        Reset of every spiking population; by default a node's ``spikeforge_reset_mode``
        metadata, else the preset's (``"zero"``, NIR's reset to ``v_reset``, for ``nir``).
    preset : str
        The framework whose discrete-time convention the graph follows (``docs/nir.md``,
        "Framework conventions"): one of ``nir``, ``snntorch``, ``norse``, ``sinabs``,
        ``rockpool``, ``lava``.
    reset_timing : {"same", "next"}, optional
        When a spike's reset acts; by default the preset's (snnTorch: ``"next"``, its
        ``reset_delay=True``, which the graph does not record).
    spikes : {"single", "multi"}, optional
        Whether the framework's neurons emit at most one spike per step; by default the
        preset's (Sinabs and Rockpool: ``"multi"``, their default spike functions, which the
        graph does not record).
    weight_percentile : float
        The scale maps this percentile of the absolute nonzero effective weights to the largest
        weight; larger weights are clipped (and counted). 100 clips nothing.

    Returns
    -------
    FloatModel
        ``.network`` is the :class:`Network`; ``.warnings`` lists, one line each, what the
        network cannot run as the framework does.

    Raises
    ------
    SpikeforgeError
        An unsupported node, a shape mismatch or a value that cannot be represented.
    """
    graph = flatten_graph(graph)
    # Parameters near the float64 limits must not turn into inf or nan silently.
    with np.errstate(over="raise", invalid="raise", divide="raise", under="ignore"):
        try:
            options = {"reset_mode": reset_mode, "reset_timing": reset_timing, "spikes": spikes}
            return _Importer(graph, v_width, w_width, dt, options, weight_percentile, preset).run()
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

    def __init__(self, graph, v_width, w_width, dt, options, weight_percentile, preset):
        if not isinstance(graph, nir.NIRGraph):
            raise SpikeforgeError(
                f"expected a NIR graph (nir.NIRGraph), not {type(graph).__name__}"
            )
        if not isinstance(graph.nodes, dict) or not isinstance(graph.edges, (list, tuple)):
            raise SpikeforgeError("NIR graph: nodes must be a dict and edges a list")
        if preset not in PRESETS:
            raise SpikeforgeError(
                f"preset must be one of {', '.join(PRESET_NAMES)}, not {preset!r}"
            )
        self.preset = PRESETS[preset]
        # Convolutional paths become projections of their own (gen/nir_conv.py).
        self.conv = ConvChains(graph)
        graph = self.conv.graph
        self.meta = metadata(graph)
        if "spikeforge_format" in self.meta:
            # spikeforge's own export states every value in NIR's terms, whatever --from says.
            self.preset = PRESETS["nir"]
        v_width = self._width("v_width", v_width, V_WIDTH_RANGE, 16)
        w_width = self._width("w_width", w_width, W_WIDTH_RANGE, 8)
        reset_mode = options["reset_mode"]
        if reset_mode is not None and reset_mode not in RESET_MODES:
            raise SpikeforgeError(f"reset mode must be one of zero, subtract, not {reset_mode!r}")
        self.reset_mode = reset_mode
        timing = options["reset_timing"]
        if timing is not None and timing not in RESET_TIMINGS:
            raise SpikeforgeError(f"reset timing must be one of same, next, not {timing!r}")
        self.reset_timing = timing
        spikes = options["spikes"]
        if spikes is not None and spikes not in ("single", "multi"):
            raise SpikeforgeError(f"spikes must be one of single, multi, not {spikes!r}")
        self.multi_spike = self.preset.multi_spike if spikes is None else spikes == "multi"
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
        """The step: the option, else the graph's metadata, else the preset's."""
        if dt is None:
            dt = self.meta.get("dt", self.preset.dt)
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
        projections = self.conv.projections(
            self.projections(order, names, incoming), names, self._gain
        )
        net = Network.from_dict(
            self.conv.network_dict(
                self._network_dict(pops, projections, incoming), names, projections
            )
        )
        return FloatModel(
            network=net,
            dt=self.dt,
            populations=pops,
            projections=projections,
            nodes=names,
            preset=self.preset.name,
            warnings=self._warnings(pops),
        )

    def _warnings(self, pops):
        """One line per way the network will not run as the preset's framework runs it."""
        spiking = [p for p in pops if p.kind not in ("Input",) + READOUTS]
        if not spiking:
            return []
        name = self.preset.name
        out = []
        quirk = [p for p in spiking if p.reset_mode == "subtract" and p.reset_timing == "same"]
        if name == "snntorch" and quirk:
            out.append(
                "snntorch: with reset_delay=False a neuron whose membrane is still above v_th "
                "after its reset fires at the next step only if v' > 2 v_th, spikeforge at "
                "v' > v_th: spikeforge fires more where a membrane exceeds 2 v_th "
                "(a net trained with the default reset_delay=True needs --reset-timing next)"
            )
        if name == "snntorch" and any(
            p.kind == "CubaLIF" and p.reset_mode == "zero" and p.reset_timing == "next"
            for p in spiking
        ):
            out.append(
                "snntorch: Synaptic with the zero reset and reset_delay=True zeroes the whole "
                "membrane of the step after a spike, its current included; spikeforge starts "
                "that step from v_reset and adds the current"
            )
        if self.multi_spike:
            out.append(
                f"{name}: a neuron may emit floor(v / v_th) spikes in one step, spikeforge "
                f"emits one and subtracts v_th once: where v reaches 2 v_th, spikeforge "
                f"fires less and later (--spikes single if the net was built with single "
                f"spikes)"
            )
        return out

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
        ratio = 0.0 if kind == "IF" else self._ratio(where, tau_key, p[tau_key])
        decay = self.quantizer.decay(where, meta, "spikeforge_decay", tau_key, ratio)
        pop = FloatPopulation(pop_name, name, kind, size, ratio=ratio, decay=decay)
        if kind in CUBA:
            pop.syn_ratio = self._ratio(where, "tau_syn", p["tau_syn"])
            pop.syn_decay = self.quantizer.decay(
                where, meta, "spikeforge_syn_decay", "tau_syn", pop.syn_ratio
            )
        # The input enters the membrane (or the current, and the current the membrane) with
        # the preset's gain g per neuron (NIR: dt r / tau), folded into the weights and bias.
        self._gain[name] = self.preset.gain(kind, self.dt, p, ratio, pop.syn_ratio)
        pop.v_leak = (
            per_neuron(p["v_leak"])
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
        pop.v_threshold = per_neuron(p["v_threshold"])
        pop.v_reset = per_neuron(p["v_reset"])
        mode = self.reset_mode or meta.get("spikeforge_reset_mode", self.preset.reset_mode)
        if mode not in RESET_MODES:
            raise SpikeforgeError(
                f"{where}: metadata spikeforge_reset_mode must be one of "
                f"zero, subtract, not {mode!r}"
            )
        pop.reset_mode = mode
        timing = self.reset_timing or meta.get("spikeforge_reset_timing", self.preset.reset_timing)
        compare = meta.get("spikeforge_threshold_compare", self.preset.threshold)
        if timing not in RESET_TIMINGS or compare not in THRESHOLD_COMPARES:
            raise SpikeforgeError(
                f"{where}: metadata spikeforge_reset_timing must be one of same, next and "
                f"spikeforge_threshold_compare one of >, >=, not {timing!r} and {compare!r}"
            )
        pop.reset_timing, pop.threshold_compare = timing, compare
        pop.t_ref = meta_int(where, meta, "spikeforge_t_ref", 0, 65535, 0)

    def _ratio(self, where, key, tau):
        """The preset's decay per step (NIR: ``dt / tau``) of a time constant that must be one
        nonzero value."""
        if (tau == 0).any():
            raise SpikeforgeError(f"{where}: {key} must not be zero")
        tau = per_neuron(tau)
        if np.ndim(tau):
            # Learned time constants (snnTorch's learn_beta): one ratio per neuron.
            return np.array([self.preset.ratio(self.dt, float(t)) for t in tau])
        return self.preset.ratio(self.dt, tau)
