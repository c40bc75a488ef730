"""NIR graphs to spikeforge networks and back (``docs/nir.md``).

:func:`import_graph` maps a NIR graph (``nir`` package, version 1.0) onto a
:class:`~spikeforge.gen.network.Network`: forward Euler with the graph's ``dt``, ``dt/tau`` as a
sum of at most four signed powers of two (CubaLIF and CubaLI: also ``dt/tau_syn``), and every
voltage-like value divided by one scale per population and rounded. It also keeps the float64
description of the graph (:class:`FloatModel`) that :mod:`spikeforge.sim.quant_report` simulates
for the quantization report. :func:`export_network` writes a network back as a NIR graph whose
re-import is exact.

Anything the mapping cannot represent is a one-line :class:`SpikeforgeError` naming the node.
"""

import json
import math
import os
import re
from dataclasses import dataclass, field

import numpy as np

from ..spec.errors import SpikeforgeError
from ..spec.limits import RESET_MODES, V_WIDTH_RANGE, W_WIDTH_RANGE, v_range, w_range
from ..spec.params import NeuronParams, decay_from_ratio, decay_value
from .network import FORMAT, Network

__all__ = [
    "SUPPORTED",
    "FloatPopulation",
    "FloatProjection",
    "FloatModel",
    "import_graph",
    "import_nir",
    "read_graph",
    "export_network",
    "export_nir",
]

# The node types the importer understands, in the order error messages list them.
SUPPORTED = (
    "Input",
    "Output",
    "Affine",
    "Linear",
    "Flatten",
    "LIF",
    "IF",
    "LI",
    "CubaLIF",
    "CubaLI",
)
_SUPPORTED_TEXT = ", ".join(SUPPORTED)
_NEURONS = ("LIF", "IF", "LI", "CubaLIF", "CubaLI")
_SPIKING = ("LIF", "IF", "CubaLIF")
# Non-spiking readouts: their membrane is the output.
_READOUTS = ("LI", "CubaLI")
# Current-based: a synaptic current with its own decay (docs/neuron.md).
_CUBA = ("CubaLIF", "CubaLI")
_LINEAR = ("Affine", "Linear", "Flatten")
# Where the (scaled) dt/tau of a forced-scale graph may differ from its stored decay terms:
# export writes tau = 1/d and import computes dt/tau, which is d up to a few ulps.
_RATIO_TOLERANCE = 1e-12
_NAME_BAD = re.compile(r"[^A-Za-z0-9_]")


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
    ratio : float
        ``dt / tau`` (``dt / tau_mem`` for CubaLIF and CubaLI; 0 for IF; unused for inputs).
    decay : tuple of int
        Its shift-term approximation.
    syn_ratio : float or None
        ``dt / tau_syn`` of CubaLIF and CubaLI; None for the others.
    syn_decay : tuple of int or None
        Its shift-term approximation.
    v_leak, v_threshold, v_reset : float
        ``v_threshold`` is ``inf`` for LI (it never fires).
    reset_mode : str
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
    name.
    """

    network: Network
    dt: float
    populations: list
    projections: list
    nodes: dict = field(default_factory=dict)

    def population(self, name):
        """The :class:`FloatPopulation` called ``name``."""
        return next(p for p in self.populations if p.name == name)


# -- reading --------------------------------------------------------------------------------------


def read_graph(path):
    """Read a ``.nir`` file; any failure is one line naming the file."""
    import nir

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


# -- small checks ---------------------------------------------------------------------------------


def _type(node):
    return type(node).__name__


def _where(name, node):
    return f"node {name!r} ({_type(node)})"


def _plain(value):
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.ndarray) and value.shape == ():
        return value.item()
    if isinstance(value, np.generic):
        return value.item()
    return value


def _metadata(obj):
    meta = getattr(obj, "metadata", None)
    return {str(k): _plain(v) for k, v in meta.items()} if isinstance(meta, dict) else {}


def _array(where, key, value, ndim=None):
    """``value`` as a finite float64 array, else an error naming the parameter."""
    try:
        arr = np.asarray(value, np.float64)
    except (TypeError, ValueError):
        raise SpikeforgeError(
            f"{where}: {key} must be numeric, not {type(value).__name__}"
        ) from None
    if ndim is not None and arr.ndim not in ndim:
        raise SpikeforgeError(
            f"{where}: {key} must have {' or '.join(map(str, ndim))} "
            f"dimensions, not shape {arr.shape}"
        )
    if not np.isfinite(arr).all():
        raise SpikeforgeError(f"{where}: {key} has a non-finite value (nan or inf)")
    return arr


def _meta_int(where, meta, key, lo, hi, default):
    if key not in meta:
        return default
    value = meta[key]
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
        raise SpikeforgeError(
            f"{where}: metadata {key} must be an integer in [{lo}, {hi}], not {value!r}"
        )
    return value


def _meta_float(where, meta, key):
    value = meta.get(key)
    if value is None:
        return None
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        raise SpikeforgeError(f"{where}: metadata {key} must be a finite number, not {value!r}")
    return float(value)


def _meta_decay(where, meta, v_width, key="spikeforge_decay"):
    text = meta.get(key)
    if text is None:
        return None
    try:
        terms = json.loads(text) if isinstance(text, str) else None
        return NeuronParams(v_th=0, decay=terms, v_width=v_width).decay
    except (ValueError, TypeError):
        raise SpikeforgeError(
            f"{where}: metadata {key} must be a JSON list of at "
            f"most 4 shift terms in [{1 - v_width}, {v_width - 1}], "
            f"not {text!r}"
        ) from None


def _readout_text(kind):
    article = "an" if kind == "LI" else "a"
    return f"{article} {kind} node is a non-spiking readout; it may feed Output nodes only"


def _uniform(where, key, arr):
    """The one value of a per-neuron parameter array that spikeforge keeps per population."""
    flat = arr.reshape(-1)
    if flat.size and not (flat == flat[0]).all():
        raise SpikeforgeError(
            f"{where}: {key} differs between neurons ({flat.min():g} ... "
            f"{flat.max():g}); spikeforge has one value per population"
        )
    return float(flat[0]) if flat.size else 0.0


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


# -- import ---------------------------------------------------------------------------------------


class _Importer:
    def __init__(self, graph, v_width, w_width, dt, reset_mode, weight_percentile):
        import nir

        if not isinstance(graph, nir.NIRGraph):
            raise SpikeforgeError(
                f"expected a NIR graph (nir.NIRGraph), not {type(graph).__name__}"
            )
        if not isinstance(graph.nodes, dict) or not isinstance(graph.edges, (list, tuple)):
            raise SpikeforgeError("NIR graph: nodes must be a dict and edges a list")
        self.meta = _metadata(graph)
        self.nodes = graph.nodes
        self.v_width = self._width("v_width", v_width, V_WIDTH_RANGE, 16)
        self.w_width = self._width("w_width", w_width, W_WIDTH_RANGE, 8)
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
        self.weight_percentile = float(weight_percentile)
        self.preds = {name: [] for name in self.nodes}
        self.succs = {name: [] for name in self.nodes}
        for edge in graph.edges:
            if not isinstance(edge, (tuple, list)) or len(edge) != 2:
                raise SpikeforgeError(f"NIR graph: edge {edge!r} is not a (source, target) pair")
            src, dst = (_plain(e) for e in edge)
            for end in (src, dst):
                if end not in self.nodes:
                    raise SpikeforgeError(
                        f"NIR graph: edge ({src!r}, {dst!r}) names node "
                        f"{end!r}, which does not exist"
                    )
            if src in self.preds[dst]:
                raise SpikeforgeError(f"NIR graph: duplicate edge ({src!r}, {dst!r})")
            self.preds[dst].append(src)
            self.succs[src].append(dst)
        for name, node in self.nodes.items():
            if not isinstance(name, str):
                raise SpikeforgeError(f"NIR graph: node name {name!r} is not a string")
            kind = _type(node)
            if kind not in SUPPORTED:
                raise SpikeforgeError(
                    f"{_where(name, node)}: not supported; supported are {_SUPPORTED_TEXT}"
                )
        self.dt = self._dt(dt)
        self._sizes = {}
        self._exprs = {}
        # Per neuron node: the input gain dt r / tau (per neuron) and the node's metadata.
        self._gain = {}
        self._meta = {}

    def _width(self, key, value, bounds, default):
        if value is None:
            value = self.meta.get(f"spikeforge_{key}", default)
        if (
            not isinstance(value, int)
            or isinstance(value, bool)
            or not bounds[0] <= value <= bounds[1]
        ):
            raise SpikeforgeError(
                f"{key} must be an integer in [{bounds[0]}, {bounds[1]}], not {value!r}"
            )
        return value

    def _dt(self, dt):
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

    # -- sizes -----------------------------------------------------------------------------------

    def size(self, name, stack=()):
        """Number of values on the output of node ``name``."""
        if name in self._sizes:
            return self._sizes[name]
        node = self.nodes[name]
        where = _where(name, node)
        if name in stack:
            raise SpikeforgeError(
                f"{where}: its size cannot be told (a cycle without parameter shapes)"
            )
        stack = stack + (name,)
        kind = _type(node)
        if kind == "Input":
            shape = _array(
                where,
                "shape",
                node.input_type.get("input") if isinstance(node.input_type, dict) else None,
                (0, 1),
            )
            if shape.size == 0 or (shape < 1).any() or (shape != np.round(shape)).any():
                raise SpikeforgeError(
                    f"{where}: shape must be positive integers, not {shape.tolist()}"
                )
            size = int(np.prod(shape.astype(np.int64)))
        elif kind == "Output":
            raise SpikeforgeError(f"{where}: an Output node cannot feed other nodes")
        elif kind in ("Affine", "Linear"):
            size = self._weight(name).shape[0]
        elif kind == "Flatten":
            sizes = {self.size(p, stack) for p in self.preds[name]}
            if len(sizes) != 1:
                raise SpikeforgeError(
                    f"{where}: needs inputs of one size, has {sorted(sizes) or 'no inputs'}"
                )
            size = sizes.pop()
        else:
            size = self._neuron_size(name, stack)
        if not 1 <= size <= (1 << 20):
            raise SpikeforgeError(f"{where}: size must be in [1, 1048576], not {size}")
        self._sizes[name] = size
        return size

    def _params(self, name):
        node = self.nodes[name]
        keys = {
            "LIF": ("tau", "r", "v_leak", "v_threshold", "v_reset"),
            "IF": ("r", "v_threshold", "v_reset"),
            "LI": ("tau", "r", "v_leak"),
            "CubaLIF": ("tau_syn", "tau_mem", "r", "v_leak", "v_threshold", "v_reset", "w_in"),
            "CubaLI": ("tau_syn", "tau_mem", "r", "v_leak", "w_in"),
        }[_type(node)]
        return {k: _array(_where(name, node), k, getattr(node, k, None), (0, 1)) for k in keys}

    def _neuron_size(self, name, stack):
        # A parameter of shape () or (1,) is one value for every neuron (snnTorch exports a
        # scalar beta as a 0-d tau); the others give the size.
        params = self._params(name).values()
        shapes = {arr.shape[0] for arr in params if arr.ndim == 1 and arr.shape[0] != 1}
        where = _where(name, self.nodes[name])
        if len(shapes) > 1:
            raise SpikeforgeError(f"{where}: parameter lengths differ ({sorted(shapes)})")
        if shapes:
            return shapes.pop()
        sizes = {self.size(p, stack) for p in self.preds[name]}
        if len(sizes) == 1:
            return sizes.pop()
        if not sizes and any(arr.ndim == 1 for arr in params):
            return 1
        raise SpikeforgeError(
            f"{where}: its size cannot be told (scalar parameters and "
            f"{'no inputs' if not sizes else 'inputs of several sizes'})"
        )

    def _weight(self, name):
        node = self.nodes[name]
        w = _array(_where(name, node), "weight", getattr(node, "weight", None), (2,))
        if 0 in w.shape:
            raise SpikeforgeError(f"{_where(name, node)}: weight shape {w.shape} is empty")
        return w

    # -- expressions: every node's output as a linear map of spike sources ---------------------

    def expr(self, name, stack=()):
        """``(terms, const)``: the output of ``name`` is ``sum terms[s] @ x_s + const``."""
        if name in self._exprs:
            return self._exprs[name]
        node = self.nodes[name]
        kind = _type(node)
        where = _where(name, node)
        size = self.size(name)
        if kind == "Input" or kind in _SPIKING:
            return {name: np.eye(size)}, np.zeros(size)
        if kind in _READOUTS:
            raise SpikeforgeError(f"{where}: {_readout_text(kind)}")
        if name in stack:
            raise SpikeforgeError(f"{where}: is on a cycle of linear nodes without a neuron")
        in_size = size if kind == "Flatten" else self._weight(name).shape[1]
        terms, const = self.input_sum(name, in_size, stack + (name,))
        if kind != "Flatten":
            w = self._weight(name)
            terms = {src: w @ m for src, m in terms.items()}
            const = w @ const
            if kind == "Affine":
                b = _array(where, "bias", getattr(node, "bias", None), (0, 1))
                if b.ndim == 1 and b.shape[0] != size:
                    raise SpikeforgeError(
                        f"{where}: bias has {b.shape[0]} values, the weight {w.shape} needs {size}"
                    )
                const = const + b
        self._exprs[name] = terms, const
        return terms, const

    def input_sum(self, name, in_size, stack=()):
        """Sum of the outputs of the predecessors of ``name``, which must all be ``in_size``."""
        terms, const = {}, np.zeros(in_size)
        for pred in self.preds[name]:
            got = self.size(pred)
            if got != in_size:
                raise SpikeforgeError(
                    f"{_where(name, self.nodes[name])}: input from {pred!r} "
                    f"has {got} values, expected {in_size}"
                )
            pred_terms, pred_const = self.expr(pred, stack)
            for src, m in pred_terms.items():
                terms[src] = terms[src] + m if src in terms else m
            const = const + pred_const
        return terms, const

    # -- the network -----------------------------------------------------------------------------

    def order(self):
        """Input nodes, then neuron nodes depth first: sources before the neurons they feed, and
        the edge that closes a cycle delayed (``docs/nir.md``)."""
        inputs = [n for n, node in self.nodes.items() if _type(node) == "Input"]
        neurons = [n for n, node in self.nodes.items() if _type(node) in _NEURONS]
        given = self.meta.get("spikeforge_order")
        if given is not None:
            names = given.split(",") if isinstance(given, str) else None
            if names is None or sorted(names) != sorted(inputs + neurons):
                raise SpikeforgeError(
                    f"NIR graph: metadata spikeforge_order must name every "
                    f"Input and neuron node once, not {given!r}"
                )
            return names
        # Reverse post-order of a depth-first walk along the edges from the inputs: every
        # population comes after its sources, except along an edge back to one already on the
        # walk's path, which closes a cycle and is therefore delayed.
        targets = {n: [] for n in inputs + neurons}
        for n in neurons:
            for src in self.expr_sources(n):
                targets[src].append(n)
        seen, post = set(), []
        for root in inputs + neurons:
            if root in seen:
                continue
            seen.add(root)
            stack = [(root, iter(targets[root]))]
            while stack:
                node, rest = stack[-1]
                nxt = next((t for t in rest if t not in seen), None)
                if nxt is None:
                    post.append(node)
                    stack.pop()
                else:
                    seen.add(nxt)
                    stack.append((nxt, iter(targets[nxt])))
        ranked = post[::-1]
        return inputs + [n for n in ranked if n not in inputs]

    def expr_sources(self, name):
        """The spike sources (Input and spiking nodes) that neuron node ``name`` depends on."""
        size = self.size(name)
        return list(self.input_sum(name, size)[0])

    def run(self):
        for name, node in self.nodes.items():
            kind = _type(node)
            if kind == "Output":
                if self.succs[name]:
                    raise SpikeforgeError(
                        f"{_where(name, node)}: an Output node cannot feed other nodes"
                    )
                shape = (
                    node.output_type.get("output") if isinstance(node.output_type, dict) else None
                )
                want = (
                    None
                    if shape is None
                    else int(np.prod(_array(_where(name, node), "shape", shape, (0, 1))))
                )
                for pred in self.preds[name]:
                    if want is not None and self.size(pred) != want:
                        raise SpikeforgeError(
                            f"{_where(name, node)}: input from {pred!r} has "
                            f"{self.size(pred)} values, expected {want}"
                        )
                    if _type(self.nodes[pred]) in _LINEAR:
                        raise SpikeforgeError(
                            f"{_where(name, node)}: fed by {pred!r} ({_type(self.nodes[pred])}); "
                            f"spikeforge observes neurons only, put an LI readout in between"
                        )
            elif kind == "Input" and self.preds[name]:
                raise SpikeforgeError(f"{_where(name, node)}: an Input node cannot have inputs")
            elif kind in _READOUTS:
                for succ in self.succs[name]:
                    if _type(self.nodes[succ]) != "Output":
                        raise SpikeforgeError(
                            f"{_where(name, node)}: {_readout_text(kind)}, not {succ!r}"
                        )
        order = self.order()
        if not any(_type(self.nodes[n]) in _NEURONS for n in order):
            raise SpikeforgeError(
                f"NIR graph: has no neuron node (LIF, IF, LI, CubaLIF or "
                f"CubaLI); supported are {_SUPPORTED_TEXT}"
            )
        names = _population_names(order)
        pops, incoming = [], {}
        for n in order:
            if _type(self.nodes[n]) == "Input":
                pops.append(FloatPopulation(names[n], n, "Input", self.size(n)))
            else:
                terms, const = self.input_sum(n, self.size(n))
                incoming[n] = terms, const
                pops.append(self.neuron(n, names[n]))
        projections = self.projections(order, names, incoming)
        pop_dicts, proj_dicts = [], []
        by_name = {p.name: p for p in pops}
        for pop in pops:
            if pop.kind == "Input":
                pop_dicts.append({"name": pop.name, "kind": "input", "size": pop.size})
                continue
            const = incoming[pop.node][1]
            pop.bias = const * self._gain[pop.node]
            pop_dicts.append(
                self.quantize_population(pop, [p for p in projections if p.target == pop.name])
            )
        for proj in projections:
            proj_dicts.append(
                {
                    "from": proj.source,
                    "to": proj.target,
                    "weights": self.quantize_weights(by_name[proj.target], proj),
                }
            )
        d = {
            "format": FORMAT,
            "v_width": self.v_width,
            "w_width": self.w_width,
            "populations": pop_dicts,
            "projections": proj_dicts,
        }
        acc = self.meta.get("spikeforge_acc_width")
        if acc is not None:
            d["acc_width"] = acc
        net = Network.from_dict(d)
        return FloatModel(
            network=net, dt=self.dt, populations=pops, projections=projections, nodes=names
        )

    def projections(self, order, names, incoming):
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
        node = self.nodes[name]
        kind = _type(node)
        where = _where(name, node)
        meta = _metadata(node)
        size = self.size(name)
        p = {k: np.broadcast_to(v, (size,)) for k, v in self._params(name).items()}
        if kind == "IF":
            ratio = 0.0
            self._gain[name] = self.dt * p["r"]
        else:
            tau_key = "tau_mem" if kind in _CUBA else "tau"
            ratio, tau = self._ratio(where, tau_key, p[tau_key])
            self._gain[name] = self.dt * (p["r"] / tau)
        decay = self._decay(
            where, meta, "spikeforge_decay", "tau_mem" if kind in _CUBA else "tau", ratio
        )
        pop = FloatPopulation(pop_name, name, kind, size, ratio=ratio, decay=decay)
        if kind in _CUBA:
            # The input enters the current with dt w_in / tau_syn, the current the membrane
            # with dt r / tau_mem: one gain g for both, folded into the weights and bias.
            pop.syn_ratio, tau_syn = self._ratio(where, "tau_syn", p["tau_syn"])
            pop.syn_decay = self._decay(
                where, meta, "spikeforge_syn_decay", "tau_syn", pop.syn_ratio
            )
            self._gain[name] = self._gain[name] * (self.dt * p["w_in"] / tau_syn)
        pop.v_leak = (
            _uniform(where, "v_leak", p["v_leak"])
            if "v_leak" in p
            else (_meta_float(where, meta, "spikeforge_v_rest") or 0.0)
        )
        if kind in _READOUTS:
            pop.v_threshold, pop.v_reset = math.inf, 0.0
        else:
            pop.v_threshold = _uniform(where, "v_threshold", p["v_threshold"])
            pop.v_reset = _uniform(where, "v_reset", p["v_reset"])
            mode = self.reset_mode or meta.get("spikeforge_reset_mode", "zero")
            if mode not in RESET_MODES:
                raise SpikeforgeError(
                    f"{where}: metadata spikeforge_reset_mode must be one of "
                    f"zero, subtract, not {mode!r}"
                )
            pop.reset_mode = mode
            pop.t_ref = _meta_int(where, meta, "spikeforge_t_ref", 0, 65535, 0)
        self._meta[pop_name] = meta
        return pop

    def _ratio(self, where, key, tau):
        """``(dt / tau, tau)`` of a time constant that must be one nonzero value."""
        if (tau == 0).any():
            raise SpikeforgeError(f"{where}: {key} must not be zero")
        return self.dt / _uniform(where, key, tau), tau

    def _decay(self, where, meta, key, tau_key, ratio):
        """The shift terms of ``ratio``: the node's metadata ``key`` if given (checked against
        ``ratio``), else the best approximation."""
        decay = _meta_decay(where, meta, self.v_width, key)
        if decay is None:
            if not 0 <= ratio <= 1:
                settles = "zero current" if tau_key == "tau_syn" else "rest potential"
                raise SpikeforgeError(
                    f"{where}: dt/{tau_key} = {ratio:g} must be in [0, 1] "
                    f"(forward Euler with a larger step overshoots the "
                    f"{settles})"
                )
            return decay_from_ratio(ratio, self.v_width)
        if abs(decay_value(decay) - ratio) > _RATIO_TOLERANCE * max(1.0, abs(ratio)):
            raise SpikeforgeError(
                f"{where}: metadata {key} {list(decay)} is "
                f"{decay_value(decay):g}, but dt/{tau_key} = {ratio:g}"
            )
        return decay

    def quantize_population(self, pop, projections):
        where = _where(pop.node, self.nodes[pop.node])
        meta = self._meta[pop.name]
        v_lo, v_hi = v_range(self.v_width)
        w_hi = w_range(self.w_width)[1]
        forced = _meta_float(where, meta, "spikeforge_scale")
        if forced is not None:
            if forced <= 0:
                raise SpikeforgeError(
                    f"{where}: metadata spikeforge_scale must be positive, not {forced:g}"
                )
            q = forced
        else:
            volts = [abs(pop.v_leak), float(np.abs(pop.bias).max())]
            if pop.kind not in _READOUTS:
                volts += [abs(pop.v_threshold), abs(pop.v_reset)]
            weights = np.concatenate(
                [np.abs(p.weights).ravel() for p in projections] or [np.zeros(0)]
            )
            weights = weights[weights > 0]
            w_max = float(np.percentile(weights, self.weight_percentile)) if weights.size else 0
            # Half the membrane range for the parameters leaves room for the excursions above
            # threshold and below rest; the weights get the whole w_width range.
            q = max(max(volts) / max(1, v_hi // 2), w_max / w_hi)
            if q == 0:
                # Nothing but zeros: any scale is exact.
                q = 1.0
        pop.scale = q

        def integer(key, value):
            x = value / q
            n = round(x) if math.isfinite(x) else x
            if forced is not None and n != x:
                raise SpikeforgeError(
                    f"{where}: {key} = {value:g} is not a whole number of spikeforge_scale = {q:g}"
                )
            if not math.isfinite(x) or not v_lo <= n <= v_hi:
                raise SpikeforgeError(
                    f"{where}: {key} = {value:g} is {x:g} at scale {q:g}, "
                    f"outside the v_width={self.v_width} range [{v_lo}, {v_hi}]"
                )
            return int(n)

        v_rest = integer("v_leak", pop.v_leak)
        if pop.kind in _READOUTS:
            v_th = v_peak = v_hi
            v_reset = 0
        else:
            v_th = integer("v_threshold", pop.v_threshold)
            v_reset = integer("v_reset", pop.v_reset)
            peak = _meta_float(where, meta, "spikeforge_v_peak")
            v_peak = v_hi if peak is None else integer("spikeforge_v_peak", peak)
        bias = self._round(pop, pop.bias, v_lo, v_hi, forced, where, "bias")
        per_neuron = _meta_int(where, meta, "spikeforge_bias_per_neuron", 0, 1, None)
        if per_neuron is None:
            per_neuron = int(not (bias == bias[0]).all())
        elif not per_neuron and not (bias == bias[0]).all():
            raise SpikeforgeError(
                f"{where}: metadata spikeforge_bias_per_neuron is 0 but the "
                f"bias differs between neurons"
            )
        spec = {
            "name": pop.name,
            "kind": "lif",
            "size": pop.size,
            "v_th": v_th,
            "v_reset": v_reset,
            "v_rest": v_rest,
            "v_peak": v_peak,
            "t_ref": pop.t_ref,
            "decay": list(pop.decay),
            "reset_mode": pop.reset_mode,
            "bias": bias if per_neuron else int(bias[0]),
        }
        if pop.syn_decay is not None:
            spec["syn_decay"] = list(pop.syn_decay)
        try:
            NeuronParams(
                v_th=v_th,
                v_reset=v_reset,
                v_rest=v_rest,
                v_peak=v_peak,
                t_ref=pop.t_ref,
                decay=pop.decay,
                reset_mode=pop.reset_mode,
                v_width=self.v_width,
                syn_decay=pop.syn_decay,
            )
        except (TypeError, ValueError) as error:
            raise SpikeforgeError(f"{where}: {error}") from None
        return spec

    def quantize_weights(self, target, proj):
        where = _where(target.node, self.nodes[target.node])
        forced = _meta_float(where, self._meta[target.name], "spikeforge_scale")
        lo, hi = w_range(self.w_width)
        return self._round(
            target, proj.weights, lo, hi, forced, where, f"weights from {proj.source!r}"
        )

    @staticmethod
    def _round(pop, values, lo, hi, forced, where, what):
        x = values / pop.scale
        n = np.round(x)
        if forced is not None and (n != x).any():
            raise SpikeforgeError(
                f"{where}: {what} are not whole numbers of spikeforge_scale = {pop.scale:g}"
            )
        clipped = np.clip(n, lo, hi)
        if forced is not None and (clipped != n).any():
            raise SpikeforgeError(
                f"{where}: {what} reach {float(np.abs(n).max()):g}, outside [{lo}, {hi}]"
            )
        pop.clipped += int((clipped != n).sum())
        pop.zeroed += int(((n == 0) & (values != 0)).sum())
        return clipped.astype(np.int64)


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


# -- export ---------------------------------------------------------------------------------------


def export_network(net):
    """A NIR graph of ``net`` whose :func:`import_graph` gives ``net`` back exactly.

    ``dt = 1``; a population with decay value ``d != 0`` is an LIF (or LI, see ``docs/nir.md``)
    with ``tau = r = 1/d``, so that ``dt r / tau = 1``; ``d = 0`` is an IF with ``r = 1``. A
    current-based population is a CubaLIF (or CubaLI) with also ``tau_syn = w_in = 1/d_syn``.
    Weights and voltages are the integers as floats; the node metadata ``spikeforge_scale = 1``
    tells the importer so, and further metadata carries what NIR has no field for.

    Raises
    ------
    SpikeforgeError
        A current-based population whose ``decay`` or ``syn_decay`` has the value 0: NIR's
        CubaLIF has no infinite time constant.
    """
    import nir

    v_hi = v_range(net.v_width)[1]
    nodes, edges = {}, []
    sources = {proj.source for proj in net.projections}
    first_in = {}
    for i, proj in enumerate(net.projections):
        first_in.setdefault(proj.target, i)
    for pop in net.populations:
        if pop.is_input:
            nodes[pop.name] = nir.Input(input_type=np.array([pop.size]))
            continue
        p = pop.params
        ones = np.ones(pop.size)
        d = decay_value(p.decay)
        meta = {
            "spikeforge_scale": 1.0,
            "spikeforge_decay": json.dumps(list(p.decay)),
            "spikeforge_bias_per_neuron": int(pop.per_neuron_bias),
        }
        readout = (
            p.v_th == p.v_peak == v_hi
            and p.v_reset == 0
            and p.reset_mode == "zero"
            and p.t_ref == 0
            and d != 0
            and pop.name not in sources
        )
        if p.synaptic:
            nodes[pop.name] = _export_cuba(pop, d, meta, readout)
        elif readout:
            nodes[pop.name] = nir.LI(
                tau=ones / d, r=ones / d, v_leak=ones * p.v_rest, metadata=meta
            )
        else:
            meta.update(
                spikeforge_v_peak=p.v_peak,
                spikeforge_t_ref=p.t_ref,
                spikeforge_reset_mode=p.reset_mode,
            )
            if d == 0:
                meta["spikeforge_v_rest"] = p.v_rest
                nodes[pop.name] = nir.IF(
                    r=ones, v_threshold=ones * p.v_th, v_reset=ones * p.v_reset, metadata=meta
                )
            else:
                nodes[pop.name] = nir.LIF(
                    tau=ones / d,
                    r=ones / d,
                    v_leak=ones * p.v_rest,
                    v_threshold=ones * p.v_th,
                    v_reset=ones * p.v_reset,
                    metadata=meta,
                )
        nodes[f"{pop.name}:out"] = nir.Output(output_type=np.array([pop.size]))
        edges.append((pop.name, f"{pop.name}:out"))
        if pop.name not in first_in and pop.bias.any():
            # No projection to carry the bias: an Affine without inputs outputs just its bias.
            nodes[f"{pop.name}:bias"] = nir.Affine(
                weight=np.zeros((pop.size, 1)), bias=pop.bias.astype(np.float64)
            )
            edges.append((f"{pop.name}:bias", pop.name))
    for i, proj in enumerate(net.projections):
        name = f"{proj.source}->{proj.target}"
        weight = proj.weights.T.astype(np.float64)
        if first_in[proj.target] == i:
            bias = net.population(proj.target).bias.astype(np.float64)
            nodes[name] = nir.Affine(weight=weight, bias=bias)
        else:
            nodes[name] = nir.Linear(weight=weight)
        edges += [(proj.source, name), (name, proj.target)]
    meta = {
        "spikeforge_format": FORMAT,
        "spikeforge_v_width": net.v_width,
        "spikeforge_w_width": net.w_width,
        "dt": 1.0,
        "spikeforge_order": ",".join(p.name for p in net.populations),
        "spikeforge_projections": ",".join(f"{p.source}>{p.target}" for p in net.projections),
    }
    if net.acc_width_explicit:
        meta["spikeforge_acc_width"] = net.acc_width
    # Type checking would ask every node for shapes that the Affine-without-input case lacks.
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=meta, type_check=False)


def _export_cuba(pop, d, meta, readout):
    """The CubaLIF (or, for a readout, CubaLI) node of a current-based population."""
    import nir

    p = pop.params
    d_syn = decay_value(p.syn_decay)
    for key, terms, value, tau in (
        ("decay", p.decay, d, "tau_mem"),
        ("syn_decay", p.syn_decay, d_syn, "tau_syn"),
    ):
        if value == 0:
            raise SpikeforgeError(
                f"population {pop.name!r}: {key} {list(terms)} has the value 0, "
                f"which NIR's CubaLIF cannot express (it needs a finite {tau})"
            )
    ones = np.ones(pop.size)
    meta["spikeforge_syn_decay"] = json.dumps(list(p.syn_decay))
    common = dict(
        tau_syn=ones / d_syn,
        tau_mem=ones / d,
        r=ones / d,
        v_leak=ones * p.v_rest,
        w_in=ones / d_syn,
        metadata=meta,
    )
    if readout:
        return nir.CubaLI(**common)
    meta.update(
        spikeforge_v_peak=p.v_peak, spikeforge_t_ref=p.t_ref, spikeforge_reset_mode=p.reset_mode
    )
    return nir.CubaLIF(v_threshold=ones * p.v_th, v_reset=ones * p.v_reset, **common)


def export_nir(net, path):
    """Write :func:`export_network` of ``net`` to the ``.nir`` file ``path``."""
    import nir

    nir.write(os.fspath(path), export_network(net))
