"""Convolutions, pooling and shaped populations in NIR graphs (``docs/nir.md``, "Convolutions").

:class:`ConvChains` takes the convolutional paths out of a NIR graph before the importer of
:mod:`~spikeforge.gen.nir_import` sees it: every path from a spike source (``Input`` or spiking
node) through ``SumPool2d``/``AvgPool2d``, ``Conv2d``/``Conv1d``, ``Flatten`` and
``Affine``/``Linear`` nodes to a neuron node that has a convolution or a pool on it becomes one
``conv2d``/``conv1d`` (or pooled ``dense``) projection of ``docs/network.md``, with the
convolution's bias as the target's bias. What is left is a graph of the kinds the importer
already reads (neuron parameters of any shape flattened in C order); the importer quantizes the
chains' kernels with the other weights into each target (``projections``) and the network file
gets their geometry and the populations' shapes (``network_dict``).

:func:`add_conv_export` is the way back for :mod:`~spikeforge.gen.nir_export`.
"""

import json
from dataclasses import dataclass

import nir
import numpy as np

from ..spec.errors import SpikeforgeError
from .network_conv import ConvGeometry
from .nir_graph import NEURONS, SPIKING, Topology, float_array, metadata, node_kind, node_label
from .nir_model import FloatProjection

__all__ = ["CONV_NODES", "ConvChains", "FloatConvProjection", "add_conv_export"]

CONV_NODES = ("Conv1d", "Conv2d", "SumPool2d", "AvgPool2d")
_CHAIN_NODES = (*CONV_NODES, "Flatten", "Affine", "Linear")
# Node parameters that may be arrays of the population's shape.
_NEURON_ARRAYS = ("tau", "tau_mem", "tau_syn", "r", "v_leak", "v_threshold", "v_reset", "w_in")


@dataclass
class FloatConvProjection(FloatProjection):
    """A projection of a convolutional chain: ``weights`` are the effective float kernel
    ``(O, C/groups, kh, kw)`` (or the pooled matrix ``(C Hp Wp, size of target)`` of a pooled
    dense one), ``kind`` and ``geometry`` as in :class:`~spikeforge.gen.network_conv.ConvProjection`.
    """

    kind: str = "conv2d"
    geometry: ConvGeometry = None

    def keys(self):
        """The network-file keys of the projection besides from, to and weights."""
        g = self.geometry
        one_d = self.kind == "conv1d"
        out = {"kind": self.kind}
        out["in_shape"] = [g.in_shape[0], g.in_shape[2]] if one_d else list(g.in_shape)
        if self.kind != "dense":
            for key in ("kernel", "stride", "padding", "dilation"):
                pair = [int(v) for v in getattr(g, key)]
                out[key] = pair[1] if one_d else pair
            out["out_channels"] = g.out_channels
            out["groups"] = g.groups
        out["pool"] = int(g.pool[1]) if one_d else [int(v) for v in g.pool]
        return out


@dataclass
class _Chain:
    """One convolutional path: source node, target node, the float kernel or pooled matrix at
    NIR scale, the geometry, the kind and the bias it adds to the target (per target neuron)."""

    source: str
    target: str
    kind: str
    weights: np.ndarray
    geometry: ConvGeometry
    bias: np.ndarray


class ConvChains:
    """The convolutional paths of a NIR graph and the graph without them.

    Parameters
    ----------
    graph : nir.NIRGraph

    Attributes
    ----------
    graph : nir.NIRGraph
        ``graph`` itself when it has no convolution or pool; else the rewritten graph.
    chains : list of _Chain
    """

    def __init__(self, graph):
        self.graph = graph
        self.chains = []
        self.shapes = {}
        kinds = {name: node_kind(node) for name, node in graph.nodes.items()}
        if not any(kind in CONV_NODES for kind in kinds.values()):
            return
        self.preds = {name: [] for name in graph.nodes}
        self.succs = {name: [] for name in graph.nodes}
        for src, dst in graph.edges:
            self.preds[dst].append(src)
            self.succs[src].append(dst)
        self.kinds = kinds
        for name, kind in kinds.items():
            if kind == "Input":
                shape = np.asarray(graph.nodes[name].input_type.get("input"), np.int64)
                if shape.ndim == 1 and shape.size in (2, 3):
                    self.shapes[name] = tuple(int(v) for v in shape)
        removed_nodes, removed_edges = set(), set()
        for name in self._neuron_order():
            for pred in list(self.preds[name]):
                path = self._path(name, pred)
                if path is None:
                    continue
                source, ops = path
                self.chains.append(self._chain(source, name, ops))
                removed_nodes.update(ops)
                removed_edges.update(zip([source, *ops], [*ops, name]))
        self.graph = self._rewrite(graph, removed_nodes, removed_edges)

    # -- finding the chains ----------------------------------------------------------------------

    def _neuron_order(self):
        """Neuron nodes with sources before targets along convolutional paths, so that a
        source's shape is known before the chains out of it are read."""
        done, out = set(), []

        def visit(name, stack):
            if name in done or name in stack:
                return
            for src in self._sources(name):
                if self.kinds[src] in NEURONS:
                    visit(src, stack | {name})
            done.add(name)
            out.append(name)

        for name, kind in self.kinds.items():
            if kind in NEURONS:
                visit(name, frozenset())
        return out

    def _sources(self, name):
        """The spike sources at the start of the linear paths into ``name``."""
        out, todo = [], list(self.preds[name])
        while todo:
            p = todo.pop()
            if self.kinds[p] in _CHAIN_NODES:
                todo.extend(self.preds[p])
            else:
                out.append(p)
        return out

    def _path(self, target, pred):
        """``(source, ops)`` of the path ending ``pred -> target`` if it has a convolution or a
        pool on it, else None. Such a path must be a plain chain (one input, one output)."""
        ops, node = [], pred
        while self.kinds[node] in _CHAIN_NODES:
            ops.insert(0, node)
            if len(self.preds[node]) != 1:
                if any(self.kinds[n] in CONV_NODES for n in ops):
                    raise SpikeforgeError(
                        f"{node_label(node, self.kinds[node])}: a node on a convolutional "
                        f"path must have exactly one input, not {len(self.preds[node])}"
                    )
                return None
            node = self.preds[node][0]
        if not any(self.kinds[n] in CONV_NODES for n in ops):
            return None
        for n in ops:
            if len(self.succs[n]) != 1:
                raise SpikeforgeError(
                    f"{node_label(n, self.kinds[n])}: a node on a convolutional path must feed "
                    f"exactly one node, not {len(self.succs[n])}"
                )
        if self.kinds[node] not in SPIKING and self.kinds[node] != "Input":
            raise SpikeforgeError(
                f"{node_label(node, self.kinds[node])}: a convolutional path must start at an "
                "Input or a spiking node"
            )
        return node, ops

    # -- reading one chain -----------------------------------------------------------------------

    def _chain(self, source, target, ops):
        """The :class:`_Chain` of the ops ``source -> ops -> target``."""
        nodes = self.graph.nodes
        shape = self.shapes.get(source) or self._node_shape(source)
        pool, scale, rest = (1, 1), 1.0, list(ops)
        if self.kinds[rest[0]] in ("SumPool2d", "AvgPool2d"):
            pool = self._pool(rest.pop(0))
            if self.kinds[ops[0]] == "AvgPool2d":
                # docs/network.md: the 1/k^2 of an average pool goes into the next weights.
                scale = 1.0 / (pool[0] * pool[1])
        where = (
            node_label(rest[0], self.kinds[rest[0]])
            if rest
            else node_label(ops[0], self.kinds[ops[0]])
        )
        if shape is None:
            raise SpikeforgeError(f"{where}: the shape of its input {source!r} is not known")
        if len(shape) == 2:
            shape = (shape[0], 1, shape[1])
        kinds = [self.kinds[n] for n in rest]
        if kinds and kinds[0] in ("Conv1d", "Conv2d") and len(kinds) == 1:
            node = nodes[rest[0]]
            kind = kinds[0].lower()
            geometry, kernel = self._conv(where, node, kind, shape, pool)
            bias = float_array(where, "bias", getattr(node, "bias", None), (0, 1))
            bias = np.repeat(
                np.broadcast_to(bias, (geometry.out_channels,)),
                geometry.n_out // geometry.out_channels,
            )
            self.shapes[target] = (
                geometry.out_shape if kind == "conv2d" else geometry.out_shape[::2]
            )
            return _Chain(source, target, kind, kernel * scale, geometry, bias)
        while kinds and kinds[0] == "Flatten":
            kinds.pop(0)
            rest.pop(0)
        if kinds in (["Affine"], ["Linear"]):
            geometry = ConvGeometry(shape, pool, conv=False)
            node = nodes[rest[0]]
            w = float_array(where, "weight", node.weight, (2,))
            if w.shape[1] != geometry.n_pooled:
                raise SpikeforgeError(
                    f"{where}: weight {w.shape} needs {w.shape[1]} inputs, the pooled input "
                    f"{list(geometry.pooled)} has {geometry.n_pooled}"
                )
            bias = np.zeros(w.shape[0])
            if kinds[0] == "Affine":
                bias = np.broadcast_to(
                    float_array(where, "bias", node.bias, (0, 1)), (w.shape[0],)
                ).copy()
            return _Chain(source, target, "dense", w.T * scale, geometry, bias)
        raise SpikeforgeError(
            f"{where}: spikeforge reads a convolutional path as an optional SumPool2d or "
            f"AvgPool2d, then one Conv2d or Conv1d, or Flatten and one Affine or Linear; not "
            f"{' -> '.join(self.kinds[n] for n in ops)}"
        )

    def _node_shape(self, name):
        """The shape of a neuron node's parameters (or metadata ``spikeforge_shape``)."""
        node = self.graph.nodes[name]
        text = metadata(node).get("spikeforge_shape")
        if isinstance(text, str):
            return tuple(json.loads(text))
        for key in _NEURON_ARRAYS:
            value = getattr(node, key, None)
            if value is not None and np.ndim(value) in (2, 3):
                return tuple(np.shape(value))
        return None

    def _pool(self, name):
        """The ``(ky, kx)`` window of a pool node; its stride must equal it, padding 0."""
        node, where = self.graph.nodes[name], node_label(name, self.kinds[name])
        kernel = np.broadcast_to(float_array(where, "kernel_size", node.kernel_size, (0, 1)), (2,))
        stride = np.broadcast_to(float_array(where, "stride", node.stride, (0, 1)), (2,))
        padding = np.broadcast_to(float_array(where, "padding", node.padding, (0, 1)), (2,))
        if (stride != kernel).any() or padding.any() or (kernel < 1).any():
            raise SpikeforgeError(
                f"{where}: spikeforge pools with stride = kernel_size and no padding, not "
                f"kernel_size {kernel.tolist()}, stride {stride.tolist()}, padding "
                f"{padding.tolist()}"
            )
        return tuple(int(v) for v in kernel)

    def _conv(self, where, node, kind, shape, pool):
        """The :class:`ConvGeometry` and float kernel of a Conv1d/Conv2d node."""
        w = float_array(where, "weight", node.weight, (3,) if kind == "conv1d" else (4,))
        dims = 1 if kind == "conv1d" else 2

        def pair(key, default):
            value = getattr(node, key, default)
            arr = np.broadcast_to(np.atleast_1d(np.asarray(value, np.int64)), (dims,))
            return (
                (1 if key != "padding" else 0, int(arr[0]))
                if dims == 1
                else tuple(int(v) for v in arr)
            )

        kernel = (1, w.shape[2]) if dims == 1 else (w.shape[2], w.shape[3])
        stride, dilation = pair("stride", 1), pair("dilation", 1)
        padding = getattr(node, "padding", 0)
        if isinstance(padding, str):
            if padding == "valid":
                padding = 0
            elif all(s == 1 for s in stride) and all(
                d * (k - 1) % 2 == 0 for d, k in zip(dilation, kernel)
            ):
                padding = [d * (k - 1) // 2 for d, k in zip(dilation, kernel)][2 - dims :]
            else:
                raise SpikeforgeError(
                    f"{where}: padding 'same' needs stride 1 and an odd dilated kernel"
                )
        node_pad = padding
        padding = pair("padding", 0) if not isinstance(node_pad, (list, tuple)) else None
        if padding is None:
            arr = np.broadcast_to(np.asarray(node_pad, np.int64), (dims,))
            padding = (0, int(arr[0])) if dims == 1 else tuple(int(v) for v in arr)
        groups = int(np.asarray(getattr(node, "groups", 1)))
        c = shape[0]
        if groups < 1 or c % groups or w.shape[0] % groups or w.shape[1] * groups != c:
            raise SpikeforgeError(
                f"{where}: weight {w.shape} with groups {groups} does not fit an input of "
                f"{c} channels"
            )
        geometry = ConvGeometry(shape, pool, w.shape[0], kernel, stride, padding, dilation, groups)
        if min(geometry.out_shape[1:]) < 1:
            raise SpikeforgeError(f"{where}: the kernel does not fit its input {list(shape)}")
        return geometry, w

    # -- the rewritten graph ---------------------------------------------------------------------

    def _rewrite(self, graph, removed_nodes, removed_edges):
        """``graph`` without the chains' nodes and edges, neuron parameters flattened, each
        chain's bias as an input-less Affine, and the order and projection metadata of the
        whole graph."""
        nodes = {}
        for name, node in graph.nodes.items():
            if name in removed_nodes:
                continue
            if self.kinds[name] in NEURONS:
                node = self._flat_neuron(name, node)
            nodes[name] = node
        edges = [tuple(e) for e in graph.edges if tuple(e) not in removed_edges]
        for chain in self.chains:
            if chain.bias.any():
                name = f"{chain.target}:conv_bias:{chain.source}"
                nodes[name] = nir.Affine(
                    weight=np.zeros((chain.bias.size, 1)), bias=chain.bias.astype(np.float64)
                )
                edges.append((name, chain.target))
        meta = dict(metadata(graph))
        if "spikeforge_order" not in meta:
            meta["spikeforge_order"] = ",".join(self._order(nodes, edges, meta))
        given = meta.get("spikeforge_projections")
        if isinstance(given, str):
            pairs = {f"{c.source}>{c.target}" for c in self.chains}
            self.projection_order = [item for item in given.split(",") if item]
            meta["spikeforge_projections"] = ",".join(
                item for item in self.projection_order if item not in pairs
            )
        else:
            self.projection_order = None
        return nir.NIRGraph(nodes=nodes, edges=edges, metadata=meta, type_check=False)

    def _flat_neuron(self, name, node):
        """A copy of neuron ``node`` with every parameter flattened (C order), scalars
        broadcast to a chain target's size."""
        shape = self.shapes.get(name) or self._node_shape(name)
        if shape is not None:
            self.shapes.setdefault(name, tuple(shape))
        size = int(np.prod(shape)) if shape is not None else None
        args = {}
        for key in node.__dataclass_fields__:
            if key in ("input_type", "output_type", "metadata"):
                continue
            value = getattr(node, key)
            if key in _NEURON_ARRAYS and value is not None:
                value = np.asarray(value, np.float64)
                value = value.reshape(-1) if value.ndim > 1 else value
                if size is not None and value.size <= 1:
                    value = np.full(size, float(value.reshape(-1)[0]) if value.size else 0.0)
            args[key] = value
        return type(node)(**args, metadata=dict(getattr(node, "metadata", {}) or {}))

    def _order(self, nodes, edges, meta):
        """Input and neuron nodes in the order of ``Topology.order`` on the whole graph: the
        remaining linear paths and the chains."""
        topo = Topology(nodes, edges, {})
        inputs = [n for n in nodes if topo.kind(n) == "Input"]
        neurons = [n for n in nodes if topo.kind(n) in NEURONS]
        targets = {n: [] for n in inputs + neurons}
        for n in neurons:
            for src in topo.expr_sources(n):
                if src in targets:
                    targets[src].append(n)
        for chain in self.chains:
            targets[chain.source].append(chain.target)
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
        return inputs + [n for n in post[::-1] if n not in inputs]

    # -- hooks of the importer -------------------------------------------------------------------

    def projections(self, projections, names, gain):
        """``projections`` (the importer's) with one :class:`FloatConvProjection` per chain,
        in the order of the graph's ``spikeforge_projections`` metadata, else by target then
        source like the others."""
        if not self.chains:
            return projections
        out = list(projections)
        for chain in self.chains:
            g = gain[chain.target]
            if not (g == g[0]).all():
                raise SpikeforgeError(
                    f"{node_label(chain.target, self.kinds[chain.target])}: a convolution's "
                    "target needs one input gain (r, w_in) for every neuron"
                )
            out.append(
                FloatConvProjection(
                    names[chain.source],
                    names[chain.target],
                    chain.weights * g[0],
                    kind=chain.kind,
                    geometry=chain.geometry,
                )
            )
        if self.projection_order is not None:
            rank = {item: k for k, item in enumerate(self.projection_order)}
            node_of = {v: k for k, v in names.items()}
            out.sort(key=lambda p: rank.get(f"{node_of[p.source]}>{node_of[p.target]}", 0))
        else:
            order = list(names.values())
            out.sort(key=lambda p: (order.index(p.target), order.index(p.source)))
        return out

    def network_dict(self, d, names, projections):
        """The importer's network file ``d`` with the chains' geometry and the shapes."""
        if not self.chains:
            return d
        for pop in d["populations"]:
            node = next(k for k, v in names.items() if v == pop["name"])
            if node in self.shapes and len(self.shapes[node]) > 1:
                pop["shape"] = [int(v) for v in self.shapes[node]]
        for spec, proj in zip(d["projections"], projections):
            if isinstance(proj, FloatConvProjection):
                spec.update(proj.keys())
        return d


def add_conv_export(nodes, net, proj, carries_bias):
    """Add the NIR nodes of a :class:`~spikeforge.gen.network_conv.ConvProjection` to
    ``nodes`` (the export of ``net`` under way) and return the edges of its chain.

    The chain is an optional SumPool2d, then a Conv2d/Conv1d (bias 0) or a Flatten and an
    Affine/Linear. When ``carries_bias`` (the first projection into the target) the target's
    bias rides on the Affine, or is the convolution's (one value per channel). The shapes of
    the two populations go into their nodes (an Input's shape, a neuron node's
    ``spikeforge_shape`` metadata).
    """
    g = proj.geometry
    base = f"{proj.source}->{proj.target}"
    for pop in (net.population(proj.source), net.population(proj.target)):
        if pop.shape is None:
            continue
        shape = np.array(pop.shape)
        if pop.is_input:
            nodes[pop.name] = nir.Input(input_type=shape)
            continue
        # NIR's type inference wants the neuron's parameters, and its Output, in the shape.
        node = nodes[pop.name]
        node.metadata["spikeforge_shape"] = json.dumps(list(pop.shape))
        for key in _NEURON_ARRAYS:
            value = getattr(node, key, None)
            if isinstance(value, np.ndarray) and value.size == pop.size:
                setattr(node, key, value.reshape(pop.shape))
        node.input_type = {"input": shape}
        node.output_type = {"output": shape}
        nodes[f"{pop.name}:out"] = nir.Output(output_type=shape)
    chain = []
    if g.pool != (1, 1):
        k = np.array(g.pool)
        chain.append((f"{base}:pool", nir.SumPool2d(kernel_size=k, stride=k, padding=np.zeros(2))))
    w = proj.weights.astype(np.float64)
    bias = net.population(proj.target).bias.astype(np.float64) if carries_bias else None
    if proj.kind == "dense":
        chain.append(
            (f"{base}:flatten", nir.Flatten(input_type={"input": np.array(g.pooled)}, start_dim=0))
        )
        node = nir.Linear(weight=w.T) if bias is None else nir.Affine(weight=w.T, bias=bias)
        chain.append((base, node))
    else:
        args = dict(weight=w, groups=g.groups, bias=_channel_bias(proj, bias, g))
        if proj.kind == "conv2d":
            node = nir.Conv2d(
                input_shape=tuple(g.pooled[1:]),
                stride=g.stride,
                padding=g.padding,
                dilation=g.dilation,
                **args,
            )
        else:
            node = nir.Conv1d(
                input_shape=g.pooled[2],
                stride=g.stride[1],
                padding=g.padding[1],
                dilation=g.dilation[1],
                **args,
            )
        chain.append((base, node))
    names = [proj.source]
    for name, node in chain:
        nodes[name] = node
        names.append(name)
    names.append(proj.target)
    return list(zip(names[:-1], names[1:]))


def _channel_bias(proj, bias, g):
    """The per-channel bias of a Conv node carrying the target's ``bias`` (zeros if None),
    which must be one value per output channel: NIR has no other way into a shaped node."""
    if bias is None:
        return np.zeros(g.out_channels)
    per_channel = bias.reshape(g.out_channels, -1)
    if not (per_channel == per_channel[:, :1]).all():
        raise SpikeforgeError(
            f"population {proj.target!r}: its bias differs within an output channel, which a "
            f"NIR {proj.kind.capitalize()} bias cannot express"
        )
    return per_channel[:, 0].copy()
