"""The topology of a NIR graph (``docs/nir.md``): node kinds, sizes, linear paths and order.

:class:`Topology` checks a graph's edges and node kinds, tells every node's output size, writes
the output of every node as a linear map of the spike sources (chains of ``Affine``, ``Linear``
and ``Flatten`` multiplied out) and puts the populations in order. The small readers of NIR
values and metadata here are shared by :mod:`~spikeforge.gen.nir_quantize` and
:mod:`~spikeforge.gen.nir_import`.

Anything the mapping cannot represent is a one-line :class:`SpikeforgeError` naming the node.
"""

import math

import numpy as np

from ..spec.errors import SpikeforgeError

__all__ = [
    "SUPPORTED",
    "SUPPORTED_TEXT",
    "NEURONS",
    "SPIKING",
    "READOUTS",
    "CUBA",
    "LINEAR",
    "Topology",
    "node_kind",
    "node_label",
    "plain",
    "metadata",
    "float_array",
    "meta_int",
    "meta_float",
    "per_neuron",
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
SUPPORTED_TEXT = ", ".join(SUPPORTED)
NEURONS = ("LIF", "IF", "LI", "CubaLIF", "CubaLI")
SPIKING = ("LIF", "IF", "CubaLIF")
# Non-spiking readouts: their membrane is the output.
READOUTS = ("LI", "CubaLI")
# Current-based: a synaptic current with its own decay (docs/neuron.md).
CUBA = ("CubaLIF", "CubaLI")
LINEAR = ("Affine", "Linear", "Flatten")
# The parameters of each neuron node kind, as NIR names them.
_PARAMS = {
    "LIF": ("tau", "r", "v_leak", "v_threshold", "v_reset"),
    "IF": ("r", "v_threshold", "v_reset"),
    "LI": ("tau", "r", "v_leak"),
    "CubaLIF": ("tau_syn", "tau_mem", "r", "v_leak", "v_threshold", "v_reset", "w_in"),
    "CubaLI": ("tau_syn", "tau_mem", "r", "v_leak", "w_in"),
}


# -- reading values -------------------------------------------------------------------------------


def node_kind(node):
    """The NIR type name of ``node``, e.g. ``"LIF"``."""
    return type(node).__name__


def node_label(name, kind):
    """How error messages name node ``name`` of type ``kind``."""
    return f"node {name!r} ({kind})"


def plain(value):
    """``value`` as a plain Python value: HDF5 gives bytes and NumPy scalars."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.ndarray) and value.shape == ():
        return value.item()
    if isinstance(value, np.generic):
        return value.item()
    return value


def metadata(obj):
    """The ``metadata`` of a graph or node as a dict of plain values (empty if it has none)."""
    meta = getattr(obj, "metadata", None)
    return {str(k): plain(v) for k, v in meta.items()} if isinstance(meta, dict) else {}


def float_array(where, key, value, ndim=None):
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


def meta_int(where, meta, key, lo, hi, default):
    """The integer metadata ``key`` in ``[lo, hi]``, or ``default`` if it is absent."""
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


def meta_float(where, meta, key):
    """The finite number metadata ``key`` as a float, or None if it is absent."""
    value = meta.get(key)
    if value is None:
        return None
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        raise SpikeforgeError(f"{where}: metadata {key} must be a finite number, not {value!r}")
    return float(value)


def per_neuron(arr):
    """The values of a per-neuron parameter array: one float when every neuron has the same,
    else a float64 array of one value per neuron (``docs/network.md``, per-neuron
    parameters)."""
    flat = np.asarray(arr, np.float64).reshape(-1)
    if flat.size and not (flat == flat[0]).all():
        return flat.copy()
    return float(flat[0]) if flat.size else 0.0


def _readout_text(kind):
    article = "an" if kind == "LI" else "a"
    return f"{article} {kind} node is a non-spiking readout; it may feed Output nodes only"


# -- the graph ------------------------------------------------------------------------------------


class Topology:
    """The checked edges of a NIR graph and what follows from them.

    Parameters
    ----------
    nodes : dict of str to nir.NIRNode
    edges : list of (str, str)
    meta : dict
        The graph's :func:`metadata` (``spikeforge_order`` fixes the order).

    Raises
    ------
    SpikeforgeError
        An edge that is not a pair of existing nodes, a duplicate edge, a node name that is not a
        string or an unsupported node.
    """

    def __init__(self, nodes, edges, meta):
        self.nodes = nodes
        self.meta = meta
        self.preds = {name: [] for name in nodes}
        self.succs = {name: [] for name in nodes}
        for edge in edges:
            self._add_edge(edge)
        for name, node in nodes.items():
            if not isinstance(name, str):
                raise SpikeforgeError(f"NIR graph: node name {name!r} is not a string")
            if node_kind(node) not in SUPPORTED:
                raise SpikeforgeError(
                    f"{self.label(name)}: not supported; supported are {SUPPORTED_TEXT}"
                )
        self._sizes = {}
        self._exprs = {}

    def _add_edge(self, edge):
        """Record one ``(source, target)`` edge."""
        if not isinstance(edge, (tuple, list)) or len(edge) != 2:
            raise SpikeforgeError(f"NIR graph: edge {edge!r} is not a (source, target) pair")
        src, dst = (plain(e) for e in edge)
        for end in (src, dst):
            if end not in self.nodes:
                raise SpikeforgeError(
                    f"NIR graph: edge ({src!r}, {dst!r}) names node {end!r}, which does not exist"
                )
        if src in self.preds[dst]:
            raise SpikeforgeError(f"NIR graph: duplicate edge ({src!r}, {dst!r})")
        self.preds[dst].append(src)
        self.succs[src].append(dst)

    def kind(self, name):
        """The NIR type name of node ``name``."""
        return node_kind(self.nodes[name])

    def label(self, name):
        """How error messages name node ``name``."""
        return node_label(name, self.kind(name))

    # -- sizes -----------------------------------------------------------------------------------

    def size(self, name, stack=()):
        """Number of values on the output of node ``name``."""
        if name in self._sizes:
            return self._sizes[name]
        node = self.nodes[name]
        where = self.label(name)
        if name in stack:
            raise SpikeforgeError(
                f"{where}: its size cannot be told (a cycle without parameter shapes)"
            )
        stack = stack + (name,)
        kind = self.kind(name)
        if kind == "Input":
            shape = float_array(
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
            size = self.weight(name).shape[0]
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

    def params(self, name):
        """The parameters of neuron node ``name`` as float64 arrays of 0 or 1 dimensions."""
        node = self.nodes[name]
        where = self.label(name)
        return {
            k: float_array(where, k, getattr(node, k, None), (0, 1))
            for k in _PARAMS[self.kind(name)]
        }

    def _neuron_size(self, name, stack):
        """The size of a neuron node: its parameters' length, else its inputs' size."""
        # A parameter of shape () or (1,) is one value for every neuron (snnTorch exports a
        # scalar beta as a 0-d tau); the others give the size.
        params = self.params(name).values()
        shapes = {arr.shape[0] for arr in params if arr.ndim == 1 and arr.shape[0] != 1}
        where = self.label(name)
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

    def weight(self, name):
        """The weight matrix ``(out, in)`` of the ``Affine`` or ``Linear`` node ``name``."""
        where = self.label(name)
        w = float_array(where, "weight", getattr(self.nodes[name], "weight", None), (2,))
        if 0 in w.shape:
            raise SpikeforgeError(f"{where}: weight shape {w.shape} is empty")
        return w

    # -- expressions: every node's output as a linear map of spike sources ---------------------

    def expr(self, name, stack=()):
        """``(terms, const)``: the output of ``name`` is ``sum terms[s] @ x_s + const``."""
        if name in self._exprs:
            return self._exprs[name]
        kind = self.kind(name)
        where = self.label(name)
        size = self.size(name)
        if kind == "Input" or kind in SPIKING:
            return {name: np.eye(size)}, np.zeros(size)
        if kind in READOUTS:
            raise SpikeforgeError(f"{where}: {_readout_text(kind)}")
        if name in stack:
            raise SpikeforgeError(f"{where}: is on a cycle of linear nodes without a neuron")
        in_size = size if kind == "Flatten" else self.weight(name).shape[1]
        terms, const = self.input_sum(name, in_size, stack + (name,))
        if kind != "Flatten":
            w = self.weight(name)
            terms = {src: w @ m for src, m in terms.items()}
            const = w @ const
            if kind == "Affine":
                b = float_array(where, "bias", getattr(self.nodes[name], "bias", None), (0, 1))
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
                    f"{self.label(name)}: input from {pred!r} has {got} values, expected {in_size}"
                )
            pred_terms, pred_const = self.expr(pred, stack)
            for src, m in pred_terms.items():
                terms[src] = terms[src] + m if src in terms else m
            const = const + pred_const
        return terms, const

    def expr_sources(self, name):
        """The spike sources (Input and spiking nodes) that neuron node ``name`` depends on."""
        size = self.size(name)
        return list(self.input_sum(name, size)[0])

    # -- connections and order -------------------------------------------------------------------

    def check_connections(self):
        """Outputs fed by neurons or inputs only, no input into an Input, readouts into Outputs
        only."""
        for name, node in self.nodes.items():
            kind = node_kind(node)
            if kind == "Output":
                self._check_output(name, node)
            elif kind == "Input" and self.preds[name]:
                raise SpikeforgeError(f"{self.label(name)}: an Input node cannot have inputs")
            elif kind in READOUTS:
                for succ in self.succs[name]:
                    if self.kind(succ) != "Output":
                        raise SpikeforgeError(
                            f"{self.label(name)}: {_readout_text(kind)}, not {succ!r}"
                        )

    def _check_output(self, name, node):
        """An Output node: a sink of the size it declares, fed by neurons or inputs."""
        where = self.label(name)
        if self.succs[name]:
            raise SpikeforgeError(f"{where}: an Output node cannot feed other nodes")
        shape = node.output_type.get("output") if isinstance(node.output_type, dict) else None
        want = None if shape is None else int(np.prod(float_array(where, "shape", shape, (0, 1))))
        for pred in self.preds[name]:
            if want is not None and self.size(pred) != want:
                raise SpikeforgeError(
                    f"{where}: input from {pred!r} has {self.size(pred)} values, expected {want}"
                )
            if self.kind(pred) in LINEAR:
                raise SpikeforgeError(
                    f"{where}: fed by {pred!r} ({self.kind(pred)}); "
                    f"spikeforge observes neurons only, put an LI readout in between"
                )

    def order(self):
        """Input nodes, then neuron nodes depth first: sources before the neurons they feed, and
        the edge that closes a cycle delayed (``docs/nir.md``)."""
        inputs = [n for n in self.nodes if self.kind(n) == "Input"]
        neurons = [n for n in self.nodes if self.kind(n) in NEURONS]
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
