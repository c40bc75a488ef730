"""Nested NIR graphs made flat (``docs/nir.md``, "Nested graphs").

A ``nir.NIRGraph`` node inside a graph (older snnTorch exports ``RLeaky`` and ``RSynaptic`` so) is
replaced by its inner nodes, named ``<subgraph>.<inner>``, and its inner edges. The subgraph's own
Input and Output nodes disappear: an edge into the subgraph goes to the targets of its Input
node, an edge out of it leaves from the sources of its Output node. nir names the subgraph node
itself in edges (``("fc", "rnn")``); some exporters name its port nodes (``("fc", "rnn.input")``);
both are understood. Deeper nesting is flattened from the inside out.
"""

import nir

from ..spec.errors import SpikeforgeError

__all__ = ["flatten_graph"]


def flatten_graph(graph):
    """``graph`` with every nested ``NIRGraph`` node replaced by its inner nodes.

    Parameters
    ----------
    graph : nir.NIRGraph

    Returns
    -------
    nir.NIRGraph
        ``graph`` itself when it has no nested graph (or is not a well-formed graph, which the
        importer then refuses); else a new flat graph with ``graph``'s metadata.

    Raises
    ------
    SpikeforgeError
        A prefixed name that collides with an existing node, or a subgraph without an Input or
        an Output node.
    """
    if not _nested(graph):
        return graph
    nodes, edges = _flat(graph, "")
    meta = graph.metadata if isinstance(graph.metadata, dict) else {}
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=dict(meta), type_check=False)


def _nested(graph):
    """Whether ``graph`` is a well-formed graph with at least one ``NIRGraph`` node."""
    return (
        isinstance(graph, nir.NIRGraph)
        and isinstance(graph.nodes, dict)
        and isinstance(graph.edges, (list, tuple))
        and any(isinstance(node, nir.NIRGraph) for node in graph.nodes.values())
    )


def _flat(graph, prefix):
    """The nodes and edges of ``graph`` (named ``prefix + name`` in messages) with its nested
    graphs flattened; its own Input and Output nodes are kept."""
    nodes, edges, ports = {}, [], {}
    for name, node in graph.nodes.items():
        if not isinstance(node, nir.NIRGraph):
            nodes[name] = node
            continue
        if not isinstance(node.nodes, dict) or not isinstance(node.edges, (list, tuple)):
            raise SpikeforgeError(
                f"NIR graph: subgraph {prefix + name!r}: nodes must be a dict and edges a list"
            )
        inner_nodes, inner_edges = _flat(node, f"{prefix}{name}.")
        ports[name] = _ports(f"{prefix}{name}", inner_nodes)
        for inner, inner_node in inner_nodes.items():
            full = f"{name}.{inner}"
            if full in graph.nodes or full in nodes:
                raise SpikeforgeError(
                    f"NIR graph: node {inner!r} of subgraph {prefix + name!r} becomes "
                    f"{prefix + full!r}, which names another node; rename one of them"
                )
            nodes[full] = inner_node
        edges += [
            (f"{name}.{edge[0]}", f"{name}.{edge[1]}") if _string_pair(edge) else edge
            for edge in inner_edges
        ]
    for edge in graph.edges:
        if _string_pair(edge):
            src, dst = edge
            edge = (_end(src, ports, "out", prefix), _end(dst, ports, "in", prefix))
        edges.append(edge)
    for name, (ins, outs) in ports.items():
        for port in ins + outs:
            edges = _contract(f"{name}.{port}", edges)
            del nodes[f"{name}.{port}"]
    return nodes, edges


def _ports(label, nodes):
    """``(inputs, outputs)``: the names of the Input and Output nodes of subgraph ``label``."""
    ins = [name for name, node in nodes.items() if isinstance(node, nir.Input)]
    outs = [name for name, node in nodes.items() if isinstance(node, nir.Output)]
    for found, kind, way in ((ins, "Input", "into"), (outs, "Output", "out of")):
        if not found:
            raise SpikeforgeError(
                f"NIR graph: subgraph {label!r} has no {kind} node, so edges {way} it "
                f"cannot be connected"
            )
    return ins, outs


def _string_pair(edge):
    """Whether ``edge`` is a pair of names (anything else is left to the importer's checks)."""
    return (
        isinstance(edge, (tuple, list)) and len(edge) == 2 and all(isinstance(e, str) for e in edge)
    )


def _end(end, ports, way, prefix):
    """The node an outer edge end means: the port node for subgraph ``g``, else ``end`` itself
    (``g.<port>`` is already the flat name of a port node)."""
    if end not in ports:
        return end
    names = ports[end][0 if way == "in" else 1]
    if len(names) != 1:
        kind = "Input" if way == "in" else "Output"
        raise SpikeforgeError(
            f"NIR graph: subgraph {prefix + end!r} has {len(names)} {kind} nodes "
            f"({', '.join(names)}); name one in the edge, e.g. {end + '.' + names[0]!r}"
        )
    return f"{end}.{names[0]}"


def _contract(port, edges):
    """``edges`` with node ``port`` taken out: each of its sources joined to each target."""
    pairs = [edge for edge in edges if _string_pair(edge)]
    srcs = [src for src, dst in pairs if dst == port and src != port]
    dsts = [dst for src, dst in pairs if src == port and dst != port]
    kept = [edge for edge in edges if not (_string_pair(edge) and port in edge)]
    return kept + [(src, dst) for src in srcs for dst in dsts]
