"""Nested NIR graphs (``docs/nir.md``, "Nested graphs"): flattened before import, they give the
network of the equivalent flat graph; the refusals are pinned. Runtime about 2 s."""

import nir
import numpy as np
import pytest

from spikeforge.cli.main import main
from spikeforge.gen.nir_flatten import flatten_graph
from spikeforge.gen.nir_import import import_graph, import_nir
from spikeforge.spec.errors import SpikeforgeError

RNG = np.random.default_rng(11)
W_IN = RNG.uniform(0.2, 1.0, (4, 3))
B_IN = RNG.uniform(-0.1, 0.1, 4)
W_REC = RNG.uniform(-0.5, 0.5, (4, 4))
W_MID = RNG.uniform(0.2, 1.0, (3, 4))
W_SYN = RNG.uniform(-0.5, 0.5, (3, 3))
B_SYN = RNG.uniform(-0.1, 0.1, 3)
W_OUT = RNG.uniform(0.2, 1.0, (2, 3))


def lif(n, threshold=1.0):
    return nir.LIF(
        tau=np.full(n, 4e-3),
        r=np.full(n, 2.0),
        v_leak=np.zeros(n),
        v_threshold=np.full(n, threshold),
        v_reset=np.zeros(n),
    )


def cuba(n):
    return nir.CubaLIF(
        tau_syn=np.full(n, 4e-3),
        tau_mem=np.full(n, 2e-3),
        r=np.full(n, 2.0),
        v_leak=np.zeros(n),
        v_threshold=np.full(n, 0.8),
        v_reset=np.zeros(n),
        w_in=np.ones(n),
    )


def rleaky():
    """The subgraph older snnTorch exports for an ``RLeaky``."""
    return nir.NIRGraph(
        nodes={
            "input": nir.Input(np.array([4])),
            "lif": lif(4, 1.5),
            "w_rec": nir.Linear(W_REC),
            "output": nir.Output(np.array([4])),
        },
        edges=[("input", "lif"), ("lif", "w_rec"), ("w_rec", "lif"), ("lif", "output")],
    )


def rsynaptic():
    """The subgraph older snnTorch exports for an ``RSynaptic`` (recurrent weights with bias)."""
    return nir.NIRGraph(
        nodes={
            "input": nir.Input(np.array([3])),
            "lif": cuba(3),
            "w_rec": nir.Affine(W_SYN, B_SYN),
            "output": nir.Output(np.array([3])),
        },
        edges=[("input", "lif"), ("lif", "w_rec"), ("w_rec", "lif"), ("lif", "output")],
    )


def outer_nodes(rnn, rsyn):
    return {
        "in": nir.Input(np.array([3])),
        "fc1": nir.Affine(W_IN, B_IN),
        "rnn": rnn,
        "fc2": nir.Linear(W_MID),
        "rsyn": rsyn,
        "fc3": nir.Affine(W_OUT, np.zeros(2)),
        "l": lif(2),
        "out": nir.Output(np.array([2])),
    }


def nested(ports=False):
    """Input -> Affine -> RLeaky -> Linear -> RSynaptic -> Affine -> LIF -> Output.

    The edges name the subgraphs themselves (nir's convention, which its type check accepts),
    or with ``ports`` the subgraphs' Input and Output nodes (``rsyn.input``), as some exporters
    do (nir's type check refuses those names).
    """
    rsyn_in, rsyn_out = ("rsyn.input", "rsyn.output") if ports else ("rsyn", "rsyn")
    return nir.NIRGraph(
        nodes=outer_nodes(rleaky(), rsynaptic()),
        edges=[
            ("in", "fc1"),
            ("fc1", "rnn.input" if ports else "rnn"),
            ("rnn.output" if ports else "rnn", "fc2"),
            ("fc2", rsyn_in),
            (rsyn_out, "fc3"),
            ("fc3", "l"),
            ("l", "out"),
        ],
        metadata={"dt": 1e-3},
        type_check=not ports,
    )


def flat():
    """The same network written flat by hand."""
    nodes = outer_nodes(None, None)
    del nodes["rnn"], nodes["rsyn"]
    nodes.update(
        {
            "rnn.lif": lif(4, 1.5),
            "rnn.w_rec": nir.Linear(W_REC),
            "rsyn.lif": cuba(3),
            "rsyn.w_rec": nir.Affine(W_SYN, B_SYN),
        }
    )
    edges = [
        ("in", "fc1"),
        ("fc1", "rnn.lif"),
        ("rnn.lif", "rnn.w_rec"),
        ("rnn.w_rec", "rnn.lif"),
        ("rnn.lif", "fc2"),
        ("fc2", "rsyn.lif"),
        ("rsyn.lif", "rsyn.w_rec"),
        ("rsyn.w_rec", "rsyn.lif"),
        ("rsyn.lif", "fc3"),
        ("fc3", "l"),
        ("l", "out"),
    ]
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata={"dt": 1e-3}, type_check=False)


@pytest.mark.parametrize("ports", [False, True])
def test_nested_graph_imports_as_the_flat_graph(ports):
    got = import_graph(nested(ports)).network
    want = import_graph(flat()).network
    assert got == want
    assert [p.name for p in got.populations] == ["in", "rnn_lif", "rsyn_lif", "l"]
    pairs = [(p.source, p.target, p.recurrent) for p in got.projections]
    assert ("rnn_lif", "rnn_lif", True) in pairs and ("rsyn_lif", "rsyn_lif", True) in pairs
    assert ("in", "rnn_lif", False) in pairs and ("rsyn_lif", "l", False) in pairs
    assert (
        got.population("rsyn_lif").params.syn_decay
        and not got.population("rnn_lif").params.syn_decay
    )
    # The recurrent Affine's bias and the input Affine's bias reach the populations they feed.
    assert got.bias("rnn_lif").any() and got.bias("rsyn_lif").any()


@pytest.mark.parametrize("ports", [False, True])
def test_flat_names_edges_and_ports_gone(ports):
    g = flatten_graph(nested(ports))
    assert sorted(g.nodes) == sorted(flat().nodes)
    assert sorted(g.edges) == sorted(flat().edges)
    assert g.metadata == {"dt": 1e-3}
    plain = flat()
    assert flatten_graph(plain) is plain


@pytest.mark.parametrize("ports", [False, True])
def test_written_and_read_back(tmp_path, ports):
    nir.write(tmp_path / "g.nir", nested(ports))
    assert import_nir(tmp_path / "g.nir").network == import_graph(flat()).network


def test_deeper_nesting():
    # The RLeaky subgraph wrapped once more: "outer.rnn.lif" after flattening.
    wrapper = nir.NIRGraph(
        nodes={"i": nir.Input(np.array([4])), "rnn": rleaky(), "o": nir.Output(np.array([4]))},
        edges=[("i", "rnn"), ("rnn", "o")],
    )
    g = nested()
    g.nodes["rnn"] = wrapper
    got = flatten_graph(g)
    assert {"rnn.rnn.lif", "rnn.rnn.w_rec"} <= set(got.nodes)
    assert ("fc1", "rnn.rnn.lif") in got.edges and ("rnn.rnn.lif", "fc2") in got.edges
    assert ("rnn.rnn.w_rec", "rnn.rnn.lif") in got.edges
    net = import_graph(got).network
    assert [p.name for p in net.populations] == ["in", "rnn_rnn_lif", "rsyn_lif", "l"]


def collision():
    g = nested()
    g.nodes["rnn.lif"] = lif(4)
    return g


def no_input():
    g = nested()
    del g.nodes["rnn"].nodes["input"]
    g.nodes["rnn"].edges.remove(("input", "lif"))
    return g


def no_output():
    g = nested()
    del g.nodes["rsyn"].nodes["output"]
    g.nodes["rsyn"].edges.remove(("lif", "output"))
    return g


def two_inputs():
    g = nested()
    g.nodes["rnn"].nodes["extra"] = nir.Input(np.array([4]))
    return g


ERRORS = [
    (
        collision,
        "NIR graph: node 'lif' of subgraph 'rnn' becomes 'rnn.lif', which names another node; "
        "rename one of them",
    ),
    (
        no_input,
        "NIR graph: subgraph 'rnn' has no Input node, so edges into it cannot be connected",
    ),
    (
        no_output,
        "NIR graph: subgraph 'rsyn' has no Output node, so edges out of it cannot be connected",
    ),
    (
        two_inputs,
        "NIR graph: subgraph 'rnn' has 2 Input nodes (input, extra); name one in the edge, "
        "e.g. 'rnn.input'",
    ),
]


@pytest.mark.parametrize(("make", "message"), ERRORS, ids=[e[0].__name__ for e in ERRORS])
def test_errors(make, message):
    with pytest.raises(SpikeforgeError) as info:
        import_graph(make())
    assert str(info.value) == message


def test_nested_error_names_the_full_path():
    g = nested()
    inner = rleaky()
    del inner.nodes["output"]
    inner.edges.remove(("lif", "output"))
    g.nodes["rnn"] = nir.NIRGraph(
        nodes={"i": nir.Input(np.array([4])), "deep": inner, "o": nir.Output(np.array([4]))},
        edges=[("i", "deep"), ("deep", "o")],
        type_check=False,
    )
    with pytest.raises(SpikeforgeError) as info:
        import_graph(g)
    assert str(info.value) == (
        "NIR graph: subgraph 'rnn.deep' has no Output node, so edges out of it cannot be connected"
    )


def test_cli_import_and_error_exit(tmp_path, capsys):
    nir.write(tmp_path / "g.nir", nested())
    assert main(["import", str(tmp_path / "g.nir"), "-o", str(tmp_path / "n.json")]) == 0
    assert (tmp_path / "n.json").exists()
    capsys.readouterr()
    nir.write(tmp_path / "bad.nir", collision())
    assert main(["import", str(tmp_path / "bad.nir"), "-o", str(tmp_path / "m.json")]) == 2
    assert capsys.readouterr().err == f"spikeforge: error: {ERRORS[0][1]}\n"
    assert not (tmp_path / "m.json").exists()


def test_cli_subgraph_without_ports(tmp_path, capsys):
    # An empty subgraph is written and read back as it is: refused by the flattening.
    g = nested()
    g.nodes["rnn"] = nir.NIRGraph(nodes={}, edges=[], type_check=False)
    nir.write(tmp_path / "empty.nir", g)
    assert main(["import", str(tmp_path / "empty.nir"), "-o", str(tmp_path / "n.json")]) == 2
    assert capsys.readouterr().err == f"spikeforge: error: {ERRORS[1][1]}\n"
    # nir's reader type-checks every subgraph (whatever type_check says), so a recurrent
    # subgraph without its Input node is already refused while reading.
    nir.write(tmp_path / "cyclic.nir", no_input())
    assert main(["import", str(tmp_path / "cyclic.nir"), "-o", str(tmp_path / "n.json")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(
        f"spikeforge: error: {tmp_path / 'cyclic.nir'}: cannot read as a NIR graph "
        "(Failed to start type inference: No input nodes found."
    )
    assert err.count("\n") == 1 and not (tmp_path / "n.json").exists()
