"""Deterministic spike encoding of the 8x8 digit images (``docs/digits.md``).

A pixel of intensity ``x`` (``0 ... max_value``) becomes a regular spike train of rate
``x / max_value`` spikes per step: an integer phase accumulator adds ``x`` every step and the pixel
fires whenever the accumulator reaches ``max_value`` (which it then subtracts). Over ``T`` steps the
pixel fires exactly ``floor(T * x / max_value)`` times. There is no randomness, so the same image
always gives the same spikes, and a hardware host can produce the same trains with one adder per
pixel.
"""

import numpy as np

from ..spec.limits import check_int

__all__ = ["MAX_STEPS", "PIXELS", "encode"]

# Far more steps than any classifier here needs; the bound only catches a mistyped argument
# before it allocates a huge array.
MAX_STEPS = 4096
# The scikit-learn digits are 8x8 images.
PIXELS = 64


def encode(images, T, max_value=16):
    """Encode pixel intensities as regular spike trains.

    Parameters
    ----------
    images : array_like of int
        Intensities in ``[0, max_value]``, shaped ``(pixels,)`` or ``(n, pixels)``; an image may
        also be given as ``(8, 8)`` or a stack ``(n, 8, 8)``, which is flattened row by row.
    T : int
        Number of timesteps, ``1 ... MAX_STEPS``.
    max_value : int
        The intensity that fires on every step (16 for the scikit-learn digits).

    Returns
    -------
    numpy.ndarray of bool
        Spikes shaped ``(T, pixels)`` for one image or ``(n, T, pixels)`` for several: the
        ``(B, T, N)`` layout of :func:`spikeforge.sim.golden.run_population`.

    Raises
    ------
    TypeError
        Non-integer pixels, pixels out of range, or a bad ``T`` or ``max_value``.
    """
    T = check_int("T", T, 1, MAX_STEPS)
    max_value = check_int("max_value", max_value, 1, 1 << 16)
    x = np.asarray(images)
    if x.dtype == bool or not (np.issubdtype(x.dtype, np.integer) or _integral_floats(x)):
        raise TypeError(f"images must hold integers in [0, {max_value}], not {x.dtype} values")
    if x.ndim >= 2 and x.shape[-2:] == (8, 8):
        x = x.reshape(x.shape[:-2] + (PIXELS,))
    if x.ndim not in (1, 2) or x.shape[-1] == 0:
        raise TypeError(
            f"images must be shaped (pixels,), (n, pixels), (8, 8) or (n, 8, 8), "
            f"not {np.shape(images)}"
        )
    x = x.astype(np.int64)
    if x.size and (x.min() < 0 or x.max() > max_value):
        bad = x.min() if x.min() < 0 else x.max()
        raise TypeError(f"images must hold integers in [0, {max_value}], not {bad}")
    # floor((t + 1) x / m) - floor(t x / m) is 1 exactly when the phase accumulator wraps on step t.
    steps = np.arange(T + 1, dtype=np.int64)[:, None]
    cumulative = (steps * x[..., None, :]) // max_value
    return np.diff(cumulative, axis=-2).astype(bool)


def _integral_floats(x):
    # scikit-learn hands the digits over as float64 holding whole numbers; accept those.
    return (
        np.issubdtype(x.dtype, np.floating)
        and bool(np.all(np.isfinite(x)))
        and bool(np.all(x == np.round(x)))
    )
