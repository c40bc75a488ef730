"""The compiled convolution kernel (``sim/golden_conv_kernel.cpp``) against the NumPy ways of
``ConvDelivery``, which stay the reference: bit-exact sums on random layers and accumulator
types, the same wrap-around at the types' extremes, the same network runs, and the fallback to
NumPy where the kernel cannot be built or is turned off."""

import numpy as np
import pytest
from conv_cases import random_conv_network, scaled
from hypothesis import given, settings
from hypothesis import strategies as st
from test_conv_golden import draw_geometry

from spikeforge.gen.network import Network
from spikeforge.gen.network_conv import ConvProjection
from spikeforge.sim import golden_conv_native
from spikeforge.sim.golden_conv import ConvDelivery
from spikeforge.sim.golden_conv_native import KERNEL_ENV, conv_path
from spikeforge.sim.network_golden import run_network

TYPES = (np.int16, np.int32, np.int64)


@pytest.fixture(autouse=True)
def kernel(monkeypatch):
    """The kernel loaded afresh, whatever ``SPIKEFORGE_CONV_KERNEL`` says outside (the tests that
    change how it is found load it again after)."""
    monkeypatch.delenv(KERNEL_ENV, raising=False)
    golden_conv_native._load.cache_clear()
    yield
    golden_conv_native._load.cache_clear()


def conv_projections(net):
    return [p for p in net.projections if isinstance(p, ConvProjection) and p.geometry.conv]


def test_kernel_is_built():
    """With the C++ compiler of the quick start, the convolutions run compiled."""
    assert conv_path() == "native"


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    dtype=st.sampled_from(TYPES),
    rate=st.sampled_from([0.02, 0.3, 1.0]),
)
def test_kernel_equals_numpy(seed, dtype, rate):
    """Random layers (strides, paddings, dilations, groups, pools) and batches: the kernel's
    sums equal both NumPy ways' and, where they fit the type, the unrolled matrix's."""
    rng = np.random.default_rng(seed)
    net = Network.from_dict(random_conv_network(rng, draw_geometry))
    for proj in conv_projections(net):
        delivery = ConvDelivery(proj, dtype)
        rows = int(rng.integers(1, 40))
        spikes = rng.random((rows, proj.geometry.n_in)) < rate
        start = rng.integers(-1000, 1000, (rows, proj.geometry.n_out)).astype(dtype)
        want = start.astype(np.int64) + spikes.astype(np.int64) @ proj.dense()
        ways = [delivery.add_native, delivery.add_scatter]
        if delivery.tables is not None:
            ways.append(delivery.add_windows)
        for add in ways:
            acc = start.copy()
            add(acc, spikes)
            np.testing.assert_array_equal(acc, want.astype(dtype))


@pytest.mark.parametrize("dtype", TYPES)
@pytest.mark.parametrize("large", [False, True])
def test_wraps_at_extremes(dtype, large):
    """Sums past the type's range wrap modulo ``2**bits`` as NumPy's additions do, from
    accumulators at the type's largest and smallest values: with small weights (whose sums the
    kernel adds in int16) and with weights of up to a quarter of the type's range."""
    rng = np.random.default_rng(3)
    info = np.iinfo(dtype)
    net = Network.from_dict(random_conv_network(rng, draw_geometry))
    for proj in conv_projections(net):
        if large:
            proj = scaled(proj, (int(info.max) + 1) // 4 // 64)
        delivery = ConvDelivery(proj, dtype)
        sums = delivery._native_args[-1].dtype
        assert sums == (dtype if large else np.int16)
        spikes = rng.random((6, proj.geometry.n_in)) < 0.8
        wraps = 0
        for edge in (info.max, info.min):
            start = np.full((6, proj.geometry.n_out), edge, dtype)
            native, numpy = start.copy(), start.copy()
            delivery.add_native(native, spikes)
            delivery.add_scatter(numpy, spikes)
            np.testing.assert_array_equal(native, numpy)
            # The sums modulo 2**bits, in Python integers.
            exact = start.astype(object) + spikes.astype(object) @ proj.dense().astype(object)
            bits = info.bits
            wrapped = (exact + 2 ** (bits - 1)) % 2**bits - 2 ** (bits - 1)
            wraps += np.count_nonzero(exact != wrapped)
            np.testing.assert_array_equal(native, wrapped.astype(dtype))
        assert wraps


def test_strided_accumulators_use_numpy(monkeypatch):
    """Accumulators that are not one contiguous block are left to the NumPy ways."""
    rng = np.random.default_rng(5)
    proj = conv_projections(Network.from_dict(random_conv_network(rng, draw_geometry)))[0]
    delivery = ConvDelivery(proj, np.int32)
    monkeypatch.setattr(delivery, "add_native", None)
    spikes = rng.random((4, proj.geometry.n_in)) < 0.3
    acc = np.zeros((proj.geometry.n_out, 4), np.int32).T
    delivery.add(acc, spikes)
    np.testing.assert_array_equal(acc, spikes.astype(np.int64) @ proj.dense())


@pytest.mark.parametrize("seed", range(8))
def test_network_runs_equal(seed, monkeypatch):
    """Whole runs of random conv networks (recurrent, batched) are the same with the kernel and
    with NumPy only."""
    rng = np.random.default_rng(seed)
    net = Network.from_dict(random_conv_network(rng, draw_geometry))
    spikes = rng.random((int(rng.integers(1, 6)), 30, net.n_inputs)) < 0.3
    native = run_network(net, spikes)
    monkeypatch.setenv(KERNEL_ENV, "numpy")
    golden_conv_native._load.cache_clear()
    assert conv_path() == f"numpy ({KERNEL_ENV}=numpy)"
    numpy = run_network(net, spikes)
    for name, value in native.spikes.items():
        np.testing.assert_array_equal(value, numpy.spikes[name])


def test_no_compiler(monkeypatch):
    """Without ``c++`` on the PATH the NumPy ways run, and conv_path says why."""
    monkeypatch.setenv("PATH", "")
    assert conv_path() == "numpy (no C++ compiler (c++) on PATH)"
    proj = conv_projections(
        Network.from_dict(random_conv_network(np.random.default_rng(1), draw_geometry))
    )[0]
    assert ConvDelivery(proj, np.int32)._native is None


def test_build_failure(monkeypatch, tmp_path):
    """A source that does not compile: the NumPy ways run, and conv_path has the first error
    line."""
    broken = tmp_path / "golden_conv_kernel.cpp"
    broken.write_text("this is not C++\n")
    monkeypatch.setattr(golden_conv_native, "_SOURCE", broken)
    monkeypatch.setenv("SPIKEFORGE_CACHE", str(tmp_path / "cache"))
    path = conv_path()
    assert path.startswith("numpy (c++ could not build golden_conv_kernel.so: ")
    assert "error" in path
    assert not list((tmp_path / "cache" / "native").iterdir())
