"""The deterministic spike encoding of the digit images (cli/encode.py)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spikeforge.cli.encode import MAX_STEPS, PIXELS, encode


def phase_accumulator(x, T, max_value=16):
    """The naive model: add the intensity each step, fire and subtract on reaching max_value."""
    phase, out = 0, []
    for _ in range(T):
        phase += x
        out.append(phase >= max_value)
        if phase >= max_value:
            phase -= max_value
    return out


def test_counts_are_intensity_times_rate():
    x = np.arange(17)
    for T in range(1, 33):
        spikes = encode(np.resize(x, PIXELS), T)
        assert spikes.dtype == bool and spikes.shape == (T, PIXELS)
        assert np.array_equal(spikes.sum(axis=0), (T * np.resize(x, PIXELS)) // 16)


def test_regular_trains():
    spikes = encode(np.array([0, 4, 8, 16]), 8).T.astype(int)
    assert spikes.tolist() == [[0] * 8, [0, 0, 0, 1, 0, 0, 0, 1], [0, 1] * 4, [1] * 8]


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(0, 16), min_size=1, max_size=8), st.integers(1, 40))
def test_matches_phase_accumulator(pixels, T):
    spikes = encode(np.array(pixels), T)
    for j, x in enumerate(pixels):
        assert spikes[:, j].tolist() == phase_accumulator(x, T)


def test_deterministic_and_shapes():
    rng = np.random.default_rng(3)
    images = rng.integers(0, 17, (5, 8, 8))
    a = encode(images, 32)
    b = encode(images.reshape(5, 64).astype(np.float64), 32)
    assert a.shape == (5, 32, 64)
    assert np.array_equal(a, b)
    assert np.array_equal(a[2], encode(images[2], 32))
    assert encode(np.array([3, 7]), 4, max_value=7).T.astype(int).tolist() == [
        [0, 0, 1, 0],
        [1, 1, 1, 1],
    ]


@pytest.mark.parametrize(
    "images, T, message",
    [
        (np.zeros(64, int), 0, r"T must be an integer in \[1, 4096\], not 0"),
        (np.zeros(64, int), MAX_STEPS + 1, r"T must be an integer in \[1, 4096\], not 4097"),
        (np.full(64, 17), 16, r"images must hold integers in \[0, 16\], not 17"),
        (np.full(64, -1), 16, r"images must hold integers in \[0, 16\], not -1"),
        (np.full(64, 1.5), 16, r"images must hold integers in \[0, 16\], not float64 values"),
        (np.ones(64, bool), 16, r"images must hold integers in \[0, 16\], not bool values"),
        (
            np.zeros((2, 3, 64), int),
            16,
            r"images must be shaped \(pixels,\), \(n, pixels\), \(8, 8\) "
            r"or \(n, 8, 8\), not \(2, 3, 64\)",
        ),
    ],
)
def test_errors(images, T, message):
    with pytest.raises(TypeError, match=message):
        encode(images, T)


def test_max_value_checked():
    with pytest.raises(TypeError, match=r"max_value must be an integer in \[1, 65536\], not 0"):
        encode(np.zeros(4, int), 4, max_value=0)
