"""The kernel walk of a convolution on the array: its constants, its weight words, and the walk
itself in Python, the reference the hardware's address generator is tested against.

``docs/array.md`` ("Convolutions") specifies the walk: for a spike of source neuron
``(c, y, x)`` the array visits the kernel taps ``(ky, kx)`` whose output position ``(y', x')``
is in the target, and for each the ``O_g`` output channels of ``c``'s group, one weight word a
cycle, adding ``W[o, c, ky, kx]`` to target neuron ``(o, y', x')``. The valid taps of one source
row form an arithmetic progression (the congruence ``ky dy = y + p (mod sy)`` has its solutions
``sy / gcd(sy, dy)`` apart), so a table entry per source row and column and two constant steps
give every address by additions.
"""

from math import gcd

import numpy as np

from ..hdl.plan import ConvWalk

__all__ = ["conv_walk", "conv_weight_words", "walk"]


def _axis(n, pool, pad, dil, stride, kernel, n_out, tap_words, target_stride):
    """Table entries ``(count, weight offset, target offset)`` for each source coordinate of
    one axis (before pooling), and the ``(weight, target)`` step between consecutive taps."""
    step_k = stride // gcd(stride, dil)  # taps between two valid ones
    step_out = step_k * dil // stride  # output positions between them (downwards)
    pooled = n // pool
    entries = []
    for y in range(n):
        yp = y // pool
        taps = []
        if yp < pooled:
            for k in range(kernel):
                shifted = yp + pad - k * dil
                if shifted % stride == 0 and 0 <= shifted // stride < n_out:
                    taps.append((k, shifted // stride))
        if taps:
            (k0, out0) = taps[0]
            # The table is an arithmetic progression: checked, not assumed.
            assert all(t == (k0 + i * step_k, out0 - i * step_out) for i, t in enumerate(taps)), (
                taps
            )
            entries.append((len(taps), k0 * tap_words, out0 * target_stride))
        else:
            entries.append((0, 0, 0))
    return tuple(entries), (step_k * tap_words, -step_out * target_stride)


def conv_walk(geometry, lanes=1, channel_minor=False):
    """The :class:`~spikeforge.hdl.plan.ConvWalk` of a conv projection's ``ConvGeometry`` on
    ``lanes`` lanes, into a target whose slots hold its neurons channel-minor
    (``PopulationPlan.channels``) or in C order. The walk runs its lanes over output channels
    (``vector``) when the target is channel-minor and ``lanes`` divides ``O_g``."""
    g = geometry
    c, h, w = g.in_shape
    o, ho, wo = g.out_shape
    kh, kw = g.kernel
    og = o // g.groups
    # Target place of (o, y', x'): o * channel + y' * row + x' * column.
    channel, row, column = (1, wo * o, o) if channel_minor else (ho * wo, wo, 1)
    vector = channel_minor and lanes > 1 and og % lanes == 0
    tap_words = og // lanes if vector else og
    rows, row_step = _axis(
        h, g.pool[0], g.padding[0], g.dilation[0], g.stride[0], kh, ho, kw * tap_words, row
    )
    cols, col_step = _axis(
        w, g.pool[1], g.padding[1], g.dilation[1], g.stride[1], kw, wo, tap_words, column
    )
    return ConvWalk(
        height=h,
        width=w,
        group_channels=c // g.groups,
        group_outputs=og,
        channel_words=kh * kw * tap_words,
        group_targets=og * channel,
        tap_words=tap_words,
        word_targets=channel * lanes if vector else channel,
        vector=vector,
        rows=rows,
        cols=cols,
        row_step=row_step,
        col_step=col_step,
    )


def conv_weight_words(proj, conv, lanes=1):
    """The weight words ``(lanes, words)`` of conv projection ``proj`` walked by ``conv``.

    Word ``((c kh + ky) kw + kx) tap_words + k`` holds ``W[g O_g + o_i, c - g C_g, ky, kx]``
    with ``o_i = k`` in every lane, or with ``o_i = k P + l`` in lane ``l`` of a ``vector``
    walk.
    """
    geo = proj.geometry
    o, cg, kh, kw = proj.weights.shape[0], proj.weights.shape[1], *geo.kernel
    og = o // geo.groups
    if conv.vector:
        kernel = proj.weights.reshape(geo.groups, og // lanes, lanes, cg, kh, kw)
        # (g, k, l, c_i, ky, kx) -> (l, g, c_i, ky, kx, k).
        return kernel.transpose(2, 0, 3, 4, 5, 1).reshape(lanes, -1).astype(np.int64)
    kernel = proj.weights.reshape(geo.groups, og, cg, kh, kw)
    # (g, o_i, c_i, ky, kx) -> (g, c_i, ky, kx, o_i): c = g C_g + c_i is then the leading index.
    words = kernel.transpose(0, 2, 3, 4, 1).reshape(-1).astype(np.int64)
    return np.repeat(words[None, :], lanes, axis=0)


def walk(conv, j, weight_base=0):
    """The walk of source neuron ``j``: ``(weight address, target place)`` of each cycle in
    order, or ``[]`` for an event that reaches nothing (the hardware spends one idle cycle).
    In a ``vector`` walk lane ``l`` adds its word to place ``t + l``, else lane ``t % P`` adds
    its word to place ``t``."""
    (ny, wy, ty), (nx, wx, tx), c = conv.taps(j)
    group = c // conv.group_channels
    w_start = weight_base + c * conv.channel_words + wy + wx
    t_start = group * conv.group_targets + ty + tx
    words = []
    for a in range(ny):
        for b in range(nx):
            w_tap = w_start + a * conv.row_step[0] + b * conv.col_step[0]
            t_tap = t_start + a * conv.row_step[1] + b * conv.col_step[1]
            for k in range(conv.tap_words):
                words.append((w_tap + k, t_tap + k * conv.word_targets))
    return words
