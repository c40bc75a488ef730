"""Every import error of ``docs/nir.md`` pinned, and a fuzz of the importer on malformed graphs:
it either succeeds or raises one :class:`SpikeforgeError`. Runtime about 13 s."""

import re

import nir
import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from spikeforge.cli.main import main
from spikeforge.gen.nir_import import import_graph, import_nir
from spikeforge.sim.quant_report import quantization_report
from spikeforge.spec.errors import SpikeforgeError

SUPPORTED = "supported are Input, Output, Affine, Linear, Flatten, LIF, IF, LI, CubaLIF, CubaLI"


def lif(n=2, **kw):
    p = dict(
        tau=np.full(n, 2e-3),
        r=np.full(n, 2.0),
        v_leak=np.zeros(n),
        v_threshold=np.ones(n),
        v_reset=np.zeros(n),
    )
    p.update({k: np.asarray(v, float) for k, v in kw.items()})
    node = nir.LIF(**{k: p[k] for k in ("tau", "r", "v_leak", "v_threshold")}, v_reset=p["v_reset"])
    return node


def cuba(n=2, **kw):
    p = dict(
        tau_syn=np.full(n, 4e-3),
        tau_mem=np.full(n, 2e-3),
        r=np.full(n, 2.0),
        v_leak=np.zeros(n),
        v_threshold=np.ones(n),
        v_reset=np.zeros(n),
    )
    p.update({k: np.asarray(v, float) for k, v in kw.items()})
    return nir.CubaLIF(**p)


def g(nodes, edges, **meta):
    meta.setdefault("dt", 1e-3)
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=meta, type_check=False)


def inp(n=2):
    return nir.Input(np.array([n]))


def chain(neuron, n_in=2, weight=None, **meta):
    w = np.full((neuron_size(neuron), n_in), 0.5) if weight is None else weight
    return g(
        {"in": inp(n_in), "fc": nir.Linear(w), "l": neuron}, [("in", "fc"), ("fc", "l")], **meta
    )


def neuron_size(node):
    return np.asarray(node.r).reshape(-1).shape[0] or 1


def forced(node, **meta):
    node.metadata = {"spikeforge_scale": 1.0, **meta}
    return node


CASES = [
    # CubaLIF parameters that spikeforge cannot represent
    (
        lambda: chain(cuba(tau_syn=[5e-4, 5e-4])),
        {},
        "node 'l' (CubaLIF): dt/tau_syn = 2 must be in [0, 1] (forward Euler with a larger step "
        "overshoots the zero current)",
    ),
    (
        lambda: chain(cuba(tau_mem=[5e-4, 5e-4])),
        {},
        "node 'l' (CubaLIF): dt/tau_mem = 2 must be in [0, 1] (forward Euler with a larger step "
        "overshoots the rest potential)",
    ),
    (
        lambda: chain(cuba(tau_syn=[2e-3, 5e-4])),
        {},
        "node 'l' (CubaLIF) (neuron 1): dt/tau_syn = 2 must be in [0, 1] (forward Euler with a "
        "larger step overshoots the zero current)",
    ),
    (lambda: chain(cuba(tau_syn=[0, 0])), {}, "node 'l' (CubaLIF): tau_syn must not be zero"),
    (
        lambda: chain(cuba(v_reset=[2, 2])),
        {},
        "node 'l' (CubaLIF): parameters must satisfy v_reset <= v_th <= v_peak, not v_reset=2032, "
        "v_th=1016, v_peak=32767",
    ),
    (
        lambda: chain(forced(cuba(), spikeforge_syn_decay="[3]")),
        {},
        "node 'l' (CubaLIF): metadata spikeforge_syn_decay [3] is 0.125, but dt/tau_syn = 0.25",
    ),
    (
        lambda: chain(forced(cuba(), spikeforge_syn_decay="x")),
        {},
        "node 'l' (CubaLIF): metadata spikeforge_syn_decay must be a JSON list of at most 4 shift "
        "terms in [-15, 15], not 'x'",
    ),
    (
        lambda: g(
            {"in": inp(), "li": nir.CubaLI(*(np.ones(2),) * 3, np.zeros(2)), "l": lif()},
            [("in", "li"), ("li", "l")],
        ),
        {},
        "node 'li' (CubaLI): a CubaLI node is a non-spiking readout; it may feed Output nodes "
        "only, not 'l'",
    ),
    (
        lambda: g({"in": inp(), "d": nir.Delay(np.ones(2))}, [("in", "d")]),
        {},
        f"node 'd' (Delay): not supported; {SUPPORTED}",
    ),
    (
        lambda: g({"in": inp(), "l": lif()}, [("in", "l")], dt=None),
        {},
        "the NIR graph has no dt in its metadata: give the forward-Euler step in seconds (--dt), "
        "the one the exporting framework assumed",
    ),
    (
        lambda: chain(lif()),
        {"dt": -1.0},
        "dt must be a positive finite number of seconds, not -1.0",
    ),
    (lambda: chain(lif()), {"v_width": 40}, "v_width must be an integer in [2, 32], not 40"),
    (lambda: chain(lif()), {"w_width": 1}, "w_width must be an integer in [2, 16], not 1"),
    (
        lambda: chain(lif()),
        {"reset_mode": "soft"},
        "reset mode must be one of zero, subtract, not 'soft'",
    ),
    (
        lambda: chain(lif()),
        {"weight_percentile": 0},
        "weight percentile must be a number in (0, 100], not 0",
    ),
    (
        lambda: g({"in": inp(), "l": lif()}, [("in", "x")]),
        {},
        "NIR graph: edge ('in', 'x') names node 'x', which does not exist",
    ),
    (
        lambda: g({"in": inp(), "l": lif()}, [("in", "l"), ("in", "l")]),
        {},
        "NIR graph: duplicate edge ('in', 'l')",
    ),
    (
        lambda: g({"in": inp(), "l": lif()}, [("in",)]),
        {},
        "NIR graph: edge ('in',) is not a (source, target) pair",
    ),
    (
        lambda: g({"in": inp(3), "l": lif()}, [("in", "l")]),
        {},
        "node 'l' (LIF): input from 'in' has 3 values, expected 2",
    ),
    (
        lambda: chain(lif(), n_in=3, weight=np.ones((2, 2))),
        {},
        "node 'fc' (Linear): input from 'in' has 3 values, expected 2",
    ),
    (
        lambda: g(
            {"in": inp(), "fc": nir.Affine(np.ones((2, 2)), np.ones(3)), "l": lif()},
            [("in", "fc"), ("fc", "l")],
        ),
        {},
        "node 'fc' (Affine): bias has 3 values, the weight (2, 2) needs 2",
    ),
    (
        lambda: g(
            {"in": inp(), "fc": nir.Linear(np.ones((2, 2, 1))), "l": lif()},
            [("in", "fc"), ("fc", "l")],
        ),
        {},
        "node 'fc' (Linear): weight must have 2 dimensions, not shape (2, 2, 1)",
    ),
    (
        lambda: chain(lif(), weight=np.array([[np.nan, 1], [1, 1]])),
        {},
        "node 'fc' (Linear): weight has a non-finite value (nan or inf)",
    ),
    (
        lambda: chain(lif(tau=[2e-3, 5e-4])),
        {},
        "node 'l' (LIF) (neuron 1): dt/tau = 2 must be in [0, 1] (forward Euler with a larger "
        "step overshoots the rest potential)",
    ),
    (
        lambda: chain(lif(v_threshold=[1, -1])),
        {},
        "node 'l' (LIF) (neuron 1): parameters must satisfy v_reset <= v_th <= v_peak, not "
        "v_reset=0, v_th=-254, v_peak=32767",
    ),
    (
        lambda: chain(lif(tau=[5e-4, 5e-4])),
        {},
        "node 'l' (LIF): dt/tau = 2 must be in [0, 1] (forward Euler with a larger step "
        "overshoots the rest potential)",
    ),
    (lambda: chain(lif(tau=[0, 0])), {}, "node 'l' (LIF): tau must not be zero"),
    (
        lambda: chain(lif(v_reset=[2, 2])),
        {},
        "node 'l' (LIF): parameters must satisfy v_reset <= v_th <= v_peak, not v_reset=508, "
        "v_th=254, v_peak=32767",
    ),
    (
        lambda: g(
            {"in": inp(), "li": nir.LI(np.ones(2), np.ones(2), np.zeros(2)), "l": lif()},
            [("in", "li"), ("li", "l")],
        ),
        {},
        "node 'li' (LI): an LI node is a non-spiking readout; it may feed Output nodes only, "
        "not 'l'",
    ),
    (
        lambda: g(
            {
                "in": inp(),
                "fc": nir.Linear(np.ones((2, 2))),
                "o": nir.Output(np.array([2])),
                "l": lif(),
            },
            [("in", "fc"), ("fc", "o"), ("in", "l")],
        ),
        {},
        "node 'o' (Output): fed by 'fc' (Linear); spikeforge observes neurons only, put an LI "
        "readout in between",
    ),
    (
        lambda: g(
            {"in": inp(), "l": lif(), "o": nir.Output(np.array([3]))}, [("in", "l"), ("l", "o")]
        ),
        {},
        "node 'o' (Output): input from 'l' has 2 values, expected 3",
    ),
    (
        lambda: g(
            {"in": inp(), "o": nir.Output(np.array([2])), "l": lif()}, [("in", "o"), ("o", "l")]
        ),
        {},
        "node 'o' (Output): an Output node cannot feed other nodes",
    ),
    (
        lambda: g({"in": inp(), "l": lif(), "in2": inp()}, [("in", "l"), ("l", "in2")]),
        {},
        "node 'in2' (Input): an Input node cannot have inputs",
    ),
    (
        lambda: g({"in": inp()}, []),
        {},
        f"NIR graph: has no neuron node (LIF, IF, LI, CubaLIF or CubaLI); {SUPPORTED}",
    ),
    (
        lambda: g(
            {
                "in": inp(),
                "a": nir.Linear(np.ones((2, 2))),
                "b": nir.Linear(np.ones((2, 2))),
                "l": lif(),
            },
            [("in", "a"), ("a", "b"), ("b", "a"), ("b", "l")],
        ),
        {},
        "node 'b' (Linear): is on a cycle of linear nodes without a neuron",
    ),
    (
        lambda: g(
            {"in": inp(), "f": nir.Flatten(input_type=None), "l": lif()}, [("f", "l"), ("in", "l")]
        ),
        {},
        "node 'f' (Flatten): needs inputs of one size, has no inputs",
    ),
    (
        lambda: g({"in": nir.Input(np.array([0])), "l": lif()}, [("in", "l")]),
        {},
        "node 'in' (Input): shape must be positive integers, not [0.0]",
    ),
    (
        lambda: g({"in": inp(), "l": nir.LIF(*(np.ones(()),) * 4)}, []),
        {},
        "node 'l' (LIF): its size cannot be told (scalar parameters and no inputs)",
    ),
    (
        lambda: chain(lif(), spikeforge_order="in"),
        {},
        "NIR graph: metadata spikeforge_order must name every Input and neuron node once, not 'in'",
    ),
    (
        lambda: chain(lif(), spikeforge_projections="l>in"),
        {},
        "NIR graph: metadata spikeforge_projections must list every source>target pair once, "
        "not 'l>in'",
    ),
    (
        lambda: chain(forced(lif(v_threshold=[1.5, 1.5]))),
        {},
        "node 'l' (LIF): v_threshold = 1.5 is not a whole number of spikeforge_scale = 1",
    ),
    (
        lambda: chain(forced(lif(v_threshold=[1e6, 1e6]))),
        {},
        "node 'l' (LIF): v_threshold = 1e+06 is 1e+06 at scale 1, outside the v_width=16 range "
        "[-32768, 32767]",
    ),
    (
        lambda: chain(forced(lif())),
        {},
        "node 'l' (LIF): weights from 'in' are not whole numbers of spikeforge_scale = 1",
    ),
    (
        lambda: chain(forced(lif()), weight=np.full((2, 2), 300.0)),
        {},
        "node 'l' (LIF): weights from 'in' reach 300, outside [-128, 127]",
    ),
    (
        lambda: chain(forced(lif(), spikeforge_decay="[9, 9, 9, 9, 9]")),
        {},
        "node 'l' (LIF): metadata spikeforge_decay must be a JSON list of at most 4 shift terms "
        "in [-15, 15], not '[9, 9, 9, 9, 9]'",
    ),
    (
        lambda: chain(forced(lif(), spikeforge_decay="[2]")),
        {},
        "node 'l' (LIF): metadata spikeforge_decay [2] is 0.25, but dt/tau = 0.5",
    ),
    (
        lambda: chain(forced(lif(tau=[2e-3, 4e-3]), spikeforge_decay="[[1], [2], [3]]")),
        {},
        "node 'l' (LIF): metadata spikeforge_decay has 3 lists of shift terms, the node has 2 "
        "neurons",
    ),
    (
        lambda: chain(forced(lif(tau=[2e-3, 4e-3]), spikeforge_decay="[[1], [1]]")),
        {},
        "node 'l' (LIF) (neuron 1): metadata spikeforge_decay [1] is 0.5, but dt/tau = 0.25",
    ),
    (
        lambda: chain(forced(lif(), spikeforge_t_ref=-1)),
        {},
        "node 'l' (LIF): metadata spikeforge_t_ref must be an integer in [0, 65535], not -1",
    ),
    (
        lambda: chain(forced(lif(), spikeforge_reset_mode="hard")),
        {},
        "node 'l' (LIF): metadata spikeforge_reset_mode must be one of zero, subtract, not 'hard'",
    ),
    (
        lambda: chain(forced(lif(), spikeforge_scale=-1.0)),
        {},
        "node 'l' (LIF): metadata spikeforge_scale must be positive, not -1",
    ),
    (
        lambda: chain(forced(lif(), spikeforge_v_peak="x")),
        {},
        "node 'l' (LIF): metadata spikeforge_v_peak must be a finite number, not 'x'",
    ),
    (
        lambda: g(
            {
                "in": inp(),
                "fc": nir.Affine(np.ones((2, 2)), np.array([1.0, 2.0])),
                "l": forced(lif(), spikeforge_bias_per_neuron=0),
            },
            [("in", "fc"), ("fc", "l")],
        ),
        {},
        "node 'l' (LIF): metadata spikeforge_bias_per_neuron is 0 but the bias differs "
        "between neurons",
    ),
    (
        lambda: chain(lif(r=[1e300, 1e300], tau=[1e-3, 1e-3]), weight=np.full((2, 2), 1e300)),
        {},
        "NIR graph: parameters beyond float64 arithmetic (overflow encountered in multiply)",
    ),
    (lambda: 5, {}, "expected a NIR graph (nir.NIRGraph), not int"),
]


@pytest.mark.parametrize("case", range(len(CASES)))
def test_error_messages(case):
    build, options, message = CASES[case]
    with pytest.raises(SpikeforgeError, match=f"^{re.escape(message)}$"):
        import_graph(build(), **options)


def test_file_errors(tmp_path):
    with pytest.raises(SpikeforgeError, match="^NIR file '.*nope.nir' not found$"):
        import_nir(tmp_path / "nope.nir")
    (tmp_path / "bad.nir").write_bytes(b"not hdf5")
    with pytest.raises(SpikeforgeError, match=r"^.*bad.nir: cannot read as a NIR graph \(.+\)$"):
        import_nir(tmp_path / "bad.nir")


def test_cli_error_is_one_line(tmp_path, capsys):
    nir.write(tmp_path / "g.nir", CASES[0][0]())
    assert main(["import", str(tmp_path / "g.nir"), "-o", str(tmp_path / "n.json")]) == 2
    err = capsys.readouterr().err
    assert err == f"spikeforge: error: {CASES[0][2]}\n"
    assert not (tmp_path / "n.json").exists()
    assert (
        main(["import", str(tmp_path / "g.nir"), "-o", str(tmp_path / "n.json"), "--steps", "0"])
        == 2
    )
    assert (
        capsys.readouterr().err
        == "spikeforge: error: --steps must be an integer in [1, 1048576], not 0\n"
    )


# -- fuzz -----------------------------------------------------------------------------------------

_values = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, width=64),
    st.sampled_from([0.0, 1e-3, 0.5, 1.0, -1.0, 2.0, 1e300]),
)


@st.composite
def _array(draw, n):
    shape = draw(st.sampled_from([(n,), (n,), (n,), (), (n + 1,), (n, 1)]))
    return np.array(
        draw(st.lists(_values, min_size=int(np.prod(shape)), max_size=int(np.prod(shape))))
    ).reshape(shape)


@st.composite
def _node(draw):
    n = draw(st.integers(1, 3))
    kind = draw(
        st.sampled_from(
            [
                "Input",
                "Output",
                "Affine",
                "Linear",
                "Flatten",
                "LIF",
                "IF",
                "LI",
                "CubaLIF",
                "Scale",
                "garbage",
            ]
        )
    )
    a = lambda: draw(_array(n))  # noqa: E731
    if kind == "Input":
        return nir.Input(np.array([draw(st.integers(-1, 3))]))
    if kind == "Output":
        return nir.Output(np.array([n]))
    if kind in ("Affine", "Linear"):
        w = np.array(draw(st.lists(_values, min_size=n * 2, max_size=n * 2))).reshape(n, 2)
        if draw(st.booleans()):
            w = w.reshape(-1)
        node = nir.Linear(np.ones((1, 1)))
        node.weight = w
        if kind == "Affine":
            node = nir.Affine(np.ones((1, 1)), np.ones(1))
            node.weight, node.bias = w, a()
        return node
    if kind == "Flatten":
        return nir.Flatten(input_type=None)
    if kind == "LIF":
        node = lif(1)
        node.tau, node.r, node.v_leak, node.v_threshold, node.v_reset = (a() for _ in range(5))
        if draw(st.booleans()):
            node.metadata = {
                "spikeforge_scale": draw(_values),
                "spikeforge_decay": draw(st.sampled_from(["[1]", "x", "[]", "[0]"])),
                "spikeforge_t_ref": draw(st.integers(-2, 3)),
            }
        return node
    if kind == "IF":
        return _if(a)
    if kind == "LI":
        node = nir.LI(np.ones(1), np.ones(1), np.zeros(1))
        node.tau, node.r, node.v_leak = a(), a(), a()
        return node
    if kind == "CubaLIF":
        node = cuba(1)
        node.tau_syn, node.tau_mem, node.r, node.w_in, node.v_threshold = (a() for _ in range(5))
        if draw(st.booleans()):
            node.metadata = {
                "spikeforge_scale": draw(_values),
                "spikeforge_syn_decay": draw(st.sampled_from(["[1]", "x", "[]", "[0]"])),
            }
        return node
    if kind == "Scale":
        return nir.Scale(np.ones(n))
    node = nir.Linear(np.ones((1, 1)))
    node.weight = "garbage"
    return node


def _if(a):
    node = nir.IF(r=np.ones(1), v_threshold=np.ones(1))
    node.r, node.v_threshold, node.v_reset = a(), a(), a()
    return node


@st.composite
def _graphs(draw):
    nodes = {f"n{i}": draw(_node()) for i in range(draw(st.integers(1, 6)))}
    names = list(nodes) + ["ghost"]
    edges = draw(st.lists(st.tuples(st.sampled_from(names), st.sampled_from(names)), max_size=10))
    meta = draw(
        st.fixed_dictionaries(
            {},
            optional={
                "dt": st.sampled_from([1e-3, 1.0, -1.0, 0.0]),
                "spikeforge_order": st.sampled_from(["n0", "n0,n1", ""]),
                "spikeforge_projections": st.sampled_from(["n0>n1", "x", ""]),
            },
        )
    )
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=meta, type_check=False)


def _import_or_one_line_error(graph, dt=None):
    """Import ``graph``: either a one-line SpikeforgeError, or a network the report can run."""
    try:
        model = import_graph(graph, dt=dt)
    except SpikeforgeError as error:
        assert "\n" not in str(error)
        event("error")
        return
    event("imported")
    report = quantization_report(model, np.ones((3, model.network.n_inputs), np.uint8), "fuzz")
    assert len(report["populations"]) == len(model.network.lif_populations)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_graphs(), st.sampled_from([None, 1e-3, 0.5]))
def test_fuzz_import_succeeds_or_raises_one_error(graph, dt):
    _import_or_one_line_error(graph, dt=dt)


def _valid_graph():
    return g(
        {
            "in": inp(2),
            "fc": nir.Affine(np.full((3, 2), 0.5), np.full(3, 0.1)),
            "a": lif(3),
            "rec": nir.Linear(np.full((3, 3), -0.2)),
            "if": nir.IF(r=np.ones(2), v_threshold=np.ones(2)),
            "w": nir.Linear(np.full((2, 3), 0.7)),
            "li": nir.LI(np.full(2, 2e-3), np.full(2, 2.0), np.zeros(2)),
            "w2": nir.Linear(np.full((2, 2), 0.3)),
            "o": nir.Output(np.array([2])),
        },
        [
            ("in", "fc"),
            ("fc", "a"),
            ("a", "rec"),
            ("rec", "a"),
            ("a", "w"),
            ("w", "if"),
            ("if", "w2"),
            ("w2", "li"),
            ("li", "o"),
        ],
    )


_FIELDS = {
    "fc": ("weight", "bias"),
    "a": ("tau", "r", "v_leak", "v_threshold", "v_reset"),
    "rec": ("weight",),
    "if": ("r", "v_threshold", "v_reset"),
    "w": ("weight",),
    "li": ("tau", "r", "v_leak"),
    "w2": ("weight",),
    "in": ("input_type",),
    "o": ("output_type",),
}


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_fuzz_mutated_valid_graph(data):
    graph = _valid_graph()
    for _ in range(data.draw(st.integers(1, 3))):
        what = data.draw(st.sampled_from(["field", "edge+", "edge-", "metadata"]))
        if what == "field":
            name = data.draw(st.sampled_from(sorted(_FIELDS)))
            key = data.draw(st.sampled_from(_FIELDS[name]))
            value = data.draw(
                st.one_of(_array(data.draw(st.integers(1, 4))), st.none(), st.just("x"), _values)
            )
            if key in ("input_type", "output_type"):
                value = {"input" if key == "input_type" else "output": value}
            setattr(graph.nodes[name], key, value)
        elif what == "edge+":
            names = sorted(graph.nodes)
            graph.edges.append(
                (data.draw(st.sampled_from(names)), data.draw(st.sampled_from(names)))
            )
        elif what == "edge-" and graph.edges:
            graph.edges.pop(data.draw(st.integers(0, len(graph.edges) - 1)))
        else:
            name = data.draw(st.sampled_from(["a", "if", "li"]))
            graph.nodes[name].metadata = {
                data.draw(
                    st.sampled_from(
                        [
                            "spikeforge_scale",
                            "spikeforge_decay",
                            "spikeforge_t_ref",
                            "spikeforge_v_peak",
                            "spikeforge_reset_mode",
                            "spikeforge_bias_per_neuron",
                            "spikeforge_v_rest",
                        ]
                    )
                ): data.draw(
                    st.one_of(
                        _values,
                        st.integers(-3, 3),
                        st.sampled_from(["[1]", "zero", "subtract", "[", "[2, -5]"]),
                    )
                )
            }
    _import_or_one_line_error(graph)
