"""The network description: every validation rule, the API, save/load round trips."""

import copy
import json
import os
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from network_cases import random_network

from spikeforge.gen.network import Network, load_network, save_network, signed_width
from spikeforge.gen.spike_io import write_npz
from spikeforge.spec.errors import SpikeforgeError
from spikeforge.spec.params import NeuronParams

LIF = {
    "v_th": 100,
    "v_reset": 0,
    "v_rest": 0,
    "v_peak": 200,
    "t_ref": 1,
    "decay": [4],
    "reset_mode": "zero",
    "bias": 0,
}


def base():
    """A small valid network: in(3) -> hid(2) -> out(1), out -> hid recurrent.

    A deep copy every time: the populations would otherwise share the ``decay`` list of
    :data:`LIF`, and an edit of one decay term would change every later network.
    """
    network = {
        "format": "spikeforge-network/1",
        "v_width": 16,
        "w_width": 8,
        "populations": [
            {"name": "in", "kind": "input", "size": 3},
            {"name": "hid", "kind": "lif", "size": 2, **LIF, "bias": [0, 5]},
            {"name": "out", "kind": "lif", "size": 1, **LIF},
        ],
        "projections": [
            {"from": "in", "to": "hid", "weights": [[60, 10], [60, 20], [-5, 127]]},
            {"from": "hid", "to": "out", "weights": [[40], [30]]},
            {"from": "out", "to": "hid", "weights": [[-20, -20]]},
        ],
    }
    return copy.deepcopy(network)


def edit(path, value):
    """A mutation that sets (or, with value ``DELETE``, removes) ``d[path...]``."""

    def apply(d):
        target = d
        for key in path[:-1]:
            target = target[key]
        if value is DELETE:
            del target[path[-1]]
        else:
            target[path[-1]] = value(target[path[-1]]) if callable(value) else value

    return apply


DELETE = object()
P, J = "populations", "projections"

# (mutation, the exact start of the message) -- one row per rule of docs/network.md.
RULES = [
    # the top level
    (
        edit(("format",), "spikeforge-network/2"),
        "format: must be 'spikeforge-network/1', not 'spikeforge-network/2'",
    ),
    (edit(("extra",), 1), "network: unknown key 'extra'; allowed are format, v_width"),
    (edit(("populations",), DELETE), "network: missing key 'populations'"),
    (edit(("v_width",), 40), "v_width: must be an integer in [2, 32], not 40"),
    (edit(("v_width",), "16"), "v_width: must be an integer in [2, 32], not '16'"),
    (edit(("w_width",), True), "w_width: must be an integer in [2, 16], not True"),
    (edit(("w_width",), 17), "w_width: must be an integer in [2, 16], not 17"),
    (edit(("acc_width",), 49), "acc_width: must be an integer in [2, 48], not 49"),
    (edit(("acc_width",), 56), "acc_width: must be an integer in [2, 48], not 56"),
    (
        edit(("acc_width",), 8),
        "acc_width: 8 is too small for the worst-case weight sum range "
        "[-25, 157], which needs 9 bits",
    ),
    (edit((P,), {}), "populations: must be a JSON list, not dict"),
    (
        edit((P,), [{"name": "in", "kind": "input", "size": 3}]),
        "populations: must contain at least one 'lif' population",
    ),
    # populations
    (edit((P, 0), 3), "populations[0]: must be a JSON object, not int"),
    (edit((P, 0, "kind"), DELETE), "populations[0]: missing key 'kind'"),
    (
        edit((P, 0, "kind"), "izhikevich"),
        "populations[0].kind: must be one of 'input', 'lif', not 'izhikevich'",
    ),
    (edit((P, 0, "v_th"), 5), "populations[0]: unknown key 'v_th'; allowed are name, kind, size"),
    (edit((P, 2, "v_peak"), DELETE), "populations[2]: missing key 'v_peak'"),
    (edit((P, 1, "name"), "2nd"), "populations[1].name: must be 1 to 64 letters"),
    (edit((P, 1, "name"), 7), "populations[1].name: must be 1 to 64 letters"),
    (
        edit((P, 2, "name"), "hid"),
        "populations[2].name: duplicate name 'hid' (also populations[1])",
    ),
    (edit((P, 0, "size"), 0), "populations[0].size: must be an integer in [1, 1048576], not 0"),
    (edit((P, 0, "size"), 2.0), "populations[0].size: must be an integer in [1, 1048576], not 2.0"),
    # LIF parameters: the rules of NeuronParams, prefixed with the path
    (
        edit((P, 2, "v_th"), 40000),
        "populations[2]: v_th must be an integer in [-32768, 32767], not 40000",
    ),
    (
        edit((P, 2, "v_reset"), 150),
        "populations[2]: parameters must satisfy v_reset <= v_th <= v_peak, not v_reset=150",
    ),
    (edit((P, 2, "t_ref"), -1), "populations[2]: t_ref must be an integer in [0, 65535], not -1"),
    (
        edit((P, 2, "reset_mode"), "hard"),
        "populations[2]: reset_mode must be one of 'zero', 'subtract', not 'hard'",
    ),
    (edit((P, 2, "decay"), 4), "populations[2].decay: must be a JSON list of shift terms, not 4"),
    (
        edit((P, 2, "decay"), [3, 16]),
        "populations[2]: decay term must be an integer in [-15, 15], not 16",
    ),
    (
        edit((P, 2, "decay"), [1, 2, 3, 4, 5]),
        "populations[2]: decay must be a list of 0 to 4 shift terms, not 5 terms",
    ),
    (
        edit((P, 2, "syn_decay"), 2),
        "populations[2].syn_decay: must be a JSON list of shift terms, not 2",
    ),
    (
        edit((P, 2, "syn_decay"), [1, 16]),
        "populations[2]: syn_decay term must be an integer in [-15, 15], not 16",
    ),
    (
        edit((P, 2, "tau"), 1),
        "populations[2]: unknown key 'tau'; allowed are name, kind, size, "
        "v_th, v_reset, v_rest, v_peak, t_ref, decay, reset_mode, bias, "
        "syn_decay, reset_timing, threshold_compare, max_spikes",
    ),
    (
        edit((P, 2, "reset_timing"), "delayed"),
        "populations[2]: reset_timing must be one of 'same', 'next', not 'delayed'",
    ),
    (
        edit((P, 2, "threshold_compare"), "=>"),
        "populations[2]: threshold_compare must be one of '>', '>=', not '=>'",
    ),
    (
        edit((P, 2, "max_spikes"), 3),
        "populations[2].max_spikes: must be 1, not 3: a neuron fires at most once per step "
        "(for Sinabs IAF/LIF, export with spike_fn=SingleSpike)",
    ),
    (
        edit((P, 2, "bias"), 32768),
        "populations[2]: bias must be an integer in [-32768, 32767], not 32768",
    ),
    (
        edit((P, 2, "bias"), False),
        "populations[2]: bias must be an integer in [-32768, 32767], not False",
    ),
    (
        edit((P, 2, "bias"), 1.5),
        "populations[2].bias: must be an integer or a list of 1 integers, not 1.5",
    ),
    (
        edit((P, 1, "bias"), [1, 2, 3]),
        "populations[1].bias: has 3 values, the population has size 2",
    ),
    (
        edit((P, 1, "bias"), [1, -40000]),
        "populations[1].bias[1]: must be an integer in [-32768, 32767], not -40000",
    ),
    (
        edit((P, 1, "bias"), [1, 2.0]),
        "populations[1].bias[1]: must be an integer in [-32768, 32767], not 2.0",
    ),
    # per-neuron parameters
    (
        edit((P, 1, "v_th"), [100, 100, 100]),
        "populations[1].v_th: has 3 values, population 'hid' has size 2",
    ),
    (
        edit((P, 1, "v_rest"), [0, 40000]),
        "populations[1].v_rest[1]: population 'hid': must be an integer in [-32768, 32767], "
        "not 40000",
    ),
    (
        edit((P, 1, "v_reset"), [0, 1.5]),
        "populations[1].v_reset[1]: population 'hid': must be an integer in [-32768, 32767], "
        "not 1.5",
    ),
    (
        edit((P, 1, "v_th"), [100, -5]),
        "populations[1]: population 'hid': neuron 1 must satisfy v_reset <= v_th <= v_peak, "
        "not v_reset=0, v_th=-5, v_peak=200",
    ),
    (
        edit((P, 1, "v_th"), [100, 201]),
        "populations[1]: population 'hid': neuron 1 must satisfy v_reset <= v_th <= v_peak, "
        "not v_reset=0, v_th=201, v_peak=200",
    ),
    (
        edit((P, 1, "decay"), [[4], [4], [3]]),
        "populations[1].decay: has 3 lists of shift terms, population 'hid' has size 2",
    ),
    (
        edit((P, 1, "decay"), [[4], [2, 16]]),
        "populations[1].decay[1]: population 'hid': decay term must be an integer in "
        "[-15, 15], not 16",
    ),
    (
        edit((P, 1, "syn_decay"), [[1], [1, 2, 3, 4, 5]]),
        "populations[1].syn_decay[1]: population 'hid': syn_decay must be a list of 0 to 4 "
        "shift terms, not 5 terms",
    ),
    # projections
    (edit((J,), "none"), "projections: must be a JSON list, not str"),
    (edit((J, 1), []), "projections[1]: must be a JSON object, not list"),
    (
        edit((J, 1, "delay"), 1),
        "projections[1]: unknown key 'delay'; allowed are from, to, weights",
    ),
    (edit((J, 1, "weights"), DELETE), "projections[1]: missing key 'weights'"),
    (
        edit((J, 1, "from"), "hidden"),
        "projections[1].from: unknown population 'hidden'; the network has in, hid, out",
    ),
    (edit((J, 1, "to"), None), "projections[1].to: unknown population None"),
    (
        edit((J, 1, "to"), "in"),
        "projections[1].to: 'in' is an input population; a projection "
        "must end at a 'lif' population",
    ),
    (edit((J, 2, "from"), "hid"), None),  # placeholder replaced below (shape mismatch)
    (
        lambda d: d[J].append(copy.deepcopy(d[J][0])),
        "projections[3]: duplicate projection in -> hid (also projections[0]); merge the weight "
        "matrices",
    ),
    # weights
    (
        edit((J, 0, "weights"), "w.npy"),
        "projections[0].weights: must be a list of lists of "
        'integers or {"npz": FILE, "key": NAME}, not str',
    ),
    (
        edit((J, 0, "weights"), [[1, 2], [3, 4]]),
        "projections[0].weights: has 2 rows, expected 3 (size of the source)",
    ),
    (
        edit((J, 0, "weights", 1), [1, 2, 3]),
        "projections[0].weights[1]: must be a list of 2 "
        "integers (size of the target), not 3 entries",
    ),
    (
        edit((J, 0, "weights", 1), 5),
        "projections[0].weights[1]: must be a list of 2 integers (size of the target), not int",
    ),
    (
        edit((J, 0, "weights", 2, 1), 1.0),
        "projections[0].weights[2][1]: must be an integer, not 1.0",
    ),
    (
        edit((J, 0, "weights", 2, 1), True),
        "projections[0].weights[2][1]: must be an integer, not True",
    ),
    (
        edit((J, 0, "weights", 2, 1), 300),
        "projections[0].weights: value 300 at [2, 1] outside w_width=8 range [-128, 127]",
    ),
    (
        edit((J, 0, "weights", 0, 0), -129),
        "projections[0].weights: value -129 at [0, 0] outside w_width=8 range [-128, 127]",
    ),
    (
        edit((J, 0, "weights", 0, 0), 1 << 70),
        "projections[0].weights: value 1180591620717411303424 at [0, 0] outside w_width=8",
    ),
    (
        edit((J, 0, "weights"), np.zeros((3, 2))),
        "projections[0].weights: dtype float64 is not an integer type; weights are integers",
    ),
    (
        edit((J, 0, "weights"), np.zeros((2, 3), np.int8)),
        "projections[0].weights: shape (2, 3), expected (size of 'in', size of 'hid') = (3, 2)",
    ),
]
# Reconnecting hid -> hid keeps a (1, 2) matrix where (2, 2) is needed.
RULES[[r[1] for r in RULES].index(None)] = (
    edit((J, 2, "from"), "hid"),
    "projections[2].weights: has 1 rows, expected 2 (size of the source)",
)


@pytest.mark.parametrize("mutate, message", RULES, ids=[m[:50] for _, m in RULES])
def test_validation_rule(mutate, message):
    d = base()
    mutate(d)
    with pytest.raises(SpikeforgeError, match="^" + re.escape(message)) as info:
        Network.from_dict(d)
    assert "\n" not in str(info.value)


def test_base_is_valid_and_api():
    net = Network.from_dict(base())
    assert (net.v_width, net.w_width, net.n_inputs) == (16, 8, 3)
    assert [p.name for p in net.input_populations] == ["in"]
    assert [p.name for p in net.lif_populations] == ["hid", "out"]
    assert net.index("out") == 2 and net.population("hid").size == 2
    assert net.neuron_params("out") == NeuronParams(v_width=16, **{**LIF, "decay": (4,)})
    assert net.neuron_params("hid").bias == 0
    assert net.bias("hid").tolist() == [0, 5] and net.bias("hid").dtype == np.int64
    assert net.bias("out").tolist() == [0]
    assert [p.recurrent for p in net.projections] == [False, False, True]
    assert net.projections[0].weights.dtype == np.int64
    assert net.input_slice("in") == slice(0, 3)
    # hid[0]: -5 from in, -20 from out; hid[1]: -20 from out; positives 120 and 157.
    lo, hi = net.input_bounds()["hid"]
    assert lo.tolist() == [-25, -20] and hi.tolist() == [120, 157]
    assert net.required_acc_width() == 9 == net.acc_width and not net.acc_width_explicit
    with pytest.raises(SpikeforgeError, match=r"^no population named 'x'; the network has in, "):
        net.population("x")
    with pytest.raises(SpikeforgeError, match=r"^population 'in' is an input population, not "):
        net.neuron_params("in")
    with pytest.raises(SpikeforgeError, match=r"^'hid' is not an input population$"):
        net.input_slice("hid")
    with pytest.raises(ValueError, match="read-only"):
        net.projections[0].weights[0, 0] = 1


def test_syn_decay_round_trip(tmp_path):
    """A current-based population keeps its syn_decay through save and load; a plain one has no
    such key, so its file and hash are what they were before current-based populations."""
    d = base()
    d["populations"][1]["syn_decay"] = [2, -5]
    net = Network.from_dict(d)
    assert net.neuron_params("hid").syn_decay == (2, -5)
    assert net.neuron_params("out").syn_decay is None
    assert "syn_decay" not in net.population("out").to_dict()
    save_network(net, tmp_path / "n.json")
    again = load_network(tmp_path / "n.json")
    assert again == net and again.neuron_params("hid").syn_decay == (2, -5)
    plain = Network.from_dict(base())
    assert plain.network_hash() != net.network_hash()
    d["populations"][1]["syn_decay"] = []
    assert Network.from_dict(d).neuron_params("hid").syn_decay == ()
    assert Network.from_dict(d).network_hash() not in (net.network_hash(), plain.network_hash())


def test_reset_timing_and_threshold_compare_round_trip(tmp_path):
    """reset_timing and threshold_compare go through save and load; at their defaults they are
    not written, so such a file and its hash are what they were before."""
    d = base()
    d["populations"][1].update(reset_timing="next", threshold_compare=">=", max_spikes=1)
    net = Network.from_dict(d)
    params = net.neuron_params("hid")
    assert params.reset_timing == "next" and params.threshold_compare == ">="
    out = net.population("out").to_dict()
    assert "reset_timing" not in out and "threshold_compare" not in out
    save_network(net, tmp_path / "n.json")
    again = load_network(tmp_path / "n.json")
    assert again == net and again.neuron_params("hid") == params
    plain = Network.from_dict(base())
    assert plain.network_hash() != net.network_hash()
    d["populations"][1].update(reset_timing="same", threshold_compare=">")
    assert Network.from_dict(d).network_hash() == plain.network_hash()


def test_acc_width_bounds():
    # Sums over all projections into a neuron: in -> out [[127], [127]] and out -> out [[-128]].
    d = base()
    d["populations"] = [d["populations"][0], {"name": "out", "kind": "lif", "size": 1, **LIF}]
    d["projections"] = [
        {"from": "in", "to": "out", "weights": [[127], [127], [0]]},
        {"from": "out", "to": "out", "weights": [[-128]]},
    ]
    assert Network.from_dict(d).required_acc_width() == 9  # [-128, 254]
    d["acc_width"] = 9
    assert Network.from_dict(d).acc_width == 9
    d["acc_width"] = 8
    with pytest.raises(
        SpikeforgeError,
        match=re.escape(
            "acc_width: 8 is too small for the worst-case weight sum range [-128, 254], which "
            "needs 9 bits"
        ),
    ):
        Network.from_dict(d)
    d["projections"][0]["weights"] = [[0], [0], [0]]
    del d["acc_width"]
    assert Network.from_dict(d).required_acc_width() == 8  # [-128, 0]
    d["projections"] = []
    assert Network.from_dict(d).required_acc_width() == 2  # no input at all
    assert [signed_width(lo, hi) for lo, hi in [(0, 1), (-2, 1), (-3, 0), (0, 2), (-129, 0)]] == [
        2,
        2,
        3,
        3,
        9,
    ]


@pytest.fixture
def npz_net(tmp_path):
    d = base()
    write_npz(
        tmp_path / "w.npz",
        {
            "a": np.array([[60, 10], [60, 20], [-5, 127]], np.int16),
            "f": np.zeros((3, 2)),
            "b": np.zeros((3, 3), np.int8),
            "o": np.array([[0, 0], [0, 300], [0, 0]], np.int16),
        },
    )
    d["projections"][0]["weights"] = {"npz": "w.npz", "key": "a"}
    return d, tmp_path


NPZ_RULES = [
    ({"npz": "w.npz"}, "projections[0].weights: missing key 'key'"),
    (
        {"npz": "w.npz", "key": "a", "mmap": True},
        "projections[0].weights: unknown key 'mmap'; allowed are npz, key",
    ),
    ({"npz": 3, "key": "a"}, "projections[0].weights.npz: must be a file name, not 3"),
    ({"npz": "w.npz", "key": 0}, "projections[0].weights.key: must be a string, not 0"),
    (
        {"npz": "v.npz", "key": "a"},
        "projections[0].weights.npz: file 'v.npz' not found (looked for ",
    ),
    (
        {"npz": "w.npz", "key": "c"},
        "projections[0].weights.key: 'w.npz' has no array 'c' (it has: a, f, b, o)",
    ),
    ({"npz": "w.npz", "key": "f"}, "projections[0].weights: dtype float64 is not an integer type"),
    (
        {"npz": "w.npz", "key": "b"},
        "projections[0].weights: shape (3, 3), expected (size of 'in', size of 'hid') = (3, 2)",
    ),
    (
        {"npz": "w.npz", "key": "o"},
        "projections[0].weights: value 300 at [1, 1] outside w_width=8 range [-128, 127]",
    ),
    (
        {"npz": "bad.npz", "key": "a"},
        "projections[0].weights.npz: cannot read 'bad.npz' as an .npz file (",
    ),
]


@pytest.mark.parametrize("ref, message", NPZ_RULES, ids=[m[23:60] for _, m in NPZ_RULES])
def test_npz_rule(npz_net, ref, message):
    d, folder = npz_net
    (folder / "bad.npz").write_bytes(b"not a zip file")
    assert Network.from_dict(d, folder).projections[0].weights.tolist() == base()[J][0]["weights"]
    d["projections"][0]["weights"] = ref
    with pytest.raises(SpikeforgeError, match="^" + re.escape(message)):
        Network.from_dict(d, folder)


def write_json(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def test_load_errors(tmp_path):
    with pytest.raises(SpikeforgeError, match=r"^network file '.*nope.json' not found$"):
        load_network(tmp_path / "nope.json")
    text = json.dumps(base(), indent=1).replace('"in",\n', '"in"\n', 1)
    bad = write_json(tmp_path / "bad.json", text)
    line = text.splitlines().index('   "name": "in"') + 2
    with pytest.raises(
        SpikeforgeError,
        match=rf"^.*bad.json: line {line} column \d+: invalid "
        rf"JSON \(Expecting ',' delimiter\)$",
    ):
        load_network(bad)
    dup = write_json(tmp_path / "dup.json", '{"format": "a", "format": "b"}')
    with pytest.raises(SpikeforgeError, match=r"^.*dup.json: duplicate JSON key 'format'$"):
        load_network(dup)
    latin = tmp_path / "latin.json"
    latin.write_bytes(b'{"format": "\xe9"}')
    with pytest.raises(SpikeforgeError, match=r"^.*latin.json: cannot read the network file"):
        load_network(latin)
    # npz paths are relative to the JSON file, not to the working directory.
    (tmp_path / "sub").mkdir()
    d = base()
    d["projections"][1]["weights"] = {"npz": "w.npz", "key": "x"}
    write_npz(tmp_path / "sub" / "w.npz", {"x": np.array([[40], [30]])})
    net = load_network(write_json(tmp_path / "sub" / "n.json", json.dumps(d)))
    assert net.projections[1].weights.tolist() == [[40], [30]]


def test_acc_width_above_the_core_limit_is_refused_at_load(tmp_path):
    """The loader and the neuron core share one limit: a 56-bit accumulator, which the loader
    once accepted and the core refused, is refused as soon as the file is read."""
    d = base()
    d["acc_width"] = 56
    with pytest.raises(SpikeforgeError) as info:
        load_network(write_json(tmp_path / "n.json", json.dumps(d)))
    assert str(info.value) == "acc_width: must be an integer in [2, 48], not 56"


def test_to_dict_round_trip_is_exact():
    d = base()
    d["acc_width"] = 12
    net = Network.from_dict(d)
    assert net.to_dict() == d
    assert Network.from_dict(net.to_dict()) == net


@pytest.mark.parametrize("npz", [False, True, None])
def test_save_load_round_trip(tmp_path, npz):
    rng = np.random.default_rng(7)
    for k in range(6):
        net = random_network(rng, max_size=100)
        path = tmp_path / f"n{k}.json"
        save_network(net, path, npz=npz)
        again = load_network(path)
        assert again == net and again.network_hash() == net.network_hash()
        assert again.acc_width == net.acc_width
        assert again.acc_width_explicit == net.acc_width_explicit
        for a, b in zip(again.projections, net.projections):
            assert np.array_equal(a.weights, b.weights) and a.weights.dtype == np.int64
        for pop in net.lif_populations:
            assert np.array_equal(again.bias(pop.name), net.bias(pop.name))
            assert again.neuron_params(pop.name) == net.neuron_params(pop.name)
        text = path.read_text()
        has_npz = (tmp_path / f"n{k}.npz").exists()
        if npz is False:
            assert '"npz"' not in text and not has_npz
        if npz is True and net.projections:
            assert '"npz"' in text and has_npz
        if npz is None:
            big = any(p.weights.size > 4096 for p in net.projections)
            assert ('"npz"' in text) == big
        # Deterministic: the same network writes the same bytes.
        first = {
            f: (tmp_path / f).read_bytes() for f in os.listdir(tmp_path) if f.startswith(f"n{k}.")
        }
        save_network(again, path, npz=npz)
        assert first == {f: (tmp_path / f).read_bytes() for f in first}


def test_network_hash():
    net = Network.from_dict(base())
    # Pinned: the hash identifies hardware, so it must not change between versions by accident.
    assert net.network_hash() == "cc42cbac932091dc17d2c6900239cdf15cb4c6fe31acf903b3ff0ec52b924929"
    reordered = base()
    reordered["populations"][1] = dict(reversed(list(reordered["populations"][1].items())))
    assert Network.from_dict(reordered).network_hash() == net.network_hash()
    explicit = base()
    explicit["acc_width"] = 9
    assert Network.from_dict(explicit).network_hash() == net.network_hash()
    changed = base()
    changed["projections"][2]["weights"][0][1] = -19
    assert Network.from_dict(changed).network_hash() != net.network_hash()
    wider = base()
    wider["acc_width"] = 10
    assert Network.from_dict(wider).network_hash() != net.network_hash()
    assert Network.from_dict(changed) != net


def test_docs_example_is_valid(tmp_path):
    docs = os.path.join(os.path.dirname(__file__), "..", "docs", "network.md")
    with open(docs, encoding="utf-8") as file:
        text = file.read()
    example = text.split("```json\n", 1)[1].split("```", 1)[0]
    write_npz(tmp_path / "weights.npz", {"feedback": np.array([[-20, -20]], np.int8)})
    net = load_network(write_json(tmp_path / "net.json", example))
    assert net == Network.from_dict(base())


def _paths(obj, prefix=()):
    yield prefix
    items = (
        obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, list) else ()
    )
    for key, value in items:
        yield from _paths(value, prefix + (key,))


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(1 << 70), 1 << 70)
    | st.floats(allow_nan=False)
    | st.text(max_size=5)
    | st.sampled_from(["in", "hid", "out", "lif", "input"]),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=8,
)


# Small integers, in the range of the base's own values, so that some edits give a valid network
# (about one in fifteen) and the round trip of an accepted network runs in every test run.
VALUES = st.integers(-200, 200) | JSON


@settings(max_examples=120, deadline=None)
@given(st.sampled_from(list(_paths(base()))[1:]), VALUES, st.booleans())
def test_fuzzed_network_is_valid_or_one_line_error(tmp_path_factory, path, value, delete):
    """Any value anywhere gives a one-line SpikeforgeError, or a network that a save and load
    give back unchanged; never a crash."""
    d = base()
    edit(path, DELETE if delete and isinstance(path[-1], str) else value)(d)
    try:
        net = Network.from_dict(d)
    except SpikeforgeError as error:
        assert "\n" not in str(error) and re.match(r"^[a-z_\[\]0-9.]+: ", str(error))
        return
    # Accepted: then it is a network like any other, which the file format keeps exactly.
    file = tmp_path_factory.mktemp("fuzzed") / "n.json"
    save_network(net, file)
    again = load_network(file)
    assert again == net and again.network_hash() == net.network_hash()


def test_per_neuron_parameters_round_trip(tmp_path):
    """Lists stay lists through save and load, and each neuron gets its own values."""
    d = base()
    hid = d["populations"][1]
    hid.update(v_th=[90, 120], v_reset=[-3, 4], v_rest=[1, -2], decay=[[4], [3, -6]])
    hid["syn_decay"] = [[1], []]
    net = Network.from_dict(d)
    pop = net.population("hid")
    assert pop.column("v_th").tolist() == [90, 120]
    assert pop.decays() == ((4,), (3, -6))
    assert [p.v_rest for p in pop.neuron_params()] == [1, -2]
    assert [p.syn_decay for p in pop.neuron_params()] == [(1,), ()]
    assert net.population("out").column("v_th").tolist() == [100]
    save_network(net, tmp_path / "n.json")
    again = load_network(tmp_path / "n.json")
    assert again == net
    assert again.to_dict()["populations"][1]["decay"] == [[4], [3, -6]]
    assert net.network_hash() != Network.from_dict(base()).network_hash()
