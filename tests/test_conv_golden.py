"""Convolutional projections (``docs/network.md``, "Convolutions"): the loader, the geometry
against a convolution written from its definition, and the event-driven golden model against
the unrolled dense network."""

import json

import numpy as np
import pytest
from conv_cases import (
    conv_out_shape,
    draw_geometry,
    lif,
    random_conv_network,
    reference_conv,
    scaled,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from spikeforge.gen.network import Network, load_network, save_network
from spikeforge.gen.network_conv import ConvProjection
from spikeforge.sim import golden_conv
from spikeforge.sim.golden_conv import ConvDelivery
from spikeforge.sim.network_golden import run_network
from spikeforge.spec.errors import SpikeforgeError


def unrolled(net):
    """The same network with every projection a dense matrix (and no shapes)."""
    d = net.to_dict()
    for pop in d["populations"]:
        pop.pop("shape", None)
    d["projections"] = [
        {
            "from": proj.source,
            "to": proj.target,
            "weights": (proj.dense() if isinstance(proj, ConvProjection) else proj.weights),
        }
        for proj in net.projections
    ]
    return Network.from_dict(d)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_geometry_matches_definition(seed):
    """dense() of a random conv2d with pool equals the convolution computed by its formula."""
    rng = np.random.default_rng(seed)
    d = random_conv_network(rng, draw_geometry, recurrent=False)
    net = Network.from_dict(d)
    proj = net.projections[0]
    spec = d["projections"][0]
    x = rng.integers(0, 2, net.populations[0].shape)
    want = reference_conv(
        x,
        np.array(spec["weights"]),
        spec["stride"],
        spec["padding"],
        spec["dilation"],
        spec["groups"],
        spec["pool"],
    )
    assert want.shape == net.population("c1").shape
    np.testing.assert_array_equal(x.reshape(-1) @ proj.dense(), want.reshape(-1))


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), batch=st.sampled_from([1, 3]))
def test_golden_equals_unrolled(seed, batch):
    """Random conv/pool/dense/recurrent networks: the event-driven run is bit-exact with the
    dense run of the unrolled network, and the accumulator widths agree."""
    rng = np.random.default_rng(seed)
    net = Network.from_dict(random_conv_network(rng, draw_geometry))
    dense = unrolled(net)
    assert net.required_acc_width() == dense.required_acc_width()
    for lo_hi, dense_lo_hi in zip(net.input_bounds().values(), dense.input_bounds().values()):
        np.testing.assert_array_equal(lo_hi, dense_lo_hi)
    spikes = (rng.random((batch, 12, net.n_inputs)) < 0.4).astype(np.uint8)
    got = run_network(net, spikes, trace=True)
    want = run_network(dense, spikes, trace=True)
    for name in want.spikes:
        np.testing.assert_array_equal(got.spikes[name], want.spikes[name])
        np.testing.assert_array_equal(got.v[name], want.v[name])


def test_conv1d_and_depthwise():
    """conv1d is conv2d with H = 1; a depthwise conv (groups = C) keeps channels apart."""
    rng = np.random.default_rng(5)
    kernel = rng.integers(-50, 50, (4, 1, 3))
    d = {
        "format": "spikeforge-network/1",
        "v_width": 16,
        "w_width": 8,
        "populations": [
            {"name": "inp", "kind": "input", "size": 20, "shape": [2, 10]},
            lif("c", [4, 5]),
        ],
        "projections": [
            {
                "from": "inp",
                "to": "c",
                "kind": "conv1d",
                "out_channels": 4,
                "kernel": 3,
                "stride": 2,
                "padding": 1,
                "groups": 2,
                "weights": kernel.tolist(),
            }
        ],
    }
    net = Network.from_dict(d)
    x = rng.integers(0, 2, (2, 1, 10))
    want = reference_conv(x, kernel[:, :, None, :], (1, 2), (0, 1), (1, 1), 2, (1, 1))
    np.testing.assert_array_equal(x.reshape(-1) @ net.projections[0].dense(), want.reshape(-1))
    spikes = (rng.random((2, 9, 20)) < 0.5).astype(np.uint8)
    for name, array in run_network(unrolled(net), spikes).spikes.items():
        np.testing.assert_array_equal(run_network(net, spikes).spikes[name], array)


def test_save_load_round_trip(tmp_path):
    """Saving and loading a conv network gives an equal network, inline or in the .npz."""
    net = Network.from_dict(random_conv_network(np.random.default_rng(3), draw_geometry))
    for npz in (False, True):
        path = tmp_path / f"net{npz}.json"
        save_network(net, path, npz=npz)
        again = load_network(path)
        assert again == net
        assert again.network_hash() == net.network_hash()
        assert [type(p) for p in again.projections] == [type(p) for p in net.projections]


def _base():
    return {
        "format": "spikeforge-network/1",
        "v_width": 16,
        "w_width": 8,
        "populations": [
            {"name": "inp", "kind": "input", "size": 32, "shape": [2, 4, 4]},
            lif("c", [3, 2, 2]),
        ],
        "projections": [
            {
                "from": "inp",
                "to": "c",
                "kind": "conv2d",
                "out_channels": 3,
                "kernel": [3, 3],
                "stride": 1,
                "weights": np.ones((3, 2, 3, 3), np.int64).tolist(),
            }
        ],
    }


@pytest.mark.parametrize(
    "change, message",
    [
        (
            {"kind": "conv3d"},
            "projections[0].kind: must be one of 'dense', 'conv1d', 'conv2d', not 'conv3d'",
        ),
        ({"stride": 0}, "projections[0].stride: must be an integer in [1, 1048576], not 0"),
        ({"padding": -1}, "projections[0].padding: must be an integer in [0, 1024], not -1"),
        (
            {"kernel": [3, 3, 3]},
            "projections[0].kernel: must be an integer or a list of 2 integers in [1, 1048576], "
            "not [3, 3, 3]",
        ),
        (
            {"groups": 2},
            "projections[0].groups: 2 must divide the input channels (2) and out_channels (3)",
        ),
        (
            {"kernel": [5, 5]},
            "projections[0].kernel: the dilated kernel [5, 5] does not fit the pooled and "
            "padded input [4, 4]",
        ),
        (
            {"out_channels": 2},
            "projections[0]: output shape [2, 2, 2] has 8 neurons, the target 'c' has 12",
        ),
        (
            {"padding": 1},
            "projections[0]: output shape [3, 4, 4] has 48 neurons, the target 'c' has 12",
        ),
        ({"pool": [5, 1]}, "projections[0].pool: window 5 is larger than the source's extent 4"),
        ({"in_shape": [2, 16]}, "projections[0].in_shape: must be [C, H, W] for this kind"),
        ({"in_shape": [2, 4, 5]}, "projections[0].in_shape: [2, 4, 5] has 40 neurons"),
        ({"delay": 1}, "projections[0]: unknown key 'delay'"),
        ({"weights": [[1]]}, "projections[0].weights: has 1 entries, expected 3"),
        (
            {"weights": np.full((3, 2, 3, 3), 200).tolist()},
            "projections[0].weights: value 200 at [0, 0, 0, 0] outside w_width=8 range",
        ),
        ({"weights": np.ones((3, 2, 3, 2), int)}, "projections[0].weights: shape (3, 2, 3, 2), "),
    ],
)
def test_errors(change, message):
    """Each rule of a conv projection is one line naming the field."""
    d = _base()
    d["projections"][0].update(change)
    with pytest.raises(SpikeforgeError) as info:
        Network.from_dict(d)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_shape_errors():
    """A population shape must match its size; a target shape must match the conv output."""
    d = _base()
    d["populations"][1]["shape"] = [3, 4, 1]
    with pytest.raises(SpikeforgeError, match=r"differs from the shape \[3, 4, 1\] of 'c'"):
        Network.from_dict(d)
    d = _base()
    d["populations"][0]["shape"] = [2, 4, 5]
    with pytest.raises(SpikeforgeError, match=r"populations\[0\].shape: \[2, 4, 5\] has 40"):
        Network.from_dict(d)
    d = _base()
    del d["populations"][0]["shape"]
    with pytest.raises(SpikeforgeError, match="missing key 'in_shape'"):
        Network.from_dict(d)


def test_json_text(tmp_path):
    """The saved JSON carries the conv keys on the projection's first line."""
    net = Network.from_dict(_base())
    path = tmp_path / "n.json"
    save_network(net, path, npz=False)
    text = path.read_text()
    assert '"kind": "conv2d", "in_shape": [2, 4, 4]' in text
    assert json.loads(text)["populations"][1]["shape"] == [3, 2, 2]


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), scale=st.sampled_from([1, 900]))
def test_scatter_and_window_sums(seed, scale):
    """Both ways of ConvDelivery give the unrolled matrix's sums, in int16 (small weights) and
    in the accumulator's type (weights scaled past int16), also when pooling drops every spike."""
    rng = np.random.default_rng(seed)
    net = Network.from_dict(random_conv_network(rng, draw_geometry))
    for proj in net.projections:
        if not (isinstance(proj, ConvProjection) and proj.geometry.conv):
            continue
        proj = scaled(proj, scale)
        delivery = ConvDelivery(proj, np.int32)
        assert delivery.tables is not None
        if scale > 1 and np.abs(proj.weights).max() > np.iinfo(np.int16).max:
            assert delivery.tables.dtype == np.int32
        spikes = rng.random((3, proj.geometry.n_in)) < rng.choice([0.05, 0.5])
        want = spikes.astype(np.int64) @ proj.dense()
        for add in (delivery.add_scatter, delivery.add_windows):
            acc = np.zeros((3, proj.geometry.n_out), np.int32)
            add(acc, spikes)
            np.testing.assert_array_equal(acc, want)


def test_both_ways_in_chunks(monkeypatch):
    """Both ways give the same sums a batch entry or a spike at a time."""
    monkeypatch.setattr(golden_conv, "_SUMS_MAX", 1)
    rng = np.random.default_rng(7)
    net = Network.from_dict(random_conv_network(rng, draw_geometry))
    proj = net.projections[0]
    spikes = rng.random((5, proj.geometry.n_in)) < 0.3
    delivery = ConvDelivery(proj, np.int32)
    for add in (delivery.add_scatter, delivery.add_windows):
        acc = np.zeros((5, proj.geometry.n_out), np.int32)
        add(acc, spikes)
        np.testing.assert_array_equal(acc, spikes.astype(np.int64) @ proj.dense())


@pytest.mark.parametrize("seed", range(6))
def test_window_sums_of_two_bytes(seed):
    """More than 8 input channels: 16 channels' spikes form one key of two bytes (groups of
    channels, pools, dilations and a partial last key included); both ways give the unrolled
    matrix's sums."""
    rng = np.random.default_rng(seed)
    channels = int(rng.choice([9, 12, 16, 20, 33]))
    in_shape = [channels, int(rng.integers(3, 7)), int(rng.integers(3, 7))]
    geo = draw_geometry(rng, in_shape)
    c, h, w = in_shape
    out = conv_out_shape(in_shape, geo)
    kernel = rng.integers(-20, 40, (out[0], c // geo["groups"], *geo["kernel"]))
    net = Network.from_dict(
        {
            "format": "spikeforge-network/1",
            "v_width": 16,
            "w_width": 8,
            "populations": [
                {"name": "inp", "kind": "input", "size": c * h * w, "shape": in_shape},
                lif("c1", out),
            ],
            "projections": [
                {"from": "inp", "to": "c1", "kind": "conv2d", **geo, "weights": kernel.tolist()}
            ],
        }
    )
    proj = net.projections[0]
    delivery = ConvDelivery(proj, np.int32)
    assert delivery.key_bits == 16
    spikes = rng.random((4, proj.geometry.n_in)) < rng.choice([0.05, 0.5])
    want = spikes.astype(np.int64) @ proj.dense()
    for add in (delivery.add_scatter, delivery.add_windows):
        acc = np.zeros((4, proj.geometry.n_out), np.int32)
        add(acc, spikes)
        np.testing.assert_array_equal(acc, want)
